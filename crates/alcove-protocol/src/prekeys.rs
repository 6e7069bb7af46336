//! Signed prekeys, one-time prekeys, and the bundle a device publishes so
//! that others can open a session with it while it is offline.
//!
//! A signed prekey is medium-term (rotated on a schedule) and signed by the
//! identity key together with its id and creation time. One-time prekeys
//! are used once each: the relay hands each out at most once and the owner
//! deletes the secret half after the first message that uses it.

use std::fmt;

use ed25519_dalek::Signature;
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::error::{DecodeError, KeyError};
use crate::identity::{IdentityKeyPair, PublicIdentity, PUBLIC_IDENTITY_LEN};
use crate::kdf::labels;
use crate::keys::DhPublicKey;

/// Identifies a prekey among its owner's prekeys.
pub type PreKeyId = u32;

/// The public half of a signed prekey.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPreKey {
    id: PreKeyId,
    created_at: u64,
    key: DhPublicKey,
    signature: Signature,
}

/// Length of [`SignedPreKey::to_bytes`].
pub const SIGNED_PREKEY_LEN: usize = 4 + 8 + 32 + 64;

impl SignedPreKey {
    /// The prekey's id.
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// Creation time, seconds since the Unix epoch, as signed.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// The X25519 key.
    pub fn key(&self) -> &DhPublicKey {
        &self.key
    }

    /// `id (u32 BE) || created_at (u64 BE) || key (32) || signature (64)`.
    pub fn to_bytes(&self) -> [u8; SIGNED_PREKEY_LEN] {
        let mut out = [0u8; SIGNED_PREKEY_LEN];
        out[..4].copy_from_slice(&self.id.to_be_bytes());
        out[4..12].copy_from_slice(&self.created_at.to_be_bytes());
        out[12..44].copy_from_slice(self.key.as_bytes());
        out[44..].copy_from_slice(&self.signature.to_bytes());
        out
    }

    /// Parses a signed prekey and verifies its signature by `identity`.
    pub fn from_bytes(bytes: &[u8], identity: &PublicIdentity) -> Result<Self, KeyError> {
        if bytes.len() != SIGNED_PREKEY_LEN {
            return Err(DecodeError::Malformed {
                what: "signed prekey",
                reason: "must be 108 bytes",
            }
            .into());
        }
        let id = u32::from_be_bytes(bytes[..4].try_into().unwrap_or_default());
        let created_at = u64::from_be_bytes(bytes[4..12].try_into().unwrap_or_default());
        let key = DhPublicKey::from_bytes(&bytes[12..44])?;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[44..]);
        let spk = Self {
            id,
            created_at,
            key,
            signature: Signature::from_bytes(&sig),
        };
        spk.verify(identity)?;
        Ok(spk)
    }

    /// Checks the signature of `identity` over this prekey.
    pub fn verify(&self, identity: &PublicIdentity) -> Result<(), KeyError> {
        identity
            .signing_key()
            .verify_strict(
                &signed_prekey_message(self.id, self.created_at, &self.key),
                &self.signature,
            )
            .map_err(|_| KeyError::BadSignature("signed prekey"))
    }
}

impl fmt::Debug for SignedPreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKey")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn signed_prekey_message(id: PreKeyId, created_at: u64, key: &DhPublicKey) -> Vec<u8> {
    let mut m = Vec::with_capacity(labels::SIGNED_PREKEY_SIGNATURE.len() + 44);
    m.extend_from_slice(labels::SIGNED_PREKEY_SIGNATURE);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&created_at.to_be_bytes());
    m.extend_from_slice(key.as_bytes());
    m
}

/// A signed prekey with its secret. Zeroized on drop, redacted in `Debug`.
pub struct SignedPreKeyPair {
    secret: StaticSecret,
    public: SignedPreKey,
}

impl SignedPreKeyPair {
    /// Generates and signs a new signed prekey.
    pub fn generate<R: RngCore + CryptoRng>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        id: PreKeyId,
        created_at: u64,
    ) -> Self {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        let key = DhPublicKey::from_secret(&secret);
        let signature = identity.sign(&signed_prekey_message(id, created_at, &key));
        Self {
            secret,
            public: SignedPreKey {
                id,
                created_at,
                key,
                signature,
            },
        }
    }

    /// The public half.
    pub fn public(&self) -> &SignedPreKey {
        &self.public
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// `secret (32) || public encoding`, for the SDK's encrypted store.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(32 + SIGNED_PREKEY_LEN));
        out.extend_from_slice(self.secret.as_bytes());
        out.extend_from_slice(&self.public.to_bytes());
        out
    }

    /// Restores a pair saved with [`Self::to_secret_bytes`], checking that
    /// the secret matches the public key and the signature is `identity`'s.
    pub fn from_secret_bytes(bytes: &[u8], identity: &PublicIdentity) -> Result<Self, KeyError> {
        if bytes.len() != 32 + SIGNED_PREKEY_LEN {
            return Err(DecodeError::Malformed {
                what: "signed prekey secret",
                reason: "wrong length",
            }
            .into());
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&bytes[..32]);
        let secret = StaticSecret::from(*raw);
        let public = SignedPreKey::from_bytes(&bytes[32..], identity)?;
        if DhPublicKey::from_secret(&secret) != public.key {
            return Err(KeyError::InvalidPublicKey(
                "signed prekey secret does not match its public key",
            ));
        }
        Ok(Self { secret, public })
    }
}

impl fmt::Debug for SignedPreKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKeyPair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The public half of a one-time prekey.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OneTimePreKey {
    /// The prekey's id.
    pub id: PreKeyId,
    /// The X25519 key.
    pub key: DhPublicKey,
}

