//! # alcove-client
//!
//! The SDK therapy apps embed. It does everything cryptographic on the
//! device — keys, sessions, sealing, attachment encryption — and talks to an
//! Alcove relay that only ever sees ciphertext. The app deals in contacts,
//! messages, homework and files.
//!
//! ```no_run
//! # async fn demo() -> Result<(), alcove_client::Error> {
//! use alcove_client::{Client, Body};
//! use std::time::Duration;
//!
//! let key = [7u8; 32]; // the app keeps this in the platform keystore
//! let therapist = Client::create("therapist-profile".as_ref(), &key, "http://127.0.0.1:7443", "Dr. Rivera").await?;
//! let invite = therapist.create_invite(Duration::from_secs(7 * 24 * 3600)).await?;
//!
//! // On the client's phone, with the invite scanned from a QR code:
//! let client = Client::create("client-profile".as_ref(), &[9u8; 32], "http://127.0.0.1:7443", "Sam").await?;
//! let contact = client.accept_invite(&invite).await?;
//! client.send_text(&contact.address, "Hello, I got your invite.").await?;
//!
//! for event in therapist.sync().await? {
//!     if let Body::Text(t) = &event.body {
//!         println!("{}: {}", event.from_name, t.body);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Every received message is stored (encrypted) in the profile before the
//! relay is told to delete it, and stays in the profile's inbox until the
//! app calls [`Client::confirm`]: after a crash, [`Client::pending_events`]
//! hands back what the app had not confirmed. Each event carries the
//! sender's stable [`MessageId`], so an app that saw an event just before a
//! crash can recognise it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod attachments;
mod error;
mod relay;
mod storage;
mod transparency;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alcove_api::v1::{AckRequest, FetchRequest, SendRequest, UploadOneTimePreKeysRequest};
use alcove_protocol::content::{self, Content};
use alcove_protocol::fingerprint::SafetyNumber;
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::invite::Invite;
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{sealed_sender, PublicIdentity, Session};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

pub use alcove_keylog::{SignedTreeHead, TransparencyError};
pub use alcove_protocol::content::MessageId;
pub use alcove_protocol::content::{
    AttachmentPointer, Body, DeliveryReceipt, Feedback, HomeworkAssignment, HomeworkSubmission,
    ReadReceipt, Text,
};
pub use alcove_protocol::DeviceAddress;
pub use error::{Error, Result};
pub use transparency::{KeyLogStatus, SIGNED_PREKEY_MAX_AGE};

use relay::Relay;
use storage::Vault;

/// One-time prekeys published at registration and kept in stock.
const PREKEY_STOCK: u32 = 100;
/// Replenish when fewer than this many are left on the relay.
const PREKEY_LOW_WATER: u32 = 25;
/// How long a signed prekey is used before [`Client::sync`] replaces it.
pub const SIGNED_PREKEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ser<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap_or_default()
}

fn de<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|_| Error::StorageLocked)
}

/// A person this device talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Their device address.
    pub address: DeviceAddress,
    /// How the app shows them.
    pub name: String,
    /// The 60-digit safety number both sides can compare.
    pub safety_number: String,
    /// Verified out of band (through an invite, or by the app after the
    /// users compared safety numbers).
    pub verified: bool,
    /// Their identity key changed since it was verified; sending is held
    /// until [`Client::accept_key_change`].
    pub key_changed: bool,
}

/// A message received and decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The sender's id of this message (stable across retries).
    pub id: MessageId,
    /// Who sent it (authenticated).
    pub from: DeviceAddress,
    /// The sender's display name as this device knows it.
    pub from_name: String,
    /// The sender's clock when it was written, ms since the Unix epoch.
    pub sent_at_ms: i64,
    /// What it says.
    pub body: Body,
}

#[derive(Serialize, Deserialize, Clone)]
struct ContactRecord {
    address: [u8; 32],
    name: String,
    identity: Vec<u8>,
    verified: bool,
    pending_identity: Option<Vec<u8>>,
}

#[derive(Serialize, Deserialize, Clone)]
struct ProfileState {
    relay_url: String,
    name: String,
    next_prekey_id: u32,
    signed_prekey_id: u32,
}

