//! The root key.
//!
//! A new root key is derived every time the conversation changes
//! direction: the Diffie-Hellman output of the two newest ratchet keys is
//! mixed into the old root key with HKDF, which yields the next root key
//! and a fresh chain key. Stealing today's root key therefore stops being
//! useful after the next round trip (post-compromise security).

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::chain::ChainKey;
use crate::kdf::{hkdf, labels, split64};

#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub(crate) struct RootKey([u8; 32]);

impl RootKey {
    pub(crate) fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// `(RK', CK) = HKDF-SHA256(salt = RK, ikm = DH, info = "Alcove/v1/ratchet-root")`.
    pub(crate) fn advance(&self, dh_output: &[u8; 32]) -> (RootKey, ChainKey) {
        let okm = hkdf::<64>(&self.0, dh_output, labels::RATCHET_ROOT);
        let (root, chain) = split64(&okm);
        (RootKey(root), ChainKey::new(chain))
    }
}
