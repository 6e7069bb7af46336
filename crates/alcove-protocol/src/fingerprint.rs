//! Safety numbers: what two people compare to know they talk to each other.
//!
//! Each side's half is 30 digits derived from its identity by iterated
//! SHA-512 ([`SAFETY_NUMBER_ITERATIONS`] rounds, which makes finding an
//! identity with a chosen half expensive). The safety number is both halves,
//! the numerically smaller first, so both devices show the same 60 digits.

use sha2::{Digest, Sha512};

use crate::identity::PublicIdentity;
use crate::kdf::labels;
use crate::limits::SAFETY_NUMBER_ITERATIONS;

/// A 60-digit safety number, shown as 12 groups of 5 digits.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SafetyNumber(String);

impl SafetyNumber {
    /// The safety number of a conversation between `a` and `b` (order
    /// does not matter).
    pub fn new(a: &PublicIdentity, b: &PublicIdentity) -> Self {
        let mut halves = [half(a), half(b)];
        halves.sort();
        Self(halves.concat())
    }

    /// The 60 digits without spaces.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The 60 digits in 12 groups of 5, separated by spaces.
    pub fn display_groups(&self) -> String {
        self.0
            .as_bytes()
            .chunks(5)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display_groups())
    }
}

fn half(identity: &PublicIdentity) -> String {
    let keys = identity.to_bytes();
    let keys = &keys[..64]; // both public keys, without the signature
    let mut hash = Sha512::new()
        .chain_update(labels::SAFETY_NUMBER)
        .chain_update(keys)
        .finalize();
    for _ in 0..SAFETY_NUMBER_ITERATIONS {
        hash = Sha512::new()
            .chain_update(hash)
            .chain_update(keys)
            .finalize();
    }
    hash[..30]
        .chunks(5)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}
