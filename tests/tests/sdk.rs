//! The SDK end to end: real relay on loopback, several real `alcove-client`
//! profiles; each test once on sled and once on PostgreSQL (skipped without
//! `ALCOVE_TEST_POSTGRES_URL`).

mod common;

use std::time::Duration;

use alcove_client::{Body, Client, Error};
use common::sdk::{pair, texts, url};
use common::{Backend, TestRelay};

on_every_backend!(
    offline_delivery_in_order,
    both_sides_restart_mid_conversation,
    unconfirmed_events_survive_a_restart,
    wrong_storage_key_is_refused,
    homework_flow_with_attachment,
    a_therapist_with_twenty_clients,
    a_changed_identity_key_is_flagged_and_sending_held,
    signed_prekey_rotation_keeps_in_flight_first_messages,
    out_of_order_and_lost_messages_through_the_relay,
);

async fn offline_delivery_in_order(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, client, to_client, _) = pair(&relay, dir.path()).await;
    // The client is offline (not syncing) while the therapist writes.
    for i in 0..10 {
        therapist
            .send_text(&to_client.address, &format!("message {i}"))
            .await
            .unwrap();
    }
    let got = client.sync().await.unwrap();
    assert_eq!(
        texts(&got),
        (0..10).map(|i| format!("message {i}")).collect::<Vec<_>>()
    );
    // Nothing is left on the relay, and nothing comes twice.
    assert!(client.sync().await.unwrap().is_empty());
}

async fn both_sides_restart_mid_conversation(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, client, to_client, to_therapist) = pair(&relay, dir.path()).await;
    therapist
        .send_text(&to_client.address, "before restart")
        .await
        .unwrap();
    assert_eq!(texts(&client.sync().await.unwrap()), ["before restart"]);
    client
        .send_text(&to_therapist.address, "reply before restart")
        .await
        .unwrap();
    drop(therapist);
    drop(client);

    let therapist = Client::open(&dir.path().join("t"), &[1; 32]).await.unwrap();
    let client = Client::open(&dir.path().join("c"), &[2; 32]).await.unwrap();
    assert_eq!(
        texts(&therapist.sync().await.unwrap()),
        ["reply before restart"]
    );
    therapist
        .send_text(&to_client.address, "after restart")
        .await
        .unwrap();
    client
        .send_text(&to_therapist.address, "client after restart")
        .await
        .unwrap();
    assert_eq!(texts(&client.sync().await.unwrap()), ["after restart"]);
    assert_eq!(
        texts(&therapist.sync().await.unwrap()),
        ["client after restart"]
    );
}

async fn unconfirmed_events_survive_a_restart(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, client, to_client, _) = pair(&relay, dir.path()).await;
    therapist
        .send_text(&to_client.address, "keep me")
        .await
        .unwrap();
    let got = client.sync().await.unwrap();
    assert_eq!(texts(&got), ["keep me"]);
    // The app crashes before confirming: the event is still there.
    drop(client);
    let client = Client::open(&dir.path().join("c"), &[2; 32]).await.unwrap();
    let pending = client.pending_events().await.unwrap();
    assert_eq!(texts(&pending), ["keep me"]);
    assert_eq!(pending[0].event_id, got[0].event_id);
    client.confirm(&pending[0]).await.unwrap();
    assert!(client.pending_events().await.unwrap().is_empty());
    assert!(
        client.sync().await.unwrap().is_empty(),
        "the relay does not deliver it again"
    );
}

async fn wrong_storage_key_is_refused(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let c = Client::create(dir.path(), &[5; 32], &url(&relay), "X")
        .await
        .unwrap();
    drop(c);
    assert!(matches!(
        Client::open(dir.path(), &[6; 32]).await,
        Err(Error::StorageLocked)
    ));
    assert!(Client::open(dir.path(), &[5; 32]).await.is_ok());
}

