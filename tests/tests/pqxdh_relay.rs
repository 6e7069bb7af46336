//! The relay's side of PQXDH, on sled and on PostgreSQL: hybrid prekeys
//! are stored and handed out (one-time ones once), a device's prekeys are
//! never of mixed kinds, a device that moves to hybrid prekeys stops
//! handing out its classical leftovers, and a full stock of hybrid
//! one-time prekeys fits in one request.

mod common;

use alcove_api::v1::{CountPreKeysRequest, RotateSignedPreKeyRequest, UploadOneTimePreKeysRequest};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use common::{code, now_secs, Backend, Device, TestRelay};
use tonic::Code;

on_every_backend!(
    hybrid_bundles_and_one_time_prekeys_once,
    the_key_log_commits_to_the_last_resort_kem_key,
    one_time_prekeys_of_the_other_kind_are_refused,
    a_device_moving_to_hybrid_stops_handing_out_classical_prekeys,
    a_full_stock_of_hybrid_one_time_prekeys_fits_one_request,
);

async fn count(d: &Device) -> u32 {
    d.keys()
        .count_pre_keys(d.req(CountPreKeysRequest {}))
        .await
        .unwrap()
        .into_inner()
        .one_time_prekeys
}

async fn hybrid_bundles_and_one_time_prekeys_once(backend: Backend) {
    if !backend.available("pqxdh relay tests") {
        return;
    }
    let relay = TestRelay::start_on(backend, |c| {
        c.limits.one_time_prekeys_per_hour_per_target = 1000.0;
        c.limits.bundle_fetches_per_min = 1000.0;
        c.limits.bundle_fetches_per_min_per_ip = 1000.0;
    })
    .await;
    let owner = Device::registered(&relay, 5).await;
    let fetcher = Device::registered(&relay, 0).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let bundle = fetcher.bundle_of(&owner.address()).await;
        assert!(bundle.is_hybrid());
        assert_eq!(
            bundle.signed_prekey(),
            owner.signed_prekey.public(),
            "the hybrid signed prekey, ML-KEM key included, comes back as published"
        );
        if let Some(k) = bundle.one_time_prekey() {
            assert!(k.is_hybrid());
            assert!(
                seen.insert(k.id),
                "one-time prekey {} handed out twice",
                k.id
            );
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(count(&owner).await, 0);
}

async fn the_key_log_commits_to_the_last_resort_kem_key(backend: Backend) {
    if !backend.available("pqxdh relay tests") {
        return;
    }
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let owner = Device::registered(&relay, 0).await;
    let r = owner
        .keys()
        .get_bundle(owner.req(alcove_api::v1::GetBundleRequest {
            address: owner.address().to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let proof = r.key_proof.unwrap();
    let head = proof.head.as_ref().unwrap();
    let root: [u8; 32] = head.root.clone().try_into().unwrap();
    let path = alcove_keylog::hashes(&proof.audit_path).unwrap();
    let salt: [u8; 32] = proof.salt.clone().try_into().unwrap();
    let included = |spk: &[u8]| {
        let leaf = alcove_keylog::key_leaf(
            &salt,
            &owner.address(),
            &owner.identity.public().to_bytes(),
            spk,
            proof.epoch,
        );
        alcove_keylog::verify_inclusion(&leaf, proof.index, head.size, &path, &root).is_ok()
    };
    let spk = owner.signed_prekey.public().to_bytes();
    assert_eq!(
        spk.len(),
        alcove_protocol::prekeys::HYBRID_SIGNED_PREKEY_LEN
    );
    assert_eq!(proof.signed_prekey, spk);
    assert!(included(&spk), "the log holds the hybrid signed prekey");
    // Another ML-KEM key in its place is not what the log holds.
    let mut other_kem = spk.clone();
    other_kem[44 + 17] ^= 1;
    assert!(!included(&other_kem));
    // Nor is the signed prekey with its ML-KEM key stripped.
    let mut stripped = spk[..44].to_vec();
    stripped.extend_from_slice(&spk[spk.len() - 64..]);
    assert!(!included(&stripped));
}

async fn one_time_prekeys_of_the_other_kind_are_refused(backend: Backend) {
    if !backend.available("pqxdh relay tests") {
        return;
    }
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let owner = Device::registered(&relay, 3).await;
    let mut rng = rand::rngs::OsRng;
    let upload = |keys: Vec<Vec<u8>>| {
        let mut client = owner.keys();
        let request = owner.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: keys,
        });
        async move { client.upload_one_time_pre_keys(request).await }
    };
    // A classical one-time prekey for a hybrid device.
    let classical = OneTimePreKeyPair::generate_classical(&mut rng, 50);
    let r = upload(vec![classical.public().to_bytes()]).await;
    assert_eq!(code(r), Code::InvalidArgument);
    // A hybrid one signed by someone else (a substituted ML-KEM key).
    let other = IdentityKeyPair::generate(&mut rng);
    let foreign = OneTimePreKeyPair::generate(&mut rng, &other, 51);
    let r = upload(vec![foreign.public().to_bytes()]).await;
    assert_eq!(code(r), Code::InvalidArgument);
    assert_eq!(count(&owner).await, 3, "nothing was stored");

    // Registration with mixed kinds is refused as a whole.
    let mut mixed = Device::new(relay.channel().await, 0);
    mixed.one_time_prekeys = vec![
        OneTimePreKeyPair::generate(&mut rng, &mixed.identity, 1),
        OneTimePreKeyPair::generate_classical(&mut rng, 2),
    ];
    assert_eq!(code(mixed.register().await), Code::InvalidArgument);
}

async fn a_device_moving_to_hybrid_stops_handing_out_classical_prekeys(backend: Backend) {
    if !backend.available("pqxdh relay tests") {
        return;
    }
    let relay = TestRelay::start_on(backend, |c| {
        c.limits.one_time_prekeys_per_hour_per_target = 1000.0;
    })
    .await;
    let mut rng = rand::rngs::OsRng;
    // A device as the SDK made them before PQXDH.
    let mut legacy = Device::new(relay.channel().await, 0);
    legacy.signed_prekey =
        SignedPreKeyPair::generate_classical(&mut rng, &legacy.identity, 1, now_secs());
    legacy.one_time_prekeys = (1..=4)
        .map(|i| OneTimePreKeyPair::generate_classical(&mut rng, i))
        .collect();
    legacy.register().await.unwrap();
    let fetcher = Device::registered(&relay, 0).await;
    let before = fetcher.bundle_of(&legacy.address()).await;
    assert!(!before.is_hybrid());
    assert!(before.one_time_prekey().is_some_and(|k| !k.is_hybrid()));
    // A hybrid one-time prekey is refused while the signed prekey is
    // classical.
    let hybrid = OneTimePreKeyPair::generate(&mut rng, &legacy.identity, 9);
    let r = legacy
        .keys()
        .upload_one_time_pre_keys(legacy.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: vec![hybrid.public().to_bytes()],
        }))
        .await;
    assert_eq!(code(r), Code::InvalidArgument);

    // It moves to a hybrid signed prekey; three classical one-time prekeys
    // are left on the relay.
    let spk = SignedPreKeyPair::generate(&mut rng, &legacy.identity, 2, now_secs());
    legacy
        .keys()
        .rotate_signed_pre_key(legacy.req(RotateSignedPreKeyRequest {
            signed_prekey: spk.public().to_bytes(),
        }))
        .await
        .unwrap();
    let after = fetcher.bundle_of(&legacy.address()).await;
    assert!(after.is_hybrid(), "a version 2 bundle");
    assert!(
        after.one_time_prekey().is_none(),
        "the classical leftovers are discarded, never mixed into a hybrid bundle"
    );
    assert_eq!(count(&legacy).await, 0);
    // Now hybrid one-time prekeys are taken, and handed out.
    legacy
        .keys()
        .upload_one_time_pre_keys(legacy.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: vec![hybrid.public().to_bytes()],
        }))
        .await
        .unwrap();
    let last = fetcher.bundle_of(&legacy.address()).await;
    assert_eq!(last.one_time_prekey(), Some(&hybrid.public()));
}

async fn a_full_stock_of_hybrid_one_time_prekeys_fits_one_request(backend: Backend) {
    if !backend.available("pqxdh relay tests") {
        return;
    }
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let max = alcove_server::limits::Limits::default().max_one_time_prekeys;
    // Registration with the full stock: about 250 KiB.
    let owner = Device::registered(&relay, u32::try_from(max).unwrap()).await;
    assert_eq!(count(&owner).await as usize, max);
    // One more is over the per-device limit, with the relay's own message.
    let extra = common::one_time_prekeys(&owner.identity, 10_000..10_001);
    let r = owner
        .keys()
        .upload_one_time_pre_keys(owner.req(UploadOneTimePreKeysRequest {
            one_time_prekeys: extra,
        }))
        .await;
    assert_eq!(code(r), Code::ResourceExhausted);
}
