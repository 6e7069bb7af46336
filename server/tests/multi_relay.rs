//! Two real `alcove-server` processes on one PostgreSQL database (a schema
//! of its own per test): a subscriber on relay A receives what relay B
//! accepted, one-time prekeys are handed out once across both relays, and
//! a relay killed mid-load loses nothing it acknowledged. Needs
//! `ALCOVE_TEST_POSTGRES_URL`; without it the tests say they were skipped.

mod common;

use std::collections::HashSet;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use alcove_api::v1::keys_client::KeysClient;
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::*;
use common::{free_port, postgres_schema, start_with, Device, TestSchema};
use futures::StreamExt;
use tonic::transport::Endpoint;

struct Relay {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

fn relay(db: &TestSchema) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let secrets = db.secrets_file();
    let child = start_with(
        dir.path(),
        &addr,
        &[
            "--store",
            db.url(),
            "--secrets-file",
            secrets.to_str().unwrap(),
        ],
    );
    Relay {
        child,
        addr,
        _dir: dir,
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn channel(r: &Relay) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("http://{}", r.addr))
        .unwrap()
        .connect_lazy()
}

/// An envelope-sized blob carrying `id` after the version byte.
fn envelope_with(id: &[u8; 16]) -> Vec<u8> {
    let mut e: Vec<u8> = (0..alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN)
        .map(|i| (i as u8).wrapping_mul(31))
        .collect();
    e[0] = 1;
    e[1..17].copy_from_slice(id);
    e
}

fn envelope(tag: u8) -> Vec<u8> {
    envelope_with(&[tag; 16])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_relay_gets_what_another_accepted() {
    let Some(db) = postgres_schema("multi-relay tests").await else {
        return;
    };
    let (a, b) = (relay(&db), relay(&db));
    let alice = Device::new(channel(&a));
    alice.register().await;
    // Bob lives on relay B.
    let bob = Device::new(channel(&b));
    bob.register().await;
    let mut stream = MailboxClient::new(alice.channel.clone())
        .subscribe(alice.req(SubscribeRequest::default()))
        .await
        .unwrap()
        .into_inner();
    for i in 0..5u8 {
        MailboxClient::new(bob.channel.clone())
            .send(bob.req(SendRequest {
                recipient: alice.address(),
                client_message_id: vec![i; 16],
                envelope: envelope(i),
                ..Default::default()
            }))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("delivered across relays (NOTIFY), not only on the next poll")
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.sequence, got.envelope),
            (u64::from(i) + 1, envelope(i))
        );
    }
    // The key log is one log: both relays serve the same head.
    let head = |c| async move {
        alcove_api::v1::key_log_client::KeyLogClient::new(c)
            .get_tree_head(GetTreeHeadRequest::default())
            .await
            .unwrap()
            .into_inner()
    };
    let (ha, hb) = (head(channel(&a)).await, head(channel(&b)).await);
    assert_eq!(ha.log_key, hb.log_key);
    let (ha, hb) = (ha.head.unwrap(), hb.head.unwrap());
    assert_eq!((ha.size, ha.root), (hb.size, hb.root));
    assert_eq!(ha.size, 2);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_prekeys_are_handed_out_once_across_relays() {
    let Some(db) = postgres_schema("multi-relay tests").await else {
        return;
    };
    let (a, b) = (relay(&db), relay(&db));
    let owner = Device::new(channel(&a));
    owner.register().await;
    let keys: Vec<Vec<u8>> = (1..=20u32)
        .map(|i| {
            alcove_protocol::prekeys::OneTimePreKeyPair::generate(
                &mut rand::rngs::OsRng,
                &owner.identity,
                i,
            )
            .public()
            .to_bytes()
            .to_vec()
        })
        .collect();
    KeysClient::new(owner.channel.clone())
        .upload_one_time_pre_keys(owner.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: keys,
        }))
        .await
        .unwrap();
    // 40 fetchers, half on each relay, all at once.
    let mut fetchers = Vec::new();
    for i in 0..40 {
        let d = Arc::new(Device::new(channel(if i % 2 == 0 { &a } else { &b })));
        d.register().await;
        fetchers.push(d);
    }
    let target = owner.address();
    let tasks: Vec<_> = fetchers
        .iter()
        .map(|d| {
            let (d, target) = (d.clone(), target.clone());
            tokio::spawn(async move {
                let r = KeysClient::new(d.channel.clone())
                    .get_bundle(d.req(GetBundleRequest {
                        address: target,
                        known_tree_size: 0,
                        ..Default::default()
                    }))
                    .await
                    .unwrap()
                    .into_inner();
                let bundle = alcove_protocol::prekeys::PreKeyBundle::from_bytes(&r.bundle).unwrap();
                bundle.one_time_prekey().map(|k| k.id)
            })
        })
        .collect();
    let mut handed = Vec::new();
    for t in tasks {
        handed.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = handed.iter().collect();
    assert_eq!((handed.len(), unique.len()), (20, 20));
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_load_loses_nothing_acknowledged() {
    let Some(db) = postgres_schema("multi-relay tests").await else {
        return;
    };
    let (mut a, b) = (relay(&db), relay(&db));
    let recipient = Device::new(channel(&b));
    recipient.register().await;
    let sender = Arc::new(Device::new(channel(&a)));
    sender.register().await;
    let to = recipient.address();
    // Send through A until it dies; every acknowledged id is owed.
    let load = {
        let (sender, to) = (sender.clone(), to.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0u32.. {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                let r = MailboxClient::new(sender.channel.clone())
                    .send(sender.req(SendRequest {
                        recipient: to.clone(),
                        client_message_id: id.to_vec(),
                        envelope: envelope_with(&id),
                        ..Default::default()
                    }))
                    .await;
                match r {
                    Ok(_) => acked.push(id),
                    Err(_) => return acked,
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let acked = load.await.unwrap();
    assert!(acked.len() > 10, "the load ran ({} sends)", acked.len());
    // The recipient, on the surviving relay, gets every one of them.
    let mut got = HashSet::new();
    let mut after = 0;
    loop {
        let page = MailboxClient::new(recipient.channel.clone())
            .fetch(recipient.req(FetchRequest {
                after_sequence: after,
                limit: 500,
                mailbox: vec![],
            }))
            .await
            .unwrap()
            .into_inner();
        for e in &page.envelopes {
            after = e.sequence;
            got.insert(<[u8; 16]>::try_from(&e.envelope[1..17]).unwrap());
        }
        if !page.more {
            break;
        }
    }
    let lost: Vec<_> = acked.iter().filter(|id| !got.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged sends lost", lost.len());
    drop(b);
}
