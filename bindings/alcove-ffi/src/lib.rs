//! # alcove-ffi
//!
//! The Alcove SDK ([`alcove_client`]) for Python, Kotlin and Swift, through
//! UniFFI. Everything an app needs, in types every language can hold:
//! addresses and ids are strings in the CLI's encodings (base64url device
//! addresses, hex message and blob ids), content is records and enums,
//! errors are one flat enum with a `retryable` flag. Async methods run on
//! tokio. Live events arrive through a listener the app implements; the
//! [`Subscription`] it returns cancels them.
//!
//! No field is named `from` (Python would turn it into `_from`): events name
//! the other side `contact`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alcove_client as sdk;
use futures::StreamExt;

uniffi::setup_scaffolding!();

/// What went wrong. Every variant carries a human-readable `reason` and
/// whether retrying the same call later may succeed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum AlcoveError {
    /// The relay could not be reached, is busy, or the recipient's mailbox
    /// is full. Queued messages stay queued.
    #[error("{reason}")]
    Offline {
        /// What happened, for people.
        reason: String,
        /// Always true.
        retryable: bool,
    },
    /// The relay refused this device, or is not the relay this profile
    /// registered with.
    #[error("{reason}")]
    NotAuthorized {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
    /// The storage key is wrong.
    #[error("{reason}")]
    StorageLocked {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
    /// The profile is damaged, or local storage failed.
    #[error("{reason}")]
    Storage {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
    /// The contact's identity key changed; verify it, then accept it.
    #[error("{reason}")]
    ContactKeyChanged {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
    /// Keys or the key log did not verify: evidence against the relay.
    #[error("{reason}")]
    VerificationFailed {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
    /// A limit was hit (a message larger than the relay accepts).
    #[error("{reason}")]
    LimitExceeded {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
    /// Bad input: a malformed address, id, URL or invite, an unknown
    /// contact, a wrong key length, a missing file, an expired invite.
    #[error("{reason}")]
    InvalidInput {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
    /// A clinician's credential did not verify: do not show the contact
    /// as licensed. `problem` names the case: not_presented, forged,
    /// untrusted_issuer, wrong_identity, expired, revoked, not_committed.
    #[error("{reason}")]
    CredentialRefused {
        /// What happened, for people.
        reason: String,
        /// Which check failed.
        problem: String,
        /// Always false.
        retryable: bool,
    },
    /// The client was closed.
    #[error("{reason}")]
    Closed {
        /// What happened, for people.
        reason: String,
        /// Always false.
        retryable: bool,
    },
}

impl From<sdk::Error> for AlcoveError {
    fn from(e: sdk::Error) -> Self {
        let retryable = e.is_retryable();
        let message = e.to_string();
        use sdk::Error as E;
        match e {
            E::Offline(_) | E::Busy(_) | E::NotAccepted(_) => AlcoveError::Offline {
                reason: message,
                retryable,
            },
            E::NotAuthorized(_) | E::WrongRelay { .. } => AlcoveError::NotAuthorized {
                reason: message,
                retryable,
            },
            E::StorageLocked => AlcoveError::StorageLocked {
                reason: message,
                retryable,
            },
            E::ProfileCorrupt(_) | E::Storage(_) => AlcoveError::Storage {
                reason: message,
                retryable,
            },
            E::ContactKeyChanged => AlcoveError::ContactKeyChanged {
                reason: message,
                retryable,
            },
            E::VerificationFailed(_) | E::KeyTransparency(_) | E::StaleSignedPreKey { .. } => {
                AlcoveError::VerificationFailed {
                    reason: message,
                    retryable,
                }
            }
            E::Credential(p) => AlcoveError::CredentialRefused {
                reason: message,
                problem: match p {
                    sdk::CredentialProblem::NotPresented => "not_presented",
                    sdk::CredentialProblem::Forged => "forged",
                    sdk::CredentialProblem::UntrustedIssuer { .. } => "untrusted_issuer",
                    sdk::CredentialProblem::WrongIdentity => "wrong_identity",
                    sdk::CredentialProblem::Expired { .. } => "expired",
                    sdk::CredentialProblem::Revoked { .. } => "revoked",
                    sdk::CredentialProblem::NotCommitted => "not_committed",
                }
                .into(),
                retryable,
            },
            E::LimitExceeded(_) | E::SessionExhausted => AlcoveError::LimitExceeded {
                reason: message,
                retryable,
            },
            _ => AlcoveError::InvalidInput {
                reason: message,
                retryable,
            },
        }
    }
}

fn invalid(message: impl Into<String>) -> AlcoveError {
    AlcoveError::InvalidInput {
        reason: message.into(),
        retryable: false,
    }
}

type Result<T> = std::result::Result<T, AlcoveError>;

/// The runtime every SDK call runs on. A call's whole future (its many
/// network wake-ups) runs on these threads, and the foreign side is woken
/// once, when the call completes: polling the SDK's futures from Python's
/// event loop cost a thread hop per wake-up (see docs/benchmarks.md).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("alcove")
            .enable_all()
            .build()
            .expect("the SDK's tokio runtime starts")
    })
}

/// Runs `call` on [`runtime`] and waits for it.
async fn on_runtime<T: Send + 'static>(
    call: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    runtime().spawn(call).await.unwrap_or_else(|e| {
        Err(AlcoveError::Storage {
            reason: format!("the SDK call did not complete: {e}"),
            retryable: false,
        })
    })
}

fn address(text: &str) -> Result<sdk::DeviceAddress> {
    text.parse()
        .map_err(|e| invalid(format!("not a device address {text:?}: {e}")))
}

fn message_id(text: &str) -> Result<sdk::MessageId> {
    hex::decode(text)
        .ok()
        .and_then(|b| sdk::MessageId::from_slice(&b))
        .ok_or_else(|| invalid(format!("not a message id (32 hex digits): {text:?}")))
}

fn key32(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes.try_into().map_err(|_| {
        invalid(format!(
            "the storage key must be 32 bytes, got {}",
            bytes.len()
        ))
    })
}

/// An issuer the app trusts (`docs/therapy.md`).
#[derive(uniffi::Record)]
pub struct TrustedIssuer {
    /// Shown as "licensed, verified by <name>".
    pub name: String,
    /// The issuer's 32-byte Ed25519 public key.
    pub key: Vec<u8>,
}

/// A clinician's credential that passed every check.
#[derive(uniffi::Record)]
pub struct VerifiedCredential {
    /// The clinician's name as the issuer wrote it.
    pub display_name: String,
    /// Licence or registration number.
    pub licence_number: String,
    /// Where the licence holds.
    pub jurisdiction: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The trusted issuer's name.
    pub issuer_name: String,
    /// "licensed, verified by <issuer name>".
    pub badge: String,
}

/// One weekly window of office hours, in the clinician's local time.
#[derive(uniffi::Record)]
pub struct OfficeHours {
    /// 1 (Monday) to 7 (Sunday).
    pub weekday: u32,
    /// Minutes after local midnight.
    pub start_minute: u32,
    /// Minutes after local midnight, after the start, at most 1440.
    pub end_minute: u32,
}

/// A clinician's office hours, usual reply time and crisis text.
#[derive(uniffi::Record)]
pub struct Availability {
    /// Local time as minutes east of UTC (-720 to 840).
    pub utc_offset_minutes: i32,
    /// Weekly office hours; empty: none.
    pub hours: Vec<OfficeHours>,
    /// Usual reply time in hours (0: not said).
    pub reply_within_hours: u32,
    /// What to do in a crisis.
    pub crisis_text: String,
}

/// What to show when writing to a clinician outside office hours.
#[derive(uniffi::Record)]
pub struct OutOfHoursNotice {
    /// The clinician's crisis text; may be empty.
    pub crisis_text: String,
    /// Usual reply time in hours (0: not said).
    pub reply_within_hours: u32,
    /// When office hours next begin, ms since the Unix epoch.
    pub next_opening_ms: Option<i64>,
    /// The SDK's wording of the whole notice.
    pub text: String,
}

/// A group as this device knows it (docs/groups.md).
#[derive(uniffi::Record)]
pub struct GroupInfo {
    /// The group id (hex).
    pub id: String,
    /// Its title.
    pub title: String,
    /// The roster epoch.
    pub epoch: u64,
    /// Admins' addresses (base64url).
    pub admins: Vec<String>,
    /// Members, admins included: (address, name).
    pub members: Vec<GroupMember>,
    /// This device is an admin.
    pub is_admin: bool,
    /// This device was removed or left.
    pub removed: bool,
}

/// A member of a group.
#[derive(uniffi::Record)]
pub struct GroupMember {
    /// Their address (base64url).
    pub address: String,
    /// The name the admin gave them.
    pub name: String,
}

impl From<sdk::GroupInfo> for GroupInfo {
    fn from(g: sdk::GroupInfo) -> Self {
        Self {
            id: g.id.to_hex(),
            title: g.title,
            epoch: g.epoch,
            admins: g.admins.iter().map(|a| a.to_string()).collect(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    address: m.address.to_string(),
                    name: m.name,
                })
                .collect(),
            is_admin: g.is_admin,
            removed: g.removed,
        }
    }
}

fn group_id(text: &str) -> Result<sdk::GroupId> {
    sdk::GroupId::from_hex(text)
        .map_err(|_| invalid(format!("not a group id (64 hex digits): {text:?}")))
}

fn addresses(list: &[String]) -> Result<Vec<sdk::DeviceAddress>> {
    list.iter().map(|a| address(a)).collect()
}

/// A contact, as this device knows them.
#[derive(uniffi::Record)]
pub struct Contact {
    /// Their device address (base64url).
    pub address: String,
    /// How the app shows them.
    pub name: String,
    /// The 60-digit safety number both sides compare.
    pub safety_number: String,
    /// Verified through an invite or by the users.
    pub verified: bool,
    /// Their identity key changed since it was verified; sending is held.
    pub key_changed: bool,
}

impl From<sdk::Contact> for Contact {
    fn from(c: sdk::Contact) -> Self {
        Self {
            address: c.address.to_string(),
            name: c.name,
            safety_number: c.safety_number,
            verified: c.verified,
            key_changed: c.key_changed,
        }
    }
}

/// An uploaded document: what a message carries to let its recipient
/// download and decrypt it. Holds the file's key: keep it as secret as the
/// message itself.
#[derive(uniffi::Record, Clone)]
pub struct Attachment {
    /// The relay's id of the encrypted blob (hex).
    pub blob_id: String,
    /// The file's 32-byte key.
    pub key: Vec<u8>,
    /// SHA-256 of the encrypted blob.
    pub digest: Vec<u8>,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Suggested file name (display only).
    pub file_name: String,
}

impl From<&sdk::AttachmentPointer> for Attachment {
    fn from(p: &sdk::AttachmentPointer) -> Self {
        Self {
            blob_id: hex::encode(&p.blob_id),
            key: p.key.clone(),
            digest: p.digest.clone(),
            size: p.size,
            media_type: p.media_type.clone(),
            file_name: p.file_name.clone(),
        }
    }
}

impl TryFrom<Attachment> for sdk::AttachmentPointer {
    type Error = AlcoveError;
    fn try_from(a: Attachment) -> Result<Self> {
        Ok(Self {
            blob_id: hex::decode(&a.blob_id)
                .map_err(|_| invalid(format!("not a blob id (hex): {:?}", a.blob_id)))?,
            key: a.key,
            digest: a.digest,
            size: a.size,
            media_type: a.media_type,
            file_name: a.file_name,
        })
    }
}

fn pointers(list: Vec<Attachment>) -> Result<Vec<sdk::AttachmentPointer>> {
    list.into_iter().map(TryInto::try_into).collect()
}

/// What happened, for the app to show.
#[derive(uniffi::Enum)]
pub enum EventKind {
    /// A chat message.
    Text {
        /// The text.
        body: String,
        /// The message it replies to (hex id), if any.
        reply_to: Option<String>,
    },
    /// A homework assignment.
    HomeworkAssignment {
        /// Title.
        title: String,
        /// What to do.
        instructions: String,
        /// Due date, `YYYY-MM-DD`, if any.
        due_date: Option<String>,
        /// Worksheets.
        attachments: Vec<Attachment>,
    },
    /// Homework handed in.
    HomeworkSubmission {
        /// The assignment's message id (hex).
        assignment_id: String,
        /// The answer.
        body: String,
        /// Completed worksheets.
        attachments: Vec<Attachment>,
    },
    /// Feedback on an earlier message.
    Feedback {
        /// The message it refers to (hex id).
        refers_to: String,
        /// The feedback.
        body: String,
    },
    /// A document on its own.
    Document {
        /// The document.
        attachment: Attachment,
    },
    /// The contact read these messages.
    ReadReceipt {
        /// Message ids (hex).
        message_ids: Vec<String>,
    },
    /// The contact's device received these messages.
    DeliveryReceipt {
        /// Message ids (hex).
        message_ids: Vec<String>,
    },
    /// The contact accepted this device's invite.
    InviteAccepted {
        /// The name they gave.
        display_name: String,
    },
    /// Someone accepted an invite that was used up, unknown or expired.
    InviteRefused {
        /// Why.
        reason: String,
    },
    /// The contact turned verifiable records on or off for what they
    /// write (their messages can then be proven to others).
    VerifiableRecords {
        /// On or off.
        enabled: bool,
    },
    /// The contact set disappearing messages for the conversation.
    Disappearing {
        /// The period in seconds; 0: off.
        seconds: u64,
    },
    /// This device wrote to a clinician outside their office hours: show
    /// the notice and the crisis text now (computed on the device).
    OutOfHours {
        /// The clinician's crisis text; may be empty.
        crisis_text: String,
        /// Usual reply time in hours (0: not said).
        reply_within_hours: u32,
        /// When office hours next begin, ms since the Unix epoch.
        next_opening_ms: Option<i64>,
    },
    /// A message from the contact did not decrypt; it was asked for again.
    SessionReset {
        /// Why.
        reason: String,
    },
    /// A message this device sent was sent again at the contact's request.
    Resent {
        /// The message (hex id).
        message_id: String,
    },
    /// A message this device sent will not be delivered.
    DeliveryFailed {
        /// The message (hex id), when known.
        message_id: Option<String>,
        /// Why.
        reason: String,
    },
    /// A message from the contact could not be decrypted or recovered.
    Undecryptable {
        /// Why.
        reason: String,
    },
    /// A group's membership or title changed, or this device was added
    /// to a group or removed from one (signed by a group admin).
    GroupChanged {
        /// The group id (hex).
        group: String,
        /// Its title.
        title: String,
        /// The roster epoch.
        epoch: u64,
        /// Members who joined (base64url addresses).
        added: Vec<String>,
        /// Members who left or were removed.
        removed: Vec<String>,
        /// This device was removed.
        removed_me: bool,
    },
}

/// An event: a message or a notice about the conversation with `contact`.
#[derive(uniffi::Record)]
pub struct Event {
    /// Confirm with this ([`AlcoveClient::confirm`]); hex.
    pub event_id: String,
    /// For a message, its id (hex), stable across retries.
    pub message_id: Option<String>,
    /// The other side (base64url address).
    pub contact: String,
    /// Their display name.
    pub contact_name: String,
    /// Sender's clock for messages, this device's for notices (ms).
    pub at_ms: i64,
    /// The group conversation this belongs to (hex id), if any.
    pub group: Option<String>,
    /// What happened.
    pub kind: EventKind,
}

fn hexes(ids: &[Vec<u8>]) -> Vec<String> {
    ids.iter().map(hex::encode).collect()
}

fn opt_hex(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| hex::encode(bytes))
}

