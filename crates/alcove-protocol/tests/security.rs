//! Security properties, each as a test that fails if the property breaks.

mod common;

use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::limits::{MAX_SKIPPED_KEYS, MAX_SKIP_PER_CHAIN};
use alcove_protocol::prekeys::{
    PreKeyBundle, SignedPreKeyPair, HYBRID_ONE_TIME_PREKEY_LEN, HYBRID_SIGNED_PREKEY_LEN,
};
use alcove_protocol::sealed_sender;
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{KeyError, SealError, Session, SessionError};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn forward_secrecy_used_keys_are_gone() {
    let mut rng = common::rng(1);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
    let m1 = alice.encrypt(&mut rng, b"session notes").unwrap();
    let m2 = alice.encrypt(&mut rng, b"more").unwrap();
    // m2 first: m1's key is kept as skipped, then used and deleted.
    bob.decrypt(&m2).unwrap();
    assert_eq!(bob.skipped_key_count(), 1);
    bob.decrypt(&m1).unwrap();
    assert_eq!(bob.skipped_key_count(), 0);
    // Whoever steals the state now (saved to disk, restored) cannot open
    // either message.
    let mut stolen = Session::from_bytes(&bob.to_bytes()).unwrap();
    assert!(stolen.decrypt(&m1).is_err());
    assert!(stolen.decrypt(&m2).is_err());
}

#[test]
fn post_compromise_security_after_a_round_trip() {
    let mut rng = common::rng(2);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
    // An attacker copies Bob's whole state.
    let mut stolen = Session::from_bytes(&bob.to_bytes()).unwrap();
    // The current chain is exposed, as expected.
    let exposed = alice.encrypt(&mut rng, b"exposed").unwrap();
    assert_eq!(stolen.decrypt(&exposed).unwrap(), b"exposed");
    bob.decrypt(&exposed).unwrap();
    // One DH round trip: Bob replies, Alice answers.
    let r = bob.encrypt(&mut rng, b"reply").unwrap();
    alice.decrypt(&r).unwrap();
    let healed = alice.encrypt(&mut rng, b"after the round trip").unwrap();
    assert_eq!(bob.decrypt(&healed).unwrap(), b"after the round trip");
    // Alice's new chain is keyed with Bob's new private ratchet key, which
    // the stolen state never saw: it cannot open the message.
    assert_eq!(stolen.decrypt(&healed), Err(SessionError::DecryptionFailed));
}

#[test]
fn skip_bound_and_eviction() {
    let mut rng = common::rng(3);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
    let extra = 100;
    let messages: Vec<Vec<u8>> = (0..MAX_SKIPPED_KEYS + extra + 1)
        .map(|i| alice.encrypt(&mut rng, &(i as u32).to_be_bytes()).unwrap())
        .collect();
    // Deliver only the last: every earlier key is derived, the oldest
    // `extra` are evicted.
    bob.decrypt(messages.last().unwrap()).unwrap();
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS);
    for m in &messages[..extra] {
        assert_eq!(bob.decrypt(m), Err(SessionError::DuplicateMessage));
    }
    assert_eq!(
        bob.decrypt(&messages[extra]).unwrap(),
        (extra as u32).to_be_bytes()
    );
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS - 1);
}

#[test]
fn too_many_skipped_is_refused_without_change() {
    let mut rng = common::rng(4);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
    let next = alice.encrypt(&mut rng, b"next").unwrap();
    let mut far = Vec::new();
    for _ in 0..MAX_SKIP_PER_CHAIN + 1 {
        far = alice.encrypt(&mut rng, b"far").unwrap();
    }
    let before = bob.to_bytes();
    assert!(matches!(
        bob.decrypt(&far),
        Err(SessionError::TooManySkipped { .. })
    ));
    assert_eq!(*before, *bob.to_bytes());
    assert_eq!(bob.decrypt(&next).unwrap(), b"next");
}

