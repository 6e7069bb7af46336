//! # alcove-keylog
//!
//! The key transparency log's mathematics, with no I/O: the Merkle tree of
//! RFC 6962 / RFC 9162 over SHA-256, inclusion and consistency proofs and
//! their verification, the commitment each leaf holds, and signed tree
//! heads. The relay appends and serves; clients and auditors verify with
//! the same code.
//!
//! A leaf does not list a device's keys in the clear. It is a
//! [`commitment`] to (address, identity, signed prekey, epoch) under a
//! per-entry random salt that the relay reveals only with the bundle it
//! hands out. A clinician's credential record is a leaf of its own kind
//! ([`credential_commitment`]). An auditor can check that the log only grows (consistency)
//! without learning who is registered; a client that fetched a bundle can
//! check that exactly those keys are in the log (inclusion).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod merkle;
mod tree_head;
mod verify;

pub use merkle::{
    consistency_proof, inclusion_proof, leaf_hash, node_hash, root, verify_consistency,
    verify_inclusion, Hash, MerkleLog, ProofError, EMPTY_ROOT,
};
pub use tree_head::{SignedTreeHead, TreeHeadError, TREE_HEAD_LEN};
pub use verify::{
    check_advance, check_credential, check_head, check_keys, credential_leaf, hashes, key_leaf,
    KeyProof, TransparencyError, MAX_HEAD_AGE_MS, MAX_HEAD_SKEW_MS,
};

use sha2::{Digest, Sha256};

/// Domain label of leaf commitments to key records.
const COMMITMENT_LABEL: &[u8] = b"Alcove/v1/keylog-leaf";
/// Domain label of leaf commitments to credential records.
const CREDENTIAL_COMMITMENT_LABEL: &[u8] = b"Alcove/v1/keylog-credential";

/// The data a leaf holds: SHA-256 over a label, the salt and the key record.
/// Without the salt the commitment reveals nothing about the record.
pub fn commitment(
    salt: &[u8; 32],
    address: &[u8; 32],
    identity: &[u8],
    signed_prekey: &[u8],
    epoch: u64,
) -> Hash {
    let mut h = Sha256::new();
    h.update(COMMITMENT_LABEL);
    h.update(salt);
    h.update(address);
    h.update((identity.len() as u32).to_be_bytes());
    h.update(identity);
    h.update((signed_prekey.len() as u32).to_be_bytes());
    h.update(signed_prekey);
    h.update(epoch.to_be_bytes());
    h.finalize().into()
}

/// The data a credential leaf holds: SHA-256 over its own label (so it can
/// never pass for a key record), the salt, the clinician's address, the
/// credential record (digest, issuer, revocation if any; see
/// `alcove_protocol::credential::CredentialCommitment`) and its epoch.
pub fn credential_commitment(
    salt: &[u8; 32],
    address: &[u8; 32],
    record: &[u8],
    epoch: u64,
) -> Hash {
    let mut h = Sha256::new();
    h.update(CREDENTIAL_COMMITMENT_LABEL);
    h.update(salt);
    h.update(address);
    h.update((record.len() as u32).to_be_bytes());
    h.update(record);
    h.update(epoch.to_be_bytes());
    h.finalize().into()
}
