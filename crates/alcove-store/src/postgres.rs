//! The PostgreSQL backend, for several relays on one database.
//!
//! tokio-postgres with a deadpool pool: plain async SQL, no compile-time
//! database access (a fresh machine builds it with cargo alone), and
//! LISTEN/NOTIFY through the same driver. Every mutating method is one SQL
//! transaction; PostgreSQL's commit is durable when it returns, so the
//! trait's durability contract holds without a group commit of our own.
//!
//! Schema migrations live in `migrations/NNNN_*.sql`, are compiled into
//! the binary, and are applied at start-up under an advisory lock (so two
//! relays starting together do not race), each recorded in
//! `schema_migrations`.
//!
//! Cross-relay delivery: [`Store::enqueue`] issues `NOTIFY alcove_mailbox`
//! with the recipient's address (hex) inside its transaction, so the
//! notification goes out exactly when the envelope is committed;
//! [`PostgresStore::listen`] hands them to the relay, which wakes its live
//! subscribers. A relay that misses notifications (a restart) loses
//! nothing: subscribers resume from their cursor.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio_postgres::NoTls;

use crate::{
    Address, BlobId, BlobInfo, ClientMessageId, DeviceRecord, Enqueued, LogEntry, Result, Store,
    StoreError, StoredMessage,
};

/// The migrations, in order: (version, SQL).
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_dedupe_window.sql")),
    (3, include_str!("../migrations/0003_enqueue_function.sql")),
];

/// The NOTIFY channel of new envelopes (payload: recipient address, hex).
pub const CHANNEL: &str = "alcove_mailbox";

