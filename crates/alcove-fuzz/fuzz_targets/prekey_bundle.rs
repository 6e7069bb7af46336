#![no_main]
//! Prekey bundles, identities, signed and one-time prekeys as the relay
//! serves them.
use alcove_protocol::prekeys::{OneTimePreKey, PreKeyBundle, SignedPreKey};
use alcove_protocol::PublicIdentity;
use libfuzzer_sys::fuzz_target;

#[path = "vectors.rs"]
mod vectors;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = PreKeyBundle::from_bytes(data) {
        // A parsed bundle is verified, and re-encodes to the same bytes.
        assert_eq!(PreKeyBundle::from_bytes(&b.to_bytes()).unwrap().to_bytes(), b.to_bytes());
    }
    let _ = PublicIdentity::from_bytes(data);
    let _ = OneTimePreKey::from_bytes(data);
    let identity = PublicIdentity::from_bytes(&vectors::get().therapist_identity).unwrap();
    let _ = SignedPreKey::from_bytes(data, &identity);
});
