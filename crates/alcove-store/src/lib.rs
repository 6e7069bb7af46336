//! Storage for the Alcove relay.
//!
//! Everything the relay keeps goes through the [`Store`] trait, which
//! speaks only plain Rust types: no backend type leaks into it, so the sled
//! default ([`SledStore`]) and a distributed backend can serve the same
//! relay. What is stored is ciphertext and public key material only; the
//! record layouts are in [`records`] and in `docs/storage.md`.
//!
//! Durability contract: when a mutating method returns `Ok`, the change is
//! on disk and survives a crash of the process.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod postgres;
pub mod records;
mod sled;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use thiserror::Error;

pub use postgres::{PgSettings, PostgresStore};
pub use records::{
    BlobInfo, CredentialSlot, DeviceRecord, LogEntry, LogRecord, StoredMessage,
    CREDENTIAL_RECORD_LENS,
};
pub use sled::recovery::Repairs;
pub use sled::{device_tag, mailbox_tag, FlushStats, SledStore, DEFAULT_CACHE_BYTES, TREES};

/// A device address: SHA-256 of the device's identity key.
pub type Address = [u8; 32];
/// A relay-assigned blob id.
pub type BlobId = [u8; 16];
/// A sender-chosen id that makes sends idempotent.
pub type ClientMessageId = [u8; 16];

