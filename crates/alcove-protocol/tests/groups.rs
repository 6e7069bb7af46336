//! The group protocol: rosters signed by admins and sender keys, under an
//! adversarial channel (reorder, drop, duplicate, delay across members),
//! a removed member holding its complete state, forged membership changes,
//! and convergence of concurrent changes.

use alcove_protocol::group::{
    GroupId, Member, ReceivedSenderKey, Roster, SenderKey, MAX_GROUP_SKIP,
};
use alcove_protocol::{DeviceAddress, GroupError, IdentityKeyPair, Session, SessionError};
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn people(n: usize, rng: &mut ChaCha20Rng) -> Vec<IdentityKeyPair> {
    (0..n).map(|_| IdentityKeyPair::generate(rng)).collect()
}

fn members(ids: &[IdentityKeyPair]) -> Vec<Member> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Member::new(id.public().clone(), &format!("member {i}")))
        .collect()
}

fn addr(id: &IdentityKeyPair) -> DeviceAddress {
    id.public().address()
}

#[test]
fn a_roster_round_trips_and_names_its_admin() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ids = people(4, &mut rng);
    let roster = Roster::create(&mut rng, &ids[0], "Couples", members(&ids[1..]), 5).unwrap();
    let seen = Roster::verify(&roster.to_update()).unwrap();
    assert_eq!(seen.epoch(), 1);
    assert_eq!(seen.members().len(), 4);
    assert_eq!(seen.admins(), &[addr(&ids[0])]);
    assert!(seen.is_admin(&addr(&ids[0])) && !seen.is_admin(&addr(&ids[1])));
    assert_eq!(seen.digest(), roster.digest());
    assert_eq!(seen.title(), "Couples");
}

#[test]
fn a_membership_change_forged_by_a_member_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let ids = people(4, &mut rng);
    let roster = Roster::create(&mut rng, &ids[0], "Group", members(&ids[1..]), 5).unwrap();
    // The API refuses to sign for a non-admin.
    assert_eq!(
        roster
            .change(&ids[1], "Group", members(&ids[1..2]), 6)
            .unwrap_err(),
        GroupError::NotAdmin
    );
    // A member crafts the bytes by hand: same id, nonce and admins, a
    // higher epoch, themselves as signer.
    let mut pb: alcove_protocol::content::GroupRoster =
        prost::Message::decode(roster.to_update().roster.as_slice()).unwrap();
    pb.epoch = 9;
    pb.members
        .retain(|m| m.identity != ids[2].public().to_bytes().to_vec());
    pb.signer = addr(&ids[1]).as_bytes().to_vec();
    let bytes = prost::Message::encode_to_vec(&pb);
    let mut signed = b"Alcove/v1/group-roster".to_vec();
    signed.extend_from_slice(&bytes);
    let forged = alcove_protocol::content::GroupUpdate {
        roster: bytes.clone(),
        signature: ids[1].sign(&signed).to_bytes().to_vec(),
    };
    assert_eq!(Roster::verify(&forged).unwrap_err(), GroupError::NotAdmin);
    // Claiming to be the admin: the signature does not verify.
    pb.signer = addr(&ids[0]).as_bytes().to_vec();
    let bytes = prost::Message::encode_to_vec(&pb);
    let mut signed = b"Alcove/v1/group-roster".to_vec();
    signed.extend_from_slice(&bytes);
    let forged = alcove_protocol::content::GroupUpdate {
        roster: bytes,
        signature: ids[1].sign(&signed).to_bytes().to_vec(),
    };
    assert_eq!(
        Roster::verify(&forged).unwrap_err(),
        GroupError::BadSignature
    );
    // Making themselves admin changes the group id (bound to the admins).
    pb.admins = vec![addr(&ids[1]).as_bytes().to_vec()];
    pb.signer = addr(&ids[1]).as_bytes().to_vec();
    let bytes = prost::Message::encode_to_vec(&pb);
    let mut signed = b"Alcove/v1/group-roster".to_vec();
    signed.extend_from_slice(&bytes);
    let forged = alcove_protocol::content::GroupUpdate {
        roster: bytes,
        signature: ids[1].sign(&signed).to_bytes().to_vec(),
    };
    assert!(matches!(
        Roster::verify(&forged).unwrap_err(),
        GroupError::Invalid(_)
    ));
    // And an admin's real roster, with one byte changed, fails.
    let mut tampered = roster.to_update();
    let last = tampered.roster.len() - 1;
    tampered.roster[last] ^= 1;
    assert!(Roster::verify(&tampered).is_err());
}

