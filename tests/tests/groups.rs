//! Group therapy through the real relay, once on sled and once on
//! PostgreSQL: a therapist and nineteen clients (a 20-member group), texts
//! from several members, homework to the group with submissions only the
//! therapist sees, feedback to one member, read receipts per member, a
//! removal, a member who leaves, and a key update. The cryptographic
//! properties (removed member's complete state, forged changes,
//! convergence, post-compromise security) are tested on the protocol
//! core in `crates/alcove-protocol/tests/groups.rs`.

mod common;

use std::time::Duration;

use alcove_client::{Body, Client, DeviceAddress, Error, Event, EventKind, GroupId};
use common::sdk::{profile, texts};
use common::{Backend, TestRelay};

on_every_backend!(
    a_twenty_member_group_through_the_relay,
    couples_therapy_leave_and_key_update,
    a_member_restored_from_a_backup_loses_no_group_message,
    a_forged_change_is_refused_and_an_offline_member_converges,
    two_admins_change_the_membership_at_once_and_everyone_converges,
    group_messages_without_keys_are_bounded_per_sender_and_reported,
);

fn group_changes(events: &[Event]) -> Vec<alcove_client::GroupChange> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::GroupChanged(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// A therapist and `n` clients who accepted one intake invite.
async fn practice(relay: &TestRelay, dir: &std::path::Path, n: usize) -> (Client, Vec<Client>) {
    let therapist = profile(relay, dir, "t", 1, "Dr. Rivera").await;
    let invite = therapist
        .create_invite_for(Duration::from_secs(3600), n as u32)
        .await
        .unwrap();
    let mut clients = Vec::new();
    for i in 0..n {
        let c = profile(
            relay,
            dir,
            &format!("c{i}"),
            10 + i as u8,
            &format!("Client {i}"),
        )
        .await;
        c.accept_invite(&invite).await.unwrap();
        clients.push(c);
    }
    let accepted = therapist.sync().await.unwrap();
    assert_eq!(accepted.len(), n);
    (therapist, clients)
}

async fn a_twenty_member_group_through_the_relay(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, clients) = practice(&relay, dir.path(), 19).await;
    let addrs: Vec<DeviceAddress> = clients.iter().map(|c| c.address()).collect();

    let group = therapist
        .create_group("Tuesday CBT group", &addrs)
        .await
        .unwrap();
    for c in &clients {
        let changes = group_changes(&c.sync().await.unwrap());
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].group, changes[0].epoch), (group, 1));
        assert_eq!(changes[0].added.len(), 20);
        let info = c.group(&group).await.unwrap();
        assert_eq!(info.members.len(), 20);
        assert_eq!(info.title, "Tuesday CBT group");
        assert!(!info.is_admin && !info.removed);
        assert_eq!(info.admins, vec![therapist.address()]);
    }

    // The therapist speaks: one encryption, nineteen sealed copies.
    let welcome = therapist
        .send_group_text(&group, "Welcome, everyone")
        .await
        .unwrap();
    for c in &clients {
        let events = c.sync().await.unwrap();
        assert_eq!(texts(&events), ["Welcome, everyone"]);
        let e = events.iter().find(|e| e.body().is_some()).unwrap();
        assert_eq!((e.group, e.contact), (Some(group), therapist.address()));
        assert_eq!(e.message_id(), Some(welcome));
    }

    // Three clients speak; everyone else reads each, in order.
    for (i, c) in clients.iter().enumerate().take(3) {
        c.send_group_text(&group, &format!("hello from {i}"))
            .await
            .unwrap();
    }
    let all = ["hello from 0", "hello from 1", "hello from 2"];
    assert_eq!(texts(&therapist.sync().await.unwrap()), all);
    for (j, c) in clients.iter().enumerate() {
        let expected: Vec<&str> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != j)
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(texts(&c.sync().await.unwrap()), expected, "client {j}");
    }

    // Read receipts, per member, to the sender alone.
    for c in clients.iter().take(4) {
        c.send_group_read_receipt(&group, &therapist.address(), &[welcome])
            .await
            .unwrap();
    }
    let receipts: Vec<Event> = therapist
        .sync()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.body(), Some(Body::ReadReceipt(_))))
        .collect();
    assert_eq!(receipts.len(), 4);
    assert!(receipts.iter().all(|e| e.group == Some(group)));
    let readers: Vec<DeviceAddress> = receipts.iter().map(|e| e.contact).collect();
    assert_eq!(readers, addrs[..4]);

    // Homework to the group; submissions go to the therapist only.
    let homework = therapist
        .assign_group_homework(
            &group,
            None,
            "Thought record",
            "Write down one situation a day.",
            Some("2026-12-08"),
            vec![],
            false,
        )
        .await
        .unwrap();
    for c in &clients {
        let events = c.sync().await.unwrap();
        let a = events
            .iter()
            .find_map(|e| match e.body() {
                Some(Body::HomeworkAssignment(a)) => Some((a.clone(), e.group)),
                _ => None,
            })
            .unwrap();
        assert_eq!((a.0.title.as_str(), a.1), ("Thought record", Some(group)));
    }
    let submission = clients[0]
        .submit_group_homework(&group, &homework, "Monday: the bus was late.", vec![])
        .await
        .unwrap();
    let got = therapist.sync().await.unwrap();
    let s = got
        .iter()
        .find(|e| matches!(e.body(), Some(Body::HomeworkSubmission(_))))
        .unwrap();
    assert_eq!((s.contact, s.group), (addrs[0], Some(group)));
    for c in clients.iter().skip(1) {
        assert!(c.sync().await.unwrap().iter().all(|e| e.body().is_none()));
    }
    // Feedback to that member alone.
    therapist
        .send_group_feedback(&group, Some(&addrs[0]), &submission, "Well observed.")
        .await
        .unwrap();
    let fb = clients[0].sync().await.unwrap();
    assert!(fb.iter().any(
        |e| matches!(e.body(), Some(Body::Feedback(f)) if f.body == "Well observed.")
            && e.group == Some(group)
    ));
    assert!(clients[1].sync().await.unwrap().is_empty());

    // A removal: the removed member learns it and gets nothing after.
    let gone = &clients[18];
    therapist
        .remove_group_members(&group, &[addrs[18]])
        .await
        .unwrap();
    let changes = group_changes(&gone.sync().await.unwrap());
    assert!(changes[0].removed_me);
    assert!(gone.group(&group).await.unwrap().removed);
    for c in clients.iter().take(18) {
        let changes = group_changes(&c.sync().await.unwrap());
        assert_eq!(changes[0].removed, vec![addrs[18]]);
        assert_eq!(c.group(&group).await.unwrap().members.len(), 19);
    }
    therapist
        .send_group_text(&group, "after the removal")
        .await
        .unwrap();
    clients[5]
        .send_group_text(&group, "a member after the removal")
        .await
        .unwrap();
    assert!(texts(&gone.sync().await.unwrap()).is_empty());
    assert_eq!(
        texts(&clients[0].sync().await.unwrap()),
        ["after the removal", "a member after the removal"]
    );
    assert!(matches!(
        gone.send_group_text(&group, "still here?").await,
        Err(Error::InvalidInput(_))
    ));
    // Only the admin changes membership.
    assert!(matches!(
        clients[0].remove_group_members(&group, &[addrs[1]]).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        clients[0].send_group_text(&GroupId([0; 32]), "x").await,
        Err(Error::InvalidInput(_))
    ));
}

