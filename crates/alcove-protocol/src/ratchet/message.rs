//! Wire format of ratchet messages.
//!
//! ```text
//! normal message  = 0x21 || ratchet_key (32) || previous_chain_length (u32 BE)
//!                   || index (u32 BE) || nonce (24) || ciphertext || tag (16)
//! initial message = 0x22 || initiator identity (128) || base_key (32)
//!                   || signed_prekey_id (u32 BE) || has_one_time (1)
//!                   || one_time_prekey_id (u32 BE) || normal message
//! PQXDH initial    = 0x23 || the same fields as 0x22 || ML-KEM ciphertext (1088)
//!                   || normal message
//! ```
//!
//! The first byte is the version (high nibble, 2) and the kind (low
//! nibble). The 65-byte header of a normal message is authenticated as
//! associated data, after the session's 32-byte identity binding.
//!
//! Version 2 added the nonce: 24 random bytes drawn for every message and
//! used as the XChaCha20-Poly1305 nonce under the message key. A message
//! key is deterministic (the chain decides it), so a session state restored
//! from a backup or copy that encrypts again at an index it already used
//! gets the same key; the fresh nonce keeps (key, nonce) from repeating.

use crate::error::DecodeError;
use serde::{Deserialize, Serialize};

use crate::identity::{PublicIdentity, PUBLIC_IDENTITY_LEN};
use crate::kem::{KemCiphertext, KEM_CIPHERTEXT_LEN};
use crate::keys::DhPublicKey;
use crate::prekeys::PreKeyId;

pub(crate) const VERSION: u8 = 2;
pub(crate) const KIND_NORMAL: u8 = (VERSION << 4) | 1;
pub(crate) const KIND_INITIAL: u8 = (VERSION << 4) | 2;
/// An initial message of a PQXDH session (with the ML-KEM ciphertext).
pub(crate) const KIND_INITIAL_PQ: u8 = (VERSION << 4) | 3;

/// Length of the per-message random nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the normal-message header (kind byte and nonce included).
pub(crate) const HEADER_LEN: usize = 1 + 32 + 4 + 4 + NONCE_LEN;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Length of the X3DH prefix of an initial message (kind byte included).
pub(crate) const INITIAL_PREFIX_LEN: usize = 1 + PUBLIC_IDENTITY_LEN + 32 + 4 + 1 + 4;
/// Length of the PQXDH prefix: the X3DH fields and the ML-KEM ciphertext.
pub(crate) const PQ_INITIAL_PREFIX_LEN: usize = INITIAL_PREFIX_LEN + KEM_CIPHERTEXT_LEN;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Header {
    pub ratchet_key: DhPublicKey,
    pub previous_chain_length: u32,
    pub index: u32,
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(KIND_NORMAL);
        out.extend_from_slice(self.ratchet_key.as_bytes());
        out.extend_from_slice(&self.previous_chain_length.to_be_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.nonce);
    }
}

/// A parsed normal message, borrowing its input.
pub(crate) struct NormalMessage<'a> {
    pub header: Header,
    /// The raw header bytes (authenticated as associated data).
    pub header_bytes: &'a [u8],
    /// Ciphertext followed by the tag.
    pub ciphertext: &'a [u8],
}

impl<'a> NormalMessage<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(DecodeError::Truncated {
                what: "ratchet message",
                needed: HEADER_LEN + TAG_LEN,
                got: bytes.len(),
            });
        }
        check_kind(bytes[0], KIND_NORMAL, "ratchet message")?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[1..33]);
        let ratchet_key = DhPublicKey::from_array_unchecked(key);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[41..HEADER_LEN]);
        let header = Header {
            ratchet_key,
            previous_chain_length: read_u32(&bytes[33..37]),
            index: read_u32(&bytes[37..41]),
            nonce,
        };
        Ok(Self {
            header,
            header_bytes: &bytes[..HEADER_LEN],
            ciphertext: &bytes[HEADER_LEN..],
        })
    }
}

/// The X3DH fields an initial message carries ahead of its first normal
/// message, so the recipient can complete the key agreement.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub(crate) struct InitialPrefix {
    #[serde(with = "crate::identity::serde_bytes")]
    pub identity: PublicIdentity,
    pub base_key: DhPublicKey,
    pub signed_prekey_id: PreKeyId,
    pub one_time_prekey_id: Option<PreKeyId>,
    /// PQXDH only. Kept outside the serde layout (the session state writes
    /// it after its body, see `Session::to_bytes`), so that states saved
    /// before PQXDH still decode.
    #[serde(skip)]
    pub kem_ciphertext: Option<KemCiphertext>,
}

