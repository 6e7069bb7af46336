//! Who talks to whom stays private: unidentified delivery with delivery
//! keys, limits that need no sender, stateless login challenges and
//! coarse stored times, against the real relay on loopback (sled, and
//! PostgreSQL when `ALCOVE_TEST_POSTGRES_URL` is set).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::delivery_client::DeliveryClient;
use alcove_api::v1::set_delivery_policy_request::Policy;
use alcove_api::v1::*;
use alcove_client::{Body, Client, Error, Profile, Transport};
use alcove_protocol::delivery::DeliveryKey;
use alcove_protocol::invite::Invite;
use alcove_protocol::prekeys::PreKeyBundle;
use common::sdk::{pair, texts, url};
use common::{code, id16, Backend, Device, TestRelay};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

on_every_backend!(
    a_delivery_carrying_a_token_is_refused_and_stores_nothing,
    wrong_missing_and_rotated_keys_are_refused_and_store_nothing,
    bundles_need_the_key_and_one_time_prekeys_are_limited_per_target,
    deliveries_are_limited_per_ip_and_per_recipient_key,
    stored_times_are_coarse_and_order_stays_by_sequence,
);

/// A channel to the relay whose connections come from `source` (any
/// address in 127.0.0.0/8 reaches loopback on Linux): a second "IP".
async fn channel_from(relay: &TestRelay, source: Ipv4Addr) -> Channel {
    Endpoint::from_shared(format!("http://{}", relay.addr()))
        .unwrap()
        .local_address(Some(IpAddr::V4(source)))
        .connect()
        .await
        .unwrap()
}

fn delivery(channel: &Channel) -> DeliveryClient<Channel> {
    DeliveryClient::new(channel.clone())
}

/// An envelope-shaped payload (the relay never opens envelopes).
fn envelope(tag: u8) -> Vec<u8> {
    let mut e = vec![tag; alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN];
    e[0] = alcove_protocol::sealed_sender::ENVELOPE_VERSION;
    e
}

fn send_to(to: &Device, tag: u8, key: Option<&DeliveryKey>) -> SendRequest {
    SendRequest {
        recipient: to.address().to_vec(),
        client_message_id: id16(tag),
        envelope: envelope(tag),
        access_key: key.map(|k| k.as_bytes().to_vec()).unwrap_or_default(),
    }
}

async fn set_policy(d: &Device, policy: Policy) {
    d.keys()
        .set_delivery_policy(d.req(SetDeliveryPolicyRequest {
            policy: Some(policy),
        }))
        .await
        .unwrap();
}

