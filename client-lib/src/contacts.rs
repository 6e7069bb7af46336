//! Contacts, safety numbers, verification, key changes, and invites.

use std::time::Duration;

use alcove_protocol::content::{self, Body};
use alcove_protocol::fingerprint::SafetyNumber;
use alcove_protocol::invite::Invite;
use alcove_protocol::x3dh;
use alcove_protocol::{DeviceAddress, PublicIdentity};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::records;
use crate::{Client, Core};

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

#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct ContactRecord {
    pub address: [u8; 32],
    pub name: String,
    pub identity: Vec<u8>,
    pub verified: bool,
    pub pending_identity: Option<Vec<u8>>,
}

/// An open invite, stored under an HMAC of its nonce.
#[derive(Serialize, Deserialize)]
struct InviteRecord {
    expires_at: u64,
    uses_left: u32,
}

/// The shortest validity an invite may be created with.
const MIN_INVITE_VALIDITY: Duration = Duration::from_secs(60);

pub(crate) fn unknown(address: &[u8; 32]) -> Error {
    Error::UnknownContact(
        DeviceAddress::from_bytes(address)
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "(invalid address)".into()),
    )
}

impl Core {
    pub(crate) fn contact(&self, address: &[u8; 32]) -> Result<&ContactRecord> {
        self.contacts.get(address).ok_or_else(|| unknown(address))
    }

    pub(crate) fn contact_mut(&mut self, address: &[u8; 32]) -> Result<&mut ContactRecord> {
        self.contacts
            .get_mut(address)
            .ok_or_else(|| unknown(address))
    }

    /// The contact record, created unverified for a sender seen for the
    /// first time; a different identity than the known one is recorded as
    /// a pending key change.
    pub(crate) fn observe_sender(&mut self, sender: &PublicIdentity) -> &mut ContactRecord {
        let address = *sender.address().as_bytes();
        let bytes = sender.to_bytes().to_vec();
        let contact = self
            .contacts
            .entry(address)
            .or_insert_with(|| ContactRecord {
                address,
                name: String::new(),
                identity: bytes.clone(),
                verified: false,
                pending_identity: None,
            });
        if contact.identity != bytes {
            contact.pending_identity = Some(bytes);
        }
        contact
    }

    pub(crate) fn name_of(&self, address: &[u8; 32]) -> String {
        self.contacts
            .get(address)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    }

    /// The contacts record, for a commit.
    pub(crate) fn contacts_record(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let list: Vec<&ContactRecord> = self.contacts.values().collect();
        Ok((records::CONTACTS.to_vec(), records::encode(&list)?))
    }
}

impl Client {
    /// Creates a single-use invite link (for a QR code) valid for
    /// `valid_for` (at least a minute).
    pub async fn create_invite(&self, valid_for: Duration) -> Result<String> {
        self.create_invite_for(valid_for, 1).await
    }

    /// Creates an invite that `uses` people may accept (a group's intake
    /// link, say) within `valid_for`. Each acceptance past the last use, or
    /// after expiry, is reported as [`crate::EventKind::InviteRefused`] and
    /// leaves the new contact unverified.
    pub async fn create_invite_for(&self, valid_for: Duration, uses: u32) -> Result<String> {
        if valid_for < MIN_INVITE_VALIDITY {
            return Err(Error::InvalidInput(format!(
                "an invite must be valid for at least {} seconds",
                MIN_INVITE_VALIDITY.as_secs()
            )));
        }
        if uses == 0 {
            return Err(Error::InvalidInput(
                "an invite must allow at least one use".into(),
            ));
        }
        let core = self.core.lock().await;
        let expires = self.now_secs().saturating_add(valid_for.as_secs());
        let invite = Invite::new(
            &mut rand::rngs::OsRng,
            self.identity.public(),
            &core.state.relay_url,
            expires,
        )?
        .with_delivery_key(core.own_delivery.key());
        let record = InviteRecord {
            expires_at: expires,
            uses_left: uses,
        };
        self.vault.commit(
            vec![(
                self.vault.hashed_name(records::INVITE, &invite.nonce),
                records::encode(&record)?,
            )],
            &[],
        )?;
        Ok(invite.to_link())
    }

