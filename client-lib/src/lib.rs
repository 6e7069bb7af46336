//! # alcove-client
//!
//! The SDK therapy apps embed. It does everything cryptographic on the
//! device — keys, sessions, sealing, attachment encryption — and talks to an
//! Alcove relay that only ever sees ciphertext. The app deals in contacts,
//! messages, homework and files.
//!
//! ```no_run
//! # async fn demo() -> Result<(), alcove_client::Error> {
//! use alcove_client::{Client, EventKind, Body};
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
//!     if let EventKind::Message { body: Body::Text(t), .. } = &event.kind {
//!         println!("{}: {}", event.contact_name, t.body);
//!     }
//!     therapist.confirm(&event).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Every received message is stored (encrypted) in the profile before the
//! relay is told to delete it, and stays in the profile's inbox until the
//! app calls [`Client::confirm`]: after a crash, [`Client::pending_events`]
//! hands back what the app had not confirmed. Each message event carries
//! the sender's stable [`MessageId`], so an app that saw an event just
//! before a crash can recognise it. What goes wrong is an event too:
//! a message that could not be delivered ([`EventKind::DeliveryFailed`]),
//! one that arrived but could not be decrypted or recovered
//! ([`EventKind::Undecryptable`]), a session started anew to recover
//! ([`EventKind::SessionReset`]), a message sent again on request
//! ([`EventKind::Resent`]). Nothing is dropped silently.
//!
//! The SDK's I/O sits behind three seams: the profile store
//! ([`ProfileStore`], sled by default), the clock ([`Clock`]), and the
//! relay connection ([`Transport`], a tonic channel over TCP by default),
//! all chosen through [`Profile`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "native")]
mod attachments;
mod availability;
mod clock;
mod contacts;
mod credentials;
mod delivery;
mod documents;
mod error;
mod groups;
mod history;
mod inbound;
mod outbound;
mod passphrase;
mod prekeys;
mod records;
mod relay;
mod sessions;
mod store;
mod transparency;
mod vault;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use tokio::sync::Mutex;

pub use alcove_keylog::{SignedTreeHead, TransparencyError};
pub use alcove_protocol::content::MessageId;
pub use alcove_protocol::content::{
    AttachmentPointer, Availability, Body, DeliveryReceipt, Feedback, HomeworkAssignment,
    HomeworkSubmission, OfficeHours, ReadReceipt, RecordSigning, Retention, Text,
};
pub use alcove_protocol::credential::{
    Claims as CredentialClaims, Credential, IssuerId, IssuerKey, Revocation,
};
pub use alcove_protocol::group::GroupId;
pub use alcove_protocol::transcript::{
    verify as verify_transcript, TranscriptError, TranscriptFile, Verified as VerifiedTranscript,
};
pub use alcove_protocol::DeviceAddress;
pub use availability::OutOfHoursNotice;
pub use clock::{format_utc, Clock, SystemClock};
pub use contacts::Contact;
#[cfg(feature = "native")]
pub use credentials::revoke_credential;
pub use credentials::{TrustedIssuer, VerifiedCredential};
pub use error::{CredentialProblem, Error, Result};
pub use groups::{
    GroupChange, GroupInfo, GroupMemberInfo, GROUP_CHAIN_MESSAGES, MAX_HELD_PER_SENDER,
};
pub use history::{Direction, HistoryItem};
pub use outbound::{MAX_DELIVERY_ATTEMPTS, RESEND_WINDOW};
pub use passphrase::{
    storage_key_from_passphrase, MIN_SALT_LEN, PASSPHRASE_MEMORY_KIB, PASSPHRASE_PASSES,
};
pub use prekeys::{MAX_PREKEYS_PER_DAY, SIGNED_PREKEY_LIFETIME, SIGNED_PREKEY_RETENTION};
pub use relay::{BoxError, Transport};
pub use sessions::MAX_ARCHIVED_SESSIONS;
#[cfg(feature = "native")]
pub use store::SledProfileStore;
pub use store::{ProfileStore, StoredRecord};
pub use transparency::{KeyLogStatus, SIGNED_PREKEY_MAX_AGE};

use contacts::ContactRecord;
use records::ProfileState;
use relay::Relay;
use vault::Vault;

/// Identifies an event in the profile's inbox; [`Client::confirm`] takes it
/// out. For a received message it is the message's [`MessageId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId(pub [u8; 16]);

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventId({})", MessageId(self.0).to_hex())
    }
}

/// Something that happened in a conversation, for the app to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Confirm with this ([`Client::confirm`]).
    pub event_id: EventId,
    /// The other side of the conversation: the sender of a message, the
    /// recipient of a message that failed or was re-sent.
    pub contact: DeviceAddress,
    /// The contact's display name as this device knows it.
    pub contact_name: String,
    /// For a message, the sender's clock when it was written; otherwise
    /// this device's clock when it happened. Ms since the Unix epoch.
    pub at_ms: i64,
    /// The group conversation this belongs to, if any (a group message, a
    /// member's submission to the therapist only, a membership change).
    pub group: Option<GroupId>,
    /// What happened.
    pub kind: EventKind,
}

