//! Signed prekeys, one-time prekeys, and the bundle a device publishes so
//! that others can open a session with it while it is offline.
//!
//! A signed prekey is medium-term (rotated on a schedule) and signed by the
//! identity key together with its id and creation time. One-time prekeys
//! are used once each: the relay hands each out at most once and the owner
//! deletes the secret half after the first message that uses it.
//!
//! Since PQXDH (docs/protocol.md §17) both kinds are *hybrid*: a signed
//! prekey carries an ML-KEM-768 last-resort key beside its X25519 key, a
//! one-time prekey a one-time ML-KEM-768 key, each under the identity's
//! signature with version-2 labels. The classical (version 1) encodings
//! are still read, so that profiles and bundles from before the change
//! keep working; a bundle is either wholly classical or wholly hybrid.

use std::fmt;

use ed25519_dalek::Signature;
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::error::{DecodeError, KeyError};
use crate::identity::{IdentityKeyPair, PublicIdentity, PUBLIC_IDENTITY_LEN};
use crate::kdf::labels;
use crate::kem::{KemKeyPair, KemPublicKey, KEM_PUBLIC_KEY_LEN, KEM_SEED_LEN};
use crate::keys::DhPublicKey;

/// Identifies a prekey among its owner's prekeys.
pub type PreKeyId = u32;

/// The public half of a signed prekey.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPreKey {
    id: PreKeyId,
    created_at: u64,
    key: DhPublicKey,
    /// The ML-KEM last-resort prekey (hybrid prekeys only).
    kem: Option<KemPublicKey>,
    signature: Signature,
}

/// Length of a classical (X25519 only) [`SignedPreKey::to_bytes`].
pub const SIGNED_PREKEY_LEN: usize = 4 + 8 + 32 + 64;
/// Length of a hybrid [`SignedPreKey::to_bytes`] (with the ML-KEM key).
pub const HYBRID_SIGNED_PREKEY_LEN: usize = SIGNED_PREKEY_LEN + KEM_PUBLIC_KEY_LEN;

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

    /// The ML-KEM last-resort prekey, if this is a hybrid prekey.
    pub fn kem_key(&self) -> Option<&KemPublicKey> {
        self.kem.as_ref()
    }

    /// Whether this prekey carries an ML-KEM key (PQXDH) or not (X3DH).
    pub fn is_hybrid(&self) -> bool {
        self.kem.is_some()
    }

    /// Classical: `id (u32 BE) || created_at (u64 BE) || key (32) ||
    /// signature (64)`, 108 bytes. Hybrid: `id || created_at || key (32) ||
    /// ML-KEM key (1184) || signature (64)`, 1292 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HYBRID_SIGNED_PREKEY_LEN);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        if let Some(kem) = &self.kem {
            out.extend_from_slice(kem.as_bytes());
        }
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Parses a signed prekey (either encoding, told apart by length) and
    /// verifies its signature by `identity`.
    pub fn from_bytes(bytes: &[u8], identity: &PublicIdentity) -> Result<Self, KeyError> {
        let kem = match bytes.len() {
            SIGNED_PREKEY_LEN => None,
            HYBRID_SIGNED_PREKEY_LEN => Some(KemPublicKey::from_bytes(
                &bytes[44..44 + KEM_PUBLIC_KEY_LEN],
            )?),
            _ => {
                return Err(DecodeError::Malformed {
                    what: "signed prekey",
                    reason: "must be 108 (classical) or 1292 (hybrid) bytes",
                }
                .into())
            }
        };
        let id = u32::from_be_bytes(bytes[..4].try_into().unwrap_or_default());
        let created_at = u64::from_be_bytes(bytes[4..12].try_into().unwrap_or_default());
        let key = DhPublicKey::from_bytes(&bytes[12..44])?;
        let spk = Self {
            id,
            created_at,
            key,
            kem,
            signature: trailing_signature(bytes),
        };
        spk.verify(identity)?;
        Ok(spk)
    }

    /// Checks the signature of `identity` over this prekey.
    pub fn verify(&self, identity: &PublicIdentity) -> Result<(), KeyError> {
        identity
            .signing_key()
            .verify_strict(
                &signed_prekey_message(self.id, self.created_at, &self.key, self.kem.as_ref()),
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

/// The Ed25519 signature every signed encoding here ends with (callers
/// have checked the length).
fn trailing_signature(bytes: &[u8]) -> Signature {
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&bytes[bytes.len().saturating_sub(64)..]);
    Signature::from_bytes(&sig)
}

/// What a signed prekey's signature covers. The hybrid form has its own
/// label, so a hybrid prekey's signature can never pass for a classical
/// one's (a relay cannot strip the ML-KEM key and keep the signature).
fn signed_prekey_message(
    id: PreKeyId,
    created_at: u64,
    key: &DhPublicKey,
    kem: Option<&KemPublicKey>,
) -> Vec<u8> {
    let label = match kem {
        None => labels::SIGNED_PREKEY_SIGNATURE,
        Some(_) => labels::HYBRID_SIGNED_PREKEY_SIGNATURE,
    };
    let mut m = Vec::with_capacity(label.len() + 44 + KEM_PUBLIC_KEY_LEN);
    m.extend_from_slice(label);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&created_at.to_be_bytes());
    m.extend_from_slice(key.as_bytes());
    if let Some(kem) = kem {
        m.extend_from_slice(kem.as_bytes());
    }
    m
}

