//! The PostgreSQL backend, for several relays on one database.
//!
//! tokio-postgres with a deadpool pool: plain async SQL, no compile-time
//! database access (a fresh machine builds it with cargo alone), and
//! LISTEN/NOTIFY through the same driver. Every mutating method is one SQL
//! transaction, durable when its commit returns. Sends are group-committed
//! (`group_commit`): concurrent sends share one statement and one commit,
//! and each is answered only after that commit.
//!
//! * [`connect`]: the URL, TLS (`sslmode`, `sslrootcert`) and the timeouts
//!   every connection carries; [`migrate`]: the schema migrations.
//! * Every call has a deadline ([`PgSettings::deadline`]); a database that
//!   does not answer, a lock held too long or a pool with no free
//!   connection fails the call with [`StoreError::Unavailable`] instead of
//!   hanging it, and the next call tries again.
//! * The hot statements are prepared once per connection
//!   (`prepare_cached`), so a send is one round trip.
//! * Cross-relay delivery: `alcove_enqueue` issues a NOTIFY on this
//!   deployment's channel (a random name kept in `meta`, see
//!   [`PostgresStore::channel`]) with the recipient's address, inside its
//!   transaction, so the notification goes out exactly when the envelope
//!   is committed; [`PostgresStore::listen`] hands them to the relay,
//!   which wakes its live subscribers.
//! * Advisory locks are database-wide; every key used here is derived from
//!   the schema's name, so two deployments on one server never wait for
//!   each other.

pub mod connect;
mod group_commit;
pub mod migrate;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::StreamExt;
use rand::RngCore;

pub use connect::{PgSettings, SslMode, Target};
pub use migrate::{Migration, MIGRATIONS};

use crate::{
    Address, BlobId, BlobInfo, ClientMessageId, CredentialSlot, DeliveryPolicy, DeviceRecord,
    Enqueued, LogEntry, LogRecord, Result, Store, StoreError, StoredMessage,
};

/// A dedicated connection as tokio-postgres drives it.
type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        tokio_postgres::Socket,
    >>::Stream,
>;

/// `meta` key of this deployment's notification channel.
pub const CHANNEL_META: &str = "notify_channel";

/// SQL for the key log's advisory-lock key (one per schema).
pub const KEYLOG_LOCK_SQL: &str = "hashtextextended('alcove keylog ' || current_schema(), 0)";

/// Whether `name` has the form of a channel this relay creates
/// (`alcove_` and 32 lowercase hex digits): it is put in SQL text.
pub fn is_channel_name(name: &str) -> bool {
    name.strip_prefix("alcove_").is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A database error as the caller can act on it: timeouts, lock waits and
/// lost connections are [`StoreError::Unavailable`] (retry later), the
/// rest [`StoreError::Backend`].
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    if let Some(code) = e.code() {
        let what = if *code == SqlState::QUERY_CANCELED {
            Some("a database statement ran past its statement timeout")
        } else if *code == SqlState::LOCK_NOT_AVAILABLE {
            Some("waited past the lock timeout for a database lock")
        } else if *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT {
            Some("the database ended a transaction left idle too long")
        } else if *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            Some("the database refused the statement for now")
        } else {
            None
        };
        if let Some(what) = what {
            return StoreError::Unavailable(format!("{what} ({})", code.code()));
        }
    }
    if e.is_closed() {
        return StoreError::Unavailable("lost the connection to the database".into());
    }
    // tokio-postgres puts the cause (a TLS or I/O error) in the source.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    StoreError::Backend(text)
}

