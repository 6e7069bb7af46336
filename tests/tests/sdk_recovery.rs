//! The SDK never loses or wedges a conversation: replays, simultaneous
//! starts, lost or restored state, storage failures, oversized messages,
//! reused invites and an impostor relay. Real relay on loopback, real
//! profiles; each test once on sled and once on PostgreSQL (skipped
//! without `ALCOVE_TEST_POSTGRES_URL`), except the one that needs a
//! failing profile store.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alcove_client::{
    Body, Client, Error, Event, EventKind, Profile, ProfileStore, SledProfileStore, StoredRecord,
};
use alcove_protocol::content::{self, Content, MessageId, Text};
use alcove_protocol::prekeys::PreKeyBundle;
use alcove_protocol::{sealed_sender, x3dh};
use common::sdk::{pair, profile, texts, url};
use common::{Backend, Device, TestRelay};
use futures::StreamExt;

on_every_backend!(
    a_replayed_first_message_is_refused_after_the_session_moved_on,
    simultaneous_first_messages_converge_and_lose_nothing,
    a_restored_profile_recovers_through_retry_requests,
    an_oversized_text_is_refused_and_receiving_goes_on,
    a_reused_invite_is_refused,
    a_relay_with_another_server_id_is_refused,
    messages_queued_while_offline_keep_their_order,
    malformed_content_is_reported_and_its_session_kept,
    many_lost_messages_are_recovered_through_one_new_session,
);

fn count(events: &[Event], f: impl Fn(&EventKind) -> bool) -> usize {
    events.iter().filter(|e| f(&e.kind)).count()
}

/// A raw device's new session with `to`, without a one-time prekey (the
/// case a replay used to break), and the identity to seal to.
async fn new_session(d: &Device, to: &[u8; 32]) -> (alcove_protocol::Session, PreKeyBundle) {
    let fetched = d.bundle_of(to).await;
    let bundle = PreKeyBundle::new(
        fetched.identity().clone(),
        fetched.signed_prekey().clone(),
        None,
    )
    .unwrap();
    let session = x3dh::initiate(&mut rand::rngs::OsRng, &d.identity, &bundle).unwrap();
    (session, bundle)
}

/// A text sealed on `session` as the SDK would.
fn sealed_text(
    d: &Device,
    session: &mut alcove_protocol::Session,
    to: &PreKeyBundle,
    text: &str,
) -> Vec<u8> {
    let message = Content {
        message_id: MessageId::random(&mut rand::rngs::OsRng).0.to_vec(),
        sent_at_ms: 1,
        body: Some(Body::Text(Text {
            body: text.into(),
            reply_to: vec![],
        })),
        ..Default::default()
    };
    let wire = session
        .encrypt(&mut rand::rngs::OsRng, &content::encode(&message))
        .unwrap();
    sealed_sender::seal(&mut rand::rngs::OsRng, &d.identity, to.identity(), &wire).unwrap()
}

/// A raw device's first message to `to` on a new session.
async fn first_message(d: &Device, to: &[u8; 32], text: &str) -> Vec<u8> {
    let (mut session, bundle) = new_session(d, to).await;
    sealed_text(d, &mut session, &bundle, text)
}

async fn a_replayed_first_message_is_refused_after_the_session_moved_on(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let therapist = profile(&relay, dir.path(), "t", 1, "T").await;
    let to = *therapist.address().as_bytes();
    let sender = Device::registered(&relay, 5).await;
    sender.knows(&to, common::sdk::delivery_key(&therapist).await);
    let first = first_message(&sender, &to, "hello, first session").await;
    sender
        .send_envelope(&to, common::id16(1), first.clone())
        .await;
    assert_eq!(
        texts(&therapist.sync().await.unwrap()),
        ["hello, first session"]
    );

    // Replayed while its session is current: refused, not shown again.
    sender
        .send_envelope(&to, common::id16(2), first.clone())
        .await;
    assert!(therapist.sync().await.unwrap().is_empty());

    // The sender starts over seven times: the first session is archived,
    // then evicted from the archive. The replay is still refused (its base
    // key is remembered), and the live session keeps working.
    for round in 0..7u8 {
        let again = first_message(&sender, &to, &format!("session {round}")).await;
        sender
            .send_envelope(&to, common::id16(10 + round), again)
            .await;
        assert_eq!(
            texts(&therapist.sync().await.unwrap()),
            [format!("session {round}")]
        );
        sender
            .send_envelope(&to, common::id16(30 + round), first.clone())
            .await;
        let replayed = therapist.sync().await.unwrap();
        assert!(replayed.is_empty(), "replay delivered: {replayed:?}");
    }
    // Long after: 300 more messages on a live session, so the replayed
    // message's id is no longer among the recently seen ones. The base key
    // alone still refuses it.
    let (mut live, bundle) = new_session(&sender, &to).await;
    for i in 0..300u32 {
        let env = sealed_text(&sender, &mut live, &bundle, &format!("later {i}"));
        let mut id = common::id16(0);
        id[..4].copy_from_slice(&(1000 + i).to_be_bytes());
        sender.send_envelope(&to, id, env).await;
    }
    assert_eq!(therapist.sync().await.unwrap().len(), 300);
    sender.send_envelope(&to, common::id16(99), first).await;
    let replayed = therapist.sync().await.unwrap();
    assert!(replayed.is_empty(), "replay delivered: {replayed:?}");
    let env = sealed_text(&sender, &mut live, &bundle, "still live");
    sender.send_envelope(&to, common::id16(98), env).await;
    assert_eq!(texts(&therapist.sync().await.unwrap()), ["still live"]);
}

