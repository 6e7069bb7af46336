//! The start-up repair pass, on the partial states a crash can leave when
//! sled recovers only part of a transaction (see `src/sled/recovery.rs`). Each
//! state is made by hand with raw sled, then the store is reopened.

use alcove_store::{mailbox_tag, SledStore, Store};

const R: [u8; 32] = [7; 32];

fn key(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = R.to_vec();
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

fn with_raw(dir: &std::path::Path, f: impl FnOnce(&sled::Db)) {
    let db = sled::open(dir).unwrap();
    f(&db);
    db.flush().unwrap();
}

fn envelope() -> Vec<u8> {
    vec![1u8; 449]
}

#[tokio::test]
async fn a_message_without_its_idempotency_key_is_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        let e = s.enqueue(&R, &[1; 16], &envelope(), 5, 100).await.unwrap();
        assert_eq!((e.sequence, e.duplicate), (1, false));
        s.enqueue(&R, &[2; 16], &envelope(), 6, 100).await.unwrap();
        s.close().await.unwrap();
    }
    // The crash kept message 2 but lost its idempotency key and the
    // counter update, and kept an idempotency key whose message is gone.
    with_raw(dir.path(), |db| {
        let t = db.open_tree("mailboxes").unwrap();
        t.remove(key(mailbox_tag::DEDUPE, &[2; 16])).unwrap();
        let mut head = vec![1u8];
        head.extend_from_slice(&1u64.to_be_bytes());
        head.extend_from_slice(&1u64.to_be_bytes());
        t.insert(key(mailbox_tag::HEAD, &[]), head).unwrap();
        let mut ghost = vec![1u8];
        ghost.extend_from_slice(&3u64.to_be_bytes());
        ghost.extend_from_slice(&7i64.to_be_bytes());
        t.insert(key(mailbox_tag::DEDUPE, &[3; 16]), ghost).unwrap();
    });
    let s = SledStore::open(dir.path()).unwrap();
    let r = s.repairs();
    assert_eq!(
        (r.dedupe_restored, r.dedupe_dropped, r.heads_fixed),
        (1, 1, 1)
    );
    // The retry of message 2 is recognised; the counters are right; the
    // message whose record was lost is stored when retried.
    let again = s.enqueue(&R, &[2; 16], &envelope(), 9, 100).await.unwrap();
    assert_eq!((again.sequence, again.duplicate), (2, true));
    assert_eq!(s.depth(&R).await.unwrap(), 2);
    let lost = s.enqueue(&R, &[3; 16], &envelope(), 9, 100).await.unwrap();
    assert_eq!((lost.sequence, lost.duplicate), (3, false));
    let (msgs, _) = s.fetch(&R, 0, 10).await.unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    s.close().await.unwrap();
    drop(s);
    // A clean store needs no repair.
    let s = SledStore::open(dir.path()).unwrap();
    assert!(!s.repairs().any(), "{:?}", s.repairs());
}

#[tokio::test]
async fn the_key_log_is_made_whole_again() {
    let dir = tempfile::tempdir().unwrap();
    let id = |b: u8| vec![b; 128];
    {
        let s = SledStore::open(dir.path()).unwrap();
        for b in 1..=3u8 {
            s.publish_keys(&[b; 32], Some(&id(b)), &[b; 108], &[0; 32], 1)
                .await
                .unwrap();
        }
        s.close().await.unwrap();
    }
    // Entry 1 (device 2's) is lost; entry 2 survived past the gap; the
    // size still says 3.
    with_raw(dir.path(), |db| {
        let t = db.open_tree("devices").unwrap();
        let mut k = vec![1u8];
        k.extend_from_slice(&1u64.to_be_bytes());
        t.remove(k).unwrap();
    });
    let s = SledStore::open(dir.path()).unwrap();
    let r = s.repairs();
    assert!(r.log_fixed >= 1 && r.devices_relogged == 2, "{r:?}");
    // Contiguous again, and every device's record points at an entry with
    // its keys.
    let size = s.log_size().await.unwrap();
    let entries = s.log_entries(0, 100).await.unwrap();
    assert_eq!(entries.len() as u64, size);
    assert_eq!(size, 3);
    for b in 1..=3u8 {
        let d = s.device(&[b; 32]).await.unwrap().unwrap();
        let e = &entries[d.log_index as usize];
        assert_eq!(
            (e.address, e.keys().map(|k| k.0)),
            ([b; 32], Some(d.identity.as_slice()))
        );
    }
}

/// Start-up recovery reads the whole devices tree: a delivery policy kept
/// there must not stop a relay from opening its own store again.
#[tokio::test]
async fn a_store_with_delivery_policies_opens_again() {
    use alcove_store::DeliveryPolicy;
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.publish_keys(&[1; 32], Some(&[7; 128]), &[1; 108], &[3; 32], 5)
            .await
            .unwrap();
        s.set_delivery_policy(&[1; 32], DeliveryPolicy::Verifier([9; 32]))
            .await
            .unwrap();
        s.close().await.unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        s.delivery_policy(&[1; 32]).await.unwrap(),
        Some(DeliveryPolicy::Verifier([9; 32]))
    );
}

/// A store already open elsewhere is refused with a typed error (the relay
/// waits on it at start-up), not an error whose text must be read; once
/// the first owner closed, the store opens.
#[tokio::test]
async fn a_store_open_elsewhere_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path()).unwrap();
    match SledStore::open(dir.path()) {
        Err(alcove_store::StoreError::Locked(reason)) => {
            assert!(reason.contains("lock"), "{reason}")
        }
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second owner opened a locked store"),
    }
    first.close().await.unwrap();
    drop(first);
    SledStore::open(dir.path()).unwrap();
}
