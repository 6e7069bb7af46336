//! Helpers for tests of the SDK (`alcove-client`) against a test relay.

use std::time::Duration;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use alcove_client::{Body, Client, Clock, Profile, SystemClock};

use super::TestRelay;

/// A new profile `name` in `dir/sub`, registered with `relay`.
pub async fn profile(
    relay: &TestRelay,
    dir: &std::path::Path,
    sub: &str,
    key: u8,
    name: &str,
) -> Client {
    Client::create(&dir.join(sub), &[key; 32], &url(relay), name)
        .await
        .unwrap()
}

pub fn url(relay: &TestRelay) -> String {
    format!("http://{}", relay.addr())
}

pub async fn pair(
    relay: &TestRelay,
    dir: &std::path::Path,
) -> (
    Client,
    Client,
    alcove_client::Contact,
    alcove_client::Contact,
) {
    let therapist = Client::create(&dir.join("t"), &[1; 32], &url(relay), "Therapist")
        .await
        .unwrap();
    let client = Client::create(&dir.join("c"), &[2; 32], &url(relay), "Client")
        .await
        .unwrap();
    let invite = therapist
        .create_invite(Duration::from_secs(3600))
        .await
        .unwrap();
    let to_therapist = client.accept_invite(&invite).await.unwrap();
    let events = therapist.sync().await.unwrap();
    assert!(matches!(events[0].body(), Some(Body::InviteAccepted(_))));
    let to_client = therapist.contacts().await.pop().unwrap();
    assert!(to_client.verified && to_therapist.verified);
    assert_eq!(to_client.safety_number, to_therapist.safety_number);
    (therapist, client, to_client, to_therapist)
}

pub fn texts(events: &[alcove_client::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e.body() {
            Some(Body::Text(t)) => Some(t.body.clone()),
            _ => None,
        })
        .collect()
}

/// The delivery key `client` hands out (read from one of its invites), for
/// raw test devices that write to it.
pub async fn delivery_key(client: &Client) -> Vec<u8> {
    let invite = client
        .create_invite(Duration::from_secs(600))
        .await
        .unwrap();
    alcove_protocol::invite::Invite::decode(&invite)
        .unwrap()
        .delivery_key
        .expect("an invite carries the delivery key")
        .as_bytes()
        .to_vec()
}

/// The system clock, moved forward by the test.
#[derive(Clone, Default)]
pub struct MovedClock(Arc<AtomicI64>);

impl MovedClock {
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for MovedClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0.load(Ordering::SeqCst)
    }
}

/// A new profile in `dir` on `clock`.
pub async fn on_clock(
    relay: &TestRelay,
    dir: &std::path::Path,
    key: u8,
    name: &str,
    clock: &MovedClock,
) -> Client {
    let profile = Profile::on_disk(dir).unwrap().with_clock(clock.clone());
    Client::create_with(profile, &[key; 32], &url(relay), name)
        .await
        .unwrap()
}
