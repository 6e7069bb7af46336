//! The Double Ratchet.
//!
//! A [`Session`] holds one side of a conversation. Every message is
//! encrypted with ChaCha20-Poly1305 under a key used for that message only
//! ([`chain`]); the chains are re-seeded through the [`root`] key whenever
//! the conversation changes direction, with a Diffie-Hellman output of
//! fresh X25519 keys. Messages may arrive late, out of order or never: the
//! keys of skipped messages are kept in a bounded store ([`skipped`]).
//!
//! Two deliberate choices, both described in `docs/protocol.md`:
//!
//! - The initiator's first sending chain comes straight out of X3DH, as in
//!   Olm, rather than from an extra Diffie-Hellman with the responder's
//!   signed prekey: that Diffie-Hellman is already part of X3DH (DH3).
//! - The sending half of a DH ratchet step is taken lazily, when the next
//!   message is sent rather than when the peer's new key arrives. The
//!   derivations are the same as the specification's, in the same order;
//!   the new private key simply lives for a shorter time, and decryption
//!   needs no randomness.
//!
//! Every decryption is all-or-nothing: the state is changed only after the
//! message authenticated.
//!
//! Every message also carries 24 fresh random bytes, its XChaCha20-Poly1305
//! nonce. Message keys are deterministic, so a state restored from an old
//! copy would otherwise seal a new plaintext under a (key, nonce) pair it
//! already used; with a random nonce that cannot happen, whatever an app
//! does with its files ([`Session`] is deliberately not `Clone`).

mod chain;
mod message;
mod root;
mod skipped;

use std::collections::VecDeque;
use std::fmt;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub(crate) use chain::ChainKey;
pub(crate) use chain::MessageKey;
pub(crate) use message::{is_initial, InitialPrefix, NormalMessage, WirePrefix};
use message::{Header, HEADER_LEN, NONCE_LEN, TAG_LEN};
pub(crate) use root::RootKey;
use skipped::SkippedKeys;

use crate::error::{DecodeError, SessionError};
use crate::identity::PublicIdentity;
use crate::kdf::{self, labels};
use crate::keys::{DeviceAddress, DhPublicKey};
use crate::limits::{MAX_PREVIOUS_RATCHET_KEYS, MAX_SKIPPED_KEYS, MAX_SKIP_PER_CHAIN};

/// Version of [`Session::to_bytes`]; bump on any change of the layout.
/// Version 2 (PQXDH) appends the pending ML-KEM ciphertext after the
/// version 1 body; version 1 states are still read.
pub const SESSION_STATE_VERSION: u16 = 2;

/// Bytes a normal ratchet message adds to its plaintext (header and tag).
pub const MESSAGE_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Bytes the largest (PQXDH) prefix adds to messages sent before the
/// first reply. Every message is padded as if it carried one.
pub const INITIAL_OVERHEAD: usize = message::PQ_INITIAL_PREFIX_LEN;

/// Length of the initial-message prefix `message` starts with, judged by
/// its kind byte alone (0 for a normal message); for padding.
pub(crate) fn prefix_len_of(message: &[u8]) -> usize {
    match message.first() {
        Some(&message::KIND_INITIAL) => message::INITIAL_PREFIX_LEN.min(message.len()),
        Some(&message::KIND_INITIAL_PQ) => message::PQ_INITIAL_PREFIX_LEN.min(message.len()),
        _ => 0,
    }
}

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct RatchetKeyPair {
    secret: [u8; 32],
    #[zeroize(skip)]
    public: DhPublicKey,
}

