//! The cached [`MerkleLog`] against the reference slice functions, and the
//! client-side rules: signature, freshness, rollback, fork, inclusion,
//! stale epochs.

use alcove_keylog::{
    check_advance, check_head, check_keys, consistency_proof, inclusion_proof, key_leaf, leaf_hash,
    root, Hash, KeyProof, MerkleLog, SignedTreeHead, TransparencyError, MAX_HEAD_AGE_MS,
    MAX_HEAD_SKEW_MS,
};
use ed25519_dalek::SigningKey;

fn leaves(n: usize, tag: u8) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[tag, i as u8, (i >> 8) as u8]))
        .collect()
}

#[test]
fn cached_log_matches_the_reference_for_every_size_and_prefix() {
    let all = leaves(70, 0);
    let mut log = MerkleLog::new();
    for (n, leaf) in all.iter().enumerate() {
        assert_eq!(log.push(*leaf), n as u64);
    }
    assert_eq!(log.size(), 70);
    assert_eq!(log.root_at(71), Err(alcove_keylog::ProofError::OutOfRange));
    for size in 0..=70usize {
        let prefix = &all[..size];
        assert_eq!(
            log.root_at(size as u64).unwrap(),
            root(prefix),
            "root {size}"
        );
        for i in 0..size {
            assert_eq!(
                log.inclusion_proof(i as u64, size as u64).unwrap(),
                inclusion_proof(prefix, i).unwrap(),
                "path {i} of {size}"
            );
        }
        for old in 1..size {
            assert_eq!(
                log.consistency_proof(old as u64, size as u64).unwrap(),
                consistency_proof(prefix, old).unwrap(),
                "consistency {old} -> {size}"
            );
        }
        assert!(log.consistency_proof(0, size as u64).unwrap().is_empty());
    }
    assert!(log.inclusion_proof(5, 5).is_err());
    assert!(log.consistency_proof(6, 5).is_err());
}

const NOW: u64 = 1_800_000_000_000;

fn head(key: &SigningKey, log: &MerkleLog, size: u64, at: u64) -> SignedTreeHead {
    SignedTreeHead::sign(key, size, log.root_at(size).unwrap(), at)
}

#[test]
fn heads_advance_only_by_consistent_extension() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let pinned = key.verifying_key();
    let mut log = MerkleLog::new();
    for l in leaves(9, 1) {
        log.push(l);
    }
    let h5 = head(&key, &log, 5, NOW);
    let h9 = head(&key, &log, 9, NOW);
    // First head: accepted on its own.
    assert_eq!(check_advance(&pinned, None, &h5, &[], NOW), Ok(true));
    // Growth with the right proof.
    let proof = log.consistency_proof(5, 9).unwrap();
    assert_eq!(
        check_advance(&pinned, Some(&h5), &h9, &proof, NOW),
        Ok(true)
    );
    // The same head again: fine, nothing new.
    assert_eq!(check_advance(&pinned, Some(&h9), &h9, &[], NOW), Ok(false));
    // Replaying the older, smaller head after the newer one.
    assert_eq!(
        check_advance(&pinned, Some(&h9), &h5, &[], NOW),
        Err(TransparencyError::Rollback { seen: 9, served: 5 })
    );
    // A fork: a different tree of 9 whose first 5 leaves differ.
    let mut forked = MerkleLog::new();
    for (i, l) in leaves(9, 1).into_iter().enumerate() {
        forked.push(if i == 3 { leaf_hash(b"impostor") } else { l });
    }
    let f9 = head(&key, &forked, 9, NOW);
    let fproof = forked.consistency_proof(5, 9).unwrap();
    assert_eq!(
        check_advance(&pinned, Some(&h5), &f9, &fproof, NOW),
        Err(TransparencyError::Forked { seen: 5, served: 9 })
    );
    // Same size, other root.
    assert_eq!(
        check_advance(&pinned, Some(&h9), &f9, &[], NOW),
        Err(TransparencyError::Forked { seen: 9, served: 9 })
    );
    // The honest proof does not rescue the forked head either.
    assert!(check_advance(&pinned, Some(&h5), &f9, &proof, NOW).is_err());
    // Another key's signature.
    let other = SigningKey::from_bytes(&[8; 32]);
    let o9 = head(&other, &log, 9, NOW);
    assert_eq!(
        check_advance(&pinned, Some(&h5), &o9, &proof, NOW),
        Err(TransparencyError::BadSignature)
    );
    // A tampered size under a valid-looking signature.
    let mut bumped = h9.clone();
    bumped.size = 10;
    assert_eq!(
        check_head(&pinned, &bumped, NOW),
        Err(TransparencyError::BadSignature)
    );
}