/// A signed prekey with its secrets. Zeroized on drop, redacted in `Debug`.
pub struct SignedPreKeyPair {
    secret: StaticSecret,
    kem: Option<KemKeyPair>,
    public: SignedPreKey,
}

impl SignedPreKeyPair {
    /// Generates and signs a new hybrid signed prekey: an X25519 key and
    /// an ML-KEM-768 last-resort key under one signature.
    pub fn generate<R: RngCore + CryptoRng>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        id: PreKeyId,
        created_at: u64,
    ) -> Self {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        let kem = KemKeyPair::generate(rng);
        Self::sign(identity, id, created_at, secret, Some(kem))
    }

    /// Generates a classical (X25519-only) signed prekey, as devices did
    /// before PQXDH. Only for tests of the transition.
    #[doc(hidden)]
    pub fn generate_classical<R: RngCore + CryptoRng>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        id: PreKeyId,
        created_at: u64,
    ) -> Self {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        Self::sign(identity, id, created_at, secret, None)
    }

    fn sign(
        identity: &IdentityKeyPair,
        id: PreKeyId,
        created_at: u64,
        secret: StaticSecret,
        kem: Option<KemKeyPair>,
    ) -> Self {
        let key = DhPublicKey::from_secret(&secret);
        let kem_public = kem.as_ref().map(KemKeyPair::public);
        let signature = identity.sign(&signed_prekey_message(
            id,
            created_at,
            &key,
            kem_public.as_ref(),
        ));
        Self {
            secret,
            kem,
            public: SignedPreKey {
                id,
                created_at,
                key,
                kem: kem_public,
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

    pub(crate) fn kem(&self) -> Option<&KemKeyPair> {
        self.kem.as_ref()
    }

    /// Classical: `secret (32) || public encoding (108)`. Hybrid:
    /// `secret (32) || ML-KEM seed (64) || public encoding (1292)`. For
    /// the SDK's encrypted store.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(32 + 64 + HYBRID_SIGNED_PREKEY_LEN));
        out.extend_from_slice(self.secret.as_bytes());
        if let Some(kem) = &self.kem {
            out.extend_from_slice(kem.seed());
        }
        out.extend_from_slice(&self.public.to_bytes());
        out
    }

    /// Restores a pair saved with [`Self::to_secret_bytes`], checking that
    /// the secrets match the public keys and the signature is `identity`'s.
    pub fn from_secret_bytes(bytes: &[u8], identity: &PublicIdentity) -> Result<Self, KeyError> {
        let seed_len = match bytes.len() {
            n if n == 32 + SIGNED_PREKEY_LEN => 0,
            n if n == 32 + KEM_SEED_LEN + HYBRID_SIGNED_PREKEY_LEN => KEM_SEED_LEN,
            _ => {
                return Err(DecodeError::Malformed {
                    what: "signed prekey secret",
                    reason: "wrong length",
                }
                .into())
            }
        };
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&bytes[..32]);
        let secret = StaticSecret::from(*raw);
        let kem = match seed_len {
            0 => None,
            _ => Some(KemKeyPair::from_seed(&bytes[32..32 + KEM_SEED_LEN])?),
        };
        let public = SignedPreKey::from_bytes(&bytes[32 + seed_len..], identity)?;
        if DhPublicKey::from_secret(&secret) != public.key
            || kem.as_ref().map(KemKeyPair::public) != public.kem
        {
            return Err(KeyError::InvalidPublicKey(
                "signed prekey secret does not match its public key",
            ));
        }
        Ok(Self {
            secret,
            kem,
            public,
        })
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
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OneTimePreKey {
    /// The prekey's id.
    pub id: PreKeyId,
    /// The X25519 key.
    pub key: DhPublicKey,
    /// The one-time ML-KEM key and the identity's signature over the
    /// whole prekey (hybrid prekeys only).
    kem: Option<(KemPublicKey, Signature)>,
}

/// Length of a classical [`OneTimePreKey::to_bytes`].
pub const ONE_TIME_PREKEY_LEN: usize = 4 + 32;
/// Length of a hybrid [`OneTimePreKey::to_bytes`].
pub const HYBRID_ONE_TIME_PREKEY_LEN: usize = ONE_TIME_PREKEY_LEN + KEM_PUBLIC_KEY_LEN + 64;

fn one_time_prekey_message(id: PreKeyId, key: &DhPublicKey, kem: &KemPublicKey) -> Vec<u8> {
    let label = labels::HYBRID_ONE_TIME_PREKEY_SIGNATURE;
    let mut m = Vec::with_capacity(label.len() + 36 + KEM_PUBLIC_KEY_LEN);
    m.extend_from_slice(label);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(key.as_bytes());
    m.extend_from_slice(kem.as_bytes());
    m
}

impl OneTimePreKey {
    /// The one-time ML-KEM key, if this is a hybrid prekey.
    pub fn kem_key(&self) -> Option<&KemPublicKey> {
        self.kem.as_ref().map(|(k, _)| k)
    }

    /// Whether this prekey carries an ML-KEM key.
    pub fn is_hybrid(&self) -> bool {
        self.kem.is_some()
    }

    /// Classical: `id (u32 BE) || key (32)`, 36 bytes. Hybrid: `id || key
    /// || ML-KEM key (1184) || signature (64)`, 1284 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HYBRID_ONE_TIME_PREKEY_LEN);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        if let Some((kem, sig)) = &self.kem {
            out.extend_from_slice(kem.as_bytes());
            out.extend_from_slice(&sig.to_bytes());
        }
        out
    }

    /// Parses and validates a one-time prekey (either encoding, told apart
    /// by length). A hybrid prekey's signature is checked by
    /// [`Self::verify`], which [`PreKeyBundle`] always calls.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let kem = match bytes.len() {
            ONE_TIME_PREKEY_LEN => None,
            HYBRID_ONE_TIME_PREKEY_LEN => {
                let kem = KemPublicKey::from_bytes(&bytes[36..36 + KEM_PUBLIC_KEY_LEN])?;
                Some((kem, trailing_signature(bytes)))
            }
            _ => {
                return Err(DecodeError::Malformed {
                    what: "one-time prekey",
                    reason: "must be 36 (classical) or 1284 (hybrid) bytes",
                }
                .into())
            }
        };
        Ok(Self {
            id: u32::from_be_bytes(bytes[..4].try_into().unwrap_or_default()),
            key: DhPublicKey::from_bytes(&bytes[4..36])?,
            kem,
        })
    }

    /// Checks `identity`'s signature over a hybrid prekey (a classical one
    /// has none and passes).
    pub fn verify(&self, identity: &PublicIdentity) -> Result<(), KeyError> {
        match &self.kem {
            None => Ok(()),
            Some((kem, sig)) => identity
                .signing_key()
                .verify_strict(&one_time_prekey_message(self.id, &self.key, kem), sig)
                .map_err(|_| KeyError::BadSignature("one-time prekey")),
        }
    }
}

