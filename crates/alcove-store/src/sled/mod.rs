//! The embedded default: sled on local disk, with group commit.
//!
//! sled keeps writes in memory and its log until a flush makes them
//! durable. A send must not be acknowledged before that, but one fsync per
//! message would cap throughput at the disk's fsync rate. So writers queue
//! for a *group commit*: one task runs `flush_async` for everyone who
//! queued before it started, then wakes them all; writers that arrive
//! during a flush go into the next one.

mod layout;
pub(crate) mod recovery;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::records::{body, i64_at, u64_at, versioned};
use crate::{
    Address, BlobId, BlobInfo, ClientMessageId, CredentialSlot, DeliveryPolicy, DeviceRecord,
    Enqueued, LogEntry, LogRecord, Result, Store, StoreError, StoredMessage,
};

/// Counters of the group commit, for the relay's metrics.
#[derive(Debug, Default)]
pub struct FlushStats {
    /// Flushes run.
    pub flushes: AtomicU64,
    /// Writers made durable (sum of batch sizes).
    pub commits: AtomicU64,
    /// Total time spent flushing, microseconds.
    pub flush_micros: AtomicU64,
    /// Longest flush, microseconds.
    pub max_flush_micros: AtomicU64,
}

type Waiter = oneshot::Sender<std::result::Result<(), String>>;

enum Request {
    /// Make everything written so far durable, then answer.
    Commit(Waiter),
    /// Flush, answer, and stop (releasing the task's handle on the db).
    Close(Waiter),
}

/// The sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    devices: sled::Tree,
    otks: sled::Tree,
    mailboxes: sled::Tree,
    blobs: sled::Tree,
    chunks: sled::Tree,
    meta: sled::Tree,
    commits: mpsc::UnboundedSender<Request>,
    prekey_lock: Mutex<()>,
    stats: Arc<FlushStats>,
    last_repairs: recovery::Repairs,
}

/// The names of the trees, for tools that read a store offline.
///
/// Every write that must be atomic touches one tree only: sled 0.34
/// recovers a transaction that spans several trees non-atomically when the
/// process dies before the flush completes (found by the crash harness in
/// `server/tests/crash.rs`: a retried send stored twice because the
/// mailbox record survived a SIGKILL and its idempotency key did not). So a
/// mailbox's messages, counters and idempotency keys share one tree, and a
/// device's record shares one tree with the key log.
pub const TREES: [&str; 6] = [
    "devices",
    "one_time_prekeys",
    "mailboxes",
    "blobs",
    "blob_chunks",
    "meta",
];

const SCHEMA_VERSION: &[u8] = b"2";

/// Default page-cache bound of the sled store: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

use layout::{dedupe_key, device_key, head_key, log_entry_key, message_key, LOG_SIZE_KEY};
pub use layout::{device_tag, mailbox_tag};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// An error opening the database. sled reports a lock held elsewhere as an
/// `Other` I/O error whose text is its only mark (sled 0.34,
/// `Config::try_lock`); this is the one place that reads it, so callers
/// match [`StoreError::Locked`].
fn open_error(e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::Other
                && io.to_string().starts_with("could not acquire lock") =>
        {
            StoreError::Locked(io.to_string())
        }
        _ => backend(e),
    }
}