#[test]
fn sealed_envelope_names_neither_party_nor_the_plaintext() {
    let mut rng = common::rng(5);
    let a = IdentityKeyPair::generate(&mut rng);
    let b = IdentityKeyPair::generate(&mut rng);
    let plaintext = b"I have been feeling low since Tuesday.";
    let env = sealed_sender::seal(&mut rng, &a, b.public(), plaintext).unwrap();
    for id in [a.public(), b.public()] {
        let bytes = id.to_bytes();
        assert!(
            !contains(&env, &bytes[..32]),
            "Ed25519 identity key in envelope"
        );
        assert!(
            !contains(&env, &bytes[32..64]),
            "X25519 identity key in envelope"
        );
        assert!(
            !contains(&env, id.address().as_bytes()),
            "address in envelope"
        );
        assert!(
            !contains(&env, id.fingerprint().as_bytes()),
            "fingerprint in envelope"
        );
    }
    assert!(!contains(&env, b"feeling low"));
    let opened = sealed_sender::open(&b, &env).unwrap();
    assert_eq!(opened.sender, *a.public());
    assert_eq!(opened.message, plaintext);
    // Not addressed to a third party.
    let c = IdentityKeyPair::generate(&mut rng);
    assert_eq!(
        sealed_sender::open(&c, &env).unwrap_err(),
        SealError::DecryptionFailed
    );
}

#[test]
fn sealed_envelope_sizes_fall_in_buckets() {
    let mut rng = common::rng(6);
    let a = IdentityKeyPair::generate(&mut rng);
    let b = IdentityKeyPair::generate(&mut rng);
    let mut sizes = std::collections::BTreeSet::new();
    for len in [0, 1, 100, 254, 255, 256, 900, 1023, 1024, 3000, 5000] {
        let env = sealed_sender::seal(&mut rng, &a, b.public(), &vec![1; len]).unwrap();
        assert!(sealed_sender::is_envelope_len(env.len()));
        sizes.insert(env.len());
    }
    // Padded as if each carried the 1 258-byte PQXDH prefix: 2 KiB (up to
    // 256 bytes), 4 KiB (900 to 1 024) and 16 KiB (3 000 and 5 000).
    assert_eq!(
        sizes.len(),
        3,
        "11 lengths should land in 3 buckets: {sizes:?}"
    );
}

/// Builds an envelope by the documented construction, with whatever the
/// forger can compute. With the real sender's secret it must open (so the
/// construction is right); with anyone else's it must not.
fn forge(
    rng: &mut rand_chacha::ChaCha20Rng,
    claimed: &alcove_protocol::PublicIdentity,
    static_secret: [u8; 32],
    recipient: &alcove_protocol::PublicIdentity,
    message: &[u8],
) -> Vec<u8> {
    use rand_core::RngCore;
    let mut e = [0u8; 32];
    rng.fill_bytes(&mut e);
    let e_pub = x25519_dalek::x25519(e, x25519_dalek::X25519_BASEPOINT_BYTES);
    let r = *recipient.dh_key().as_bytes();
    let dh_e = x25519_dalek::x25519(e, r);
    let mut salt = e_pub.to_vec();
    salt.extend_from_slice(&r);
    let mut okm = [0u8; 64];
    Hkdf::<Sha256>::new(Some(&salt), &dh_e)
        .expand(b"Alcove/v1/sealed-sender/ephemeral", &mut okm)
        .unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&e_pub);
    let mut ad1 = vec![1u8];
    ad1.extend_from_slice(&e_pub);
    ad1.extend_from_slice(&r);
    let mut ident = claimed.to_bytes().to_vec();
    let tag = ChaCha20Poly1305::new(okm[32..].into())
        .encrypt_in_place_detached(&Nonce::default(), &ad1, &mut ident)
        .unwrap();
    out.extend_from_slice(&ident);
    out.extend_from_slice(&tag);
    let dh_s = x25519_dalek::x25519(static_secret, r);
    let mut salt2 = okm[..32].to_vec();
    salt2.extend_from_slice(&out[33..]);
    let mut k2 = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&salt2), &dh_s)
        .expand(b"Alcove/v1/sealed-sender/static", &mut k2)
        .unwrap();
    let mut body = alcove_protocol::padding::pad(message).unwrap();
    let mut ad = out.clone();
    ad.resize(192, 0);
    let tag2 = ChaCha20Poly1305::new((&k2).into())
        .encrypt_in_place_detached(&Nonce::default(), &ad, &mut body)
        .unwrap();
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag2);
    out
}