/// Couples therapy: a group of three. One partner leaves (the therapist's
/// device signs the roster without them on its own); a key update runs
/// its two steps through the relay and everyone still reads everyone.
async fn couples_therapy_leave_and_key_update(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, partners) = practice(&relay, dir.path(), 3).await;
    let addrs: Vec<DeviceAddress> = partners.iter().map(|c| c.address()).collect();
    let group = therapist
        .create_group("Alex and Sam", &addrs[..2])
        .await
        .unwrap();
    for p in &partners[..2] {
        p.sync().await.unwrap();
    }
    // A member added later reads what is sent from then on only.
    therapist
        .send_group_text(&group, "before the third joined")
        .await
        .unwrap();
    therapist
        .add_group_members(&group, &[addrs[2]])
        .await
        .unwrap();
    therapist
        .send_group_text(&group, "after the third joined")
        .await
        .unwrap();
    assert_eq!(
        texts(&partners[2].sync().await.unwrap()),
        ["after the third joined"]
    );
    assert_eq!(
        texts(&partners[0].sync().await.unwrap()),
        ["before the third joined", "after the third joined"]
    );
    partners[1].sync().await.unwrap();

    // A key update started by partner 0: requests, acknowledgements, new
    // chains; then everyone still reads everyone.
    partners[0].update_group_keys(&group).await.unwrap();
    for _ in 0..2 {
        therapist.sync().await.unwrap();
        for p in &partners {
            p.sync().await.unwrap();
        }
        partners[0].sync().await.unwrap();
    }
    for (i, p) in partners.iter().enumerate() {
        p.send_group_text(&group, &format!("after the update {i}"))
            .await
            .unwrap();
    }
    therapist
        .send_group_text(&group, "after the update, therapist")
        .await
        .unwrap();
    assert_eq!(
        texts(&therapist.sync().await.unwrap()),
        [
            "after the update 0",
            "after the update 1",
            "after the update 2"
        ]
    );
    for (i, p) in partners.iter().enumerate() {
        let got = texts(&p.sync().await.unwrap());
        assert_eq!(got.len(), 3, "partner {i}: {got:?}");
        assert_eq!(got.last().unwrap(), "after the update, therapist");
    }

    // Partner 1 leaves: keys gone at once; the therapist's device signs
    // the roster without them when the request arrives.
    partners[1].leave_group(&group).await.unwrap();
    assert!(partners[1].group(&group).await.unwrap().removed);
    let changes = group_changes(&therapist.sync().await.unwrap());
    assert!(changes.is_empty());
    let info = therapist.group(&group).await.unwrap();
    assert_eq!(info.members.len(), 3);
    assert!(!info.members.iter().any(|m| m.address == addrs[1]));
    let seen = group_changes(&partners[0].sync().await.unwrap());
    assert_eq!(seen[0].removed, vec![addrs[1]]);
    therapist.send_group_text(&group, "just us").await.unwrap();
    assert_eq!(texts(&partners[0].sync().await.unwrap()), ["just us"]);
    assert!(texts(&partners[1].sync().await.unwrap()).is_empty());
}

