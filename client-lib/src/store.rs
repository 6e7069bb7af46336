//! The profile-store seam: where the SDK keeps its (already encrypted)
//! records. [`SledProfileStore`] is the default, on local disk; a browser
//! build supplies one over IndexedDB, and tests supply one that fails on
//! demand. The SDK encrypts every record and its name is never a contact's
//! address before it reaches a store (`crate::vault`), so a store sees
//! only opaque names and ciphertext.

#[cfg(feature = "native")]
use crate::error::Error;
use crate::error::Result;

/// A record name and its stored bytes.
pub type StoredRecord = (Vec<u8>, Vec<u8>);

/// A durable, ordered key-value store for one profile.
///
/// Implementations must make [`ProfileStore::commit`] atomic (all of it or
/// none of it survives a crash) and durable before it returns: the SDK
/// acknowledges a message to the relay (which then deletes it) only after
/// the commit that stored it returned `Ok`.
pub trait ProfileStore: Send + Sync + 'static {
    /// One record.
    fn get(&self, name: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every record whose name starts with `prefix`, in byte order of names.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<StoredRecord>>;
    /// Whether the store holds no record at all.
    fn is_empty(&self) -> Result<bool>;
    /// Writes `puts` and deletes `removes` atomically and durably.
    fn commit(&self, puts: &[StoredRecord], removes: &[Vec<u8>]) -> Result<()>;
}

/// The default store: a sled database in a directory.
#[cfg(feature = "native")]
pub struct SledProfileStore {
    db: sled::Db,
    records: sled::Tree,
}

#[cfg(feature = "native")]
impl SledProfileStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Storage(e.to_string()))?;
        let db = sled::open(dir.join("store"))?;
        let records = db.open_tree("records")?;
        Ok(Self { db, records })
    }
}

#[cfg(feature = "native")]
impl ProfileStore for SledProfileStore {
    fn get(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.records.get(name)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<StoredRecord>> {
        self.records
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn is_empty(&self) -> Result<bool> {
        Ok(self.records.is_empty())
    }

    fn commit(&self, puts: &[StoredRecord], removes: &[Vec<u8>]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (name, value) in puts {
            batch.insert(name.as_slice(), value.as_slice());
        }
        for name in removes {
            batch.remove(name.as_slice());
        }
        self.records.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}
