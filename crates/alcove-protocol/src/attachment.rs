//! Attachments: documents of any size, encrypted on the device in chunks.
//!
//! A fresh random 32-byte key per attachment, and the STREAM construction
//! (big-endian 32-bit counter and last-chunk flag, as in the `aead` crate's
//! `stream` module) over ChaCha20-Poly1305. Each 64 KiB chunk is
//! authenticated on its own, in its place: reordering, truncating or
//! extending the stream is detected. Memory stays constant at any size:
//! at most two chunks are buffered. The SHA-256 digest of the whole
//! encrypted blob travels, with the key, inside a sealed message
//! ([`crate::content::AttachmentPointer`]).
//!
//! ```text
//! blob  = 0x01 || nonce prefix (7) || chunk* || last chunk
//! chunk = ChaCha20-Poly1305(key, prefix || counter (u32 BE) || last flag, 64 KiB)
//! ```
//!
//! ```
//! use alcove_protocol::attachment::{AttachmentEncryptor, AttachmentDecryptor};
//! let mut rng = rand_core::OsRng;
//! let (mut enc, key) = AttachmentEncryptor::new(&mut rng);
//! let mut blob = enc.update(b"worksheet, page 1").unwrap();
//! let (tail, sealed) = enc.finish().unwrap();
//! blob.extend_from_slice(&tail);
//!
//! let mut dec = AttachmentDecryptor::new(&key, sealed.digest);
//! let mut plain = dec.update(&blob).unwrap();
//! plain.extend_from_slice(&dec.finish().unwrap());
//! assert_eq!(plain, b"worksheet, page 1");
//! ```

use std::fmt;

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::AttachmentError;
use crate::limits::ATTACHMENT_CHUNK_SIZE;

const VERSION: u8 = 1;
const NONCE_PREFIX_LEN: usize = 7;
/// Length of the blob header.
pub const HEADER_LEN: usize = 1 + NONCE_PREFIX_LEN;
const TAG_LEN: usize = 16;
/// Encrypted size of a full chunk.
pub const ENCRYPTED_CHUNK_LEN: usize = ATTACHMENT_CHUNK_SIZE + TAG_LEN;

/// The encrypted size of an attachment of `plaintext_len` bytes.
pub fn encrypted_len(plaintext_len: u64) -> u64 {
    let chunk = ATTACHMENT_CHUNK_SIZE as u64;
    // Every chunk is full but the last, which holds 1 to 64 KiB (or
    // nothing, for an empty attachment).
    let chunks = plaintext_len.div_ceil(chunk).max(1);
    HEADER_LEN as u64 + plaintext_len + chunks * TAG_LEN as u64
}

/// The key of one attachment. Zeroized on drop, redacted in `Debug`.
#[derive(Clone)]
pub struct AttachmentKey(Zeroizing<[u8; 32]>);

impl AttachmentKey {
    /// Wraps 32 key bytes (from an [`crate::content::AttachmentPointer`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(arr)))
    }

    /// The key bytes, to put in an attachment pointer.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AttachmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttachmentKey(<redacted>)")
    }
}

/// What the sender puts in the attachment pointer besides the key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SealedAttachment {
    /// SHA-256 of the whole encrypted blob.
    pub digest: [u8; 32],
    /// Plaintext size in bytes.
    pub size: u64,
    /// Encrypted size in bytes.
    pub encrypted_size: u64,
}

/// Encrypts an attachment incrementally.
pub struct AttachmentEncryptor {
    stream: EncryptorBE32<ChaCha20Poly1305>,
    pending: Vec<u8>,
    header: Option<[u8; HEADER_LEN]>,
    hasher: Sha256,
    size: u64,
    encrypted_size: u64,
}