#[test]
fn old_and_future_heads_are_refused() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let mut log = MerkleLog::new();
    log.push(leaf_hash(b"x"));
    let fresh = head(&key, &log, 1, NOW - MAX_HEAD_AGE_MS);
    check_head(&key.verifying_key(), &fresh, NOW).unwrap();
    let old = head(&key, &log, 1, NOW - MAX_HEAD_AGE_MS - 1);
    assert!(matches!(
        check_head(&key.verifying_key(), &old, NOW),
        Err(TransparencyError::StaleHead { .. })
    ));
    let future = head(&key, &log, 1, NOW + MAX_HEAD_SKEW_MS + 1);
    assert!(matches!(
        check_head(&key.verifying_key(), &future, NOW),
        Err(TransparencyError::StaleHead { .. })
    ));
}

#[test]
fn keys_must_be_the_committed_leaf_at_a_current_epoch() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let address = [0xAA; 32];
    let (identity, spk_old, spk_new) = (vec![1u8; 128], vec![2u8; 108], vec![4u8; 108]);
    let salts = [[5u8; 32], [6u8; 32]];
    let mut log = MerkleLog::new();
    log.push(leaf_hash(b"someone else"));
    log.push(key_leaf(&salts[0], &address, &identity, &spk_old, 0));
    log.push(leaf_hash(b"someone else again"));
    log.push(key_leaf(&salts[1], &address, &identity, &spk_new, 1));
    let size = log.size();
    let h = head(&key, &log, size, NOW);
    let proof_at = |index: u64, epoch: u64, salt: [u8; 32]| KeyProof {
        index,
        epoch,
        salt,
        audit_path: log.inclusion_proof(index, size).unwrap(),
        head: h.clone(),
    };
    let current = proof_at(3, 1, salts[1]);
    check_keys(&address, &identity, &spk_new, &current, 1).unwrap();
    // Substituted keys with the genuine proof.
    assert_eq!(
        check_keys(&address, &identity, &spk_old, &current, 0),
        Err(TransparencyError::NotInLog)
    );
    let mut other_identity = identity.clone();
    other_identity[40] ^= 1;
    assert_eq!(
        check_keys(&address, &other_identity, &spk_new, &current, 0),
        Err(TransparencyError::NotInLog)
    );
    // Another address, wrong salt, wrong epoch claim, wrong index.
    assert!(check_keys(&[0xAB; 32], &identity, &spk_new, &current, 0).is_err());
    assert!(check_keys(&address, &identity, &spk_new, &proof_at(3, 1, [0; 32]), 0).is_err());
    assert!(check_keys(&address, &identity, &spk_new, &proof_at(3, 0, salts[1]), 0).is_err());
    assert!(check_keys(&address, &identity, &spk_new, &proof_at(1, 1, salts[1]), 0).is_err());
    // The old entry is genuinely in the log, but older than what was seen.
    let stale = proof_at(1, 0, salts[0]);
    check_keys(&address, &identity, &spk_old, &stale, 0).unwrap();
    assert_eq!(
        check_keys(&address, &identity, &spk_old, &stale, 1),
        Err(TransparencyError::StaleKeys { seen: 1, served: 0 })
    );
}