impl RatchetKeyPair {
    fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        Self {
            public: DhPublicKey::from_secret(&secret),
            secret: secret.to_bytes(),
        }
    }

    fn dh(&self, their: &DhPublicKey) -> Result<Zeroizing<[u8; 32]>, SessionError> {
        let secret = StaticSecret::from(self.secret);
        Ok(kdf::dh(&secret, &their.to_dalek(), "ratchet step")?)
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct SendingChain {
    chain: ChainKey,
    index: u32,
}

#[derive(Clone, Serialize, Deserialize)]
struct ReceivingChain {
    ratchet_key: DhPublicKey,
    chain: ChainKey,
    index: u32,
}

/// One side of an end-to-end encrypted conversation with one peer device.
///
/// Built by [`crate::x3dh::initiate`] or [`crate::x3dh::accept`]; persisted
/// with [`Session::to_bytes`] and restored with [`Session::from_bytes`].
/// All secrets are zeroized on drop; `Debug` prints no key material.
///
/// Not `Clone`: two live copies of one session would both send at the same
/// chain indices. (The random per-message nonce keeps even that from
/// reusing a (key, nonce) pair, but the peer would refuse the second copy's
/// messages as duplicates.) Persist and restore with [`Session::to_bytes`].
#[derive(Serialize, Deserialize)]
pub struct Session {
    /// SHA-256 over both identities: the prefix of every associated data.
    ad: [u8; 32],
    #[serde(with = "crate::identity::serde_bytes")]
    remote: PublicIdentity,
    /// The initiator's X3DH base key: names the session on both sides.
    base_key: DhPublicKey,
    root: RootKey,
    /// `None` for a responder that has not sent yet.
    our_ratchet: Option<RatchetKeyPair>,
    /// `None` when a DH step is due before the next send.
    sending: Option<SendingChain>,
    previous_sending_length: u32,
    receiving: Option<ReceivingChain>,
    /// Recent receiving ratchet keys we moved past (replays of their
    /// messages are reported as duplicates, not as garbage).
    previous_ratchet_keys: VecDeque<DhPublicKey>,
    skipped: SkippedKeys,
    /// X3DH fields repeated on every message until the peer replies.
    pending_initial: Option<InitialPrefix>,
}

impl Session {
    pub(crate) fn new_initiator<R: RngCore + CryptoRng>(
        rng: &mut R,
        ad: [u8; 32],
        remote: PublicIdentity,
        root: RootKey,
        chain: ChainKey,
        initial: InitialPrefix,
    ) -> Self {
        Self {
            ad,
            remote,
            base_key: initial.base_key,
            root,
            our_ratchet: Some(RatchetKeyPair::generate(rng)),
            sending: Some(SendingChain { chain, index: 0 }),
            previous_sending_length: 0,
            receiving: None,
            previous_ratchet_keys: VecDeque::new(),
            skipped: SkippedKeys::default(),
            pending_initial: Some(initial),
        }
    }

    /// The responder's session, before its first message is decrypted.
    /// It has no ratchet key of its own until it first sends.
    pub(crate) fn new_responder(
        ad: [u8; 32],
        remote: PublicIdentity,
        base_key: DhPublicKey,
        root: RootKey,
        their_ratchet_key: DhPublicKey,
        chain: ChainKey,
    ) -> Self {
        Self {
            ad,
            remote,
            base_key,
            root,
            our_ratchet: None,
            sending: None,
            previous_sending_length: 0,
            receiving: Some(ReceivingChain {
                ratchet_key: their_ratchet_key,
                chain,
                index: 0,
            }),
            previous_ratchet_keys: VecDeque::new(),
            skipped: SkippedKeys::default(),
            pending_initial: None,
        }
    }

    /// The peer's identity, as authenticated during X3DH.
    pub fn remote_identity(&self) -> &PublicIdentity {
        &self.remote
    }

    /// The peer's device address.
    pub fn remote_address(&self) -> DeviceAddress {
        self.remote.address()
    }

    /// The X3DH base key that names this session on both sides. An initial
    /// message with this base key belongs to this session.
    pub fn base_key(&self) -> &DhPublicKey {
        &self.base_key
    }

    /// True until the peer's first message arrives; until then every
    /// outgoing message carries the X3DH prefix.
    pub fn awaiting_reply(&self) -> bool {
        self.pending_initial.is_some()
    }

    /// How many skipped-message keys are stored (at most
    /// [`MAX_SKIPPED_KEYS`]).
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }

    /// Encrypts `plaintext` into a ratchet message (with the X3DH prefix
    /// while the peer has not replied yet).
    ///
    /// `rng` draws the message's nonce, and a new ratchet key when a DH
    /// ratchet step is due.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        let mut out = Vec::new();
        self.encrypt_into(rng, plaintext, &mut out)?;
        Ok(out)
    }

    /// Like [`Session::encrypt`], but writes the message into `out`
    /// (cleared first), so a sender can reuse one buffer.
    pub fn encrypt_into<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        if self.sending.is_none() {
            self.step_sending(rng)?;
        }
        let Some(sending) = self.sending.as_mut() else {
            return Err(corrupt_state("no sending chain after a ratchet step"));
        };
        if sending.index == u32::MAX {
            return Err(SessionError::ChainExhausted);
        }
        let Some(ours) = self.our_ratchet.as_ref() else {
            return Err(corrupt_state("no ratchet key with a sending chain"));
        };
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let header = Header {
            ratchet_key: ours.public,
            previous_chain_length: self.previous_sending_length,
            index: sending.index,
            nonce,
        };
        let message_key = sending.chain.step();
        sending.index += 1;

        let prefix_len = self.pending_initial.as_ref().map_or(0, InitialPrefix::len);
        out.clear();
        out.reserve(prefix_len + MESSAGE_OVERHEAD + plaintext.len());
        if let Some(prefix) = &self.pending_initial {
            prefix.write(out);
        }
        let header_start = out.len();
        header.write(out);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(header_start + HEADER_LEN);
        let ad = associated_data(&self.ad, &head[header_start..]);
        let tag = cipher(&message_key)
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &ad, body)
            .map_err(|_| SessionError::DecryptionFailed)?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts a message from the peer. On any error the session is left
    /// exactly as it was.
    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, SessionError> {
        let offset = self.prefix_len(message)?;
        let parsed = NormalMessage::parse(&message[offset..])?;
        let mut plaintext = parsed.ciphertext[..parsed.ciphertext.len() - TAG_LEN].to_vec();
        self.decrypt_parts(&mut Parts::new(&parsed, &mut plaintext))?;
        Ok(plaintext)
    }

    /// Like [`Session::decrypt`], but decrypts inside the buffer the message
    /// arrived in, without copying: on success the plaintext is
    /// `message[range]`; on error the buffer is unchanged.
    ///
    /// ```
    /// # use alcove_protocol::{identity::IdentityKeyPair, prekeys::*, x3dh};
    /// # let mut rng = rand_core::OsRng;
    /// # let a = IdentityKeyPair::generate(&mut rng);
    /// # let b = IdentityKeyPair::generate(&mut rng);
    /// # let spk = SignedPreKeyPair::generate(&mut rng, &b, 1, 0);
    /// # let bundle = PreKeyBundle::new(b.public().clone(), spk.public().clone(), None).unwrap();
    /// # let mut alice = x3dh::initiate(&mut rng, &a, &bundle).unwrap();
    /// # let first = alice.encrypt(&mut rng, b"hi").unwrap();
    /// # let initial = x3dh::InitialMessage::decode(&first).unwrap();
    /// # let (mut bob, _) = x3dh::accept(&b, &spk, None, a.public(), &initial).unwrap();
    /// let mut buf = Vec::new();
    /// alice.encrypt_into(&mut rng, b"see you Tuesday", &mut buf).unwrap();
    /// let range = bob.decrypt_in_place(&mut buf).unwrap();
    /// assert_eq!(&buf[range], b"see you Tuesday");
    /// ```
    pub fn decrypt_in_place(
        &mut self,
        message: &mut [u8],
    ) -> Result<std::ops::Range<usize>, SessionError> {
        let offset = self.prefix_len(message)?;
        let start = offset + HEADER_LEN;
        let end = message.len().saturating_sub(TAG_LEN);
        let (header, header_bytes, tag) = {
            let parsed = NormalMessage::parse(&message[offset..])?;
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&message[end..]);
            (parsed.header, copy_header(parsed.header_bytes), tag)
        };
        self.decrypt_parts(&mut Parts {
            header,
            header_bytes,
            ciphertext: &mut message[start..end],
            tag,
        })?;
        Ok(start..end)
    }

    /// Length of the X3DH prefix, after checking it names this session.
    fn prefix_len(&self, message: &[u8]) -> Result<usize, SessionError> {
        if !is_initial(message) {
            return Ok(0);
        }
        let (prefix, rest) = WirePrefix::parse(message)?;
        if prefix.base_key != self.base_key {
            return Err(SessionError::WrongSession);
        }
        Ok(message.len() - rest.len())
    }

    /// The ratchet proper. `msg.ciphertext` is decrypted in place.
    pub(crate) fn decrypt_parts(&mut self, msg: &mut Parts<'_>) -> Result<(), SessionError> {
        let h = msg.header;

        // 1. A message we skipped earlier.
        if let Some(key) = self.skipped.get(&h.ratchet_key, h.index) {
            open(key, &self.ad, msg)?;
            self.skipped.remove(&h.ratchet_key, h.index);
            return Ok(());
        }

        // 2. The current receiving chain.
        if let Some(recv) = self
            .receiving
            .as_ref()
            .filter(|r| r.ratchet_key == h.ratchet_key)
        {
            if h.index < recv.index {
                return Err(SessionError::DuplicateMessage);
            }
            check_skip(recv.index, h.index)?;
            let next = h.index.checked_add(1).ok_or(SessionError::ChainExhausted)?;
            let mut chain = recv.chain.clone();
            let skipped = derive_skipped(&mut chain, recv.index, h.index);
            let key = chain.step();
            open(&key, &self.ad, msg)?;
            if let Some(recv) = self.receiving.as_mut() {
                recv.chain = chain;
                recv.index = next;
            }
            self.skipped.extend(&h.ratchet_key, skipped);
            return Ok(());
        }

        // 3. A chain we already moved past: its keys are gone.
        if self.previous_ratchet_keys.contains(&h.ratchet_key) {
            return Err(SessionError::DuplicateMessage);
        }

        // 4. A new ratchet key from the peer: a DH ratchet step. First the
        //    rest of the current receiving chain is kept as skipped keys.
        let old_skipped = match &self.receiving {
            Some(recv) if h.previous_chain_length > recv.index => {
                check_skip(recv.index, h.previous_chain_length)?;
                let mut chain = recv.chain.clone();
                derive_skipped(&mut chain, recv.index, h.previous_chain_length)
            }
            _ => VecDeque::new(),
        };
        check_skip(0, h.index)?;
        let next = h.index.checked_add(1).ok_or(SessionError::ChainExhausted)?;
        // A responder that never sent has no ratchet key the peer could
        // have answered: such a message cannot be genuine.
        let Some(ours) = self.our_ratchet.as_ref() else {
            return Err(SessionError::DecryptionFailed);
        };
        let dh = ours.dh(&h.ratchet_key)?;
        let (root, mut chain) = self.root.advance(&dh);
        let new_skipped = derive_skipped(&mut chain, 0, h.index);
        let key = chain.step();
        open(&key, &self.ad, msg)?;

        // Authenticated: commit.
        if let Some(old) = self.receiving.take() {
            self.skipped.extend(&old.ratchet_key, old_skipped);
            if self.previous_ratchet_keys.len() == MAX_PREVIOUS_RATCHET_KEYS {
                self.previous_ratchet_keys.pop_front();
            }
            self.previous_ratchet_keys.push_back(old.ratchet_key);
        }
        self.skipped.extend(&h.ratchet_key, new_skipped);
        self.root = root;
        self.receiving = Some(ReceivingChain {
            ratchet_key: h.ratchet_key,
            chain,
            index: next,
        });
        if let Some(sending) = self.sending.take() {
            self.previous_sending_length = sending.index;
        }
        self.pending_initial = None;
        Ok(())
    }

    /// The sending half of a DH ratchet step: a fresh key pair, mixed with
    /// the peer's newest ratchet key into the root key.
    fn step_sending<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<(), SessionError> {
        let Some(their) = self.receiving.as_ref().map(|r| r.ratchet_key) else {
            return Err(corrupt_state("neither a sending nor a receiving chain"));
        };
        let ours = RatchetKeyPair::generate(rng);
        let dh = ours.dh(&their)?;
        let (root, chain) = self.root.advance(&dh);
        self.root = root;
        self.our_ratchet = Some(ours);
        self.sending = Some(SendingChain { chain, index: 0 });
        Ok(())
    }

    /// Serializes the session (versioned) for the SDK's encrypted store.
    /// The returned buffer holds secrets and is zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(SESSION_STATE_VERSION.to_be_bytes().to_vec());
        // Serializing plain structs into a Vec cannot fail.
        let body = Zeroizing::new(postcard::to_stdvec(self).unwrap_or_default());
        out.extend_from_slice(&body);
        // Version 2's trailer: the PQXDH ciphertext of a pending prefix.
        match self
            .pending_initial
            .as_ref()
            .and_then(|p| p.kem_ciphertext.as_ref())
        {
            Some(ct) => {
                out.push(1);
                out.extend_from_slice(ct.as_bytes());
            }
            None => out.push(0),
        }
        out
    }

    /// Restores a session saved with [`Session::to_bytes`], checking the
    /// version and every invariant (the input may be corrupt).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SessionError> {
        if bytes.len() < 2 {
            return Err(DecodeError::Truncated {
                what: "session state",
                needed: 2,
                got: bytes.len(),
            }
            .into());
        }
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if version != 1 && version != SESSION_STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "session state",
                version,
            }
            .into());
        }
        let (mut session, rest): (Session, &[u8]) = postcard::take_from_bytes(&bytes[2..])
            .map_err(|_| DecodeError::Malformed {
                what: "session state",
                reason: "does not decode",
            })?;
        let kem = match (version, rest) {
            (1, []) | (2, [0]) => None,
            (2, [1, ct @ ..]) => Some(
                crate::kem::KemCiphertext::from_bytes(ct)
                    .map_err(|_| corrupt_state("bad ML-KEM ciphertext"))?,
            ),
            _ => return Err(corrupt_state("trailing bytes")),
        };
        match (&mut session.pending_initial, kem) {
            (Some(prefix), kem) => prefix.kem_ciphertext = kem,
            (None, None) => {}
            (None, Some(_)) => return Err(corrupt_state("ML-KEM ciphertext without a prefix")),
        }
        if !session.skipped.is_consistent() {
            return Err(corrupt_state("skipped-key store inconsistent"));
        }
        if session.sending.is_none() && session.receiving.is_none() {
            return Err(corrupt_state("neither a sending nor a receiving chain"));
        }
        if session.previous_ratchet_keys.len() > MAX_PREVIOUS_RATCHET_KEYS {
            return Err(corrupt_state("too many previous ratchet keys"));
        }
        Ok(session)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.remote.address())
            .field("sent", &self.sending.as_ref().map_or(0, |s| s.index))
            .field("received", &self.receiving.as_ref().map_or(0, |r| r.index))
            .field("skipped_keys", &self.skipped.len())
            .field("awaiting_reply", &self.pending_initial.is_some())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

