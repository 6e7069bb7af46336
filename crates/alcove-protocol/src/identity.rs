//! Device identities.
//!
//! A device owns an Ed25519 signing key (its long-term identity, from which
//! its [`DeviceAddress`] is derived) and an X25519 key used in X3DH and in
//! sealed sender. The X25519 key is signed by the Ed25519 key, so the pair
//! travels as one [`PublicIdentity`] that anyone can check.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::error::{DecodeError, KeyError};
use crate::kdf::labels;
use crate::keys::{DeviceAddress, DhPublicKey, IdentityFingerprint};

/// Length of [`PublicIdentity::to_bytes`]: Ed25519 key, X25519 key, signature.
pub const PUBLIC_IDENTITY_LEN: usize = 32 + 32 + 64;

/// Length of [`IdentityKeyPair::to_secret_bytes`].
pub const IDENTITY_SECRET_LEN: usize = 64;

/// The public half of a device identity, with the Ed25519 signature that
/// binds the X25519 key to the Ed25519 key. Always verified once built.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicIdentity {
    signing: VerifyingKey,
    dh: DhPublicKey,
    dh_signature: Signature,
}

impl PublicIdentity {
    /// The Ed25519 identity key.
    pub fn signing_key(&self) -> &VerifyingKey {
        &self.signing
    }

    /// The X25519 identity key (checked and signed).
    pub fn dh_key(&self) -> &DhPublicKey {
        &self.dh
    }

    /// The device address derived from the Ed25519 key.
    pub fn address(&self) -> DeviceAddress {
        DeviceAddress::for_identity_key(&self.signing)
    }

    /// SHA-256 fingerprint over both keys (what an invite carries).
    pub fn fingerprint(&self) -> IdentityFingerprint {
        let mut h = Sha256::new();
        h.update(labels::FINGERPRINT);
        h.update(self.signing.as_bytes());
        h.update(self.dh.as_bytes());
        IdentityFingerprint(h.finalize().into())
    }

    /// `ed25519 key (32) || x25519 key (32) || signature (64)`.
    pub fn to_bytes(&self) -> [u8; PUBLIC_IDENTITY_LEN] {
        let mut out = [0u8; PUBLIC_IDENTITY_LEN];
        out[..32].copy_from_slice(self.signing.as_bytes());
        out[32..64].copy_from_slice(self.dh.as_bytes());
        out[64..].copy_from_slice(&self.dh_signature.to_bytes());
        out
    }

    /// Parses and verifies a public identity: both keys valid, the
    /// signature strict and correct.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != PUBLIC_IDENTITY_LEN {
            return Err(DecodeError::Malformed {
                what: "public identity",
                reason: "must be 128 bytes",
            }
            .into());
        }
        let signing = parse_verifying_key(&bytes[..32])?;
        let dh = DhPublicKey::from_bytes(&bytes[32..64])?;
        let sig_bytes: [u8; 64] = bytes[64..]
            .try_into()
            .map_err(|_| KeyError::BadSignature("identity"))?;
        let dh_signature = Signature::from_bytes(&sig_bytes);
        signing
            .verify_strict(&identity_dh_message(&dh), &dh_signature)
            .map_err(|_| KeyError::BadSignature("X25519 identity key"))?;
        Ok(Self {
            signing,
            dh,
            dh_signature,
        })
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicIdentity")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// Parses an Ed25519 public key, refusing encodings that are not points
/// and points of small order (which would accept forged signatures).
pub(crate) fn parse_verifying_key(bytes: &[u8]) -> Result<VerifyingKey, KeyError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::InvalidPublicKey("Ed25519 key must be 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&arr)
        .map_err(|_| KeyError::InvalidPublicKey("Ed25519 key is not a curve point"))?;
    if key.is_weak() {
        return Err(KeyError::InvalidPublicKey("Ed25519 key of small order"));
    }
    Ok(key)
}

fn identity_dh_message(dh: &DhPublicKey) -> Vec<u8> {
    let mut m = Vec::with_capacity(labels::IDENTITY_DH_SIGNATURE.len() + 32);
    m.extend_from_slice(labels::IDENTITY_DH_SIGNATURE);
    m.extend_from_slice(dh.as_bytes());
    m
}

/// A device's secret identity. Zeroized on drop; `Debug` shows only the
/// address.
pub struct IdentityKeyPair {
    signing: SigningKey,
    dh: StaticSecret,
    public: PublicIdentity,
}

impl IdentityKeyPair {
    /// Generates a fresh identity.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let signing = SigningKey::generate(rng);
        let dh = StaticSecret::random_from_rng(&mut *rng);
        Self::from_parts(signing, dh)
    }

    fn from_parts(signing: SigningKey, dh: StaticSecret) -> Self {
        let dh_public = DhPublicKey::from_secret(&dh);
        let dh_signature = signing.sign(&identity_dh_message(&dh_public));
        let public = PublicIdentity {
            signing: signing.verifying_key(),
            dh: dh_public,
            dh_signature,
        };
        Self {
            signing,
            dh,
            public,
        }
    }

    /// The public identity to publish.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// Signs `message` with the Ed25519 identity key. Callers add their own
    /// domain label (the relay's challenge, the key log) to what they sign.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }

    /// The two secret keys (Ed25519 seed, X25519 scalar), for the SDK's
    /// encrypted profile store. Zeroized on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; IDENTITY_SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; IDENTITY_SECRET_LEN]);
        out[..32].copy_from_slice(self.signing.as_bytes());
        out[32..].copy_from_slice(self.dh.as_bytes());
        out
    }

    /// Restores an identity saved with [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != IDENTITY_SECRET_LEN {
            return Err(DecodeError::Malformed {
                what: "identity secret",
                reason: "must be 64 bytes",
            });
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[..32]);
        let mut dh = Zeroizing::new([0u8; 32]);
        dh.copy_from_slice(&bytes[32..]);
        Ok(Self::from_parts(
            SigningKey::from_bytes(&seed),
            StaticSecret::from(*dh),
        ))
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("address", &self.public.address())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Serde for [`PublicIdentity`] as its 128-byte encoding, re-verified on load.
pub(crate) mod serde_bytes {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    use super::PublicIdentity;

    pub fn serialize<S: Serializer>(id: &PublicIdentity, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&id.to_bytes())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicIdentity, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(d)?;
        PublicIdentity::from_bytes(&bytes).map_err(|_| D::Error::custom("invalid identity"))
    }
}