async fn simultaneous_first_messages_converge_and_lose_nothing(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let t = profile(&relay, dir.path(), "t", 1, "T").await;
    let c = profile(&relay, dir.path(), "c", 2, "C").await;
    // Each accepts the other's invite while the other is offline: both
    // start a session and write first.
    let t_invite = t.create_invite(Duration::from_secs(600)).await.unwrap();
    let c_invite = c.create_invite(Duration::from_secs(600)).await.unwrap();
    let to_t = c.accept_invite(&t_invite).await.unwrap().address;
    let to_c = t.accept_invite(&c_invite).await.unwrap().address;
    for i in 0..3 {
        t.send_text(&to_c, &format!("t{i}")).await.unwrap();
        c.send_text(&to_t, &format!("c{i}")).await.unwrap();
    }
    let mut at_t = texts(&t.sync().await.unwrap());
    let mut at_c = texts(&c.sync().await.unwrap());
    // Then they keep talking, both writing before each sync.
    for round in 3..9 {
        t.send_text(&to_c, &format!("t{round}")).await.unwrap();
        c.send_text(&to_t, &format!("c{round}")).await.unwrap();
        at_t.extend(texts(&t.sync().await.unwrap()));
        at_c.extend(texts(&c.sync().await.unwrap()));
    }
    at_t.extend(texts(&t.sync().await.unwrap()));
    at_c.extend(texts(&c.sync().await.unwrap()));
    assert_eq!(at_c, (0..9).map(|i| format!("t{i}")).collect::<Vec<_>>());
    assert_eq!(at_t, (0..9).map(|i| format!("c{i}")).collect::<Vec<_>>());
}

async fn a_restored_profile_recovers_through_retry_requests(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (t, c, _, _) = pair(&relay, dir.path()).await;
    let to_c = c.address();
    let to_t = t.address();
    t.send_text(&to_c, "before the backup").await.unwrap();
    assert_eq!(texts(&c.sync().await.unwrap()), ["before the backup"]);
    c.send_text(&to_t, "reply before the backup").await.unwrap();
    t.sync().await.unwrap();
    // The client's phone is backed up...
    drop(c);
    let backup = dir.path().join("c-backup");
    common::copy_dir(&dir.path().join("c"), &backup);
    let c = Client::open(&dir.path().join("c"), &[2; 32]).await.unwrap();
    // ...the conversation goes on for a while...
    for i in 0..3 {
        t.send_text(&to_c, &format!("after backup {i}"))
            .await
            .unwrap();
        c.sync().await.unwrap();
        c.send_text(&to_t, &format!("client {i}")).await.unwrap();
        t.sync().await.unwrap();
    }
    // ...and the phone is restored from the backup.
    drop(c);
    std::fs::remove_dir_all(dir.path().join("c")).unwrap();
    common::copy_dir(&backup, &dir.path().join("c"));
    let c = Client::open(&dir.path().join("c"), &[2; 32]).await.unwrap();

    // Both write: the restored client on chain indices it already used,
    // the therapist on keys the restored state never saw.
    c.send_text(&to_t, "written after the restore")
        .await
        .unwrap();
    t.send_text(&to_c, "therapist after the restore")
        .await
        .unwrap();
    let (mut at_t, mut at_c) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        at_c.extend(c.sync().await.unwrap());
        at_t.extend(t.sync().await.unwrap());
    }
    assert_eq!(texts(&at_c), ["therapist after the restore"], "{at_c:?}");
    assert_eq!(texts(&at_t), ["written after the restore"], "{at_t:?}");
    let resets = |e: &EventKind| matches!(e, EventKind::SessionReset { .. });
    let resent = |e: &EventKind| matches!(e, EventKind::Resent { .. });
    assert!(
        count(&at_c, resets) >= 1,
        "client told of no reset: {at_c:?}"
    );
    assert!(
        count(&at_t, resent) >= 1,
        "therapist told of no resend: {at_t:?}"
    );
    assert!(
        count(&at_t, resets) >= 1,
        "therapist told of no reset: {at_t:?}"
    );
    assert!(
        count(&at_c, resent) >= 1,
        "client told of no resend: {at_c:?}"
    );
    let lost = |e: &EventKind| {
        matches!(
            e,
            EventKind::Undecryptable { .. } | EventKind::DeliveryFailed { .. }
        )
    };
    assert_eq!(count(&at_c, lost) + count(&at_t, lost), 0);
    // And the conversation works normally afterwards.
    t.send_text(&to_c, "all good").await.unwrap();
    assert_eq!(texts(&c.sync().await.unwrap()), ["all good"]);
    c.send_text(&to_t, "yes").await.unwrap();
    assert_eq!(texts(&t.sync().await.unwrap()), ["yes"]);
}

