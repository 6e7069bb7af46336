//! Start-up repair of the sled store's derived records.
//!
//! sled 0.34 does not always recover a multi-key transaction atomically
//! when the process dies before the transaction's flush completes (the
//! crash harness in `server/tests/crash.rs` caught a message surviving a
//! SIGKILL while its idempotency key did not, so that the sender's retry
//! stored it a second time). Nothing acknowledged is at stake — a write is
//! acknowledged only after its flush — but the unacknowledged tail must be
//! made consistent before the relay serves again. So every record that can
//! be derived from primary data is checked and rebuilt here:
//!
//! * mailboxes: the primary data is the messages (each carries its client
//!   message id). Every message gets its idempotency key back; a mailbox's
//!   counters become (highest sequence ever, number waiting); idempotency
//!   keys pointing past the highest sequence (their message was not
//!   recovered) are removed, so a retry stores the message again.
//! * the key log: the primary data is the entries. The log size becomes
//!   the number of contiguous entries from 0, entries past a gap are
//!   removed, and a device record whose entry did not survive is re-logged
//!   with its current keys.
//!
//! All repairs are one batch per tree, flushed before the store is used.

use std::collections::HashMap;

use rand::RngCore;

use super::layout::{credential_key, device_key, log_entry_key, mailbox_tag, LOG_SIZE_KEY};
use crate::records::{body, i64_at, u64_at, versioned};
use crate::{CredentialSlot, DeviceRecord, LogEntry, LogRecord, Result, StoreError};

/// What the repair pass changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repairs {
    /// Idempotency keys re-created for surviving messages.
    pub dedupe_restored: u64,
    /// Idempotency keys removed because their message did not survive.
    pub dedupe_dropped: u64,
    /// Mailbox counters corrected.
    pub heads_fixed: u64,
    /// Key-log entries past a gap removed, or a size corrected.
    pub log_fixed: u64,
    /// Devices re-logged because their entry did not survive.
    pub devices_relogged: u64,
}

