//! Shared test fixtures: a therapist and a client with published keys.
#![allow(dead_code)]

use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, PreKeyBundle, SignedPreKeyPair};
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::Session;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub struct Device {
    pub identity: IdentityKeyPair,
    pub signed_prekey: SignedPreKeyPair,
    pub one_time_prekey: OneTimePreKeyPair,
}

impl Device {
    pub fn new(rng: &mut ChaCha20Rng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let signed_prekey = SignedPreKeyPair::generate(rng, &identity, 1, 1_700_000_000);
        let one_time_prekey = OneTimePreKeyPair::generate(rng, &identity, 100);
        Self {
            identity,
            signed_prekey,
            one_time_prekey,
        }
    }

    pub fn bundle(&self) -> PreKeyBundle {
        PreKeyBundle::new(
            self.identity.public().clone(),
            self.signed_prekey.public().clone(),
            Some(self.one_time_prekey.public()),
        )
        .unwrap()
    }
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Alice starts a session with Bob and Bob accepts her first message.
/// Returns both sessions (Bob has not replied yet).
pub fn pair(rng: &mut ChaCha20Rng, alice: &Device, bob: &Device) -> (Session, Session) {
    let mut a = x3dh::initiate(rng, &alice.identity, &bob.bundle()).unwrap();
    let first = a.encrypt(rng, b"first").unwrap();
    let initial = InitialMessage::decode(&first).unwrap();
    let (b, plaintext) = x3dh::accept(
        &bob.identity,
        &bob.signed_prekey,
        Some(&bob.one_time_prekey),
        alice.identity.public(),
        &initial,
    )
    .unwrap();
    assert_eq!(plaintext, b"first");
    (a, b)
}
