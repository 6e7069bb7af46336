//! `alcove-audit` end to end: the real relay on loopback over a real sled
//! store, real SDK clients, and the `alcove-audit` binary run on what they
//! leave behind.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use alcove_client::{Body, Client};
use alcove_server::{Config, RelayHandle};

const CANARIES: [&str; 4] = [
    "CANARY-7f3a: I have panic attacks on the night bus",
    "CANARY-51c2 breathing exercise, three times a day",
    "CANARY-9d0e my answer: the worry came back on Sunday",
    "CANARY-e11b worksheet: thought record for the week",
];

fn audit(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_alcove-audit"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.is_empty() || out.status.code() == Some(2),
        "{stderr}"
    );
    let code = out.status.code().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    if code == 2 {
        return (code, format!("{stdout}\nstderr: {stderr}"));
    }
    (code, stdout)
}

async fn relay(dir: &Path) -> RelayHandle {
    alcove_server::start(Config::for_dir(dir)).await.unwrap()
}

/// A relay on a given address (to restart it where clients expect it).
async fn relay_on(dir: &Path, listen: std::net::SocketAddr) -> RelayHandle {
    let mut config = Config::for_dir(dir);
    config.listen = listen;
    alcove_server::start(config).await.unwrap()
}

fn url(r: &RelayHandle) -> String {
    format!("http://{}", r.addr)
}

