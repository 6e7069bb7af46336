//! Checks across records. A record can have the documented format and
//! still be wrong in relation to the others: a mailbox for a device that
//! never registered, a sequence past its mailbox's head, a depth that does
//! not match the messages waiting, an idempotency key that names another
//! message, a time decades away. Both store readers (sled and PostgreSQL)
//! collect the same facts while they classify records; these checks then
//! run on them.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Finding;

/// 2020-01-01T00:00:00Z, ms: no Alcove record is older.
pub const EARLIEST_MS: i64 = 1_577_836_800_000;
/// How far in the future a receive or registration time may be (clock
/// skew between relays).
pub const SKEW_MS: i64 = 24 * 3600 * 1000;
/// How far in the future a blob's expiry may be.
pub const BLOB_EXPIRY_MS: i64 = 400 * 24 * 3600 * 1000;

/// What one store says, record by record, for the cross-checks.
#[derive(Debug, Default)]
pub struct Facts {
    /// Registered device addresses.
    pub devices: BTreeSet<[u8; 32]>,
    /// Mailbox heads: last sequence, depth.
    pub heads: BTreeMap<[u8; 32], (u64, u64)>,
    /// Waiting messages: (address, sequence) → client message id.
    pub messages: BTreeMap<([u8; 32], u64), [u8; 16]>,
    /// Idempotency keys: (address, client message id, sequence).
    pub dedupe: Vec<([u8; 32], [u8; 16], u64)>,
    /// Owners of one-time prekeys.
    pub prekey_owners: BTreeSet<[u8; 32]>,
    /// Devices with a delivery policy.
    pub delivery_policies: BTreeSet<[u8; 32]>,
    /// Times to check: (table or tree, record, what, ms, latest allowed
    /// beyond now).
    pub times: Vec<(String, String, &'static str, i64, i64)>,
    /// The practice's retention period, days, when the audit checks one.
    pub retention_days: Option<u64>,
}

impl Facts {
    /// Notes a time for the range check (`ahead`: how far past now it may
    /// be).
    pub fn time(&mut self, table: &str, key: &str, what: &'static str, ms: i64, ahead: i64) {
        self.times
            .push((table.to_owned(), key.to_owned(), what, ms, ahead));
    }

    /// Runs every cross-check; `now_ms` is the audit's time.
    pub fn check(&self, now_ms: i64) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut finding = |table: &str, key: String, reason: String| {
            out.push(Finding {
                tree: table.to_owned(),
                key,
                reason,
            })
        };
        for address in &self.delivery_policies {
            if !self.devices.contains(address) {
                finding(
                    "delivery policies",
                    hex::encode(address),
                    "a delivery policy for an address no device registered".into(),
                );
            }
        }
        let mut waiting: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        for (address, seq) in self.messages.keys() {
            *waiting.entry(*address).or_default() += 1;
            let key = format!("{}/{seq}", hex::encode(address));
            if !self.devices.contains(address) {
                finding(
                    "mailboxes",
                    key.clone(),
                    "a message for an address no device registered".into(),
                );
            }
            match self.heads.get(address) {
                None => finding(
                    "mailboxes",
                    key,
                    "a message in a mailbox without a head".into(),
                ),
                Some((last, _)) if seq > last || *seq == 0 => finding(
                    "mailboxes",
                    key,
                    format!("sequence {seq} is outside the mailbox's 1..={last}"),
                ),
                Some(_) => {}
            }
        }
        for (address, (last, depth)) in &self.heads {
            let key = hex::encode(address);
            if !self.devices.contains(address) {
                finding(
                    "mailbox_heads",
                    key.clone(),
                    "a mailbox for an address no device registered".into(),
                );
            }
            let n = waiting.get(address).copied().unwrap_or(0);
            if n != *depth {
                finding(
                    "mailbox_heads",
                    key.clone(),
                    format!("depth {depth}, but {n} messages wait"),
                );
            }
            if depth > last {
                finding(
                    "mailbox_heads",
                    key,
                    format!("depth {depth} is more than the {last} messages ever accepted"),
                );
            }
        }
        for (address, id, seq) in &self.dedupe {
            let key = format!("{}/{}", hex::encode(address), hex::encode(id));
            match self.heads.get(address) {
                None => finding("dedupe", key, "an idempotency key without a mailbox".into()),
                Some((last, _)) if seq > last || *seq == 0 => finding(
                    "dedupe",
                    key,
                    format!("names sequence {seq}, outside the mailbox's 1..={last}"),
                ),
                Some(_) => {
                    if let Some(stored) = self.messages.get(&(*address, *seq)) {
                        if stored != id {
                            finding(
                                "dedupe",
                                key,
                                format!(
                                    "names sequence {seq}, whose message has another client id"
                                ),
                            );
                        }
                    }
                }
            }
        }
        for address in &self.prekey_owners {
            if !self.devices.contains(address) {
                finding(
                    "one_time_prekeys",
                    hex::encode(address),
                    "prekeys of an address no device registered".into(),
                );
            }
        }
        for (table, key, what, ms, ahead) in &self.times {
            if *ms < EARLIEST_MS || *ms > now_ms.saturating_add(*ahead) {
                finding(
                    table,
                    key.clone(),
                    format!(
                        "{what} {ms} ms is not a plausible time (before 2020 or in the future)"
                    ),
                );
            }
            if let Some(days) = self.retention_days {
                let period = i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
                if *what == "received at" && *ms < now_ms.saturating_sub(period) {
                    finding(
                        table,
                        key.clone(),
                        format!(
                            "an envelope waiting longer than the retention period ({days} days)"
                        ),
                    );
                }
                if *what == "expires at" && *ms > now_ms.saturating_add(period) {
                    finding(
                        table,
                        key.clone(),
                        format!("a blob kept beyond the retention period ({days} days)"),
                    );
                }
            }
        }
        out
    }
}