/// A one-time prekey with its secrets. Zeroized on drop, redacted in `Debug`.
pub struct OneTimePreKeyPair {
    id: PreKeyId,
    secret: StaticSecret,
    kem: Option<(KemKeyPair, Signature)>,
}

/// Length of a classical [`OneTimePreKeyPair::to_secret_bytes`].
pub const ONE_TIME_SECRET_LEN: usize = 4 + 32;
/// Length of a hybrid [`OneTimePreKeyPair::to_secret_bytes`].
const HYBRID_ONE_TIME_SECRET_LEN: usize = ONE_TIME_SECRET_LEN + KEM_SEED_LEN + 64;

impl OneTimePreKeyPair {
    /// Generates a hybrid one-time prekey (X25519 and ML-KEM-768), signed
    /// by `identity`.
    pub fn generate<R: RngCore + CryptoRng>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        id: PreKeyId,
    ) -> Self {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        let kem = KemKeyPair::generate(rng);
        let sig = identity.sign(&one_time_prekey_message(
            id,
            &DhPublicKey::from_secret(&secret),
            &kem.public(),
        ));
        Self {
            id,
            secret,
            kem: Some((kem, sig)),
        }
    }

    /// Generates a classical (X25519-only) one-time prekey, as devices did
    /// before PQXDH. Only for tests of the transition.
    #[doc(hidden)]
    pub fn generate_classical<R: RngCore + CryptoRng>(rng: &mut R, id: PreKeyId) -> Self {
        Self {
            id,
            secret: StaticSecret::random_from_rng(&mut *rng),
            kem: None,
        }
    }

    /// The public half.
    pub fn public(&self) -> OneTimePreKey {
        OneTimePreKey {
            id: self.id,
            key: DhPublicKey::from_secret(&self.secret),
            kem: self.kem.as_ref().map(|(k, sig)| (k.public(), *sig)),
        }
    }

    /// The id.
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// Whether this prekey has an ML-KEM half.
    pub fn is_hybrid(&self) -> bool {
        self.kem.is_some()
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    pub(crate) fn kem(&self) -> Option<&KemKeyPair> {
        self.kem.as_ref().map(|(k, _)| k)
    }

    /// Classical: `id (u32 BE) || secret (32)`. Hybrid: `id || secret ||
    /// ML-KEM seed (64) || signature (64)`. For the SDK's encrypted store.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(HYBRID_ONE_TIME_SECRET_LEN));
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(self.secret.as_bytes());
        if let Some((kem, sig)) = &self.kem {
            out.extend_from_slice(kem.seed());
            out.extend_from_slice(&sig.to_bytes());
        }
        out
    }

    /// Restores a pair saved with [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let kem = match bytes.len() {
            ONE_TIME_SECRET_LEN => None,
            HYBRID_ONE_TIME_SECRET_LEN => {
                let kem = KemKeyPair::from_seed(&bytes[36..36 + KEM_SEED_LEN])?;
                Some((kem, trailing_signature(bytes)))
            }
            _ => {
                return Err(DecodeError::Malformed {
                    what: "one-time prekey secret",
                    reason: "must be 36 or 164 bytes",
                })
            }
        };
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&bytes[4..36]);
        Ok(Self {
            id: u32::from_be_bytes(bytes[..4].try_into().unwrap_or_default()),
            secret: StaticSecret::from(*raw),
            kem,
        })
    }
}