async fn an_oversized_text_is_refused_and_receiving_goes_on(backend: Backend) {
    let mut relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (t, c, _, _) = pair(&relay, dir.path()).await;
    let (to_c, to_t) = (c.address(), t.address());
    // 300 KiB of text against a default relay (256 KiB envelopes): refused
    // at the call, nothing queued.
    let big = "x".repeat(300 << 10);
    match c.send_text(&to_t, &big).await {
        Err(Error::LimitExceeded(msg)) => assert!(msg.contains("upload_file"), "{msg}"),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    t.send_text(&to_c, "still here?").await.unwrap();
    assert_eq!(texts(&c.sync().await.unwrap()), ["still here?"]);
    c.send_text(&to_t, "yes").await.unwrap();
    assert_eq!(texts(&t.sync().await.unwrap()), ["yes"]);

    // A message queued while the relay is down, that the relay (restarted
    // with a smaller limit) will never take: reported, removed, and the
    // messages queued after it still go out.
    let addr = relay.addr();
    relay.stop().await;
    let medium = "y".repeat(100 << 10);
    assert!(c
        .send_text(&to_t, &medium)
        .await
        .unwrap_err()
        .is_retryable());
    assert!(c
        .send_text(&to_t, "after the big one")
        .await
        .unwrap_err()
        .is_retryable());
    relay.config.listen = addr;
    relay.config.limits.max_envelope_bytes = 64 << 10;
    relay.restart().await;
    let events = c.sync().await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::DeliveryFailed { id: Some(_), .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].contact, to_t);
    assert!(c.sync().await.unwrap().is_empty());
    assert_eq!(texts(&t.sync().await.unwrap()), ["after the big one"]);
}

async fn a_reused_invite_is_refused(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let t = profile(&relay, dir.path(), "t", 1, "T").await;
    let invite = t.create_invite(Duration::from_secs(600)).await.unwrap();
    let first = profile(&relay, dir.path(), "a", 2, "Ann").await;
    let second = profile(&relay, dir.path(), "b", 3, "Ben").await;
    first.accept_invite(&invite).await.unwrap();
    second.accept_invite(&invite).await.unwrap();
    let events = t.sync().await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0].body(), Some(Body::InviteAccepted(_))));
    assert!(
        matches!(&events[1].kind, EventKind::InviteRefused { reason } if reason.contains("used")),
        "{events:?}"
    );
    assert!(t.contact(&first.address()).await.unwrap().verified);
    assert!(!t.contact(&second.address()).await.unwrap().verified);

    // An invite for several uses is accepted that many times.
    let group = t
        .create_invite_for(Duration::from_secs(600), 2)
        .await
        .unwrap();
    let third = profile(&relay, dir.path(), "c", 4, "Cy").await;
    third.accept_invite(&group).await.unwrap();
    second.accept_invite(&group).await.unwrap();
    let events = t.sync().await.unwrap();
    assert_eq!(
        count(&events, |k| matches!(k, EventKind::InviteRefused { .. })),
        0
    );
    assert!(t.contact(&third.address()).await.unwrap().verified);
}