/// Advisory-lock keys.
const MIGRATION_LOCK: i64 = 0x616c_636f_7665_0001;
const KEYLOG_LOCK: i64 = 0x616c_636f_7665_0002;

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
    url: String,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`), applies pending
    /// migrations and returns the store.
    pub async fn connect(url: &str) -> Result<Self> {
        let config: tokio_postgres::Config = url.parse().map_err(db)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager).max_size(16).build().map_err(db)?;
        let store = Self {
            pool,
            url: url.to_string(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(db)
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db)?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await
                .map_err(db)?;
            if done.is_none() {
                tx.batch_execute(sql).await.map_err(db)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await
                .map_err(db)?;
                tracing::info!(version, "applied schema migration");
            }
        }
        let newest: Option<i32> = tx
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await
            .map_err(db)?
            .get(0);
        if newest > MIGRATIONS.last().map(|m| m.0) {
            return Err(StoreError::Corrupt(
                "schema_migrations: the database is newer than this relay",
            ));
        }
        tx.commit().await.map_err(db)
    }

    /// Notifications of new envelopes from every relay on this database
    /// (LISTEN on a connection of its own). The receiver ends if that
    /// connection drops; the caller listens again.
    pub async fn listen(&self) -> Result<Notifications> {
        let (client, mut connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(db)?;
        let (tx, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            while let Some(Ok(msg)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                    let mut address = [0u8; 32];
                    if hex_decode(n.payload(), &mut address) && tx.send(address).is_err() {
                        return;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(db)?;
        Ok(Notifications {
            _client: client,
            receiver,
        })
    }
}

/// A LISTEN connection and the addresses it hears about.
pub struct Notifications {
    _client: tokio_postgres::Client,
    /// Recipients with new envelopes.
    pub receiver: tokio::sync::mpsc::UnboundedReceiver<Address>,
}

fn hex_decode(text: &str, out: &mut [u8; 32]) -> bool {
    if text.len() != 64 {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        match u8::from_str_radix(&text[2 * i..2 * i + 2], 16) {
            Ok(b) => *o = b,
            Err(_) => return false,
        }
    }
    true
}

fn device_of(row: &tokio_postgres::Row) -> DeviceRecord {
    DeviceRecord {
        registered_at_ms: row.get("registered_at_ms"),
        identity: row.get("identity"),
        signed_prekey: row.get("signed_prekey"),
        log_index: u64_of(row.get("log_index")),
        epoch: u64_of(row.get("epoch")),
    }
}

fn entry_of(row: &tokio_postgres::Row) -> Result<LogEntry> {
    let address: Vec<u8> = row.get("address");
    let salt: Vec<u8> = row.get("salt");
    Ok(LogEntry {
        index: u64_of(row.get("idx")),
        address: address
            .try_into()
            .map_err(|_| StoreError::Corrupt("keylog: address"))?,
        epoch: u64_of(row.get("epoch")),
        salt: salt
            .try_into()
            .map_err(|_| StoreError::Corrupt("keylog: salt"))?,
        logged_at_ms: row.get("logged_at_ms"),
        identity: row.get("identity"),
        signed_prekey: row.get("signed_prekey"),
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn publish_keys(
        &self,
        address: &Address,
        identity: Option<&[u8]>,
        signed_prekey: &[u8],
        salt: &[u8; 32],
        now_ms: i64,
    ) -> Result<LogEntry> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        // One appender at a time, across relays: the log is a sequence.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEYLOG_LOCK])
            .await
            .map_err(db)?;
        let current = tx
            .query_opt(
                "SELECT * FROM devices WHERE address = $1 FOR UPDATE",
                &[&address.as_slice()],
            )
            .await
            .map_err(db)?
            .map(|r| device_of(&r));
        let (identity, epoch, registered_at_ms) =
            crate::records::next_publication(identity, current.as_ref(), now_ms)?;
        let index: i64 = tx
            .query_one("SELECT COALESCE(max(idx) + 1, 0) FROM keylog", &[])
            .await
            .map_err(db)?
            .get(0);
        tx.execute(
            "INSERT INTO keylog (idx, address, epoch, salt, logged_at_ms, identity, signed_prekey)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &index,
                &address.as_slice(),
                &i64_of(epoch),
                &salt.as_slice(),
                &now_ms,
                &identity,
                &signed_prekey,
            ],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "INSERT INTO devices (address, registered_at_ms, identity, signed_prekey, log_index, epoch)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (address) DO UPDATE SET identity = $3, signed_prekey = $4,
                 log_index = $5, epoch = $6",
            &[
                &address.as_slice(),
                &registered_at_ms,
                &identity,
                &signed_prekey,
                &index,
                &i64_of(epoch),
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(LogEntry {
            index: u64_of(index),
            address: *address,
            epoch,
            salt: *salt,
            logged_at_ms: now_ms,
            identity,
            signed_prekey: signed_prekey.to_vec(),
        })
    }

    async fn device(&self, address: &Address) -> Result<Option<DeviceRecord>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT * FROM devices WHERE address = $1",
                &[&address.as_slice()],
            )
            .await
            .map_err(db)?
            .map(|r| device_of(&r)))
    }

    async fn log_size(&self) -> Result<u64> {
        let n: i64 = self
            .client()
            .await?
            .query_one("SELECT COALESCE(max(idx) + 1, 0) FROM keylog", &[])
            .await
            .map_err(db)?
            .get(0);
        Ok(u64_of(n))
    }

    async fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT * FROM keylog WHERE idx >= $1 ORDER BY idx LIMIT $2",
                &[&i64_of(from), &i64_of(limit as u64)],
            )
            .await
            .map_err(db)?;
        let entries = rows.iter().map(entry_of).collect::<Result<Vec<_>>>()?;
        for (i, e) in entries.iter().enumerate() {
            if e.index != from + i as u64 {
                return Err(StoreError::Corrupt("keylog: gap in the log"));
            }
        }
        Ok(entries)
    }

    async fn add_one_time_prekeys(
        &self,
        address: &Address,
        keys: &[(u32, Vec<u8>)],
        limit: usize,
    ) -> Result<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), 1))",
            &[&address.as_slice()],
        )
        .await
        .map_err(db)?;
        let existing: Vec<i64> = tx
            .query(
                "SELECT id FROM one_time_prekeys WHERE address = $1",
                &[&address.as_slice()],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut ids: std::collections::BTreeSet<i64> = existing.into_iter().collect();
        for (id, _) in keys {
            ids.insert(i64::from(*id));
        }
        if ids.len() > limit {
            return Err(StoreError::TooManyPreKeys { limit });
        }
        for (id, key) in keys {
            tx.execute(
                "INSERT INTO one_time_prekeys (address, id, prekey) VALUES ($1, $2, $3)
                 ON CONFLICT (address, id) DO UPDATE SET prekey = $3",
                &[&address.as_slice(), &i64::from(*id), key],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(ids.len())
    }

    async fn take_one_time_prekey(&self, address: &Address) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "DELETE FROM one_time_prekeys WHERE (address, id) = (
                     SELECT address, id FROM one_time_prekeys WHERE address = $1
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING prekey",
                &[&address.as_slice()],
            )
            .await
            .map_err(db)?
            .map(|r| r.get(0)))
    }

    async fn count_one_time_prekeys(&self, address: &Address) -> Result<usize> {
        let n: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM one_time_prekeys WHERE address = $1",
                &[&address.as_slice()],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn enqueue(
        &self,
        recipient: &Address,
        client_message_id: &ClientMessageId,
        envelope: &[u8],
        received_at_ms: i64,
        max_depth: u64,
    ) -> Result<Enqueued> {
        // One round trip: the steps and their locking are in migration 3
        // (`alcove_enqueue`), which runs them in one transaction.
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT out_seq, out_duplicate, out_full
                 FROM alcove_enqueue($1, $2, $3, $4, $5, $6)",
                &[
                    &recipient.as_slice(),
                    &client_message_id.as_slice(),
                    &envelope,
                    &received_at_ms,
                    &i64_of(max_depth),
                    &CHANNEL,
                ],
            )
            .await
            .map_err(db)?;
        if row.get::<_, bool>(2) {
            return Err(StoreError::MailboxFull { limit: max_depth });
        }
        let sequence: i64 = row
            .get::<_, Option<i64>>(0)
            .ok_or(StoreError::Corrupt("alcove_enqueue: no sequence"))?;
        Ok(Enqueued {
            sequence: u64_of(sequence),
            duplicate: row.get(1),
        })
    }

    async fn fetch(
        &self,
        recipient: &Address,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT seq, received_at_ms, envelope FROM mailboxes
                 WHERE address = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[
                    &recipient.as_slice(),
                    &i64_of(after),
                    &i64_of(limit as u64 + 1),
                ],
            )
            .await
            .map_err(db)?;
        let more = rows.len() > limit;
        let out = rows
            .iter()
            .take(limit)
            .map(|r| StoredMessage {
                sequence: u64_of(r.get(0)),
                received_at_ms: r.get(1),
                envelope: r.get(2),
            })
            .collect();
        Ok((out, more))
    }

    async fn ack(&self, recipient: &Address, sequences: &[u64]) -> Result<usize> {
        let seqs: Vec<i64> = sequences.iter().map(|s| i64_of(*s)).collect();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let deleted = tx
            .execute(
                "DELETE FROM mailboxes WHERE address = $1 AND seq = ANY($2)",
                &[&recipient.as_slice(), &seqs],
            )
            .await
            .map_err(db)?;
        if deleted > 0 {
            tx.execute(
                "UPDATE mailbox_heads SET depth = GREATEST(depth - $2, 0) WHERE address = $1",
                &[&recipient.as_slice(), &i64_of(deleted)],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn depth(&self, recipient: &Address) -> Result<u64> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT depth FROM mailbox_heads WHERE address = $1",
                &[&recipient.as_slice()],
            )
            .await
            .map_err(db)?
            .map_or(0, |r| u64_of(r.get(0))))
    }

    async fn last_sequence(&self, recipient: &Address) -> Result<u64> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT last_seq FROM mailbox_heads WHERE address = $1",
                &[&recipient.as_slice()],
            )
            .await
            .map_err(db)?
            .map_or(0, |r| u64_of(r.get(0))))
    }

    async fn prune_dedupe(&self, before_ms: i64, window: u64) -> Result<usize> {
        let client = self.client().await?;
        let expired = client
            .execute(
                "DELETE FROM dedupe WHERE received_at_ms < $1",
                &[&before_ms],
            )
            .await
            .map_err(db)?;
        // Acknowledged messages older than the window: their row in
        // `mailboxes` is gone and the head has moved `window` past them.
        let window = i64::try_from(window).unwrap_or(i64::MAX);
        let outside = client
            .execute(
                "DELETE FROM dedupe d USING mailbox_heads h
                 WHERE d.address = h.address
                   AND d.seq <= h.last_seq - $1
                   AND NOT EXISTS (
                       SELECT 1 FROM mailboxes m
                       WHERE m.address = d.address AND m.seq = d.seq)",
                &[&window],
            )
            .await
            .map_err(db)?;
        Ok(usize::try_from(expired + outside).unwrap_or(usize::MAX))
    }

    async fn begin_blob(&self, id: &BlobId, expires_at_ms: i64) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO blobs (id, finished, size, chunks, expires_at_ms)
                 VALUES ($1, false, 0, 0, $2)",
                &[&id.as_slice(), &expires_at_ms],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn put_blob_chunk(&self, id: &BlobId, index: u32, data: &[u8]) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO blob_chunks (id, idx, data) VALUES ($1, $2, $3)
                 ON CONFLICT (id, idx) DO UPDATE SET data = $3",
                &[&id.as_slice(), &(index as i32), &data],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn finish_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE blobs SET finished = $2, size = $3, chunks = $4, expires_at_ms = $5
                 WHERE id = $1",
                &[
                    &id.as_slice(),
                    &info.finished,
                    &i64_of(info.size),
                    &(info.chunks as i32),
                    &info.expires_at_ms,
                ],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn blob(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT finished, size, chunks, expires_at_ms FROM blobs WHERE id = $1",
                &[&id.as_slice()],
            )
            .await
            .map_err(db)?
            .map(|r| BlobInfo {
                finished: r.get(0),
                size: u64_of(r.get(1)),
                chunks: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
                expires_at_ms: r.get(3),
            }))
    }

    async fn blob_chunk(&self, id: &BlobId, index: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT data FROM blob_chunks WHERE id = $1 AND idx = $2",
                &[&id.as_slice(), &(index as i32)],
            )
            .await
            .map_err(db)?
            .map(|r| r.get(0)))
    }

    async fn delete_blob(&self, id: &BlobId) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute("DELETE FROM blob_chunks WHERE id = $1", &[&id.as_slice()])
            .await
            .map_err(db)?;
        tx.execute("DELETE FROM blobs WHERE id = $1", &[&id.as_slice()])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn expired_blobs(&self, now_ms: i64, limit: usize) -> Result<Vec<BlobId>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id FROM blobs WHERE expires_at_ms < $1 LIMIT $2",
                &[&now_ms, &i64_of(limit as u64)],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let id: Vec<u8> = r.get(0);
                id.try_into().map_err(|_| StoreError::Corrupt("blobs: id"))
            })
            .collect()
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client()
            .await?
            .query_opt("SELECT value FROM meta WHERE name = $1", &[&key])
            .await
            .map_err(db)?
            .map(|r| r.get(0)))
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = $2",
                &[&key, &value],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn meta_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&key, &value],
        )
        .await
        .map_err(db)?;
        Ok(
            c.query_one("SELECT value FROM meta WHERE name = $1", &[&key])
                .await
                .map_err(db)?
                .get(0),
        )
    }

    async fn total_depth(&self) -> Result<u64> {
        let n: Option<i64> = self
            .client()
            .await?
            .query_one("SELECT sum(depth)::BIGINT FROM mailbox_heads", &[])
            .await
            .map_err(db)?
            .get(0);
        Ok(u64_of(n.unwrap_or(0)))
    }

    async fn flush(&self) -> Result<()> {
        // Every commit is already durable.
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        self.pool.close();
        Ok(())
    }
}