#[derive(Serialize, Deserialize)]
struct StoredEvent {
    id: [u8; 16],
    from: [u8; 32],
    sent_at_ms: i64,
    content: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct OutboxEntry {
    recipient: [u8; 32],
    client_message_id: [u8; 16],
    envelope: Vec<u8>,
}

/// A device profile connected to a relay.
pub struct Client {
    vault: Vault,
    identity: IdentityKeyPair,
    relay: Relay,
    core: Mutex<Core>,
    /// Serialises key-log checks, so heads are compared in order.
    transparency: Mutex<()>,
}

struct Core {
    state: ProfileState,
    contacts: HashMap<[u8; 32], ContactRecord>,
}

const IDENTITY: &[u8] = b"identity";
const STATE: &[u8] = b"state";
const CONTACTS: &[u8] = b"contacts";

impl Client {
    /// Creates a new profile in `dir`, protected by `storage_key`, and
    /// registers it with the relay at `relay_url` under `name`.
    pub async fn create(
        dir: &Path,
        storage_key: &[u8; 32],
        relay_url: &str,
        name: &str,
    ) -> Result<Self> {
        let vault = Vault::open(dir, storage_key)?;
        if vault.get(IDENTITY)?.is_some() {
            return Err(Error::InvalidInput(format!(
                "a profile already exists in {}",
                dir.display()
            )));
        }
        let mut rng = rand::rngs::OsRng;
        let identity = IdentityKeyPair::generate(&mut rng);
        let spk = SignedPreKeyPair::generate(&mut rng, &identity, 1, (now_ms() / 1000) as u64);
        let otks: Vec<OneTimePreKeyPair> = (1..=PREKEY_STOCK)
            .map(|i| OneTimePreKeyPair::generate(&mut rng, i))
            .collect();
        let state = ProfileState {
            relay_url: relay_url.to_string(),
            name: name.to_string(),
            next_prekey_id: PREKEY_STOCK + 1,
            signed_prekey_id: 1,
        };
        let mut puts = vec![
            (IDENTITY.to_vec(), identity.to_secret_bytes().to_vec()),
            (STATE.to_vec(), ser(&state)),
            (b"spk/1".to_vec(), spk.to_secret_bytes().to_vec()),
            (CONTACTS.to_vec(), ser(&Vec::<ContactRecord>::new())),
        ];
        for k in &otks {
            puts.push((otk_name(k.id()), k.to_secret_bytes().to_vec()));
        }
        vault.commit(&puts, &[])?;
        let relay = Relay::new(relay_url)?;
        relay.register(&identity, &spk, &otks).await?;
        let client = Self {
            vault,
            identity,
            relay,
            core: Mutex::new(Core {
                state,
                contacts: HashMap::new(),
            }),
            transparency: Mutex::new(()),
        };
        client.pin_log_key().await?;
        Ok(client)
    }

    /// Opens an existing profile. A wrong `storage_key` is
    /// [`Error::StorageLocked`], never garbage.
    pub async fn open(dir: &Path, storage_key: &[u8; 32]) -> Result<Self> {
        let vault = Vault::open(dir, storage_key)?;
        let secret = vault
            .get(IDENTITY)?
            .ok_or_else(|| Error::InvalidInput(format!("no profile in {}", dir.display())))?;
        let identity =
            IdentityKeyPair::from_secret_bytes(&secret).map_err(|_| Error::StorageLocked)?;
        let state: ProfileState = de(&vault.get(STATE)?.ok_or(Error::StorageLocked)?)?;
        let contacts: Vec<ContactRecord> =
            de(&vault.get(CONTACTS)?.ok_or(Error::StorageLocked)?)?;
        let relay = Relay::new(&state.relay_url)?;
        Ok(Self {
            vault,
            identity,
            relay,
            core: Mutex::new(Core {
                state,
                contacts: contacts.into_iter().map(|c| (c.address, c)).collect(),
            }),
            transparency: Mutex::new(()),
        })
    }

    /// This device's address.
    pub fn address(&self) -> DeviceAddress {
        self.identity.public().address()
    }

    /// This profile's display name.
    pub async fn name(&self) -> String {
        self.core.lock().await.state.name.clone()
    }

    /// Creates an invite link (for a QR code) valid for `valid_for`.
    pub async fn create_invite(&self, valid_for: Duration) -> Result<String> {
        let core = self.core.lock().await;
        let expires = (now_ms() / 1000) as u64 + valid_for.as_secs();
        let invite = Invite::new(
            &mut rand::rngs::OsRng,
            self.identity.public(),
            &core.state.relay_url,
            expires,
        )
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.vault.commit(
            &[(invite_name(&invite.nonce), expires.to_be_bytes().to_vec())],
            &[],
        )?;
        Ok(invite.to_link())
    }

