//! Sealed sender: the envelope the relay stores.
//!
//! The relay needs to know the recipient, never the sender. So the ratchet
//! message is wrapped in an outer layer sealed to the recipient's X25519
//! identity key, which carries the sender's identity inside:
//!
//! ```text
//! envelope = 0x01 || E (32) || sealed_identity (128 + 16) || sealed_body (bucket + 16)
//!
//! (chain, k1) = HKDF(salt = E || IK_B, ikm = DH(e, IK_B),  "Alcove/v1/sealed-sender/ephemeral")
//! sealed_identity = ChaCha20-Poly1305(k1, nonce 0, ad = 0x01 || E || IK_B, identity_A)
//! k2          = HKDF(salt = chain || sealed_identity, ikm = DH(IK_A, IK_B),
//!                    "Alcove/v1/sealed-sender/static")
//! sealed_body = ChaCha20-Poly1305(k2, nonce 0, ad = (0x01 || E || sealed_identity) zero-padded to 192 bytes,
//!                                 pad(message))
//! ```
//!
//! `e` is fresh for every envelope, so both keys are used once and the
//! zero nonce is safe. The body key depends on `DH(IK_A, IK_B)`, which
//! only the holder of the claimed sender's identity key (or the recipient)
//! can compute: a forged sender identity makes the body fail to open. The
//! authentication is deniable: the recipient could have made the envelope
//! too, so it convinces the recipient and no one else.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::StaticSecret;

use crate::error::{DecodeError, SealError};
use crate::identity::{IdentityKeyPair, PublicIdentity, PUBLIC_IDENTITY_LEN};
use crate::kdf::{self, labels};
use crate::keys::DhPublicKey;
use crate::limits::{MAX_SEALED_PLAINTEXT, PADDING_BUCKETS};
use crate::{padding, ratchet};

/// Envelope format version (first byte).
pub const ENVELOPE_VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const IDENTITY_START: usize = 1 + 32;
const BODY_START: usize = IDENTITY_START + PUBLIC_IDENTITY_LEN + TAG_LEN;

/// Bytes an envelope adds to the padded message.
pub const ENVELOPE_OVERHEAD: usize = BODY_START + TAG_LEN;

/// The smallest possible envelope (the smallest bucket).
pub const MIN_ENVELOPE_LEN: usize = ENVELOPE_OVERHEAD + PADDING_BUCKETS[0];

/// The padded size of a ratchet message. The bucket is chosen as if every
/// message carried the X3DH prefix of a first message, so that a first
/// message and a later one with the same content land in the same bucket:
/// the relay cannot tell a new (or unanswered) conversation by size.
pub fn padded_message_len(message: &[u8]) -> Result<usize, SealError> {
    let as_initial = message.len() - ratchet::prefix_len_of(message) + ratchet::INITIAL_OVERHEAD;
    padding::padded_len(as_initial).map_err(|_| SealError::TooLarge {
        size: message.len(),
        max: MAX_SEALED_PLAINTEXT,
    })
}

/// The envelope size for a ratchet message (see [`padded_message_len`]).
pub fn envelope_len(message: &[u8]) -> Result<usize, SealError> {
    Ok(ENVELOPE_OVERHEAD + padded_message_len(message)?)
}

/// Whether `len` is a size a well-formed envelope can have (used by the
/// relay and the auditor to classify stored records without any key).
pub fn is_envelope_len(len: usize) -> bool {
    len >= ENVELOPE_OVERHEAD && padding::is_bucket(len - ENVELOPE_OVERHEAD)
}

fn ephemeral_keys(
    dh: &[u8; 32],
    ephemeral: &DhPublicKey,
    recipient: &DhPublicKey,
) -> ([u8; 32], [u8; 32]) {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let okm = kdf::hkdf::<64>(&salt, dh, labels::SEALED_EPHEMERAL);
    kdf::split64(&okm)
}

fn static_key(
    dh: &[u8; 32],
    chain: &[u8; 32],
    sealed_identity: &[u8],
) -> zeroize::Zeroizing<[u8; 32]> {
    let mut salt = Vec::with_capacity(32 + sealed_identity.len());
    salt.extend_from_slice(chain);
    salt.extend_from_slice(sealed_identity);
    kdf::hkdf::<32>(&salt, dh, labels::SEALED_STATIC)
}