async fn homework_flow_with_attachment(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, client, to_client, to_therapist) = pair(&relay, dir.path()).await;
    let file = dir.path().join("worksheet.pdf");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 256) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let mut last = (0, 0);
    let pointer = therapist
        .upload_file(&file, "application/pdf", |d, t| last = (d, t))
        .await
        .unwrap();
    assert_eq!(last, (data.len() as u64, data.len() as u64));
    let assignment = therapist
        .assign_homework(
            &to_client.address,
            "Worksheet",
            "Fill it in",
            Some("2026-12-24"),
            vec![pointer],
        )
        .await
        .unwrap();
    let got = client.sync().await.unwrap();
    let Some(Body::HomeworkAssignment(a)) = got[0].body() else {
        panic!("expected homework")
    };
    assert_eq!(got[0].message_id(), Some(assignment));
    let out = dir.path().join("downloaded.pdf");
    client
        .download_file(&a.attachments[0], &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    // A pointer with a wrong digest is refused and leaves no file.
    let mut bad = a.attachments[0].clone();
    bad.digest = vec![0; 32];
    let bad_out = dir.path().join("bad.pdf");
    assert!(matches!(
        client.download_file(&bad, &bad_out, |_, _| {}).await,
        Err(Error::VerificationFailed(_))
    ));
    assert!(!bad_out.exists());

    let submission = client
        .submit_homework(&to_therapist.address, &assignment, "done", vec![])
        .await
        .unwrap();
    let got = therapist.sync().await.unwrap();
    let Some(Body::HomeworkSubmission(s)) = got[0].body() else {
        panic!("expected submission")
    };
    assert_eq!(s.assignment_id, assignment.0.to_vec());
    therapist
        .send_feedback(&to_client.address, &submission, "great")
        .await
        .unwrap();
    let got = client.sync().await.unwrap();
    let Some(Body::Feedback(f)) = got[0].body() else {
        panic!("expected feedback")
    };
    assert_eq!(f.refers_to, submission.0.to_vec());
}