#[test]
fn messages_open_in_any_order_once_and_only_for_the_owner() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let ids = people(3, &mut rng);
    let group = GroupId([7; 32]);
    let mut sending = SenderKey::generate(&mut rng, &group, 1);
    let mut receiving =
        ReceivedSenderKey::from_distribution(&addr(&ids[0]), &sending.distribution()).unwrap();
    let wires: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            sending
                .encrypt(&mut rng, &addr(&ids[0]), format!("m{i}").as_bytes())
                .unwrap()
        })
        .collect();
    // Another sender (a member who holds the chain key and seals its own
    // envelope) is refused: the seal names them, not the owner.
    assert_eq!(
        receiving
            .clone()
            .decrypt(&addr(&ids[1]), &wires[0])
            .unwrap_err(),
        SessionError::SenderMismatch
    );
    for i in [3, 0, 4, 1, 2] {
        assert_eq!(
            receiving.decrypt(&addr(&ids[0]), &wires[i]).unwrap(),
            format!("m{i}").as_bytes()
        );
    }
    for w in &wires {
        assert_eq!(
            receiving.decrypt(&addr(&ids[0]), w).unwrap_err(),
            SessionError::DuplicateMessage
        );
    }
    // A flipped bit changes nothing.
    let mut bad = sending.encrypt(&mut rng, &addr(&ids[0]), b"x").unwrap();
    bad[30] ^= 1;
    let before = format!("{receiving:?}");
    assert_eq!(
        receiving.decrypt(&addr(&ids[0]), &bad).unwrap_err(),
        SessionError::DecryptionFailed
    );
    assert_eq!(format!("{receiving:?}"), before);
}

#[test]
fn a_member_who_joins_later_cannot_read_earlier_messages() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let ids = people(2, &mut rng);
    let group = GroupId([8; 32]);
    let mut sending = SenderKey::generate(&mut rng, &group, 1);
    let early = sending
        .encrypt(&mut rng, &addr(&ids[0]), b"before you joined")
        .unwrap();
    let mut late =
        ReceivedSenderKey::from_distribution(&addr(&ids[0]), &sending.distribution()).unwrap();
    assert_eq!(
        late.decrypt(&addr(&ids[0]), &early).unwrap_err(),
        SessionError::DuplicateMessage
    );
    let after = sending
        .encrypt(&mut rng, &addr(&ids[0]), b"welcome")
        .unwrap();
    assert_eq!(late.decrypt(&addr(&ids[0]), &after).unwrap(), b"welcome");
}

#[test]
fn forward_secrecy_a_stolen_receiver_state_opens_nothing_it_already_opened() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let ids = people(1, &mut rng);
    let group = GroupId([9; 32]);
    let mut sending = SenderKey::generate(&mut rng, &group, 1);
    let mut receiving =
        ReceivedSenderKey::from_distribution(&addr(&ids[0]), &sending.distribution()).unwrap();
    let wires: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            sending
                .encrypt(&mut rng, &addr(&ids[0]), b"secret")
                .unwrap()
        })
        .collect();
    for w in &wires {
        receiving.decrypt(&addr(&ids[0]), w).unwrap();
    }
    // The thief's copy: the serialized state, as on disk.
    let stolen: ReceivedSenderKey =
        postcard::from_bytes(&postcard::to_allocvec(&receiving).unwrap()).unwrap();
    for w in &wires {
        assert!(stolen.clone().decrypt(&addr(&ids[0]), w).is_err());
    }
    // Too far ahead is refused without moving the chain.
    let mut far = SenderKey::generate(&mut rng, &group, 1);
    let mut far_rx =
        ReceivedSenderKey::from_distribution(&addr(&ids[0]), &far.distribution()).unwrap();
    for _ in 0..=MAX_GROUP_SKIP {
        far.encrypt(&mut rng, &addr(&ids[0]), b"").unwrap();
    }
    let w = far.encrypt(&mut rng, &addr(&ids[0]), b"late").unwrap();
    assert!(matches!(
        far_rx.decrypt(&addr(&ids[0]), &w),
        Err(SessionError::TooManySkipped { .. })
    ));
}