fn corrupt_state(reason: &'static str) -> SessionError {
    DecodeError::Malformed {
        what: "session state",
        reason,
    }
    .into()
}

/// `SHA-256(label || initiator identity || responder identity)`.
pub(crate) fn identity_binding(initiator: &PublicIdentity, responder: &PublicIdentity) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(labels::ASSOCIATED_DATA);
    h.update(initiator.to_bytes());
    h.update(responder.to_bytes());
    h.finalize().into()
}

/// Length of a message's associated data: the identity binding (32) and
/// the header (65), zero-padded to 128 bytes. Padding the associated data
/// to a multiple of 64 bytes keeps the Poly1305 AVX2 backend, which works on
/// four blocks at a time, on its fast path for the whole message: with an
/// unpadded length a 64 KiB message costs about 15% more (see
/// `docs/benchmarks.md`).
const AD_LEN: usize = 128;
const _: () = assert!(32 + HEADER_LEN <= AD_LEN);

fn associated_data(binding: &[u8; 32], header: &[u8]) -> [u8; AD_LEN] {
    let mut ad = [0u8; AD_LEN];
    ad[..32].copy_from_slice(binding);
    ad[32..32 + HEADER_LEN].copy_from_slice(header);
    ad
}

fn cipher(key: &MessageKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new((&key.0).into())
}

