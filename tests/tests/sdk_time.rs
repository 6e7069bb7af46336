//! SDK behaviour that depends on time (days, not seconds), with a clock the
//! test moves through the SDK's `Clock` seam; the relay and everything else
//! are real. Each test once on sled and once on PostgreSQL (skipped without
//! `ALCOVE_TEST_POSTGRES_URL`).

mod common;

use std::time::Duration;

use alcove_client::{Body, Error, EventKind};
use common::sdk::{on_clock, profile, texts, MovedClock};
use common::{Backend, TestRelay};

on_every_backend!(
    a_message_to_a_full_mailbox_is_given_up_after_its_budget_and_later_ones_go_on,
    a_first_message_written_against_a_replaced_signed_prekey_still_opens,
);

const DAY_MS: i64 = 86_400_000;

async fn a_message_to_a_full_mailbox_is_given_up_after_its_budget_and_later_ones_go_on(
    backend: Backend,
) {
    let relay = TestRelay::start_on(backend, |c| c.limits.max_mailbox_depth = 2).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = MovedClock::default();
    let t = on_clock(&relay, &dir.path().join("t"), 1, "T", &clock).await;
    let c = profile(&relay, dir.path(), "c", 2, "C").await;
    let invite = t.create_invite(Duration::from_secs(3600)).await.unwrap();
    c.accept_invite(&invite).await.unwrap();
    let to_c = t.sync().await.unwrap()[0].contact;

    // The client is away; its mailbox holds two messages.
    t.send_text(&to_c, "m1").await.unwrap();
    t.send_text(&to_c, "m2").await.unwrap();
    let third = t.send_text(&to_c, "m3").await;
    assert!(matches!(third, Err(Error::Busy(_))), "{third:?}");
    // A later message waits behind it, not beside it.
    let fourth = t.send_text(&to_c, "m4").await;
    assert!(matches!(fourth, Err(Error::Busy(_))), "{fourth:?}");
    // Retried at every sync, within the budget: nothing is given up, and
    // receiving works.
    for _ in 0..25 {
        assert!(t.sync().await.unwrap().is_empty());
    }
    // A day later the budget is spent: m3 is reported and removed.
    clock.advance(DAY_MS + 60_000);
    let events = t.sync().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0].kind, EventKind::DeliveryFailed { id: Some(_), reason } if reason.contains("gave up")),
        "{events:?}"
    );
    assert_eq!(events[0].contact, to_c);
    // The client comes back; m4 follows m1 and m2.
    assert_eq!(texts(&c.sync().await.unwrap()), ["m1", "m2"]);
    assert!(t.sync().await.unwrap().is_empty());
    assert_eq!(texts(&c.sync().await.unwrap()), ["m4"]);
}

async fn a_first_message_written_against_a_replaced_signed_prekey_still_opens(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = MovedClock::default();
    let t = on_clock(&relay, &dir.path().join("t"), 1, "T", &clock).await;
    let c = profile(&relay, dir.path(), "c", 2, "C").await;
    let invite = t
        .create_invite(Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    // The client writes against the therapist's first signed prekey...
    let to_t = c.accept_invite(&invite).await.unwrap().address;
    c.send_text(&to_t, "written on day 0").await.unwrap();
    // ...and the therapist's device replaces it three times over 24 days
    // before it next receives (senders accept a signed prekey for 30).
    for _ in 0..3 {
        clock.advance(8 * DAY_MS);
        t.rotate_signed_prekey().await.unwrap();
    }
    let events = t.sync().await.unwrap();
    assert!(
        matches!(events[0].body(), Some(Body::InviteAccepted(_))),
        "{events:?}"
    );
    assert_eq!(texts(&events), ["written on day 0"]);
    assert_eq!(events.len(), 2, "opened directly, no recovery: {events:?}");
}
