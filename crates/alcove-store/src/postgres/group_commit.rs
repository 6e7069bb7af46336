//! Group commit for sends on PostgreSQL.
//!
//! One send alone is one statement and one commit, and the commit waits
//! for the WAL flush: on a busy relay, most of a send's time is that
//! flush. So sends are queued to one committer task, which takes every send
//! waiting (up to [`MAX_BATCH`] or [`MAX_BATCH_BYTES`]) and stores them with
//! one statement — `alcove_enqueue` applied to each row of the batch, in
//! order, in the statement's one transaction — so they share one round
//! trip and one commit. Sends that arrive while a batch commits form the
//! next batch.
//!
//! What does not change: each send still locks its mailbox's head, checks
//! its idempotency key (a repeat inside the same batch sees the first,
//! since the rows run in order in one transaction) and takes the next
//! sequence; and no send is answered before the commit that holds it has
//! returned. Rows are ordered by recipient address (stably, so sends to one
//! mailbox keep their arrival order), so two relays' batches take head
//! locks in the same order and cannot deadlock. If the statement fails,
//! every send of the batch gets the error, and nothing of the batch was
//! stored (one transaction); a retry is idempotent.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use super::{db, i64_of, pool_error, u64_of};
use crate::{Address, ClientMessageId, Enqueued, FlushStats, PgSettings, Result, StoreError};

/// Most sends in one batch.
pub const MAX_BATCH: usize = 256;
/// Most envelope bytes in one batch.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

const SQL: &str = "SELECT e.out_seq, e.out_duplicate, e.out_full
     FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[])
          WITH ORDINALITY AS s(address, id, envelope, received_at_ms, max_depth, n)
     CROSS JOIN LATERAL alcove_enqueue(s.address, s.id, s.envelope, s.received_at_ms,
                                       s.max_depth, $6) AS e
     ORDER BY s.n";

/// One send waiting for its batch.
pub(crate) struct Pending {
    pub recipient: Address,
    pub id: ClientMessageId,
    pub envelope: Vec<u8>,
    pub received_at_ms: i64,
    pub max_depth: u64,
    pub reply: oneshot::Sender<Result<Enqueued>>,
}

/// Starts the committer; it ends when the sender side is dropped.
pub(crate) fn start(
    pool: Pool,
    channel: String,
    settings: PgSettings,
    stats: Arc<FlushStats>,
) -> mpsc::UnboundedSender<Pending> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut bytes = first.envelope.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(p) => {
                        bytes += p.envelope.len();
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            let (n, started) = (batch.len() as u64, Instant::now());
            commit(&pool, &channel, &settings, batch).await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            stats.flushes.fetch_add(1, Ordering::Relaxed);
            stats.commits.fetch_add(n, Ordering::Relaxed);
            stats.flush_micros.fetch_add(micros, Ordering::Relaxed);
            stats.max_flush_micros.fetch_max(micros, Ordering::Relaxed);
        }
    });
    tx
}

async fn commit(pool: &Pool, channel: &str, settings: &PgSettings, mut batch: Vec<Pending>) {
    batch.sort_by_key(|p| p.recipient);
    let deadline: Duration = settings.deadline();
    let outcome = tokio::time::timeout(deadline, store(pool, channel, settings, &batch))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the database did not answer within {deadline:?}"
            )))
        });
    match outcome {
        Ok(results) => {
            for (p, r) in batch.into_iter().zip(results) {
                let _ = p.reply.send(r);
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
    }
}

async fn store(
    pool: &Pool,
    channel: &str,
    settings: &PgSettings,
    batch: &[Pending],
) -> Result<Vec<Result<Enqueued>>> {
    let c = pool.get().await.map_err(|e| pool_error(e, settings))?;
    let statement = c.prepare_cached(SQL).await.map_err(db)?;
    let addresses: Vec<&[u8]> = batch.iter().map(|p| p.recipient.as_slice()).collect();
    let ids: Vec<&[u8]> = batch.iter().map(|p| p.id.as_slice()).collect();
    let envelopes: Vec<&[u8]> = batch.iter().map(|p| p.envelope.as_slice()).collect();
    let times: Vec<i64> = batch.iter().map(|p| p.received_at_ms).collect();
    let depths: Vec<i64> = batch.iter().map(|p| i64_of(p.max_depth)).collect();
    let rows = c
        .query(
            &statement,
            &[&addresses, &ids, &envelopes, &times, &depths, &channel],
        )
        .await
        .map_err(db)?;
    if rows.len() != batch.len() {
        return Err(StoreError::Corrupt(
            "alcove_enqueue: a batch row is missing",
        ));
    }
    Ok(rows
        .iter()
        .zip(batch)
        .map(|(row, p)| {
            if row.get::<_, bool>(2) {
                return Err(StoreError::MailboxFull { limit: p.max_depth });
            }
            let sequence: i64 = row
                .get::<_, Option<i64>>(0)
                .ok_or(StoreError::Corrupt("alcove_enqueue: no sequence"))?;
            Ok(Enqueued {
                sequence: u64_of(sequence),
                duplicate: row.get(1),
            })
        })
        .collect())
}
