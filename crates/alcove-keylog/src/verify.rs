//! What a client or an auditor checks: that a tree head is signed by the
//! pinned log key, fresh, and consistent with the newest head seen before;
//! and that a device's keys are a leaf of the tree a head names.

use ed25519_dalek::VerifyingKey;
use thiserror::Error;

use crate::{commitment, leaf_hash, verify_consistency, verify_inclusion, Hash, SignedTreeHead};

/// How old a tree head may be before a client refuses it. The relay signs a
/// fresh head whenever it serves one, so an old head means a relay that
/// replays what it signed before.
pub const MAX_HEAD_AGE_MS: u64 = 24 * 60 * 60 * 1000;
/// How far in the future a head's timestamp may be (clock skew).
pub const MAX_HEAD_SKEW_MS: u64 = 10 * 60 * 1000;

/// Why the key log refused something. Each variant is a different attack
/// (or fault), so callers can report them apart.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransparencyError {
    /// The head is not signed by the pinned log key.
    #[error("tree head is not signed by the pinned log key")]
    BadSignature,
    /// The head is older than `MAX_HEAD_AGE_MS` or from the future.
    #[error("tree head timestamp is out of range ({age_ms} ms old): a replayed head")]
    StaleHead {
        /// Age of the head (negative: in the future).
        age_ms: i64,
    },
    /// The head names a smaller tree than one already seen.
    #[error("tree head rolls the log back from {seen} to {served} entries")]
    Rollback {
        /// Size of the newest head seen before.
        seen: u64,
        /// Size of the head served now.
        served: u64,
    },
    /// The head is not an extension of the newest head seen before.
    #[error("the key log forked: the head of {served} entries does not extend the one of {seen}")]
    Forked {
        /// Size of the newest head seen before.
        seen: u64,
        /// Size of the head served now.
        served: u64,
    },
    /// The keys are not the leaf the inclusion proof claims.
    #[error("the keys served are not in the key log")]
    NotInLog,
    /// The keys are in the log, but an older entry than one already seen.
    #[error("the relay served key entry epoch {served}, older than epoch {seen} seen before")]
    StaleKeys {
        /// Highest epoch seen before for this address.
        seen: u64,
        /// Epoch served now.
        served: u64,
    },
    /// A field had the wrong length.
    #[error("malformed key log data: {0}")]
    Malformed(&'static str),
}

/// The proof a relay sends with a device's keys: where the keys' leaf is,
/// the salt that opens its commitment, and the signed head it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProof {
    /// Leaf index.
    pub index: u64,
    /// The device's key epoch: 0 at registration, +1 per change.
    pub epoch: u64,
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// The leaf's audit path in the head's tree.
    pub audit_path: Vec<Hash>,
    /// The signed head the path leads to.
    pub head: SignedTreeHead,
}

/// Checks a head on its own: signature by `log_key` and freshness against
/// `now_ms`.
pub fn check_head(
    log_key: &VerifyingKey,
    head: &SignedTreeHead,
    now_ms: u64,
) -> Result<(), TransparencyError> {
    head.verify(log_key)
        .map_err(|_| TransparencyError::BadSignature)?;
    let age = now_ms as i128 - head.timestamp_ms as i128;
    if age > MAX_HEAD_AGE_MS as i128 || -age > MAX_HEAD_SKEW_MS as i128 {
        return Err(TransparencyError::StaleHead {
            age_ms: age.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        });
    }
    Ok(())
}

/// Checks that `new` may replace `latest` as the newest head seen:
/// `new` is signed and fresh ([`check_head`]), not smaller, and when larger
/// `proof` shows that `latest`'s tree is a prefix of it. Returns whether
/// `new` is newer (the caller then records it).
pub fn check_advance(
    log_key: &VerifyingKey,
    latest: Option<&SignedTreeHead>,
    new: &SignedTreeHead,
    proof: &[Hash],
    now_ms: u64,
) -> Result<bool, TransparencyError> {
    check_head(log_key, new, now_ms)?;
    let Some(latest) = latest else {
        return Ok(true);
    };
    let (seen, served) = (latest.size, new.size);
    if served < seen {
        return Err(TransparencyError::Rollback { seen, served });
    }
    verify_consistency(seen, served, &latest.root, &new.root, proof)
        .map_err(|_| TransparencyError::Forked { seen, served })?;
    Ok(served > seen || new.timestamp_ms > latest.timestamp_ms)
}

/// Checks that (address, identity, signed prekey) at `proof.epoch` is the
/// leaf at `proof.index` of the tree `proof.head` signs (the head itself is
/// checked with [`check_advance`]), and that the epoch is not older than
/// `min_epoch`, the highest one seen before for this address.
pub fn check_keys(
    address: &[u8; 32],
    identity: &[u8],
    signed_prekey: &[u8],
    proof: &KeyProof,
    min_epoch: u64,
) -> Result<(), TransparencyError> {
    let leaf = key_leaf(&proof.salt, address, identity, signed_prekey, proof.epoch);
    check_leaf(&leaf, proof, min_epoch)
}

/// As [`check_keys`], for a clinician's credential record at
/// `proof.epoch` (credential epochs count separately from key epochs).
pub fn check_credential(
    address: &[u8; 32],
    record: &[u8],
    proof: &KeyProof,
    min_epoch: u64,
) -> Result<(), TransparencyError> {
    let leaf = credential_leaf(&proof.salt, address, record, proof.epoch);
    check_leaf(&leaf, proof, min_epoch)
}

fn check_leaf(leaf: &Hash, proof: &KeyProof, min_epoch: u64) -> Result<(), TransparencyError> {
    verify_inclusion(
        leaf,
        proof.index,
        proof.head.size,
        &proof.audit_path,
        &proof.head.root,
    )
    .map_err(|_| TransparencyError::NotInLog)?;
    if proof.epoch < min_epoch {
        return Err(TransparencyError::StaleKeys {
            seen: min_epoch,
            served: proof.epoch,
        });
    }
    Ok(())
}

/// Parses 32-byte hashes (an audit path or a consistency proof).
pub fn hashes(parts: &[Vec<u8>]) -> Result<Vec<Hash>, TransparencyError> {
    parts
        .iter()
        .map(|p| {
            <[u8; 32]>::try_from(p.as_slice())
                .map_err(|_| TransparencyError::Malformed("proof hash is not 32 bytes"))
        })
        .collect()
}

/// The leaf hash of a key record, as the relay appends it.
pub fn key_leaf(
    salt: &[u8; 32],
    address: &[u8; 32],
    identity: &[u8],
    signed_prekey: &[u8],
    epoch: u64,
) -> Hash {
    leaf_hash(&commitment(salt, address, identity, signed_prekey, epoch))
}

/// The leaf hash of a credential record, as the relay appends it.
pub fn credential_leaf(salt: &[u8; 32], address: &[u8; 32], record: &[u8], epoch: u64) -> Hash {
    leaf_hash(&crate::credential_commitment(salt, address, record, epoch))
}