/// What a store can refuse or fail with.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The recipient's mailbox holds `limit` messages already.
    #[error("mailbox full ({limit} messages waiting)")]
    MailboxFull {
        /// The configured depth limit.
        limit: u64,
    },
    /// The device would hold more one-time prekeys than allowed.
    #[error("too many one-time prekeys (limit {limit})")]
    TooManyPreKeys {
        /// The configured limit.
        limit: usize,
    },
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A stored record did not decode (disk corruption or a newer format).
    #[error("corrupt or unknown record in {0}")]
    Corrupt(&'static str),
    /// The backend failed (I/O error, an unexpected database error).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The backend cannot serve the call now (a database that does not
    /// answer in time, a lock held too long, a lost connection); the same
    /// call may succeed later. Nothing was changed, or, for an idempotent
    /// write, a retry finds what was.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store's configuration is wrong (a URL, a TLS setting).
    #[error("storage configuration: {0}")]
    Config(String),
    /// A conditional write found the record changed since the caller read
    /// it (a concurrent writer); nothing was written. Read and try again.
    #[error("{0} changed concurrently")]
    Conflict(&'static str),
    /// Another process (or another open store in this one) holds the
    /// embedded store's lock: a relay still shutting down, or a second
    /// relay on the same directory. Nothing was opened.
    #[error("the store is locked by another owner: {0}")]
    Locked(String),
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Outcome of [`Store::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The envelope's sequence in the recipient's mailbox.
    pub sequence: u64,
    /// True if the same (recipient, client message id) was stored before.
    pub duplicate: bool,
}

/// Who may put envelopes in a device's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryPolicy {
    /// Anyone.
    Open,
    /// Senders presenting the delivery key whose verifier this is
    /// (`alcove_protocol::delivery`).
    Verifier([u8; 32]),
}

/// The relay's storage.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Publishes a device's keys, in one atomic, durable step: writes the
    /// device record and appends the matching key-log entry at the next
    /// index. With `identity` it is a registration (a new device at epoch
    /// 0, or a re-registration at the next epoch); without, a signed-prekey
    /// change of a registered device (else `NotFound("device")`). Returns
    /// the appended entry.
    async fn publish_keys(
        &self,
        address: &Address,
        identity: Option<&[u8]>,
        signed_prekey: &[u8],
        salt: &[u8; 32],
        now_ms: i64,
    ) -> Result<LogEntry>;
    /// A device's record.
    async fn device(&self, address: &Address) -> Result<Option<DeviceRecord>>;
    /// Who may deliver to a device; `None` when it is not registered. A
    /// registered device that never set a policy is [`DeliveryPolicy::Open`].
    async fn delivery_policy(&self, address: &Address) -> Result<Option<DeliveryPolicy>>;
    /// Sets a registered device's delivery policy, durably (else
    /// `NotFound("device")`).
    async fn set_delivery_policy(&self, address: &Address, policy: DeliveryPolicy) -> Result<()>;
    /// A device's credential slot (its current credential record), if it
    /// ever committed one.
    async fn credential(&self, address: &Address) -> Result<Option<CredentialSlot>>;
    /// Commits a new credential record for a registered device (else
    /// `NotFound("device")`), in one atomic, durable step: appends the
    /// key-log entry at the next index and the next credential epoch, and
    /// replaces the slot with `record` and `revoked`. `expected_epoch` is
    /// the epoch of the slot the caller decided on (`None`: no slot); if
    /// the slot is another by now, nothing is written and the answer is
    /// `Conflict`. Returns the appended entry.
    async fn publish_credential(
        &self,
        address: &Address,
        record: &[u8],
        revoked: &[[u8; 32]],
        expected_epoch: Option<u64>,
        salt: &[u8; 32],
        now_ms: i64,
    ) -> Result<LogEntry>;
    /// Waiting envelopes the relay accepted before `before_ms`, at most
    /// `limit`, as (recipient, sequence), for the retention sweep.
    async fn messages_before(&self, before_ms: i64, limit: usize) -> Result<Vec<(Address, u64)>>;
    /// Deletes waiting envelopes accepted before `before_ms` (at most
    /// `limit`), as acknowledgements do: the practice's retention period
    /// for unfetched messages. Returns how many were deleted.
    async fn expire_messages(&self, before_ms: i64, limit: usize) -> Result<usize> {
        let mut by_recipient: std::collections::BTreeMap<Address, Vec<u64>> = Default::default();
        for (recipient, sequence) in self.messages_before(before_ms, limit).await? {
            by_recipient.entry(recipient).or_default().push(sequence);
        }
        let mut deleted = 0;
        for (recipient, sequences) in by_recipient {
            deleted += self.ack(&recipient, &sequences).await?;
        }
        Ok(deleted)
    }
    /// Number of key-log entries.
    async fn log_size(&self) -> Result<u64>;
    /// Key-log entries from index `from`, at most `limit`, in order.
    async fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>>;

    /// Adds one-time prekeys `(id, encoded key)`; a key with an existing id
    /// replaces it. Refused as a whole if the device would hold more than
    /// `limit`. Returns the new count.
    async fn add_one_time_prekeys(
        &self,
        address: &Address,
        keys: &[(u32, Vec<u8>)],
        limit: usize,
    ) -> Result<usize>;
    /// Removes and returns one one-time prekey, atomically: under any
    /// concurrency, each key is returned at most once.
    async fn take_one_time_prekey(&self, address: &Address) -> Result<Option<Vec<u8>>>;
    /// How many one-time prekeys a device has left.
    async fn count_one_time_prekeys(&self, address: &Address) -> Result<usize>;

    /// Appends an envelope to a mailbox, durably. Idempotent by
    /// `(recipient, client_message_id)`.
    async fn enqueue(
        &self,
        recipient: &Address,
        client_message_id: &ClientMessageId,
        envelope: &[u8],
        received_at_ms: i64,
        max_depth: u64,
    ) -> Result<Enqueued>;
    /// Messages with a sequence above `after`, oldest first, at most
    /// `limit`; and whether more are waiting.
    async fn fetch(
        &self,
        recipient: &Address,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredMessage>, bool)>;
    /// Deletes messages for good, durably. Returns how many existed.
    async fn ack(&self, recipient: &Address, sequences: &[u64]) -> Result<usize>;
    /// How many messages wait in a mailbox.
    async fn depth(&self, recipient: &Address) -> Result<u64>;
    /// The highest sequence ever assigned in a mailbox (0 if none).
    async fn last_sequence(&self, recipient: &Address) -> Result<u64>;
    /// Forgets idempotency keys that are no longer needed, and returns how
    /// many: every key received before `before_ms`, and every key whose
    /// message has been acknowledged and is older than the mailbox's last
    /// `window` sequences. What stays recognised is therefore a retry of a
    /// message still waiting, or of one of the last `window` accepted,
    /// within the retention. This bounds the keys kept per mailbox, so the
    /// store does not grow with time at a steady load.
    async fn prune_dedupe(&self, before_ms: i64, window: u64) -> Result<usize>;

    /// Starts a blob upload of `size` bytes (as the uploader declared it,
    /// kept in [`BlobInfo::size`] while unfinished); chunks may follow. An
    /// unfinished blob expires at `expires_at_ms`.
    async fn begin_blob(&self, id: &BlobId, size: u64, expires_at_ms: i64) -> Result<()>;
    /// Stores chunk `index` of an unfinished blob.
    async fn put_blob_chunk(&self, id: &BlobId, index: u32, data: &[u8]) -> Result<()>;
    /// Marks a blob complete, durably.
    async fn finish_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()>;
    /// A blob's description (finished or not).
    async fn blob(&self, id: &BlobId) -> Result<Option<BlobInfo>>;
    /// Chunk `index` of a blob.
    async fn blob_chunk(&self, id: &BlobId, index: u32) -> Result<Option<Vec<u8>>>;
    /// The indexes of the chunks stored for a blob, ascending (to resume
    /// an unfinished upload).
    async fn blob_chunk_indices(&self, id: &BlobId) -> Result<Vec<u32>>;
    /// Deletes a blob and its chunks.
    async fn delete_blob(&self, id: &BlobId) -> Result<()>;
    /// Ids of blobs whose expiry is before `now_ms`, at most `limit`.
    async fn expired_blobs(&self, now_ms: i64, limit: usize) -> Result<Vec<BlobId>>;

    /// A relay-level setting (server id, token key, schema version).
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a relay-level setting, durably.
    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Sets a setting only if it is absent; returns the value in force.
    async fn meta_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
    /// Removes a setting, durably (absent already: nothing happens).
    async fn delete_meta(&self, key: &str) -> Result<()>;

    /// Envelopes waiting in all mailboxes (for the queue-depth gauge).
    async fn total_depth(&self) -> Result<u64>;

    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<()>;

    /// Flushes and stops background work, so that dropping the store
    /// releases it (for example sled's lock on its directory). Later writes
    /// fail with [`StoreError::Backend`].
    async fn close(&self) -> Result<()>;
}
