//! The storage trait's contract, run against every backend: sled always,
//! PostgreSQL when `ALCOVE_TEST_POSTGRES_URL` names a server (each test in
//! a schema of its own, dropped afterwards). Without it the PostgreSQL
//! half says it was skipped and why.

use std::collections::HashSet;
use std::sync::Arc;

use alcove_store::testing::{postgres_url, TestSchema};
use alcove_store::{BlobInfo, PostgresStore, SledStore, Store, StoreError};

/// A backend's name, its store, and what keeps its data alive (a temporary
/// directory or a schema, removed when dropped).
type Backend = (&'static str, Arc<dyn Store>, Box<dyn std::any::Any + Send>);

async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let mut out: Vec<Backend> = vec![("sled", sled, Box::new(dir))];
    if let Some(base) = postgres_url("the storage conformance suite") {
        let schema = TestSchema::create(&base).await;
        let pg: Arc<dyn Store> = Arc::new(PostgresStore::connect(schema.url()).await.unwrap());
        out.push(("postgres", pg, Box::new(schema)));
    }
    out
}

async fn for_each<F, Fut>(test: F)
where
    F: Fn(&'static str, Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for (name, store, keep) in backends().await {
        test(name, store.clone()).await;
        store.close().await.unwrap();
        drop(store);
        drop(keep);
    }
}

const A: [u8; 32] = [1; 32];
const B: [u8; 32] = [2; 32];

#[tokio::test]
async fn mailboxes_are_ordered_idempotent_and_bounded() {
    for_each(|name, s| async move {
        let e1 = s.enqueue(&A, &[1; 16], b"one", 10, 3).await.unwrap();
        let e2 = s.enqueue(&A, &[2; 16], b"two", 11, 3).await.unwrap();
        let again = s.enqueue(&A, &[1; 16], b"one", 12, 3).await.unwrap();
        assert_eq!((e1.sequence, e2.sequence), (1, 2), "{name}");
        assert_eq!((again.sequence, again.duplicate), (1, true), "{name}");
        s.enqueue(&B, &[1; 16], b"other", 13, 3).await.unwrap();
        s.enqueue(&A, &[3; 16], b"three", 14, 3).await.unwrap();
        assert!(
            matches!(
                s.enqueue(&A, &[4; 16], b"four", 15, 3).await,
                Err(StoreError::MailboxFull { limit: 3 })
            ),
            "{name}"
        );
        let (page, more) = s.fetch(&A, 0, 2).await.unwrap();
        assert_eq!(page.iter().map(|m| m.sequence).collect::<Vec<_>>(), [1, 2]);
        assert!(more, "{name}");
        assert_eq!(page[0].envelope, b"one");
        assert_eq!(page[0].received_at_ms, 10);
        let (rest, more) = s.fetch(&A, 2, 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert!(!more);
        assert_eq!(s.depth(&A).await.unwrap(), 3);
        assert_eq!(s.ack(&A, &[1, 3, 99]).await.unwrap(), 2, "{name}");
        assert_eq!(s.depth(&A).await.unwrap(), 1);
        assert_eq!(s.last_sequence(&A).await.unwrap(), 3);
        // Sequences are never reused, and an acked id stays recognised.
        let next = s.enqueue(&A, &[5; 16], b"five", 16, 3).await.unwrap();
        assert_eq!(next.sequence, 4, "{name}");
        let old = s.enqueue(&A, &[1; 16], b"one", 17, 3).await.unwrap();
        assert_eq!((old.sequence, old.duplicate), (1, true), "{name}");
        assert_eq!(s.total_depth().await.unwrap(), 3, "{name}");
        assert_eq!(
            s.prune_dedupe(12, u64::MAX).await.unwrap(),
            2,
            "{name}: ids before t=12"
        );
        s.flush().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn acknowledged_ids_outside_the_window_are_forgotten_waiting_ones_never() {
    for_each(|name, s| async move {
        for i in 1..=10u8 {
            s.enqueue(&A, &[i; 16], b"m", 100, 100).await.unwrap();
        }
        s.enqueue(&B, &[1; 16], b"m", 100, 100).await.unwrap();
        // 3 still waits; 7 is acknowledged but among the last 4.
        assert_eq!(s.ack(&A, &[1, 2, 4, 5, 6, 7]).await.unwrap(), 6);
        assert_eq!(s.ack(&B, &[1]).await.unwrap(), 1);
        assert_eq!(
            s.prune_dedupe(0, 4).await.unwrap(),
            5,
            "{name}: 1, 2, 4, 5 and 6 of A are acknowledged and 4 behind"
        );
        assert_eq!(s.prune_dedupe(0, 4).await.unwrap(), 0, "{name}: again");
        let retry = |id: u8| {
            let s = s.clone();
            async move { s.enqueue(&A, &[id; 16], b"m", 200, 100).await.unwrap() }
        };
        let waiting = retry(3).await;
        assert_eq!((waiting.sequence, waiting.duplicate), (3, true), "{name}");
        let recent = retry(7).await;
        assert_eq!((recent.sequence, recent.duplicate), (7, true), "{name}");
        let forgotten = retry(1).await;
        assert_eq!(
            (forgotten.sequence, forgotten.duplicate),
            (11, false),
            "{name}: an id outside the window is stored again"
        );
        let b = s.enqueue(&B, &[1; 16], b"m", 200, 100).await.unwrap();
        assert_eq!((b.sequence, b.duplicate), (1, true), "{name}: B's window");
    })
    .await;
}

#[tokio::test]
async fn concurrent_sends_of_one_id_store_it_once() {
    for_each(|name, s| async move {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.enqueue(&A, &[9; 16], b"x", 1, 100).await.unwrap() })
            })
            .collect();
        let mut seqs = HashSet::new();
        let mut fresh = 0;
        for t in tasks {
            let e = t.await.unwrap();
            seqs.insert(e.sequence);
            fresh += usize::from(!e.duplicate);
        }
        assert_eq!((seqs.len(), fresh), (1, 1), "{name}");
        assert_eq!(s.depth(&A).await.unwrap(), 1, "{name}");
    })
    .await;
}

