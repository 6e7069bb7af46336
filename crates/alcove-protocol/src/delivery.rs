//! Delivery keys: what lets someone put an envelope in a mailbox without
//! telling the relay who they are.
//!
//! Every device holds one random 16-byte [`DeliveryKey`]. It hands the key
//! to its contacts inside the end-to-end encryption (every content it sends
//! carries it, and an invite carries it for the first contact) and
//! registers only its [`DeliveryVerifier`] with the relay:
//!
//! ```text
//! verifier = SHA-256("Alcove/v1/delivery-verifier" || key)
//! ```
//!
//! A sender presents the key with an envelope; the relay hashes it and
//! compares the result with the recipient's verifier. The relay learns
//! that the sender holds the recipient's key, which every contact of the
//! recipient does, and nothing that tells contacts apart. Rotating the key
//! (a new key, a new verifier) cuts off whoever has not received the new
//! key through a session.

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::DecodeError;
use crate::kdf::labels;

/// Length of a delivery key.
pub const DELIVERY_KEY_LEN: usize = 16;
/// Length of a delivery verifier.
pub const DELIVERY_VERIFIER_LEN: usize = 32;

/// A device's delivery key: whoever holds it may send to the device.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct DeliveryKey([u8; DELIVERY_KEY_LEN]);

impl std::fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryKey(<redacted>)")
    }
}

impl DeliveryKey {
    /// A fresh random key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut key = [0u8; DELIVERY_KEY_LEN];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// The key with these 16 bytes.
    pub fn from_array(bytes: [u8; DELIVERY_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the 16 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let key: [u8; DELIVERY_KEY_LEN] = bytes.try_into().map_err(|_| DecodeError::Malformed {
            what: "delivery key",
            reason: "must be 16 bytes",
        })?;
        Ok(Self(key))
    }

    /// The raw bytes (secret: give them only to contacts, inside a session).
    pub fn as_bytes(&self) -> &[u8; DELIVERY_KEY_LEN] {
        &self.0
    }

    /// What the relay keeps to check this key.
    pub fn verifier(&self) -> DeliveryVerifier {
        let mut h = Sha256::new();
        h.update(labels::DELIVERY_VERIFIER);
        h.update(self.0);
        DeliveryVerifier(h.finalize().into())
    }
}

/// The hash of a delivery key, registered with the relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeliveryVerifier(pub [u8; DELIVERY_VERIFIER_LEN]);

impl DeliveryVerifier {
    /// Parses the 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let v: [u8; DELIVERY_VERIFIER_LEN] =
            bytes.try_into().map_err(|_| DecodeError::Malformed {
                what: "delivery verifier",
                reason: "must be 32 bytes",
            })?;
        Ok(Self(v))
    }

    /// Whether `presented` (raw bytes from a request) is the key behind this
    /// verifier, in constant time. Anything but 16 bytes is not.
    pub fn admits(&self, presented: &[u8]) -> bool {
        match DeliveryKey::from_bytes(presented) {
            Ok(key) => bool::from(key.verifier().0.ct_eq(&self.0)),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_admits_its_key_and_nothing_else() {
        let mut rng = rand::thread_rng();
        let key = DeliveryKey::generate(&mut rng);
        let other = DeliveryKey::generate(&mut rng);
        let v = key.verifier();
        assert!(v.admits(key.as_bytes()));
        assert!(!v.admits(other.as_bytes()));
        assert!(!v.admits(&[]));
        assert!(!v.admits(&key.as_bytes()[..15]));
        let mut longer = key.as_bytes().to_vec();
        longer.push(0);
        assert!(!v.admits(&longer));
        assert_eq!(format!("{key:?}"), "DeliveryKey(<redacted>)");
    }

    #[test]
    fn the_verifier_is_the_documented_hash() {
        // docs/protocol.md: SHA-256("Alcove/v1/delivery-verifier" || key).
        let key = DeliveryKey::from_bytes(&[7u8; 16]).unwrap();
        let mut h = Sha256::new();
        h.update(b"Alcove/v1/delivery-verifier");
        h.update([7u8; 16]);
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(key.verifier().0, expected);
    }
}
