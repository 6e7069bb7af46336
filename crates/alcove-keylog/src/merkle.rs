//! RFC 6962 §2.1 Merkle tree hash, audit paths and consistency proofs, and
//! the verification algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// Index or sizes out of range.
    #[error("proof parameters out of range")]
    OutOfRange,
    /// The proof has the wrong number of hashes.
    #[error("proof has the wrong length")]
    WrongLength,
    /// The proof does not lead to the given root(s).
    #[error("proof does not match the root")]
    Mismatch,
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The largest power of two smaller than `n` (`n` ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of a list of leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    slice_root(leaves, 0, leaves.len())
}

fn slice_root(leaves: &[Hash], lo: usize, hi: usize) -> Hash {
    match hi - lo {
        0 => EMPTY_ROOT,
        1 => leaves[lo],
        n => {
            let k = split(n);
            node_hash(
                &slice_root(leaves, lo, lo + k),
                &slice_root(leaves, lo + k, hi),
            )
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 PATH).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>, ProofError> {
    if index >= leaves.len() {
        return Err(ProofError::OutOfRange);
    }
    let mut proof = Vec::new();
    path(
        index,
        0,
        leaves.len(),
        &|lo, hi| slice_root(leaves, lo, hi),
        &mut proof,
    );
    Ok(proof)
}

/// RFC 6962 PATH(m, D[lo:hi]), with subtree hashes from `hash`.
fn path(m: usize, lo: usize, hi: usize, hash: &dyn Fn(usize, usize) -> Hash, out: &mut Vec<Hash>) {
    let n = hi - lo;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, lo, lo + k, hash, out);
        out.push(hash(lo + k, hi));
    } else {
        path(m - k, lo + k, hi, hash, out);
        out.push(hash(lo, lo + k));
    }
}

/// The consistency proof from the tree of the first `old_size` leaves to
/// the tree of all `leaves` (RFC 6962 PROOF).
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Result<Vec<Hash>, ProofError> {
    if old_size == 0 || old_size > leaves.len() {
        return Err(ProofError::OutOfRange);
    }
    let mut proof = Vec::new();
    subproof(
        old_size,
        0,
        leaves.len(),
        true,
        &|lo, hi| slice_root(leaves, lo, hi),
        &mut proof,
    );
    Ok(proof)
}

/// RFC 6962 SUBPROOF(m, D[lo:hi], complete).
fn subproof(
    m: usize,
    lo: usize,
    hi: usize,
    complete: bool,
    hash: &dyn Fn(usize, usize) -> Hash,
    out: &mut Vec<Hash>,
) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(hash(lo, hi));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, lo, lo + k, complete, hash, out);
        out.push(hash(lo + k, hi));
    } else {
        subproof(m - k, lo + k, hi, false, hash, out);
        out.push(hash(lo, lo + k));
    }
}

/// An append-only Merkle tree that keeps the hash of every complete
/// subtree, so that roots, audit paths and consistency proofs for any
/// tree size take O(log² n) hashes instead of O(n). This is what the relay
/// keeps in memory; the slice functions above are the reference it is
/// tested against.
#[derive(Debug, Clone, Default)]
pub struct MerkleLog {
    /// `levels[h][i]` is the hash of leaves `i·2^h .. (i+1)·2^h`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Leaf hash `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() - 1;
        let mut h = 0;
        let mut i = index;
        // Every time the new leaf completes a subtree, store its hash.
        while i % 2 == 1 {
            let right = self.levels[h][i];
            let left = self.levels[h][i - 1];
            if self.levels.len() == h + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[h + 1].push(node_hash(&left, &right));
            h += 1;
            i /= 2;
        }
        index as u64
    }

    fn range_root(&self, lo: usize, hi: usize) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return EMPTY_ROOT;
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let h = n.trailing_zeros() as usize;
            return self.levels[h][lo / n];
        }
        let k = split(n);
        node_hash(&self.range_root(lo, lo + k), &self.range_root(lo + k, hi))
    }

    fn check_size(&self, size: u64) -> Result<usize, ProofError> {
        if size > self.size() {
            return Err(ProofError::OutOfRange);
        }
        usize::try_from(size).map_err(|_| ProofError::OutOfRange)
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        let size = self.check_size(size)?;
        Ok(self.range_root(0, size))
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let size = self.check_size(size)?;
        let index = usize::try_from(index).map_err(|_| ProofError::OutOfRange)?;
        if index >= size {
            return Err(ProofError::OutOfRange);
        }
        let mut proof = Vec::new();
        path(
            index,
            0,
            size,
            &|lo, hi| self.range_root(lo, hi),
            &mut proof,
        );
        Ok(proof)
    }

    /// The consistency proof from the tree of `old_size` leaves to the tree
    /// of `new_size` leaves. Empty when the sizes are equal or `old_size`
    /// is 0 (every tree extends the empty tree).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        let new = self.check_size(new_size)?;
        if old_size > new_size {
            return Err(ProofError::OutOfRange);
        }
        let old = old_size as usize;
        let mut proof = Vec::new();
        if old > 0 && old < new {
            subproof(
                old,
                0,
                new,
                true,
                &|lo, hi| self.range_root(lo, hi),
                &mut proof,
            );
        }
        Ok(proof)
    }
}

fn equal(a: &Hash, b: &Hash) -> bool {
    bool::from(a.ct_eq(b))
}

/// Checks that `leaf` (a leaf hash) is at `index` in the tree of `size`
/// leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if equal(&r, root) {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`
/// (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange);
    }
    if old_size == new_size {
        return if proof.is_empty() && equal(old_root, new_root) {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty tree.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if equal(&fr, old_root) && equal(&sr, new_root) {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}