/// A member's complete group state, as a thief (or the removed member)
/// would hold it.
struct State {
    roster: Roster,
    own: SenderKey,
    received: Vec<ReceivedSenderKey>,
}

#[test]
fn after_removal_nothing_sent_opens_with_anything_the_removed_member_held() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let ids = people(4, &mut rng); // 0 admin, 1..3 members; 3 is removed
    let roster = Roster::create(&mut rng, &ids[0], "Group", members(&ids[1..]), 1).unwrap();
    let mut chains: Vec<SenderKey> = ids
        .iter()
        .map(|_| SenderKey::generate(&mut rng, roster.id(), 1))
        .collect();
    let removed = State {
        roster: roster.clone(),
        own: SenderKey::generate(&mut rng, roster.id(), 1),
        received: ids
            .iter()
            .zip(&chains)
            .map(|(id, c)| {
                ReceivedSenderKey::from_distribution(&addr(id), &c.distribution()).unwrap()
            })
            .collect(),
    };
    // Before the removal the member reads everything.
    let w = chains[1]
        .encrypt(&mut rng, &addr(&ids[1]), b"before")
        .unwrap();
    assert_eq!(
        removed.received[1]
            .clone()
            .decrypt(&addr(&ids[1]), &w)
            .unwrap(),
        b"before"
    );
    // The admin removes member 3; every remaining member makes a new
    // chain for the new epoch (and sends it to the remaining members only).
    let next = roster
        .change(&ids[0], "Group", members(&ids[..3]), 2)
        .unwrap();
    assert!(!next.is_member(&addr(&ids[3])) && next.supersedes(&removed.roster));
    for c in chains.iter_mut().take(3) {
        *c = SenderKey::generate(&mut rng, next.id(), next.epoch());
    }
    for (i, c) in chains.iter_mut().enumerate().take(3) {
        let wire = c
            .encrypt(&mut rng, &addr(&ids[i]), b"after the removal")
            .unwrap();
        // Every chain the removed member held, tried as every sender.
        for r in &removed.received {
            for id in &ids {
                assert!(r.clone().decrypt(&addr(id), &wire).is_err());
            }
        }
        let own = ReceivedSenderKey::from_distribution(&addr(&ids[3]), &removed.own.distribution())
            .unwrap();
        assert!(own.clone().decrypt(&addr(&ids[i]), &wire).is_err());
    }
}

