//! Key derivation helpers and every domain-separation label in one place.
//!
//! All labels carry the protocol version, so a future version can never
//! derive the same keys from the same secrets.

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::KeyError;

/// HKDF info strings and signature/hash domain labels (version 1).
pub(crate) mod labels {
    /// Device address = SHA-256(ADDRESS || Ed25519 identity key).
    pub const ADDRESS: &[u8] = b"Alcove/v1/address";
    /// Signature by the Ed25519 identity key over the X25519 identity key.
    pub const IDENTITY_DH_SIGNATURE: &[u8] = b"Alcove/v1/identity-dh-key";
    /// Signature by the Ed25519 identity key over a signed prekey.
    pub const SIGNED_PREKEY_SIGNATURE: &[u8] = b"Alcove/v1/signed-prekey";
    /// X3DH: SK = HKDF(0^32, 0xFF^32 || DH1..DH4, X3DH).
    pub const X3DH: &[u8] = b"Alcove/v1/X3DH";
    /// PQXDH: SK = HKDF(0^32, 0xFF^32 || DH1..DH4 || SS, PQXDH), naming
    /// the curve, the hash and the KEM as the PQXDH specification asks.
    pub const PQXDH: &[u8] = b"Alcove/v2/PQXDH/X25519/SHA-256/ML-KEM-768";
    /// Signature over a hybrid signed prekey (X25519 and ML-KEM keys).
    pub const HYBRID_SIGNED_PREKEY_SIGNATURE: &[u8] = b"Alcove/v2/signed-prekey";
    /// Signature over a hybrid one-time prekey (X25519 and ML-KEM keys).
    pub const HYBRID_ONE_TIME_PREKEY_SIGNATURE: &[u8] = b"Alcove/v2/one-time-prekey";
    /// Double Ratchet root step: (RK', CK) = HKDF(RK, DH, RATCHET_ROOT).
    pub const RATCHET_ROOT: &[u8] = b"Alcove/v1/ratchet-root";
    /// Associated data prefix: SHA-256(AD || initiator id || responder id).
    pub const ASSOCIATED_DATA: &[u8] = b"Alcove/v1/associated-data";
    /// Sealed sender, ephemeral layer.
    pub const SEALED_EPHEMERAL: &[u8] = b"Alcove/v1/sealed-sender/ephemeral";
    /// Sealed sender, static (sender-authenticating) layer.
    pub const SEALED_STATIC: &[u8] = b"Alcove/v1/sealed-sender/static";
    /// Identity fingerprint = SHA-256(FINGERPRINT || ed25519 || x25519).
    pub const FINGERPRINT: &[u8] = b"Alcove/v1/fingerprint";
    /// Safety number half: iterated SHA-512 starting from this label.
    pub const SAFETY_NUMBER: &[u8] = b"Alcove/v1/safety-number";
    /// Delivery verifier = SHA-256(DELIVERY_VERIFIER || delivery key).
    pub const DELIVERY_VERIFIER: &[u8] = b"Alcove/v1/delivery-verifier";
}

/// HKDF-SHA256 into a fixed-size output that is zeroized on drop.
pub(crate) fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out.as_mut())
        // N is a compile-time constant far below HKDF's 255*32 byte limit.
        .expect("HKDF output length is a small constant");
    out
}

/// X25519 (RFC 7748) that refuses non-contributory results, i.e. a
/// low-order peer key.
///
/// The function computed is exactly X25519, but for a peer key on the curve
/// (every honest key is) it is evaluated in the birationally equivalent
/// Edwards form: `u -> (x, y)`, a constant-time multiplication by the
/// clamped scalar, `(x, y) -> u`. Both signs of `x` give the same `u`, so
/// the choice in the conversion does not matter. dalek runs Edwards
/// arithmetic on its AVX2 backend where the CPU has it, which makes this
/// about 1.4x faster than its Montgomery ladder here (see
/// `docs/benchmarks.md`). Keys on the twist go through the ladder. The
/// Wycheproof X25519 vectors and a property test pin the result to
/// x25519-dalek's ladder for every input.
pub(crate) fn dh(
    secret: &StaticSecret,
    public: &PublicKey,
    context: &'static str,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    dh_with(secret, &Peer::new(public), context)
}

/// [`dh`] against a peer key prepared once, for a key used in several
/// Diffie-Hellman computations (X3DH uses the signed prekey twice and the
/// base key three times): the curve conversion is then done once.
pub(crate) fn dh_with(
    secret: &StaticSecret,
    peer: &Peer,
    context: &'static str,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let shared = peer.x25519(secret);
    // Constant-time all-zero check, as x25519-dalek's `was_contributory`.
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(KeyError::NonContributory(context));
    }
    Ok(shared)
}

/// A peer's X25519 key with its Edwards form, when it has one.
pub(crate) struct Peer {
    montgomery: PublicKey,
    edwards: Option<EdwardsPoint>,
}

impl Peer {
    pub(crate) fn new(public: &PublicKey) -> Self {
        Self {
            montgomery: *public,
            edwards: MontgomeryPoint(public.to_bytes()).to_edwards(0),
        }
    }

    fn x25519(&self, secret: &StaticSecret) -> Zeroizing<[u8; 32]> {
        match &self.edwards {
            Some(point) => {
                let scalar = Zeroizing::new(secret.to_bytes());
                Zeroizing::new(point.mul_clamped(*scalar).to_montgomery().to_bytes())
            }
            None => Zeroizing::new(secret.diffie_hellman(&self.montgomery).to_bytes()),
        }
    }
}

/// Raw X25519, see [`dh`]. Public to the crate's tests through
/// [`crate::testing`].
pub(crate) fn x25519(secret: &StaticSecret, public: &PublicKey) -> Zeroizing<[u8; 32]> {
    Peer::new(public).x25519(secret)
}

/// Splits a 64-byte KDF output into two 32-byte halves.
pub(crate) fn split64(okm: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    a.copy_from_slice(&okm[..32]);
    b.copy_from_slice(&okm[32..]);
    (a, b)
}
