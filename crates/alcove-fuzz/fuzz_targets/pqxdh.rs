#![no_main]
//! PQXDH's decoders as a responder meets them: initial messages (both
//! kinds) accepted against hybrid and classical prekeys, ML-KEM keys and
//! ciphertexts, and the hybrid prekeys' stored forms. Never a panic; a
//! hybrid signed prekey never accepts a classical initial message.
use std::sync::OnceLock;

use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::kem::{KemCiphertext, KemPublicKey};
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{KeyError, SessionError};
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

struct Responder {
    identity: IdentityKeyPair,
    hybrid_spk: SignedPreKeyPair,
    hybrid_otk: OneTimePreKeyPair,
    classical_spk: SignedPreKeyPair,
}

fn responder() -> &'static Responder {
    static R: OnceLock<Responder> = OnceLock::new();
    R.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let identity = IdentityKeyPair::generate(&mut rng);
        Responder {
            hybrid_spk: SignedPreKeyPair::generate(&mut rng, &identity, 1, 0),
            hybrid_otk: OneTimePreKeyPair::generate(&mut rng, &identity, 100),
            classical_spk: SignedPreKeyPair::generate_classical(&mut rng, &identity, 1, 0),
            identity,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let r = responder();
    let _ = KemPublicKey::from_bytes(data);
    if let Ok(ct) = KemCiphertext::from_bytes(data) {
        let _ = ct.as_bytes();
    }
    let _ = SignedPreKeyPair::from_secret_bytes(data, r.identity.public());
    let _ = OneTimePreKeyPair::from_secret_bytes(data);
    if let Ok(m) = InitialMessage::decode(data) {
        let Ok(sender_address) = m.claimed_initiator() else {
            return;
        };
        let _ = sender_address;
        // The claimed identity, if it parses, stands in for the one sealed
        // sender would have authenticated.
        let Ok(sender) = alcove_protocol::PublicIdentity::from_bytes(&data[1..129]) else {
            return;
        };
        let hybrid = x3dh::accept(
            &r.identity,
            &r.hybrid_spk,
            Some(&r.hybrid_otk),
            &sender,
            &m,
        );
        if !m.is_post_quantum() {
            assert!(matches!(
                hybrid,
                Err(SessionError::Key(KeyError::Downgrade))
                    | Err(SessionError::Key(KeyError::UnknownPreKey(_)))
                    | Err(SessionError::SenderMismatch)
            ));
        }
        let _ = x3dh::accept(&r.identity, &r.classical_spk, None, &sender, &m);
    }
});
