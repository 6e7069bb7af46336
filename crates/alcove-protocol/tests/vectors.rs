//! Known-answer vectors: a seeded, deterministic setup and conversation.
//!
//! The test regenerates everything from the seed and compares with the
//! committed file, so any change to a wire format, a KDF label, a key
//! derivation or the padding shows up as a diff. After an intended change,
//! regenerate with `ALCOVE_UPDATE_VECTORS=1 cargo test -p alcove-protocol
//! --test vectors` and review the diff.

mod common;

use alcove_protocol::content::{
    self, Body, Content, Feedback, HomeworkAssignment, HomeworkSubmission, ReadReceipt, Text,
};
use alcove_protocol::fingerprint::SafetyNumber;
use alcove_protocol::invite::Invite;
use alcove_protocol::kem::{KemCiphertext, KemKeyPair, KEM_CIPHERTEXT_LEN};
use alcove_protocol::prekeys::PreKeyBundle;
use alcove_protocol::sealed_sender;
use alcove_protocol::x3dh::{self, InitialMessage};
use serde_json::{json, Value};

const SEED: u64 = 0x41_4c_43_4f_56_45; // "ALCOVE"
const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/conversation-v2.json"
);

fn content(id: u8, body: Body) -> Vec<u8> {
    content::encode(&Content {
        message_id: vec![id; 16],
        sent_at_ms: 1_700_000_000_000 + i64::from(id),
        body: Some(body),
        ..Default::default()
    })
}

fn generate() -> Value {
    let mut rng = common::rng(SEED);
    let therapist = common::Device::new(&mut rng);
    let client = common::Device::new(&mut rng);
    let bundle_bytes = client.bundle().to_bytes();
    let bundle = PreKeyBundle::from_bytes(&bundle_bytes).unwrap();

    let mut t_session = x3dh::initiate(&mut rng, &therapist.identity, &bundle).unwrap();
    let mut c_session = None;

    let script: Vec<(&str, Vec<u8>)> = vec![
        (
            "therapist",
            content(
                1,
                Body::Text(Text {
                    body: "Welcome to Alcove.".into(),
                    reply_to: vec![],
                }),
            ),
        ),
        (
            "therapist",
            content(
                2,
                Body::HomeworkAssignment(HomeworkAssignment {
                    title: "Thought record".into(),
                    instructions: "Write down one situation a day.".into(),
                    due_date: "2026-12-01".into(),
                    attachments: vec![],
                    ..Default::default()
                }),
            ),
        ),
        (
            "client",
            content(
                3,
                Body::Text(Text {
                    body: "Thank you, I will.".into(),
                    reply_to: vec![1; 16],
                }),
            ),
        ),
        (
            "client",
            content(
                4,
                Body::HomeworkSubmission(HomeworkSubmission {
                    assignment_id: vec![2; 16],
                    body: "Monday: the bus was late, I felt anxious.".into(),
                    attachments: vec![],
                }),
            ),
        ),
        (
            "therapist",
            content(
                5,
                Body::Feedback(Feedback {
                    refers_to: vec![4; 16],
                    body: "Good noticing.".into(),
                }),
            ),
        ),
        (
            "client",
            content(
                6,
                Body::ReadReceipt(ReadReceipt {
                    message_ids: vec![vec![5; 16]],
                }),
            ),
        ),
    ];

    let mut messages = Vec::new();
    for (from, plaintext) in script {
        let (sender_id, recipient) = if from == "therapist" {
            (&therapist.identity, &client.identity)
        } else {
            (&client.identity, &therapist.identity)
        };
        let session = if from == "therapist" {
            &mut t_session
        } else {
            c_session
                .as_mut()
                .expect("client replies after the first message")
        };
        let ratchet_message = session.encrypt(&mut rng, &plaintext).unwrap();
        let envelope =
            sealed_sender::seal(&mut rng, sender_id, recipient.public(), &ratchet_message).unwrap();

        // Deliver and check on the other side.
        let opened = sealed_sender::open(recipient, &envelope).unwrap();
        assert_eq!(opened.sender, *sender_id.public());
        assert_eq!(opened.message, ratchet_message);
        let decrypted = if from == "therapist" {
            match c_session.as_mut() {
                Some(s) => s.decrypt(&opened.message).unwrap(),
                None => {
                    let initial = InitialMessage::decode(&opened.message).unwrap();
                    let (s, p) = x3dh::accept(
                        &client.identity,
                        &client.signed_prekey,
                        Some(&client.one_time_prekey),
                        &opened.sender,
                        &initial,
                    )
                    .unwrap();
                    c_session = Some(s);
                    p
                }
            }
        } else {
            t_session.decrypt(&opened.message).unwrap()
        };
        assert_eq!(decrypted, plaintext);
        messages.push(json!({
            "from": from,
            "plaintext": hex::encode(&plaintext),
            "ratchet_message": hex::encode(&ratchet_message),
            "envelope": hex::encode(&envelope),
        }));
    }

    // PQXDH's pieces, so that a second implementation can check its ML-KEM
    // and its key schedule step by step: the client's prekey secrets (the
    // one-time prekey's ML-KEM seed decapsulates the first message's
    // ciphertext) and the shared secret that enters the HKDF.
    let first = hex::decode(messages[0]["ratchet_message"].as_str().unwrap()).unwrap();
    let ct_at = alcove_protocol::ratchet::INITIAL_OVERHEAD - KEM_CIPHERTEXT_LEN;
    let ct = KemCiphertext::from_bytes(&first[ct_at..ct_at + KEM_CIPHERTEXT_LEN]).unwrap();
    let otk_secret = client.one_time_prekey.to_secret_bytes();
    let kem = KemKeyPair::from_seed(&otk_secret[36..36 + 64]).unwrap();
    let shared = kem.decapsulate(&ct);

    let invite = Invite::new(
        &mut rng,
        therapist.identity.public(),
        "https://relay.example.org:8443",
        1_800_000_000,
    )
    .unwrap();
    json!({
        "description": "Alcove protocol known-answer vectors (PQXDH session setup, version 2 bundle): seeded setup and conversation",
        "seed": SEED,
        "therapist": {
            "identity": hex::encode(therapist.identity.public().to_bytes()),
            "identity_secret": hex::encode(*therapist.identity.to_secret_bytes()),
            "address": therapist.identity.public().address().to_string(),
            "fingerprint": hex::encode(therapist.identity.public().fingerprint().as_bytes()),
        },
        "client": {
            "identity": hex::encode(client.identity.public().to_bytes()),
            "identity_secret": hex::encode(*client.identity.to_secret_bytes()),
            "address": client.identity.public().address().to_string(),
            "bundle": hex::encode(&bundle_bytes),
            "signed_prekey_secret": hex::encode(&*client.signed_prekey.to_secret_bytes()),
            "one_time_prekey_secret": hex::encode(&*otk_secret),
        },
        "pqxdh": {
            "kem": "ML-KEM-768",
            "info": "Alcove/v2/PQXDH/X25519/SHA-256/ML-KEM-768",
            "kem_ciphertext": hex::encode(ct.as_bytes()),
            "kem_shared_secret": hex::encode(*shared),
        },
        "messages": messages,
        "therapist_session_state": hex::encode(&*t_session.to_bytes()),
        "safety_number": SafetyNumber::new(therapist.identity.public(), client.identity.public()).to_string(),
        "invite": invite.encode(),
    })
}