fn key2(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

impl SledStore {
    /// Opens (or creates) a store in `dir` with the default page cache
    /// ([`DEFAULT_CACHE_BYTES`]). Must be called inside a tokio runtime: it
    /// starts the group-commit task.
    pub fn open(dir: &std::path::Path) -> Result<Self> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) a store whose page cache holds at most
    /// `cache_bytes` (sled's own default is 1 GiB; the relay's memory grows
    /// with the stored data up to this bound).
    pub fn open_with_cache(dir: &std::path::Path, cache_bytes: u64) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Durability comes from our group commit; sled's own periodic
            // flush would only add fsyncs.
            .flush_every_ms(None)
            .open()
            .map_err(open_error)?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let stats = Arc::new(FlushStats::default());
        let commits = spawn_committer(db.clone(), stats.clone());
        let mut store = Self {
            devices: tree(TREES[0])?,
            otks: tree(TREES[1])?,
            mailboxes: tree(TREES[2])?,
            blobs: tree(TREES[3])?,
            chunks: tree(TREES[4])?,
            meta: tree(TREES[5])?,
            db,
            commits,
            prekey_lock: Mutex::new(()),
            stats,
            last_repairs: Default::default(),
        };
        match store.meta.get("schema_version").map_err(backend)? {
            None => {
                store
                    .meta
                    .insert("schema_version", SCHEMA_VERSION)
                    .map_err(backend)?;
            }
            Some(v) if v.as_ref() == SCHEMA_VERSION => {}
            Some(_) => return Err(StoreError::Corrupt("meta: unsupported schema version")),
        }
        let mut repairs = recovery::Repairs::default();
        recovery::repair_mailboxes(&store.mailboxes, &mut repairs)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        recovery::repair_key_log(&store.devices, now, &mut repairs)?;
        if repairs.any() {
            tracing::warn!(?repairs, "repaired records left inconsistent by a crash");
            store.db.flush().map_err(backend)?;
        }
        store.last_repairs = repairs;
        Ok(store)
    }

    /// What the start-up repair pass changed (see the `recovery` module).
    pub fn repairs(&self) -> recovery::Repairs {
        self.last_repairs
    }

    /// Group-commit counters.
    pub fn flush_stats(&self) -> Arc<FlushStats> {
        self.stats.clone()
    }

    /// Waits until everything written so far is durable.
    async fn commit(&self) -> Result<()> {
        self.request(Request::Commit).await
    }

    async fn request(&self, make: fn(Waiter) -> Request) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commits
            .send(make(tx))
            .map_err(|_| StoreError::Backend("group-commit task stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("group-commit task stopped".into()))?
            .map_err(StoreError::Backend)
    }
}

fn spawn_committer(db: sled::Db, stats: Arc<FlushStats>) -> mpsc::UnboundedSender<Request> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut waiters = Vec::new();
            let mut closing = None;
            let mut take = |req: Request| match req {
                Request::Commit(w) => waiters.push(w),
                Request::Close(w) => closing = Some(w),
            };
            take(first);
            // Let writers that are about to queue do so: a few scheduler
            // turns cost microseconds and make batches larger.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            while let Ok(more) = rx.try_recv() {
                take(more);
            }
            let start = Instant::now();
            let result = db
                .flush_async()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            stats.flushes.fetch_add(1, Ordering::Relaxed);
            stats
                .commits
                .fetch_add(waiters.len() as u64, Ordering::Relaxed);
            stats.flush_micros.fetch_add(micros, Ordering::Relaxed);
            stats.max_flush_micros.fetch_max(micros, Ordering::Relaxed);
            if let Err(e) = &result {
                tracing::error!(error = %e, "flush failed");
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
            if let Some(w) = closing {
                drop(db);
                let _ = w.send(result);
                return;
            }
        }
    });
    tx
}

fn head(value: Option<sled::IVec>) -> Result<(u64, u64)> {
    match value {
        None => Ok((0, 0)),
        Some(v) => {
            let b = body(&v, "mailboxes: head")?;
            Ok((
                u64_at(b, 0, "mailboxes: head")?,
                u64_at(b, 8, "mailboxes: head")?,
            ))
        }
    }
}

fn abort<T>(e: StoreError) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// The key log's size inside a `devices` transaction: the next index.
fn log_size_in(
    devices: &sled::transaction::TransactionalTree,
) -> std::result::Result<u64, ConflictableTransactionError<StoreError>> {
    match devices.get(LOG_SIZE_KEY)? {
        None => Ok(0),
        Some(v) => u64_at(&v, 0, "devices: log size").map_err(ConflictableTransactionError::Abort),
    }
}

fn tx_result<T>(r: std::result::Result<T, TransactionError<StoreError>>) -> Result<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    })
}