/// Seals `message` from `sender` to `recipient`. The result names neither
/// party in the clear.
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    sender: &IdentityKeyPair,
    recipient: &PublicIdentity,
    message: &[u8],
) -> Result<Vec<u8>, SealError> {
    let padded_len = padded_message_len(message)?;
    let e = StaticSecret::random_from_rng(&mut *rng);
    let e_pub = DhPublicKey::from_secret(&e);
    let recipient_dh = recipient.dh_key();
    let dh_e = kdf::dh(&e, &recipient_dh.to_dalek(), "sealed sender (ephemeral)")?;
    let (chain, k1) = ephemeral_keys(&dh_e, &e_pub, recipient_dh);
    let chain = zeroize::Zeroizing::new(chain);
    let k1 = zeroize::Zeroizing::new(k1);

    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + padded_len);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(e_pub.as_bytes());
    out.extend_from_slice(&sender.public().to_bytes());
    let ad1 = ad_identity(&e_pub, recipient_dh);
    let tag1 = ChaCha20Poly1305::new(k1.as_ref().into())
        .encrypt_in_place_detached(&Nonce::default(), &ad1, &mut out[IDENTITY_START..])
        .map_err(|_| SealError::DecryptionFailed)?;
    out.extend_from_slice(&tag1);

    let dh_s = kdf::dh(
        sender.dh_secret(),
        &recipient_dh.to_dalek(),
        "sealed sender (static)",
    )?;
    let k2 = static_key(&dh_s, &chain, &out[IDENTITY_START..BODY_START]);
    padding::pad_into_len(&mut out, message, padded_len)?;
    let (head, body) = out.split_at_mut(BODY_START);
    let tag2 = ChaCha20Poly1305::new(k2.as_ref().into())
        .encrypt_in_place_detached(&Nonce::default(), &body_ad(head), body)
        .map_err(|_| SealError::DecryptionFailed)?;
    out.extend_from_slice(&tag2);
    Ok(out)
}

/// The body's associated data: everything before it (177 bytes), zero
/// padded to 192, a multiple of 64 that keeps Poly1305's AVX2 backend on
/// its fast path (see `ratchet::AD_LEN`).
fn body_ad(head: &[u8]) -> [u8; 192] {
    let mut ad = [0u8; 192];
    ad[..BODY_START].copy_from_slice(&head[..BODY_START]);
    ad
}

fn ad_identity(e_pub: &DhPublicKey, recipient: &DhPublicKey) -> [u8; 65] {
    let mut ad = [0u8; 65];
    ad[0] = ENVELOPE_VERSION;
    ad[1..33].copy_from_slice(e_pub.as_bytes());
    ad[33..].copy_from_slice(recipient.as_bytes());
    ad
}

/// An opened envelope: the authenticated sender and the inner message.
#[derive(Debug)]
pub struct Opened {
    /// The sender, authenticated to the recipient.
    pub sender: PublicIdentity,
    /// The inner message (a ratchet message), padding removed.
    pub message: Vec<u8>,
}

/// Opens an envelope addressed to `recipient`.
pub fn open(recipient: &IdentityKeyPair, envelope: &[u8]) -> Result<Opened, SealError> {
    if envelope.len() < ENVELOPE_OVERHEAD + PADDING_BUCKETS[0] {
        return Err(DecodeError::Truncated {
            what: "sealed envelope",
            needed: ENVELOPE_OVERHEAD + PADDING_BUCKETS[0],
            got: envelope.len(),
        }
        .into());
    }
    if envelope[0] != ENVELOPE_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            what: "sealed envelope",
            version: envelope[0].into(),
        }
        .into());
    }
    if !is_envelope_len(envelope.len()) {
        return Err(DecodeError::Malformed {
            what: "sealed envelope",
            reason: "length is not a padding bucket plus overhead",
        }
        .into());
    }
    let mut e = [0u8; 32];
    e.copy_from_slice(&envelope[1..33]);
    let e_pub = DhPublicKey::from_array_unchecked(e);
    let recipient_dh = recipient.public().dh_key();
    let dh_e = kdf::dh(
        recipient.dh_secret(),
        &e_pub.to_dalek(),
        "sealed sender (ephemeral)",
    )?;
    let (chain, k1) = ephemeral_keys(&dh_e, &e_pub, recipient_dh);
    let chain = zeroize::Zeroizing::new(chain);
    let k1 = zeroize::Zeroizing::new(k1);

    let sealed_identity = &envelope[IDENTITY_START..BODY_START];
    let mut identity = sealed_identity[..PUBLIC_IDENTITY_LEN].to_vec();
    ChaCha20Poly1305::new(k1.as_ref().into())
        .decrypt_in_place_detached(
            &Nonce::default(),
            &ad_identity(&e_pub, recipient_dh),
            &mut identity,
            Tag::from_slice(&sealed_identity[PUBLIC_IDENTITY_LEN..]),
        )
        .map_err(|_| SealError::DecryptionFailed)?;
    let sender = PublicIdentity::from_bytes(&identity)?;

    let dh_s = kdf::dh(
        recipient.dh_secret(),
        &sender.dh_key().to_dalek(),
        "sealed sender (static)",
    )?;
    let k2 = static_key(&dh_s, &chain, sealed_identity);
    let body_end = envelope.len() - TAG_LEN;
    let mut body = envelope[BODY_START..body_end].to_vec();
    ChaCha20Poly1305::new(k2.as_ref().into())
        .decrypt_in_place_detached(
            &Nonce::default(),
            &body_ad(&envelope[..BODY_START]),
            &mut body,
            Tag::from_slice(&envelope[body_end..]),
        )
        .map_err(|_| SealError::DecryptionFailed)?;
    let len = padding::unpad(&body)?.len();
    body.truncate(len);
    Ok(Opened {
        sender,
        message: body,
    })
}