async fn a_therapist_with_twenty_clients(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let therapist = std::sync::Arc::new(
        Client::create(&dir.path().join("t"), &[1; 32], &url(&relay), "T")
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let invite = therapist
            .create_invite(Duration::from_secs(3600))
            .await
            .unwrap();
        let path = dir.path().join(format!("c{i}"));
        let url = url(&relay);
        tasks.push(tokio::spawn(async move {
            let c = Client::create(&path, &[i + 10; 32], &url, &format!("client {i}"))
                .await
                .unwrap();
            let t = c.accept_invite(&invite).await.unwrap();
            for n in 0..3 {
                c.send_text(&t.address, &format!("client {i} message {n}"))
                    .await
                    .unwrap();
            }
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let got = therapist.sync().await.unwrap();
    assert_eq!(texts(&got).len(), 60);
    assert_eq!(therapist.contacts().await.len(), 20);
    // The therapist answers everyone concurrently; each gets only theirs.
    let mut sends = Vec::new();
    for contact in therapist.contacts().await {
        let t = therapist.clone();
        sends.push(tokio::spawn(async move {
            t.send_text(&contact.address, &format!("hello {}", contact.name))
                .await
        }));
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(
            texts(&c.sync().await.unwrap()),
            [format!("hello client {i}")]
        );
    }
}

/// A raw device (the protocol and the relay API, no SDK) opens a session
/// with `to` and sends it one text.
async fn raw_initial_message(
    device: &common::Device,
    to: &alcove_client::DeviceAddress,
    text: &str,
) {
    let bundle = device.bundle_of(to.as_bytes()).await;
    common::raw_first_message(device, &bundle, text).await;
}

async fn a_changed_identity_key_is_flagged_and_sending_held(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let therapist = Client::create(&dir.path().join("t"), &[1; 32], &url(&relay), "T")
        .await
        .unwrap();
    // A device talks to the therapist (it holds the therapist's delivery
    // key, as anyone given an invite does).
    let device = common::Device::registered(&relay, 0).await;
    let key = common::sdk::delivery_key(&therapist).await;
    device.knows(therapist.address().as_bytes(), key.clone());
    raw_initial_message(&device, &therapist.address(), "first").await;
    assert_eq!(texts(&therapist.sync().await.unwrap()), ["first"]);
    let contact = therapist.contacts().await.pop().unwrap();
    assert!(!contact.key_changed);

    // The same Ed25519 identity (same address) comes back with another
    // X25519 key, as after a reinstall that kept only the signing key.
    let secret = device.identity.to_secret_bytes();
    let mut changed = secret.to_vec();
    changed[32..].copy_from_slice(&[0x42; 32]);
    let identity = alcove_protocol::identity::IdentityKeyPair::from_secret_bytes(&changed).unwrap();
    assert_eq!(
        identity.public().address(),
        device.identity.public().address()
    );
    let mut rng = rand::rngs::OsRng;
    let mut again = common::Device {
        signed_prekey: alcove_protocol::prekeys::SignedPreKeyPair::generate(
            &mut rng,
            &identity,
            2,
            common::now_secs(),
        ),
        identity,
        one_time_prekeys: vec![],
        token: String::new(),
        channel: relay.channel().await,
        access_keys: Default::default(),
    };
    again.knows(therapist.address().as_bytes(), key.clone());
    again.register().await.unwrap();
    raw_initial_message(&again, &therapist.address(), "new phone").await;
    let got = therapist.sync().await.unwrap();
    assert_eq!(texts(&got), ["new phone"]);

    let contact = therapist.contact(&contact.address).await.unwrap();
    assert!(contact.key_changed, "the key change is flagged");
    assert!(matches!(
        therapist.send_text(&contact.address, "held").await,
        Err(Error::ContactKeyChanged)
    ));
    therapist.accept_key_change(&contact.address).await.unwrap();
    let contact = therapist.contact(&contact.address).await.unwrap();
    assert!(!contact.key_changed && !contact.verified);
    therapist
        .send_text(&contact.address, "after re-verification")
        .await
        .unwrap();
}

async fn signed_prekey_rotation_keeps_in_flight_first_messages(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let therapist = Client::create(&dir.path().join("t"), &[1; 32], &url(&relay), "T")
        .await
        .unwrap();
    // A first message made with signed prekey 1 is on its way...
    let key = common::sdk::delivery_key(&therapist).await;
    let early = common::Device::registered(&relay, 0).await;
    early.knows(therapist.address().as_bytes(), key.clone());
    raw_initial_message(
        &early,
        &therapist.address(),
        "made with the old signed prekey",
    )
    .await;
    // ...when the therapist rotates twice.
    therapist.rotate_signed_prekey().await.unwrap();
    let late = common::Device::registered(&relay, 0).await;
    late.knows(therapist.address().as_bytes(), key.clone());
    raw_initial_message(&late, &therapist.address(), "made with the new one").await;
    let got = therapist.sync().await.unwrap();
    assert_eq!(
        texts(&got),
        ["made with the old signed prekey", "made with the new one"]
    );
    // The relay now hands out signed prekey 2.
    let bundle = late.bundle_of(therapist.address().as_bytes()).await;
    assert_eq!(bundle.signed_prekey().id(), 2);
    // A second rotation moves the relay on to signed prekey 3.
    let stale = common::Device::registered(&relay, 0).await;
    stale.knows(therapist.address().as_bytes(), key.clone());
    therapist.rotate_signed_prekey().await.unwrap();
    let bundle3 = stale.bundle_of(therapist.address().as_bytes()).await;
    assert_eq!(bundle3.signed_prekey().id(), 3);
}

async fn out_of_order_and_lost_messages_through_the_relay(backend: Backend) {
    use alcove_protocol::content::{self, Content, Text};
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let therapist = Client::create(&dir.path().join("t"), &[1; 32], &url(&relay), "T")
        .await
        .unwrap();
    let sender = common::Device::registered(&relay, 0).await;
    sender.knows(
        therapist.address().as_bytes(),
        common::sdk::delivery_key(&therapist).await,
    );
    let mut rng = rand::rngs::OsRng;
    let bundle = sender.bundle_of(therapist.address().as_bytes()).await;
    let mut session = alcove_protocol::x3dh::initiate(&mut rng, &sender.identity, &bundle).unwrap();
    let envelopes: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            let message = Content {
                message_id: common::id16(i),
                sent_at_ms: i64::from(i),
                body: Some(Body::Text(Text {
                    body: format!("m{i}"),
                    reply_to: vec![],
                })),
                ..Default::default()
            };
            let wire = session
                .encrypt(&mut rng, &content::encode(&message))
                .unwrap();
            alcove_protocol::sealed_sender::seal(
                &mut rng,
                &sender.identity,
                bundle.identity(),
                &wire,
            )
            .unwrap()
        })
        .collect();
    // The network reorders (m3, m0, m4, m1) and loses m2.
    for i in [3usize, 0, 4, 1] {
        sender
            .send_envelope(
                therapist.address().as_bytes(),
                common::id16(100 + i as u8),
                envelopes[i].clone(),
            )
            .await;
    }
    let got = therapist.sync().await.unwrap();
    assert_eq!(
        texts(&got),
        ["m3", "m0", "m4", "m1"],
        "every message that arrived decrypts, in arrival order"
    );
    // The lost one turns up late: it still decrypts (its key was kept).
    sender
        .send_envelope(
            therapist.address().as_bytes(),
            common::id16(102),
            envelopes[2].clone(),
        )
        .await;
    assert_eq!(texts(&therapist.sync().await.unwrap()), ["m2"]);
    // A replay (a new relay id, the same envelope) is not delivered twice.
    sender
        .send_envelope(
            therapist.address().as_bytes(),
            common::id16(200),
            envelopes[0].clone(),
        )
        .await;
    assert!(therapist.sync().await.unwrap().is_empty());
}