#[tokio::test]
async fn one_time_prekeys_are_handed_out_once() {
    for_each(|name, s| async move {
        let keys: Vec<(u32, Vec<u8>)> = (0..20).map(|i| (i, vec![i as u8; 36])).collect();
        assert_eq!(s.add_one_time_prekeys(&A, &keys, 25).await.unwrap(), 20);
        // Replacing existing ids does not count twice; the limit is whole.
        assert_eq!(
            s.add_one_time_prekeys(&A, &keys[..5], 25).await.unwrap(),
            20
        );
        let too_many: Vec<(u32, Vec<u8>)> = (100..110).map(|i| (i, vec![0; 36])).collect();
        assert!(matches!(
            s.add_one_time_prekeys(&A, &too_many, 25).await,
            Err(StoreError::TooManyPreKeys { limit: 25 })
        ));
        assert_eq!(s.count_one_time_prekeys(&A).await.unwrap(), 20, "{name}");
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.take_one_time_prekey(&A).await.unwrap() })
            })
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.extend(t.await.unwrap());
        }
        let unique: HashSet<_> = got.iter().cloned().collect();
        assert_eq!((got.len(), unique.len()), (20, 20), "{name}");
        assert_eq!(s.count_one_time_prekeys(&A).await.unwrap(), 0);
        assert_eq!(s.take_one_time_prekey(&A).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn key_publication_appends_to_the_log() {
    for_each(|name, s| async move {
        assert!(matches!(
            s.publish_keys(&A, None, &[1; 108], &[0; 32], 5).await,
            Err(StoreError::NotFound("device"))
        ));
        let e0 = s
            .publish_keys(&A, Some(&[7; 128]), &[1; 108], &[3; 32], 5)
            .await
            .unwrap();
        assert_eq!((e0.index, e0.epoch), (0, 0), "{name}");
        let e1 = s
            .publish_keys(&A, None, &[2; 108], &[4; 32], 6)
            .await
            .unwrap();
        assert_eq!(
            (e1.index, e1.epoch, e1.keys().map(|k| k.0.to_vec())),
            (1, 1, Some(vec![7; 128]))
        );
        let d = s.device(&A).await.unwrap().unwrap();
        assert_eq!(
            (d.log_index, d.epoch, d.registered_at_ms),
            (1, 1, 5),
            "{name}"
        );
        assert_eq!(d.signed_prekey, vec![2; 108]);
        // Concurrent registrations: contiguous indexes, no gaps.
        let tasks: Vec<_> = (10..30u8)
            .map(|b| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.publish_keys(&[b; 32], Some(&[b; 128]), &[b; 108], &[b; 32], 7)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.log_size().await.unwrap(), 22, "{name}");
        let entries = s.log_entries(0, 100).await.unwrap();
        assert_eq!(entries.len(), 22);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, i as u64);
            let d = s.device(&e.address).await.unwrap().unwrap();
            assert!(d.log_index >= e.index);
        }
        assert_eq!(entries[1], e1, "{name}");
        assert_eq!(s.log_entries(21, 5).await.unwrap().len(), 1);
        assert!(s.device(&B).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn blobs_and_settings() {
    for_each(|name, s| async move {
        let id = [5u8; 16];
        s.begin_blob(&id, 5, 100).await.unwrap();
        s.put_blob_chunk(&id, 0, b"abc").await.unwrap();
        s.put_blob_chunk(&id, 1, b"xy").await.unwrap();
        // A piece sent again replaces the first copy (resumed uploads).
        s.put_blob_chunk(&id, 1, b"de").await.unwrap();
        assert_eq!(
            s.blob_chunk_indices(&id).await.unwrap(),
            vec![0, 1],
            "{name}"
        );
        assert!(s.blob_chunk_indices(&[6u8; 16]).await.unwrap().is_empty());
        let pending = s.blob(&id).await.unwrap().unwrap();
        assert!(!pending.finished, "{name}");
        assert_eq!(pending.size, 5, "{name}: the declared size is kept");
        let info = BlobInfo {
            finished: true,
            size: 5,
            chunks: 2,
            expires_at_ms: 1000,
        };
        s.finish_blob(&id, &info).await.unwrap();
        assert_eq!(s.blob(&id).await.unwrap(), Some(info));
        assert_eq!(s.blob_chunk(&id, 1).await.unwrap(), Some(b"de".to_vec()));
        assert_eq!(s.blob_chunk(&id, 2).await.unwrap(), None);
        assert!(s.expired_blobs(999, 10).await.unwrap().is_empty());
        assert_eq!(s.expired_blobs(1001, 10).await.unwrap(), vec![id]);
        s.delete_blob(&id).await.unwrap();
        assert_eq!(s.blob(&id).await.unwrap(), None);
        assert_eq!(s.blob_chunk(&id, 0).await.unwrap(), None, "{name}");

        assert_eq!(s.meta("k").await.unwrap(), None);
        assert_eq!(s.meta_or_insert("k", b"first").await.unwrap(), b"first");
        assert_eq!(s.meta_or_insert("k", b"second").await.unwrap(), b"first");
        s.put_meta("k", b"third").await.unwrap();
        assert_eq!(
            s.meta("k").await.unwrap(),
            Some(b"third".to_vec()),
            "{name}"
        );
        s.delete_meta("k").await.unwrap();
        assert_eq!(s.meta("k").await.unwrap(), None, "{name}");
        s.delete_meta("k").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn delivery_policies_belong_to_registered_devices() {
    use alcove_store::DeliveryPolicy;
    for_each(|name, s| async move {
        assert_eq!(s.delivery_policy(&A).await.unwrap(), None, "{name}");
        assert!(
            matches!(
                s.set_delivery_policy(&A, DeliveryPolicy::Open).await,
                Err(StoreError::NotFound("device"))
            ),
            "{name}: a policy for an unregistered device"
        );
        s.publish_keys(&A, Some(&[7; 128]), &[1; 108], &[3; 32], 5)
            .await
            .unwrap();
        assert_eq!(
            s.delivery_policy(&A).await.unwrap(),
            Some(DeliveryPolicy::Open),
            "{name}: a device that never set a policy accepts anyone"
        );
        s.set_delivery_policy(&A, DeliveryPolicy::Verifier([9; 32]))
            .await
            .unwrap();
        assert_eq!(
            s.delivery_policy(&A).await.unwrap(),
            Some(DeliveryPolicy::Verifier([9; 32]))
        );
        // A rotation replaces the verifier; opening up replaces it too.
        s.set_delivery_policy(&A, DeliveryPolicy::Verifier([8; 32]))
            .await
            .unwrap();
        assert_eq!(
            s.delivery_policy(&A).await.unwrap(),
            Some(DeliveryPolicy::Verifier([8; 32]))
        );
        s.set_delivery_policy(&A, DeliveryPolicy::Open)
            .await
            .unwrap();
        assert_eq!(
            s.delivery_policy(&A).await.unwrap(),
            Some(DeliveryPolicy::Open)
        );
        assert_eq!(s.delivery_policy(&B).await.unwrap(), None, "{name}");
    })
    .await;
}

#[tokio::test]
async fn credential_records_are_logged_in_order_and_written_only_on_the_epoch_read() {
    for_each(|name, s| async move {
        const A: [u8; 32] = [5; 32];
        let record = |b: u8| vec![b; 64];
        assert!(matches!(
            s.publish_credential(&A, &record(1), &[], None, &[0; 32], 1)
                .await,
            Err(StoreError::NotFound("device"))
        ));
        s.publish_keys(&A, Some(&[7; 128]), &[1; 108], &[3; 32], 5)
            .await
            .unwrap();
        assert_eq!(s.credential(&A).await.unwrap(), None, "{name}");
        let e0 = s
            .publish_credential(&A, &record(1), &[], None, &[4; 32], 6)
            .await
            .unwrap();
        assert_eq!((e0.index, e0.epoch), (1, 0), "{name}");
        assert_eq!(e0.record, alcove_store::LogRecord::Credential(record(1)));
        // A writer that read no slot (or another epoch) is refused and
        // changes nothing.
        for stale in [None, Some(5)] {
            assert!(matches!(
                s.publish_credential(&A, &record(2), &[], stale, &[0; 32], 7)
                    .await,
                Err(StoreError::Conflict(_))
            ));
        }
        assert_eq!(s.log_size().await.unwrap(), 2, "{name}");
        // With a revocation and the revoked digest remembered.
        let revoked = [[9u8; 32]];
        let with_revocation = vec![3u8; 201];
        let e1 = s
            .publish_credential(&A, &with_revocation, &revoked, Some(0), &[5; 32], 8)
            .await
            .unwrap();
        assert_eq!((e1.index, e1.epoch), (2, 1), "{name}");
        let slot = s.credential(&A).await.unwrap().unwrap();
        assert_eq!(
            (slot.log_index, slot.epoch, slot.record, slot.revoked),
            (2, 1, with_revocation.clone(), revoked.to_vec()),
            "{name}"
        );
        // Key and credential entries share one log, in order.
        let entries = s.log_entries(0, 10).await.unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries[0].keys().is_some());
        assert_eq!(entries[2].salt, [5; 32]);
        assert_eq!(
            entries[2].record,
            alcove_store::LogRecord::Credential(with_revocation)
        );
        // A key change after it takes the next index.
        let e = s
            .publish_keys(&A, None, &[2; 108], &[6; 32], 9)
            .await
            .unwrap();
        assert_eq!(e.index, 3, "{name}");
    })
    .await;
}

#[tokio::test]
async fn envelopes_past_the_retention_period_are_deleted_as_acknowledged() {
    for_each(|name, s| async move {
        const R: [u8; 32] = [6; 32];
        for (i, at) in [(1u8, 1_000i64), (2, 2_000), (3, 9_000)] {
            s.enqueue(&R, &[i; 16], &[i; 40], at, 100).await.unwrap();
        }
        assert_eq!(
            s.messages_before(5_000, 10).await.unwrap(),
            vec![(R, 1), (R, 2)],
            "{name}"
        );
        assert_eq!(s.expire_messages(5_000, 10).await.unwrap(), 2, "{name}");
        assert_eq!(s.depth(&R).await.unwrap(), 1, "{name}");
        let (left, _) = s.fetch(&R, 0, 10).await.unwrap();
        assert_eq!(left.iter().map(|m| m.sequence).collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.expire_messages(5_000, 10).await.unwrap(), 0, "{name}");
    })
    .await;
}