async fn waiting(d: &Device) -> Vec<Envelope> {
    d.mailbox()
        .fetch(d.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .envelopes
}

/// A Delivery call never comes with a login token: one that does is turned
/// away before it is read, so no delivery is tied to a device even by a
/// careless client; the same envelope without the token goes in.
async fn a_delivery_carrying_a_token_is_refused_and_stores_nothing(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let sender = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let with_token = delivery(&sender.channel)
        .send(sender.req(send_to(&bob, 1, None)))
        .await;
    let status = with_token.expect_err("a token on a delivery");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("must not carry a login token"),
        "{status:?}"
    );
    // Even a garbage token: the header itself is refused, not its value.
    let mut garbage = tonic::Request::new(send_to(&bob, 2, None));
    garbage
        .metadata_mut()
        .insert("authorization", "Bearer nonsense".parse().unwrap());
    assert_eq!(
        code(delivery(&sender.channel).send(garbage).await),
        Code::InvalidArgument
    );
    let mut bundle_with_token = sender.req(GetBundleRequest {
        address: bob.address().to_vec(),
        ..Default::default()
    });
    bundle_with_token.set_timeout(Duration::from_secs(5));
    assert_eq!(
        code(
            delivery(&sender.channel)
                .get_bundle(bundle_with_token)
                .await
        ),
        Code::InvalidArgument
    );
    assert!(waiting(&bob).await.is_empty(), "nothing stored");
    // Without it (bob never set a policy: anyone may write) it is stored.
    let r = delivery(&sender.channel)
        .send(send_to(&bob, 3, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.sequence, 1);
    assert_eq!(waiting(&bob).await.len(), 1);
}

/// The recipient controls who may write: no key, a wrong key, a key of a
/// wrong length, and after a rotation the old key, are each
/// PERMISSION_DENIED and store nothing; the current key goes in; "open"
/// admits anyone. The deprecated identified Send obeys the same policy.
async fn wrong_missing_and_rotated_keys_are_refused_and_store_nothing(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let anon = relay.channel().await;
    let mut rng = rand::rngs::OsRng;
    let first = DeliveryKey::generate(&mut rng);
    let second = DeliveryKey::generate(&mut rng);
    // Registration can carry the verifier.
    let mut bob = Device::new(relay.channel().await, 0);
    let (challenge, server_id) = bob.challenge().await;
    let r = AuthClient::new(bob.channel.clone())
        .register(RegisterRequest {
            identity: bob.identity.public().to_bytes().to_vec(),
            signed_prekey: bob.signed_prekey.public().to_bytes().to_vec(),
            one_time_prekeys: vec![],
            signature: bob.sign(&server_id, &challenge),
            challenge,
            delivery_verifier: first.verifier().0.to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    bob.token = r.token;

    let refused = |status: tonic::Status, why: &str| {
        assert_eq!(status.code(), Code::PermissionDenied, "{why}: {status:?}");
    };
    let stranger = DeliveryKey::generate(&mut rng);
    let missing = delivery(&anon).send(send_to(&bob, 1, None)).await;
    refused(missing.unwrap_err(), "no key");
    let wrong = delivery(&anon)
        .send(send_to(&bob, 2, Some(&stranger)))
        .await;
    refused(wrong.unwrap_err(), "a wrong key");
    let mut short = send_to(&bob, 3, Some(&first));
    short.access_key.truncate(15);
    refused(
        delivery(&anon).send(short).await.unwrap_err(),
        "15 bytes of the key",
    );
    assert!(waiting(&bob).await.is_empty(), "refusals store nothing");

    delivery(&anon)
        .send(send_to(&bob, 4, Some(&first)))
        .await
        .unwrap();
    assert_eq!(waiting(&bob).await.len(), 1);

    // Rotation: the old key is cut off at once, the new one works.
    set_policy(&bob, Policy::Verifier(second.verifier().0.to_vec())).await;
    let old = delivery(&anon).send(send_to(&bob, 5, Some(&first))).await;
    refused(old.unwrap_err(), "the rotated-away key");
    delivery(&anon)
        .send(send_to(&bob, 6, Some(&second)))
        .await
        .unwrap();
    // The identified, deprecated path obeys the same policy.
    let alice = Device::registered(&relay, 0).await;
    let identified = alice
        .mailbox()
        .send(alice.req(send_to(&bob, 7, Some(&first))))
        .await;
    refused(identified.unwrap_err(), "the old key on Mailbox.Send");
    let tags: Vec<u8> = waiting(&bob).await.iter().map(|e| e.envelope[1]).collect();
    assert_eq!(tags, vec![4, 6], "exactly the admitted envelopes, in order");

    // Open: anyone, with or without a key.
    set_policy(&bob, Policy::Open(true)).await;
    delivery(&anon).send(send_to(&bob, 8, None)).await.unwrap();
    delivery(&anon)
        .send(send_to(&bob, 9, Some(&stranger)))
        .await
        .unwrap();
    assert_eq!(waiting(&bob).await.len(), 4);

    // Bad policies are refused and change nothing.
    for bad in [Policy::Verifier(vec![1; 31]), Policy::Open(false)] {
        let r = bob
            .keys()
            .set_delivery_policy(bob.req(SetDeliveryPolicyRequest { policy: Some(bad) }))
            .await;
        assert_eq!(code(r), Code::InvalidArgument);
    }
    delivery(&anon).send(send_to(&bob, 10, None)).await.unwrap();
    // Unknown recipients are NOT_FOUND, as before.
    let nobody = Device::new(relay.channel().await, 0);
    assert_eq!(
        code(delivery(&anon).send(send_to(&nobody, 1, None)).await),
        Code::NotFound
    );
}

/// Bundle fetches need the target's key too (so strangers cannot drain
/// one-time prekeys), and a target hands out at most its per-target
/// number of one-time prekeys: later bundles, from any IP, carry only the
/// signed prekey.
async fn bundles_need_the_key_and_one_time_prekeys_are_limited_per_target(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| {
        c.limits.one_time_prekeys_per_hour_per_target = 3.0;
    })
    .await;
    let key = DeliveryKey::generate(&mut rand::rngs::OsRng);
    let bob = Device::registered(&relay, 20).await;
    set_policy(&bob, Policy::Verifier(key.verifier().0.to_vec())).await;
    let stock = || async {
        bob.keys()
            .count_pre_keys(bob.req(CountPreKeysRequest {}))
            .await
            .unwrap()
            .into_inner()
            .one_time_prekeys
    };
    let ask = |key: Option<Vec<u8>>| GetBundleRequest {
        address: bob.address().to_vec(),
        access_key: key.unwrap_or_default(),
        ..Default::default()
    };
    let anon = relay.channel().await;
    assert_eq!(
        code(delivery(&anon).get_bundle(ask(None)).await),
        Code::PermissionDenied
    );
    let wrong = DeliveryKey::generate(&mut rand::rngs::OsRng);
    assert_eq!(
        code(
            delivery(&anon)
                .get_bundle(ask(Some(wrong.as_bytes().to_vec())))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(stock().await, 20, "refused fetches take no prekey");

    let mut with_prekey = 0;
    for i in 0..8u8 {
        // From eight different IPs: the per-target limit is not per IP.
        let ch = channel_from(&relay, Ipv4Addr::new(127, 0, 0, 10 + i)).await;
        let b = delivery(&ch)
            .get_bundle(ask(Some(key.as_bytes().to_vec())))
            .await
            .unwrap()
            .into_inner();
        let bundle = PreKeyBundle::from_bytes(&b.bundle).unwrap();
        if bundle.one_time_prekey().is_some() {
            with_prekey += 1;
        }
    }
    assert_eq!(with_prekey, 3, "the per-target hand-out limit");
    assert_eq!(stock().await, 17);
}

/// Per IP, a flood of deliveries is cut off while another IP still gets
/// through; per recipient key, one key's burst is cut off while another
/// recipient still receives.
async fn deliveries_are_limited_per_ip_and_per_recipient_key(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| {
        c.limits.rate_per_sec = 0.01;
        c.limits.rate_burst = 5.0;
        c.limits.deliveries_per_sec_per_key = 0.3;
        c.limits.bundle_fetches_per_min_per_ip = 2.0;
    })
    .await;
    let bob = Device::registered(&relay, 5).await;
    let carol = Device::registered(&relay, 0).await;
    // Per recipient (bob accepts anyone: his bucket is his address): the
    // burst is 10 s worth, 3 envelopes, whatever IPs they come from.
    let mut admitted = 0;
    let mut refusal = None;
    for i in 0..5u8 {
        let ch = channel_from(&relay, Ipv4Addr::new(127, 0, 1, 1 + i)).await;
        match delivery(&ch).send(send_to(&bob, i, None)).await {
            Ok(_) => admitted += 1,
            Err(s) => refusal = Some(s),
        }
    }
    assert_eq!(admitted, 3);
    let refusal = refusal.unwrap();
    assert_eq!(refusal.code(), Code::ResourceExhausted);
    assert!(refusal.message().contains("recipient"), "{refusal:?}");
    assert_eq!(waiting(&bob).await.len(), 3);

    // Per IP: five at once from one address, then refused; carol's own
    // bucket is fresh, so the refusal is the IP's.
    let one = channel_from(&relay, Ipv4Addr::new(127, 0, 2, 1)).await;
    let mut sent = 0;
    let mut last = None;
    for i in 0..8u8 {
        let d = Device::registered(&relay, 0).await;
        match delivery(&one).send(send_to(&d, i, None)).await {
            Ok(_) => sent += 1,
            Err(s) => last = Some(s),
        }
    }
    assert_eq!(sent, 5);
    let last = last.unwrap();
    assert_eq!(last.code(), Code::ResourceExhausted);
    assert!(last.message().contains("this address"), "{last:?}");
    let other = channel_from(&relay, Ipv4Addr::new(127, 0, 2, 2)).await;
    delivery(&other)
        .send(send_to(&carol, 1, None))
        .await
        .unwrap();

    // Bundles per IP: two, then refused; another IP still fetches.
    let ip = channel_from(&relay, Ipv4Addr::new(127, 0, 3, 1)).await;
    let ask = || GetBundleRequest {
        address: bob.address().to_vec(),
        ..Default::default()
    };
    delivery(&ip).get_bundle(ask()).await.unwrap();
    delivery(&ip).get_bundle(ask()).await.unwrap();
    assert_eq!(
        code(delivery(&ip).get_bundle(ask()).await),
        Code::ResourceExhausted
    );
    let ip2 = channel_from(&relay, Ipv4Addr::new(127, 0, 3, 2)).await;
    delivery(&ip2).get_bundle(ask()).await.unwrap();
}

/// The relay stores when an envelope arrived only to its granularity (a
/// minute by default); the mailbox is still ordered by sequence.
async fn stored_times_are_coarse_and_order_stays_by_sequence(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let bob = Device::registered(&relay, 0).await;
    let anon = relay.channel().await;
    for i in 1..=5u8 {
        delivery(&anon).send(send_to(&bob, i, None)).await.unwrap();
    }
    let got = waiting(&bob).await;
    assert_eq!(
        got.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        got.iter().map(|e| e.envelope[1]).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for e in &got {
        assert_eq!(e.received_at_ms % 60_000, 0, "rounded to the minute");
        assert!(e.received_at_ms <= now && now - e.received_at_ms < 120_000);
    }
    // What the store holds is the coarse time too, not just the answer.
    let mut relay = relay;
    relay.stop().await;
    let store = relay.open_store().await;
    let (stored, _) = store.fetch(&bob.address(), 0, 10).await.unwrap();
    assert!(stored.iter().all(|m| m.received_at_ms % 60_000 == 0));
    store.close().await.unwrap();
}

/// Calls seen on a transport: path, and whether it carried a token.
type Calls = Arc<Mutex<Vec<(String, bool)>>>;

/// A transport that records, for every call, its path and whether it
/// carried an `authorization` header, then forwards it on its own channel.
#[derive(Clone)]
struct Recording {
    channel: Channel,
    calls: Calls,
}

impl tower::Service<http::Request<tonic::body::Body>> for Recording {
    type Response = http::Response<tonic::body::Body>;
    type Error = alcove_client::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.channel, cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.calls.lock().unwrap().push((
            request.uri().path().to_string(),
            request.headers().contains_key("authorization"),
        ));
        let fut = tower::Service::call(&mut self.channel, request);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

fn recording(relay: &TestRelay) -> (Transport, Calls) {
    let channel = Endpoint::from_shared(url(relay)).unwrap().connect_lazy();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let t = Transport::new(Recording {
        channel,
        calls: calls.clone(),
    });
    (t, calls)
}

/// The SDK's sends and bundle fetches leave on a connection of their own
/// that never carries the login token, and nothing else does: watched on
/// the SDK's transport seam, over a whole conversation through the real
/// relay (invite, first message, replies both ways, a rotation).
#[tokio::test]
async fn the_sdk_sends_without_identifying_itself_on_a_separate_connection() {
    let relay = TestRelay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    let mut clients = Vec::new();
    for (sub, key, name) in [("t", 1u8, "Therapist"), ("c", 2u8, "Client")] {
        let (logged_in, a) = recording(&relay);
        let (anonymous, b) = recording(&relay);
        let profile = Profile::on_disk(&dir.path().join(sub))
            .unwrap()
            .with_transports(logged_in, anonymous);
        clients.push(
            Client::create_with(profile, &[key; 32], &url(&relay), name)
                .await
                .unwrap(),
        );
        logs.push((a, b));
    }
    let (therapist, client) = (&clients[0], &clients[1]);
    let invite = therapist
        .create_invite(Duration::from_secs(600))
        .await
        .unwrap();
    let to_therapist = client.accept_invite(&invite).await.unwrap();
    therapist.sync().await.unwrap();
    let to_client = therapist.contacts().await.pop().unwrap();
    therapist
        .send_text(&to_client.address, "Welcome.")
        .await
        .unwrap();
    assert_eq!(texts(&client.sync().await.unwrap()), vec!["Welcome."]);
    client
        .send_text(&to_therapist.address, "Thank you.")
        .await
        .unwrap();
    assert_eq!(texts(&therapist.sync().await.unwrap()), vec!["Thank you."]);
    client.rotate_delivery_key().await.unwrap();
    therapist.sync().await.unwrap();
    therapist
        .send_text(&to_client.address, "Noted.")
        .await
        .unwrap();
    assert_eq!(texts(&client.sync().await.unwrap()), vec!["Noted."]);

    for (logged_in, anonymous) in &logs {
        let anonymous = anonymous.lock().unwrap();
        let logged_in = logged_in.lock().unwrap();
        assert!(anonymous
            .iter()
            .any(|(p, _)| p == "/alcove.v1.Delivery/Send"));
        for (path, token) in anonymous.iter() {
            assert!(
                path.starts_with("/alcove.v1.Delivery/"),
                "{path} on the anonymous connection"
            );
            assert!(!token, "{path} carried a token on the anonymous connection");
        }
        for (path, _) in logged_in.iter() {
            assert!(
                !path.starts_with("/alcove.v1.Delivery/") && path != "/alcove.v1.Mailbox/Send",
                "{path} went over the logged-in connection"
            );
        }
    }
}

/// A rotation: the contact's messages sent before it learnt the new key are
/// held (not lost, not reordered) and delivered once the key arrives;
/// someone who only had the old key (from an invite) is cut off.
#[tokio::test]
async fn a_rotation_holds_a_contacts_messages_until_the_new_key_arrives() {
    let relay = TestRelay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, client, to_client, to_therapist) = pair(&relay, dir.path()).await;
    // An invite handed out earlier carries the therapist's current key.
    let leaked = therapist
        .create_invite(Duration::from_secs(600))
        .await
        .unwrap();
    let leaked_key = Invite::decode(&leaked).unwrap().delivery_key.unwrap();
    let outsider = Device::new(relay.channel().await, 0);
    let to_therapist_addr = *to_therapist.address.as_bytes();
    let probe = |tag: u8, key: &DeliveryKey| SendRequest {
        recipient: to_therapist_addr.to_vec(),
        client_message_id: id16(tag),
        envelope: envelope(tag),
        access_key: key.as_bytes().to_vec(),
    };
    delivery(&outsider.channel)
        .send(probe(1, &leaked_key))
        .await
        .expect("the invite's key works before the rotation");

    therapist.rotate_delivery_key().await.unwrap();
    assert_eq!(
        code(
            delivery(&outsider.channel)
                .send(probe(2, &leaked_key))
                .await
        ),
        Code::PermissionDenied,
        "the old key is cut off"
    );
    // The client has not synced yet: its messages are held, in order.
    for text in ["one", "two"] {
        match client.send_text(&to_therapist.address, text).await {
            Err(Error::NotAccepted(_)) | Err(Error::Busy(_)) => {}
            other => panic!("{text}: expected it held, got {other:?}"),
        }
    }
    let before: Vec<String> = texts(&therapist.sync().await.unwrap());
    assert!(before.is_empty(), "{before:?}");
    // The client learns the new key (DeliveryKeyChanged, not shown) and
    // its held messages go out in order.
    let seen = client.sync().await.unwrap();
    assert!(
        seen.iter()
            .all(|e| !matches!(e.body(), Some(Body::DeliveryKeyChanged(_)))),
        "the key change is not an event"
    );
    client.sync().await.unwrap();
    assert_eq!(texts(&therapist.sync().await.unwrap()), vec!["one", "two"]);
    // And the therapist still reaches the client.
    therapist
        .send_text(&to_client.address, "Got both.")
        .await
        .unwrap();
    assert_eq!(texts(&client.sync().await.unwrap()), vec!["Got both."]);
}

/// Login challenges are stateless: a flood of them from many addresses
/// (within each address's own, lower limit) leaves the relay able to log
/// in a real device, and a challenge issued before the flood still works
/// after it. A challenge is single-use, bound to its address, and a forged
/// or altered one is refused.
#[tokio::test]
async fn a_challenge_flood_from_many_addresses_does_not_lock_anyone_out() {
    let relay = TestRelay::start_with(|c| c.limits.challenges_per_min = 300.0).await;
    let mut real = Device::registered(&relay, 0).await;
    let (early, early_server) = real.challenge().await;

    let mut floods = Vec::new();
    for ip in 0..16u8 {
        let ch = channel_from(&relay, Ipv4Addr::new(127, 0, 4, 1 + ip)).await;
        floods.push(tokio::spawn(async move {
            let mut issued = 0u32;
            let mut refused = 0u32;
            for _ in 0..400 {
                let mut address = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut address);
                match AuthClient::new(ch.clone())
                    .challenge(ChallengeRequest {
                        address: address.to_vec(),
                    })
                    .await
                {
                    Ok(_) => issued += 1,
                    Err(s) if s.code() == Code::ResourceExhausted => refused += 1,
                    Err(s) => panic!("{s:?}"),
                }
            }
            (issued, refused)
        }));
    }
    let mut issued = 0;
    for f in floods {
        let (i, r) = f.await.unwrap();
        assert!(r > 0, "each address meets its own challenge limit");
        issued += i;
    }
    assert!(issued >= 16 * 300, "{issued} challenges issued");

    // The challenge from before the flood, and a fresh login, both work.
    let r = AuthClient::new(real.channel.clone())
        .login(LoginRequest {
            address: real.address().to_vec(),
            signature: real.sign(&early_server, &early),
            challenge: early.clone(),
        })
        .await;
    assert!(r.is_ok(), "{r:?}");
    real.login().await.unwrap();

    // Single use: the same answer again is refused.
    let again = AuthClient::new(real.channel.clone())
        .login(LoginRequest {
            address: real.address().to_vec(),
            signature: real.sign(&early_server, &early),
            challenge: early.clone(),
        })
        .await;
    assert_eq!(code(again), Code::Unauthenticated);
    // Bound to the address it was issued for.
    let other = Device::registered(&relay, 0).await;
    let (c, sid) = real.challenge().await;
    let stolen = AuthClient::new(other.channel.clone())
        .login(LoginRequest {
            address: other.address().to_vec(),
            signature: other.sign(&sid, &c),
            challenge: c.clone(),
        })
        .await;
    assert_eq!(code(stolen), Code::Unauthenticated);
    // Altered (a later issue time, to stretch its life): refused.
    let mut altered = c.clone();
    altered[7] ^= 1;
    let r = AuthClient::new(real.channel.clone())
        .login(LoginRequest {
            address: real.address().to_vec(),
            signature: real.sign(&sid, &altered),
            challenge: altered,
        })
        .await;
    assert_eq!(code(r), Code::Unauthenticated);
    // The unaltered one is still good (a refused answer burns nothing).
    AuthClient::new(real.channel.clone())
        .login(LoginRequest {
            address: real.address().to_vec(),
            signature: real.sign(&sid, &c),
            challenge: c,
        })
        .await
        .unwrap();
}