/// A member's phone is restored from a backup: the new roster and the
/// therapist's new chain, sent on a pairwise session the restored state
/// cannot follow, do not decrypt; the group message on that chain arrives
/// before them and waits on the device; recovery (retry requests) brings
/// the roster and the chain again, and the waiting message opens. Nothing
/// is lost.
async fn a_member_restored_from_a_backup_loses_no_group_message(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, mut clients) = practice(&relay, dir.path(), 2).await;
    let addrs: Vec<DeviceAddress> = clients.iter().map(|c| c.address()).collect();
    let group = therapist
        .create_group("Skills group", &addrs)
        .await
        .unwrap();
    therapist.send_group_text(&group, "first").await.unwrap();
    for c in &clients {
        assert_eq!(texts(&c.sync().await.unwrap()), ["first"]);
    }
    // Client 0 is backed up, writes to the therapist (a fresh ratchet
    // step the backup never saw), and is restored.
    let path = dir.path().join("c0");
    let backup = dir.path().join("c0-backup");
    drop(clients.remove(0));
    common::copy_dir(&path, &backup);
    let c0 = Client::open(&path, &[10; 32]).await.unwrap();
    for i in 0..2 {
        c0.send_text(&therapist.address(), &format!("one to one {i}"))
            .await
            .unwrap();
        therapist.sync().await.unwrap();
        therapist
            .send_text(&addrs[0], &format!("answer {i}"))
            .await
            .unwrap();
        c0.sync().await.unwrap();
    }
    drop(c0);
    std::fs::remove_dir_all(&path).unwrap();
    common::copy_dir(&backup, &path);
    let c0 = Client::open(&path, &[10; 32]).await.unwrap();

    // A roster change (a new epoch, so a new chain) and a group message.
    let extra = profile(&relay, dir.path(), "c2", 30, "Client 2").await;
    let invite = extra
        .create_invite_for(Duration::from_secs(600), 1)
        .await
        .unwrap();
    therapist.accept_invite(&invite).await.unwrap();
    extra.sync().await.unwrap();
    therapist
        .add_group_members(&group, &[extra.address()])
        .await
        .unwrap();
    therapist
        .send_group_text(&group, "after the restore")
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.extend(c0.sync().await.unwrap());
        therapist.sync().await.unwrap();
    }
    assert_eq!(texts(&seen), ["after the restore"], "{seen:?}");
    assert!(seen
        .iter()
        .any(|e| matches!(e.kind, EventKind::SessionReset { .. })));
    assert_eq!(c0.group(&group).await.unwrap().members.len(), 4);
    assert_eq!(
        texts(&clients[0].sync().await.unwrap()),
        ["after the restore"]
    );
}

