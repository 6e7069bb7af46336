//! Symmetric-key chains and message keys.
//!
//! Each chain key yields one message key and the next chain key, both by
//! HMAC-SHA256 with distinct one-byte inputs (as the Double Ratchet
//! specification recommends). The old chain key is overwritten, so a
//! stolen state cannot walk backwards to earlier message keys.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

const MESSAGE_KEY_INPUT: u8 = 0x01;
const CHAIN_KEY_INPUT: u8 = 0x02;

#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub(crate) struct ChainKey([u8; 32]);

/// A key that encrypts exactly one message with ChaCha20-Poly1305.
/// Because it is never reused, the AEAD nonce is a constant zero.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub(crate) struct MessageKey(pub(crate) [u8; 32]);

impl ChainKey {
    pub(crate) fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key itself, for a group sender key's distribution.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives this step's message key and moves the chain one step on.
    pub(crate) fn step(&mut self) -> MessageKey {
        // Key the HMAC once and fork it: saves the key schedule of the
        // second HMAC, which is most of the cost for such short inputs.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        let mut for_message = keyed.clone();
        for_message.update(&[MESSAGE_KEY_INPUT]);
        let mut for_chain = keyed;
        for_chain.update(&[CHAIN_KEY_INPUT]);
        let message_key = MessageKey(for_message.finalize().into_bytes().into());
        self.0 = for_chain.finalize().into_bytes().into();
        message_key
    }
}
