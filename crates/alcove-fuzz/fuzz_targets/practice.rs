#![no_main]
//! The practice features' decoders of outside bytes: credentials,
//! revocations and credential records (from a contact or the key log),
//! credential log entries and slots (from the store), office hours (from a
//! contact) and transcripts (from a file handed to an auditor). Never a
//! panic; a parsed credential always re-encodes to the bytes it came from.
use alcove_protocol::availability::{is_open_at, next_opening_ms};
use alcove_protocol::content::{self, Body};
use alcove_protocol::credential::{Credential, CredentialCommitment, Revocation};
use alcove_protocol::transcript::{verify, TranscriptFile};
use alcove_store::{CredentialSlot, LogEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Credential::from_bytes(data) {
        assert_eq!(c.as_bytes(), data);
    }
    let _ = Revocation::from_bytes(data);
    let _ = CredentialCommitment::from_bytes(data);
    let _ = CredentialSlot::decode(data);
    let _ = LogEntry::decode(&data[..data.len().min(8)], data);
    if let Ok(c) = content::decode(data) {
        if let Some(Body::Availability(a)) = &c.body {
            let at = c.sent_at_ms;
            let open = is_open_at(a, at);
            if let Some(next) = next_opening_ms(a, at) {
                assert!(!open || next == at);
            }
        }
    }
    if let Ok(t) = serde_json::from_slice::<TranscriptFile>(data) {
        let _ = verify(&t);
    }
});
