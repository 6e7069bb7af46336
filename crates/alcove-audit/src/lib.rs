//! # alcove-audit
//!
//! An independent auditor's view of an Alcove relay, needing no key and no
//! trust in the operator:
//!
//! * [`store`]: opens a relay's sled store offline and classifies every
//!   record of every tree: sealed envelopes and attachment chunks must have
//!   the documented format and look random ([`randomness`]), key records
//!   must be public keys that parse and verify, bookkeeping records must
//!   have their fixed layout. Anything else fails the audit, named by tree
//!   and key. Known plaintexts ("canaries") are searched in the raw files
//!   in several encodings ([`canary`]).
//! * [`log`]: follows the key transparency log over gRPC: signed heads,
//!   consistency with the last head recorded, inclusion of given devices.
//! * [`transcript`]: verifies an exported conversation transcript offline.
//!
//! The command-line tool `alcove-audit` prints a report for people or
//! JSON, and exits 0 only when everything verified. docs/auditing.md says
//! what it proves and what it cannot.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod canary;
pub mod facts;
pub mod log;
pub mod postgres;
pub mod randomness;
pub mod store;
pub mod transcript;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
