#![no_main]
//! The group decoders of outside bytes (docs/groups.md): rosters (from a
//! member, inside a pairwise session), sender keys, group messages on a
//! known chain, and the stored forms of chains. Never a panic; a roster
//! that verifies verifies again from what it re-encodes to; a group
//! message that does not open leaves the chain as it was.
use alcove_protocol::content::{self, Body, GroupSenderKey, GroupUpdate};
use alcove_protocol::group::{parse_header, GroupId, ReceivedSenderKey, Roster, SenderKey};
use alcove_protocol::IdentityKeyPair;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let owner = IdentityKeyPair::generate(&mut rng).public().address();
    if let Ok(update) = <GroupUpdate as prost::Message>::decode(data) {
        if let Ok(r) = Roster::verify(&update) {
            let again = Roster::verify(&r.to_update()).expect("a verified roster verifies again");
            assert_eq!(again.digest(), r.digest());
            assert!(r.is_admin(r.signer()) && r.is_member(r.signer()));
        }
    }
    if let Ok(c) = content::decode(data) {
        match &c.body {
            Some(Body::GroupUpdate(u)) => {
                let _ = Roster::verify(u);
            }
            Some(Body::GroupSenderKey(k)) => {
                if let Ok(mut chain) = ReceivedSenderKey::from_distribution(&owner, k) {
                    let _ = chain.decrypt(&owner, data);
                }
            }
            _ => {}
        }
    }
    let _ = <GroupSenderKey as prost::Message>::decode(data);
    let _ = parse_header(data);
    // A group message on a chain this device holds.
    let mut sending = SenderKey::generate(&mut rng, &GroupId([7; 32]), 1);
    let mut chain = ReceivedSenderKey::from_distribution(&owner, &sending.distribution()).unwrap();
    let genuine = sending.encrypt(&mut rng, &owner, b"hello group").unwrap();
    let before = format!("{chain:?}");
    if chain.decrypt(&owner, data).is_err() {
        assert_eq!(format!("{chain:?}"), before);
    }
    // A bit of the input flipped into a genuine message must not open.
    if let (Some(&b), false) = (data.first(), genuine.is_empty()) {
        let mut tampered = genuine.clone();
        let at = usize::from(b) % tampered.len();
        tampered[at] ^= 1 | (b >> 1);
        let mut copy = chain.clone();
        assert!(copy.decrypt(&owner, &tampered).is_err());
    }
    let _ = postcard::from_bytes::<ReceivedSenderKey>(data);
    let _ = postcard::from_bytes::<SenderKey>(data);
});
