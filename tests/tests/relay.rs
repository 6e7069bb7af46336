//! The relay end to end: every RPC's success path and its error statuses,
//! against the real server on loopback, once on a real sled store and once
//! on PostgreSQL (when `ALCOVE_TEST_POSTGRES_URL` is set; else skipped).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::upload_request::Part;
use alcove_api::v1::*;
use alcove_protocol::prekeys::PreKeyBundle;
use alcove_protocol::sealed_sender;
use common::{code, id16, Backend, Device, TestRelay};
use tonic::Code;

on_every_backend!(
    register_login_and_keys,
    auth_errors,
    expired_tokens_are_refused,
    send_fetch_ack_and_idempotency,
    acknowledged_ids_are_forgotten_beyond_the_window,
    mailbox_errors,
    a_device_cannot_touch_another_mailbox,
    one_time_prekey_is_handed_out_once_under_concurrency,
    bundle_fetches_are_rate_limited,
    prekey_limits,
    subscriber_gets_waiting_then_live_messages,
    live_deliveries_from_memory_keep_order,
    too_many_subscriptions,
    messages_survive_a_restart_and_acked_ones_are_gone,
    blobs_upload_and_download,
    health_and_reflection,
    metrics_endpoint_counts,
    key_log_records_every_key_change_and_survives_restart,
);

