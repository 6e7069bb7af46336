//! Padding into size buckets.
//!
//! Before sealing, a plaintext is extended to the smallest bucket of
//! [`PADDING_BUCKETS`] that holds it plus one byte: `plaintext || 0x80 ||
//! 0x00*` (ISO/IEC 7816-4 style, unambiguous to remove). The relay then
//! sees only which bucket a message falls in, not its length.

use crate::error::{DecodeError, SealError};
use crate::limits::{MAX_SEALED_PLAINTEXT, PADDING_BUCKETS};

const MARKER: u8 = 0x80;

/// The padded size of a plaintext of `len` bytes, or an error when it
/// exceeds the largest bucket.
pub fn padded_len(len: usize) -> Result<usize, SealError> {
    PADDING_BUCKETS
        .iter()
        .copied()
        .find(|&bucket| bucket > len)
        .ok_or(SealError::TooLarge {
            size: len,
            max: MAX_SEALED_PLAINTEXT,
        })
}

/// Whether `len` is one of the bucket sizes.
pub fn is_bucket(len: usize) -> bool {
    PADDING_BUCKETS.contains(&len)
}

/// Appends `plaintext`, the marker and zeros up to its bucket to `out`.
pub fn pad_into(out: &mut Vec<u8>, plaintext: &[u8]) -> Result<(), SealError> {
    pad_into_len(out, plaintext, padded_len(plaintext.len())?)
}

/// Appends `plaintext`, the marker and zeros up to `bucket` to `out`:
/// `bucket` must be a bucket size larger than the plaintext (a caller may
/// choose a larger bucket than the smallest that fits, see
/// [`crate::sealed_sender::padded_message_len`]).
pub fn pad_into_len(out: &mut Vec<u8>, plaintext: &[u8], bucket: usize) -> Result<(), SealError> {
    if !is_bucket(bucket) || bucket <= plaintext.len() {
        return Err(SealError::TooLarge {
            size: plaintext.len(),
            max: bucket.saturating_sub(1),
        });
    }
    out.reserve(bucket);
    out.extend_from_slice(plaintext);
    out.push(MARKER);
    out.resize(out.len() + bucket - plaintext.len() - 1, 0);
    Ok(())
}

/// Pads `plaintext` into a new buffer.
pub fn pad(plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    pad_into(&mut out, plaintext)?;
    Ok(out)
}

/// Removes the padding, checking the bucket size, the marker and that
/// everything after it is zero.
pub fn unpad(padded: &[u8]) -> Result<&[u8], DecodeError> {
    if !is_bucket(padded.len()) {
        return Err(DecodeError::Malformed {
            what: "padding",
            reason: "length is not a bucket size",
        });
    }
    let end = padded
        .iter()
        .rposition(|&b| b != 0)
        .filter(|&i| padded[i] == MARKER)
        .ok_or(DecodeError::Malformed {
            what: "padding",
            reason: "no end marker",
        })?;
    Ok(&padded[..end])
}
