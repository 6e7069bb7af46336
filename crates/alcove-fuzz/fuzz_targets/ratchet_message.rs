#![no_main]
//! Ratchet messages and X3DH initial messages decrypted by a real session
//! (the vectors' therapist state): never a panic, and a refused message
//! leaves the session able to serialise.
use alcove_protocol::x3dh::InitialMessage;
use alcove_protocol::Session;
use libfuzzer_sys::fuzz_target;

#[path = "vectors.rs"]
mod vectors;

fuzz_target!(|data: &[u8]| {
    let _ = InitialMessage::is_initial(data);
    if let Ok(m) = InitialMessage::decode(data) {
        let _ = m.claimed_initiator();
    }
    let mut session = Session::from_bytes(&vectors::get().session_state).unwrap();
    if session.decrypt(data).is_err() {
        let again = Session::from_bytes(&session.to_bytes()).unwrap();
        assert_eq!(again.to_bytes().as_slice(), session.to_bytes().as_slice());
    }
});
