//! Every bound of the protocol, named and documented in one place.
//!
//! The relay and the SDK import these rather than repeating numbers.

/// How far one receiving chain may jump ahead in a single message.
///
/// A message whose index is more than this many steps beyond the next
/// expected one is rejected with [`crate::SessionError::TooManySkipped`]
/// and leaves the session untouched. Deriving a skipped key costs one
/// HMAC-SHA256, so the worst case is bounded CPU (about 25 000 HMACs),
/// not memory. Same figure as Signal.
pub const MAX_SKIP_PER_CHAIN: u32 = 25_000;

/// How many skipped message keys a session keeps, over all chains.
///
/// When more would be stored, the oldest-derived keys are evicted first
/// (FIFO): a message that old can no longer be decrypted. Each kept key
/// costs 36 bytes (index and key), so the store is bounded by about
/// 72 KiB per session. Same figure as Signal.
pub const MAX_SKIPPED_KEYS: usize = 2_000;

/// How many earlier receiving ratchet keys a session remembers, only to
/// tell a replay of an old message ([`crate::SessionError::DuplicateMessage`])
/// from garbage ([`crate::SessionError::DecryptionFailed`]).
pub const MAX_PREVIOUS_RATCHET_KEYS: usize = 8;

/// The padding buckets, in bytes: a sealed plaintext is padded to the
/// smallest bucket that holds it plus one marker byte.
///
/// Every ratchet message is padded as if it carried the 1 258-byte PQXDH
/// prefix ([`crate::sealed_sender::padded_message_len`]), so a short text
/// lands in the 2 KiB bucket, which PQXDH added; 256 B and 1 KiB remain
/// for envelopes written before it.
pub const PADDING_BUCKETS: [usize; 9] = [
    256,
    1 << 10,
    2 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
];

/// The largest plaintext a sealed envelope can carry (the largest bucket
/// less its marker byte). Documents go through attachments instead.
pub const MAX_SEALED_PLAINTEXT: usize = PADDING_BUCKETS[PADDING_BUCKETS.len() - 1] - 1;

/// Plaintext bytes per encrypted attachment chunk.
pub const ATTACHMENT_CHUNK_SIZE: usize = 64 << 10;

/// The longest relay URL an invite may carry.
pub const MAX_INVITE_URL_LEN: usize = 512;

/// Iterations of SHA-512 behind each half of a safety number, making a
/// collision search for a chosen 30-digit half expensive.
pub const SAFETY_NUMBER_ITERATIONS: usize = 5_200;
