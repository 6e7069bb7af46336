//! # alcove-protocol
//!
//! The cryptographic core of Alcove, an end-to-end encrypted asynchronous
//! messenger for therapists and their clients. This crate does no I/O: the
//! caller moves bytes, stores state and supplies randomness. That keeps it
//! embeddable anywhere, testable with fixed vectors, and fuzzable.
//!
//! The pieces, in the order a conversation uses them:
//!
//! - [`identity`]: a device's Ed25519 signing key and the X25519 key it signs;
//!   the device [`keys::DeviceAddress`] is a hash of the signing key.
//! - [`prekeys`]: signed prekeys and one-time prekeys, published as a
//!   [`prekeys::PreKeyBundle`] so others can start a session while the
//!   device is offline.
//! - [`x3dh`]: the asynchronous key agreement that turns a bundle into a
//!   [`ratchet::Session`].
//! - [`ratchet`]: the Double Ratchet: forward secrecy and post-compromise
//!   security per message.
//! - [`sealed_sender`]: the outer layer the relay stores; it names only the
//!   recipient, pads the payload into a few size buckets ([`padding`]), and
//!   authenticates the sender to the recipient alone.
//! - [`content`]: the typed messages (text, homework, feedback, attachments,
//!   receipts) defined in `proto/alcove/v1/content.proto`.
//! - [`attachment`]: chunked encryption of documents of any size.
//! - [`fingerprint`] and [`invite`]: out-of-band verification.
//! - [`credential`]: clinician credentials an issuer signs, and their
//!   revocations.
//! - [`availability`]: office hours and the out-of-hours notice.
//! - [`transcript`]: conversations exported as signed hash chains.
//! - [`group`]: group membership signed by admins, and sender keys.
//!
//! The wire formats and the reasoning behind them are in `docs/protocol.md`.
//!
//! ```
//! use alcove_protocol::{identity::IdentityKeyPair, prekeys::{SignedPreKeyPair, OneTimePreKeyPair, PreKeyBundle}, x3dh, sealed_sender};
//! let mut rng = rand_core::OsRng;
//! let therapist = IdentityKeyPair::generate(&mut rng);
//! let client = IdentityKeyPair::generate(&mut rng);
//!
//! // The client publishes a bundle (through the relay, in real life).
//! let spk = SignedPreKeyPair::generate(&mut rng, &client, 1, 1_700_000_000);
//! let otk = OneTimePreKeyPair::generate(&mut rng, &client, 7);
//! let bundle = PreKeyBundle::new(client.public().clone(), spk.public().clone(), Some(otk.public())).unwrap();
//!
//! // The therapist starts a session from it, while the client is offline.
//! let mut to_client = x3dh::initiate(&mut rng, &therapist, &bundle).unwrap();
//! let wire = to_client.encrypt(&mut rng, b"Welcome. How was your week?").unwrap();
//! let envelope = sealed_sender::seal(&mut rng, &therapist, client.public(), &wire).unwrap();
//!
//! // The client opens the envelope, learns (authenticated) who sent it,
//! // and completes X3DH with the prekeys the message names.
//! let opened = sealed_sender::open(&client, &envelope).unwrap();
//! assert_eq!(opened.sender.address(), therapist.public().address());
//! let initial = x3dh::InitialMessage::decode(&opened.message).unwrap();
//! assert_eq!(initial.one_time_prekey_id(), Some(7));
//! let (mut to_therapist, plaintext) =
//!     x3dh::accept(&client, &spk, Some(&otk), &opened.sender, &initial).unwrap();
//! assert_eq!(plaintext, b"Welcome. How was your week?");
//! let reply = to_therapist.encrypt(&mut rng, b"Better, thanks.").unwrap();
//! assert_eq!(to_client.decrypt(&reply).unwrap(), b"Better, thanks.");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attachment;
pub mod availability;
pub mod content;
pub mod credential;
pub mod delivery;
pub mod error;
pub mod fingerprint;
pub mod group;
pub mod identity;
pub mod invite;
mod kdf;
pub mod kem;
pub mod keys;
pub mod limits;
pub mod padding;
pub mod prekeys;
pub mod ratchet;
pub mod sealed_sender;
pub mod transcript;
#[doc(hidden)]
pub mod vectors;
pub mod x3dh;

/// Hooks for the crate's own tests and fuzz targets; not a stable API.
#[doc(hidden)]
pub mod testing {
    /// X25519 as the protocol computes it (see `docs/protocol.md`).
    pub fn x25519(secret: [u8; 32], public: [u8; 32]) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(secret);
        *crate::kdf::x25519(&secret, &x25519_dalek::PublicKey::from(public))
    }

    /// X25519 with the protocol's contributory check.
    pub fn x25519_checked(secret: [u8; 32], public: [u8; 32]) -> Result<[u8; 32], crate::KeyError> {
        let secret = x25519_dalek::StaticSecret::from(secret);
        crate::kdf::dh(&secret, &x25519_dalek::PublicKey::from(public), "test").map(|k| *k)
    }
}

pub use error::{CredentialError, DecodeError, GroupError, KeyError, SealError, SessionError};
pub use identity::{IdentityKeyPair, PublicIdentity};
pub use keys::{DeviceAddress, DhPublicKey, IdentityFingerprint};
pub use ratchet::Session;