#[async_trait]
impl Store for SledStore {
    async fn publish_keys(
        &self,
        address: &Address,
        identity: Option<&[u8]>,
        signed_prekey: &[u8],
        salt: &[u8; 32],
        now_ms: i64,
    ) -> Result<LogEntry> {
        let result = self.devices.transaction(|devices| {
            let current = match devices.get(device_key(address))? {
                Some(v) => match DeviceRecord::decode(&v) {
                    Ok(r) => Some(r),
                    Err(e) => return abort(e),
                },
                None => None,
            };
            let (identity, epoch, registered_at_ms) =
                match crate::records::next_publication(identity, current.as_ref(), now_ms) {
                    Ok(v) => v,
                    Err(e) => return abort(e),
                };
            let index = log_size_in(devices)?;
            let record = DeviceRecord {
                registered_at_ms,
                identity: identity.clone(),
                signed_prekey: signed_prekey.to_vec(),
                log_index: index,
                epoch,
            };
            let entry = LogEntry {
                index,
                address: *address,
                epoch,
                salt: *salt,
                logged_at_ms: now_ms,
                record: LogRecord::Keys {
                    identity,
                    signed_prekey: signed_prekey.to_vec(),
                },
            };
            devices.insert(log_entry_key(index), entry.encode())?;
            devices.insert(&LOG_SIZE_KEY, &(index + 1).to_be_bytes())?;
            devices.insert(device_key(address), record.encode())?;
            Ok(entry)
        });
        let entry = tx_result(result)?;
        self.commit().await?;
        Ok(entry)
    }

    async fn credential(&self, address: &Address) -> Result<Option<CredentialSlot>> {
        self.devices
            .get(layout::credential_key(address))
            .map_err(backend)?
            .map(|v| CredentialSlot::decode(&v))
            .transpose()
    }

    async fn publish_credential(
        &self,
        address: &Address,
        record: &[u8],
        revoked: &[[u8; 32]],
        expected_epoch: Option<u64>,
        salt: &[u8; 32],
        now_ms: i64,
    ) -> Result<LogEntry> {
        let result = self.devices.transaction(|devices| {
            if devices.get(device_key(address))?.is_none() {
                return abort(StoreError::NotFound("device"));
            }
            let current = match devices.get(layout::credential_key(address))? {
                Some(v) => match CredentialSlot::decode(&v) {
                    Ok(slot) => Some(slot.epoch),
                    Err(e) => return abort(e),
                },
                None => None,
            };
            if current != expected_epoch {
                return abort(StoreError::Conflict("credential record"));
            }
            let index = log_size_in(devices)?;
            let epoch = current.map_or(0, |e| e + 1);
            let entry = LogEntry {
                index,
                address: *address,
                epoch,
                salt: *salt,
                logged_at_ms: now_ms,
                record: LogRecord::Credential(record.to_vec()),
            };
            let slot = CredentialSlot {
                log_index: index,
                epoch,
                record: record.to_vec(),
                revoked: revoked.to_vec(),
            };
            devices.insert(log_entry_key(index), entry.encode())?;
            devices.insert(&LOG_SIZE_KEY, &(index + 1).to_be_bytes())?;
            devices.insert(layout::credential_key(address), slot.encode())?;
            Ok(entry)
        });
        let entry = tx_result(result)?;
        self.commit().await?;
        Ok(entry)
    }

    async fn device(&self, address: &Address) -> Result<Option<DeviceRecord>> {
        self.devices
            .get(device_key(address))
            .map_err(backend)?
            .map(|v| DeviceRecord::decode(&v))
            .transpose()
    }

    async fn delivery_policy(&self, address: &Address) -> Result<Option<DeliveryPolicy>> {
        if !self
            .devices
            .contains_key(device_key(address))
            .map_err(backend)?
        {
            return Ok(None);
        }
        match self
            .devices
            .get(layout::delivery_key(address))
            .map_err(backend)?
        {
            None => Ok(Some(DeliveryPolicy::Open)),
            Some(v) => DeliveryPolicy::decode(&v).map(Some),
        }
    }

    async fn set_delivery_policy(&self, address: &Address, policy: DeliveryPolicy) -> Result<()> {
        if !self
            .devices
            .contains_key(device_key(address))
            .map_err(backend)?
        {
            return Err(StoreError::NotFound("device"));
        }
        self.devices
            .insert(layout::delivery_key(address), policy.encode())
            .map_err(backend)?;
        self.commit().await
    }

    async fn log_size(&self) -> Result<u64> {
        match self.devices.get(LOG_SIZE_KEY).map_err(backend)? {
            None => Ok(0),
            Some(v) => u64_at(&v, 0, "devices: log size"),
        }
    }

