//! The profile's records, encrypted at rest over a [`ProfileStore`].
//!
//! Each record is sealed with XChaCha20-Poly1305 under a key derived from
//! the app's 32-byte storage key, with a random nonce and the record's name
//! as associated data (so records cannot be swapped). Record names are
//! listed in [`crate::records`]; none contains a contact's address or an
//! invite nonce: those records are named by an HMAC under another derived
//! key. A check record tells a wrong storage key apart from a damaged
//! profile.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::records;
use crate::store::ProfileStore;

/// The check record's value; names the profile format.
const CHECK_VALUE: &[u8] = b"alcove profile v2";

/// A record's name and its opened value.
pub(crate) type Record = (Vec<u8>, Zeroizing<Vec<u8>>);

pub(crate) struct Vault {
    store: Box<dyn ProfileStore>,
    cipher: XChaCha20Poly1305,
    name_key: Zeroizing<[u8; 32]>,
}

impl Vault {
    pub(crate) fn open(store: Box<dyn ProfileStore>, storage_key: &[u8; 32]) -> Result<Self> {
        let hk = Hkdf::<Sha256>::new(Some(b"Alcove/v1/profile"), storage_key);
        let mut enc = Zeroizing::new([0u8; 32]);
        let mut names = Zeroizing::new([0u8; 32]);
        hk.expand(b"records", enc.as_mut())
            .map_err(|_| Error::StorageLocked)?;
        hk.expand(b"names", names.as_mut())
            .map_err(|_| Error::StorageLocked)?;
        let vault = Self {
            store,
            cipher: XChaCha20Poly1305::new(enc.as_ref().into()),
            name_key: names,
        };
        match vault.store.get(records::CHECK)? {
            Some(sealed) => match vault.open_record(records::CHECK, &sealed) {
                Ok(v) if v.as_slice() == CHECK_VALUE => {}
                Ok(v) => {
                    return Err(Error::ProfileCorrupt(format!(
                        "unsupported profile format {:?}",
                        String::from_utf8_lossy(&v)
                    )))
                }
                Err(_) => return Err(Error::StorageLocked),
            },
            None if vault.store.is_empty()? => {
                vault.commit(vec![(records::CHECK.to_vec(), CHECK_VALUE.to_vec())], &[])?
            }
            None => return Err(Error::ProfileCorrupt("the check record is missing".into())),
        }
        Ok(vault)
    }

    /// The record name for something that must not appear in a name (a
    /// contact's address, an invite nonce): `prefix/` and an HMAC of `id`.
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
            return Err(corrupt(name));
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
            .map_err(|_| corrupt(name))
    }

    pub(crate) fn get(&self, name: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>> {
        match self.store.get(name)? {
            Some(v) => Ok(Some(self.open_record(name, &v)?)),
            None => Ok(None),
        }
    }

    /// Writes several records (and removals) atomically and durably. The
    /// plaintext values (keys, sessions, messages) are wiped once sealed.
    pub(crate) fn commit(&self, puts: Vec<(Vec<u8>, Vec<u8>)>, removes: &[Vec<u8>]) -> Result<()> {
        let mut sealed = Vec::with_capacity(puts.len());
        let mut failure = None;
        for (name, mut value) in puts {
            match self.seal(&name, &value) {
                Ok(s) => sealed.push((name, s)),
                Err(e) => failure = Some(e),
            }
            value.zeroize();
        }
        if let Some(e) = failure {
            return Err(e);
        }
        self.store.commit(&sealed, removes)
    }

    /// The names of the records under `prefix`, in order (nothing opened).
    pub(crate) fn names(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .store
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Records whose names start with `prefix`, in name order.
    pub(crate) fn scan(&self, prefix: &[u8]) -> Result<Vec<Record>> {
        self.store
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(k, v)| {
                let opened = self.open_record(&k, &v)?;
                Ok((k, opened))
            })
            .collect()
    }
}

/// A record that does not open under a key that opened the check record
/// was damaged (or planted).
fn corrupt(name: &[u8]) -> Error {
    let shown: String = name
        .iter()
        .take_while(|b| **b != b'/')
        .map(|b| *b as char)
        .collect();
    Error::ProfileCorrupt(format!("record {shown:?} does not open"))
}
