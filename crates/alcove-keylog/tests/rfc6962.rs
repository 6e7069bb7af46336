//! The Merkle tree against the RFC 6962 reference data (the eight leaves and
//! roots used by Certificate Transparency implementations), plus exhaustive
//! round trips and tampering for every tree shape up to 40 leaves.

use alcove_keylog::*;

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn leaves() -> Vec<Hash> {
    LEAVES
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

#[test]
fn roots_match_the_reference() {
    let l = leaves();
    for n in 0..=8 {
        assert_eq!(root(&l[..n]), h(ROOTS[n]), "size {n}");
    }
}

#[test]
fn inclusion_proofs_match_the_reference() {
    let l = leaves();
    let cases: [(usize, &[&str]); 2] = [
        (
            0,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (index, expected) in cases {
        let proof = inclusion_proof(&l, index).unwrap();
        assert_eq!(
            proof,
            expected.iter().map(|s| h(s)).collect::<Vec<_>>(),
            "index {index}"
        );
        verify_inclusion(&l[index], index as u64, 8, &proof, &h(ROOTS[8])).unwrap();
    }
}

fn many(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&(i as u32).to_be_bytes()))
        .collect()
}

#[test]
fn every_inclusion_proof_verifies_and_tampering_fails() {
    for n in 1..=40 {
        let l = many(n);
        let r = root(&l);
        for i in 0..n {
            let proof = inclusion_proof(&l, i).unwrap();
            verify_inclusion(&l[i], i as u64, n as u64, &proof, &r).unwrap();
            // Wrong leaf, wrong index, a flipped proof hash, a truncated or
            // extended proof: all refused. (The size is not checked here on
            // its own: a signed tree head binds size and root together.)
            assert!(
                verify_inclusion(&leaf_hash(b"other"), i as u64, n as u64, &proof, &r).is_err()
            );
            if n > 1 {
                let j = (i + 1) % n;
                assert!(
                    verify_inclusion(&l[i], j as u64, n as u64, &proof, &r).is_err(),
                    "n {n} i {i} j {j}"
                );
            }
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                bad[0] = node_hash(first, first);
                assert!(verify_inclusion(&l[i], i as u64, n as u64, &bad, &r).is_err());
                assert!(verify_inclusion(&l[i], i as u64, n as u64, &proof[1..], &r).is_err());
            }
            let mut longer = proof.clone();
            longer.push(r);
            assert!(verify_inclusion(&l[i], i as u64, n as u64, &longer, &r).is_err());
        }
    }
}

#[test]
fn consistency_proofs_match_the_reference_and_verify() {
    let l = leaves();
    let proof = consistency_proof(&l, 6).unwrap();
    assert_eq!(
        proof,
        vec![
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ]
    );
    let proof = consistency_proof(&l[..5], 2).unwrap();
    assert_eq!(
        proof,
        vec![
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ]
    );
    for n in 1..=40 {
        let l = many(n);
        let new_root = root(&l);
        for m in 1..=n {
            let old_root = root(&l[..m]);
            let proof = consistency_proof(&l, m).unwrap();
            verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof).unwrap();
            // A forked log: a different old tree of the same size.
            let mut forked = l[..m].to_vec();
            forked[m - 1] = leaf_hash(b"forked");
            assert!(
                verify_consistency(m as u64, n as u64, &root(&forked), &new_root, &proof).is_err(),
                "fork not caught at {m}->{n}"
            );
            if m < n {
                assert!(verify_consistency(
                    m as u64,
                    n as u64,
                    &old_root,
                    &root(&l[..n - 1]),
                    &proof
                )
                .is_err());
                if !proof.is_empty() {
                    assert!(verify_consistency(
                        m as u64,
                        n as u64,
                        &old_root,
                        &new_root,
                        &proof[1..]
                    )
                    .is_err());
                }
            }
        }
    }
    assert!(verify_consistency(3, 2, &EMPTY_ROOT, &EMPTY_ROOT, &[]).is_err());
}

#[test]
fn tree_heads_sign_and_verify() {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let head = SignedTreeHead::sign(&key, 8, h(ROOTS[8]), 1_700_000_000_000);
    head.verify(&key.verifying_key()).unwrap();
    assert_eq!(
        head.verify(&other.verifying_key()),
        Err(TreeHeadError::BadSignature)
    );
    let parsed = SignedTreeHead::from_bytes(&head.to_bytes()).unwrap();
    assert_eq!(parsed, head);
    let mut replayed = head.clone();
    replayed.size = 9;
    assert!(replayed.verify(&key.verifying_key()).is_err());
    assert_eq!(
        SignedTreeHead::from_bytes(&[0; 10]),
        Err(TreeHeadError::Malformed)
    );
}

#[test]
fn commitments_hide_and_bind() {
    let a = commitment(&[1; 32], &[2; 32], b"identity", b"spk", 1);
    assert_ne!(
        a,
        commitment(&[9; 32], &[2; 32], b"identity", b"spk", 1),
        "the salt changes it"
    );
    assert_ne!(
        a,
        commitment(&[1; 32], &[2; 32], b"identity", b"spk", 2),
        "the epoch is bound"
    );
    assert_ne!(
        a,
        commitment(&[1; 32], &[2; 32], b"identitys", b"pk", 1),
        "fields are length-prefixed"
    );
}
