//! Crash consistency of the real `alcove-server` binary.
//!
//! Senders, receivers (fetching, or on a live subscription) and a stream
//! of new registrations run against the relay over loopback while the
//! harness kills it with SIGKILL at random moments and restarts it on the
//! same data directory and port. At the end it checks the invariants:
//!
//! * every send the relay acknowledged is delivered to its recipient, under
//!   one sequence only (by client message id): lost = 0, duplicated = 0;
//! * nothing a recipient acknowledged comes back;
//! * the store opens cleanly after every kill (the binary starts and
//!   serves);
//! * the key log stays consistent: every head seen after a restart extends
//!   every head seen before it.
//!
//! `ALCOVE_CRASH_KILLS` sets the number of kills (default 3, the short
//! form `cargo test` runs); `ALCOVE_CRASH_SEED` fixes the timing. The long
//! run recorded in docs/reliability.md:
//!
//! ```sh
//! ALCOVE_CRASH_KILLS=25 cargo test --release -p alcove-server --test crash -- --nocapture
//! ```

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alcove_api::keylog::head_from_wire;
use alcove_api::v1::key_log_client::KeyLogClient;
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::*;
use alcove_keylog::SignedTreeHead;
use alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN;
use rand::{Rng, RngCore, SeedableRng};
use tonic::transport::Endpoint;

mod common;

use common::{free_port, postgres_schema, start_with, Device};

const SENDERS: usize = 4;
const RECIPIENTS: usize = 3;

#[derive(Default)]
struct Ledger {
    /// (recipient, client message id) → sequence the relay acknowledged.
    acked_by_relay: HashMap<(usize, [u8; 16]), u64>,
    /// Delivered: (recipient, id) → sequence it was delivered under.
    delivered: HashMap<(usize, [u8; 16]), u64>,
    /// Acknowledged by the recipient (deleted on the relay).
    acked_by_recipient: HashSet<(usize, [u8; 16])>,
    /// Invariant violations, described.
    violations: Vec<String>,
    sends_attempted: u64,
    duplicate_answers: u64,
}

fn envelope(id: &[u8; 16], rng: &mut impl RngCore) -> Vec<u8> {
    let mut e = vec![0u8; MIN_ENVELOPE_LEN];
    rng.fill_bytes(&mut e);
    e[0] = 1;
    e[1..17].copy_from_slice(id);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing_on_sled() {
    sigkill_at_random_moments(None).await;
}

/// The same harness with the relay on PostgreSQL: a kill there cuts the
/// relay's connections mid-transaction instead of its disk writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing_on_postgres() {
    let Some(db) = postgres_schema("crash harness").await else {
        return;
    };
    let secrets = db.secrets_file();
    sigkill_at_random_moments(Some((db.url(), secrets.to_str().unwrap()))).await;
}