impl fmt::Debug for OneTimePreKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePreKeyPair")
            .field("id", &self.id)
            .field("hybrid", &self.kem.is_some())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What a device publishes and what an initiator fetches: the identity,
/// one signed prekey and at most one one-time prekey. Always verified:
/// every signature is checked on construction, and the prekeys are either
/// all hybrid (a version 2 bundle, used only with PQXDH) or all classical
/// (version 1, X3DH).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PreKeyBundle {
    identity: PublicIdentity,
    signed_prekey: SignedPreKey,
    one_time_prekey: Option<OneTimePreKey>,
}

const BUNDLE_VERSION: u8 = 1;
const HYBRID_BUNDLE_VERSION: u8 = 2;

impl PreKeyBundle {
    /// Assembles a bundle, checking that the prekeys are signed by
    /// `identity` and of one kind (all hybrid or all classical). A
    /// `PreKeyBundle` is therefore always verified.
    pub fn new(
        identity: PublicIdentity,
        signed_prekey: SignedPreKey,
        one_time_prekey: Option<OneTimePreKey>,
    ) -> Result<Self, KeyError> {
        signed_prekey.verify(&identity)?;
        Self::with_verified_signed_prekey(identity, signed_prekey, one_time_prekey)
    }

    /// [`Self::new`] for a signed prekey whose signature by `identity` was
    /// just checked (by [`SignedPreKey::from_bytes`]): checks the rest.
    fn with_verified_signed_prekey(
        identity: PublicIdentity,
        signed_prekey: SignedPreKey,
        one_time_prekey: Option<OneTimePreKey>,
    ) -> Result<Self, KeyError> {
        if let Some(otk) = &one_time_prekey {
            if otk.is_hybrid() != signed_prekey.is_hybrid() {
                return Err(KeyError::MixedPreKeys);
            }
            otk.verify(&identity)?;
        }
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

    /// Whether the bundle is hybrid (version 2): such a bundle is used
    /// only with PQXDH.
    pub fn is_hybrid(&self) -> bool {
        self.signed_prekey.is_hybrid()
    }

    /// Version 1 (classical): `1 || identity (128) || signed prekey (108)
    /// || flag (1) || [one-time prekey (36)]`. Version 2 (hybrid): `2 ||
    /// identity (128) || signed prekey (1292) || flag (1) || [one-time
    /// prekey (1284)]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + PUBLIC_IDENTITY_LEN + HYBRID_SIGNED_PREKEY_LEN + 1 + HYBRID_ONE_TIME_PREKEY_LEN,
        );
        out.push(if self.is_hybrid() {
            HYBRID_BUNDLE_VERSION
        } else {
            BUNDLE_VERSION
        });
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

