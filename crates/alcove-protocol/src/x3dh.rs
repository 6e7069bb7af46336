//! X3DH: asynchronous session setup from a published prekey bundle.
//!
//! Follows the Extended Triple Diffie-Hellman specification (Signal):
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
//! DH4 = DH(EK_A, OPK_B)   (only when a one-time prekey was handed out)
//! SK  = HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4],
//!                   info = "Alcove/v1/X3DH"), 64 bytes
//! ```
//!
//! PQXDH (a version 2, hybrid bundle) adds an ML-KEM-768 encapsulation to
//! the bundle's one-time KEM key, or to the signed prekey's last-resort
//! KEM key when no one-time prekey was handed out, and mixes its shared
//! secret in after the DH outputs, under a new label:
//!
//! ```text
//! (CT, SS) = ML-KEM-768.Encaps(PQPK_B)
//! SK  = HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4] || SS,
//!                   info = "Alcove/v2/PQXDH/X25519/SHA-256/ML-KEM-768"), 64 bytes
//! ```
//!
//! A hybrid bundle is only ever used with PQXDH, and [`accept`] refuses a
//! classical initial message that names a hybrid signed prekey.
//!
//! The first 32 bytes of SK are the Double Ratchet's root key, the last 32
//! the initiator's first sending chain. Every Diffie-Hellman result is
//! checked to be contributory. The associated data binds both identities
//! (initiator first), see [`crate::ratchet`].

use rand_core::{CryptoRng, RngCore};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::error::{KeyError, SessionError};
use crate::identity::{IdentityKeyPair, PublicIdentity};
use crate::kdf::{self, labels};
use crate::keys::DhPublicKey;
use crate::prekeys::{OneTimePreKeyPair, PreKeyBundle, PreKeyId, SignedPreKeyPair};
use crate::ratchet::{
    identity_binding, is_initial, ChainKey, InitialPrefix, NormalMessage, Parts, RootKey, Session,
    WirePrefix,
};

const F: [u8; 32] = [0xFF; 32];

/// `dhs` are the DH outputs in order; `kem` is PQXDH's shared secret,
/// `None` for X3DH.
fn derive(dhs: &[&Zeroizing<[u8; 32]>], kem: Option<&Zeroizing<[u8; 32]>>) -> (RootKey, ChainKey) {
    let mut ikm = Zeroizing::new([0u8; 32 * 6]);
    ikm[..32].copy_from_slice(&F);
    for (i, secret) in dhs.iter().chain(kem.iter()).enumerate() {
        ikm[32 * (i + 1)..32 * (i + 2)].copy_from_slice(secret.as_ref());
    }
    let len = 32 * (dhs.len() + kem.iter().len() + 1);
    let label = match kem {
        Some(_) => labels::PQXDH,
        None => labels::X3DH,
    };
    let okm = kdf::hkdf::<64>(&[0u8; 32], &ikm[..len], label);
    let (root, chain) = kdf::split64(&okm);
    (RootKey::new(root), ChainKey::new(chain))
}

/// Starts a session with the owner of `bundle` (the initiator's side):
/// PQXDH for a hybrid bundle, X3DH for a classical one.
///
/// The bundle was verified when it was built or parsed. The returned
/// session prefixes every message with what the responder needs to
/// complete X3DH, until the responder's first reply arrives.
pub fn initiate<R: RngCore + CryptoRng>(
    rng: &mut R,
    ours: &IdentityKeyPair,
    bundle: &PreKeyBundle,
) -> Result<Session, KeyError> {
    let their = bundle.identity();
    let spk = bundle.signed_prekey().key().to_dalek();
    let ek = StaticSecret::random_from_rng(&mut *rng);
    let base_key = DhPublicKey::from_secret(&ek);

    let spk = kdf::Peer::new(&spk);
    let dh1 = kdf::dh_with(ours.dh_secret(), &spk, "X3DH DH1")?;
    let dh2 = kdf::dh(&ek, &their.dh_key().to_dalek(), "X3DH DH2")?;
    let dh3 = kdf::dh_with(&ek, &spk, "X3DH DH3")?;
    // The one-time KEM key if a one-time prekey came, else the last
    // resort; `None` only for a classical bundle.
    let kem_key = match bundle.one_time_prekey() {
        Some(otk) => otk.kem_key(),
        None => bundle.signed_prekey().kem_key(),
    };
    let (kem_ciphertext, kem_secret) = match kem_key {
        Some(key) => {
            let (ct, ss) = key.encapsulate(rng);
            (Some(ct), Some(ss))
        }
        None => (None, None),
    };
    let (root, chain) = match bundle.one_time_prekey() {
        Some(otk) => {
            let dh4 = kdf::dh(&ek, &otk.key.to_dalek(), "X3DH DH4")?;
            derive(&[&dh1, &dh2, &dh3, &dh4], kem_secret.as_ref())
        }
        None => derive(&[&dh1, &dh2, &dh3], kem_secret.as_ref()),
    };
    let prefix = InitialPrefix {
        identity: ours.public().clone(),
        base_key,
        signed_prekey_id: bundle.signed_prekey().id(),
        one_time_prekey_id: bundle.one_time_prekey().map(|k| k.id),
        kem_ciphertext,
    };
    Ok(Session::new_initiator(
        rng,
        identity_binding(ours.public(), their),
        their.clone(),
        root,
        chain,
        prefix,
    ))
}