async fn register_login_and_keys(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let mut alice = Device::registered(&relay, 5).await;
    let bob = Device::registered(&relay, 3).await;

    // Login again with a fresh challenge.
    alice.login().await.unwrap();

    // Count, upload, rotate.
    let n = alice
        .keys()
        .count_pre_keys(alice.req(CountPreKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.one_time_prekeys, 5);
    let mut rng = rand::rngs::OsRng;
    let more = common::one_time_prekeys(&alice.identity, 100..110);
    let n = alice
        .keys()
        .upload_one_time_pre_keys(alice.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: more,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.one_time_prekeys, 15);
    let new_spk = alcove_protocol::prekeys::SignedPreKeyPair::generate(
        &mut rng,
        &alice.identity,
        2,
        1_800_000_000,
    );
    alice
        .keys()
        .rotate_signed_pre_key(alice.req(RotateSignedPreKeyRequest {
            signed_prekey: new_spk.public().to_bytes().to_vec(),
        }))
        .await
        .unwrap();

    // Bob fetches Alice's bundle: verified, with the new signed prekey and
    // a one-time prekey; the count goes down.
    let bundle = bob
        .keys()
        .get_bundle(bob.req(GetBundleRequest {
            address: alice.address().to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .bundle;
    let bundle = PreKeyBundle::from_bytes(&bundle).unwrap();
    assert_eq!(bundle.identity(), alice.identity.public());
    assert_eq!(bundle.signed_prekey().id(), 2);
    assert!(bundle.one_time_prekey().is_some());
    let n = alice
        .keys()
        .count_pre_keys(alice.req(CountPreKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.one_time_prekeys, 14);
}

async fn auth_errors(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let mut alice = Device::registered(&relay, 0).await;
    let auth = AuthClient::new(alice.channel.clone());

    // Bad address length.
    assert_eq!(
        code(
            auth.clone()
                .challenge(ChallengeRequest {
                    address: vec![1; 5]
                })
                .await
        ),
        Code::InvalidArgument
    );

    // A challenge answered twice: the second time it is burnt.
    let (challenge, server_id) = alice.challenge().await;
    let signature = alice.sign(&server_id, &challenge);
    let login = LoginRequest {
        address: alice.address().to_vec(),
        challenge,
        signature,
    };
    auth.clone().login(login.clone()).await.unwrap();
    assert_eq!(code(auth.clone().login(login).await), Code::Unauthenticated);

    // A signature by another key.
    let mallory = Device::new(relay.channel().await, 0);
    let (challenge, server_id) = alice.challenge().await;
    let signature = mallory.sign(&server_id, &challenge);
    let r = auth
        .clone()
        .login(LoginRequest {
            address: alice.address().to_vec(),
            challenge,
            signature,
        })
        .await;
    assert_eq!(code(r), Code::Unauthenticated);

    // A signature for another relay (server id) does not work here.
    let (challenge, _) = alice.challenge().await;
    let signature = alice.sign("some-other-relay", &challenge);
    let r = auth
        .clone()
        .login(LoginRequest {
            address: alice.address().to_vec(),
            challenge,
            signature,
        })
        .await;
    assert_eq!(code(r), Code::Unauthenticated);

    // Login of a device that never registered.
    let mut stranger = Device::new(relay.channel().await, 0);
    assert_eq!(code(stranger.login().await), Code::FailedPrecondition);

    // Registration with a signed prekey signed by someone else.
    let mut bad = Device::new(relay.channel().await, 0);
    bad.signed_prekey = alcove_protocol::prekeys::SignedPreKeyPair::generate(
        &mut rand::rngs::OsRng,
        &mallory.identity,
        1,
        0,
    );
    let status = bad.register().await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("signed_prekey"),
        "{}",
        status.message()
    );

    // No token, a garbage token, a forged token.
    let mb = alice.mailbox();
    let r = mb.clone().fetch(FetchRequest::default()).await;
    assert_eq!(code(r), Code::Unauthenticated);
    alice.token = "not-a-token".into();
    assert_eq!(
        code(mb.clone().fetch(alice.req(FetchRequest::default())).await),
        Code::Unauthenticated
    );
    alice.token = "A".repeat(96);
    assert_eq!(
        code(mb.clone().fetch(alice.req(FetchRequest::default())).await),
        Code::Unauthenticated
    );
}

async fn expired_tokens_are_refused(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.limits.token_ttl_secs = 1).await;
    let alice = Device::registered(&relay, 0).await;
    alice
        .mailbox()
        .fetch(alice.req(FetchRequest::default()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = alice
        .mailbox()
        .fetch(alice.req(FetchRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"));
}

async fn send_fetch_ack_and_idempotency(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let env = alice.seal_to(&bob, b"hello bob");
    let cid = id16(1);
    let send = SendRequest {
        recipient: bob.address().to_vec(),
        client_message_id: cid.clone(),
        envelope: env.clone(),
        ..Default::default()
    };
    let first = alice
        .mailbox()
        .send(alice.req(send.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    let retry = alice
        .mailbox()
        .send(alice.req(send))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.duplicate);
    assert_eq!(retry.sequence, first.sequence);
    for i in 0..4u8 {
        let e = alice.seal_to(&bob, &[i; 10]);
        alice
            .mailbox()
            .send(alice.req(SendRequest {
                recipient: bob.address().to_vec(),
                client_message_id: id16(i + 2),
                envelope: e,
                ..Default::default()
            }))
            .await
            .unwrap();
    }

    // Pages in order.
    let page = bob
        .mailbox()
        .fetch(bob.req(FetchRequest {
            after_sequence: 0,
            limit: 2,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.envelopes.len(), 2);
    assert!(page.more);
    assert_eq!(page.envelopes[0].envelope, env);
    let opened = sealed_sender::open(&bob.identity, &page.envelopes[0].envelope).unwrap();
    assert_eq!(opened.message, b"hello bob");
    assert_eq!(opened.sender, *alice.identity.public());
    let rest = bob
        .mailbox()
        .fetch(bob.req(FetchRequest {
            after_sequence: page.envelopes[1].sequence,
            limit: 10,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.envelopes.len(), 3);
    assert!(!rest.more);
    let seqs: Vec<u64> = page
        .envelopes
        .iter()
        .chain(&rest.envelopes)
        .map(|e| e.sequence)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    // Ack two, then they are gone; acking again deletes nothing.
    let acked = bob
        .mailbox()
        .ack(bob.req(AckRequest {
            sequences: seqs[..2].to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.deleted, 2);
    let again = bob
        .mailbox()
        .ack(bob.req(AckRequest {
            sequences: seqs[..2].to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.deleted, 0);
    let all = bob
        .mailbox()
        .fetch(bob.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.envelopes.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        seqs[2..].to_vec()
    );
}

async fn acknowledged_ids_are_forgotten_beyond_the_window(backend: Backend) {
    let mut relay = TestRelay::start_on(backend, |c| c.limits.dedupe_window = 2).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let ids: Vec<Vec<u8>> = (0..5).map(id16).collect();
    async fn send(from: &Device, to: &Device, id: &[u8]) -> SendResponse {
        from.mailbox()
            .send(from.req(SendRequest {
                recipient: to.address().to_vec(),
                client_message_id: id.to_vec(),
                envelope: from.seal_to(to, b"m"),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
    }
    for id in &ids {
        send(&alice, &bob, id).await;
    }
    // The first waits; the second to fourth are acknowledged.
    bob.mailbox()
        .ack(bob.req(AckRequest {
            sequences: vec![2, 3, 4],
            ..Default::default()
        }))
        .await
        .unwrap();
    // The sweep runs at start-up (and every minute after).
    relay.restart().await;
    let mut alice = Device {
        channel: relay.channel().await,
        ..alice
    };
    alice.login().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let forgotten = loop {
        let r = send(&alice, &bob, &ids[1]).await;
        if !r.duplicate || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (forgotten.sequence, forgotten.duplicate),
        (6, false),
        "an acknowledged id 2 behind a window of 2 is forgotten"
    );
    let waiting = send(&alice, &bob, &ids[0]).await;
    assert_eq!((waiting.sequence, waiting.duplicate), (1, true), "waits");
    let recent = send(&alice, &bob, &ids[3]).await;
    assert_eq!((recent.sequence, recent.duplicate), (4, true), "in window");
}

async fn mailbox_errors(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.limits.max_mailbox_depth = 3).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let env = alice.seal_to(&bob, b"x");
    let send = |recipient: Vec<u8>, cid: Vec<u8>, envelope: Vec<u8>| SendRequest {
        recipient,
        client_message_id: cid,
        envelope,
        ..Default::default()
    };
    let mb = alice.mailbox();

    // Malformed fields.
    assert_eq!(
        code(
            mb.clone()
                .send(alice.req(send(vec![1; 31], id16(1), env.clone())))
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            mb.clone()
                .send(alice.req(send(bob.address().to_vec(), vec![1; 3], env.clone())))
                .await
        ),
        Code::InvalidArgument
    );
    // Not an envelope: plaintext, or a truncated envelope.
    let s = mb
        .clone()
        .send(alice.req(send(
            bob.address().to_vec(),
            id16(1),
            b"plain text secrets".to_vec(),
        )))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("sealed-sender"));
    assert_eq!(
        code(
            mb.clone()
                .send(alice.req(send(
                    bob.address().to_vec(),
                    id16(1),
                    env[..env.len() - 1].to_vec()
                )))
                .await
        ),
        Code::InvalidArgument
    );
    // Too large.
    let huge = alice.seal_to(&bob, &vec![0u8; 300 << 10]);
    assert_eq!(
        code(
            mb.clone()
                .send(alice.req(send(bob.address().to_vec(), id16(1), huge)))
                .await
        ),
        Code::ResourceExhausted
    );
    // Unknown recipient.
    assert_eq!(
        code(
            mb.clone()
                .send(alice.req(send(vec![9; 32], id16(1), env.clone())))
                .await
        ),
        Code::NotFound
    );
    // Mailbox full at depth 3; nothing is stored by the refused send.
    for i in 0..3 {
        mb.clone()
            .send(alice.req(send(bob.address().to_vec(), id16(10 + i), env.clone())))
            .await
            .unwrap();
    }
    assert_eq!(
        code(
            mb.clone()
                .send(alice.req(send(bob.address().to_vec(), id16(20), env.clone())))
                .await
        ),
        Code::ResourceExhausted
    );
    let n = bob
        .mailbox()
        .fetch(bob.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .envelopes
        .len();
    assert_eq!(n, 3);
    // Page and ack bounds.
    assert_eq!(
        code(
            bob.mailbox()
                .fetch(bob.req(FetchRequest {
                    limit: 100_000,
                    ..Default::default()
                }))
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            bob.mailbox()
                .ack(bob.req(AckRequest {
                    sequences: vec![0],
                    ..Default::default()
                }))
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            bob.mailbox()
                .ack(bob.req(AckRequest {
                    sequences: vec![1; 10_000],
                    ..Default::default()
                }))
                .await
        ),
        Code::InvalidArgument
    );
}

async fn a_device_cannot_touch_another_mailbox(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let env = alice.seal_to(&bob, b"for bob only");
    alice
        .mailbox()
        .send(alice.req(SendRequest {
            recipient: bob.address().to_vec(),
            client_message_id: id16(1),
            envelope: env,
            ..Default::default()
        }))
        .await
        .unwrap();
    let theirs = bob.address().to_vec();
    // Alice, with her own valid token, names Bob's mailbox.
    let r = alice
        .mailbox()
        .fetch(alice.req(FetchRequest {
            mailbox: theirs.clone(),
            ..Default::default()
        }))
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    let r = alice
        .mailbox()
        .ack(alice.req(AckRequest {
            mailbox: theirs.clone(),
            sequences: vec![1],
        }))
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    let r = alice
        .mailbox()
        .subscribe(alice.req(SubscribeRequest {
            mailbox: theirs.clone(),
            after_sequence: 0,
        }))
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    // Her own mailbox is empty: the envelope is only in Bob's.
    let mine = alice
        .mailbox()
        .fetch(alice.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(mine.envelopes.is_empty());
    // Bob still has it.
    let his = bob
        .mailbox()
        .fetch(bob.req(FetchRequest {
            mailbox: theirs,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(his.envelopes.len(), 1);
}

async fn one_time_prekey_is_handed_out_once_under_concurrency(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.limits.bundle_fetches_per_min = 10_000.0).await;
    let owner = Device::registered(&relay, 20).await;
    let mut fetchers = Vec::new();
    for _ in 0..5 {
        fetchers.push(Arc::new(Device::registered(&relay, 0).await));
    }
    let target = owner.address().to_vec();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let d = fetchers[i % fetchers.len()].clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let bundle = d
                .keys()
                .get_bundle(d.req(GetBundleRequest {
                    address: target,
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner()
                .bundle;
            PreKeyBundle::from_bytes(&bundle)
                .unwrap()
                .one_time_prekey()
                .map(|k| k.id)
        }));
    }
    let mut handed = Vec::new();
    let mut without = 0;
    for t in tasks {
        match t.await.unwrap() {
            Some(id) => handed.push(id),
            None => without += 1,
        }
    }
    let unique: HashSet<u32> = handed.iter().copied().collect();
    assert_eq!(handed.len(), 20, "every one-time prekey handed out");
    assert_eq!(
        unique.len(),
        20,
        "no one-time prekey handed out twice: {handed:?}"
    );
    assert_eq!(without, 30, "the rest got the signed prekey only");
}

async fn bundle_fetches_are_rate_limited(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.limits.bundle_fetches_per_min = 5.0).await;
    let owner = Device::registered(&relay, 50).await;
    let thief = Device::registered(&relay, 0).await;
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..20 {
        match thief
            .keys()
            .get_bundle(thief.req(GetBundleRequest {
                address: owner.address().to_vec(),
                ..Default::default()
            }))
            .await
        {
            Ok(_) => ok += 1,
            Err(s) if s.code() == Code::ResourceExhausted => limited += 1,
            Err(s) => panic!("{s}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(limited, 15);
    let left = owner
        .keys()
        .count_pre_keys(owner.req(CountPreKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(left.one_time_prekeys, 45);
    // Unknown address.
    assert_eq!(
        code(
            owner
                .keys()
                .get_bundle(owner.req(GetBundleRequest {
                    address: vec![7; 32],
                    ..Default::default()
                }))
                .await
        ),
        Code::NotFound
    );
}

async fn prekey_limits(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.limits.max_one_time_prekeys = 10).await;
    let alice = Device::registered(&relay, 8).await;
    let mut rng = rand::rngs::OsRng;
    let three = common::one_time_prekeys(&alice.identity, 50..53);
    let r = alice
        .keys()
        .upload_one_time_pre_keys(alice.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: three,
        }))
        .await;
    assert_eq!(code(r), Code::ResourceExhausted);
    let n = alice
        .keys()
        .count_pre_keys(alice.req(CountPreKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.one_time_prekeys, 8, "a refused upload stores nothing");
    let bad = vec![vec![0u8; 36]];
    let s = alice
        .keys()
        .upload_one_time_pre_keys(alice.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: bad,
        }))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    // A signed prekey that is not signed by the device.
    let other = alcove_protocol::identity::IdentityKeyPair::generate(&mut rng);
    let spk = alcove_protocol::prekeys::SignedPreKeyPair::generate(&mut rng, &other, 3, 0);
    let r = alice
        .keys()
        .rotate_signed_pre_key(alice.req(RotateSignedPreKeyRequest {
            signed_prekey: spk.public().to_bytes().to_vec(),
        }))
        .await;
    assert_eq!(code(r), Code::InvalidArgument);
}

/// Sends `from` → `to` the message `[n; 8]` under client message id `n`.
fn numbered_send(
    from: &Device,
    to: &Device,
    n: u8,
) -> impl std::future::Future<Output = Result<tonic::Response<SendResponse>, tonic::Status>> {
    let env = from.seal_to(to, &[n; 8]);
    let mut client = from.mailbox();
    let req = from.req(SendRequest {
        recipient: to.address().to_vec(),
        client_message_id: id16(n),
        envelope: env,
        ..Default::default()
    });
    async move { client.send(req).await }
}

async fn subscriber_gets_waiting_then_live_messages(backend: Backend) {
    use futures::StreamExt;
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let send = |n: u8| numbered_send(&alice, &bob, n);
    send(1).await.unwrap();
    let mut stream = bob
        .mailbox()
        .subscribe(bob.req(SubscribeRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        sealed_sender::open(&bob.identity, &first.envelope)
            .unwrap()
            .message,
        vec![1; 8]
    );
    // Sent after subscribing: arrives live.
    send(2).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        sealed_sender::open(&bob.identity, &second.envelope)
            .unwrap()
            .message,
        vec![2; 8]
    );
    assert!(second.sequence > first.sequence);
}

/// A relay whose Prometheus endpoint listens on a free loopback port.
async fn relay_with_metrics(backend: Backend) -> TestRelay {
    TestRelay::start_on(backend, |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
    })
    .await
}

/// The relay's Prometheus text.
async fn metrics_text(relay: &TestRelay) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = relay.handle.as_ref().unwrap().metrics_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

fn counter(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

async fn next_live(
    stream: &mut tonic::Streaming<alcove_api::v1::Envelope>,
) -> alcove_api::v1::Envelope {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a live envelope within 10 s")
        .expect("the stream is open")
        .expect("an envelope")
}

/// A live subscriber gets envelopes this relay accepted from memory (the
/// send is durable before it is announced), and still in order with none
/// missing or repeated when sends race and their announcements cross.
async fn live_deliveries_from_memory_keep_order(backend: Backend) {
    let relay = relay_with_metrics(backend).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let send = |n: u8| {
        let sent = numbered_send(&alice, &bob, n);
        async move { sent.await.unwrap().into_inner().sequence }
    };
    let mut stream = bob
        .mailbox()
        .subscribe(bob.req(SubscribeRequest::default()))
        .await
        .unwrap()
        .into_inner();
    // One at a time: each arrives right after the subscriber's cursor.
    for n in 1..=10u8 {
        let sequence = send(n).await;
        let got = next_live(&mut stream).await;
        assert_eq!(got.sequence, sequence);
        assert_eq!(
            sealed_sender::open(&bob.identity, &got.envelope)
                .unwrap()
                .message,
            vec![n; 8]
        );
    }
    let from_memory = counter(
        &metrics_text(&relay).await,
        "alcove_deliveries_from_memory_total",
    );
    if backend == Backend::Sled {
        assert_eq!(from_memory, 10, "every one of the ten came from memory");
    } else {
        // On PostgreSQL the database's echo of the send may come first and
        // make the subscriber read the store instead; both are correct.
        assert!(from_memory <= 10);
    }
    // Thirty racing sends: the announcements may cross, the subscriber
    // must still see sequences 11..=40 once each, in order.
    let sequences = futures::future::join_all((11..=40u8).map(send)).await;
    assert_eq!(sequences.iter().max(), Some(&40));
    for expected in 11..=40u64 {
        assert_eq!(next_live(&mut stream).await.sequence, expected);
    }
    let body = metrics_text(&relay).await;
    assert_eq!(counter(&body, "alcove_messages_delivered_total"), 40);
}

async fn too_many_subscriptions(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.limits.max_subscriptions_per_device = 2).await;
    let bob = Device::registered(&relay, 0).await;
    let _s1 = bob
        .mailbox()
        .subscribe(bob.req(SubscribeRequest::default()))
        .await
        .unwrap();
    let s2 = bob
        .mailbox()
        .subscribe(bob.req(SubscribeRequest::default()))
        .await
        .unwrap();
    assert_eq!(
        code(
            bob.mailbox()
                .subscribe(bob.req(SubscribeRequest::default()))
                .await
        ),
        Code::ResourceExhausted
    );
    // Dropping one frees its slot.
    drop(s2);
    let mut ok = false;
    for _ in 0..50 {
        if bob
            .mailbox()
            .subscribe(bob.req(SubscribeRequest::default()))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "slot not released after the stream was dropped");
}

async fn messages_survive_a_restart_and_acked_ones_are_gone(backend: Backend) {
    let mut relay = TestRelay::start_on(backend, |_| {}).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let mut envelopes = Vec::new();
    for i in 0..5u8 {
        let env = alice.seal_to(&bob, &[i; 40]);
        alice
            .mailbox()
            .send(alice.req(SendRequest {
                recipient: bob.address().to_vec(),
                client_message_id: id16(i),
                envelope: env.clone(),
                ..Default::default()
            }))
            .await
            .unwrap();
        envelopes.push(env);
    }
    let waiting = bob
        .mailbox()
        .fetch(bob.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .envelopes;
    bob.mailbox()
        .ack(bob.req(AckRequest {
            sequences: vec![waiting[0].sequence, waiting[1].sequence],
            ..Default::default()
        }))
        .await
        .unwrap();

    relay.restart().await;
    let mut bob = Device {
        channel: relay.channel().await,
        ..bob
    };
    // Tokens survive a restart (the key is in the store); log in anyway.
    bob.login().await.unwrap();
    let after = bob
        .mailbox()
        .fetch(bob.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .envelopes;
    assert_eq!(
        after.iter().map(|e| e.envelope.clone()).collect::<Vec<_>>(),
        envelopes[2..].to_vec()
    );

    // The acknowledged ones are gone from the store itself.
    relay.stop().await;
    let store = relay.open_store().await;
    let (left, _) = store.fetch(&bob.address(), 0, 100).await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|m| m.sequence > waiting[1].sequence));
    assert_eq!(store.depth(&bob.address()).await.unwrap(), 3);
    store.close().await.unwrap();
}

async fn blobs_upload_and_download(backend: Backend) {
    use futures::StreamExt;
    let relay = TestRelay::start_on(backend, |c| c.limits.max_blob_bytes = 4 << 20).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let data: Vec<u8> = (0..(3 << 20) + 123).map(|i| (i % 251) as u8).collect();
    let mut parts = vec![UploadRequest {
        part: Some(Part::Header(UploadHeader {
            size: data.len() as u64,
        })),
    }];
    parts.extend(data.chunks(700_000).map(|c| UploadRequest {
        part: Some(Part::Data(c.to_vec())),
    }));
    let up = alice
        .blobs()
        .upload(alice.req(tokio_stream::iter(parts)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.size, data.len() as u64);
    assert_eq!(up.blob_id.len(), 16);

    let mut stream = bob
        .blobs()
        .download(bob.req(DownloadRequest {
            blob_id: up.blob_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(piece) = stream.next().await {
        got.extend(piece.unwrap().data);
    }
    assert_eq!(got, data);

    // Errors: unknown blob, bad id, missing header, size mismatch, too big.
    assert_eq!(
        code(
            bob.blobs()
                .download(bob.req(DownloadRequest {
                    blob_id: vec![0; 16]
                }))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            bob.blobs()
                .download(bob.req(DownloadRequest {
                    blob_id: vec![0; 3]
                }))
                .await
        ),
        Code::InvalidArgument
    );
    let no_header = vec![UploadRequest {
        part: Some(Part::Data(vec![1; 10])),
    }];
    assert_eq!(
        code(
            alice
                .blobs()
                .upload(alice.req(tokio_stream::iter(no_header)))
                .await
        ),
        Code::InvalidArgument
    );
    let short = vec![
        UploadRequest {
            part: Some(Part::Header(UploadHeader { size: 100 })),
        },
        UploadRequest {
            part: Some(Part::Data(vec![1; 10])),
        },
    ];
    assert_eq!(
        code(
            alice
                .blobs()
                .upload(alice.req(tokio_stream::iter(short)))
                .await
        ),
        Code::InvalidArgument
    );
    let big = vec![UploadRequest {
        part: Some(Part::Header(UploadHeader { size: 5 << 20 })),
    }];
    assert_eq!(
        code(
            alice
                .blobs()
                .upload(alice.req(tokio_stream::iter(big)))
                .await
        ),
        Code::ResourceExhausted
    );
    let unauth = vec![UploadRequest {
        part: Some(Part::Header(UploadHeader { size: 1 })),
    }];
    assert_eq!(
        code(alice.blobs().upload(tokio_stream::iter(unauth)).await),
        Code::Unauthenticated
    );
}

async fn health_and_reflection(backend: Backend) {
    use futures::StreamExt;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let relay = TestRelay::start_on(backend, |_| {}).await;
    let channel = relay.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "alcove.v1.Mailbox".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // What `grpcurl -plaintext HOST list` asks.
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: HashSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "alcove.v1.Auth",
        "alcove.v1.Keys",
        "alcove.v1.Mailbox",
        "alcove.v1.Blobs",
        "alcove.v1.KeyLog",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
}

async fn metrics_endpoint_counts(backend: Backend) {
    let relay = relay_with_metrics(backend).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let env = alice.seal_to(&bob, b"m");
    alice
        .mailbox()
        .send(alice.req(SendRequest {
            recipient: bob.address().to_vec(),
            client_message_id: id16(1),
            envelope: env,
            ..Default::default()
        }))
        .await
        .unwrap();
    let _ = alice
        .mailbox()
        .send(alice.req(SendRequest {
            recipient: vec![1],
            client_message_id: id16(2),
            envelope: vec![],
            ..Default::default()
        }))
        .await;
    let body = metrics_text(&relay).await;
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("alcove_messages_accepted_total 1\n"),
        "{body}"
    );
    assert!(body.contains("alcove_queue_depth 1\n"), "{body}");
    assert!(
        body.contains("alcove_rejected_total{reason=\"invalid_argument\"} 1\n"),
        "{body}"
    );
    // Both backends group their commits (sled its flushes, PostgreSQL its
    // sends): one message accepted, one write made durable.
    let _ = backend;
    assert!(body.contains("alcove_store_flushes_total"), "{body}");
    assert!(body.contains("alcove_store_commits_total"), "{body}");
}

async fn key_log_records_every_key_change_and_survives_restart(backend: Backend) {
    use alcove_api::keylog::{head_from_wire, proof_from_wire};
    use alcove_api::v1::key_log_client::KeyLogClient;
    let mut relay = TestRelay::start_on(backend, |_| {}).await;
    let mut alice = Device::registered(&relay, 3).await;
    let bob = Device::registered(&relay, 0).await;
    let log = |c: tonic::transport::Channel| KeyLogClient::new(c);
    let head = log(relay.channel().await)
        .get_tree_head(GetTreeHeadRequest::default())
        .await
        .unwrap()
        .into_inner();
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&head.log_key.clone().try_into().unwrap()).unwrap();
    let h2 = head_from_wire(head.head.as_ref()).unwrap();
    assert_eq!(h2.size, 2, "one entry per registration");
    h2.verify(&key).unwrap();

    // A signed-prekey change appends an entry at the next epoch; the
    // bundle Bob gets proves exactly the new keys, with a consistency
    // proof from the head he knew.
    let spk = alcove_protocol::prekeys::SignedPreKeyPair::generate(
        &mut rand::rngs::OsRng,
        &alice.identity,
        2,
        common::now_secs(),
    );
    alice.signed_prekey = spk;
    alice
        .keys()
        .rotate_signed_pre_key(alice.req(RotateSignedPreKeyRequest {
            signed_prekey: alice.signed_prekey.public().to_bytes().to_vec(),
        }))
        .await
        .unwrap();
    let r = bob
        .keys()
        .get_bundle(bob.req(GetBundleRequest {
            address: alice.address().to_vec(),
            known_tree_size: 2,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let bundle = PreKeyBundle::from_bytes(&r.bundle).unwrap();
    let proof = proof_from_wire(r.key_proof.as_ref()).unwrap();
    assert_eq!((proof.index, proof.epoch, proof.head.size), (2, 1, 3));
    let consistency = alcove_keylog::hashes(&r.consistency_proof).unwrap();
    alcove_keylog::check_advance(
        &key,
        Some(&h2),
        &proof.head,
        &consistency,
        proof.head.timestamp_ms,
    )
    .unwrap();
    alcove_keylog::check_keys(
        &alice.address(),
        &bundle.identity().to_bytes(),
        &bundle.signed_prekey().to_bytes(),
        &proof,
        1,
    )
    .unwrap();

    // Bad requests get clear statuses and change nothing.
    let mut c = log(relay.channel().await);
    let e = c
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: 1,
            new_size: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("current size 3"));
    assert_eq!(
        code(
            c.get_consistency_proof(GetConsistencyProofRequest {
                old_size: 3,
                new_size: 2
            })
            .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.get_key_proof(GetKeyProofRequest {
                address: vec![1; 5]
            })
            .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.get_key_proof(GetKeyProofRequest {
                address: vec![1; 32]
            })
            .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(c.get_leaves(GetLeavesRequest { from: 4, limit: 0 }).await),
        Code::OutOfRange
    );
    let leaves = c
        .get_leaves(GetLeavesRequest { from: 0, limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .leaves;
    assert_eq!(
        alcove_keylog::root(&alcove_keylog::hashes(&leaves).unwrap()),
        proof.head.root
    );

    // After a restart: same log key, same tree, and it keeps growing.
    relay.restart().await;
    let after = log(relay.channel().await)
        .get_tree_head(GetTreeHeadRequest { known_tree_size: 3 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.log_key, head.log_key);
    let h3 = head_from_wire(after.head.as_ref()).unwrap();
    assert_eq!((h3.size, h3.root), (3, proof.head.root));
    Device::registered(&relay, 0).await;
    let grown = log(relay.channel().await)
        .get_tree_head(GetTreeHeadRequest { known_tree_size: 3 })
        .await
        .unwrap()
        .into_inner();
    let h4 = head_from_wire(grown.head.as_ref()).unwrap();
    let proof = alcove_keylog::hashes(&grown.consistency_proof).unwrap();
    alcove_keylog::check_advance(&key, Some(&h3), &h4, &proof, h4.timestamp_ms).unwrap();
    assert_eq!(h4.size, 4);
}