/// A therapist and a client exchange the canaries, a homework with a
/// document, and leave some of it waiting on the relay (so that mailboxes
/// and blobs hold records for the audit to classify).
async fn conversation(relay: &RelayHandle, profiles: &Path) {
    let therapist = Client::create(&profiles.join("t"), &[1; 32], &url(relay), "Dr. T")
        .await
        .unwrap();
    let client = Client::create(&profiles.join("c"), &[2; 32], &url(relay), "Sam")
        .await
        .unwrap();
    let invite = therapist
        .create_invite(Duration::from_secs(3600))
        .await
        .unwrap();
    let t = client.accept_invite(&invite).await.unwrap().address;
    let events = therapist.sync().await.unwrap();
    let c = events[0].contact;
    client.send_text(&t, CANARIES[0]).await.unwrap();
    assert_eq!(therapist.sync().await.unwrap().len(), 1);
    let worksheet = profiles.join("worksheet.txt");
    std::fs::write(&worksheet, CANARIES[3].repeat(2000)).unwrap();
    let pointer = therapist
        .upload_file(&worksheet, "text/plain", |_, _| {})
        .await
        .unwrap();
    let hw = therapist
        .assign_homework(&c, "Week 1", CANARIES[1], None, vec![pointer])
        .await
        .unwrap();
    // The client has not synced: the assignment waits, sealed, on the
    // relay; so does the answer the client sends.
    client
        .submit_homework(&t, &hw, CANARIES[2], vec![])
        .await
        .unwrap();
    let got = client.sync().await.unwrap();
    assert!(matches!(got[0].body(), Some(Body::HomeworkAssignment(_))));
    client
        .send_text(&t, &format!("{} (again)", CANARIES[0]))
        .await
        .unwrap();
}

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test]
async fn a_real_conversation_leaves_a_clean_store_and_a_planted_record_fails_it() {
    let data = tempfile::tempdir().unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let r = relay(data.path()).await;
    conversation(&r, profiles.path()).await;
    r.shutdown().await.unwrap();

    let dir = data.path().to_str().unwrap();
    let mut args = vec!["store", dir, "--json"];
    for c in CANARIES {
        args.extend(["--canary", c]);
    }
    let (code, out) = audit(&args);
    let json = report(&out);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json["clean"], true);
    assert!(json["findings"].as_array().unwrap().is_empty());
    // Every canary searched, in every encoding, and absent.
    let canaries = json["canaries"].as_array().unwrap();
    assert_eq!(canaries.len(), CANARIES.len());
    for c in canaries {
        assert!(c["hits"].as_array().unwrap().is_empty(), "{c}");
        assert!(c["encodings"].as_array().unwrap().len() >= 5);
    }
    assert!(json["bytes_scanned"].as_u64().unwrap() > 100_000);
    // The audit really looked at ciphertext: envelopes waiting, the
    // document's chunks, the devices' keys and the key log.
    let trees = &json["trees"];
    assert!(
        trees["mailboxes"]["classes"]["sealed envelope"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        trees["blob_chunks"]["classes"]["encrypted attachment chunk"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(trees["devices"]["classes"]["public keys"], 2);
    assert!(
        trees["devices"]["classes"]["public keys (key log)"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        trees["mailboxes"]["classes"]["idempotency key (sequence, time)"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(json["keylog"]["size"].as_u64().unwrap() >= 2);

    // The human report says the same.
    let (code, human) = audit(&["store", dir, "--canary", CANARIES[0]]);
    assert_eq!(code, 0);
    assert!(human.starts_with("Alcove store audit: CLEAN"), "{human}");
    assert!(human.contains("absent"));

    let planted_head;
    // A relay that kept one plaintext: a mailbox record that has the
    // envelope's size and version byte but plaintext inside, and a tree
    // of notes. The audit fails and names both.
    {
        let db = sled::open(data.path()).unwrap();
        let mut value = vec![1u8];
        value.extend_from_slice(&1_800_000_000_000i64.to_be_bytes());
        value.extend_from_slice(&[0x5c; 16]);
        let mut envelope = vec![1u8];
        envelope.extend_from_slice(CANARIES[0].as_bytes());
        envelope.resize(alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN, b' ');
        value.extend_from_slice(&envelope);
        db.open_tree("mailboxes")
            .unwrap()
            .insert(key_of(0xEE, 7), value)
            .unwrap();
        db.open_tree("notes")
            .unwrap()
            .insert(b"session-3", CANARIES[2].as_bytes())
            .unwrap();
        // Records that pass one by one but not together: a mailbox head
        // whose depth is not what waits; and an attachment chunk of random
        // bytes with a 20-character piece of a canary inside (the
        // randomness test lets that through; the piece search does not).
        let mailboxes = db.open_tree("mailboxes").unwrap();
        let (head_key, head) = mailboxes
            .iter()
            .map(|r| r.unwrap())
            .find(|(k, _)| k.len() == 33)
            .expect("a mailbox head");
        let mut wrong = head.to_vec();
        wrong[16] = wrong[16].wrapping_add(5);
        mailboxes.insert(&head_key, wrong).unwrap();
        planted_head = hex::encode(&head_key[..32]);
        let mut chunk = vec![1u8];
        let mut noise = vec![0u8; 4096];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut noise);
        let piece = &CANARIES[1][13..33];
        noise[2000..2000 + piece.len()].copy_from_slice(piece.as_bytes());
        chunk.extend_from_slice(&noise);
        db.open_tree("blob_chunks")
            .unwrap()
            .insert([0x77u8; 20], chunk)
            .unwrap();
        db.flush().unwrap();
    }
    let mut args = vec!["store", dir, "--json"];
    for c in CANARIES {
        args.extend(["--canary", c]);
    }
    let (code, out) = audit(&args);
    assert_eq!(code, 1, "{out}");
    let json = report(&out);
    assert_eq!(json["clean"], false);
    let findings = json["findings"].as_array().unwrap();
    let named: Vec<(String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["tree"].as_str().unwrap().to_string(),
                f["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(named.contains(&("mailboxes".into(), hex::encode(key_of(0xEE, 7)))));
    assert!(named.contains(&("notes".into(), hex::encode(b"session-3"))));
    assert!(
        findings.iter().any(|f| f["tree"] == "mailbox_heads"
            && f["key"] == planted_head.as_str()
            && f["reason"].as_str().unwrap().contains("messages wait")),
        "{findings:?}"
    );
    // The head is named twice (its depth is off, and beyond the messages
    // ever accepted); nothing else is flagged.
    assert_eq!(findings.len(), 4, "nothing else is flagged: {findings:?}");
    let found: Vec<&str> = json["canaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["hits"].as_array().unwrap().is_empty())
        .map(|c| c["canary"].as_str().unwrap())
        .collect();
    assert_eq!(found, [CANARIES[0], CANARIES[1], CANARIES[2]]);
    let piece_hit = &json["canaries"][1]["hits"][0];
    assert!(!piece_hit["file"].as_str().unwrap().is_empty());
    assert!(CANARIES[1].contains(piece_hit["fragment"].as_str().unwrap()));
    let (_, human) = audit(&["store", dir, "--canary", CANARIES[0]]);
    println!("{human}");
    assert!(human.starts_with("Alcove store audit: FAILED"), "{human}");
    assert!(human.contains("FAIL notes key"));
}

fn key_of(byte: u8, seq: u64) -> Vec<u8> {
    let mut k = vec![byte; 32];
    k.push(alcove_store::mailbox_tag::MESSAGE);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

async fn register(relay: &RelayHandle, profiles: &Path, name: &str) -> Client {
    Client::create(&profiles.join(name), &[5; 32], &url(relay), name)
        .await
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

// Multi-threaded: the audit binary runs (blocking this thread) while the
// relay in this process answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_audit_follows_growth_across_restarts_and_catches_a_fork() {
    let data = tempfile::tempdir().unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("audit-state.json");
    let state = state.to_str().unwrap();

    let r = relay(data.path()).await;
    register(&r, profiles.path(), "a").await;
    register(&r, profiles.path(), "b").await;
    r.shutdown().await.unwrap();
    // A copy of the store as it is now: later it grows a different history
    // under the same log key (an operator showing two logs).
    let fork_dir = tempfile::tempdir().unwrap();
    copy_dir(data.path(), fork_dir.path());

    let r = relay(data.path()).await;
    let listen = r.addr;
    let c = register(&r, profiles.path(), "c").await;
    let address = c.address().to_string();
    let (code, out) = audit(&[
        "log",
        "--server",
        &url(&r),
        "--state",
        state,
        "--address",
        &address,
        "--mirror",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let first = report(&out);
    assert_eq!(first["current"]["size"], 3);
    assert_eq!(first["pinned_now"], true);
    assert_eq!(first["mirrored"], serde_json::json!([3, true]));
    assert_eq!(first["devices"][0]["index"], 2);
    assert!(first["devices"][0]["error"].is_null());
    r.shutdown().await.unwrap();

    // Restart (the log and its key persist), then more registrations and
    // a key change.
    let r = relay_on(data.path(), listen).await;
    register(&r, profiles.path(), "d").await;
    c.rotate_signed_prekey()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, out) = audit(&[
        "log",
        "--server",
        &url(&r),
        "--state",
        state,
        "--address",
        &address,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let second = report(&out);
    assert_eq!(second["pinned_now"], false);
    assert_eq!(second["previous"]["size"], 3);
    assert_eq!(second["current"]["size"], 5);
    assert_eq!(second["consistent"], true);
    assert_eq!(second["log_key"], first["log_key"]);
    assert_eq!(second["devices"][0]["epoch"], 1);
    assert_eq!(second["devices"][0]["index"], 4);
    let (code, human) = audit(&["log", "--server", &url(&r), "--state", state]);
    assert_eq!(code, 0);
    assert!(
        human.contains("consistency with the previous head: verified"),
        "{human}"
    );
    r.shutdown().await.unwrap();
    let saved = std::fs::read(state).unwrap();

    // The forked store: same log key, same first two entries, then other
    // registrations. It is signed correctly and grows, but it is not an
    // extension of what the auditor saw.
    let f = relay(fork_dir.path()).await;
    for name in ["x", "y", "z", "w"] {
        register(&f, profiles.path(), name).await;
    }
    let (code, out) = audit(&["log", "--server", &url(&f), "--state", state, "--json"]);
    assert_eq!(code, 1, "{out}");
    let forked = report(&out);
    assert_eq!(forked["ok"], false);
    assert_eq!(forked["consistent"], false);
    assert!(out.contains("forked"), "{out}");
    assert_eq!(
        std::fs::read(state).unwrap(),
        saved,
        "a failed audit records nothing"
    );
    let (code, human) = audit(&["log", "--server", &url(&f), "--state", state]);
    assert_eq!(code, 1);
    assert!(human.starts_with("Alcove key log audit: FAILED"), "{human}");
    f.shutdown().await.unwrap();

    // A relay with another log key altogether.
    let other = tempfile::tempdir().unwrap();
    let o = relay(other.path()).await;
    let (code, out) = audit(&["log", "--server", &url(&o), "--state", state]);
    assert_eq!(code, 1);
    assert!(out.contains("is not the pinned key"), "{out}");
    o.shutdown().await.unwrap();
}

/// The PostgreSQL audit: a real conversation through a relay on
/// PostgreSQL audits CLEAN, read by a role that may only read; a planted
/// plaintext row, an undocumented column and an undocumented table each
/// fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_audits_clean_read_only_and_a_planted_row_fails_it() {
    let Some(base) = alcove_store::testing::postgres_url("the PostgreSQL store audit") else {
        return;
    };
    let schema = alcove_store::testing::TestSchema::create(&base).await;
    let dir = tempfile::tempdir().unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(dir.path());
    config.store = Some(schema.url().to_owned());
    config.secrets_file = Some(schema.secrets_file());
    let r = alcove_server::start(config).await.unwrap();
    conversation(&r, profiles.path()).await;
    r.shutdown().await.unwrap();

    // A role that can read this schema and nothing else.
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let role = format!("alcove_auditor_{:08x}", rand::random::<u32>());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA {s} TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role};",
            s = schema.name()
        ))
        .await
        .unwrap();
    let Some((_, after_user)) = schema.url().split_once('@') else {
        panic!("a URL with a user: {}", schema.url());
    };
    let auditor_url = format!("postgres://{role}@{after_user}");

    let mut args = vec!["store", "--postgres", &auditor_url, "--json"];
    for c in CANARIES {
        args.extend(["--canary", c]);
    }
    let (code, out) = audit(&args);
    let json = report(&out);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json["clean"], true);
    let tables = &json["trees"];
    assert!(
        tables["mailboxes"]["classes"]["sealed envelope"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        tables["blob_chunks"]["classes"]["encrypted attachment chunk"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(tables["devices"]["classes"]["public keys"], 2);
    assert!(json["keylog"]["size"].as_u64().unwrap() >= 2);
    assert!(json["bytes_scanned"].as_u64().unwrap() > 100_000);
    assert!(
        !out.contains(&format!("{role}:")),
        "no password or user info beyond the name"
    );
    // The auditor's role cannot write.
    let (ro, conn) = tokio_postgres::connect(&auditor_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert!(ro.batch_execute("DELETE FROM meta").await.is_err());
    drop(ro);

    // What a careless relay version might leave: a plaintext row shaped
    // like an envelope, a notes column, a table of its own.
    let owner = {
        let (c, conn) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    };
    let address: Vec<u8> = owner
        .query_one("SELECT address FROM devices LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    let mut envelope = vec![alcove_protocol::sealed_sender::ENVELOPE_VERSION];
    envelope.extend_from_slice(CANARIES[2].as_bytes());
    envelope.resize(alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN, b' ');
    owner
        .execute(
            "INSERT INTO mailboxes VALUES ($1, 1000000, 1700000000000, $2, $3)",
            &[&address, &vec![0x5cu8; 16], &envelope],
        )
        .await
        .unwrap();
    owner
        .batch_execute(&format!(
            "ALTER TABLE devices ADD COLUMN note TEXT;
             CREATE TABLE session_notes (body TEXT);
             INSERT INTO session_notes VALUES ('{}');
             GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {role};",
            CANARIES[3],
            schema.name()
        ))
        .await
        .unwrap();
    let (code, out) = audit(&args);
    assert_eq!(code, 1, "{out}");
    let json = report(&out);
    let findings = json["findings"].as_array().unwrap();
    let has = |table: &str, reason: &str| {
        findings
            .iter()
            .any(|f| f["tree"] == table && f["reason"].as_str().unwrap().contains(reason))
    };
    assert!(has("mailboxes", "printable ASCII"), "{findings:?}");
    assert!(has(
        "devices",
        "a column the documented schema does not have"
    ));
    assert!(has(
        "session_notes",
        "a table the documented schema does not have"
    ));
    let found: Vec<&str> = json["canaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["hits"].as_array().unwrap().is_empty())
        .map(|c| c["canary"].as_str().unwrap())
        .collect();
    assert_eq!(found, [CANARIES[2], CANARIES[3]]);
    let (_, human) = audit(&["store", "--postgres", &auditor_url]);
    assert!(human.starts_with("Alcove store audit: FAILED"), "{human}");

    drop(owner);
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .await
        .unwrap();
}

/// A path that is not an Alcove store is an error (exit 2, a message
/// naming the path), never a clean report: an empty directory, a directory
/// of other files, and a sled database of something else.
#[test]
fn the_store_audit_refuses_what_is_not_a_store() {
    let empty = tempfile::tempdir().unwrap();
    let (code, out) = audit(&["store", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not an Alcove store"), "{out}");

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), "session notes").unwrap();
    let (code, out) = audit(&["store", other.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("\"clean\""), "no report at all: {out}");

    let foreign = tempfile::tempdir().unwrap();
    {
        let db = sled::open(foreign.path()).unwrap();
        db.insert("k", "v").unwrap();
        db.flush().unwrap();
    }
    let (code, out) = audit(&["store", foreign.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not an Alcove store"), "{out}");

    let missing = empty.path().join("nowhere");
    let (code, _) = audit(&["store", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
}

/// Delivery policies are classified; a policy for an unknown address, and
/// a mailbox record that carries another device's address (a link from
/// sender to recipient), are findings.
#[tokio::test]
async fn delivery_policies_are_audited_and_a_sender_link_is_a_finding() {
    let data = tempfile::tempdir().unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let r = relay(data.path()).await;
    let therapist = register(&r, profiles.path(), "t").await;
    let client = register(&r, profiles.path(), "c").await;
    drop(client);
    r.shutdown().await.unwrap();
    let dir = data.path().to_str().unwrap();
    let (code, out) = audit(&["store", dir, "--json"]);
    assert_eq!(code, 0, "{out}");
    let json = report(&out);
    assert_eq!(
        json["trees"]["devices"]["classes"]["delivery policy (key verifier)"], 2,
        "{out}"
    );
    {
        let db = sled::open(data.path()).unwrap();
        // A policy for an address nobody registered.
        let mut key = vec![alcove_store::device_tag::DELIVERY];
        key.extend_from_slice(&[0xAB; 32]);
        let mut value = vec![1u8, 1u8];
        value.extend_from_slice(&[7; 32]);
        db.open_tree("devices").unwrap().insert(key, value).unwrap();
        // An envelope (random, of a valid size) in some mailbox that has
        // the therapist's address inside: a record naming its sender.
        let mut envelope = vec![0u8; alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut envelope);
        envelope[0] = 1;
        envelope[100..132].copy_from_slice(therapist.address().as_bytes());
        let mut value = vec![1u8];
        value.extend_from_slice(&1_800_000_000_000i64.to_be_bytes());
        value.extend_from_slice(&[0x5c; 16]);
        value.extend_from_slice(&envelope);
        db.open_tree("mailboxes")
            .unwrap()
            .insert(key_of(0xEE, 1), value)
            .unwrap();
        db.flush().unwrap();
    }
    let (code, out) = audit(&["store", dir, "--json"]);
    assert_eq!(code, 1, "{out}");
    let findings = report(&out)["findings"].as_array().unwrap().clone();
    assert!(
        findings
            .iter()
            .any(|f| f["reason"].as_str().unwrap().contains("link a sender")
                && f["key"] == hex::encode(key_of(0xEE, 1)).as_str()),
        "{findings:?}"
    );
    assert!(
        findings.iter().any(|f| f["reason"]
            .as_str()
            .unwrap()
            .contains("delivery policy for an address no device registered")),
        "{findings:?}"
    );
}

/// The PostgreSQL side of the same rule: a schema without Alcove's tables
/// (a mistyped URL or search path) is an error, not a clean report.
#[tokio::test]
async fn an_empty_postgres_schema_is_not_a_store() {
    let Some(base) = alcove_store::testing::postgres_url("the empty-schema audit") else {
        return;
    };
    let schema = alcove_store::testing::TestSchema::create(&base).await;
    let (code, out) = audit(&["store", "--postgres", schema.url()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not an Alcove store"), "{out}");
}
