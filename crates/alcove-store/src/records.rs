//! Versioned record encodings. Every stored value starts with a format
//! version byte, so a later release can migrate records it finds.
//!
//! | Tree | Key | Value (after the version byte 0x01) |
//! |---|---|---|
//! | `devices` | 0x00 · address (32) | registered_at_ms (i64) · identity (128) · signed prekey (108, or 1292 hybrid) · log index (u64) · epoch (u64) |
//! | `devices` | 0x01 · index (u64) | key-log entry: address (32) · epoch (u64) · salt (32) · logged_at_ms (i64) · identity (128) · signed prekey (108 or 1292) |
//! | `devices` | 0x02 | number of key-log entries (u64, no version byte) |
//! | `devices` | 0x01 · index (u64) | key-log entry of a credential record (version byte 0x11 instead of 0x01): address (32) · epoch (u64) · salt (32) · logged_at_ms (i64) · record (64 or 201) |
//! | `devices` | 0x03 · address (32) | delivery policy: 0x00 (open) or 0x01 · verifier (32) |
//! | `devices` | 0x04 · address (32) | credential slot: log index (u64) · epoch (u64) · revoked digests (u16 count · 32 each) · record (64 or 201) |
//! | `one_time_prekeys` | address (32) · id (u32) | one-time prekey (36, or 1284 hybrid) |
//! | `mailboxes` | address (32) · 0x00 · sequence (u64) | received_at_ms (i64) · client message id (16) · sealed envelope |
//! | `mailboxes` | address (32) · 0x01 | last sequence (u64) · depth (u64) |
//! | `mailboxes` | address (32) · 0x02 · client message id (16) | sequence (u64) · received_at_ms (i64) |
//! | `blobs` | blob id (16) | finished (u8) · size (u64) · chunks (u32) · expires_at_ms (i64) |
//! | `blob_chunks` | blob id (16) · index (u32) | encrypted bytes |
//! | `meta` | UTF-8 name | setting |
//!
//! A device's record and the key log share a tree, and so do a mailbox's
//! messages, counters and idempotency keys, because every atomic write
//! must stay within one tree (see [`crate::TREES`]).
//!
//! All integers are big-endian, so keys sort by sequence and index.

/// The two encodings of a signed prekey: classical (X25519) and hybrid
/// (X25519 and ML-KEM-768), see `alcove_protocol::prekeys`.
const SIGNED_PREKEY_LENS: [usize; 2] = [108, 1292];

use crate::{Result, StoreError};

/// The record format version this build writes.
pub const RECORD_VERSION: u8 = 1;

/// A registered device's public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// When the device registered, ms since the Unix epoch.
    pub registered_at_ms: i64,
    /// The 128-byte public identity.
    pub identity: Vec<u8>,
    /// The signed prekey: 108 bytes classical, 1292 hybrid (PQXDH).
    pub signed_prekey: Vec<u8>,
    /// Index of the key-log entry of these keys.
    pub log_index: u64,
    /// Key epoch: 0 at first registration, +1 for every change.
    pub epoch: u64,
}

/// What a key-log entry records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    /// A device's keys as published.
    Keys {
        /// The 128-byte public identity.
        identity: Vec<u8>,
        /// The signed prekey: 108 bytes classical, 1292 hybrid (PQXDH).
        signed_prekey: Vec<u8>,
    },
    /// A clinician's credential record: the digest and issuer of the
    /// credential the device presents, and its revocation once there is
    /// one (`alcove_protocol::credential::CredentialCommitment`, 64 or 201
    /// bytes).
    Credential(Vec<u8>),
}

/// The lengths of a credential record: without and with a revocation.
pub const CREDENTIAL_RECORD_LENS: [usize; 2] = [64, 64 + 137];

/// Leading byte of a credential entry in the `devices` tree (a key entry
/// starts with [`RECORD_VERSION`]).
const CREDENTIAL_ENTRY: u8 = 0x11;

/// One entry of the key transparency log: a device's keys, or a
/// clinician's credential record. The log's leaf is a salted commitment to
/// it (see `alcove-keylog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Leaf index.
    pub index: u64,
    /// The device.
    pub address: [u8; 32],
    /// The device's key epoch.
    pub epoch: u64,
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// When it was appended, ms since the Unix epoch.
    pub logged_at_ms: i64,
    /// What it records.
    pub record: LogRecord,
}