impl InitialPrefix {
    pub(crate) fn len(&self) -> usize {
        match self.kem_ciphertext {
            Some(_) => PQ_INITIAL_PREFIX_LEN,
            None => INITIAL_PREFIX_LEN,
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(match self.kem_ciphertext {
            Some(_) => KIND_INITIAL_PQ,
            None => KIND_INITIAL,
        });
        out.extend_from_slice(&self.identity.to_bytes());
        out.extend_from_slice(self.base_key.as_bytes());
        out.extend_from_slice(&self.signed_prekey_id.to_be_bytes());
        match self.one_time_prekey_id {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&id.to_be_bytes());
            }
            None => {
                out.push(0);
                out.extend_from_slice(&[0; 4]);
            }
        }
        if let Some(ct) = &self.kem_ciphertext {
            out.extend_from_slice(ct.as_bytes());
        }
    }
}

/// An initial-message prefix as read from the wire. The initiator's
/// identity stays raw bytes: the recipient compares them with the identity
/// sealed sender already authenticated, instead of verifying it twice.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct WirePrefix {
    pub identity: [u8; PUBLIC_IDENTITY_LEN],
    pub base_key: DhPublicKey,
    pub signed_prekey_id: PreKeyId,
    pub one_time_prekey_id: Option<PreKeyId>,
    /// Present exactly in a PQXDH initial message.
    pub kem_ciphertext: Option<KemCiphertext>,
}

impl WirePrefix {
    /// Parses the prefix and returns it with the rest of the input.
    pub(crate) fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        if bytes.len() < INITIAL_PREFIX_LEN {
            return Err(DecodeError::Truncated {
                what: "initial message",
                needed: INITIAL_PREFIX_LEN,
                got: bytes.len(),
            });
        }
        let pq = bytes[0] == KIND_INITIAL_PQ;
        if !pq {
            check_kind(bytes[0], KIND_INITIAL, "initial message")?;
        }
        let len = if pq {
            PQ_INITIAL_PREFIX_LEN
        } else {
            INITIAL_PREFIX_LEN
        };
        if bytes.len() < len {
            return Err(DecodeError::Truncated {
                what: "initial message",
                needed: len,
                got: bytes.len(),
            });
        }
        let mut identity = [0u8; PUBLIC_IDENTITY_LEN];
        identity.copy_from_slice(&bytes[1..1 + PUBLIC_IDENTITY_LEN]);
        let mut at = 1 + PUBLIC_IDENTITY_LEN;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[at..at + 32]);
        // Used only in X25519 with a contributory check, like ratchet keys.
        let base_key = DhPublicKey::from_array_unchecked(key);
        at += 32;
        let signed_prekey_id = read_u32(&bytes[at..at + 4]);
        at += 4;
        let one_time_prekey_id = match bytes[at] {
            0 if bytes[at + 1..at + 5] == [0; 4] => None,
            1 => Some(read_u32(&bytes[at + 1..at + 5])),
            _ => {
                return Err(DecodeError::Malformed {
                    what: "initial message",
                    reason: "bad one-time prekey flag",
                })
            }
        };
        let kem_ciphertext = match pq {
            true => Some(KemCiphertext::from_bytes(&bytes[INITIAL_PREFIX_LEN..len])?),
            false => None,
        };
        Ok((
            Self {
                identity,
                base_key,
                signed_prekey_id,
                one_time_prekey_id,
                kem_ciphertext,
            },
            &bytes[len..],
        ))
    }
}

fn check_kind(found: u8, expected: u8, what: &'static str) -> Result<(), DecodeError> {
    if found >> 4 != VERSION {
        return Err(DecodeError::UnsupportedVersion {
            what,
            version: (found >> 4).into(),
        });
    }
    if found != expected {
        return Err(DecodeError::Malformed {
            what,
            reason: "unexpected message kind",
        });
    }
    Ok(())
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut arr = [0u8; 4];
    arr.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(arr)
}

/// Whether these bytes start like an initial message (kind byte only).
pub(crate) fn is_initial(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&KIND_INITIAL) | Some(&KIND_INITIAL_PQ))
}