impl From<sdk::Event> for Event {
    fn from(e: sdk::Event) -> Self {
        use sdk::{Body, EventKind as K};
        let message_id = e.message_id().map(|i| i.to_hex());
        let kind = match e.kind {
            K::Message { body, .. } => match body {
                Body::Text(t) => EventKind::Text {
                    body: t.body,
                    reply_to: opt_hex(&t.reply_to),
                },
                Body::HomeworkAssignment(a) => EventKind::HomeworkAssignment {
                    title: a.title,
                    instructions: a.instructions,
                    due_date: (!a.due_date.is_empty()).then_some(a.due_date),
                    attachments: a.attachments.iter().map(Attachment::from).collect(),
                },
                Body::HomeworkSubmission(s) => EventKind::HomeworkSubmission {
                    assignment_id: hex::encode(&s.assignment_id),
                    body: s.body,
                    attachments: s.attachments.iter().map(Attachment::from).collect(),
                },
                Body::Feedback(f) => EventKind::Feedback {
                    refers_to: hex::encode(&f.refers_to),
                    body: f.body,
                },
                Body::Attachment(a) => EventKind::Document {
                    attachment: Attachment::from(&a),
                },
                Body::ReadReceipt(r) => EventKind::ReadReceipt {
                    message_ids: hexes(&r.message_ids),
                },
                Body::DeliveryReceipt(r) => EventKind::DeliveryReceipt {
                    message_ids: hexes(&r.message_ids),
                },
                Body::InviteAccepted(i) => EventKind::InviteAccepted {
                    display_name: i.display_name,
                },
                Body::RecordSigning(r) => EventKind::VerifiableRecords { enabled: r.enabled },
                Body::Retention(r) => EventKind::Disappearing { seconds: r.seconds },
                // Handled inside the SDK; never a message event.
                Body::RetryRequest(_)
                | Body::RetryUnavailable(_)
                | Body::DeliveryKeyChanged(_)
                | Body::CredentialPresentation(_)
                | Body::Availability(_)
                | Body::GroupUpdate(_)
                | Body::GroupSenderKey(_)
                | Body::GroupKeyUpdate(_)
                | Body::GroupLeave(_) => EventKind::Undecryptable {
                    reason: "an internal recovery message reached the app".into(),
                },
            },
            K::SessionReset { reason } => EventKind::SessionReset { reason },
            K::Resent { id } => EventKind::Resent {
                message_id: id.to_hex(),
            },
            K::DeliveryFailed { id, reason } => EventKind::DeliveryFailed {
                message_id: id.map(|i| i.to_hex()),
                reason,
            },
            K::Undecryptable { reason } => EventKind::Undecryptable { reason },
            K::InviteRefused { reason } => EventKind::InviteRefused { reason },
            K::GroupChanged(c) => EventKind::GroupChanged {
                group: c.group.to_hex(),
                title: c.title,
                epoch: c.epoch,
                added: c.added.iter().map(|a| a.to_string()).collect(),
                removed: c.removed.iter().map(|a| a.to_string()).collect(),
                removed_me: c.removed_me,
            },
            K::OutOfHours(n) => EventKind::OutOfHours {
                crisis_text: n.crisis_text,
                reply_within_hours: n.reply_within_hours,
                next_opening_ms: n.next_opening_ms,
            },
        };
        Self {
            event_id: hex::encode(e.event_id.0),
            message_id,
            contact: e.contact.to_string(),
            contact_name: e.contact_name,
            at_ms: e.at_ms,
            group: e.group.map(|g| g.to_hex()),
            kind,
        }
    }
}