/// A clinician's current credential record and the digests of every
/// credential of theirs that was revoked (which the relay refuses to take
/// again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSlot {
    /// Index of the key-log entry of the record.
    pub log_index: u64,
    /// Credential epoch: 0 for the first record, +1 for every change.
    pub epoch: u64,
    /// The record (64 or 201 bytes).
    pub record: Vec<u8>,
    /// Digests of revoked credentials.
    pub revoked: Vec<[u8; 32]>,
}

/// An envelope waiting in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Sequence within the mailbox.
    pub sequence: u64,
    /// When the relay accepted it.
    pub received_at_ms: i64,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
}

/// A blob's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// Complete (all chunks stored and flushed).
    pub finished: bool,
    /// Total size in bytes.
    pub size: u64,
    /// Number of chunks.
    pub chunks: u32,
    /// When the blob is deleted.
    pub expires_at_ms: i64,
}

pub(crate) fn versioned(parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(RECORD_VERSION);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Strips and checks the version byte.
pub(crate) fn body<'a>(value: &'a [u8], tree: &'static str) -> Result<&'a [u8]> {
    match value.split_first() {
        Some((&RECORD_VERSION, rest)) => Ok(rest),
        _ => Err(StoreError::Corrupt(tree)),
    }
}

pub(crate) fn u64_at(bytes: &[u8], at: usize, tree: &'static str) -> Result<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(StoreError::Corrupt(tree))
}

pub(crate) fn i64_at(bytes: &[u8], at: usize, tree: &'static str) -> Result<i64> {
    u64_at(bytes, at, tree).map(|v| v as i64)
}

pub(crate) fn u32_at(bytes: &[u8], at: usize, tree: &'static str) -> Result<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(StoreError::Corrupt(tree))
}

impl DeviceRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        versioned(&[
            &self.registered_at_ms.to_be_bytes(),
            &self.identity,
            &self.signed_prekey,
            &self.log_index.to_be_bytes(),
            &self.epoch.to_be_bytes(),
        ])
    }

    /// Parses a `devices` value.
    pub fn decode(value: &[u8]) -> Result<Self> {
        let b = body(value, "devices")?;
        let spk_len = b.len().wrapping_sub(8 + 128 + 16);
        if !SIGNED_PREKEY_LENS.contains(&spk_len) {
            return Err(StoreError::Corrupt("devices"));
        }
        let end = 136 + spk_len;
        Ok(Self {
            registered_at_ms: i64_at(b, 0, "devices")?,
            identity: b[8..136].to_vec(),
            signed_prekey: b[136..end].to_vec(),
            log_index: u64_at(b, end, "devices")?,
            epoch: u64_at(b, end + 8, "devices")?,
        })
    }
}

impl LogEntry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let epoch = self.epoch.to_be_bytes();
        let logged = self.logged_at_ms.to_be_bytes();
        let head: [&[u8]; 4] = [&self.address, &epoch, &self.salt, &logged];
        match &self.record {
            LogRecord::Keys {
                identity,
                signed_prekey,
            } => versioned(&[&head[..], &[identity, signed_prekey]].concat()),
            LogRecord::Credential(record) => {
                let mut v = versioned(&[&head[..], &[record]].concat());
                v[0] = CREDENTIAL_ENTRY;
                v
            }
        }
    }

    /// Parses a `keylog` record (key = index, big-endian).
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self> {
        let index = u64_at(key, 0, "keylog")?;
        let (credential, b) = match value.split_first() {
            Some((&CREDENTIAL_ENTRY, rest)) => (true, rest),
            _ => (false, body(value, "keylog")?),
        };
        const HEAD: usize = 32 + 8 + 32 + 8;
        let tail = b.len().wrapping_sub(HEAD);
        let fits = if credential {
            CREDENTIAL_RECORD_LENS.contains(&tail)
        } else {
            SIGNED_PREKEY_LENS.contains(&tail.wrapping_sub(128))
        };
        if key.len() != 8 || !fits {
            return Err(StoreError::Corrupt("keylog"));
        }
        let mut address = [0u8; 32];
        address.copy_from_slice(&b[..32]);
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&b[40..72]);
        let record = if credential {
            LogRecord::Credential(b[HEAD..].to_vec())
        } else {
            LogRecord::Keys {
                identity: b[HEAD..HEAD + 128].to_vec(),
                signed_prekey: b[HEAD + 128..].to_vec(),
            }
        };
        Ok(Self {
            index,
            address,
            epoch: u64_at(b, 32, "keylog")?,
            salt,
            logged_at_ms: i64_at(b, 72, "keylog")?,
            record,
        })
    }

    /// The leaf hash the log holds for it (`alcove-keylog`).
    pub fn leaf(&self) -> alcove_keylog::Hash {
        match &self.record {
            LogRecord::Keys {
                identity,
                signed_prekey,
            } => alcove_keylog::key_leaf(
                &self.salt,
                &self.address,
                identity,
                signed_prekey,
                self.epoch,
            ),
            LogRecord::Credential(record) => {
                alcove_keylog::credential_leaf(&self.salt, &self.address, record, self.epoch)
            }
        }
    }

    /// The keys it records, if it is a key entry.
    pub fn keys(&self) -> Option<(&[u8], &[u8])> {
        match &self.record {
            LogRecord::Keys {
                identity,
                signed_prekey,
            } => Some((identity, signed_prekey)),
            LogRecord::Credential(_) => None,
        }
    }
}