#[test]
fn forged_sender_identity_is_rejected() {
    let mut rng = common::rng(7);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let mallory = IdentityKeyPair::generate(&mut rng);
    let alice_dh = <[u8; 32]>::try_from(&alice.to_secret_bytes()[32..]).unwrap();
    let mallory_dh = <[u8; 32]>::try_from(&mallory.to_secret_bytes()[32..]).unwrap();

    // Control: the construction with Alice's real secret opens as Alice.
    let genuine = forge(&mut rng, alice.public(), alice_dh, bob.public(), b"hi");
    assert_eq!(
        sealed_sender::open(&bob, &genuine).unwrap().sender,
        *alice.public()
    );

    // Mallory claims to be Alice but only has her own secret.
    let forged = forge(&mut rng, alice.public(), mallory_dh, bob.public(), b"hi");
    assert_eq!(
        sealed_sender::open(&bob, &forged).unwrap_err(),
        SealError::DecryptionFailed
    );
}

#[test]
fn initial_message_must_name_the_sealed_sender() {
    let mut rng = common::rng(8);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let m = common::Device::new(&mut rng);
    let mut alice = x3dh::initiate(&mut rng, &a.identity, &b.bundle()).unwrap();
    let wire = alice.encrypt(&mut rng, b"hello").unwrap();
    let initial = InitialMessage::decode(&wire).unwrap();
    let err = x3dh::accept(
        &b.identity,
        &b.signed_prekey,
        Some(&b.one_time_prekey),
        m.identity.public(),
        &initial,
    )
    .unwrap_err();
    assert_eq!(err, SessionError::SenderMismatch);
}

#[test]
fn x3dh_refuses_wrong_or_missing_prekeys() {
    let mut rng = common::rng(9);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let mut alice = x3dh::initiate(&mut rng, &a.identity, &b.bundle()).unwrap();
    let wire = alice.encrypt(&mut rng, b"hello").unwrap();
    let initial = InitialMessage::decode(&wire).unwrap();
    assert_eq!(initial.one_time_prekey_id(), Some(100));
    let other_spk = SignedPreKeyPair::generate(&mut rng, &b.identity, 2, 0);
    assert!(matches!(
        x3dh::accept(
            &b.identity,
            &other_spk,
            Some(&b.one_time_prekey),
            a.identity.public(),
            &initial
        ),
        Err(SessionError::Key(KeyError::UnknownPreKey(_)))
    ));
    assert!(matches!(
        x3dh::accept(
            &b.identity,
            &b.signed_prekey,
            None,
            a.identity.public(),
            &initial
        ),
        Err(SessionError::Key(KeyError::UnknownPreKey(_)))
    ));
    // Without a one-time prekey in the bundle, X3DH uses three DHs.
    let bundle = PreKeyBundle::new(
        b.identity.public().clone(),
        b.signed_prekey.public().clone(),
        None,
    )
    .unwrap();
    let mut alice = x3dh::initiate(&mut rng, &a.identity, &bundle).unwrap();
    let initial = InitialMessage::decode(&alice.encrypt(&mut rng, b"no otk").unwrap()).unwrap();
    assert_eq!(initial.one_time_prekey_id(), None);
    let (_, p) = x3dh::accept(
        &b.identity,
        &b.signed_prekey,
        None,
        a.identity.public(),
        &initial,
    )
    .unwrap();
    assert_eq!(p, b"no otk");
}

