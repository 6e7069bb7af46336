//! Group benchmarks: one 1 KiB group message encrypted once and decrypted
//! by each of the other members, Alcove's sender keys against vodozemac's
//! Megolm in the same run; and what a membership change costs at 10 and 50
//! members.
//!
//! Run: `cargo bench -p alcove-protocol --bench groups -- --warm-up-time 2 --measurement-time 5`
//! (figures and their reading in `docs/benchmarks.md`, "Groups").

use std::hint::black_box;

use alcove_protocol::group::{GroupId, Member, ReceivedSenderKey, Roster, SenderKey};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, PreKeyBundle, SignedPreKeyPair};
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{sealed_sender, Session};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use vodozemac::megolm::{GroupSession, InboundGroupSession, MegolmMessage, SessionConfig};

/// Receivers of one message: a 12-member group.
const RECEIVERS: usize = 11;

fn group_message(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let plaintext = vec![0x42u8; 1024];
    let mut g = c.benchmark_group("group_message_1KiB_to_11");

    let sender = IdentityKeyPair::generate(&mut rng);
    let from = sender.public().address();
    let mut chain = SenderKey::generate(&mut rng, &GroupId([1; 32]), 1);
    let mut receivers: Vec<ReceivedSenderKey> = (0..RECEIVERS)
        .map(|_| ReceivedSenderKey::from_distribution(&from, &chain.distribution()).unwrap())
        .collect();
    g.bench_function("alcove", |b| {
        b.iter(|| {
            let wire = chain.encrypt(&mut rng, &from, &plaintext).unwrap();
            for r in receivers.iter_mut() {
                black_box(r.decrypt(&from, &wire).unwrap());
            }
        })
    });

    let mut outbound = GroupSession::new(SessionConfig::version_1());
    let key = outbound.session_key();
    let mut inbound: Vec<InboundGroupSession> = (0..RECEIVERS)
        .map(|_| InboundGroupSession::new(&key, SessionConfig::version_1()))
        .collect();
    g.bench_function("megolm", |b| {
        b.iter(|| {
            let wire = outbound.encrypt(&plaintext).to_bytes();
            for r in inbound.iter_mut() {
                let m = MegolmMessage::from_bytes(&wire).unwrap();
                black_box(r.decrypt(&m).unwrap());
            }
        })
    });

    // The whole of what Alcove does per group message: the sender-key
    // ciphertext sealed to each member (sealed sender, padded), and each
    // member opening its envelope before decrypting.
    let members: Vec<IdentityKeyPair> = (0..RECEIVERS)
        .map(|_| IdentityKeyPair::generate(&mut rng))
        .collect();
    g.bench_function("alcove_with_sealed_sender", |b| {
        b.iter(|| {
            let wire = chain.encrypt(&mut rng, &from, &plaintext).unwrap();
            for (m, r) in members.iter().zip(receivers.iter_mut()) {
                let envelope = sealed_sender::seal(&mut rng, &sender, m.public(), &wire).unwrap();
                let opened = sealed_sender::open(m, &envelope).unwrap();
                black_box(
                    r.decrypt(&opened.sender.address(), &opened.message)
                        .unwrap(),
                );
            }
        })
    });
    g.finish();
}

/// Two established sessions (both sides spoke).
fn session_pair(
    rng: &mut ChaCha20Rng,
    a: &IdentityKeyPair,
    b: &IdentityKeyPair,
) -> (Session, Session) {
    let spk = SignedPreKeyPair::generate_classical(rng, b, 1, 0);
    let otk = OneTimePreKeyPair::generate_classical(rng, 1);
    let bundle =
        PreKeyBundle::new(b.public().clone(), spk.public().clone(), Some(otk.public())).unwrap();
    let mut ab = x3dh::initiate(rng, a, &bundle).unwrap();
    let first = ab.encrypt(rng, b"hello").unwrap();
    let initial = InitialMessage::decode(&first).unwrap();
    let (mut ba, _) = x3dh::accept(b, &spk, Some(&otk), a.public(), &initial).unwrap();
    let reply = ba.encrypt(rng, b"hi").unwrap();
    ab.decrypt(&reply).unwrap();
    (ab, ba)
}