#[test]
fn vectors_match_committed_file() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("ALCOVE_UPDATE_VECTORS").is_some() {
        std::fs::write(PATH, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(PATH)
        .expect("vector file missing: run with ALCOVE_UPDATE_VECTORS=1 once");
    if committed != generated {
        let c: Value = serde_json::from_str(&committed).unwrap();
        let g: Value = serde_json::from_str(&generated).unwrap();
        for key in [
            "therapist",
            "client",
            "messages",
            "therapist_session_state",
            "safety_number",
            "invite",
        ] {
            assert_eq!(
                c[key], g[key],
                "vector field `{key}` changed: the wire format or a derivation changed"
            );
        }
        panic!("vector file differs from the regenerated vectors");
    }
}

/// The committed bytes themselves still open and decrypt with the committed
/// keys: a second check that does not go through the generator.
#[test]
fn committed_envelopes_open_with_committed_keys() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let key = |who: &str| {
        alcove_protocol::IdentityKeyPair::from_secret_bytes(
            &hex::decode(v[who]["identity_secret"].as_str().unwrap()).unwrap(),
        )
        .unwrap()
    };
    let therapist = key("therapist");
    let client = key("client");
    for m in v["messages"].as_array().unwrap() {
        let recipient = if m["from"] == "therapist" {
            &client
        } else {
            &therapist
        };
        let envelope = hex::decode(m["envelope"].as_str().unwrap()).unwrap();
        let opened = sealed_sender::open(recipient, &envelope).unwrap();
        assert_eq!(
            hex::encode(&opened.message),
            m["ratchet_message"].as_str().unwrap()
        );
        assert!(sealed_sender::is_envelope_len(envelope.len()));
    }
    let state = hex::decode(v["therapist_session_state"].as_str().unwrap()).unwrap();
    let session = alcove_protocol::Session::from_bytes(&state).unwrap();
    assert_eq!(
        session.remote_address().to_string(),
        v["client"]["address"].as_str().unwrap()
    );
    let invite = Invite::decode(v["invite"].as_str().unwrap()).unwrap();
    invite.verify(therapist.public(), 1_700_000_000).unwrap();
}