    /// Accepts an invite: fetches the inviter's keys from the relay, checks
    /// them against the invite (a relay that substitutes keys is caught
    /// here), opens a session and introduces this device.
    pub async fn accept_invite(&self, link: &str) -> Result<Contact> {
        let invite = Invite::decode(link).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let bundle = self.fetch_bundle(invite.address.as_bytes()).await?;
        invite
            .verify(bundle.identity(), (now_ms() / 1000) as u64)
            .map_err(|e| Error::VerificationFailed(e.to_string()))?;
        let address = *invite.address.as_bytes();
        let mut core = self.core.lock().await;
        let record = ContactRecord {
            address,
            name: String::new(),
            identity: bundle.identity().to_bytes().to_vec(),
            verified: true,
            pending_identity: None,
        };
        core.contacts.insert(address, record);
        let session = x3dh::initiate(&mut rand::rngs::OsRng, &self.identity, &bundle)
            .map_err(|e| Error::VerificationFailed(e.to_string()))?;
        let hello = Body::InviteAccepted(content::InviteAccepted {
            invite_nonce: invite.nonce.to_vec(),
            display_name: core.state.name.clone(),
        });
        self.send_with(&mut core, &address, Some(session), hello)
            .await?;
        drop(core);
        self.contact(
            &DeviceAddress::from_bytes(&address).map_err(|e| Error::InvalidInput(e.to_string()))?,
        )
        .await
    }

    /// All contacts.
    pub async fn contacts(&self) -> Vec<Contact> {
        let core = self.core.lock().await;
        let mut list: Vec<Contact> = core
            .contacts
            .values()
            .map(|c| self.public_contact(c))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// One contact.
    pub async fn contact(&self, address: &DeviceAddress) -> Result<Contact> {
        let core = self.core.lock().await;
        core.contacts
            .get(address.as_bytes())
            .map(|c| self.public_contact(c))
            .ok_or_else(|| Error::InvalidInput("unknown contact".into()))
    }

    fn public_contact(&self, c: &ContactRecord) -> Contact {
        let safety_number = PublicIdentity::from_bytes(&c.identity)
            .map(|id| SafetyNumber::new(self.identity.public(), &id).to_string())
            .unwrap_or_default();
        Contact {
            address: DeviceAddress::from_bytes(&c.address).unwrap_or_else(|_| self.address()),
            name: c.name.clone(),
            safety_number,
            verified: c.verified,
            key_changed: c.pending_identity.is_some(),
        }
    }

    /// Marks a contact verified after the users compared safety numbers.
    pub async fn mark_verified(&self, address: &DeviceAddress) -> Result<()> {
        let mut core = self.core.lock().await;
        let c = core
            .contacts
            .get_mut(address.as_bytes())
            .ok_or_else(|| Error::InvalidInput("unknown contact".into()))?;
        c.verified = true;
        self.save_contacts(&core)
    }

    /// Accepts a contact's new identity key (after the users re-verified
    /// it). The contact stays unverified until [`Client::mark_verified`].
    pub async fn accept_key_change(&self, address: &DeviceAddress) -> Result<()> {
        let mut core = self.core.lock().await;
        let c = core
            .contacts
            .get_mut(address.as_bytes())
            .ok_or_else(|| Error::InvalidInput("unknown contact".into()))?;
        if let Some(new) = c.pending_identity.take() {
            c.identity = new;
            c.verified = false;
        }
        let name = self.vault.hashed_name("session", address.as_bytes());
        self.save_contacts(&core)?;
        self.vault.commit(&[], &[name])
    }

    /// Renames a contact.
    pub async fn rename_contact(&self, address: &DeviceAddress, name: &str) -> Result<()> {
        let mut core = self.core.lock().await;
        let c = core
            .contacts
            .get_mut(address.as_bytes())
            .ok_or_else(|| Error::InvalidInput("unknown contact".into()))?;
        c.name = name.to_string();
        self.save_contacts(&core)
    }

    fn save_contacts(&self, core: &Core) -> Result<()> {
        let list: Vec<ContactRecord> = core.contacts.values().cloned().collect();
        self.vault.commit(&[(CONTACTS.to_vec(), ser(&list))], &[])
    }

    /// Sends a text message. Returns its id (for replies and receipts).
    pub async fn send_text(&self, to: &DeviceAddress, text: &str) -> Result<MessageId> {
        self.send(
            to,
            Body::Text(Text {
                body: text.to_string(),
                reply_to: vec![],
            }),
        )
        .await
    }

    /// Assigns homework.
    pub async fn assign_homework(
        &self,
        to: &DeviceAddress,
        title: &str,
        instructions: &str,
        due_date: Option<&str>,
        attachments: Vec<AttachmentPointer>,
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::HomeworkAssignment(HomeworkAssignment {
                title: title.to_string(),
                instructions: instructions.to_string(),
                due_date: due_date.unwrap_or_default().to_string(),
                attachments,
            }),
        )
        .await
    }

