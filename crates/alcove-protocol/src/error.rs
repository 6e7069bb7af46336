//! Errors, one type per concern. None of them carries secret material.

use thiserror::Error;

/// Bytes that do not parse as the structure they claim to be.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input is shorter than the fixed part of the structure.
    #[error("malformed {what}: truncated (needed {needed} bytes, got {got})")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The input is structurally wrong.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// What is wrong, never echoing the input.
        reason: &'static str,
    },
    /// A version byte this build does not understand.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which structure.
        what: &'static str,
        /// The version found.
        version: u16,
    },
}

/// Problems with public keys, bundles and key agreement.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// A key or bundle did not parse.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A signature did not verify (strict Ed25519: no malleable encodings).
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    /// A public key that is not a valid curve point, or a low-order one.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// An X25519 result was all zeros: the peer sent a low-order point.
    #[error("non-contributory Diffie-Hellman result in {0}")]
    NonContributory(&'static str),
    /// An initial message names a prekey the caller did not supply.
    #[error("unknown prekey: {0}")]
    UnknownPreKey(&'static str),
    /// A bundle mixes hybrid (ML-KEM) and classical prekeys.
    #[error("a bundle mixes hybrid and classical prekeys")]
    MixedPreKeys,
    /// A classical (X3DH) initial message names a prekey that carries an
    /// ML-KEM key: the responder published post-quantum prekeys, so a
    /// session without them would be a downgrade.
    #[error("downgrade refused: a classical initial message to post-quantum prekeys")]
    Downgrade,
}

/// Problems encrypting or decrypting within a ratchet session.
///
/// Every failing decryption leaves the session exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// The message did not parse.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Key agreement failed while processing the message.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// This message was already decrypted (or its key was evicted).
    #[error("duplicate message: already decrypted, or older than the skipped-key window")]
    DuplicateMessage,
    /// The message is further ahead than the skip bound allows.
    #[error("too many skipped messages: {requested} (limit {limit})")]
    TooManySkipped {
        /// How many keys would have to be skipped.
        requested: u64,
        /// The bound, [`crate::limits::MAX_SKIP_PER_CHAIN`].
        limit: u32,
    },
    /// Authentication failed: wrong session, tampered or forged bytes.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The initial message names another initiator than the one sealed
    /// sender authenticated.
    #[error("initial message names a different sender than its envelope")]
    SenderMismatch,
    /// An initial message for another session (another base key).
    #[error("initial message belongs to a different session")]
    WrongSession,
    /// A sending chain ran out of indices (2^32 messages).
    #[error("sending chain exhausted; start a new session")]
    ChainExhausted,
}

/// Problems sealing or opening a sealed-sender envelope.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    /// The envelope did not parse.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Key agreement failed (low-order ephemeral key) or the sender's
    /// identity inside is not a valid identity.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Authentication failed: tampered, not for us, or the claimed sender
    /// could not have produced it.
    #[error("envelope does not open: tampered, not addressed to this device, or forged sender")]
    DecryptionFailed,
    /// The plaintext is larger than the largest padding bucket.
    #[error("plaintext of {size} bytes exceeds the sealed maximum of {max}")]
    TooLarge {
        /// Requested size.
        size: usize,
        /// [`crate::limits::MAX_SEALED_PLAINTEXT`].
        max: usize,
    },
}

/// Problems with an invite.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InviteError {
    /// The invite string did not parse.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The invite's expiry time has passed (an invite is valid strictly
    /// before `expires_at`).
    #[error("invite expired at {expires_at} (seconds since the Unix epoch)")]
    Expired {
        /// When it expired, seconds since the Unix epoch.
        expires_at: u64,
    },
    /// The keys fetched from the relay belong to another address.
    #[error("fetched identity does not match the invite's address")]
    AddressMismatch,
    /// The keys fetched from the relay do not match the invite's
    /// fingerprint: the relay (or someone) substituted keys.
    #[error("fetched identity does not match the invite's fingerprint")]
    FingerprintMismatch,
}

/// Problems with an encrypted attachment stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttachmentError {
    /// A chunk failed authentication, is out of order, or the stream was
    /// truncated or extended.
    #[error("attachment chunk {index} failed authentication")]
    ChunkRejected {
        /// Zero-based chunk index.
        index: u64,
    },
    /// Data after the final chunk, or a call after finishing.
    #[error("attachment stream already finished")]
    Finished,
    /// The stream ended without its final chunk.
    #[error("attachment stream truncated")]
    Truncated,
    /// Too many chunks for the 32-bit STREAM counter.
    #[error("attachment too large")]
    TooLarge,
    /// The blob's SHA-256 differs from the digest in the pointer.
    #[error("attachment digest mismatch")]
    DigestMismatch,
}

/// Problems with the typed content inside a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentError {
    /// Not a valid protobuf `Content`.
    #[error("content is not a valid alcove.v1.Content")]
    Protobuf,
    /// Structurally valid protobuf but semantically wrong.
    #[error("invalid content: {0}")]
    Invalid(&'static str),
}

/// Problems with clinician credentials and their revocations.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialError {
    /// The bytes do not parse as a credential or revocation.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The issuer's signature does not verify (strict Ed25519): the
    /// credential or revocation was forged or altered.
    #[error("bad issuer signature: forged or altered")]
    BadSignature,
    /// A field is out of bounds, or the signer is not the issuer.
    #[error("invalid credential: {0}")]
    Invalid(&'static str),
}

/// Problems with a group roster or a group operation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupError {
    /// The bytes do not parse as a roster.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The roster's signature does not verify (strict Ed25519): forged or
    /// altered.
    #[error("bad roster signature: forged or altered")]
    BadSignature,
    /// Signed (or asked to be signed) by someone who is not one of the
    /// group's admins: only admins change membership.
    #[error("only the group's admins change its membership")]
    NotAdmin,
    /// A field is out of bounds or inconsistent.
    #[error("invalid group roster: {0}")]
    Invalid(&'static str),
}