async fn a_relay_with_another_server_id_is_refused(backend: Backend) {
    let mut relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let c = profile(&relay, dir.path(), "c", 2, "C").await;
    c.sync().await.unwrap();
    drop(c);
    // The same store and address, but another server id: a relay that
    // would forward the real relay's challenges, or another deployment.
    let addr = relay.addr();
    relay.stop().await;
    relay.config.listen = addr;
    relay.config.server_id = Some("someone-else".into());
    relay.restart().await;
    let c = Client::open(&dir.path().join("c"), &[2; 32]).await.unwrap();
    match c.sync().await {
        Err(Error::WrongRelay { got, .. }) => assert_eq!(got, "someone-else"),
        other => panic!("expected WrongRelay, got {other:?}"),
    }
}

/// A profile store whose commits fail while `fail` is non-zero (each
/// failure counts it down).
struct FlakyStore {
    inner: SledProfileStore,
    fail: Arc<AtomicU32>,
}

impl ProfileStore for FlakyStore {
    fn get(&self, name: &[u8]) -> alcove_client::Result<Option<Vec<u8>>> {
        self.inner.get(name)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> alcove_client::Result<Vec<StoredRecord>> {
        self.inner.scan_prefix(prefix)
    }
    fn is_empty(&self) -> alcove_client::Result<bool> {
        self.inner.is_empty()
    }
    fn commit(&self, puts: &[StoredRecord], removes: &[Vec<u8>]) -> alcove_client::Result<()> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Storage("disk full (injected)".into()));
        }
        self.inner.commit(puts, removes)
    }
}

#[tokio::test]
async fn events_acknowledge_only_what_was_stored() {
    let relay = TestRelay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let t = profile(&relay, dir.path(), "t", 1, "T").await;
    let fail = Arc::new(AtomicU32::new(0));
    let c_dir = dir.path().join("c");
    let store = FlakyStore {
        inner: SledProfileStore::open(&c_dir).unwrap(),
        fail: fail.clone(),
    };
    let c = Client::create_with(Profile::new(store), &[2; 32], &url(&relay), "C")
        .await
        .unwrap();
    let invite = t.create_invite(Duration::from_secs(600)).await.unwrap();
    let to_t = c.accept_invite(&invite).await.unwrap().address;
    let to_c = t.sync().await.unwrap()[0].contact;
    c.send_text(&to_t, "hi").await.unwrap();
    t.sync().await.unwrap();
    for i in 0..3 {
        t.send_text(&to_c, &format!("m{i}")).await.unwrap();
    }
    {
        let mut live = std::pin::pin!(c.events());
        let first = live.next().await.unwrap().unwrap();
        assert_eq!(texts(&[first]), ["m0"]);
        // The disk fills up: storing m1 fails. The stream says so and ends.
        fail.store(1, Ordering::SeqCst);
        match live.next().await {
            Some(Err(Error::Storage(_))) => {}
            other => panic!("expected a storage error, got {other:?}"),
        }
        assert!(live.next().await.is_none());
    }
    // The app restarts: nothing acknowledged was lost.
    drop(c);
    let c = Client::open(&c_dir, &[2; 32]).await.unwrap();
    let pending = texts(&c.pending_events().await.unwrap());
    let fresh = texts(&c.sync().await.unwrap());
    assert_eq!(pending, ["m0"]);
    assert_eq!(fresh, ["m1", "m2"]);
}

/// The relay connection is a seam: a profile whose relay URL resolves
/// nowhere talks to the real relay through the transport it was given
/// (here a TCP channel wrapped to count requests), for every call: login,
/// key fetches, sends, fetches, acknowledgements and blob streams.
#[tokio::test]
async fn every_call_goes_through_the_given_transport() {
    use std::sync::atomic::AtomicUsize;
    let relay = TestRelay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let profile = |name: &str| {
        let counter = calls.clone();
        let inner = alcove_client::Transport::tcp(&url(&relay)).unwrap();
        let counted = tower::ServiceExt::map_request(inner, move |r| {
            counter.fetch_add(1, Ordering::SeqCst);
            r
        });
        Profile::new(SledProfileStore::open(&dir.path().join(name)).unwrap())
            .with_transport(alcove_client::Transport::new(counted))
    };
    let nowhere = "http://relay.invalid:9";
    let t = Client::create_with(profile("t"), &[1; 32], nowhere, "T")
        .await
        .unwrap();
    let c = Client::create_with(profile("c"), &[2; 32], nowhere, "C")
        .await
        .unwrap();
    let invite = t.create_invite(Duration::from_secs(600)).await.unwrap();
    let to_t = c.accept_invite(&invite).await.unwrap().address;
    let to_c = t.sync().await.unwrap()[0].contact;
    let sheet = dir.path().join("sheet.txt");
    std::fs::write(&sheet, "worksheet").unwrap();
    let pointer = t
        .upload_file(&sheet, "text/plain", |_, _| {})
        .await
        .unwrap();
    t.assign_homework(&to_c, "Sheet", "", None, vec![pointer])
        .await
        .unwrap();
    let got = c.sync().await.unwrap();
    let Some(Body::HomeworkAssignment(a)) = got[0].body() else {
        panic!("{got:?}")
    };
    let out = dir.path().join("got.txt");
    c.download_file(&a.attachments[0], &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "worksheet");
    c.send_text(&to_t, "thanks").await.unwrap();
    assert_eq!(texts(&t.sync().await.unwrap()), ["thanks"]);
    assert!(calls.load(Ordering::SeqCst) > 20);
}

