//! The profile's local store, encrypted at rest.
//!
//! Each record is sealed with ChaCha20-Poly1305 under a key derived from
//! the app's 32-byte storage key, with a random nonce and the record's name
//! as associated data (so records cannot be swapped). Record names never
//! contain contact addresses: per-contact records are named by an HMAC of
//! the address under another derived key. A check record tells a wrong
//! storage key apart from a damaged profile.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const CHECK: &[u8] = b"check";
const CHECK_VALUE: &[u8] = b"alcove profile v1";

/// A record's name and its opened value.
pub(crate) type Record = (Vec<u8>, Zeroizing<Vec<u8>>);

pub(crate) struct Vault {
    db: sled::Db,
    records: sled::Tree,
    cipher: XChaCha20Poly1305,
    name_key: Zeroizing<[u8; 32]>,
}

impl Vault {
    pub(crate) fn open(dir: &std::path::Path, storage_key: &[u8; 32]) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Storage(e.to_string()))?;
        let db = sled::open(dir.join("store"))?;
        let records = db.open_tree("records")?;
        let hk = Hkdf::<Sha256>::new(Some(b"Alcove/v1/profile"), storage_key);
        let mut enc = Zeroizing::new([0u8; 32]);
        let mut names = Zeroizing::new([0u8; 32]);
        hk.expand(b"records", enc.as_mut())
            .map_err(|_| Error::StorageLocked)?;
        hk.expand(b"names", names.as_mut())
            .map_err(|_| Error::StorageLocked)?;
        let vault = Self {
            db,
            records,
            cipher: XChaCha20Poly1305::new(enc.as_ref().into()),
            name_key: names,
        };
        match vault.get(CHECK) {
            Ok(Some(v)) if v.as_slice() == CHECK_VALUE => {}
            Ok(None) if vault.records.is_empty() => vault.put(CHECK, CHECK_VALUE)?,
            _ => return Err(Error::StorageLocked),
        }
        Ok(vault)
    }

    /// The record name for something keyed by a contact's address.
    pub(crate) fn hashed_name(&self, prefix: &str, id: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.name_key.as_ref())
            .expect("HMAC accepts keys of any length");
        mac.update(id);
        let mut name = prefix.as_bytes().to_vec();
        name.push(b'/');
        name.extend_from_slice(&mac.finalize().into_bytes());
        name
    }

    fn seal(&self, name: &[u8], value: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: name,
                },
            )
            .map_err(|_| Error::Storage("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_record(&self, name: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 25 || sealed[0] != 1 {
            return Err(Error::StorageLocked);
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: name,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::StorageLocked)
    }

    pub(crate) fn get(&self, name: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>> {
        match self.records.get(name)? {
            Some(v) => Ok(Some(self.open_record(name, &v)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn put(&self, name: &[u8], value: &[u8]) -> Result<()> {
        self.records.insert(name, self.seal(name, value)?)?;
        Ok(())
    }

    /// Writes several records (and removals) atomically, then flushes.
    pub(crate) fn commit(&self, puts: &[(Vec<u8>, Vec<u8>)], removes: &[Vec<u8>]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (name, value) in puts {
            batch.insert(name.as_slice(), self.seal(name, value)?);
        }
        for name in removes {
            batch.remove(name.as_slice());
        }
        self.records.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Records whose names start with `prefix`, in name order.
    pub(crate) fn scan(&self, prefix: &[u8]) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for item in self.records.scan_prefix(prefix) {
            let (k, v) = item?;
            out.push((k.to_vec(), self.open_record(&k, &v)?));
        }
        Ok(out)
    }
}