/// An initial message, parsed: the X3DH fields and the first ratchet
/// message. The recipient looks up the prekeys it names, then calls
/// [`accept`] (or, if a session with [`InitialMessage::base_key`] already
/// exists, decrypts the whole message with that session).
#[derive(Debug)]
pub struct InitialMessage {
    prefix: WirePrefix,
    body: Vec<u8>,
}

impl InitialMessage {
    /// Whether `bytes` is an initial message (as opposed to a normal one).
    pub fn is_initial(bytes: &[u8]) -> bool {
        is_initial(bytes)
    }

    /// Parses an initial message. The initiator's identity is checked in
    /// [`accept`], against the identity sealed sender authenticated.
    pub fn decode(bytes: &[u8]) -> Result<Self, SessionError> {
        let (prefix, rest) = WirePrefix::parse(bytes)?;
        // Parse the ratchet part now, so a malformed message fails here.
        NormalMessage::parse(rest)?;
        Ok(Self {
            prefix,
            body: rest.to_vec(),
        })
    }

    /// The address of the identity the message claims as its initiator
    /// (a claim until [`accept`] checks it).
    pub fn claimed_initiator(&self) -> Result<crate::keys::DeviceAddress, KeyError> {
        let key = crate::identity::parse_verifying_key(&self.prefix.identity[..32])?;
        Ok(crate::keys::DeviceAddress::for_identity_key(&key))
    }

    /// The initiator's ephemeral key: names the session on both sides.
    pub fn base_key(&self) -> &DhPublicKey {
        &self.prefix.base_key
    }

    /// The id of the signed prekey the initiator used.
    pub fn signed_prekey_id(&self) -> PreKeyId {
        self.prefix.signed_prekey_id
    }

    /// The id of the one-time prekey the initiator used, if any. After a
    /// successful [`accept`] its secret must be deleted.
    pub fn one_time_prekey_id(&self) -> Option<PreKeyId> {
        self.prefix.one_time_prekey_id
    }

    /// Whether this is a PQXDH initial message (it carries an ML-KEM
    /// ciphertext) rather than a classical X3DH one.
    pub fn is_post_quantum(&self) -> bool {
        self.prefix.kem_ciphertext.is_some()
    }
}

/// Completes X3DH or PQXDH on the responder's side and decrypts the first
/// message.
///
/// `sender` is the identity that sealed sender authenticated; it must be
/// the identity the initial message names. Nothing is returned (and no
/// prekey should be deleted) unless the first message authenticates. A
/// classical initial message naming a hybrid signed prekey is refused with
/// [`KeyError::Downgrade`] (the initiator held a post-quantum bundle, or
/// someone stripped it); callers that have published hybrid prekeys refuse
/// classical initial messages altogether (see docs/protocol.md §17).
pub fn accept(
    ours: &IdentityKeyPair,
    signed_prekey: &SignedPreKeyPair,
    one_time_prekey: Option<&OneTimePreKeyPair>,
    sender: &PublicIdentity,
    initial: &InitialMessage,
) -> Result<(Session, Vec<u8>), SessionError> {
    let prefix = &initial.prefix;
    // The sender identity was verified by sealed sender; the message must
    // name the same one (DH1 then proves possession of its X25519 key).
    if prefix.identity != sender.to_bytes() {
        return Err(SessionError::SenderMismatch);
    }
    if prefix.signed_prekey_id != signed_prekey.public().id() {
        return Err(KeyError::UnknownPreKey("signed prekey id does not match").into());
    }
    let otk = match (prefix.one_time_prekey_id, one_time_prekey) {
        (None, _) => None,
        (Some(id), Some(k)) if k.id() == id => Some(k),
        (Some(_), _) => return Err(KeyError::UnknownPreKey("one-time prekey not available").into()),
    };
    let kem_secret = match (&prefix.kem_ciphertext, signed_prekey.kem()) {
        (None, None) => None,
        (None, Some(_)) => return Err(KeyError::Downgrade.into()),
        (Some(ct), last_resort) => {
            let key = match otk {
                Some(k) => k.kem(),
                None => last_resort,
            };
            let key = key.ok_or(KeyError::UnknownPreKey("the prekey has no ML-KEM key"))?;
            Some(key.decapsulate(ct))
        }
    };
    let base = kdf::Peer::new(&prefix.base_key.to_dalek());
    let dh1 = kdf::dh(
        signed_prekey.secret(),
        &sender.dh_key().to_dalek(),
        "X3DH DH1",
    )?;
    let dh2 = kdf::dh_with(ours.dh_secret(), &base, "X3DH DH2")?;
    let dh3 = kdf::dh_with(signed_prekey.secret(), &base, "X3DH DH3")?;
    let (root, chain) = match otk {
        Some(k) => {
            let dh4 = kdf::dh_with(k.secret(), &base, "X3DH DH4")?;
            derive(&[&dh1, &dh2, &dh3, &dh4], kem_secret.as_ref())
        }
        None => derive(&[&dh1, &dh2, &dh3], kem_secret.as_ref()),
    };
    let first = NormalMessage::parse(&initial.body)?;
    let mut session = Session::new_responder(
        identity_binding(sender, ours.public()),
        sender.clone(),
        prefix.base_key,
        root,
        first.header.ratchet_key,
        chain,
    );
    let mut plaintext = first.ciphertext[..first.ciphertext.len() - 16].to_vec();
    session.decrypt_parts(&mut Parts::new(&first, &mut plaintext))?;
    Ok((session, plaintext))
}