#[test]
fn bundle_verification_rejects_bad_signatures_and_keys() {
    let mut rng = common::rng(10);
    let b = common::Device::new(&mut rng);
    let good = b.bundle().to_bytes();
    assert!(PreKeyBundle::from_bytes(&good).is_ok());

    assert_eq!(good[0], 2, "a hybrid bundle is version 2");
    // Any flipped bit in the identity or the hybrid signed prekey (its
    // ML-KEM key included) fails verification.
    for pos in 1..1 + 128 + HYBRID_SIGNED_PREKEY_LEN {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        assert!(
            PreKeyBundle::from_bytes(&bad).is_err(),
            "byte {pos} not covered"
        );
    }
    // A signed prekey signed by someone else.
    let other = IdentityKeyPair::generate(&mut rng);
    let foreign = SignedPreKeyPair::generate(&mut rng, &other, 1, 0);
    assert_eq!(
        PreKeyBundle::new(b.identity.public().clone(), foreign.public().clone(), None).unwrap_err(),
        KeyError::BadSignature("signed prekey")
    );
    // So does any flipped bit in the hybrid one-time prekey.
    for pos in good.len() - HYBRID_ONE_TIME_PREKEY_LEN..good.len() {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        assert!(
            PreKeyBundle::from_bytes(&bad).is_err(),
            "byte {pos} not covered"
        );
    }
    // Low-order and off-curve one-time prekeys.
    let otk_at = good.len() - HYBRID_ONE_TIME_PREKEY_LEN + 4;
    let mut low = good.clone();
    low[otk_at..otk_at + 32].copy_from_slice(&[0u8; 32]);
    assert!(matches!(
        PreKeyBundle::from_bytes(&low),
        Err(KeyError::InvalidPublicKey(_))
    ));
    let mut low1 = good.clone();
    let mut one = [0u8; 32];
    one[0] = 1;
    low1[otk_at..otk_at + 32].copy_from_slice(&one);
    assert!(matches!(
        PreKeyBundle::from_bytes(&low1),
        Err(KeyError::InvalidPublicKey(_))
    ));
    // Unsupported version and truncation.
    let mut v3 = good.clone();
    v3[0] = 3;
    assert!(PreKeyBundle::from_bytes(&v3).is_err());
    // A hybrid bundle relabelled as classical does not parse either.
    let mut v1 = good.clone();
    v1[0] = 1;
    assert!(PreKeyBundle::from_bytes(&v1).is_err());
    assert!(PreKeyBundle::from_bytes(&good[..good.len() - 1]).is_err());
}

#[test]
fn secrets_never_reach_debug() {
    let mut rng = common::rng(11);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (alice, _) = common::pair(&mut rng, &a, &b);
    let secret_hex = hex::encode(*a.identity.to_secret_bytes());
    let state_hex = hex::encode(&*alice.to_bytes());
    for printed in [
        format!("{:?}", a.identity),
        format!("{:?}", a.signed_prekey),
        format!("{:?}", a.one_time_prekey),
        format!("{alice:?}"),
    ] {
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains(&secret_hex[..16]), "{printed}");
        assert!(!printed.contains(&secret_hex[64..80]), "{printed}");
        // No 16-hex-digit run of the serialized state either.
        for chunk in state_hex
            .as_bytes()
            .chunks(16)
            .map(|c| std::str::from_utf8(c).unwrap())
        {
            if chunk.len() == 16 {
                assert!(!printed.contains(chunk));
            }
        }
    }
    // The session's Debug output is pinned.
    assert_eq!(
        format!("{alice:?}"),
        format!(
            "Session {{ remote: {:?}, sent: 1, received: 0, skipped_keys: 0, awaiting_reply: true, secrets: \"<redacted>\" }}",
            b.identity.public().address()
        )
    );
}