fn pool_error(e: deadpool_postgres::PoolError, settings: &PgSettings) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Timeout(_) => StoreError::Unavailable(format!(
            "no database connection within {:?} (pool of {})",
            settings.pool_wait_timeout, settings.pool_size
        )),
        PoolError::Backend(e) => db(e),
        PoolError::Closed => StoreError::Backend("the store is closed".into()),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
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
    target: Target,
    settings: PgSettings,
    channel: String,
    sends: Option<tokio::sync::mpsc::UnboundedSender<group_commit::Pending>>,
    stats: std::sync::Arc<crate::FlushStats>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) with the default
    /// [`PgSettings`], applies pending migrations and returns the store.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgSettings::default()).await
    }

    /// Connects with explicit settings.
    pub async fn connect_with(url: &str, settings: PgSettings) -> Result<Self> {
        Self::connect_migrating(url, settings, MIGRATIONS).await
    }

    /// Connects, applying `migrations` (tests give their own list).
    pub async fn connect_migrating(
        url: &str,
        settings: PgSettings,
        migrations: &[Migration],
    ) -> Result<Self> {
        let target = Target::parse(url, &settings)?;
        target.check_secure(&settings)?;
        let manager = Manager::from_config(
            target.config.clone(),
            target.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.pool_wait_timeout))
            .create_timeout(Some(settings.connect_timeout + Duration::from_secs(1)))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(format!("database pool: {e}")))?;
        let mut store = Self {
            pool,
            target,
            settings,
            channel: String::new(),
            sends: None,
            stats: Default::default(),
        };
        store.migrate(migrations).await?;
        let mut fresh = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut fresh);
        let proposed = format!("alcove_{}", hex(&fresh));
        let channel = store
            .meta_or_insert(CHANNEL_META, proposed.as_bytes())
            .await?;
        store.channel = String::from_utf8(channel)
            .ok()
            .filter(|c| is_channel_name(c))
            .ok_or(StoreError::Corrupt("meta: notify_channel"))?;
        store.sends = Some(group_commit::start(
            store.pool.clone(),
            store.channel.clone(),
            store.settings.clone(),
            store.stats.clone(),
        ));
        Ok(store)
    }

    /// How this store reaches its database (TLS mode, whether local).
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// What a pooled session runs with, as the database reports it.
    pub async fn session_facts(&self) -> Result<SessionFacts> {
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                            current_setting('default_transaction_isolation'),
                            current_setting('statement_timeout'),
                            current_setting('lock_timeout'),
                            current_setting('idle_in_transaction_session_timeout')",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(SessionFacts {
                tls: row.get(0),
                isolation: row.get(1),
                statement_timeout: row.get(2),
                lock_timeout: row.get(3),
                idle_in_transaction_timeout: row.get(4),
            })
        })
        .await
    }

    /// Counters of the send group commit: batches (`flushes`) and sends
    /// (`commits`) stored, and the time batches took.
    pub fn flush_stats(&self) -> std::sync::Arc<crate::FlushStats> {
        self.stats.clone()
    }

    /// This deployment's notification channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A connection of its own (not pooled), named `application_name`,
    /// opened within the deadline; the caller drives the connection.
    async fn open(&self, application_name: &str) -> Result<(tokio_postgres::Client, Connection)> {
        let config = self.target.named(application_name);
        tokio::time::timeout(
            self.settings.deadline(),
            config.connect(self.target.tls.clone()),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "could not connect to the database within {:?}",
                self.settings.deadline()
            ))
        })?
        .map_err(db)
    }

    /// As [`Self::open`], with the connection driven by a task of its own.
    async fn dedicated(&self, application_name: &str) -> Result<tokio_postgres::Client> {
        let (client, connection) = self.open(application_name).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }

    async fn migrate(&self, migrations: &[Migration]) -> Result<()> {
        let client = self.dedicated("alcove-relay migrate").await?;
        migrate::run(&client, migrations).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(e, &self.settings))
    }

    /// Runs one store call under the deadline.
    async fn timed<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let deadline = self.settings.deadline();
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {deadline:?}"
                )))
            })
    }

    /// Notifications of new envelopes from every relay on this database
    /// (LISTEN on a connection of its own, named `alcove-relay listen`).
    /// The receiver ends if that connection drops; the caller listens
    /// again, then re-reads what it may have missed.
    pub async fn listen(&self) -> Result<Notifications> {
        let (client, mut connection) = self.open("alcove-relay listen").await?;
        let (tx, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            while let Some(Ok(msg)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                    if let Some(heard) = parse_notification(n.payload()) {
                        if tx.send(heard).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let listen = format!("LISTEN {}", self.channel);
        tokio::time::timeout(self.settings.deadline(), client.batch_execute(&listen))
            .await
            .map_err(|_| StoreError::Unavailable("LISTEN timed out".into()))?
            .map_err(db)?;
        Ok(Notifications {
            client,
            receiver,
            deadline: self.settings.deadline(),
        })
    }
}

/// The settings a relay's database session runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// The connection is encrypted (TLS).
    pub tls: bool,
    /// `default_transaction_isolation`.
    pub isolation: String,
    /// `statement_timeout`.
    pub statement_timeout: String,
    /// `lock_timeout`.
    pub lock_timeout: String,
    /// `idle_in_transaction_session_timeout`.
    pub idle_in_transaction_timeout: String,
}

/// A LISTEN connection and the addresses it hears about.
pub struct Notifications {
    client: tokio_postgres::Client,
    /// Recipients with new envelopes, and the sequence stored if the
    /// notification named it (relays before schema version 6 did not).
    pub receiver: tokio::sync::mpsc::UnboundedReceiver<(Address, Option<u64>)>,
    deadline: Duration,
}

impl Notifications {
    /// A round trip on the LISTEN connection, so that a link that died
    /// without a word (a half-open TCP connection) is noticed.
    pub async fn ping(&self) -> Result<()> {
        tokio::time::timeout(self.deadline, self.client.simple_query(""))
            .await
            .map_err(|_| StoreError::Unavailable("the LISTEN connection did not answer".into()))?
            .map_err(db)?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A send's notification: `<address in hex>` or, from schema version 6,
/// `<address in hex>:<sequence>`. Anything else is ignored.
fn parse_notification(payload: &str) -> Option<(Address, Option<u64>)> {
    let (hex, sequence) = match payload.split_once(':') {
        Some((hex, seq)) => (hex, Some(seq.parse::<u64>().ok()?)),
        None => (payload, None),
    };
    let mut address = [0u8; 32];
    hex_decode(hex, &mut address).then_some((address, sequence))
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
        record: match (
            row.get::<_, Option<Vec<u8>>>("credential"),
            row.get::<_, Option<Vec<u8>>>("identity"),
            row.get::<_, Option<Vec<u8>>>("signed_prekey"),
        ) {
            (Some(record), None, None) => LogRecord::Credential(record),
            (None, Some(identity), Some(signed_prekey)) => LogRecord::Keys {
                identity,
                signed_prekey,
            },
            _ => return Err(StoreError::Corrupt("keylog: kind")),
        },
    })
}

impl PostgresStore {
    /// Rows of a `... < $1 LIMIT $2` query (the sweeps' searches).
    async fn rows_before(
        &self,
        sql: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<tokio_postgres::Row>> {
        self.client()
            .await?
            .query(sql, &[&before_ms, &i64_of(limit as u64)])
            .await
            .map_err(db)
    }
}

/// Appends `record` of `address` at `epoch` to the key log, at its next
/// index, inside `tx`, which holds the key-log lock (one appender at a
/// time, across relays). Returns the entry.
async fn append_log(
    tx: &tokio_postgres::Transaction<'_>,
    address: &Address,
    epoch: u64,
    salt: &[u8; 32],
    now_ms: i64,
    record: LogRecord,
) -> Result<LogEntry> {
    let index: i64 = tx
        .query_one("SELECT COALESCE(max(idx) + 1, 0) FROM keylog", &[])
        .await
        .map_err(db)?
        .get(0);
    let (identity, signed_prekey, credential) = match &record {
        LogRecord::Keys {
            identity,
            signed_prekey,
        } => (Some(identity), Some(signed_prekey), None),
        LogRecord::Credential(r) => (None, None, Some(r)),
    };
    tx.execute(
        "INSERT INTO keylog (idx, address, epoch, salt, logged_at_ms, identity, signed_prekey,
                             credential)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &index,
            &address.as_slice(),
            &i64_of(epoch),
            &salt.as_slice(),
            &now_ms,
            &identity,
            &signed_prekey,
            &credential,
        ],
    )
    .await
    .map_err(db)?;
    Ok(LogEntry {
        index: u64_of(index),
        address: *address,
        epoch,
        salt: *salt,
        logged_at_ms: now_ms,
        record,
    })
}

