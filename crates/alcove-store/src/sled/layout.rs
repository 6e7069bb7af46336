//! The sled backend's key layout: which bytes name which record in each
//! tree. Shared by the store and by start-up recovery, which must read
//! the same keys.

/// Key tags inside the `mailboxes` tree (after the 32-byte address).
pub mod mailbox_tag {
    /// `address · 0x00 · sequence (u64)` → a waiting envelope.
    pub const MESSAGE: u8 = 0;
    /// `address · 0x01` → last sequence, depth.
    pub const HEAD: u8 = 1;
    /// `address · 0x02 · client message id (16)` → sequence, time.
    pub const DEDUPE: u8 = 2;
}

/// Key tags inside the `devices` tree.
pub mod device_tag {
    /// `0x00 · address` → the device record.
    pub const DEVICE: u8 = 0;
    /// `0x01 · index (u64)` → a key-log entry.
    pub const LOG_ENTRY: u8 = 1;
    /// `0x02` → number of key-log entries (u64).
    pub const LOG_SIZE: u8 = 2;
    /// `0x03 · address` → the device's delivery policy.
    pub const DELIVERY: u8 = 3;
    /// `0x04 · address` → the device's credential slot.
    pub const CREDENTIAL: u8 = 4;
}

pub(crate) fn credential_key(address: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(device_tag::CREDENTIAL);
    k.extend_from_slice(address);
    k
}

pub(crate) fn delivery_key(address: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(device_tag::DELIVERY);
    k.extend_from_slice(address);
    k
}

pub(crate) fn message_key(address: &[u8], sequence: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(41);
    k.extend_from_slice(address);
    k.push(mailbox_tag::MESSAGE);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

pub(crate) fn head_key(address: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.extend_from_slice(address);
    k.push(mailbox_tag::HEAD);
    k
}

pub(crate) fn dedupe_key(address: &[u8], id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(49);
    k.extend_from_slice(address);
    k.push(mailbox_tag::DEDUPE);
    k.extend_from_slice(id);
    k
}

pub(crate) fn device_key(address: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(device_tag::DEVICE);
    k.extend_from_slice(address);
    k
}

pub(crate) fn log_entry_key(index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(device_tag::LOG_ENTRY);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub(crate) const LOG_SIZE_KEY: [u8; 1] = [device_tag::LOG_SIZE];