/// Finds device addresses inside mailbox records: a stored envelope must
/// name no one, so another device's address in a recipient's mailbox would
/// link a sender to that recipient. Sealed sender puts the sender's
/// identity inside the encryption; this checks the relay (or anything
/// writing to the store) added none beside it.
pub struct SenderLinks {
    addresses: Vec<[u8; 32]>,
    automaton: Option<aho_corasick::AhoCorasick>,
}

impl SenderLinks {
    /// A search for every registered address.
    pub fn new(devices: &BTreeSet<[u8; 32]>) -> anyhow::Result<Self> {
        let addresses: Vec<[u8; 32]> = devices.iter().copied().collect();
        let automaton = if addresses.is_empty() {
            None
        } else {
            Some(aho_corasick::AhoCorasick::new(&addresses)?)
        };
        Ok(Self {
            addresses,
            automaton,
        })
    }

    /// A finding if `value`, stored in `owner`'s mailbox at `location`,
    /// contains the address of a device other than `owner`.
    pub fn check(
        &self,
        table: &str,
        location: String,
        owner: &[u8; 32],
        value: &[u8],
    ) -> Option<Finding> {
        let automaton = self.automaton.as_ref()?;
        automaton
            .find_overlapping_iter(value)
            .map(|m| self.addresses[m.pattern().as_usize()])
            .find(|a| a != owner)
            .map(|other| Finding {
                tree: table.to_owned(),
                key: location,
                reason: format!(
                    "a mailbox record contains the address of another device ({}...): \
                     it would link a sender to this recipient",
                    &hex::encode(other)[..16]
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_inconsistency_is_found_and_a_consistent_store_passes() {
        let now = 1_800_000_000_000;
        let (a, stranger) = ([1u8; 32], [2u8; 32]);
        let mut f = Facts::default();
        f.devices.insert(a);
        f.heads.insert(a, (3, 2));
        f.messages.insert((a, 2), [7; 16]);
        f.messages.insert((a, 3), [8; 16]);
        f.dedupe.push((a, [7; 16], 2));
        f.dedupe.push((a, [6; 16], 1));
        f.time("mailboxes", "x", "received at", now - 1000, SKEW_MS);
        f.time("blobs", "b", "expires at", now + 86_400_000, BLOB_EXPIRY_MS);
        f.retention_days = Some(30);
        assert!(f.check(now).is_empty(), "{:?}", f.check(now));

        let broken = |edit: &dyn Fn(&mut Facts)| {
            let mut g = Facts {
                devices: f.devices.clone(),
                heads: f.heads.clone(),
                messages: f.messages.clone(),
                dedupe: f.dedupe.clone(),
                prekey_owners: f.prekey_owners.clone(),
                delivery_policies: f.delivery_policies.clone(),
                times: f.times.clone(),
                retention_days: f.retention_days,
            };
            edit(&mut g);
            g.check(now)
        };
        type Edit<'a> = Box<dyn Fn(&mut Facts) + 'a>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "no device registered",
                Box::new(|g| {
                    g.heads.insert(stranger, (0, 0));
                }),
            ),
            (
                "outside",
                Box::new(|g| {
                    g.messages.insert((a, 9), [9; 16]);
                    g.heads.insert(a, (3, 3));
                }),
            ),
            (
                "messages wait",
                Box::new(|g| {
                    g.heads.insert(a, (3, 5));
                }),
            ),
            (
                "another client id",
                Box::new(|g| g.dedupe.push((a, [5; 16], 3))),
            ),
            (
                "prekeys of an address",
                Box::new(|g| {
                    g.prekey_owners.insert(stranger);
                }),
            ),
            (
                "delivery policy for an address",
                Box::new(|g| {
                    g.delivery_policies.insert(stranger);
                }),
            ),
            (
                "plausible time",
                Box::new(|g| g.time("mailboxes", "y", "received at", now + 2 * SKEW_MS, SKEW_MS)),
            ),
            (
                "plausible time",
                Box::new(|g| g.time("devices", "z", "registered at", 1000, 0)),
            ),
            (
                "longer than the retention period (30 days)",
                Box::new(|g| {
                    g.time(
                        "mailboxes",
                        "old",
                        "received at",
                        now - 31 * 86_400_000,
                        SKEW_MS,
                    )
                }),
            ),
            (
                "beyond the retention period (30 days)",
                Box::new(|g| {
                    g.time(
                        "blobs",
                        "c",
                        "expires at",
                        now + 31 * 86_400_000,
                        BLOB_EXPIRY_MS,
                    )
                }),
            ),
        ];
        for (want, edit) in cases {
            let found = broken(&*edit);
            assert!(
                found.iter().any(|x| x.reason.contains(want)),
                "{want}: {found:?}"
            );
        }
    }
}