/// What an [`Event`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A message from the contact (authenticated, decrypted).
    Message {
        /// The sender's id of this message (stable across retries).
        id: MessageId,
        /// What it says.
        body: Body,
    },
    /// A message from the contact could not be decrypted (this device lost
    /// or restored its state, or the sender's state was restored from an
    /// old copy). This device started a new session with the contact and
    /// asked for the message again; it arrives as a normal message, or as
    /// [`EventKind::Undecryptable`] if the sender no longer has it.
    SessionReset {
        /// Why the message could not be decrypted.
        reason: String,
    },
    /// The contact could not decrypt a message this device sent and asked
    /// for it again; it was sent again on a new session.
    Resent {
        /// The message sent again.
        id: MessageId,
    },
    /// A message this device sent will not be delivered: the relay refused
    /// it for good, it stayed undeliverable past the retry budget, or the
    /// recipient could not decrypt it and it was no longer kept for
    /// resending.
    DeliveryFailed {
        /// The message, when this device still knows which one it was.
        id: Option<MessageId>,
        /// Why.
        reason: String,
    },
    /// A message from the contact could not be decrypted and cannot be
    /// recovered.
    Undecryptable {
        /// Why.
        reason: String,
    },
    /// Someone accepted an invite that was already used up, unknown or
    /// expired: they are a contact, but not verified.
    InviteRefused {
        /// Why.
        reason: String,
    },
    /// This device just wrote to a clinician outside their office hours:
    /// show the notice (with the crisis text) now. Computed on the device
    /// from the clinician's last [`Availability`]; no server was asked.
    /// Given once per contact until the hours open again.
    OutOfHours(OutOfHoursNotice),
    /// A group's membership or title changed, this device was added to a
    /// group, or removed from one. Signed by one of the group's admins and
    /// checked on this device.
    GroupChanged(GroupChange),
}

