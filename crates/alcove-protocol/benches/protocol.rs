//! Protocol benchmarks: Alcove's ratchet against the raw AEAD floor and
//! against vodozemac's Olm (the peer), measured in the same run.
//!
//! Run: `cargo bench -p alcove-protocol --bench protocol`, then
//! `python3 scripts/bench-table.py` to write `docs/benchmarks.md`.

use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, PreKeyBundle, SignedPreKeyPair};
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{sealed_sender, Session};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use vodozemac::olm::{Account, OlmMessage, SessionConfig};

const SIZES: [(usize, &str); 3] = [(1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

struct Pair {
    alice: Session,
    bob: Session,
}

/// Two established sessions (one round trip done, so both chains exist).
fn alcove_pair(rng: &mut ChaCha20Rng) -> Pair {
    let a = IdentityKeyPair::generate(rng);
    let b = IdentityKeyPair::generate(rng);
    let spk = SignedPreKeyPair::generate(rng, &b, 1, 0);
    let otk = OneTimePreKeyPair::generate(rng, &b, 1);
    let bundle =
        PreKeyBundle::new(b.public().clone(), spk.public().clone(), Some(otk.public())).unwrap();
    let mut alice = x3dh::initiate(rng, &a, &bundle).unwrap();
    let first = alice.encrypt(rng, b"hello").unwrap();
    let initial = InitialMessage::decode(&first).unwrap();
    let (mut bob, _) = x3dh::accept(&b, &spk, Some(&otk), a.public(), &initial).unwrap();
    let reply = bob.encrypt(rng, b"hi").unwrap();
    alice.decrypt(&reply).unwrap();
    Pair { alice, bob }
}

struct OlmPair {
    alice: vodozemac::olm::Session,
    bob: vodozemac::olm::Session,
}

fn olm_wire(message: OlmMessage) -> OlmMessage {
    let (kind, bytes) = message.to_parts();
    OlmMessage::from_parts(kind, &bytes).unwrap()
}

fn olm_pair() -> OlmPair {
    let alice_account = Account::new();
    let mut bob_account = Account::new();
    bob_account.generate_one_time_keys(1);
    let otk = *bob_account.one_time_keys().values().next().unwrap();
    bob_account.mark_keys_as_published();
    let mut alice = alice_account.create_outbound_session(
        SessionConfig::version_2(),
        bob_account.curve25519_key(),
        otk,
    );
    let OlmMessage::PreKey(m) = olm_wire(alice.encrypt("hello")) else {
        unreachable!()
    };
    let mut bob = bob_account
        .create_inbound_session(alice_account.curve25519_key(), &m)
        .unwrap()
        .session;
    let reply = olm_wire(bob.encrypt("hi"));
    alice.decrypt(&reply).unwrap();
    OlmPair { alice, bob }
}

fn session_setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("setup");
    g.throughput(Throughput::Elements(1));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = IdentityKeyPair::generate(&mut rng);
    let b = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPreKeyPair::generate(&mut rng, &b, 1, 0);

    // Alcove, the same work as Olm's session creation: X3DH from keys in
    // hand, encrypt the first message; the responder parses it, completes
    // X3DH and decrypts. One-time keys are made before the clock starts.
    let prepare = |rng: &mut ChaCha20Rng, iters: u64| -> Vec<(OneTimePreKeyPair, Vec<u8>)> {
        (0..iters)
            .map(|i| {
                let otk = OneTimePreKeyPair::generate(rng, &b, i as u32);
                let bundle =
                    PreKeyBundle::new(b.public().clone(), spk.public().clone(), Some(otk.public()))
                        .unwrap()
                        .to_bytes();
                (otk, bundle)
            })
            .collect()
    };
    let handshake = |rng: &mut ChaCha20Rng, otk: &OneTimePreKeyPair, bundle: &PreKeyBundle| {
        let mut alice = x3dh::initiate(rng, &a, bundle).unwrap();
        let wire = alice.encrypt(rng, b"hello").unwrap();
        let initial = InitialMessage::decode(&wire).unwrap();
        black_box(x3dh::accept(&b, &spk, Some(otk), a.public(), &initial).unwrap());
    };
    g.bench_function("alcove_x3dh", |bench| {
        bench.iter_custom(|iters| {
            let prepared: Vec<_> = prepare(&mut rng, iters)
                .into_iter()
                .map(|(otk, bytes)| (otk, PreKeyBundle::from_bytes(&bytes).unwrap()))
                .collect();
            let start = Instant::now();
            for (otk, bundle) in &prepared {
                handshake(&mut rng, otk, bundle);
            }
            start.elapsed()
        })
    });
    // The same, plus parsing and verifying the fetched bundle (two Ed25519
    // signatures, three curve checks), which Olm's API leaves to its caller.
    g.bench_function("alcove_x3dh_with_bundle_verification", |bench| {
        bench.iter_custom(|iters| {
            let prepared = prepare(&mut rng, iters);
            let start = Instant::now();
            for (otk, bytes) in &prepared {
                let bundle = PreKeyBundle::from_bytes(bytes).unwrap();
                handshake(&mut rng, otk, &bundle);
            }
            start.elapsed()
        })
    });

    // Olm: outbound session from identity + one-time key, encrypt the first
    // message, wire round trip, inbound session (which decrypts it).
    let alice_account = Account::new();
    let mut bob_account = Account::new();
    g.bench_function("olm", |bench| {
        bench.iter_custom(|iters| {
            bob_account.generate_one_time_keys(iters as usize);
            let otks: Vec<_> = bob_account.one_time_keys().into_values().collect();
            bob_account.mark_keys_as_published();
            let start = Instant::now();
            for otk in otks {
                let mut alice = alice_account.create_outbound_session(
                    SessionConfig::version_2(),
                    bob_account.curve25519_key(),
                    otk,
                );
                let OlmMessage::PreKey(m) = olm_wire(alice.encrypt("hello")) else {
                    unreachable!()
                };
                black_box(
                    bob_account
                        .create_inbound_session(alice_account.curve25519_key(), &m)
                        .unwrap(),
                );
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn same_chain(c: &mut Criterion) {
    let mut g = c.benchmark_group("same_chain");
    for (size, label) in SIZES {
        let payload = vec![0x5a; size];
        g.throughput(Throughput::Elements(1));
        if size >= 1 << 20 {
            g.sample_size(20);
        } else {
            g.sample_size(50);
        }

        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut pair = alcove_pair(&mut rng);
        // Both AEAD rows reuse one buffer; the ratchet uses its
        // allocation-free calls (`encrypt_into`, `decrypt_in_place`).
        let mut wire = Vec::new();
        g.bench_with_input(BenchmarkId::new("alcove", label), &payload, |bench, p| {
            bench.iter(|| {
                pair.alice.encrypt_into(&mut rng, p, &mut wire).unwrap();
                let range = pair.bob.decrypt_in_place(&mut wire).unwrap();
                wire[range].len()
            })
        });

        let mut olm = olm_pair();
        g.bench_with_input(BenchmarkId::new("olm", label), &payload, |bench, p| {
            bench.iter(|| {
                let wire = olm_wire(olm.alice.encrypt(p));
                olm.bob.decrypt(&wire).unwrap()
            })
        });

        let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
        let mut buf = Vec::with_capacity(size + 16);
        g.bench_with_input(BenchmarkId::new("raw_aead", label), &payload, |bench, p| {
            bench.iter(|| {
                buf.clear();
                buf.extend_from_slice(p);
                let nonce = Nonce::default();
                aead.encrypt_in_place(&nonce, b"", &mut buf).unwrap();
                aead.decrypt_in_place(&nonce, b"", &mut buf).unwrap();
                buf.len()
            })
        });
    }
    g.finish();
}

fn alternating(c: &mut Criterion) {
    let mut g = c.benchmark_group("alternating");
    let payload = vec![0x5a; 1 << 10];
    // Each iteration is two messages, each starting a new DH ratchet step.
    g.throughput(Throughput::Elements(2));
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut pair = alcove_pair(&mut rng);
    g.bench_function("alcove/1KiB", |bench| {
        let mut wire = Vec::new();
        bench.iter(|| {
            pair.alice
                .encrypt_into(&mut rng, &payload, &mut wire)
                .unwrap();
            pair.bob.decrypt_in_place(&mut wire).unwrap();
            pair.bob
                .encrypt_into(&mut rng, &payload, &mut wire)
                .unwrap();
            pair.alice.decrypt_in_place(&mut wire).unwrap().len()
        })
    });
    let mut olm = olm_pair();
    g.bench_function("olm/1KiB", |bench| {
        bench.iter(|| {
            let wire = olm_wire(olm.alice.encrypt(&payload));
            olm.bob.decrypt(&wire).unwrap();
            let wire = olm_wire(olm.bob.encrypt(&payload));
            olm.alice.decrypt(&wire).unwrap()
        })
    });
    g.finish();
}

fn sealed(c: &mut Criterion) {
    let mut g = c.benchmark_group("sealed_sender");
    g.throughput(Throughput::Elements(1));
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let a = IdentityKeyPair::generate(&mut rng);
    let b = IdentityKeyPair::generate(&mut rng);
    let payload = vec![0x5a; 1 << 10];
    g.bench_function("seal_open/1KiB", |bench| {
        bench.iter(|| {
            let env = sealed_sender::seal(&mut rng, &a, b.public(), &payload).unwrap();
            sealed_sender::open(&b, &env).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, session_setup, same_chain, alternating, sealed);
criterion_main!(benches);