impl AttachmentEncryptor {
    /// Starts an attachment with a fresh key.
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R) -> (Self, AttachmentKey) {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let mut header = [0u8; HEADER_LEN];
        header[0] = VERSION;
        rng.fill_bytes(&mut header[1..]);
        let aead = ChaCha20Poly1305::new(key.as_ref().into());
        let stream = EncryptorBE32::from_aead(aead, header[1..].into());
        (
            Self {
                stream,
                pending: Vec::with_capacity(ATTACHMENT_CHUNK_SIZE),
                header: Some(header),
                hasher: Sha256::new(),
                size: 0,
                encrypted_size: 0,
            },
            AttachmentKey(key),
        )
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.encrypted_size += bytes.len() as u64;
        out.extend_from_slice(bytes);
    }

    /// Feeds plaintext; returns the encrypted bytes ready so far.
    pub fn update(&mut self, mut data: &[u8]) -> Result<Vec<u8>, AttachmentError> {
        let mut out = Vec::new();
        if let Some(header) = self.header.take() {
            self.emit(&mut out, &header);
        }
        self.size += data.len() as u64;
        while !data.is_empty() {
            // A full chunk is only encrypted once more data shows it is
            // not the last one.
            if self.pending.len() == ATTACHMENT_CHUNK_SIZE {
                let mut chunk = std::mem::take(&mut self.pending);
                self.stream
                    .encrypt_next_in_place(&[], &mut chunk)
                    .map_err(|_| AttachmentError::TooLarge)?;
                self.emit(&mut out, &chunk);
                chunk.clear();
                self.pending = chunk;
            }
            let take = (ATTACHMENT_CHUNK_SIZE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(out)
    }

    /// Encrypts the last chunk; returns the final bytes and what goes in
    /// the attachment pointer.
    pub fn finish(mut self) -> Result<(Vec<u8>, SealedAttachment), AttachmentError> {
        let mut out = Vec::new();
        if let Some(header) = self.header.take() {
            self.emit(&mut out, &header);
        }
        let mut last = std::mem::take(&mut self.pending);
        let size = self.size;
        let stream = self.stream;
        stream
            .encrypt_last_in_place(&[], &mut last)
            .map_err(|_| AttachmentError::TooLarge)?;
        self.hasher.update(&last);
        let encrypted_size = self.encrypted_size + last.len() as u64;
        out.extend_from_slice(&last);
        Ok((
            out,
            SealedAttachment {
                digest: self.hasher.finalize().into(),
                size,
                encrypted_size,
            },
        ))
    }
}

/// Decrypts an attachment incrementally, checking every chunk and, at the
/// end, the digest of the whole blob.
///
/// Plaintext from [`Self::update`] is authentic chunk by chunk, but the
/// attachment is complete only when [`Self::finish`] succeeds: write it
/// to a temporary file and move it into place after that.
pub struct AttachmentDecryptor {
    key: AttachmentKey,
    stream: Option<DecryptorBE32<ChaCha20Poly1305>>,
    header: Vec<u8>,
    pending: Vec<u8>,
    hasher: Sha256,
    expected_digest: [u8; 32],
    index: u64,
}

impl AttachmentDecryptor {
    /// Starts decrypting a blob that should hash to `expected_digest`.
    pub fn new(key: &AttachmentKey, expected_digest: [u8; 32]) -> Self {
        Self {
            key: key.clone(),
            stream: None,
            header: Vec::with_capacity(HEADER_LEN),
            pending: Vec::with_capacity(ENCRYPTED_CHUNK_LEN),
            hasher: Sha256::new(),
            expected_digest,
            index: 0,
        }
    }

    /// Feeds encrypted bytes; returns the plaintext of the chunks that are
    /// known not to be the last one.
    pub fn update(&mut self, mut data: &[u8]) -> Result<Vec<u8>, AttachmentError> {
        self.hasher.update(data);
        let mut out = Vec::new();
        if self.stream.is_none() {
            let take = (HEADER_LEN - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() < HEADER_LEN {
                return Ok(out);
            }
            if self.header[0] != VERSION {
                return Err(AttachmentError::ChunkRejected { index: 0 });
            }
            let aead = ChaCha20Poly1305::new(self.key.as_bytes().into());
            self.stream = Some(DecryptorBE32::from_aead(aead, self.header[1..].into()));
        }
        while !data.is_empty() {
            if self.pending.len() == ENCRYPTED_CHUNK_LEN {
                let index = self.index;
                let mut chunk = std::mem::take(&mut self.pending);
                let stream = self.stream.as_mut().ok_or(AttachmentError::Finished)?;
                stream
                    .decrypt_next_in_place(&[], &mut chunk)
                    .map_err(|_| AttachmentError::ChunkRejected { index })?;
                out.extend_from_slice(&chunk);
                chunk.clear();
                self.pending = chunk;
                self.index += 1;
            }
            let take = (ENCRYPTED_CHUNK_LEN - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(out)
    }

    /// Decrypts the last chunk and checks the digest of the whole blob.
    pub fn finish(mut self) -> Result<Vec<u8>, AttachmentError> {
        let stream = self.stream.take().ok_or(AttachmentError::Truncated)?;
        if self.pending.len() < TAG_LEN {
            return Err(AttachmentError::Truncated);
        }
        let digest: [u8; 32] = self.hasher.finalize().into();
        if !bool::from(digest.ct_eq(&self.expected_digest)) {
            return Err(AttachmentError::DigestMismatch);
        }
        let mut last = std::mem::take(&mut self.pending);
        stream
            .decrypt_last_in_place(&[], &mut last)
            .map_err(|_| AttachmentError::ChunkRejected { index: self.index })?;
        Ok(last)
    }
}