/// The sender's side of one message to every other member over the
/// pairwise sessions: ratchet encrypt and seal, per member.
fn pairwise_send(
    rng: &mut ChaCha20Rng,
    sender: &IdentityKeyPair,
    links: &mut [(IdentityKeyPair, Session, Session)],
    payload: &[u8],
) {
    for (member, out, _) in links.iter_mut() {
        let wire = out.encrypt(rng, payload).unwrap();
        black_box(sealed_sender::seal(rng, sender, member.public(), &wire).unwrap());
    }
}

fn membership_change(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("membership_change");
    g.sample_size(20);
    for n in [10usize, 50] {
        let admin = IdentityKeyPair::generate(&mut rng);
        let people: Vec<IdentityKeyPair> = (0..n - 1)
            .map(|_| IdentityKeyPair::generate(&mut rng))
            .collect();
        let members: Vec<Member> = people
            .iter()
            .map(|p| Member::new(p.public().clone(), "member"))
            .collect();
        let roster = Roster::create(&mut rng, &admin, "Group", members.clone(), 0).unwrap();
        let mut links: Vec<(IdentityKeyPair, Session, Session)> = people
            .iter()
            .map(|p| {
                let copy = IdentityKeyPair::from_secret_bytes(&*p.to_secret_bytes()).unwrap();
                let (out, back) = session_pair(&mut rng, &admin, p);
                (copy, out, back)
            })
            .collect();
        // The admin removes one member and adds another.
        let newcomer = IdentityKeyPair::generate(&mut rng);
        let mut all = vec![Member::new(admin.public().clone(), "")];
        all.extend(members[1..].iter().cloned());
        all.push(Member::new(newcomer.public().clone(), "new"));
        // The admin's side: sign the new roster, send it to each member
        // over its pairwise session (ratchet encrypt + seal).
        g.bench_with_input(BenchmarkId::new("admin_signs_and_sends", n), &n, |b, _| {
            b.iter(|| {
                let next = roster.change(&admin, "Group", all.clone(), 1).unwrap();
                let bytes = prost::Message::encode_to_vec(&next.to_update());
                pairwise_send(&mut rng, &admin, &mut links, &bytes);
            })
        });
        // One member's side: open the envelope, decrypt, check the roster.
        let next = roster.change(&admin, "Group", all.clone(), 1).unwrap();
        let bytes = prost::Message::encode_to_vec(&next.to_update());
        let (member, mut out, mut back) = links.remove(0);
        g.bench_with_input(
            BenchmarkId::new("member_opens_and_checks", n),
            &n,
            |b, _| {
                b.iter_batched(
                    || {
                        let wire = out.encrypt(&mut rng, &bytes).unwrap();
                        sealed_sender::seal(&mut rng, &admin, member.public(), &wire).unwrap()
                    },
                    |envelope| {
                        let opened = sealed_sender::open(&member, &envelope).unwrap();
                        let plain = back.decrypt(&opened.message).unwrap();
                        let update = prost::Message::decode(plain.as_slice()).unwrap();
                        black_box(Roster::verify(&update).unwrap());
                    },
                    criterion::BatchSize::SmallInput,
                )
            },
        );
        links.insert(0, (member, out, back));
        // Then each member makes a new chain and sends it to every other
        // member: one member's sending side (n - 1 pairwise messages).
        g.bench_with_input(
            BenchmarkId::new("one_member_sends_new_chain", n),
            &n,
            |b, _| {
                b.iter(|| {
                    let fresh = SenderKey::generate(&mut rng, roster.id(), 2);
                    let bytes = prost::Message::encode_to_vec(&fresh.distribution());
                    pairwise_send(&mut rng, &admin, &mut links, &bytes);
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, group_message, membership_change);
criterion_main!(benches);
