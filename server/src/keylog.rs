//! The relay's side of key transparency: it appends a leaf for every key
//! publication and every credential record (in the same store transaction
//! as the device record or credential slot), keeps
//! the tree's hashes in memory, and signs heads and serves proofs.
//!
//! The store is the source of truth. Before answering, the relay catches
//! up with entries the store has that its tree lacks (appended by a
//! concurrent request, or by another relay on a shared store), flushing
//! first so that a head never covers an entry a crash could still lose.

use std::sync::Arc;
use std::time::Duration;

use alcove_keylog::{Hash, KeyProof, MerkleLog, SignedTreeHead};
use alcove_store::{Address, CredentialSlot, DeviceRecord, LogEntry, LogRecord, Store, StoreError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;

use crate::auth::now_ms;

/// How long a signed head is reused before a fresh one is signed.
const HEAD_REUSE: Duration = Duration::from_secs(1);
/// Entries read from the store per page while catching up.
const PAGE: usize = 1024;

struct Tree {
    log: MerkleLog,
    head: Option<SignedTreeHead>,
}

/// The key log as the relay serves it.
pub struct KeyLog {
    store: Arc<dyn Store>,
    signing: SigningKey,
    tree: std::sync::Mutex<Tree>,
    catching_up: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLog")
            .field("log_key", &self.signing.verifying_key())
            .finish_non_exhaustive()
    }
}

impl KeyLog {
    /// Loads the whole tree; `seed` is the log's signing key (from the
    /// relay's secrets, `crate::secrets`).
    pub async fn open(store: Arc<dyn Store>, seed: &[u8; 32]) -> Result<Self, StoreError> {
        let log = Self {
            store,
            signing: SigningKey::from_bytes(seed),
            tree: std::sync::Mutex::new(Tree {
                log: MerkleLog::new(),
                head: None,
            }),
            catching_up: tokio::sync::Mutex::new(()),
        };
        log.catch_up().await?;
        Ok(log)
    }

    /// The public log key clients pin.
    pub fn log_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    fn tree(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of leaves in memory.
    pub fn size(&self) -> u64 {
        self.tree().log.size()
    }

    /// Brings the in-memory tree up to the store's log.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let stored = self.store.log_size().await?;
        if stored <= self.size() {
            return Ok(());
        }
        let _one = self.catching_up.lock().await;
        // Whoever appended may not have flushed yet: a head must never
        // cover an entry that a crash could still take back.
        self.store.flush().await?;
        loop {
            let from = self.size();
            if from >= stored {
                return Ok(());
            }
            let entries = self.store.log_entries(from, PAGE).await?;
            if entries.is_empty() {
                return Err(StoreError::Corrupt("keylog: shorter than keylog_size"));
            }
            let mut tree = self.tree();
            for e in &entries {
                if e.index != tree.log.size() {
                    return Err(StoreError::Corrupt("keylog: entries out of order"));
                }
                tree.log.push(leaf_of(e));
            }
        }
    }

    /// Commits a credential record for a device (see
    /// [`Store::publish_credential`]) and appends it to the log.
    pub async fn publish_credential(
        &self,
        address: &Address,
        record: &[u8],
        revoked: &[[u8; 32]],
        expected_epoch: Option<u64>,
    ) -> Result<LogEntry, StoreError> {
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        let entry = self
            .store
            .publish_credential(address, record, revoked, expected_epoch, &salt, now_ms())
            .await?;
        self.catch_up().await?;
        Ok(entry)
    }

    /// Publishes a device's keys (registration when `identity` is given,
    /// signed-prekey change otherwise) and appends them to the log.
    pub async fn publish(
        &self,
        address: &Address,
        identity: Option<&[u8]>,
        signed_prekey: &[u8],
    ) -> Result<LogEntry, StoreError> {
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        let entry = self
            .store
            .publish_keys(address, identity, signed_prekey, &salt, now_ms())
            .await?;
        self.catch_up().await?;
        Ok(entry)
    }

    /// A signed head of the whole tree (reused for up to a second).
    pub fn head(&self) -> SignedTreeHead {
        let mut tree = self.tree();
        let size = tree.log.size();
        let now = u64::try_from(now_ms()).unwrap_or(0);
        if let Some(h) = &tree.head {
            if h.size == size && now.saturating_sub(h.timestamp_ms) < HEAD_REUSE.as_millis() as u64
            {
                return h.clone();
            }
        }
        let root = tree.log.root_at(size).expect("size is the tree's own");
        let head = SignedTreeHead::sign(&self.signing, size, root, now);
        tree.head = Some(head.clone());
        head
    }

    /// Consistency proof between two sizes (`new_size` ≤ current).
    pub fn consistency(&self, old_size: u64, new_size: u64) -> Option<Vec<Hash>> {
        self.tree().log.consistency_proof(old_size, new_size).ok()
    }

    /// Leaf hashes from `from`, at most `limit`.
    pub fn leaves(&self, from: u64, limit: usize) -> Vec<Hash> {
        let tree = self.tree();
        (from..tree.log.size())
            .take(limit)
            .filter_map(|i| tree.log.leaf(i))
            .collect()
    }

    /// The proof for a device's current keys, under a fresh head.
    pub async fn key_proof(
        &self,
        device: &DeviceRecord,
    ) -> Result<(LogEntry, KeyProof), StoreError> {
        let entry = self.entry(device.log_index).await?;
        if entry.keys() != Some((&device.identity, &device.signed_prekey)) {
            return Err(StoreError::Corrupt(
                "keylog: entry does not match the device",
            ));
        }
        let proof = self.proof_of(&entry)?;
        Ok((entry, proof))
    }

    /// The proof for a device's current credential record, under a fresh
    /// head.
    pub async fn credential_proof(
        &self,
        slot: &CredentialSlot,
    ) -> Result<(LogEntry, KeyProof), StoreError> {
        let entry = self.entry(slot.log_index).await?;
        if entry.record != LogRecord::Credential(slot.record.clone()) {
            return Err(StoreError::Corrupt(
                "keylog: entry does not match the credential record",
            ));
        }
        let proof = self.proof_of(&entry)?;
        Ok((entry, proof))
    }

    async fn entry(&self, index: u64) -> Result<LogEntry, StoreError> {
        self.catch_up().await?;
        self.store
            .log_entries(index, 1)
            .await?
            .pop()
            .ok_or(StoreError::Corrupt("keylog: a record's entry is missing"))
    }

    fn proof_of(&self, entry: &LogEntry) -> Result<KeyProof, StoreError> {
        let head = self.head();
        let audit_path = self
            .tree()
            .log
            .inclusion_proof(entry.index, head.size)
            .map_err(|_| StoreError::Corrupt("keylog: a record's entry is beyond the tree"))?;
        Ok(KeyProof {
            index: entry.index,
            epoch: entry.epoch,
            salt: entry.salt,
            audit_path,
            head,
        })
    }
}

/// The leaf hash of a stored entry.
pub fn leaf_of(e: &LogEntry) -> Hash {
    e.leaf()
}