/// A member signs a roster of their own (removing another member) and
/// sends it to everyone over the pairwise sessions: every member refuses
/// it. A member offline through three changes comes back to the same
/// roster as everyone else.
async fn a_forged_change_is_refused_and_an_offline_member_converges(backend: Backend) {
    use alcove_protocol::content::{GroupRoster, GroupUpdate};
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, clients) = practice(&relay, dir.path(), 5).await;
    let addrs: Vec<DeviceAddress> = clients.iter().map(|c| c.address()).collect();
    let group = therapist.create_group("Group", &addrs[..4]).await.unwrap();
    for c in &clients[..4] {
        c.sync().await.unwrap();
    }
    // Member 0 forges: epoch 9, member 1 removed, signed with its own key.
    let forger = alcove_protocol::IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    let mut pb = GroupRoster {
        group_id: group.0.to_vec(),
        epoch: 9,
        title: "Hijacked".into(),
        signer: addrs[0].as_bytes().to_vec(),
        ..Default::default()
    };
    pb.admins = vec![therapist.address().as_bytes().to_vec()];
    pb.members = vec![alcove_protocol::content::GroupMember {
        identity: forger.public().to_bytes().to_vec(),
        name: "forger".into(),
        delivery_key: Vec::new(),
    }];
    let roster = prost::Message::encode_to_vec(&pb);
    let mut signed = b"Alcove/v1/group-roster".to_vec();
    signed.extend_from_slice(&roster);
    let forged = Body::GroupUpdate(GroupUpdate {
        roster,
        signature: forger.sign(&signed).to_bytes().to_vec(),
    });
    // The SDK's group calls refuse control bodies; the general send does
    // not (a hostile member can send any bytes anyway).
    assert!(matches!(
        clients[0]
            .send_to_member(&group, &addrs[1], forged.clone())
            .await,
        Err(Error::InvalidInput(_))
    ));
    for to in [&addrs[1], &addrs[2], &addrs[3]] {
        clients[0].send(to, forged.clone()).await.unwrap();
    }
    for c in &clients[1..4] {
        let got = c.sync().await.unwrap();
        assert!(group_changes(&got).is_empty(), "{got:?}");
        let info = c.group(&group).await.unwrap();
        assert_eq!(
            (info.epoch, info.title.as_str(), info.members.len()),
            (1, "Group", 5)
        );
    }

    // Member 3 is offline while the therapist adds, removes and adds.
    therapist
        .add_group_members(&group, &[addrs[4]])
        .await
        .unwrap();
    therapist
        .remove_group_members(&group, &[addrs[1]])
        .await
        .unwrap();
    therapist
        .add_group_members(&group, &[addrs[1]])
        .await
        .unwrap();
    therapist
        .send_group_text(&group, "after three changes")
        .await
        .unwrap();
    let expected = therapist.group(&group).await.unwrap();
    assert_eq!(expected.epoch, 4);
    for c in [&clients[0], &clients[1], &clients[2], &clients[4]] {
        c.sync().await.unwrap();
    }
    let got = clients[3].sync().await.unwrap();
    assert_eq!(texts(&got), ["after three changes"]);
    assert_eq!(group_changes(&got).len(), 3);
    for c in &clients {
        let info = c.group(&group).await.unwrap();
        assert_eq!(
            (info.epoch, &info.members),
            (expected.epoch, &expected.members)
        );
    }
}

