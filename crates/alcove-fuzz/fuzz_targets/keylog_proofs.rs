#![no_main]
//! Key-log data from a relay: tree heads, inclusion and consistency proofs
//! with arbitrary sizes, indexes and hashes. Verification must refuse or
//! accept, never panic or loop.
use alcove_keylog::{
    check_advance, check_keys, hashes, verify_consistency, verify_inclusion, KeyProof,
    SignedTreeHead, TREE_HEAD_LEN,
};
use libfuzzer_sys::fuzz_target;

fn u64_at(d: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in d.iter().skip(at).take(8).enumerate() {
        b[i] = *x;
    }
    u64::from_be_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let head = SignedTreeHead::from_bytes(data.get(..TREE_HEAD_LEN).unwrap_or(data));
    let (a, b, c) = (u64_at(data, 0), u64_at(data, 8), u64_at(data, 16));
    let rest = data.get(24..).unwrap_or(&[]);
    let chunks: Vec<Vec<u8>> = rest.chunks(32).map(<[u8]>::to_vec).collect();
    let proof = hashes(&chunks).unwrap_or_default();
    let leaf = [data.len() as u8; 32];
    let root = proof.first().copied().unwrap_or([0; 32]);
    let _ = verify_inclusion(&leaf, a, b, &proof, &root);
    let _ = verify_consistency(a, b, &leaf, &root, &proof);
    // Small sizes too, where the interesting shapes are.
    let _ = verify_inclusion(&leaf, a % 64, b % 64, &proof, &root);
    let _ = verify_consistency(a % 64, b % 64, &leaf, &root, &proof);
    if let Ok(h) = head {
        let _ = h.verify(&key);
        let _ = check_advance(&key, None, &h, &proof, c);
        let kp = KeyProof {
            index: a % 64,
            epoch: c,
            salt: leaf,
            audit_path: proof.clone(),
            head: h.clone(),
        };
        let _ = check_keys(&[1; 32], rest, rest, &kp, b);
        let _ = check_advance(&key, Some(&h), &h, &proof, c);
    }
});