/// One delivery in the adversarial channel.
#[derive(Clone, Debug)]
enum Op {
    /// Sender (index mod members) sends a message.
    Send(usize),
    /// Deliver in-flight message (mod count) to its next recipient.
    Deliver(usize),
    /// Deliver a copy of something already delivered again.
    Duplicate(usize),
    /// Lose an in-flight copy.
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<usize>().prop_map(Op::Send),
        5 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Duplicate),
        1 => any::<usize>().prop_map(Op::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Four members each send on their chain; every copy (one per other
    /// member) is reordered, delayed, duplicated or dropped on its own.
    /// Every copy that arrives opens exactly once, with the right text;
    /// a duplicate is refused; a drop never stops later messages.
    #[test]
    fn sender_keys_survive_an_adversarial_channel(ops in prop::collection::vec(op(), 1..150), seed in any::<u64>()) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        const N: usize = 4;
        let ids = people(N, &mut rng);
        let group = GroupId([1; 32]);
        let mut sending: Vec<SenderKey> = (0..N).map(|_| SenderKey::generate(&mut rng, &group, 1)).collect();
        // receiving[r][s]: member r's copy of sender s's chain.
        let mut receiving: Vec<Vec<ReceivedSenderKey>> = (0..N)
            .map(|_| (0..N).map(|s| ReceivedSenderKey::from_distribution(&addr(&ids[s]), &sending[s].distribution()).unwrap()).collect())
            .collect();
        // In flight: (sender, recipient, wire, text).
        let mut in_flight: Vec<(usize, usize, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut delivered: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let mut counter = 0u32;
        for op in ops {
            match op {
                Op::Send(s) => {
                    let s = s % N;
                    counter += 1;
                    let text = format!("{s}:{counter}").into_bytes();
                    let wire = sending[s].encrypt(&mut rng, &addr(&ids[s]), &text).unwrap();
                    for r in (0..N).filter(|r| *r != s) {
                        in_flight.push((s, r, wire.clone(), text.clone()));
                    }
                }
                Op::Deliver(i) if !in_flight.is_empty() => {
                    let (s, r, wire, text) = in_flight.remove(i % in_flight.len());
                    let got = receiving[r][s].decrypt(&addr(&ids[s]), &wire);
                    prop_assert_eq!(got.unwrap(), text);
                    delivered.push((s, r, wire));
                }
                Op::Duplicate(i) if !delivered.is_empty() => {
                    let (s, r, wire) = delivered[i % delivered.len()].clone();
                    prop_assert_eq!(receiving[r][s].decrypt(&addr(&ids[s]), &wire).unwrap_err(), SessionError::DuplicateMessage);
                }
                Op::Drop(i) if !in_flight.is_empty() => {
                    in_flight.remove(i % in_flight.len());
                }
                _ => {}
            }
        }
        // Whatever is still in flight arrives late and still opens.
        for (s, r, wire, text) in in_flight {
            prop_assert_eq!(receiving[r][s].decrypt(&addr(&ids[s]), &wire).unwrap(), text);
        }
    }

    /// Two admins change the membership concurrently (branches at the same
    /// epoch); members receive the rosters in any order, some more than
    /// once, some late. Every member that saw all of them holds the same
    /// roster: the greatest under `supersedes`.
    #[test]
    fn members_converge_on_one_roster_under_concurrent_changes(
        plan in prop::collection::vec((any::<bool>(), any::<u8>(), any::<bool>()), 1..12),
        orders in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..40), 5),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let ids = people(8, &mut rng); // 0 and 1 are admins
        let first = Roster::create_with_co_admins(&mut rng, &ids[0], &[addr(&ids[1])], "Couples", members(&ids[1..4]), 1).unwrap();
        let mut all = vec![first.clone()];
        // Each admin builds on the newest roster it has seen; `fork`
        // makes it build on an older one, as when it missed an update.
        let mut views = [first.clone(), first.clone()];
        for (who, pick, fork) in plan {
            let a = usize::from(who);
            let base = if fork { all[usize::from(pick) % all.len()].clone() } else { views[a].clone() };
            let mut ms: Vec<Member> = base.members().to_vec();
            let candidate = &ids[2 + usize::from(pick) % 6];
            if let Some(i) = ms.iter().position(|m| m.address() == addr(candidate)) {
                ms.remove(i);
            } else {
                ms.push(Member::new(candidate.public().clone(), "new"));
            }
            let next = base.change(&ids[a], "Couples", ms, 2).unwrap();
            for v in views.iter_mut() {
                if next.supersedes(v) { *v = next.clone(); }
            }
            all.push(next);
        }
        let best = all.iter().fold(first.clone(), |b, r| if r.supersedes(&b) { r.clone() } else { b });
        for order in orders {
            // This member's deliveries: the chosen order (with repeats)...
            let mut held = first.clone();
            let mut deliveries: Vec<&Roster> = order.iter().map(|i| &all[i % all.len()]).collect();
            // ...and then everything, late, so it has seen them all.
            deliveries.extend(all.iter().rev());
            for r in deliveries {
                let r = Roster::verify(&r.to_update()).unwrap();
                if r.supersedes(&held) { held = r; }
            }
            prop_assert_eq!(held.digest(), best.digest());
        }
    }
}

