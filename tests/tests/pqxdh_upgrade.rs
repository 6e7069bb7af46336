//! The move to PQXDH, on a real deployment from before it.
//!
//! `tests/fixtures/pre-pqxdh/` was written by the SDK and relay as they were
//! at commit 06043cb (before PQXDH): a relay's sled store and two profiles,
//! a therapist and a client who exchanged messages through it, with one
//! message from the therapist still waiting at the relay. This test opens
//! them with today's code and checks that nothing is lost and that the
//! upgrade happens: the old session goes on, the waiting message opens, the
//! profiles publish hybrid prekeys, and a new contact gets a PQXDH session.

mod common;

use std::path::Path;
use std::time::Duration;

use alcove_client::{Client, Profile, Transport};
use alcove_protocol::prekeys::PreKeyBundle;
use common::{sdk, TestRelay};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pre-pqxdh");

/// Opens a fixture profile against the relay's new port.
async fn open(dir: &Path, key: u8, relay: &TestRelay) -> Client {
    let url = sdk::url(relay);
    let profile = Profile::on_disk(dir)
        .unwrap()
        .with_transports(Transport::tcp(&url).unwrap(), Transport::tcp(&url).unwrap());
    Client::open_with(profile, &[key; 32]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_from_before_pqxdh_upgrades_without_losing_anything() {
    let work = tempfile::tempdir().unwrap();
    common::copy_dir(Path::new(FIXTURE), work.path());
    let relay_dir = work.path().join("relay");
    let relay = TestRelay::start_with(|c| c.data_dir = relay_dir.clone()).await;

    // Before anyone syncs, the relay still hands out the classical bundles.
    let probe = common::Device::registered(&relay, 0).await;
    let therapist = open(&work.path().join("t"), 1, &relay).await;
    let client = open(&work.path().join("c"), 2, &relay).await;
    let t_addr = *therapist.address().as_bytes();
    probe.knows(&t_addr, sdk::delivery_key(&therapist).await);
    let old_bundle = probe.bundle_of(&t_addr).await;
    assert!(!old_bundle.is_hybrid());

    // The message waiting since before the upgrade opens, on the session
    // made by X3DH, and the conversation goes on in both directions.
    let to_therapist = client.contacts().await.pop().unwrap();
    let to_client = therapist.contacts().await.pop().unwrap();
    let got = client.sync().await.unwrap();
    assert_eq!(sdk::texts(&got), ["sent before, read after the upgrade"]);
    client
        .send_text(&to_therapist.address, "after the upgrade: reply")
        .await
        .unwrap();
    let got = therapist.sync().await.unwrap();
    assert_eq!(sdk::texts(&got), ["after the upgrade: reply"]);
    therapist
        .send_text(&to_client.address, "after the upgrade: and back")
        .await
        .unwrap();
    assert_eq!(
        sdk::texts(&client.sync().await.unwrap()),
        ["after the upgrade: and back"]
    );

    // The syncs upgraded both profiles' prekeys: the relay now serves
    // hybrid (version 2) bundles, one-time prekey included, and the key
    // log commits to them (the SDK checks that on every bundle it uses).
    for who in [&therapist, &client] {
        let addr = *who.address().as_bytes();
        probe.knows(&addr, sdk::delivery_key(who).await);
        let bundle = probe.bundle_of(&addr).await;
        assert!(bundle.is_hybrid(), "{addr:?} still classical");
        assert!(
            bundle.one_time_prekey().is_some_and(|k| k.is_hybrid()),
            "the upgraded one-time prekeys replaced the classical ones"
        );
    }

    // A relay replaying the therapist's classical signed prekey from
    // before the upgrade (still kept by the therapist for late first
    // messages) gets a classical first message written to it; the
    // upgraded therapist refuses it as a downgrade (protocol §17).
    let replayed = PreKeyBundle::new(
        old_bundle.identity().clone(),
        old_bundle.signed_prekey().clone(),
        None,
    )
    .unwrap();
    let kind =
        common::raw_first_message(&probe, &replayed, "written against the replayed bundle").await;
    assert_eq!(kind, 0x22, "a classical (X3DH) initial message");
    let events = therapist.sync().await.unwrap();
    assert!(
        sdk::texts(&events).is_empty(),
        "a classical first message opened after the upgrade: {events:?}"
    );

    // A new contact made now gets a PQXDH session with the upgraded
    // therapist, and both directions work.
    // (The fixture's profiles name the relay by the address it had when
    // they were written; invites carry that name, so the newcomer uses it
    // too, over a transport to where the relay is now.)
    let url = sdk::url(&relay);
    let newcomer = Client::create_with(
        Profile::on_disk(&work.path().join("n"))
            .unwrap()
            .with_transports(Transport::tcp(&url).unwrap(), Transport::tcp(&url).unwrap()),
        &[3; 32],
        &therapist.relay_url().await,
        "New client",
    )
    .await
    .unwrap();
    let invite = therapist
        .create_invite(Duration::from_secs(600))
        .await
        .unwrap();
    let to_t = newcomer.accept_invite(&invite).await.unwrap();
    therapist.sync().await.unwrap();
    newcomer
        .send_text(&to_t.address, "hello from a new client")
        .await
        .unwrap();
    assert_eq!(
        sdk::texts(&therapist.sync().await.unwrap()),
        ["hello from a new client"]
    );
    let to_n = therapist
        .contacts()
        .await
        .into_iter()
        .find(|c| c.address == newcomer.address())
        .unwrap();
    therapist.send_text(&to_n.address, "welcome").await.unwrap();
    assert_eq!(sdk::texts(&newcomer.sync().await.unwrap()), ["welcome"]);

    // And the old session is still fine after all that.
    client
        .send_text(&to_therapist.address, "still here")
        .await
        .unwrap();
    assert_eq!(sdk::texts(&therapist.sync().await.unwrap()), ["still here"]);
}