fn slot_of(row: &tokio_postgres::Row) -> Result<CredentialSlot> {
    let revoked: Vec<u8> = row.get("revoked");
    if !revoked.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt("credentials: revoked"));
    }
    Ok(CredentialSlot {
        log_index: u64_of(row.get("log_index")),
        epoch: u64_of(row.get("epoch")),
        record: row.get("record"),
        revoked: revoked
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32"))
            .collect(),
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
        self.timed(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            // One appender at a time, across relays: the log is a sequence.
            // Waits at most the session's lock_timeout: a holder that hangs
            // makes registrations fail with UNAVAILABLE, not hang.
            tx.execute(&format!("SELECT pg_advisory_xact_lock({KEYLOG_LOCK_SQL})"), &[])
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
            let entry = append_log(
                &tx,
                address,
                epoch,
                salt,
                now_ms,
                LogRecord::Keys {
                    identity: identity.clone(),
                    signed_prekey: signed_prekey.to_vec(),
                },
            )
            .await?;
            let index = i64_of(entry.index);
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
            Ok(entry)
        })
        .await
    }

    async fn credential(&self, address: &Address) -> Result<Option<CredentialSlot>> {
        self.timed(async {
            self.client()
                .await?
                .query_opt(
                    "SELECT * FROM credentials WHERE address = $1",
                    &[&address.as_slice()],
                )
                .await
                .map_err(db)?
                .map(|r| slot_of(&r))
                .transpose()
        })
        .await
    }

    async fn publish_credential(
        &self,
        address: &Address,
        record: &[u8],
        revoked: &[[u8; 32]],
        expected_epoch: Option<u64>,
        salt: &[u8; 32],
        now_ms: i64,
    ) -> Result<LogEntry> {
        self.timed(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            tx.execute(
                &format!("SELECT pg_advisory_xact_lock({KEYLOG_LOCK_SQL})"),
                &[],
            )
            .await
            .map_err(db)?;
            if tx
                .query_opt(
                    "SELECT 1 FROM devices WHERE address = $1",
                    &[&address.as_slice()],
                )
                .await
                .map_err(db)?
                .is_none()
            {
                return Err(StoreError::NotFound("device"));
            }
            let current = tx
                .query_opt(
                    "SELECT epoch FROM credentials WHERE address = $1 FOR UPDATE",
                    &[&address.as_slice()],
                )
                .await
                .map_err(db)?
                .map(|r| u64_of(r.get(0)));
            if current != expected_epoch {
                return Err(StoreError::Conflict("credential record"));
            }
            let epoch = current.map_or(0, |e| e + 1);
            let entry = append_log(
                &tx,
                address,
                epoch,
                salt,
                now_ms,
                LogRecord::Credential(record.to_vec()),
            )
            .await?;
            let index = i64_of(entry.index);
            let revoked: Vec<u8> = revoked.concat();
            tx.execute(
                "INSERT INTO credentials (address, log_index, epoch, record, revoked)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (address) DO UPDATE SET log_index = $2, epoch = $3,
                     record = $4, revoked = $5",
                &[
                    &address.as_slice(),
                    &index,
                    &i64_of(epoch),
                    &record,
                    &revoked,
                ],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(entry)
        })
        .await
    }

    async fn device(&self, address: &Address) -> Result<Option<DeviceRecord>> {
        self.timed(async {
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
        })
        .await
    }

    async fn delivery_policy(&self, address: &Address) -> Result<Option<DeliveryPolicy>> {
        self.timed(async {
            let c = self.client().await?;
            let statement = c
                .prepare_cached(
                    "SELECT p.address IS NOT NULL, p.verifier FROM devices d
                     LEFT JOIN delivery_policies p ON p.address = d.address
                     WHERE d.address = $1",
                )
                .await
                .map_err(db)?;
            let Some(row) = c
                .query_opt(&statement, &[&address.as_slice()])
                .await
                .map_err(db)?
            else {
                return Ok(None);
            };
            let verifier: Option<Vec<u8>> = row.get(1);
            match verifier {
                None => Ok(Some(DeliveryPolicy::Open)),
                Some(v) => v
                    .try_into()
                    .map(|v| Some(DeliveryPolicy::Verifier(v)))
                    .map_err(|_| StoreError::Corrupt("delivery_policies")),
            }
        })
        .await
    }

    async fn set_delivery_policy(&self, address: &Address, policy: DeliveryPolicy) -> Result<()> {
        self.timed(async {
            let verifier: Option<&[u8]> = match &policy {
                DeliveryPolicy::Open => None,
                DeliveryPolicy::Verifier(v) => Some(v),
            };
            let n = self
                .client()
                .await?
                .execute(
                    "INSERT INTO delivery_policies (address, verifier)
                     SELECT address, $2 FROM devices WHERE address = $1
                     ON CONFLICT (address) DO UPDATE SET verifier = EXCLUDED.verifier",
                    &[&address.as_slice(), &verifier],
                )
                .await
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound("device"));
            }
            Ok(())
        })
        .await
    }

    async fn log_size(&self) -> Result<u64> {
        self.timed(async {
            let n: i64 = self
                .client()
                .await?
                .query_one("SELECT COALESCE(max(idx) + 1, 0) FROM keylog", &[])
                .await
                .map_err(db)?
                .get(0);
            Ok(u64_of(n))
        })
        .await
    }

    async fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>> {
        self.timed(async {
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
        })
        .await
    }

    async fn add_one_time_prekeys(
        &self,
        address: &Address,
        keys: &[(u32, Vec<u8>)],
        limit: usize,
    ) -> Result<usize> {
        self.timed(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(
                     hashtextextended(current_schema() || encode($1, 'hex'), 1))",
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
        })
        .await
    }

    async fn take_one_time_prekey(&self, address: &Address) -> Result<Option<Vec<u8>>> {
        self.timed(async {
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
        })
        .await
    }

    async fn count_one_time_prekeys(&self, address: &Address) -> Result<usize> {
        self.timed(async {
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
        })
        .await
    }

    async fn enqueue(
        &self,
        recipient: &Address,
        client_message_id: &ClientMessageId,
        envelope: &[u8],
        received_at_ms: i64,
        max_depth: u64,
    ) -> Result<Enqueued> {
        // Group commit: the send joins the next batch (`group_commit`),
        // and is answered once the batch's commit has returned.
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = group_commit::Pending {
            recipient: *recipient,
            id: *client_message_id,
            envelope: envelope.to_vec(),
            received_at_ms,
            max_depth,
            reply,
        };
        self.sends
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the store is not started".into()))?
            .send(pending)
            .map_err(|_| StoreError::Backend("the store is closed".into()))?;
        self.timed(async {
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Backend("the send committer stopped".into())))
        })
        .await
    }

    async fn fetch(
        &self,
        recipient: &Address,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        self.timed(async {
            let c = self.client().await?;
            let statement = c
                .prepare_cached(
                    "SELECT seq, received_at_ms, envelope FROM mailboxes
                     WHERE address = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .await
                .map_err(db)?;
            let rows = c
                .query(
                    &statement,
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
        })
        .await
    }

    async fn ack(&self, recipient: &Address, sequences: &[u64]) -> Result<usize> {
        self.timed(async {
            let seqs: Vec<i64> = sequences.iter().map(|s| i64_of(*s)).collect();
            // One statement (so one implicit transaction and one round
            // trip): delete, then lower the depth by what was deleted.
            let c = self.client().await?;
            let statement = c
                .prepare_cached(
                    "WITH deleted AS (
                         DELETE FROM mailboxes WHERE address = $1 AND seq = ANY($2)
                         RETURNING 1),
                     n AS (SELECT count(*) AS n FROM deleted),
                     head AS (
                         UPDATE mailbox_heads SET depth = GREATEST(depth - (SELECT n FROM n), 0)
                         WHERE address = $1 AND (SELECT n FROM n) > 0)
                     SELECT n FROM n",
                )
                .await
                .map_err(db)?;
            let deleted: i64 = c
                .query_one(&statement, &[&recipient.as_slice(), &seqs])
                .await
                .map_err(db)?
                .get(0);
            Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
        })
        .await
    }

    async fn messages_before(&self, before_ms: i64, limit: usize) -> Result<Vec<(Address, u64)>> {
        self.timed(async {
            let rows = self
                .rows_before(
                    "SELECT address, seq FROM mailboxes WHERE received_at_ms < $1 LIMIT $2",
                    before_ms,
                    limit,
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let address: Vec<u8> = r.get(0);
                    Ok((
                        address
                            .try_into()
                            .map_err(|_| StoreError::Corrupt("mailboxes: address"))?,
                        u64_of(r.get(1)),
                    ))
                })
                .collect()
        })
        .await
    }

    async fn depth(&self, recipient: &Address) -> Result<u64> {
        self.timed(async {
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
        })
        .await
    }

    async fn last_sequence(&self, recipient: &Address) -> Result<u64> {
        self.timed(async {
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
        })
        .await
    }

    async fn prune_dedupe(&self, before_ms: i64, window: u64) -> Result<usize> {
        self.timed(async {
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
        })
        .await
    }

    async fn begin_blob(&self, id: &BlobId, size: u64, expires_at_ms: i64) -> Result<()> {
        self.timed(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO blobs (id, finished, size, chunks, expires_at_ms)
                     VALUES ($1, false, $2, 0, $3)",
                    &[&id.as_slice(), &i64_of(size), &expires_at_ms],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn put_blob_chunk(&self, id: &BlobId, index: u32, data: &[u8]) -> Result<()> {
        self.timed(async {
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
        })
        .await
    }

    async fn finish_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()> {
        self.timed(async {
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
        })
        .await
    }

    async fn blob(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        self.timed(async {
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
        })
        .await
    }

    async fn blob_chunk(&self, id: &BlobId, index: u32) -> Result<Option<Vec<u8>>> {
        self.timed(async {
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
        })
        .await
    }

    async fn blob_chunk_indices(&self, id: &BlobId) -> Result<Vec<u32>> {
        self.timed(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT idx FROM blob_chunks WHERE id = $1 ORDER BY idx",
                    &[&id.as_slice()],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .filter_map(|r| u32::try_from(r.get::<_, i32>(0)).ok())
                .collect())
        })
        .await
    }

    async fn delete_blob(&self, id: &BlobId) -> Result<()> {
        self.timed(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            tx.execute("DELETE FROM blob_chunks WHERE id = $1", &[&id.as_slice()])
                .await
                .map_err(db)?;
            tx.execute("DELETE FROM blobs WHERE id = $1", &[&id.as_slice()])
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
        .await
    }

    async fn expired_blobs(&self, now_ms: i64, limit: usize) -> Result<Vec<BlobId>> {
        self.timed(async {
            let rows = self
                .rows_before(
                    "SELECT id FROM blobs WHERE expires_at_ms < $1 LIMIT $2",
                    now_ms,
                    limit,
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let id: Vec<u8> = r.get(0);
                    id.try_into().map_err(|_| StoreError::Corrupt("blobs: id"))
                })
                .collect()
        })
        .await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.timed(async {
            Ok(self
                .client()
                .await?
                .query_opt("SELECT value FROM meta WHERE name = $1", &[&key])
                .await
                .map_err(db)?
                .map(|r| r.get(0)))
        })
        .await
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.timed(async {
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
        })
        .await
    }

    async fn meta_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.timed(async {
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
        })
        .await
    }

    async fn delete_meta(&self, key: &str) -> Result<()> {
        self.timed(async {
            self.client()
                .await?
                .execute("DELETE FROM meta WHERE name = $1", &[&key])
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn total_depth(&self) -> Result<u64> {
        self.timed(async {
            let n: Option<i64> = self
                .client()
                .await?
                .query_one("SELECT sum(depth)::BIGINT FROM mailbox_heads", &[])
                .await
                .map_err(db)?
                .get(0);
            Ok(u64_of(n.unwrap_or(0)))
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::parse_notification;

    #[test]
    fn notifications_with_and_without_a_sequence() {
        let hex = "ab".repeat(32);
        assert_eq!(
            parse_notification(&format!("{hex}:42")),
            Some(([0xab; 32], Some(42)))
        );
        // Written by a relay before schema version 6.
        assert_eq!(parse_notification(&hex), Some(([0xab; 32], None)));
        assert_eq!(parse_notification(&format!("{hex}:")), None);
        assert_eq!(parse_notification(&format!("{hex}:x")), None);
        assert_eq!(parse_notification("ab:1"), None);
    }
}