impl Event {
    /// The message body, for message events.
    pub fn body(&self) -> Option<&Body> {
        match &self.kind {
            EventKind::Message { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The message id, for message events.
    pub fn message_id(&self) -> Option<MessageId> {
        match &self.kind {
            EventKind::Message { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// Where a profile lives, how the SDK tells time and how it reaches the
/// relay: the SDK's I/O seams. [`Client::create`] and [`Client::open`] use
/// sled in a directory, the system clock and TCP; [`Client::create_with`]
/// and [`Client::open_with`] take any [`ProfileStore`], [`Clock`] and
/// [`Transport`].
pub struct Profile {
    store: Box<dyn ProfileStore>,
    clock: Arc<dyn Clock>,
    transport: Option<Transport>,
    anonymous: Option<Transport>,
}

impl Profile {
    /// A profile in `store`, on the system clock.
    pub fn new(store: impl ProfileStore) -> Self {
        Self {
            store: Box::new(store),
            clock: Arc::new(SystemClock),
            transport: None,
            anonymous: None,
        }
    }

    /// The default: a sled store in `dir`.
    #[cfg(feature = "native")]
    pub fn on_disk(dir: &std::path::Path) -> Result<Self> {
        Ok(Self::new(SledProfileStore::open(dir)?))
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Reaches the relay through `transport` instead of a TCP channel to
    /// the profile's relay URL (which is still what invites name).
    ///
    /// Unidentified sends then share `transport` with the logged-in calls,
    /// and a relay can link them by connection; use
    /// [`Profile::with_transports`] to keep them apart.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Reaches the relay through `logged_in` for calls made as this device
    /// (fetching, acknowledging, keys) and through `anonymous` for sends
    /// and bundle fetches, which carry no login token. Give two transports
    /// that do not share a connection, so the relay cannot tie a send to
    /// the device by the connection it came on. (The default TCP transport
    /// does this by itself: two channels.)
    pub fn with_transports(mut self, logged_in: Transport, anonymous: Transport) -> Self {
        self.transport = Some(logged_in);
        self.anonymous = Some(anonymous);
        self
    }
}

/// A device profile connected to a relay.
pub struct Client {
    vault: Vault,
    clock: Arc<dyn Clock>,
    identity: Arc<IdentityKeyPair>,
    relay: Relay,
    core: Mutex<Core>,
    /// Serialises key-log checks, so heads are compared in order.
    transparency: Mutex<()>,
    /// Next outbox sequence (outbox records are named by it, in order).
    outbox_seq: AtomicU64,
    /// When the resend store was last pruned (ms).
    last_prune_ms: AtomicI64,
    /// Outbox failures not yet returned by `sync` or `events` (they are
    /// stored in the inbox too).
    notices: std::sync::Mutex<Vec<Event>>,
    /// Out-of-hours notices given: contact → the opening time they named,
    /// so one is given once per closed period.
    out_of_hours_shown: std::sync::Mutex<std::collections::HashMap<[u8; 32], i64>>,
    /// Recovery sessions started recently: contact → (base key, when).
    recovering: std::sync::Mutex<std::collections::HashMap<[u8; 32], RecoveryStart>>,
    /// Group rosters already verified, by their stored bytes.
    verified_rosters:
        std::sync::Mutex<std::collections::HashMap<Vec<u8>, alcove_protocol::group::Roster>>,
}

/// A session started to recover: its base key and when (ms).
type RecoveryStart = ([u8; 32], i64);

struct Core {
    state: ProfileState,
    contacts: std::collections::HashMap<[u8; 32], ContactRecord>,
    /// This device's delivery key and policy.
    own_delivery: delivery::OwnDelivery,
    /// The delivery key each contact gave this device.
    delivery_keys: delivery::ContactKeys,
}

/// The transports a profile chose: the logged-in one and the anonymous
/// one, by default two separate TCP channels to `url` (native builds).
fn transports_for(
    profile_transport: Option<Transport>,
    anonymous: Option<Transport>,
    url: &str,
) -> Result<(Transport, Transport)> {
    let anonymous = match (anonymous, &profile_transport) {
        (Some(a), _) => a,
        (None, Some(t)) => t.clone(),
        (None, None) => transport_for(None, url)?,
    };
    Ok((transport_for(profile_transport, url)?, anonymous))
}

/// The transport a profile chose, or TCP to `url` (native builds).
fn transport_for(chosen: Option<Transport>, url: &str) -> Result<Transport> {
    match chosen {
        Some(t) => Ok(t),
        #[cfg(feature = "native")]
        None => Transport::tcp(url),
        #[cfg(not(feature = "native"))]
        None => Err(Error::InvalidInput(format!(
            "no transport for {url}: this build has no TCP transport; use Profile::with_transport"
        ))),
    }
}

/// One-time prekeys published at registration and kept in stock.
const PREKEY_STOCK: u32 = 100;

impl Client {
    /// Creates a new profile in `dir`, protected by `storage_key`, and
    /// registers it with the relay at `relay_url` under `name`.
    ///
    /// All or nothing: the profile is written only after the relay accepted
    /// the registration, so a failed call (relay down, wrong URL) leaves
    /// nothing behind and can simply be repeated. A malformed URL is
    /// [`Error::InvalidRelayUrl`]; an unreachable relay is
    /// [`Error::Offline`].
    #[cfg(feature = "native")]
    pub async fn create(
        dir: &std::path::Path,
        storage_key: &[u8; 32],
        relay_url: &str,
        name: &str,
    ) -> Result<Self> {
        relay::parse_url(relay_url)?;
        let existed = dir.exists();
        let created =
            async { Self::create_with(Profile::on_disk(dir)?, storage_key, relay_url, name).await }
                .await;
        if created.is_err() && !existed {
            // The store is closed (dropped with the failed attempt): leave
            // nothing behind, so the same call can simply be repeated.
            let _ = std::fs::remove_dir_all(dir);
        }
        created
    }

    /// [`Client::create`] on any profile store and clock.
    pub async fn create_with(
        profile: Profile,
        storage_key: &[u8; 32],
        relay_url: &str,
        name: &str,
    ) -> Result<Self> {
        relay::parse_url(relay_url)?;
        let vault = Vault::open(profile.store, storage_key)?;
        if vault.get(records::IDENTITY)?.is_some() {
            return Err(Error::InvalidInput(
                "a profile already exists in this store; open it instead".into(),
            ));
        }
        let clock = profile.clock;
        let mut rng = rand::rngs::OsRng;
        let identity = Arc::new(IdentityKeyPair::generate(&mut rng));
        let now_secs = (clock.now_ms() / 1000).max(0) as u64;
        let spk = SignedPreKeyPair::generate(&mut rng, &identity, 1, now_secs);
        let otks: Vec<OneTimePreKeyPair> = (1..=PREKEY_STOCK)
            .map(|i| OneTimePreKeyPair::generate(&mut rng, &identity, i))
            .collect();
        let (transport, anonymous) =
            transports_for(profile.transport, profile.anonymous, relay_url)?;
        let relay = Relay::new(transport, anonymous, identity.clone(), None);
        let mut own_delivery = delivery::OwnDelivery::generate();
        // Register first: nothing is stored unless the relay accepted it.
        let server_id = relay
            .register(&spk, &otks, &own_delivery.key().verifier())
            .await?;
        own_delivery.published = true;
        let state = ProfileState {
            relay_url: relay_url.to_string(),
            server_id,
            name: name.to_string(),
            next_prekey_id: PREKEY_STOCK + 1,
            signed_prekey_id: 1,
            signed_prekey_unpublished: false,
            unpublished_prekeys: None,
            prekey_day: prekeys::day(clock.now_ms()),
            prekeys_generated_today: PREKEY_STOCK,
        };
        let mut puts = vec![
            (
                records::IDENTITY.to_vec(),
                identity.to_secret_bytes().to_vec(),
            ),
            (records::STATE.to_vec(), records::encode(&state)?),
            (records::spk(1), spk.to_secret_bytes().to_vec()),
            (
                records::CONTACTS.to_vec(),
                records::encode(&Vec::<ContactRecord>::new())?,
            ),
            own_delivery.record()?,
        ];
        for k in &otks {
            puts.push((records::otk(k.id()), k.to_secret_bytes().to_vec()));
        }
        vault.commit(puts, &[])?;
        let client = Self::assemble(
            vault,
            clock,
            identity,
            relay,
            state,
            Vec::new(),
            (own_delivery, Default::default()),
            0,
        );
        client.pin_log_key().await?;
        Ok(client)
    }

    /// Opens an existing profile. A wrong `storage_key` is
    /// [`Error::StorageLocked`], never garbage.
    #[cfg(feature = "native")]
    pub async fn open(dir: &std::path::Path, storage_key: &[u8; 32]) -> Result<Self> {
        if !dir.exists() {
            return Err(Error::InvalidInput(format!(
                "no profile in {}",
                dir.display()
            )));
        }
        Self::open_with(Profile::on_disk(dir)?, storage_key).await
    }

    /// [`Client::open`] on any profile store and clock.
    pub async fn open_with(profile: Profile, storage_key: &[u8; 32]) -> Result<Self> {
        let vault = Vault::open(profile.store, storage_key)?;
        let secret = vault
            .get(records::IDENTITY)?
            .ok_or_else(|| Error::InvalidInput("no profile in this store".into()))?;
        let identity = Arc::new(
            IdentityKeyPair::from_secret_bytes(&secret)
                .map_err(|_| Error::ProfileCorrupt("identity record".into()))?,
        );
        let state: ProfileState = records::decode(
            "state",
            &vault
                .get(records::STATE)?
                .ok_or_else(|| Error::ProfileCorrupt("the state record is missing".into()))?,
        )?;
        let contacts: Vec<ContactRecord> = records::decode(
            "contacts",
            &vault
                .get(records::CONTACTS)?
                .ok_or_else(|| Error::ProfileCorrupt("the contacts record is missing".into()))?,
        )?;
        let next_outbox = vault
            .scan(records::OUTBOX)?
            .last()
            .map_or(0, |(name, _)| records::outbox_sequence(name) + 1);
        let (transport, anonymous) =
            transports_for(profile.transport, profile.anonymous, &state.relay_url)?;
        let relay = Relay::new(
            transport,
            anonymous,
            identity.clone(),
            Some(state.server_id.clone()),
        );
        let delivery = delivery::load(&vault)?;
        Ok(Self::assemble(
            vault,
            profile.clock,
            identity,
            relay,
            state,
            contacts,
            delivery,
            next_outbox,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        vault: Vault,
        clock: Arc<dyn Clock>,
        identity: Arc<IdentityKeyPair>,
        relay: Relay,
        state: ProfileState,
        contacts: Vec<ContactRecord>,
        (own_delivery, delivery_keys): (delivery::OwnDelivery, delivery::ContactKeys),
        next_outbox: u64,
    ) -> Self {
        Self {
            vault,
            clock,
            identity,
            relay,
            core: Mutex::new(Core {
                state,
                contacts: contacts.into_iter().map(|c| (c.address, c)).collect(),
                own_delivery,
                delivery_keys,
            }),
            transparency: Mutex::new(()),
            outbox_seq: AtomicU64::new(next_outbox),
            last_prune_ms: AtomicI64::new(0),
            notices: std::sync::Mutex::new(Vec::new()),
            out_of_hours_shown: std::sync::Mutex::new(std::collections::HashMap::new()),
            recovering: std::sync::Mutex::new(std::collections::HashMap::new()),
            verified_rosters: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// This device's address.
    pub fn address(&self) -> DeviceAddress {
        self.identity.public().address()
    }

    /// This profile's display name.
    pub async fn name(&self) -> String {
        self.core.lock().await.state.name.clone()
    }

    /// The relay URL this profile is registered with.
    pub async fn relay_url(&self) -> String {
        self.core.lock().await.state.relay_url.clone()
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn now_secs(&self) -> u64 {
        (self.now_ms() / 1000).max(0) as u64
    }

    fn next_outbox_sequence(&self) -> u64 {
        self.outbox_seq.fetch_add(1, Ordering::SeqCst)
    }
}