async fn messages_queued_while_offline_keep_their_order(backend: Backend) {
    let mut relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (t, c, to_c, _) = pair(&relay, dir.path()).await;
    t.send_text(&to_c.address, "first").await.unwrap();
    let addr = relay.addr();
    relay.stop().await;
    let queued = t.send_text(&to_c.address, "second, written offline").await;
    assert!(matches!(queued, Err(Error::Offline(_))), "{queued:?}");
    relay.config.listen = addr;
    relay.restart().await;
    // Back online, the app sends again before any sync: the queued message
    // goes first.
    t.send_text(&to_c.address, "third").await.unwrap();
    assert_eq!(
        texts(&c.sync().await.unwrap()),
        ["first", "second, written offline", "third"]
    );
}

async fn malformed_content_is_reported_and_its_session_kept(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let therapist = profile(&relay, dir.path(), "t", 1, "T").await;
    let to = *therapist.address().as_bytes();
    let sender = Device::registered(&relay, 5).await;
    sender.knows(&to, common::sdk::delivery_key(&therapist).await);
    let (mut session, bundle) = new_session(&sender, &to).await;
    // A first message that decrypts but is not valid content (a buggy or
    // newer sender), then a normal one on the same session.
    let wire = session
        .encrypt(&mut rand::rngs::OsRng, b"\xff\xff not protobuf")
        .unwrap();
    let bad = sealed_sender::seal(
        &mut rand::rngs::OsRng,
        &sender.identity,
        bundle.identity(),
        &wire,
    )
    .unwrap();
    sender.send_envelope(&to, common::id16(1), bad).await;
    let good = sealed_text(&sender, &mut session, &bundle, "second");
    sender.send_envelope(&to, common::id16(2), good).await;
    let events = therapist.sync().await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(&events[0].kind, EventKind::Undecryptable { reason } if reason.contains("malformed")),
        "{events:?}"
    );
    assert_eq!(texts(&events[1..]), ["second"]);
}

/// The client's state is rolled back while the therapist keeps writing:
/// forty messages do not decrypt. They are all asked for on one new session
/// (not forty: the relay limits key fetches to 30 a minute) and all arrive.
async fn many_lost_messages_are_recovered_through_one_new_session(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (t, c, to_c, to_t) = pair(&relay, dir.path()).await;
    c.send_text(&to_t.address, "hello").await.unwrap();
    t.sync().await.unwrap();
    drop(c);
    let backup = dir.path().join("c-backup");
    common::copy_dir(&dir.path().join("c"), &backup);
    let c = Client::open(&dir.path().join("c"), &[2; 32]).await.unwrap();
    t.send_text(&to_c.address, "seen before the restore")
        .await
        .unwrap();
    c.sync().await.unwrap();
    c.send_text(&to_t.address, "moves the ratchet")
        .await
        .unwrap();
    t.sync().await.unwrap();
    drop(c);
    std::fs::remove_dir_all(dir.path().join("c")).unwrap();
    common::copy_dir(&backup, &dir.path().join("c"));
    let c = Client::open(&dir.path().join("c"), &[2; 32]).await.unwrap();
    let sent: Vec<String> = (0..40).map(|i| format!("lost {i}")).collect();
    for m in &sent {
        t.send_text(&to_c.address, m).await.unwrap();
    }
    let (mut at_c, mut at_t) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        at_c.extend(c.sync().await.unwrap());
        at_t.extend(t.sync().await.unwrap());
    }
    let mut got = texts(&at_c);
    got.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(got, want, "{at_c:?}");
    let lost = |e: &EventKind| {
        matches!(
            e,
            EventKind::Undecryptable { .. } | EventKind::DeliveryFailed { .. }
        )
    };
    assert_eq!(
        count(&at_c, lost) + count(&at_t, lost),
        0,
        "{at_c:?} {at_t:?}"
    );
    assert_eq!(count(&at_t, |k| matches!(k, EventKind::Resent { .. })), 40);
}