/// Two members with a Double Ratchet session (X started it; both have
/// spoken), as group members have once keys were distributed.
fn pairwise(rng: &mut ChaCha20Rng) -> (IdentityKeyPair, IdentityKeyPair, Session, Session) {
    use alcove_protocol::prekeys::{OneTimePreKeyPair, PreKeyBundle, SignedPreKeyPair};
    use alcove_protocol::x3dh::{self, InitialMessage};
    let x = IdentityKeyPair::generate(rng);
    let b = IdentityKeyPair::generate(rng);
    let spk = SignedPreKeyPair::generate(rng, &b, 1, 1_700_000_000);
    let otk = OneTimePreKeyPair::generate(rng, &b, 1);
    let bundle =
        PreKeyBundle::new(b.public().clone(), spk.public().clone(), Some(otk.public())).unwrap();
    let mut x_to_b = x3dh::initiate(rng, &x, &bundle).unwrap();
    let first = x_to_b.encrypt(rng, b"hello").unwrap();
    let initial = InitialMessage::decode(&first).unwrap();
    let (mut b_to_x, _) = x3dh::accept(&b, &spk, Some(&otk), x.public(), &initial).unwrap();
    let reply = b_to_x.encrypt(rng, b"hi").unwrap();
    x_to_b.decrypt(&reply).unwrap();
    let again = x_to_b.encrypt(rng, b"how are you").unwrap();
    b_to_x.decrypt(&again).unwrap();
    (x, b, x_to_b, b_to_x)
}

fn encode(d: &alcove_protocol::content::GroupSenderKey) -> Vec<u8> {
    prost::Message::encode_to_vec(d)
}

fn decode(bytes: &[u8]) -> alcove_protocol::content::GroupSenderKey {
    prost::Message::decode(bytes).unwrap()
}

/// What the thief does with every message to the victim it sees: tries
/// its copy of the victim's session, and any chain it learnt that way.
struct Thief {
    session: Session,
    chains: Vec<ReceivedSenderKey>,
}

impl Thief {
    fn steal(session: &Session, chains: &[ReceivedSenderKey]) -> Self {
        Self {
            session: Session::from_bytes(&session.to_bytes()).unwrap(),
            chains: chains.to_vec(),
        }
    }

    /// A pairwise message to the victim carrying a sender key.
    fn sees_distribution(&mut self, owner: &DeviceAddress, wire: &[u8]) -> bool {
        match self.session.decrypt(wire) {
            Ok(plain) => {
                self.chains
                    .push(ReceivedSenderKey::from_distribution(owner, &decode(&plain)).unwrap());
                true
            }
            Err(_) => false,
        }
    }

    fn sees_pairwise(&mut self, wire: &[u8]) {
        let _ = self.session.decrypt(wire);
    }

    fn reads_group(&mut self, sender: &DeviceAddress, wire: &[u8]) -> bool {
        self.chains
            .iter_mut()
            .any(|c| c.decrypt(sender, wire).is_ok())
    }
}

