#![no_main]
//! Typed content (protobuf) as it comes out of a decrypted message.
use alcove_protocol::content;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = content::decode(data) {
        let _ = content::validate(&c);
        let _ = content::encode(&c);
    }
});
