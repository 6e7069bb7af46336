//! Property tests: two parties talk through an adversarial channel that
//! reorders, drops, duplicates and delays messages, and flips bits.

mod common;

use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{Session, SessionError};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Alice (true) or Bob (false) sends a message of this length.
    Send(bool, usize),
    /// Deliver the in-flight message picked by this index (mod count).
    Deliver(usize),
    /// Deliver a copy of an already delivered message again.
    Replay(usize),
    /// Lose an in-flight message.
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0usize..300).prop_map(|(a, n)| Op::Send(a, n)),
        4 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Replay),
        1 => any::<usize>().prop_map(Op::Drop),
    ]
}

struct InFlight {
    to_bob: bool,
    wire: Vec<u8>,
    plaintext: Vec<u8>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every message delivered once decrypts to what was sent, in whatever
    /// order; every replay is rejected and changes nothing.
    #[test]
    fn adversarial_channel(ops in proptest::collection::vec(op(), 1..120), seed in any::<u64>()) {
        let mut rng = common::rng(seed);
        let alice_dev = common::Device::new(&mut rng);
        let bob_dev = common::Device::new(&mut rng);
        let mut alice = x3dh::initiate(&mut rng, &alice_dev.identity, &bob_dev.bundle()).unwrap();
        let mut bob: Option<Session> = None;
        let mut in_flight: Vec<InFlight> = Vec::new();
        let mut delivered: Vec<InFlight> = Vec::new();
        let mut counter = 0u32;

        for op in ops {
            match op {
                Op::Send(from_alice, len) => {
                    counter += 1;
                    let mut plaintext = counter.to_be_bytes().to_vec();
                    plaintext.resize(len.max(4), 0xab);
                    let wire = if from_alice {
                        alice.encrypt(&mut rng, &plaintext).unwrap()
                    } else if let Some(b) = bob.as_mut() {
                        b.encrypt(&mut rng, &plaintext).unwrap()
                    } else {
                        continue; // Bob has no session before Alice's first message arrives.
                    };
                    in_flight.push(InFlight { to_bob: from_alice, wire, plaintext });
                }
                Op::Deliver(i) if !in_flight.is_empty() => {
                    let m = in_flight.remove(i % in_flight.len());
                    let got = if m.to_bob {
                        match bob.as_mut() {
                            // Half the deliveries go through the in-place API.
                            Some(b) if counter.is_multiple_of(2) => {
                                let mut buf = m.wire.clone();
                                let range = b.decrypt_in_place(&mut buf).unwrap();
                                buf[range].to_vec()
                            }
                            Some(b) => b.decrypt(&m.wire).unwrap(),
                            None => {
                                let initial = InitialMessage::decode(&m.wire).unwrap();
                                let (s, p) = x3dh::accept(
                                    &bob_dev.identity,
                                    &bob_dev.signed_prekey,
                                    Some(&bob_dev.one_time_prekey),
                                    alice_dev.identity.public(),
                                    &initial,
                                ).unwrap();
                                bob = Some(s);
                                p
                            }
                        }
                    } else {
                        alice.decrypt(&m.wire).unwrap()
                    };
                    prop_assert_eq!(&got, &m.plaintext);
                    delivered.push(m);
                }
                Op::Replay(i) if !delivered.is_empty() => {
                    let m = &delivered[i % delivered.len()];
                    let session = if m.to_bob { bob.as_mut().unwrap() } else { &mut alice };
                    let before = session.to_bytes();
                    let result = session.decrypt(&m.wire);
                    prop_assert!(result.is_err(), "replay accepted");
                    prop_assert_eq!(&*before, &*session.to_bytes(), "replay changed the session");
                }
                Op::Drop(i) if !in_flight.is_empty() => {
                    in_flight.remove(i % in_flight.len());
                }
                _ => {}
            }
        }
        // Everything still in flight is delivered late, in reverse order.
        while let Some(m) = in_flight.pop() {
            let got = if m.to_bob {
                match bob.as_mut() {
                    Some(b) => b.decrypt(&m.wire).unwrap(),
                    None => continue,
                }
            } else {
                alice.decrypt(&m.wire).unwrap()
            };
            prop_assert_eq!(got, m.plaintext);
        }
    }

    /// A flipped bit anywhere in a ratchet message is rejected and leaves
    /// the session unchanged; the untouched message still decrypts.
    #[test]
    fn bit_flip_in_ratchet_message(
        seed in any::<u64>(), pos in any::<usize>(), bit in 0u8..8, skip in 0usize..3, same_chain in any::<bool>(),
    ) {
        let mut rng = common::rng(seed);
        let a = common::Device::new(&mut rng);
        let b = common::Device::new(&mut rng);
        let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
        let reply = bob.encrypt(&mut rng, b"reply").unwrap();
        alice.decrypt(&reply).unwrap();
        if same_chain {
            // Bob already knows Alice's new chain: the tampered message
            // takes the same-chain path, not the DH-step path.
            let warm = alice.encrypt(&mut rng, b"warm").unwrap();
            bob.decrypt(&warm).unwrap();
        }
        let mut last = Vec::new();
        for _ in 0..=skip {
            last = alice.encrypt(&mut rng, b"a message about homework").unwrap();
        }
        let mut tampered = last.clone();
        let pos = pos % tampered.len();
        tampered[pos] ^= 1 << bit;
        let before = bob.to_bytes();
        prop_assert!(bob.decrypt(&tampered).is_err());
        prop_assert_eq!(&*before, &*bob.to_bytes());
        let mut buf = tampered.clone();
        prop_assert!(bob.decrypt_in_place(&mut buf).is_err());
        prop_assert_eq!(&buf, &tampered, "a refused message's buffer changed");
        prop_assert_eq!(&*before, &*bob.to_bytes());
        prop_assert_eq!(bob.decrypt(&last).unwrap(), b"a message about homework".to_vec());
    }