    async fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>> {
        let size = self.log_size().await?;
        let mut out = Vec::new();
        let range = log_entry_key(from)..log_entry_key(u64::MAX);
        for item in self.devices.range(range).take(limit) {
            let (k, v) = item.map_err(backend)?;
            let entry = LogEntry::decode(&k[1..], &v)?;
            if entry.index >= size {
                break;
            }
            if entry.index != from + out.len() as u64 {
                return Err(StoreError::Corrupt("keylog: gap in the log"));
            }
            out.push(entry);
        }
        Ok(out)
    }

    async fn add_one_time_prekeys(
        &self,
        address: &Address,
        keys: &[(u32, Vec<u8>)],
        limit: usize,
    ) -> Result<usize> {
        let _guard = self.prekey_lock.lock().await;
        let existing = self.otks.scan_prefix(address).count();
        let mut new = 0;
        for (id, _) in keys {
            if !self
                .otks
                .contains_key(key2(address, &id.to_be_bytes()))
                .map_err(backend)?
            {
                new += 1;
            }
        }
        if existing + new > limit {
            return Err(StoreError::TooManyPreKeys { limit });
        }
        let mut batch = sled::Batch::default();
        for (id, key) in keys {
            batch.insert(key2(address, &id.to_be_bytes()), versioned(&[key]));
        }
        self.otks.apply_batch(batch).map_err(backend)?;
        self.commit().await?;
        Ok(existing + new)
    }

    async fn take_one_time_prekey(&self, address: &Address) -> Result<Option<Vec<u8>>> {
        loop {
            let Some(first) = self.otks.scan_prefix(address).next() else {
                return Ok(None);
            };
            let (key, value) = first.map_err(backend)?;
            // Only the caller whose compare-and-swap removes the key gets it.
            let swapped = self
                .otks
                .compare_and_swap(&key, Some(&value), None as Option<&[u8]>)
                .map_err(backend)?;
            if swapped.is_ok() {
                // Durable before it is handed out: a crash must not let the
                // same one-time prekey go to a second initiator.
                self.commit().await?;
                return Ok(Some(body(&value, "one_time_prekeys")?.to_vec()));
            }
        }
    }

    async fn count_one_time_prekeys(&self, address: &Address) -> Result<usize> {
        Ok(self.otks.scan_prefix(address).count())
    }

    async fn enqueue(
        &self,
        recipient: &Address,
        client_message_id: &ClientMessageId,
        envelope: &[u8],
        received_at_ms: i64,
        max_depth: u64,
    ) -> Result<Enqueued> {
        let dedupe = dedupe_key(recipient, client_message_id);
        let head_at = head_key(recipient);
        let value = versioned(&[&received_at_ms.to_be_bytes(), client_message_id, envelope]);
        let result = self.mailboxes.transaction(|tree| {
            if let Some(seen) = tree.get(&dedupe)? {
                let sequence = match body(&seen, "mailboxes: dedupe")
                    .and_then(|b| u64_at(b, 0, "mailboxes: dedupe"))
                {
                    Ok(s) => s,
                    Err(e) => return abort(e),
                };
                return Ok(Enqueued {
                    sequence,
                    duplicate: true,
                });
            }
            let (last, depth) = match head(tree.get(&head_at)?) {
                Ok(h) => h,
                Err(e) => return abort(e),
            };
            if depth >= max_depth {
                return abort(StoreError::MailboxFull { limit: max_depth });
            }
            let sequence = last + 1;
            tree.insert(message_key(recipient, sequence), value.clone())?;
            tree.insert(
                head_at.clone(),
                versioned(&[&sequence.to_be_bytes(), &(depth + 1).to_be_bytes()]),
            )?;
            tree.insert(
                dedupe.clone(),
                versioned(&[&sequence.to_be_bytes(), &received_at_ms.to_be_bytes()]),
            )?;
            Ok(Enqueued {
                sequence,
                duplicate: false,
            })
        });
        let enqueued = tx_result(result)?;
        // A duplicate is durable only once the first send's flush is done;
        // committing again is cheap and keeps the contract simple.
        self.commit().await?;
        Ok(enqueued)
    }