#[test]
fn a_stolen_state_reads_on_until_the_key_update_then_is_locked_out() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (x, b, mut x_to_b, mut b_to_x) = pairwise(&mut rng);
    let group = GroupId([5; 32]);
    let xa = addr(&x);
    // X's chain reaches B over their session.
    let mut chain = SenderKey::generate(&mut rng, &group, 1);
    let wire = x_to_b
        .encrypt(&mut rng, &encode(&chain.distribution()))
        .unwrap();
    let mut b_chains =
        vec![
            ReceivedSenderKey::from_distribution(&xa, &decode(&b_to_x.decrypt(&wire).unwrap()))
                .unwrap(),
        ];

    // The thief copies B's complete state.
    let mut thief = Thief::steal(&b_to_x, &b_chains);

    // Without an update, the thief reads on; and a new chain that X sends
    // at once (no fresh Diffie-Hellman step from B in between) is read too.
    let m = chain.encrypt(&mut rng, &xa, b"read by the thief").unwrap();
    assert!(thief.reads_group(&xa, &m));
    let naive = SenderKey::generate(&mut rng, &group, 1);
    let wire = x_to_b
        .encrypt(&mut rng, &encode(&naive.distribution()))
        .unwrap();
    b_to_x.decrypt(&wire).unwrap();
    assert!(
        thief.sees_distribution(&xa, &wire),
        "a naive rotation does not lock the thief out"
    );

    // The update: B asks (1), X acknowledges (2); B then sends its new
    // chain asking X to rotate (3); X makes a new chain and sends it (4).
    let request = b_to_x.encrypt(&mut rng, b"key update: request").unwrap();
    x_to_b.decrypt(&request).unwrap();
    let ack = x_to_b.encrypt(&mut rng, b"key update: ack").unwrap();
    b_to_x.decrypt(&ack).unwrap();
    thief.sees_pairwise(&ack);
    let b_chain = SenderKey::generate(&mut rng, &group, 1);
    let mut rotate = b_chain.distribution();
    rotate.rotate = true;
    let wire = b_to_x.encrypt(&mut rng, &encode(&rotate)).unwrap();
    assert!(decode(&x_to_b.decrypt(&wire).unwrap()).rotate);
    let mut fresh = SenderKey::generate(&mut rng, &group, 1);
    let wire = x_to_b
        .encrypt(&mut rng, &encode(&fresh.distribution()))
        .unwrap();
    b_chains.push(
        ReceivedSenderKey::from_distribution(&xa, &decode(&b_to_x.decrypt(&wire).unwrap()))
            .unwrap(),
    );
    assert!(
        !thief.sees_distribution(&xa, &wire),
        "the thief read the new chain"
    );

    // X's next group message: B reads it, the thief does not.
    let m = fresh.encrypt(&mut rng, &xa, b"after the update").unwrap();
    assert_eq!(
        b_chains.last_mut().unwrap().decrypt(&xa, &m).unwrap(),
        b"after the update"
    );
    assert!(!thief.reads_group(&xa, &m));
    // Nor any later pairwise message to B.
    let later = x_to_b.encrypt(&mut rng, b"later").unwrap();
    assert!(thief.session.decrypt(&later).is_err());
    let _ = b;
}

/// A member who holds its own chain can make a message that authenticates
/// at any iteration, the last one included (no honest sender reaches it:
/// `encrypt` stops one short). The receiver refuses it instead of
/// overflowing its counter.
#[test]
fn a_message_at_the_last_iteration_is_refused_not_a_panic() {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use hmac::{Hmac, Mac};
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let owner = addr(&IdentityKeyPair::generate(&mut rng));
    let group = GroupId([4; 32]);
    let chain_key = [9u8; 32];
    let distribution = alcove_protocol::content::GroupSenderKey {
        group_id: group.0.to_vec(),
        epoch: 1,
        chain_id: vec![6; 16],
        iteration: u32::MAX,
        chain_key: chain_key.to_vec(),
        rotate: false,
    };
    let mut received = ReceivedSenderKey::from_distribution(&owner, &distribution).unwrap();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&chain_key).unwrap();
    mac.update(&[0x01]);
    let key: [u8; 32] = mac.finalize().into_bytes().into();
    let mut wire = vec![0x24];
    wire.extend([6u8; 16]);
    wire.extend(u32::MAX.to_be_bytes());
    wire.extend([0u8; 24]);
    let mut ad = wire.clone();
    ad.extend(owner.as_bytes());
    ad.extend(group.0);
    let sealed = XChaCha20Poly1305::new((&key).into())
        .encrypt(
            XNonce::from_slice(&[0u8; 24]),
            Payload {
                msg: b"last",
                aad: &ad,
            },
        )
        .unwrap();
    wire.extend(sealed);
    assert!(received.decrypt(&owner, &wire).is_err());
}