/// Receives live events from [`AlcoveClient::subscribe`]. Called on a
/// tokio worker thread, one call at a time, in order.
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    /// A new event (already stored; confirm it when handled).
    fn on_event(&self, event: Event);
    /// The subscription ended with an error (the relay went away, storage
    /// failed). Subscribe again to resume; nothing is lost.
    fn on_error(&self, error: AlcoveError);
}

/// Progress of an upload or download, in plaintext bytes.
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    /// `done` of `total` bytes so far.
    fn on_progress(&self, done: u64, total: u64);
}

/// A live subscription; [`Subscription::cancel`] ends it.
#[derive(uniffi::Object)]
pub struct Subscription {
    task: tokio::task::JoinHandle<()>,
}

#[uniffi::export]
impl Subscription {
    /// Stops delivering events. Idempotent.
    pub fn cancel(&self) {
        self.task.abort();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A device profile connected to its relay.
#[derive(uniffi::Object)]
pub struct AlcoveClient {
    inner: RwLock<Option<Arc<sdk::Client>>>,
}

impl AlcoveClient {
    fn wrap(client: sdk::Client) -> Arc<Self> {
        Arc::new(Self {
            inner: RwLock::new(Some(Arc::new(client))),
        })
    }

    fn client(&self) -> Result<Arc<sdk::Client>> {
        self.inner
            .read()
            .ok()
            .and_then(|g| g.clone())
            .ok_or(AlcoveError::Closed {
                reason: "the client was closed".into(),
                retryable: false,
            })
    }
}

/// Creates a profile in the directory `dir`, protected by the 32-byte
/// `storage_key` (from the platform keystore), and registers it with the
/// relay at `relay_url` under `name`. Nothing is left on disk if it fails.
#[uniffi::export(async_runtime = "tokio")]
pub async fn create_profile(
    dir: String,
    storage_key: Vec<u8>,
    relay_url: String,
    name: String,
) -> Result<Arc<AlcoveClient>> {
    on_runtime(async move {
        let key = key32(&storage_key)?;
        let client = sdk::Client::create(&PathBuf::from(dir), &key, &relay_url, &name).await?;
        Ok(AlcoveClient::wrap(client))
    })
    .await
}

/// Opens the profile in `dir`. A wrong key is `StorageLocked`.
#[uniffi::export(async_runtime = "tokio")]
pub async fn open_profile(dir: String, storage_key: Vec<u8>) -> Result<Arc<AlcoveClient>> {
    on_runtime(async move {
        let key = key32(&storage_key)?;
        let client = sdk::Client::open(&PathBuf::from(dir), &key).await?;
        Ok(AlcoveClient::wrap(client))
    })
    .await
}

#[uniffi::export(async_runtime = "tokio")]
impl AlcoveClient {
    /// This device's address (base64url).
    pub fn address(&self) -> Result<String> {
        Ok(self.client()?.address().to_string())
    }

    /// Creates a group with this device as admin and `members` (contacts'
    /// addresses) in it; returns its id (hex). See docs/groups.md.
    pub async fn create_group(&self, title: String, members: Vec<String>) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let id = client.create_group(&title, &addresses(&members)?).await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Adds contacts to a group (admins only).
    pub async fn add_group_members(&self, group: String, members: Vec<String>) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .add_group_members(&group_id(&group)?, &addresses(&members)?)
                .await?)
        })
        .await
    }

    /// Removes members from a group (admins only).
    pub async fn remove_group_members(&self, group: String, members: Vec<String>) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .remove_group_members(&group_id(&group)?, &addresses(&members)?)
                .await?)
        })
        .await
    }

    /// Leaves a group; its keys are deleted from this device at once.
    pub async fn leave_group(&self, group: String) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.leave_group(&group_id(&group)?).await?) }).await
    }

    /// The groups this device is or was in.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .groups()
                .await?
                .into_iter()
                .map(GroupInfo::from)
                .collect())
        })
        .await
    }

    /// Sends a text to a group; returns its message id (hex).
    pub async fn send_group_text(&self, group: String, text: String) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .send_group_text(&group_id(&group)?, &text)
                .await?
                .to_hex())
        })
        .await
    }

    /// Assigns homework in a group: to everyone (`assignee` none) or one
    /// member; `share_submissions` sends submissions to the whole group
    /// instead of to this device only.
    #[allow(clippy::too_many_arguments)]
    pub async fn assign_group_homework(
        &self,
        group: String,
        assignee: Option<String>,
        title: String,
        instructions: String,
        due_date: Option<String>,
        attachments: Vec<Attachment>,
        share_submissions: bool,
    ) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let member = assignee.as_deref().map(address).transpose()?;
            let id = client
                .assign_group_homework(
                    &group_id(&group)?,
                    member.as_ref(),
                    &title,
                    &instructions,
                    due_date.as_deref(),
                    pointers(attachments)?,
                    share_submissions,
                )
                .await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Hands in group homework (to the group or the therapist only, as the
    /// assignment says).
    pub async fn submit_group_homework(
        &self,
        group: String,
        assignment_id: String,
        answer: String,
        attachments: Vec<Attachment>,
    ) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let id = client
                .submit_group_homework(
                    &group_id(&group)?,
                    &message_id(&assignment_id)?,
                    &answer,
                    pointers(attachments)?,
                )
                .await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Starts a key update for a group (after a suspected compromise).
    pub async fn update_group_keys(&self, group: String) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.update_group_keys(&group_id(&group)?).await?) }).await
    }

    /// An invite link for `uses` people, valid for `valid_seconds`.
    pub async fn create_invite(&self, valid_seconds: u64, uses: u32) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .create_invite_for(Duration::from_secs(valid_seconds), uses)
                .await?)
        })
        .await
    }

    /// Replaces this device's delivery key: contacts get the new one at
    /// once; anyone else holding the old one (a leaked invite) is cut off,
    /// and invites made before stop working.
    pub async fn rotate_delivery_key(&self) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.rotate_delivery_key().await?) }).await
    }

    /// Whether anyone may write to this device without its delivery key
    /// (off by default: contacts and invite holders only).
    pub async fn accept_messages_from_anyone(&self, open: bool) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.accept_messages_from_anyone(open).await?) }).await
    }

    /// Accepts an invite link; the inviter becomes a verified contact.
    pub async fn accept_invite(&self, link: String) -> Result<Contact> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.accept_invite(&link).await?.into()) }).await
    }

    /// All contacts.
    pub async fn contacts(&self) -> Result<Vec<Contact>> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .contacts()
                .await
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// One contact.
    pub async fn contact(&self, address: String) -> Result<Contact> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.contact(&self::address(&address)?).await?.into()) }).await
    }

    /// Records that the users compared safety numbers.
    pub async fn mark_verified(&self, address: String) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.mark_verified(&self::address(&address)?).await?) }).await
    }

    /// Accepts a contact's new identity key (then verify it again).
    pub async fn accept_key_change(&self, address: String) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.accept_key_change(&self::address(&address)?).await?) })
            .await
    }

    /// Renames a contact.
    pub async fn rename_contact(&self, address: String, name: String) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .rename_contact(&self::address(&address)?, &name)
                .await?)
        })
        .await
    }

    /// Sends a text; returns its message id (hex).
    pub async fn send_text(&self, to: String, text: String) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let id = client.send_text(&self::address(&to)?, &text).await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Assigns homework; returns its message id (hex).
    pub async fn assign_homework(
        &self,
        to: String,
        title: String,
        instructions: String,
        due_date: Option<String>,
        attachments: Vec<Attachment>,
    ) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let id = client
                .assign_homework(
                    &self::address(&to)?,
                    &title,
                    &instructions,
                    due_date.as_deref(),
                    pointers(attachments)?,
                )
                .await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Hands in homework for `assignment_id` (hex).
    pub async fn submit_homework(
        &self,
        to: String,
        assignment_id: String,
        answer: String,
        attachments: Vec<Attachment>,
    ) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let id = client
                .submit_homework(
                    &self::address(&to)?,
                    &message_id(&assignment_id)?,
                    &answer,
                    pointers(attachments)?,
                )
                .await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Sends feedback on `refers_to` (hex).
    pub async fn send_feedback(
        &self,
        to: String,
        refers_to: String,
        text: String,
    ) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let id = client
                .send_feedback(&self::address(&to)?, &message_id(&refers_to)?, &text)
                .await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Tells the contact these messages (hex ids) were read.
    pub async fn send_read_receipt(&self, to: String, message_ids: Vec<String>) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let ids = message_ids
                .iter()
                .map(|i| message_id(i))
                .collect::<Result<Vec<_>>>()?;
            let id = client.send_read_receipt(&self::address(&to)?, &ids).await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Presents this device's clinician credential (bytes from the
    /// issuer): commits it in the key log and sends it to every contact.
    pub async fn present_credential(&self, credential: Vec<u8>) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.present_credential(&credential).await?) }).await
    }

    /// Verifies the credential a contact presented against the issuers the
    /// app trusts and the key log. A refusal is `CredentialRefused`.
    pub async fn verify_credential(
        &self,
        address: String,
        trusted: Vec<TrustedIssuer>,
    ) -> Result<VerifiedCredential> {
        let client = self.client()?;
        on_runtime(async move {
            let trusted = trusted
                .into_iter()
                .map(|t| {
                    Ok(sdk::TrustedIssuer {
                        name: t.name,
                        key: t
                            .key
                            .try_into()
                            .map_err(|_| invalid("an issuer key is 32 bytes"))?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let v = client
                .verify_credential(&self::address(&address)?, &trusted)
                .await?;
            Ok(VerifiedCredential {
                badge: v.badge(),
                display_name: v.display_name,
                licence_number: v.licence_number,
                jurisdiction: v.jurisdiction,
                expires_at: v.expires_at,
                issuer_name: v.issuer_name,
            })
        })
        .await
    }

    /// Sets this device's office hours, reply time and crisis text, and
    /// sends them to every contact.
    pub async fn set_availability(&self, availability: Availability) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .set_availability(sdk::Availability {
                    updated_at_ms: 0,
                    utc_offset_minutes: availability.utc_offset_minutes,
                    hours: availability
                        .hours
                        .into_iter()
                        .map(|h| sdk::OfficeHours {
                            weekday: h.weekday,
                            start_minute: h.start_minute,
                            end_minute: h.end_minute,
                        })
                        .collect(),
                    reply_within_hours: availability.reply_within_hours,
                    crisis_text: availability.crisis_text,
                })
                .await?)
        })
        .await
    }

    /// Sets or clears the auto-reply sent outside office hours.
    pub async fn set_auto_reply(&self, text: Option<String>) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.set_auto_reply(text.as_deref()).await?) }).await
    }

    /// The notice to show if this device wrote to the contact now; `None`
    /// within office hours or when the contact set none. No server is asked.
    pub fn out_of_hours_notice(&self, address: String) -> Result<Option<OutOfHoursNotice>> {
        let client = self.client()?;
        Ok(client
            .out_of_hours_notice(&self::address(&address)?)?
            .map(|n| OutOfHoursNotice {
                text: n.to_string(),
                crisis_text: n.crisis_text,
                reply_within_hours: n.reply_within_hours,
                next_opening_ms: n.next_opening_ms,
            }))
    }

    /// Turns verifiable records on or off for what this device writes to
    /// the contact (the contact is told; it gives up deniability).
    pub async fn set_verifiable_records(&self, address: String, enabled: bool) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .set_verifiable_records(&self::address(&address)?, enabled)
                .await?)
        })
        .await
    }

    /// Sets disappearing messages for the conversation (seconds; `None`:
    /// off). The contact is told and applies the same period.
    pub async fn set_disappearing(&self, address: String, seconds: Option<u64>) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .set_disappearing(&self::address(&address)?, seconds.map(Duration::from_secs))
                .await?)
        })
        .await
    }

    /// The conversation as a signed transcript, JSON (verify it with
    /// `alcove-audit transcript`).
    pub async fn export_transcript(&self, address: String) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let t = client.export_transcript(&self::address(&address)?).await?;
            serde_json::to_string_pretty(&t).map_err(|e| invalid(e.to_string()))
        })
        .await
    }

    /// Sends a document on its own.
    pub async fn send_document(&self, to: String, attachment: Attachment) -> Result<String> {
        let client = self.client()?;
        on_runtime(async move {
            let id = client
                .send_attachment(&self::address(&to)?, attachment.try_into()?)
                .await?;
            Ok(id.to_hex())
        })
        .await
    }

    /// Encrypts and uploads the file at `path`.
    pub async fn upload_file(
        &self,
        path: String,
        media_type: String,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<Attachment> {
        let client = self.client()?;
        on_runtime(async move {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(invalid(format!("no file at {}", path.display())));
            }
            let pointer = client
                .upload_file(&path, &media_type, move |done, total| {
                    if let Some(p) = &progress {
                        p.on_progress(done, total);
                    }
                })
                .await?;
            Ok(Attachment::from(&pointer))
        })
        .await
    }

    /// Downloads, verifies and decrypts an attachment to `dest`.
    pub async fn download_file(
        &self,
        attachment: Attachment,
        dest: String,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            let pointer: sdk::AttachmentPointer = attachment.try_into()?;
            Ok(client
                .download_file(&pointer, &PathBuf::from(dest), move |done, total| {
                    if let Some(p) = &progress {
                        p.on_progress(done, total);
                    }
                })
                .await?)
        })
        .await
    }

    /// Fetches, decrypts and stores what waits; returns the new events.
    pub async fn sync(&self) -> Result<Vec<Event>> {
        let client = self.client()?;
        on_runtime(async move { Ok(client.sync().await?.into_iter().map(Into::into).collect()) })
            .await
    }

    /// Events stored but not yet confirmed (after a crash, say).
    pub async fn pending_events(&self) -> Result<Vec<Event>> {
        let client = self.client()?;
        on_runtime(async move {
            Ok(client
                .pending_events()
                .await?
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// The app has handled the event `event_id` (hex).
    pub async fn confirm(&self, event_id: String) -> Result<()> {
        let client = self.client()?;
        on_runtime(async move {
            let id: [u8; 16] = hex::decode(&event_id)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| invalid(format!("not an event id (32 hex digits): {event_id:?}")))?;
            Ok(client.confirm_id(&sdk::EventId(id)).await?)
        })
        .await
    }

    /// Delivers live events to `listener` until the returned subscription
    /// is cancelled (or the stream ends with an error, reported through
    /// `on_error`).
    pub async fn subscribe(&self, listener: Arc<dyn EventListener>) -> Result<Arc<Subscription>> {
        let client = self.client()?;
        let task = runtime().spawn(async move {
            let events = client.events();
            let mut events = std::pin::pin!(events);
            while let Some(item) = events.next().await {
                match item {
                    Ok(e) => listener.on_event(e.into()),
                    Err(e) => {
                        listener.on_error(e.into());
                        break;
                    }
                }
            }
        });
        Ok(Arc::new(Subscription { task }))
    }

    /// Closes the profile; later calls fail with `Closed`. Subscriptions
    /// keep it open until they are cancelled. (Not `close`: Kotlin's
    /// `AutoCloseable.close` frees the handle itself.)
    pub fn close_profile(&self) {
        if let Ok(mut g) = self.inner.write() {
            g.take();
        }
    }
}