impl Repairs {
    /// Whether anything was changed.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[derive(Default)]
struct Mailbox {
    max_seq: u64,
    count: u64,
    head: Option<(u64, u64)>,
    /// cmid → (sequence, received_at) of surviving messages.
    messages: HashMap<[u8; 16], (u64, i64)>,
    /// cmid → sequence of idempotency keys.
    dedupe: HashMap<[u8; 16], u64>,
}

pub(crate) fn repair_mailboxes(tree: &sled::Tree, repairs: &mut Repairs) -> Result<()> {
    let mut boxes: HashMap<[u8; 32], Mailbox> = HashMap::new();
    for item in tree.iter() {
        let (key, value) = item.map_err(backend)?;
        if key.len() < 33 {
            return Err(StoreError::Corrupt("mailboxes: short key"));
        }
        let address: [u8; 32] = key[..32].try_into().expect("32 bytes");
        let m = boxes.entry(address).or_default();
        match key[32] {
            mailbox_tag::MESSAGE => {
                let seq = u64_at(&key, 33, "mailboxes")?;
                let b = body(&value, "mailboxes")?;
                let received = i64_at(b, 0, "mailboxes")?;
                let cmid: [u8; 16] = b
                    .get(8..24)
                    .and_then(|c| c.try_into().ok())
                    .ok_or(StoreError::Corrupt("mailboxes"))?;
                m.max_seq = m.max_seq.max(seq);
                m.count += 1;
                m.messages.insert(cmid, (seq, received));
            }
            mailbox_tag::HEAD => {
                let b = body(&value, "mailboxes: head")?;
                m.head = Some((
                    u64_at(b, 0, "mailboxes: head")?,
                    u64_at(b, 8, "mailboxes: head")?,
                ));
            }
            mailbox_tag::DEDUPE => {
                let cmid: [u8; 16] = key
                    .get(33..49)
                    .and_then(|c| c.try_into().ok())
                    .ok_or(StoreError::Corrupt("mailboxes: dedupe"))?;
                let b = body(&value, "mailboxes: dedupe")?;
                m.dedupe.insert(cmid, u64_at(b, 0, "mailboxes: dedupe")?);
            }
            _ => return Err(StoreError::Corrupt("mailboxes: unknown key tag")),
        }
    }
    let mut batch = sled::Batch::default();
    for (address, m) in boxes {
        let (last, depth) = m.head.unwrap_or((0, 0));
        let last = last.max(m.max_seq);
        if m.head != Some((last, m.count)) && (m.count > 0 || m.head.is_some()) {
            let mut k = address.to_vec();
            k.push(mailbox_tag::HEAD);
            batch.insert(k, versioned(&[&last.to_be_bytes(), &m.count.to_be_bytes()]));
            if m.head.is_some() || depth != m.count {
                repairs.heads_fixed += 1;
            }
        }
        for (cmid, (seq, received)) in &m.messages {
            if m.dedupe.get(cmid) != Some(seq) {
                let mut k = address.to_vec();
                k.push(mailbox_tag::DEDUPE);
                k.extend_from_slice(cmid);
                batch.insert(k, versioned(&[&seq.to_be_bytes(), &received.to_be_bytes()]));
                repairs.dedupe_restored += 1;
            }
        }
        for (cmid, seq) in &m.dedupe {
            if *seq > last {
                let mut k = address.to_vec();
                k.push(mailbox_tag::DEDUPE);
                k.extend_from_slice(cmid);
                batch.remove(k);
                repairs.dedupe_dropped += 1;
            }
        }
    }
    tree.apply_batch(batch).map_err(backend)
}

pub(crate) fn repair_key_log(tree: &sled::Tree, now_ms: i64, repairs: &mut Repairs) -> Result<()> {
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut devices: Vec<([u8; 32], DeviceRecord)> = Vec::new();
    let mut credentials: Vec<([u8; 32], CredentialSlot)> = Vec::new();
    let mut stored_size = None;
    for item in tree.iter() {
        let (key, value) = item.map_err(backend)?;
        match key.split_first() {
            Some((&0, address)) => {
                let address: [u8; 32] = address
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("devices: key"))?;
                devices.push((address, DeviceRecord::decode(&value)?));
            }
            Some((&1, index)) => entries.push(LogEntry::decode(index, &value)?),
            Some((&2, [])) => stored_size = Some(u64_at(&value, 0, "devices: log size")?),
            // Delivery policies stand on their own: nothing to repair, but
            // a record must decode.
            Some((&3, address)) if address.len() == 32 => {
                crate::DeliveryPolicy::decode(&value)?;
            }
            Some((&4, address)) => {
                let address: [u8; 32] = address
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("devices: key"))?;
                credentials.push((address, CredentialSlot::decode(&value)?));
            }
            _ => return Err(StoreError::Corrupt("devices: unknown key")),
        }
    }
    entries.sort_by_key(|e| e.index);
    let contiguous = entries
        .iter()
        .enumerate()
        .take_while(|(i, e)| e.index == *i as u64)
        .count();
    let mut size = contiguous as u64;
    let mut batch = sled::Batch::default();
    for e in &entries[contiguous..] {
        batch.remove(log_entry_key(e.index));
        repairs.log_fixed += 1;
    }
    for (address, d) in devices {
        let ok = entries.get(d.log_index as usize).is_some_and(|e| {
            (e.index as usize) < contiguous
                && e.address == address
                && e.keys() == Some((&d.identity, &d.signed_prekey))
        });
        if ok {
            continue;
        }
        // The device record survived, its log entry did not: log the keys
        // the device is known by again.
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        let entry = LogEntry {
            index: size,
            address,
            epoch: d.epoch,
            salt,
            logged_at_ms: now_ms,
            record: LogRecord::Keys {
                identity: d.identity.clone(),
                signed_prekey: d.signed_prekey.clone(),
            },
        };
        let record = DeviceRecord {
            log_index: size,
            ..d
        };
        batch.insert(log_entry_key(size), entry.encode());
        batch.insert(device_key(&address), record.encode());
        size += 1;
        repairs.devices_relogged += 1;
    }
    // Likewise a credential slot whose entry did not survive.
    for (address, c) in credentials {
        let ok = entries.get(c.log_index as usize).is_some_and(|e| {
            (e.index as usize) < contiguous
                && e.address == address
                && e.record == LogRecord::Credential(c.record.clone())
        });
        if ok {
            continue;
        }
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        let entry = LogEntry {
            index: size,
            address,
            epoch: c.epoch,
            salt,
            logged_at_ms: now_ms,
            record: LogRecord::Credential(c.record.clone()),
        };
        let slot = CredentialSlot {
            log_index: size,
            ..c
        };
        batch.insert(log_entry_key(size), entry.encode());
        batch.insert(credential_key(&address), slot.encode());
        size += 1;
        repairs.devices_relogged += 1;
    }
    if stored_size != Some(size) && (size > 0 || stored_size.is_some()) {
        batch.insert(&LOG_SIZE_KEY, &size.to_be_bytes());
        if stored_size.is_some() {
            repairs.log_fixed += 1;
        }
    }
    tree.apply_batch(batch).map_err(backend)
}