    /// Spends one use of the invite `nonce`, if it is open. Returns why it
    /// is refused otherwise. The record change goes into `puts`/`removes`
    /// so it commits with the message that spent it.
    pub(crate) fn spend_invite(
        &self,
        nonce: &[u8],
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        removes: &mut Vec<Vec<u8>>,
    ) -> Result<std::result::Result<(), String>> {
        let name = self.vault.hashed_name(records::INVITE, nonce);
        let Some(bytes) = self.vault.get(&name)? else {
            return Ok(Err(
                "the invite is unknown or already used up on this device".into(),
            ));
        };
        let mut record: InviteRecord = records::decode("invite", &bytes)?;
        if self.now_secs() >= record.expires_at {
            removes.push(name);
            return Ok(Err(format!(
                "the invite expired at {} UTC",
                crate::clock::format_utc(record.expires_at)
            )));
        }
        record.uses_left = record.uses_left.saturating_sub(1);
        if record.uses_left == 0 {
            removes.push(name);
        } else {
            puts.push((name, records::encode(&record)?));
        }
        Ok(Ok(()))
    }

    /// Accepts an invite: fetches the inviter's keys from the relay, checks
    /// them against the invite (a relay that substitutes keys is caught
    /// here), opens a session and introduces this device.
    ///
    /// An expired invite is [`Error::InviteExpired`]; an invite for another
    /// relay than this profile's is [`Error::InvalidInput`] naming both.
    pub async fn accept_invite(&self, link: &str) -> Result<Contact> {
        let invite = Invite::decode(link.trim())?;
        let own_url = self.relay_url().await;
        if !same_relay(&invite.relay_url, &own_url) {
            return Err(Error::InvalidInput(format!(
                "the invite is for the relay at {}, but this profile uses {}; \
                 create a profile on that relay to accept it",
                invite.relay_url, own_url
            )));
        }
        if self.now_secs() >= invite.expires_at {
            return Err(Error::InviteExpired {
                expired_at: invite.expires_at,
            });
        }
        let access_key = invite.delivery_key.as_ref().map(|k| *k.as_bytes());
        let bundle = self
            .fetch_bundle(invite.address.as_bytes(), access_key)
            .await?;
        invite.verify(bundle.identity(), self.now_secs())?;
        let address = *invite.address.as_bytes();
        let mut core = self.core.lock().await;
        if let Some(key) = &invite.delivery_key {
            if let Some(record) = core.learn_access_key(&address, key.as_bytes())? {
                self.vault.commit(vec![record], &[])?;
            }
        }
        core.contacts.insert(
            address,
            ContactRecord {
                address,
                name: String::new(),
                identity: bundle.identity().to_bytes().to_vec(),
                verified: true,
                pending_identity: None,
            },
        );
        let session = x3dh::initiate(&mut rand::rngs::OsRng, &self.identity, &bundle)
            .map_err(|e| Error::VerificationFailed(e.to_string()))?;
        let hello = Body::InviteAccepted(content::InviteAccepted {
            invite_nonce: invite.nonce.to_vec(),
            display_name: core.state.name.clone(),
        });
        match self
            .send_body(&mut core, &address, Some(session), hello, false)
            .await
        {
            Ok(_) | Err(Error::Offline(_)) | Err(Error::Busy(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(self.public_contact(core.contact(&address)?))
    }

    /// All contacts, by name.
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
        Ok(self.public_contact(core.contact(address.as_bytes())?))
    }

    pub(crate) fn public_contact(&self, c: &ContactRecord) -> Contact {
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
        core.contact_mut(address.as_bytes())?.verified = true;
        self.vault.commit(vec![core.contacts_record()?], &[])
    }

    /// Accepts a contact's new identity key (after the users re-verified
    /// it). The contact stays unverified until [`Client::mark_verified`];
    /// the next message starts a new session under the new key.
    pub async fn accept_key_change(&self, address: &DeviceAddress) -> Result<()> {
        let mut core = self.core.lock().await;
        let c = core.contact_mut(address.as_bytes())?;
        if let Some(new) = c.pending_identity.take() {
            c.identity = new;
            c.verified = false;
        }
        let name = self.vault.hashed_name(records::SESSION, address.as_bytes());
        self.vault.commit(vec![core.contacts_record()?], &[name])
    }

    /// Renames a contact.
    pub async fn rename_contact(&self, address: &DeviceAddress, name: &str) -> Result<()> {
        let mut core = self.core.lock().await;
        core.contact_mut(address.as_bytes())?.name = name.to_string();
        self.vault.commit(vec![core.contacts_record()?], &[])
    }
}

/// Two relay URLs name the same relay (ignoring a trailing slash and the
/// case of scheme and host).
fn same_relay(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    norm(a) == norm(b)
}
