#![no_main]
//! Sealed-sender envelopes as the relay delivers them, opened with the
//! recipient's real identity key: any bytes must give `Ok` or an error.
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::sealed_sender;
use libfuzzer_sys::fuzz_target;

#[path = "vectors.rs"]
mod vectors;

fuzz_target!(|data: &[u8]| {
    let me = IdentityKeyPair::from_secret_bytes(&vectors::get().therapist_secret).unwrap();
    let _ = sealed_sender::is_envelope_len(data.len());
    let _ = sealed_sender::open(&me, data);
});