/// A normal message split for in-place decryption.
pub(crate) struct Parts<'a> {
    header: Header,
    header_bytes: [u8; HEADER_LEN],
    /// Ciphertext on entry, plaintext after a successful [`open`].
    ciphertext: &'a mut [u8],
    tag: [u8; TAG_LEN],
}

impl<'a> Parts<'a> {
    /// Pairs a parsed message with a buffer holding a copy of its
    /// ciphertext (without the tag).
    pub(crate) fn new(parsed: &NormalMessage<'_>, ciphertext: &'a mut [u8]) -> Self {
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&parsed.ciphertext[parsed.ciphertext.len() - TAG_LEN..]);
        Self {
            header: parsed.header,
            header_bytes: copy_header(parsed.header_bytes),
            ciphertext,
            tag,
        }
    }
}

fn copy_header(bytes: &[u8]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out.copy_from_slice(&bytes[..HEADER_LEN]);
    out
}

/// Authenticates and decrypts in place; on failure the buffer is unchanged
/// (the tag is checked before any byte is decrypted).
fn open(key: &MessageKey, binding: &[u8; 32], msg: &mut Parts<'_>) -> Result<(), SessionError> {
    let ad = associated_data(binding, &msg.header_bytes);
    cipher(key)
        .decrypt_in_place_detached(
            XNonce::from_slice(&msg.header_bytes[HEADER_LEN - NONCE_LEN..]),
            &ad,
            msg.ciphertext,
            Tag::from_slice(&msg.tag),
        )
        .map_err(|_| SessionError::DecryptionFailed)
}

fn check_skip(from: u32, to: u32) -> Result<(), SessionError> {
    let requested = u64::from(to.saturating_sub(from));
    if requested > u64::from(MAX_SKIP_PER_CHAIN) {
        return Err(SessionError::TooManySkipped {
            requested,
            limit: MAX_SKIP_PER_CHAIN,
        });
    }
    Ok(())
}

/// Steps `chain` from index `from` to `to`, keeping the keys of the
/// skipped indices (only the newest [`MAX_SKIPPED_KEYS`], since older ones
/// would be evicted at once anyway).
fn derive_skipped(chain: &mut ChainKey, from: u32, to: u32) -> VecDeque<(u32, MessageKey)> {
    let mut keys = VecDeque::new();
    for index in from..to {
        let key = chain.step();
        if keys.len() == MAX_SKIPPED_KEYS {
            keys.pop_front();
        }
        keys.push_back((index, key));
    }
    keys
}