    /// Parses a bundle and verifies every key and signature in it. A
    /// version 2 bundle must hold hybrid prekeys only, a version 1 bundle
    /// classical ones only.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (spk_len, otk_len) = match bytes.first() {
            Some(&BUNDLE_VERSION) => (SIGNED_PREKEY_LEN, ONE_TIME_PREKEY_LEN),
            Some(&HYBRID_BUNDLE_VERSION) => (HYBRID_SIGNED_PREKEY_LEN, HYBRID_ONE_TIME_PREKEY_LEN),
            Some(&v) => {
                return Err(DecodeError::UnsupportedVersion {
                    what: "prekey bundle",
                    version: v.into(),
                }
                .into())
            }
            None => (0, 0),
        };
        let fixed = 1 + PUBLIC_IDENTITY_LEN + spk_len + 1;
        if spk_len == 0 || bytes.len() < fixed {
            return Err(DecodeError::Truncated {
                what: "prekey bundle",
                needed: fixed.max(1 + PUBLIC_IDENTITY_LEN + SIGNED_PREKEY_LEN + 1),
                got: bytes.len(),
            }
            .into());
        }
        let identity = PublicIdentity::from_bytes(&bytes[1..1 + PUBLIC_IDENTITY_LEN])?;
        let spk_start = 1 + PUBLIC_IDENTITY_LEN;
        let signed_prekey =
            SignedPreKey::from_bytes(&bytes[spk_start..spk_start + spk_len], &identity)?;
        let rest = &bytes[fixed..];
        let one_time_prekey = match (bytes[fixed - 1], rest.len()) {
            (0, 0) => None,
            (1, n) if n == otk_len => Some(OneTimePreKey::from_bytes(rest)?),
            _ => {
                return Err(DecodeError::Malformed {
                    what: "prekey bundle",
                    reason: "bad one-time prekey flag or length",
                }
                .into())
            }
        };
        // `SignedPreKey::from_bytes` verified the signed prekey.
        Self::with_verified_signed_prekey(identity, signed_prekey, one_time_prekey)
    }
}
