#![no_main]
//! Invite links as scanned from a QR code (any text).
use alcove_protocol::invite::Invite;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(invite) = Invite::decode(&text) {
        let again = Invite::decode(&invite.to_link()).unwrap();
        assert_eq!(again.encode(), invite.encode());
    }
});