    /// Hands in homework for the assignment `assignment`.
    pub async fn submit_homework(
        &self,
        to: &DeviceAddress,
        assignment: &MessageId,
        answer: &str,
        attachments: Vec<AttachmentPointer>,
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::HomeworkSubmission(HomeworkSubmission {
                assignment_id: assignment.0.to_vec(),
                body: answer.to_string(),
                attachments,
            }),
        )
        .await
    }

    /// Sends feedback on a submission (or any message).
    pub async fn send_feedback(
        &self,
        to: &DeviceAddress,
        refers_to: &MessageId,
        text: &str,
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::Feedback(Feedback {
                refers_to: refers_to.0.to_vec(),
                body: text.to_string(),
            }),
        )
        .await
    }

    /// Tells the sender their messages were read.
    pub async fn send_read_receipt(
        &self,
        to: &DeviceAddress,
        ids: &[MessageId],
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::ReadReceipt(ReadReceipt {
                message_ids: ids.iter().map(|i| i.0.to_vec()).collect(),
            }),
        )
        .await
    }

    /// Sends an attachment pointer (from [`Client::upload_file`]) on its own.
    pub async fn send_attachment(
        &self,
        to: &DeviceAddress,
        pointer: AttachmentPointer,
    ) -> Result<MessageId> {
        self.send(to, Body::Attachment(pointer)).await
    }

    /// Sends any content body.
    pub async fn send(&self, to: &DeviceAddress, body: Body) -> Result<MessageId> {
        let mut core = self.core.lock().await;
        self.send_with(&mut core, to.as_bytes(), None, body).await
    }

    async fn send_with(
        &self,
        core: &mut Core,
        to: &[u8; 32],
        fresh: Option<Session>,
        body: Body,
    ) -> Result<MessageId> {
        let contact = core
            .contacts
            .get(to)
            .ok_or_else(|| Error::InvalidInput("unknown contact".into()))?
            .clone();
        if contact.pending_identity.is_some() {
            return Err(Error::ContactKeyChanged);
        }
        let mut session = match fresh {
            Some(s) => s,
            None => match self.load_session(to)? {
                Some(s) => s,
                None => {
                    let bundle = self.fetch_bundle(to).await?;
                    if bundle.identity().to_bytes().as_slice() != contact.identity.as_slice() {
                        if let Some(c) = core.contacts.get_mut(to) {
                            c.pending_identity = Some(bundle.identity().to_bytes().to_vec());
                        }
                        self.save_contacts(core)?;
                        return Err(Error::ContactKeyChanged);
                    }
                    x3dh::initiate(&mut rand::rngs::OsRng, &self.identity, &bundle)
                        .map_err(|e| Error::VerificationFailed(e.to_string()))?
                }
            },
        };
        let recipient =
            PublicIdentity::from_bytes(&contact.identity).map_err(|_| Error::StorageLocked)?;
        let id = MessageId::random(&mut rand::rngs::OsRng);
        let message = Content {
            message_id: id.0.to_vec(),
            sent_at_ms: now_ms(),
            body: Some(body),
        };
        content::validate(&message).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let plaintext = zeroize::Zeroizing::new(content::encode(&message));
        let wire = session
            .encrypt(&mut rand::rngs::OsRng, &plaintext)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let envelope =
            sealed_sender::seal(&mut rand::rngs::OsRng, &self.identity, &recipient, &wire)
                .map_err(|e| Error::LimitExceeded(e.to_string()))?;
        // The session and the envelope are saved before anything leaves the
        // device: a crash can then only lead to a retry of the same bytes.
        let outbox_name = outbox_name(&id.0);
        let entry = OutboxEntry {
            recipient: *to,
            client_message_id: id.0,
            envelope,
        };
        let mut puts = vec![
            (
                self.vault.hashed_name("session", to),
                session.to_bytes().to_vec(),
            ),
            (outbox_name.clone(), ser(&entry)),
        ];
        let list: Vec<ContactRecord> = core.contacts.values().cloned().collect();
        puts.push((CONTACTS.to_vec(), ser(&list)));
        self.vault.commit(&puts, &[])?;
        self.deliver(&entry).await?;
        self.vault.commit(&[], &[outbox_name])?;
        Ok(id)
    }

    async fn deliver(&self, entry: &OutboxEntry) -> Result<()> {
        self.relay
            .call(&self.identity, |mb, token| {
                let req = relay::authed(
                    &token,
                    SendRequest {
                        recipient: entry.recipient.to_vec(),
                        client_message_id: entry.client_message_id.to_vec(),
                        envelope: entry.envelope.clone(),
                    },
                );
                async move { mb.mailbox().send(req).await.map(|_| ()) }
            })
            .await
    }

    /// Retries sends that were saved but not confirmed by the relay (after
    /// a crash or while offline). Returns how many went out.
    pub async fn flush_outbox(&self) -> Result<usize> {
        let pending = self.vault.scan(b"outbox/")?;
        let mut sent = 0;
        for (name, value) in pending {
            let entry: OutboxEntry = de(&value)?;
            self.deliver(&entry).await?;
            self.vault.commit(&[], &[name])?;
            sent += 1;
        }
        Ok(sent)
    }

    fn load_session(&self, address: &[u8; 32]) -> Result<Option<Session>> {
        match self
            .vault
            .get(&self.vault.hashed_name("session", address))?
        {
            Some(bytes) => Ok(Some(
                Session::from_bytes(&bytes).map_err(|_| Error::StorageLocked)?,
            )),
            None => Ok(None),
        }
    }

    /// Fetches everything waiting on the relay, decrypts it, stores it in
    /// the profile, then lets the relay delete it. Returns the new events,
    /// oldest first. Also retries the outbox and tops up one-time prekeys.
    pub async fn sync(&self) -> Result<Vec<Event>> {
        self.flush_outbox().await?;
        let mut events = Vec::new();
        loop {
            let page = self
                .relay
                .call(&self.identity, |c, token| {
                    let req = relay::authed(
                        &token,
                        FetchRequest {
                            after_sequence: 0,
                            limit: 100,
                            mailbox: vec![],
                        },
                    );
                    async move { c.mailbox().fetch(req).await.map(|r| r.into_inner()) }
                })
                .await?;
            if page.envelopes.is_empty() {
                break;
            }
            let mut acks = Vec::new();
            for env in &page.envelopes {
                match self.receive(env.sequence, &env.envelope).await {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => {}
                    // A message no retry can open must not block the
                    // mailbox: it is dropped (and acknowledged) like a
                    // forgery.
                    Err(Error::Undecryptable(reason)) => {
                        tracing::warn!(%reason, "dropping an undecryptable message");
                    }
                    Err(e) => return Err(e),
                }
                acks.push(env.sequence);
            }
            self.ack(&acks).await?;
            if !page.more {
                break;
            }
        }
        self.replenish_prekeys().await?;
        self.rotate_if_due().await?;
        Ok(events)
    }

    /// Live events: first whatever waits on the relay, then messages as they
    /// arrive, each stored and acknowledged before it is yielded. The
    /// stream ends when the relay closes it (for example on shutdown);
    /// call again to resume.
    ///
    /// ```no_run
    /// # async fn f(client: alcove_client::Client) -> Result<(), alcove_client::Error> {
    /// use futures::StreamExt;
    /// let mut events = std::pin::pin!(client.events());
    /// while let Some(event) = events.next().await {
    ///     let event = event?;
    ///     println!("{:?}", event.body);
    ///     client.confirm(&event).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> impl futures::Stream<Item = Result<Event>> + '_ {
        futures::stream::unfold(
            None,
            move |sub: Option<tonic::Streaming<alcove_api::v1::Envelope>>| async move {
                let mut sub = match sub {
                    Some(s) => s,
                    None => {
                        if let Err(e) = self.flush_outbox().await {
                            return Some((Err(e), None));
                        }
                        let opened =
                            self.relay
                                .call(&self.identity, |c, token| {
                                    let req = relay::authed(
                                        &token,
                                        alcove_api::v1::SubscribeRequest::default(),
                                    );
                                    async move {
                                        c.mailbox().subscribe(req).await.map(|r| r.into_inner())
                                    }
                                })
                                .await;
                        match opened {
                            Ok(s) => s,
                            Err(e) => return Some((Err(e), None)),
                        }
                    }
                };
                loop {
                    let envelope = match sub.message().await {
                        Ok(Some(env)) => env,
                        Ok(None) => return None,
                        Err(status) => return Some((Err(status.into()), None)),
                    };
                    let received = self.receive(envelope.sequence, &envelope.envelope).await;
                    if let Err(e) = self.ack(&[envelope.sequence]).await {
                        return Some((Err(e), None));
                    }
                    match received {
                        Ok(Some(event)) => return Some((Ok(event), Some(sub))),
                        Ok(None) => continue,
                        Err(e) => return Some((Err(e), Some(sub))),
                    }
                }
            },
        )
    }

    async fn ack(&self, sequences: &[u64]) -> Result<()> {
        self.relay
            .call(&self.identity, |c, token| {
                let req = relay::authed(
                    &token,
                    AckRequest {
                        sequences: sequences.to_vec(),
                        mailbox: vec![],
                    },
                );
                async move { c.mailbox().ack(req).await.map(|_| ()) }
            })
            .await
    }

    /// Decrypts one envelope and stores the result (session, contact,
    /// event) in one atomic write. Envelopes that cannot be opened are
    /// dropped (logged), since no retry can open them.
    async fn receive(&self, sequence: u64, envelope: &[u8]) -> Result<Option<Event>> {
        let _ = sequence;
        let opened = match sealed_sender::open(&self.identity, envelope) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "dropping an envelope that does not open");
                return Ok(None);
            }
        };
        let from = *opened.sender.address().as_bytes();
        let mut core = self.core.lock().await;
        let mut removes = Vec::new();
        let existing = self.load_session(&from)?;
        let decrypted = if InitialMessage::is_initial(&opened.message) {
            let initial = InitialMessage::decode(&opened.message)
                .map_err(|e| Error::Undecryptable(e.to_string()))?;
            match existing.filter(|s| s.base_key() == initial.base_key()) {
                Some(mut s) => s.decrypt(&opened.message).map(|p| (s, p)),
                None => {
                    let spk_bytes = self
                        .vault
                        .get(format!("spk/{}", initial.signed_prekey_id()).as_bytes())?
                        .ok_or_else(|| Error::Undecryptable("unknown signed prekey".into()))?;
                    let spk =
                        SignedPreKeyPair::from_secret_bytes(&spk_bytes, self.identity.public())
                            .map_err(|_| Error::StorageLocked)?;
                    let otk = match initial.one_time_prekey_id() {
                        Some(id) => {
                            let bytes = self.vault.get(&otk_name(id))?;
                            removes.push(otk_name(id));
                            bytes.and_then(|b| OneTimePreKeyPair::from_secret_bytes(&b).ok())
                        }
                        None => None,
                    };
                    x3dh::accept(&self.identity, &spk, otk.as_ref(), &opened.sender, &initial)
                }
            }
        } else {
            match existing {
                Some(mut s) => s.decrypt(&opened.message).map(|p| (s, p)),
                None => {
                    tracing::warn!("dropping a message for which there is no session");
                    return Ok(None);
                }
            }
        };
        let (session, plaintext) = match decrypted {
            Ok(x) => x,
            Err(e) => {
                // Duplicates (a crash between storing and acknowledging)
                // and forgeries end here; neither reaches the app.
                tracing::debug!(error = %e, "message not delivered");
                return Ok(None);
            }
        };
        let plaintext = zeroize::Zeroizing::new(plaintext);
        let message = match content::decode(&plaintext) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "dropping malformed content");
                return Ok(None);
            }
        };
        let Some(body) = message.body.clone() else {
            return Ok(None);
        };
        let id = MessageId::from_slice(&message.message_id)
            .ok_or_else(|| Error::Undecryptable("bad id".into()))?;

        // The contact: known, new, or with a changed key.
        let sender_bytes = opened.sender.to_bytes().to_vec();
        let contact = core.contacts.entry(from).or_insert_with(|| ContactRecord {
            address: from,
            name: String::new(),
            identity: sender_bytes.clone(),
            verified: false,
            pending_identity: None,
        });
        if contact.identity != sender_bytes {
            contact.pending_identity = Some(sender_bytes);
        }
        if let Body::InviteAccepted(accepted) = &body {
            if let Ok(nonce) = <[u8; 16]>::try_from(accepted.invite_nonce.as_slice()) {
                if let Some(expiry) = self.vault.get(&invite_name(&nonce))? {
                    let expires =
                        u64::from_be_bytes(expiry.as_slice().try_into().unwrap_or_default());
                    if (now_ms() / 1000) as u64 <= expires {
                        contact.verified = true;
                    }
                }
            }
            if contact.name.is_empty() {
                contact.name = accepted.display_name.chars().take(100).collect();
            }
        }
        let from_name = contact.name.clone();
        let stored = StoredEvent {
            id: id.0,
            from,
            sent_at_ms: message.sent_at_ms,
            content: plaintext.to_vec(),
        };
        let list: Vec<ContactRecord> = core.contacts.values().cloned().collect();
        let mut puts = vec![
            (
                self.vault.hashed_name("session", &from),
                session.to_bytes().to_vec(),
            ),
            (inbox_name(&id.0), ser(&stored)),
            (CONTACTS.to_vec(), ser(&list)),
        ];
        // Keep attachment pointers, so a file can be fetched later by id.
        for pointer in attachments_of(&body) {
            puts.push((
                attachment_name(&pointer.blob_id),
                prost::Message::encode_to_vec(pointer),
            ));
        }
        self.vault.commit(&puts, &removes)?;
        Ok(Some(Event {
            id,
            from: opened.sender.address(),
            from_name,
            sent_at_ms: message.sent_at_ms,
            body,
        }))
    }

    /// Events received but not yet confirmed by the app (oldest first by
    /// sender time). After a crash, this is where they are.
    pub async fn pending_events(&self) -> Result<Vec<Event>> {
        let core = self.core.lock().await;
        let mut out = Vec::new();
        for (_, value) in self.vault.scan(b"inbox/")? {
            let stored: StoredEvent = de(&value)?;
            let message = content::decode(&stored.content).map_err(|_| Error::StorageLocked)?;
            let Some(body) = message.body else { continue };
            out.push(Event {
                id: MessageId(stored.id),
                from: DeviceAddress::from_bytes(&stored.from).map_err(|_| Error::StorageLocked)?,
                from_name: core
                    .contacts
                    .get(&stored.from)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                sent_at_ms: stored.sent_at_ms,
                body,
            });
        }
        out.sort_by_key(|e| e.sent_at_ms);
        Ok(out)
    }

    /// A received attachment's pointer, by its blob id (as shown with the
    /// message that carried it), for [`Client::download_file`].
    pub async fn attachment(&self, blob_id: &[u8]) -> Result<Option<AttachmentPointer>> {
        match self.vault.get(&attachment_name(blob_id))? {
            Some(bytes) => Ok(Some(
                prost::Message::decode(bytes.as_slice()).map_err(|_| Error::StorageLocked)?,
            )),
            None => Ok(None),
        }
    }

    /// The app has stored or shown `event`: remove it from the inbox.
    pub async fn confirm(&self, event: &Event) -> Result<()> {
        self.vault.commit(&[], &[inbox_name(&event.id.0)])
    }

    /// Replaces the signed prekey now. [`Client::sync`] does this by itself
    /// once the current one is [`SIGNED_PREKEY_LIFETIME`] old. The previous
    /// signed prekey is kept (for initial messages already on their way);
    /// older ones are deleted, which ends their forward-secrecy window.
    pub async fn rotate_signed_prekey(&self) -> Result<()> {
        let mut core = self.core.lock().await;
        let old_id = core.state.signed_prekey_id;
        let new_id = old_id.wrapping_add(1).max(1);
        let spk = SignedPreKeyPair::generate(
            &mut rand::rngs::OsRng,
            &self.identity,
            new_id,
            (now_ms() / 1000) as u64,
        );
        core.state.signed_prekey_id = new_id;
        let mut removes = Vec::new();
        if old_id > 1 {
            removes.push(format!("spk/{}", old_id - 1).into_bytes());
        }
        self.vault.commit(
            &[
                (
                    format!("spk/{new_id}").into_bytes(),
                    spk.to_secret_bytes().to_vec(),
                ),
                (STATE.to_vec(), ser(&core.state)),
            ],
            &removes,
        )?;
        let public = spk.public().to_bytes().to_vec();
        self.relay
            .call(&self.identity, |c, token| {
                let req = relay::authed(
                    &token,
                    alcove_api::v1::RotateSignedPreKeyRequest {
                        signed_prekey: public.clone(),
                    },
                );
                async move { c.keys().rotate_signed_pre_key(req).await.map(|_| ()) }
            })
            .await
    }

    /// Public encodings of the current and the previous signed prekey.
    async fn published_signed_prekeys(&self) -> Result<Vec<Vec<u8>>> {
        let id = self.core.lock().await.state.signed_prekey_id;
        let mut out = Vec::new();
        for id in [id, id.wrapping_sub(1)] {
            if let Some(bytes) = self.vault.get(format!("spk/{id}").as_bytes())? {
                let spk = SignedPreKeyPair::from_secret_bytes(&bytes, self.identity.public())
                    .map_err(|_| Error::StorageLocked)?;
                out.push(spk.public().to_bytes().to_vec());
            }
        }
        Ok(out)
    }

    async fn rotate_if_due(&self) -> Result<()> {
        let id = self.core.lock().await.state.signed_prekey_id;
        let Some(bytes) = self.vault.get(format!("spk/{id}").as_bytes())? else {
            return self.rotate_signed_prekey().await;
        };
        let spk = SignedPreKeyPair::from_secret_bytes(&bytes, self.identity.public())
            .map_err(|_| Error::StorageLocked)?;
        let age = ((now_ms() / 1000) as u64).saturating_sub(spk.public().created_at());
        if age >= SIGNED_PREKEY_LIFETIME.as_secs() {
            self.rotate_signed_prekey().await?;
        }
        Ok(())
    }

    async fn replenish_prekeys(&self) -> Result<()> {
        let left = self
            .relay
            .call(&self.identity, |c, token| {
                let req = relay::authed(&token, alcove_api::v1::CountPreKeysRequest {});
                async move {
                    c.keys()
                        .count_pre_keys(req)
                        .await
                        .map(|r| r.into_inner().one_time_prekeys)
                }
            })
            .await?;
        if left >= PREKEY_LOW_WATER {
            return Ok(());
        }
        let mut core = self.core.lock().await;
        let first = core.state.next_prekey_id;
        let keys: Vec<OneTimePreKeyPair> = (first..first + PREKEY_STOCK - left)
            .map(|i| OneTimePreKeyPair::generate(&mut rand::rngs::OsRng, i))
            .collect();
        core.state.next_prekey_id = first + PREKEY_STOCK - left;
        let mut puts: Vec<(Vec<u8>, Vec<u8>)> = keys
            .iter()
            .map(|k| (otk_name(k.id()), k.to_secret_bytes().to_vec()))
            .collect();
        puts.push((STATE.to_vec(), ser(&core.state)));
        self.vault.commit(&puts, &[])?;
        let publics: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| k.public().to_bytes().to_vec())
            .collect();
        self.relay
            .call(&self.identity, |c, token| {
                let req = relay::authed(
                    &token,
                    UploadOneTimePreKeysRequest {
                        one_time_prekeys: publics.clone(),
                    },
                );
                async move { c.keys().upload_one_time_pre_keys(req).await.map(|_| ()) }
            })
            .await
    }
}