impl CredentialSlot {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let count = u16::try_from(self.revoked.len()).unwrap_or(u16::MAX);
        let revoked: Vec<u8> = self
            .revoked
            .iter()
            .take(usize::from(count))
            .flatten()
            .copied()
            .collect();
        versioned(&[
            &self.log_index.to_be_bytes(),
            &self.epoch.to_be_bytes(),
            &count.to_be_bytes(),
            &revoked,
            &self.record,
        ])
    }

    /// Parses a credential-slot value of the `devices` tree.
    pub fn decode(value: &[u8]) -> Result<Self> {
        const WHAT: &str = "devices: credential slot";
        let b = body(value, WHAT)?;
        let count = b
            .get(16..18)
            .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])))
            .ok_or(StoreError::Corrupt(WHAT))?;
        let record_at = 18 + 32 * count;
        let record = b.get(record_at..).ok_or(StoreError::Corrupt(WHAT))?;
        if !CREDENTIAL_RECORD_LENS.contains(&record.len()) {
            return Err(StoreError::Corrupt(WHAT));
        }
        Ok(Self {
            log_index: u64_at(b, 0, WHAT)?,
            epoch: u64_at(b, 8, WHAT)?,
            record: record.to_vec(),
            revoked: b[18..record_at]
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32"))
                .collect(),
        })
    }
}

impl BlobInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        versioned(&[
            &[u8::from(self.finished)],
            &self.size.to_be_bytes(),
            &self.chunks.to_be_bytes(),
            &self.expires_at_ms.to_be_bytes(),
        ])
    }

    /// Parses a `blobs` value.
    pub fn decode(value: &[u8]) -> Result<Self> {
        let b = body(value, "blobs")?;
        if b.len() != 1 + 8 + 4 + 8 || b[0] > 1 {
            return Err(StoreError::Corrupt("blobs"));
        }
        Ok(Self {
            finished: b[0] == 1,
            size: u64_at(b, 1, "blobs")?,
            chunks: u32_at(b, 9, "blobs")?,
            expires_at_ms: i64_at(b, 13, "blobs")?,
        })
    }
}

/// The identity, epoch and registration time a key publication records:
/// a registration (`identity` given) starts at epoch 0 or follows the
/// current record; a signed-prekey change (`identity` absent) needs one.
pub(crate) fn next_publication(
    identity: Option<&[u8]>,
    current: Option<&DeviceRecord>,
    now_ms: i64,
) -> Result<(Vec<u8>, u64, i64)> {
    match (identity, current) {
        (Some(id), Some(cur)) => Ok((id.to_vec(), cur.epoch + 1, cur.registered_at_ms)),
        (Some(id), None) => Ok((id.to_vec(), 0, now_ms)),
        (None, Some(cur)) => Ok((cur.identity.clone(), cur.epoch + 1, cur.registered_at_ms)),
        (None, None) => Err(StoreError::NotFound("device")),
    }
}

impl crate::DeliveryPolicy {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Self::Open => versioned(&[&[0]]),
            Self::Verifier(v) => versioned(&[&[1], v]),
        }
    }

    /// Parses a delivery-policy value of the `devices` tree.
    pub fn decode(value: &[u8]) -> Result<Self> {
        let b = body(value, "devices: delivery policy")?;
        match b {
            [0] => Ok(Self::Open),
            [1, rest @ ..] if rest.len() == 32 => {
                let mut v = [0u8; 32];
                v.copy_from_slice(rest);
                Ok(Self::Verifier(v))
            }
            _ => Err(StoreError::Corrupt("devices: delivery policy")),
        }
    }
}