/// Runs the harness on sled (`None`) or on the PostgreSQL store `url` with
/// its secrets file.
async fn sigkill_at_random_moments(store: Option<(&str, &str)>) {
    let extra: Vec<&str> = match store {
        Some((url, secrets)) => vec!["--store", url, "--secrets-file", secrets],
        None => Vec::new(),
    };
    let kills: usize = std::env::var("ALCOVE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("ALCOVE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let backend = if store.is_some() { "postgres" } else { "sled" };
    println!("crash harness ({backend}): {kills} kills, seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start_with(dir.path(), &addr, &extra);
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();

    let recipients: Vec<Arc<Device>> = (0..RECIPIENTS)
        .map(|_| Arc::new(Device::new(channel.clone())))
        .collect();
    let senders: Vec<Arc<Device>> = (0..SENDERS)
        .map(|_| Arc::new(Device::new(channel.clone())))
        .collect();
    for d in recipients.iter().chain(&senders) {
        d.register().await;
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop_sending = Arc::new(AtomicBool::new(false));
    let stop_all = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    // Senders: each message retried with the same id until the relay
    // acknowledges it.
    for (s, sender) in senders.iter().enumerate() {
        let (sender, ledger, stop) = (sender.clone(), ledger.clone(), stop_sending.clone());
        let targets: Vec<Vec<u8>> = recipients.iter().map(|r| r.address()).collect();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (s as u64 + 1));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let to = (n as usize + s) % RECIPIENTS;
                n += 1;
                let mut id = [0u8; 16];
                rng.fill_bytes(&mut id);
                let env = envelope(&id, &mut rng);
                loop {
                    ledger.lock().unwrap().sends_attempted += 1;
                    let r = MailboxClient::new(sender.channel.clone())
                        .send(sender.req(SendRequest {
                            recipient: targets[to].clone(),
                            client_message_id: id.to_vec(),
                            envelope: env.clone(),
                            ..Default::default()
                        }))
                        .await;
                    match r {
                        Ok(r) => {
                            let r = r.into_inner();
                            let mut l = ledger.lock().unwrap();
                            if r.duplicate {
                                l.duplicate_answers += 1;
                            }
                            if let Some(prev) = l.acked_by_relay.insert((to, id), r.sequence) {
                                if prev != r.sequence {
                                    l.violations.push(format!(
                                        "send of one id acknowledged under sequences {prev} and {}",
                                        r.sequence
                                    ));
                                }
                            }
                            break;
                        }
                        Err(_) => {
                            if stop.load(Ordering::Relaxed) {
                                // Give up on an unacknowledged send only at
                                // the very end; it is then simply not owed.
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }));
    }

    // Receivers: the even ones fetch, the odd ones hold a live
    // subscription (which hands out envelopes from the relay's memory when
    // it can); each records what it got and acknowledges it.
    for (r, recipient) in recipients.iter().enumerate() {
        let (recipient, ledger, stop) = (recipient.clone(), ledger.clone(), stop_all.clone());
        if r % 2 == 1 {
            tasks.push(tokio::spawn(subscribe_and_ack(r, recipient, ledger, stop)));
            continue;
        }
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let page = MailboxClient::new(recipient.channel.clone())
                    .fetch(recipient.req(FetchRequest {
                        after_sequence: 0,
                        limit: 200,
                        mailbox: vec![],
                    }))
                    .await;
                let Ok(page) = page else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let envelopes = page.into_inner().envelopes;
                if envelopes.is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                record_and_ack(r, &recipient, &ledger, &envelopes).await;
            }
        }));
    }

    // Registrations, and the key log watched across restarts.
    let heads_checked = Arc::new(AtomicU64::new(0));
    {
        let (ledger, stop, channel, checked) = (
            ledger.clone(),
            stop_sending.clone(),
            channel.clone(),
            heads_checked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latest: Option<SignedTreeHead> = None;
            let mut log_key = None;
            while !stop.load(Ordering::Relaxed) {
                Device::new(channel.clone()).register().await;
                let known = latest.as_ref().map_or(0, |h| h.size);
                let Ok(r) = KeyLogClient::new(channel.clone())
                    .get_tree_head(GetTreeHeadRequest {
                        known_tree_size: known,
                    })
                    .await
                else {
                    continue;
                };
                let r = r.into_inner();
                let pinned = log_key.get_or_insert_with(|| r.log_key.clone()).clone();
                if pinned != r.log_key {
                    ledger
                        .lock()
                        .unwrap()
                        .violations
                        .push("key log: the log key changed across a restart".into());
                }
                let key =
                    ed25519_dalek::VerifyingKey::from_bytes(&pinned.try_into().unwrap()).unwrap();
                let head = head_from_wire(r.head.as_ref()).unwrap();
                let proof = alcove_keylog::hashes(&r.consistency_proof).unwrap();
                match alcove_keylog::check_advance(
                    &key,
                    latest.as_ref(),
                    &head,
                    &proof,
                    head.timestamp_ms,
                ) {
                    Ok(_) => {
                        checked.fetch_add(1, Ordering::Relaxed);
                        latest = Some(head);
                    }
                    Err(e) => ledger
                        .lock()
                        .unwrap()
                        .violations
                        .push(format!("key log: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }

    // The killer.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    for k in 0..kills {
        let wait = rng.gen_range(150..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        server = start_with(dir.path(), &addr, &extra);
        println!("kill {} after {wait} ms: restarted", k + 1);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_sending.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Drain: everything the relay acknowledged must arrive. (An ack whose
    // answer a kill cut off may have been applied: such a message is
    // delivered and gone, without the recipient knowing its ack held.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owed = {
            let l = ledger.lock().unwrap();
            l.acked_by_relay
                .keys()
                .filter(|k| !l.delivered.contains_key(*k))
                .count()
        };
        if owed == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_all.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    // One more check that nothing acknowledged is still (or again) there.
    let mut still_waiting = HashSet::new();
    for (r, recipient) in recipients.iter().enumerate() {
        let left = MailboxClient::new(recipient.channel.clone())
            .fetch(recipient.req(FetchRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .envelopes;
        let l = ledger.lock().unwrap();
        for e in left {
            let id: [u8; 16] = e.envelope[1..17].try_into().unwrap();
            assert!(
                !l.acked_by_recipient.contains(&(r, id)),
                "an acknowledged message is back in mailbox {r}"
            );
            still_waiting.insert((r, id));
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let status = server.wait().unwrap();
    assert!(status.success(), "clean shutdown after the run: {status:?}");

    let l = ledger.lock().unwrap();
    let lost: Vec<_> = l
        .acked_by_relay
        .keys()
        .filter(|k| !l.delivered.contains_key(*k))
        .collect();
    let ack_answer_lost = l
        .delivered
        .keys()
        .filter(|k| !l.acked_by_recipient.contains(*k) && !still_waiting.contains(*k))
        .count();
    let duplicated = l
        .violations
        .iter()
        .filter(|v| v.contains("sequences"))
        .count();
    println!(
        "crash harness result ({backend}): kills {kills}, run {:.1} s, sends acknowledged {}, send attempts {}, \
         retries answered as duplicate {}, delivered {}, acknowledged by recipients {}, \
         acks applied but answer lost to a kill {}, still waiting {}, key-log heads checked {}, \
         lost {}, duplicated {}, other violations {}",
        started.elapsed().as_secs_f64(),
        l.acked_by_relay.len(),
        l.sends_attempted,
        l.duplicate_answers,
        l.delivered.len(),
        l.acked_by_recipient.len(),
        ack_answer_lost,
        still_waiting.len(),
        heads_checked.load(Ordering::Relaxed),
        lost.len(),
        duplicated,
        l.violations.len() - duplicated,
    );
    assert!(l.acked_by_relay.len() > 20, "the load actually ran");
    assert!(
        heads_checked.load(Ordering::Relaxed) > 0,
        "the key log was watched"
    );
    assert!(lost.is_empty(), "lost {} acknowledged sends", lost.len());
    assert!(l.violations.is_empty(), "violations: {:?}", l.violations);
}

/// Records what recipient `r` was handed (checking it against what it
/// acknowledged before and the sequences seen so far), then acknowledges it.
async fn record_and_ack(
    r: usize,
    recipient: &Device,
    ledger: &Mutex<Ledger>,
    envelopes: &[Envelope],
) {
    let mut ids = Vec::new();
    {
        let mut l = ledger.lock().unwrap();
        for e in envelopes {
            let id: [u8; 16] = e.envelope[1..17].try_into().unwrap();
            if l.acked_by_recipient.contains(&(r, id)) {
                l.violations.push(format!(
                    "recipient {r}: a message it acknowledged came back (seq {})",
                    e.sequence
                ));
            }
            if let Some(prev) = l.delivered.insert((r, id), e.sequence) {
                if prev != e.sequence {
                    l.violations.push(format!(
                        "recipient {r}: one id delivered under sequences {prev} and {}",
                        e.sequence
                    ));
                }
            }
            ids.push(id);
        }
    }
    let seqs: Vec<u64> = envelopes.iter().map(|e| e.sequence).collect();
    let acked = MailboxClient::new(recipient.channel.clone())
        .ack(recipient.req(AckRequest {
            sequences: seqs,
            mailbox: vec![],
        }))
        .await;
    if acked.is_ok() {
        let mut l = ledger.lock().unwrap();
        for id in ids {
            l.acked_by_recipient.insert((r, id));
        }
    }
}

/// A receiver on a live subscription: it takes what the stream has ready
/// (up to 16 envelopes), records and acknowledges it, and subscribes again
/// from the start when a kill ends the stream.
async fn subscribe_and_ack(
    r: usize,
    recipient: Arc<Device>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    use futures::StreamExt;
    while !stop.load(Ordering::Relaxed) {
        let opened = MailboxClient::new(recipient.channel.clone())
            .subscribe(recipient.req(SubscribeRequest::default()))
            .await;
        let Ok(stream) = opened else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        while !stop.load(Ordering::Relaxed) {
            let first = match tokio::time::timeout(Duration::from_millis(100), stream.next()).await
            {
                Err(_) => continue,
                Ok(Some(Ok(e))) => e,
                Ok(_) => break,
            };
            let mut batch = vec![first];
            while batch.len() < 16 {
                match tokio::time::timeout(Duration::from_millis(2), stream.next()).await {
                    Ok(Some(Ok(e))) => batch.push(e),
                    _ => break,
                }
            }
            record_and_ack(r, &recipient, &ledger, &batch).await;
        }
    }
}