/// Couples therapy with two therapists (co-admins). Both change the
/// membership at the same time, each without having seen the other's
/// change (both sign epoch 2). Every member keeps the same roster (the
/// total order), the admin whose change lost signs it again on top, and
/// in the end both changes hold everywhere. Shared submissions reach the
/// whole group.
async fn two_admins_change_the_membership_at_once_and_everyone_converges(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (lead, clients) = practice(&relay, dir.path(), 4).await;
    let addrs: Vec<DeviceAddress> = clients.iter().map(|c| c.address()).collect();
    // clients[0] is the co-therapist; it needs the others as contacts to
    // add anyone, so it gets an intake invite of its own.
    let co = &clients[0];
    let invite = co
        .create_invite_for(Duration::from_secs(600), 3)
        .await
        .unwrap();
    for c in &clients[1..] {
        c.accept_invite(&invite).await.unwrap();
    }
    co.sync().await.unwrap();
    assert!(matches!(
        lead.create_group_with_co_admins("x", &addrs[1..2], &addrs[3..4])
            .await,
        Err(Error::InvalidInput(_))
    ));
    let group = lead
        .create_group_with_co_admins("Couples", &addrs[..3], &addrs[..1])
        .await
        .unwrap();
    for c in &clients {
        c.sync().await.unwrap();
    }
    assert!(co.group(&group).await.unwrap().is_admin);
    // At once: the lead adds client 3, the co-therapist removes client 2.
    lead.add_group_members(&group, &[addrs[3]]).await.unwrap();
    co.remove_group_members(&group, &[addrs[2]]).await.unwrap();
    for _ in 0..3 {
        lead.sync().await.unwrap();
        for c in &clients {
            c.sync().await.unwrap();
        }
    }
    let held = lead.group(&group).await.unwrap();
    assert_eq!(held.epoch, 3, "one admin signed its change again on top");
    let members: Vec<DeviceAddress> = held.members.iter().map(|m| m.address).collect();
    assert!(members.contains(&addrs[3]) && !members.contains(&addrs[2]));
    for (i, c) in clients.iter().enumerate() {
        let info = c.group(&group).await.unwrap();
        assert_eq!(info.removed, i == 2, "client {i}");
        // The removed member stops at the roster that removed it (which
        // one depends on the tie-break); every member holds the same one.
        if i != 2 {
            assert_eq!(
                (info.epoch, &info.members),
                (held.epoch, &held.members),
                "client {i}"
            );
        }
    }
    // Shared homework: a submission reaches every member.
    let hw = lead
        .assign_group_homework(
            &group,
            None,
            "Appreciations",
            "Name one thing",
            None,
            vec![],
            true,
        )
        .await
        .unwrap();
    for c in &clients {
        c.sync().await.unwrap();
    }
    clients[1]
        .submit_group_homework(&group, &hw, "They made dinner.", vec![])
        .await
        .unwrap();
    for who in [&lead, &clients[0], &clients[3]] {
        let got = who.sync().await.unwrap();
        assert!(got.iter().any(|e| matches!(e.body(), Some(Body::HomeworkSubmission(s)) if s.body == "They made dinner.")
            && e.group == Some(group)), "{got:?}");
    }
    assert!(clients[2]
        .sync()
        .await
        .unwrap()
        .iter()
        .all(|e| e.body().is_none()));
}

/// A hostile device floods a client with group messages on chains it never
/// distributes. The client keeps a bounded number per sender waiting for
/// their keys, and reports each one past the bound as `Undecryptable`:
/// nothing is dropped silently, and one sender cannot fill the space kept
/// for others.
async fn group_messages_without_keys_are_bounded_per_sender_and_reported(backend: Backend) {
    use common::sdk::delivery_key;
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let client = profile(&relay, dir.path(), "c", 2, "Sam").await;
    let hostile = common::Device::registered(&relay, 0).await;
    let to = client.address();
    hostile.knows(to.as_bytes(), delivery_key(&client).await);
    let identity = hostile.bundle_of(to.as_bytes()).await.identity().clone();
    let over = 5;
    for i in 0..(alcove_client::MAX_HELD_PER_SENDER + over) {
        let mut wire = vec![0x24];
        wire.extend((i as u32).to_be_bytes());
        wire.extend([0u8; 12 + 4 + 24 + 40]);
        let envelope = alcove_protocol::sealed_sender::seal(
            &mut rand::rngs::OsRng,
            &hostile.identity,
            &identity,
            &wire,
        )
        .unwrap();
        hostile
            .send_envelope(to.as_bytes(), common::id16(1), envelope)
            .await;
    }
    let events = client.sync().await.unwrap();
    let refused: Vec<&Event> = events
        .iter()
        .filter(
            |e| matches!(&e.kind, EventKind::Undecryptable { reason } if reason.contains("wait")),
        )
        .collect();
    assert_eq!(refused.len(), over, "{events:?}");
    assert!(refused
        .iter()
        .all(|e| e.contact.as_bytes() == &hostile.address()));
}