#[test]
fn session_state_round_trips_and_rejects_garbage() {
    let mut rng = common::rng(12);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
    let skipped = alice.encrypt(&mut rng, b"late").unwrap();
    let m = alice.encrypt(&mut rng, b"now").unwrap();
    bob.decrypt(&m).unwrap();
    let saved = bob.to_bytes();
    let mut restored = Session::from_bytes(&saved).unwrap();
    assert_eq!(restored.decrypt(&skipped).unwrap(), b"late");
    let r = restored.encrypt(&mut rng, b"from restored").unwrap();
    assert_eq!(alice.decrypt(&r).unwrap(), b"from restored");
    // A newer version and truncations are refused with a typed error.
    let mut future = saved.to_vec();
    future[1] = 99;
    assert!(matches!(
        Session::from_bytes(&future),
        Err(SessionError::Decode(_))
    ));
    for cut in [0, 1, 2, 10, saved.len() / 2, saved.len() - 1] {
        assert!(Session::from_bytes(&saved[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn wrong_session_for_initial_message() {
    let mut rng = common::rng(13);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (_alice1, mut bob1) = common::pair(&mut rng, &a, &b);
    // A second, independent session from Alice (another base key).
    let mut alice2 = x3dh::initiate(&mut rng, &a.identity, &b.bundle()).unwrap();
    let other = alice2.encrypt(&mut rng, b"other").unwrap();
    assert_eq!(bob1.decrypt(&other), Err(SessionError::WrongSession));
}

/// A session restored from an old copy (a profile backup, a cloned phone)
/// encrypts again at chain indices it already used. The message keys are
/// the same, so with a fixed nonce the two ciphertexts would XOR to the two
/// plaintexts' XOR (and the inner layer could be forged). The random
/// per-message nonce must prevent that.
#[test]
fn a_restored_copy_never_reuses_a_key_and_nonce() {
    let mut rng = common::rng(41);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let (mut alice, mut bob) = common::pair(&mut rng, &a, &b);
    let r = bob.encrypt(&mut rng, b"reply").unwrap();
    alice.decrypt(&r).unwrap();
    // The sending chain exists when the copy is taken: both copies go on
    // from the same chain key.
    let m0 = alice.encrypt(&mut rng, b"before the backup").unwrap();
    bob.decrypt(&m0).unwrap();
    let backup = alice.to_bytes();
    let first_plain = b"I felt better after Tuesday's session";
    let second_plain = b"Please cancel my appointment tomorrow";
    let first = alice.encrypt(&mut rng, first_plain).unwrap();
    let mut restored = Session::from_bytes(&backup).unwrap();
    let second = restored.encrypt(&mut rng, second_plain).unwrap();
    assert_eq!(first.len(), second.len());
    let body = |m: &[u8]| m[m.len() - 16 - first_plain.len()..m.len() - 16].to_vec();
    let xor_ct: Vec<u8> = body(&first)
        .iter()
        .zip(body(&second))
        .map(|(x, y)| x ^ y)
        .collect();
    let xor_pt: Vec<u8> = first_plain
        .iter()
        .zip(second_plain)
        .map(|(x, y)| x ^ y)
        .collect();
    assert_ne!(xor_ct, xor_pt, "a (key, nonce) pair was used twice");
    // The peer opens the first; the second reuses an index it has consumed
    // and is refused, never mistaken for the first.
    assert_eq!(bob.decrypt(&first).unwrap(), first_plain);
    assert_eq!(bob.decrypt(&second), Err(SessionError::DuplicateMessage));
}

/// A first message (with its X3DH prefix) and a later message with the
/// same content are the same size on the relay, on both sides of every
/// bucket boundary: the relay cannot spot new or unanswered conversations.
#[test]
fn first_and_later_messages_of_equal_length_share_a_bucket() {
    use alcove_protocol::limits::PADDING_BUCKETS;
    use alcove_protocol::ratchet::{INITIAL_OVERHEAD, MESSAGE_OVERHEAD};
    let mut rng = common::rng(40);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let bundle = b.bundle();
    let (mut later_session, mut bob) = common::pair(&mut rng, &a, &b);
    // Once Bob has answered, Alice's messages no longer carry the prefix.
    let reply = bob.encrypt(&mut rng, b"hello").unwrap();
    later_session.decrypt(&reply).unwrap();
    let mut crossed = 0;
    // Content lengths just below, at and above each point where a later
    // message or a first message moves up a bucket (the largest bucket
    // only as far as a first message still fits).
    for &bucket in &PADDING_BUCKETS[..PADDING_BUCKETS.len() - 1] {
        // Buckets below the PQXDH prefix hold no ratchet message at all.
        let Some(first_edge) = bucket.checked_sub(1 + MESSAGE_OVERHEAD + INITIAL_OVERHEAD + 1)
        else {
            continue;
        };
        for edge in [bucket - 1 - MESSAGE_OVERHEAD, first_edge + 1] {
            for len in [edge - 1, edge, edge + 1] {
                let content = vec![0x5a; len];
                let mut first_session = x3dh::initiate(&mut rng, &a.identity, &bundle).unwrap();
                let first = first_session.encrypt(&mut rng, &content).unwrap();
                assert!(InitialMessage::is_initial(&first));
                let later = later_session.encrypt(&mut rng, &content).unwrap();
                assert!(!InitialMessage::is_initial(&later));
                assert_eq!(first.len(), later.len() + INITIAL_OVERHEAD);
                let e_first =
                    sealed_sender::seal(&mut rng, &a.identity, b.identity.public(), &first)
                        .unwrap();
                let e_later =
                    sealed_sender::seal(&mut rng, &a.identity, b.identity.public(), &later)
                        .unwrap();
                assert_eq!(e_first.len(), e_later.len(), "content of {len} bytes");
                if e_first.len() > sealed_sender::ENVELOPE_OVERHEAD + bucket {
                    crossed += 1;
                }
                // Both still open, padding removed exactly.
                let opened = sealed_sender::open(&b.identity, &e_later).unwrap();
                assert_eq!(opened.message, later);
            }
        }
    }
    assert!(crossed > 0, "the lengths tried never crossed a boundary");
}
