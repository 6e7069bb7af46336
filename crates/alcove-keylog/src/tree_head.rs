//! Signed tree heads: the log's Ed25519 key signs (size, root, time).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::Hash;

const LABEL: &[u8] = b"Alcove/v1/keylog-tree-head";
/// Length of [`SignedTreeHead::to_bytes`].
pub const TREE_HEAD_LEN: usize = 8 + 32 + 8 + 64;

/// A tree head signed by the log key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// Number of leaves.
    pub size: u64,
    /// Merkle tree hash.
    pub root: Hash,
    /// When it was signed, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Ed25519 signature over the label, size, root and time.
    pub signature: [u8; 64],
}

/// Why a tree head was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TreeHeadError {
    /// Not the documented encoding.
    #[error("malformed tree head")]
    Malformed,
    /// The signature is not the log key's.
    #[error("tree head signature does not verify with the log key")]
    BadSignature,
}

fn message(size: u64, root: &Hash, timestamp_ms: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(LABEL.len() + 48);
    m.extend_from_slice(LABEL);
    m.extend_from_slice(&size.to_be_bytes());
    m.extend_from_slice(root);
    m.extend_from_slice(&timestamp_ms.to_be_bytes());
    m
}

impl SignedTreeHead {
    /// Signs a tree head with the log key.
    pub fn sign(key: &SigningKey, size: u64, root: Hash, timestamp_ms: u64) -> Self {
        let signature = key.sign(&message(size, &root, timestamp_ms)).to_bytes();
        Self {
            size,
            root,
            timestamp_ms,
            signature,
        }
    }

    /// Checks the signature (strict Ed25519).
    pub fn verify(&self, log_key: &VerifyingKey) -> Result<(), TreeHeadError> {
        log_key
            .verify_strict(
                &message(self.size, &self.root, self.timestamp_ms),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| TreeHeadError::BadSignature)
    }

    /// `size (u64 BE) || root (32) || timestamp_ms (u64 BE) || signature (64)`.
    pub fn to_bytes(&self) -> [u8; TREE_HEAD_LEN] {
        let mut out = [0u8; TREE_HEAD_LEN];
        out[..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..40].copy_from_slice(&self.root);
        out[40..48].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out[48..].copy_from_slice(&self.signature);
        out
    }

    /// Parses the encoding of [`SignedTreeHead::to_bytes`] (signature not
    /// checked: call [`SignedTreeHead::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TreeHeadError> {
        if bytes.len() != TREE_HEAD_LEN {
            return Err(TreeHeadError::Malformed);
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut root = [0u8; 32];
        root.copy_from_slice(&bytes[8..40]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[48..]);
        Ok(Self {
            size: u64_at(0),
            root,
            timestamp_ms: u64_at(40),
            signature,
        })
    }
}
