//! Public key and identifier newtypes.
//!
//! Distinct types for distinct things, so the compiler catches an address
//! passed where a key was meant.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{DecodeError, KeyError};
use crate::kdf::labels;

/// An X25519 public key that has been checked to be a point of the curve
/// (not of its twist) and not of low order.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct DhPublicKey([u8; 32]);

impl DhPublicKey {
    /// Parses and validates a 32-byte X25519 public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::InvalidPublicKey("X25519 key must be 32 bytes"))?;
        // A key we generate is always a multiple of the base point: on the
        // curve, in the prime-order subgroup times the cofactor. Reject
        // twist points and small-order points up front; the X25519 results
        // are checked again for contributory behaviour.
        match curve25519_dalek_point(&arr) {
            Some(false) => Ok(Self(arr)),
            Some(true) => Err(KeyError::InvalidPublicKey("X25519 key of low order")),
            None => Err(KeyError::InvalidPublicKey("X25519 key not on the curve")),
        }
    }

    /// Wraps a ratchet key from a message header without the curve check.
    ///
    /// Ratchet keys arrive with every message, so checking each costs more
    /// than the rest of the decryption. They are only ever used in an
    /// X25519 whose result is checked to be contributory, which rejects the
    /// low-order points; X25519 is safe on twist points.
    pub(crate) fn from_array_unchecked(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a key computed locally from a secret (always valid).
    pub(crate) fn from_secret(secret: &x25519_dalek::StaticSecret) -> Self {
        Self(x25519_dalek::PublicKey::from(secret).to_bytes())
    }

    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn to_dalek(self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(self.0)
    }
}

/// `Some(is_small_order)` for a u-coordinate on the curve, `None` for one
/// on the twist. The Edwards form is used only to classify the point.
fn curve25519_dalek_point(u: &[u8; 32]) -> Option<bool> {
    curve25519_dalek::montgomery::MontgomeryPoint(*u)
        .to_edwards(0)
        .map(|p| p.is_small_order())
}

impl fmt::Debug for DhPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhPublicKey({})", URL_SAFE_NO_PAD.encode(self.0))
    }
}

/// A device's address on the relay: SHA-256 over a domain label and the
/// device's Ed25519 identity key. Self-certifying: a relay cannot hand out
/// another identity key for an address without the client noticing.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct DeviceAddress([u8; 32]);

impl DeviceAddress {
    /// The address bound to an Ed25519 identity key.
    pub fn for_identity_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        let mut h = Sha256::new();
        h.update(labels::ADDRESS);
        h.update(key.as_bytes());
        Self(h.finalize().into())
    }

    /// Wraps 32 bytes received from elsewhere (for example the relay). The
    /// bytes are only a name; binding to a key is checked by comparing with
    /// [`crate::PublicIdentity::address`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| DecodeError::Malformed {
            what: "device address",
            reason: "must be 32 bytes",
        })?;
        Ok(Self(arr))
    }

    /// The 32 bytes of the address.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for DeviceAddress {
    /// Unpadded URL-safe base64 (43 characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceAddress({self})")
    }
}

impl FromStr for DeviceAddress {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| DecodeError::Malformed {
                what: "device address",
                reason: "not unpadded URL-safe base64",
            })?;
        Self::from_bytes(&bytes)
    }
}

/// SHA-256 over both public identity keys: what an invite carries and what
/// a person compares, in digits, as a safety number.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityFingerprint(pub(crate) [u8; 32]);

impl IdentityFingerprint {
    /// Wraps 32 bytes (for example from an invite).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for IdentityFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityFingerprint({})", URL_SAFE_NO_PAD.encode(self.0))
    }
}