    async fn fetch(
        &self,
        recipient: &Address,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        if after == u64::MAX {
            return Ok((Vec::new(), false));
        }
        let start = message_key(recipient, after + 1);
        let end = message_key(recipient, u64::MAX);
        let mut out = Vec::with_capacity(limit.min(256));
        let mut more = false;
        for item in self.mailboxes.range(start..=end) {
            let (key, value) = item.map_err(backend)?;
            if out.len() == limit {
                more = true;
                break;
            }
            let b = body(&value, "mailboxes")?;
            out.push(StoredMessage {
                sequence: u64_at(&key, 33, "mailboxes")?,
                received_at_ms: i64_at(b, 0, "mailboxes")?,
                envelope: b
                    .get(24..)
                    .ok_or(StoreError::Corrupt("mailboxes"))?
                    .to_vec(),
            });
        }
        if !out.is_empty() {
            // sled serves writes before they are flushed. An envelope read
            // here may belong to a send that a crash could still undo (and
            // its retry store under another sequence): hand it out only
            // once it is durable. The group commit makes this cheap.
            self.commit().await?;
        }
        Ok((out, more))
    }

    async fn ack(&self, recipient: &Address, sequences: &[u64]) -> Result<usize> {
        let head_at = head_key(recipient);
        let result = self.mailboxes.transaction(|tree| {
            let mut deleted = 0u64;
            for seq in sequences {
                if tree.remove(message_key(recipient, *seq))?.is_some() {
                    deleted += 1;
                }
            }
            if deleted > 0 {
                let (last, depth) = match head(tree.get(&head_at)?) {
                    Ok(h) => h,
                    Err(e) => return abort(e),
                };
                tree.insert(
                    head_at.clone(),
                    versioned(&[
                        &last.to_be_bytes(),
                        &depth.saturating_sub(deleted).to_be_bytes(),
                    ]),
                )?;
            }
            Ok(deleted)
        });
        let deleted = tx_result(result)?;
        if deleted > 0 {
            self.commit().await?;
        }
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn messages_before(&self, before_ms: i64, limit: usize) -> Result<Vec<(Address, u64)>> {
        let mut out = Vec::new();
        for item in self.mailboxes.iter() {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(backend)?;
            if key.len() != 41 || key[32] != mailbox_tag::MESSAGE {
                continue;
            }
            let received = i64_at(body(&value, "mailboxes")?, 0, "mailboxes")?;
            if received < before_ms {
                let address: Address = key[..32].try_into().expect("41-byte key");
                out.push((address, u64_at(&key, 33, "mailboxes")?));
            }
        }
        Ok(out)
    }

    async fn depth(&self, recipient: &Address) -> Result<u64> {
        Ok(head(self.mailboxes.get(head_key(recipient)).map_err(backend)?)?.1)
    }

    async fn last_sequence(&self, recipient: &Address) -> Result<u64> {
        Ok(head(self.mailboxes.get(head_key(recipient)).map_err(backend)?)?.0)
    }

    async fn prune_dedupe(&self, before_ms: i64, window: u64) -> Result<usize> {
        // One pass in key order: per address the messages come first, then
        // the head, then the idempotency keys, so each key can be judged by
        // what waits in its mailbox and how far the mailbox has moved on.
        let mut removed = 0;
        let mut address: Vec<u8> = Vec::new();
        let mut waiting: HashSet<u64> = HashSet::new();
        let mut last = 0u64;
        for item in self.mailboxes.iter() {
            let (key, value) = item.map_err(backend)?;
            let (Some(owner), Some(tag)) = (key.get(..32), key.get(32)) else {
                return Err(StoreError::Corrupt("mailboxes: short key"));
            };
            if owner != address.as_slice() {
                address = owner.to_vec();
                waiting.clear();
                last = 0;
            }
            match *tag {
                mailbox_tag::MESSAGE => {
                    waiting.insert(u64_at(&key, 33, "mailboxes")?);
                }
                mailbox_tag::HEAD => last = head(Some(value))?.0,
                mailbox_tag::DEDUPE => {
                    let b = body(&value, "mailboxes: dedupe")?;
                    let sequence = u64_at(b, 0, "mailboxes: dedupe")?;
                    let expired = i64_at(b, 8, "mailboxes: dedupe")? < before_ms;
                    let outside =
                        sequence.saturating_add(window) <= last && !waiting.contains(&sequence);
                    // Only the value seen: a concurrent send cannot have
                    // changed it, but a repair could have.
                    if (expired || outside)
                        && self
                            .mailboxes
                            .compare_and_swap(&key, Some(&value), None as Option<&[u8]>)
                            .map_err(backend)?
                            .is_ok()
                    {
                        removed += 1;
                    }
                }
                _ => return Err(StoreError::Corrupt("mailboxes: unknown key tag")),
            }
        }
        Ok(removed)
    }

    async fn begin_blob(&self, id: &BlobId, size: u64, expires_at_ms: i64) -> Result<()> {
        let info = BlobInfo {
            finished: false,
            size,
            chunks: 0,
            expires_at_ms,
        };
        self.blobs.insert(id, info.encode()).map_err(backend)?;
        Ok(())
    }

    async fn put_blob_chunk(&self, id: &BlobId, index: u32, data: &[u8]) -> Result<()> {
        self.chunks
            .insert(key2(id, &index.to_be_bytes()), versioned(&[data]))
            .map_err(backend)?;
        Ok(())
    }

    async fn finish_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()> {
        if !self.blobs.contains_key(id).map_err(backend)? {
            return Err(StoreError::NotFound("blob"));
        }
        self.blobs.insert(id, info.encode()).map_err(backend)?;
        self.commit().await
    }

    async fn blob(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        self.blobs
            .get(id)
            .map_err(backend)?
            .map(|v| BlobInfo::decode(&v))
            .transpose()
    }

    async fn blob_chunk_indices(&self, id: &BlobId) -> Result<Vec<u32>> {
        self.chunks
            .scan_prefix(id)
            .keys()
            .map(|k| {
                let k = k.map_err(backend)?;
                let index: [u8; 4] = k
                    .get(id.len()..)
                    .and_then(|i| i.try_into().ok())
                    .ok_or(StoreError::Corrupt("blob chunk key"))?;
                Ok(u32::from_be_bytes(index))
            })
            .collect()
    }

    async fn blob_chunk(&self, id: &BlobId, index: u32) -> Result<Option<Vec<u8>>> {
        self.chunks
            .get(key2(id, &index.to_be_bytes()))
            .map_err(backend)?
            .map(|v| body(&v, "blob_chunks").map(<[u8]>::to_vec))
            .transpose()
    }

    async fn delete_blob(&self, id: &BlobId) -> Result<()> {
        let mut batch = sled::Batch::default();
        for item in self.chunks.scan_prefix(id).keys() {
            batch.remove(item.map_err(backend)?);
        }
        self.chunks.apply_batch(batch).map_err(backend)?;
        self.blobs.remove(id).map_err(backend)?;
        self.commit().await
    }

    async fn expired_blobs(&self, now_ms: i64, limit: usize) -> Result<Vec<BlobId>> {
        let mut out = Vec::new();
        for item in self.blobs.iter() {
            let (key, value) = item.map_err(backend)?;
            if BlobInfo::decode(&value)?.expires_at_ms < now_ms {
                if let Ok(id) = <BlobId>::try_from(key.as_ref()) {
                    out.push(id);
                }
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(key, value).map_err(backend)?;
        self.commit().await
    }

    async fn meta_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let current = self
            .meta
            .compare_and_swap(key, None as Option<&[u8]>, Some(value))
            .map_err(backend)?;
        let in_force = match current {
            Ok(()) => value.to_vec(),
            Err(e) => e.current.map(|v| v.to_vec()).unwrap_or_default(),
        };
        self.commit().await?;
        Ok(in_force)
    }

    async fn delete_meta(&self, key: &str) -> Result<()> {
        self.meta.remove(key).map_err(backend)?;
        self.commit().await
    }

    async fn total_depth(&self) -> Result<u64> {
        let mut total = 0u64;
        for item in self.mailboxes.iter() {
            let (key, value) = item.map_err(backend)?;
            if key.len() == 33 && key[32] == mailbox_tag::HEAD {
                total = total.saturating_add(head(Some(value))?.1);
            }
        }
        Ok(total)
    }

    async fn flush(&self) -> Result<()> {
        self.commit().await
    }

    async fn close(&self) -> Result<()> {
        self.request(Request::Close).await
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: a clean shutdown also flushes explicitly first.
        let _ = self.db.flush();
    }
}
