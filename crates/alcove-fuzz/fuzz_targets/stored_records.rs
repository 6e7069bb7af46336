#![no_main]
//! Records read back from disk: the relay's store records and the SDK's
//! serialised sessions. A damaged disk must give an error, never a panic.
use alcove_protocol::Session;
use alcove_store::{BlobInfo, DeviceRecord, LogEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = DeviceRecord::decode(data);
    let _ = BlobInfo::decode(data);
    let split = data.first().map_or(0, |b| usize::from(*b) % 12).min(data.len());
    let _ = LogEntry::decode(&data[..split], &data[split..]);
    let _ = LogEntry::decode(&data[..data.len().min(8)], data);
    let _ = Session::from_bytes(data);
});
