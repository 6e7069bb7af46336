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

/// The responder's prekeys for the setup benchmarks: hybrid (PQXDH) or
/// classical (X3DH, as before PQXDH).
struct Responder {
    identity: IdentityKeyPair,
    spk: SignedPreKeyPair,
    hybrid: bool,
}

impl Responder {
    fn new(rng: &mut ChaCha20Rng, hybrid: bool) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let spk = if hybrid {
            SignedPreKeyPair::generate(rng, &identity, 1, 0)
        } else {
            SignedPreKeyPair::generate_classical(rng, &identity, 1, 0)
        };
        Self {
            identity,
            spk,
            hybrid,
        }
    }

    fn otk(&self, rng: &mut ChaCha20Rng, id: u32) -> OneTimePreKeyPair {
        if self.hybrid {
            OneTimePreKeyPair::generate(rng, &self.identity, id)
        } else {
            OneTimePreKeyPair::generate_classical(rng, id)
        }
    }

    /// One-time keys and the encoded bundles carrying them, made before
    /// the clock starts.
    fn prepare(&self, rng: &mut ChaCha20Rng, iters: u64) -> Vec<(OneTimePreKeyPair, Vec<u8>)> {
        (0..iters)
            .map(|i| {
                let otk = self.otk(rng, i as u32);
                let bundle = PreKeyBundle::new(
                    self.identity.public().clone(),
                    self.spk.public().clone(),
                    Some(otk.public()),
                )
                .unwrap()
                .to_bytes();
                (otk, bundle)
            })
            .collect()
    }

    /// The initiator's X3DH/PQXDH and first message, then the responder's
    /// side: the same work as Olm's session creation.
    fn handshake(
        &self,
        rng: &mut ChaCha20Rng,
        a: &IdentityKeyPair,
        otk: &OneTimePreKeyPair,
        bundle: &PreKeyBundle,
    ) -> Vec<u8> {
        let mut alice = x3dh::initiate(rng, a, bundle).unwrap();
        let wire = alice.encrypt(rng, b"hello").unwrap();
        let initial = InitialMessage::decode(&wire).unwrap();
        black_box(
            x3dh::accept(&self.identity, &self.spk, Some(otk), a.public(), &initial).unwrap(),
        );
        wire
    }
}

/// Bundle and initial-message sizes, classical and hybrid, written beside
/// criterion's estimates for `scripts/bench-table.py`.
fn record_sizes(rng: &mut ChaCha20Rng, a: &IdentityKeyPair) {
    let mut out = serde_json::Map::new();
    for (name, hybrid) in [("x3dh", false), ("pqxdh", true)] {
        let r = Responder::new(rng, hybrid);
        let (otk, with) = r.prepare(rng, 1).pop().unwrap();
        let without = PreKeyBundle::new(r.identity.public().clone(), r.spk.public().clone(), None)
            .unwrap()
            .to_bytes();
        let first = r.handshake(rng, a, &otk, &PreKeyBundle::from_bytes(&with).unwrap());
        out.insert(
            name.into(),
            serde_json::json!({
                "bundle_with_one_time_prekey": with.len(),
                "bundle_without": without.len(),
                "initial_message_5_byte_text": first.len(),
                "initial_prefix": first.len() - alcove_protocol::ratchet::MESSAGE_OVERHEAD - 5,
                "sealed_envelope": sealed_sender::envelope_len(&first).unwrap(),
            }),
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(
        dir.join("sizes.json"),
        serde_json::Value::Object(out).to_string(),
    )
    .unwrap();
}

fn session_setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("setup");
    g.throughput(Throughput::Elements(1));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = IdentityKeyPair::generate(&mut rng);
    record_sizes(&mut rng, &a);

    for (name, hybrid) in [("x3dh", false), ("pqxdh", true)] {
        let b = Responder::new(&mut rng, hybrid);
        // Alcove, the same work as Olm's session creation: key agreement
        // from keys in hand, encrypt the first message; the responder
        // parses it, completes its side and decrypts.
        g.bench_function(format!("alcove_{name}"), |bench| {
            bench.iter_custom(|iters| {
                let prepared: Vec<_> = b
                    .prepare(&mut rng, iters)
                    .into_iter()
                    .map(|(otk, bytes)| (otk, PreKeyBundle::from_bytes(&bytes).unwrap()))
                    .collect();
                let start = Instant::now();
                for (otk, bundle) in &prepared {
                    b.handshake(&mut rng, &a, otk, bundle);
                }
                start.elapsed()
            })
        });
        // The same, plus parsing and verifying the fetched bundle (Ed25519
        // signatures, curve and ML-KEM key checks), which Olm's API leaves
        // to its caller.
        g.bench_function(format!("alcove_{name}_with_bundle_verification"), |bench| {
            bench.iter_custom(|iters| {
                let prepared = b.prepare(&mut rng, iters);
                let start = Instant::now();
                for (otk, bytes) in &prepared {
                    let bundle = PreKeyBundle::from_bytes(bytes).unwrap();
                    b.handshake(&mut rng, &a, otk, &bundle);
                }
                start.elapsed()
            })
        });
    }

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