    /// A flipped bit anywhere in a sealed envelope is rejected.
    #[test]
    fn bit_flip_in_envelope(seed in any::<u64>(), pos in any::<usize>(), bit in 0u8..8, len in 0usize..2000) {
        let mut rng = common::rng(seed);
        let a = common::Device::new(&mut rng);
        let b = common::Device::new(&mut rng);
        let msg = vec![0x42; len];
        let envelope = alcove_protocol::sealed_sender::seal(&mut rng, &a.identity, b.identity.public(), &msg).unwrap();
        let mut tampered = envelope.clone();
        let pos = pos % tampered.len();
        tampered[pos] ^= 1 << bit;
        prop_assert!(alcove_protocol::sealed_sender::open(&b.identity, &tampered).is_err());
        prop_assert_eq!(alcove_protocol::sealed_sender::open(&b.identity, &envelope).unwrap().message, msg);
    }

    /// No input makes the decoders panic.
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), seed in any::<u64>()) {
        let mut rng = common::rng(seed);
        let a = common::Device::new(&mut rng);
        let b = common::Device::new(&mut rng);
        let (mut alice, _bob) = common::pair(&mut rng, &a, &b);
        let _ = alice.decrypt(&bytes);
        let _ = InitialMessage::decode(&bytes);
        let _ = alcove_protocol::sealed_sender::open(&a.identity, &bytes);
        let _ = alcove_protocol::prekeys::PreKeyBundle::from_bytes(&bytes);
        let _ = alcove_protocol::PublicIdentity::from_bytes(&bytes);
        let _ = alcove_protocol::Session::from_bytes(&bytes);
        let _ = alcove_protocol::content::decode(&bytes);
        let _ = alcove_protocol::padding::unpad(&bytes);
        let _ = alcove_protocol::invite::Invite::decode(&String::from_utf8_lossy(&bytes));
    }

    /// Nor do PQXDH's decoders, fed inputs of exactly the hybrid lengths
    /// (where random bytes of random length would rarely land), with the
    /// leading byte a bundle or initial message of version 2 starts with.
    #[test]
    fn hybrid_decoders_never_panic(
        bytes in proptest::sample::select(vec![1184usize, 1088, 1284, 1292, 1422, 2706, 1258 + 81, 1388, 164])
            .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
        lead in proptest::sample::select(vec![0x02u8, 0x23, 0x22, 0x01]),
        seed in any::<u64>(),
    ) {
        let mut rng = common::rng(seed);
        let a = common::Device::new(&mut rng);
        let b = common::Device::new(&mut rng);
        let mut bytes = bytes;
        bytes[0] = lead;
        let _ = alcove_protocol::kem::KemPublicKey::from_bytes(&bytes);
        let _ = alcove_protocol::kem::KemCiphertext::from_bytes(&bytes);
        let _ = alcove_protocol::prekeys::PreKeyBundle::from_bytes(&bytes);
        let _ = alcove_protocol::prekeys::SignedPreKey::from_bytes(&bytes, a.identity.public());
        let _ = alcove_protocol::prekeys::OneTimePreKey::from_bytes(&bytes);
        let _ = alcove_protocol::prekeys::SignedPreKeyPair::from_secret_bytes(&bytes, a.identity.public());
        let _ = alcove_protocol::prekeys::OneTimePreKeyPair::from_secret_bytes(&bytes);
        if let Ok(initial) = InitialMessage::decode(&bytes) {
            let _ = alcove_protocol::x3dh::accept(
                &b.identity,
                &b.signed_prekey,
                Some(&b.one_time_prekey),
                a.identity.public(),
                &initial,
            );
        }
    }
}

/// The error a replay gets, precisely.
#[test]
fn replay_is_reported_as_duplicate() {
    let mut rng = common::rng(7);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
    let m1 = alice.encrypt(&mut rng, b"one").unwrap();
    bob.decrypt(&m1).unwrap();
    assert_eq!(bob.decrypt(&m1), Err(SessionError::DuplicateMessage));
    // Also after the conversation moved on by a full round trip.
    let r = bob.encrypt(&mut rng, b"r").unwrap();
    alice.decrypt(&r).unwrap();
    let m2 = alice.encrypt(&mut rng, b"two").unwrap();
    bob.decrypt(&m2).unwrap();
    assert_eq!(bob.decrypt(&m1), Err(SessionError::DuplicateMessage));
    assert_eq!(alice.decrypt(&r), Err(SessionError::DuplicateMessage));
}
