//! Known-answer vectors: one conversation computed from a caller's
//! deterministic random source, every byte string it produces named. The
//! native build's output is committed
//! (`crates/alcove-protocol/tests/vectors/platform.json`); the browser build
//! must produce the same bytes (`bindings/alcove-wasm`'s Node test), so a platform difference (word size, endianness, a randomness or
//! encoding quirk) shows up as a named mismatch, not as a conversation
//! that fails between a phone and a browser. Not a stable API.

use rand_core::{CryptoRng, RngCore};

use crate::attachment::AttachmentEncryptor;
use crate::group::{ReceivedSenderKey, SenderKey};
use crate::identity::IdentityKeyPair;
use crate::prekeys::{OneTimePreKeyPair, PreKeyBundle, SignedPreKeyPair};
use crate::x3dh::{self, InitialMessage};
use crate::{sealed_sender, SessionError};

/// A named byte string of the conversation.
pub type Vector = (&'static str, Vec<u8>);

fn failed(step: &'static str) -> impl Fn(String) -> String {
    move |e| format!("{step}: {e}")
}

/// Runs the conversation: identities and a hybrid (PQXDH) bundle, the
/// first message and a reply (one DH ratchet step), both sessions
/// serialised, a sealed envelope, an attachment and a group message. Every
/// step is also checked on the receiving side; an error names the step.
pub fn conversation<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Vec<Vector>, String> {
    let mut out: Vec<Vector> = Vec::new();
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    out.push(("alice_identity", alice.public().to_bytes().to_vec()));
    out.push(("bob_identity", bob.public().to_bytes().to_vec()));

    let spk = SignedPreKeyPair::generate(rng, &bob, 1, 1_800_000_000);
    let otk = OneTimePreKeyPair::generate(rng, &bob, 7);
    let bundle = PreKeyBundle::new(
        bob.public().clone(),
        spk.public().clone(),
        Some(otk.public()),
    )
    .map_err(|e| failed("bundle")(e.to_string()))?;
    out.push(("bob_bundle", bundle.to_bytes()));

    let mut alice_session =
        x3dh::initiate(rng, &alice, &bundle).map_err(|e| failed("initiate")(e.to_string()))?;
    let first = alice_session
        .encrypt(rng, b"Hello, this is your therapist.")
        .map_err(|e: SessionError| failed("first message")(e.to_string()))?;
    out.push(("first_message", first.clone()));
    let initial = InitialMessage::decode(&first).map_err(|e| failed("decode")(e.to_string()))?;
    let (mut bob_session, opened) = x3dh::accept(&bob, &spk, Some(&otk), alice.public(), &initial)
        .map_err(|e| failed("accept")(e.to_string()))?;
    if opened != b"Hello, this is your therapist." {
        return Err("accept: the first message opened to other bytes".into());
    }
    let reply = bob_session
        .encrypt(rng, b"Hi, thank you.")
        .map_err(|e| failed("reply")(e.to_string()))?;
    out.push(("reply", reply.clone()));
    alice_session
        .decrypt(&reply)
        .map_err(|e| failed("decrypt reply")(e.to_string()))?;
    let second = alice_session
        .encrypt(rng, &[0x42; 1024])
        .map_err(|e| failed("second message")(e.to_string()))?;
    out.push(("second_message", second.clone()));
    bob_session
        .decrypt(&second)
        .map_err(|e| failed("decrypt second")(e.to_string()))?;
    out.push(("alice_session", alice_session.to_bytes().to_vec()));
    out.push(("bob_session", bob_session.to_bytes().to_vec()));

    let envelope = sealed_sender::seal(rng, &alice, bob.public(), &second)
        .map_err(|e| failed("seal")(e.to_string()))?;
    let unsealed =
        sealed_sender::open(&bob, &envelope).map_err(|e| failed("open")(e.to_string()))?;
    if unsealed.message != second || unsealed.sender != *alice.public() {
        return Err("open: the envelope opened to another sender or message".into());
    }
    out.push(("sealed_envelope", envelope));

    let (mut encryptor, key) = AttachmentEncryptor::new(rng);
    let worksheet: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut blob = encryptor
        .update(&worksheet)
        .map_err(|e| failed("attachment")(e.to_string()))?;
    let (tail, sealed) = encryptor
        .finish()
        .map_err(|e| failed("attachment")(e.to_string()))?;
    blob.extend_from_slice(&tail);
    out.push(("attachment_key", key.as_bytes().to_vec()));
    // 70 000 bytes span two attachment chunks; the blob itself is long, so
    // its SHA-256 stands for it.
    out.push((
        "attachment_blob_sha256",
        <sha2::Sha256 as sha2::Digest>::digest(&blob).to_vec(),
    ));
    out.push(("attachment_digest", sealed.digest.to_vec()));

    let group = crate::group::GroupId::derive(b"vector group", &[alice.public().address()]);
    let mut sender_key = SenderKey::generate(rng, &group, 1);
    let mut received =
        ReceivedSenderKey::from_distribution(&alice.public().address(), &sender_key.distribution())
            .map_err(|e| failed("sender key")(e.to_string()))?;
    let group_message = sender_key
        .encrypt(rng, &alice.public().address(), b"Welcome to the group.")
        .map_err(|e| failed("group message")(e.to_string()))?;
    received
        .decrypt(&alice.public().address(), &group_message)
        .map_err(|e| failed("group decrypt")(e.to_string()))?;
    out.push(("group_message", group_message));
    Ok(out)
}

/// Sends `messages` messages of `size` bytes from one side of an
/// established session to the other on a single sending chain (no DH
/// ratchet step between them), each one decrypted as it arrives: the
/// workload behind the "same chain" rates in `docs/benchmarks.md`, shared
/// by the native and the browser measurement.
pub fn same_chain<R: RngCore + CryptoRng>(
    rng: &mut R,
    messages: u32,
    size: usize,
) -> Result<(), String> {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let spk = SignedPreKeyPair::generate(rng, &bob, 1, 0);
    let bundle = PreKeyBundle::new(bob.public().clone(), spk.public().clone(), None)
        .map_err(|e| failed("bundle")(e.to_string()))?;
    let mut sender = x3dh::initiate(rng, &alice, &bundle).map_err(|e| e.to_string())?;
    let first = sender.encrypt(rng, b"hello").map_err(|e| e.to_string())?;
    let initial = InitialMessage::decode(&first).map_err(|e| e.to_string())?;
    let (mut receiver, _) =
        x3dh::accept(&bob, &spk, None, alice.public(), &initial).map_err(|e| e.to_string())?;
    let reply = receiver.encrypt(rng, b"hi").map_err(|e| e.to_string())?;
    sender.decrypt(&reply).map_err(|e| e.to_string())?;
    let plaintext = vec![0x5a; size];
    for _ in 0..messages {
        let wire = sender.encrypt(rng, &plaintext).map_err(|e| e.to_string())?;
        let opened = receiver.decrypt(&wire).map_err(|e| e.to_string())?;
        if opened.len() != size {
            return Err("a message opened to another length".into());
        }
    }
    Ok(())
}