impl Client {
    pub(crate) fn relay_clients(&self) -> relay::Clients {
        self.relay.clients()
    }

    /// A valid session token (logging in if needed).
    pub(crate) async fn token(&self) -> Result<String> {
        self.relay
            .call(&self.identity, |_, token| async move { Ok(token) })
            .await
    }
}

fn attachments_of(body: &Body) -> Vec<&AttachmentPointer> {
    match body {
        Body::Attachment(a) => vec![a],
        Body::HomeworkAssignment(h) => h.attachments.iter().collect(),
        Body::HomeworkSubmission(h) => h.attachments.iter().collect(),
        _ => vec![],
    }
}

fn attachment_name(blob_id: &[u8]) -> Vec<u8> {
    let mut n = b"attachment/".to_vec();
    n.extend_from_slice(blob_id);
    n
}

fn otk_name(id: u32) -> Vec<u8> {
    format!("otk/{id:010}").into_bytes()
}

fn invite_name(nonce: &[u8; 16]) -> Vec<u8> {
    let mut n = b"invite/".to_vec();
    n.extend_from_slice(nonce);
    n
}

fn inbox_name(id: &[u8; 16]) -> Vec<u8> {
    let mut n = b"inbox/".to_vec();
    n.extend_from_slice(id);
    n
}

fn outbox_name(id: &[u8; 16]) -> Vec<u8> {
    let mut n = b"outbox/".to_vec();
    n.extend_from_slice(id);
    n
}