/// Length of [`OneTimePreKey::to_bytes`].
pub const ONE_TIME_PREKEY_LEN: usize = 4 + 32;

impl OneTimePreKey {
    /// `id (u32 BE) || key (32)`.
    pub fn to_bytes(&self) -> [u8; ONE_TIME_PREKEY_LEN] {
        let mut out = [0u8; ONE_TIME_PREKEY_LEN];
        out[..4].copy_from_slice(&self.id.to_be_bytes());
        out[4..].copy_from_slice(self.key.as_bytes());
        out
    }

    /// Parses and validates a one-time prekey.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != ONE_TIME_PREKEY_LEN {
            return Err(DecodeError::Malformed {
                what: "one-time prekey",
                reason: "must be 36 bytes",
            }
            .into());
        }
        Ok(Self {
            id: u32::from_be_bytes(bytes[..4].try_into().unwrap_or_default()),
            key: DhPublicKey::from_bytes(&bytes[4..])?,
        })
    }
}

/// A one-time prekey with its secret. Zeroized on drop, redacted in `Debug`.
pub struct OneTimePreKeyPair {
    id: PreKeyId,
    secret: StaticSecret,
}

impl OneTimePreKeyPair {
    /// Generates a one-time prekey.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, id: PreKeyId) -> Self {
        Self {
            id,
            secret: StaticSecret::random_from_rng(&mut *rng),
        }
    }

    /// The public half.
    pub fn public(&self) -> OneTimePreKey {
        OneTimePreKey {
            id: self.id,
            key: DhPublicKey::from_secret(&self.secret),
        }
    }

    /// The id.
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// `id (u32 BE) || secret (32)`, for the SDK's encrypted store.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 36]> {
        let mut out = Zeroizing::new([0u8; 36]);
        out[..4].copy_from_slice(&self.id.to_be_bytes());
        out[4..].copy_from_slice(self.secret.as_bytes());
        out
    }

    /// Restores a pair saved with [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != 36 {
            return Err(DecodeError::Malformed {
                what: "one-time prekey secret",
                reason: "must be 36 bytes",
            });
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&bytes[4..]);
        Ok(Self {
            id: u32::from_be_bytes(bytes[..4].try_into().unwrap_or_default()),
            secret: StaticSecret::from(*raw),
        })
    }
}

impl fmt::Debug for OneTimePreKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePreKeyPair")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What a device publishes and what an initiator fetches: the identity,
/// one signed prekey and at most one one-time prekey. Verified on
/// construction from bytes; [`PreKeyBundle::new`] checks nothing because
/// its parts are already verified types.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PreKeyBundle {
    identity: PublicIdentity,
    signed_prekey: SignedPreKey,
    one_time_prekey: Option<OneTimePreKey>,
}

const BUNDLE_VERSION: u8 = 1;

impl PreKeyBundle {
    /// Assembles a bundle, checking that the signed prekey is signed by
    /// `identity`. A `PreKeyBundle` is therefore always verified.
    pub fn new(
        identity: PublicIdentity,
        signed_prekey: SignedPreKey,
        one_time_prekey: Option<OneTimePreKey>,
    ) -> Result<Self, KeyError> {
        signed_prekey.verify(&identity)?;
        Ok(Self {
            identity,
            signed_prekey,
            one_time_prekey,
        })
    }

    /// The owner's identity.
    pub fn identity(&self) -> &PublicIdentity {
        &self.identity
    }

    /// The signed prekey.
    pub fn signed_prekey(&self) -> &SignedPreKey {
        &self.signed_prekey
    }

    /// The one-time prekey, if the relay had one left.
    pub fn one_time_prekey(&self) -> Option<&OneTimePreKey> {
        self.one_time_prekey.as_ref()
    }

    /// `version (1) || identity (128) || signed prekey (108) || flag (1) || [one-time prekey (36)]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + PUBLIC_IDENTITY_LEN + SIGNED_PREKEY_LEN + 1 + 36);
        out.push(BUNDLE_VERSION);
        out.extend_from_slice(&self.identity.to_bytes());
        out.extend_from_slice(&self.signed_prekey.to_bytes());
        match &self.one_time_prekey {
            Some(otk) => {
                out.push(1);
                out.extend_from_slice(&otk.to_bytes());
            }
            None => out.push(0),
        }
        out
    }

    /// Parses a bundle and verifies every key and signature in it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let fixed = 1 + PUBLIC_IDENTITY_LEN + SIGNED_PREKEY_LEN + 1;
        if bytes.len() < fixed {
            return Err(DecodeError::Truncated {
                what: "prekey bundle",
                needed: fixed,
                got: bytes.len(),
            }
            .into());
        }
        if bytes[0] != BUNDLE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "prekey bundle",
                version: bytes[0].into(),
            }
            .into());
        }
        let identity = PublicIdentity::from_bytes(&bytes[1..1 + PUBLIC_IDENTITY_LEN])?;
        let spk_start = 1 + PUBLIC_IDENTITY_LEN;
        let signed_prekey =
            SignedPreKey::from_bytes(&bytes[spk_start..spk_start + SIGNED_PREKEY_LEN], &identity)?;
        let rest = &bytes[fixed..];
        let one_time_prekey = match (bytes[fixed - 1], rest.len()) {
            (0, 0) => None,
            (1, ONE_TIME_PREKEY_LEN) => Some(OneTimePreKey::from_bytes(rest)?),
            _ => {
                return Err(DecodeError::Malformed {
                    what: "prekey bundle",
                    reason: "bad one-time prekey flag or length",
                }
                .into())
            }
        };
        Ok(Self {
            identity,
            signed_prekey,
            one_time_prekey,
        })
    }
}
