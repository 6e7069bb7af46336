//! Command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::limits::Limits;

/// `alcove-server` configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "alcove-server",
    version,
    about = "The Alcove relay: stores and forwards only ciphertext."
)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(long, env = "ALCOVE_LISTEN", default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,

    /// Directory of the embedded sled store.
    #[arg(long, env = "ALCOVE_DATA_DIR", default_value = "./alcove-data")]
    pub data_dir: PathBuf,

    /// Page cache of the sled store, MiB (memory grows with stored data up
    /// to about this much).
    #[arg(long, env = "ALCOVE_SLED_CACHE_MB", default_value_t = 64)]
    pub sled_cache_mb: u64,

    /// A PostgreSQL URL (`postgres://user@host:5432/db`) to store
    /// everything there instead of in sled, so that several relays can
    /// share one database. Without it, sled in --data-dir. TLS as libpq:
    /// `?sslmode=verify-full&sslrootcert=/path/ca.pem`; a database that is
    /// not on this machine needs verify-ca or verify-full.
    #[arg(long, env = "ALCOVE_STORE")]
    pub store: Option<String>,

    /// The file holding the relay's token key and key-log signing key
    /// (created on first start, mode 0600). Required with --store; give
    /// every relay of a deployment the same file.
    #[arg(long, env = "ALCOVE_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,

    /// Database settings (PostgreSQL only).
    #[command(flatten)]
    pub database: DatabaseFlags,

    /// Serve plain gRPC on an address other than loopback (for a relay
    /// behind a TLS-terminating proxy on a private network). Without it,
    /// such a --listen needs --tls-cert and --tls-key.
    #[arg(long, env = "ALCOVE_ALLOW_PLAINTEXT_LISTEN")]
    pub allow_plaintext_listen: bool,

    /// Address to serve Prometheus metrics on (plain HTTP, GET /metrics).
    /// Off unless given.
    #[arg(long, env = "ALCOVE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// PEM certificate chain; with --tls-key, serves TLS (rustls).
    #[arg(long, env = "ALCOVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "ALCOVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Name devices sign in their login proof. Defaults to a random id
    /// chosen once and kept in the store.
    #[arg(long, env = "ALCOVE_SERVER_ID")]
    pub server_id: Option<String>,

    /// Request limits.
    #[command(flatten)]
    pub limits: Limits,
}

/// Timeouts and pool size of the PostgreSQL store.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseFlags {
    /// Connections per relay.
    #[arg(
        long = "database-pool-size",
        env = "ALCOVE_DATABASE_POOL_SIZE",
        default_value_t = 16
    )]
    pub pool_size: usize,
    /// Seconds a connection attempt may take.
    #[arg(
        long = "database-connect-timeout-secs",
        env = "ALCOVE_DATABASE_CONNECT_TIMEOUT_SECS",
        default_value_t = 5
    )]
    pub connect_timeout_secs: u64,
    /// Seconds a statement may run (statement_timeout); the relay stops
    /// waiting for any answer 2 s after it.
    #[arg(
        long = "database-statement-timeout-secs",
        env = "ALCOVE_DATABASE_STATEMENT_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub statement_timeout_secs: u64,
    /// Seconds a request waits for a free pooled connection.
    #[arg(
        long = "database-pool-wait-secs",
        env = "ALCOVE_DATABASE_POOL_WAIT_SECS",
        default_value_t = 5
    )]
    pub pool_wait_secs: u64,
    /// Seconds a statement waits for a lock (lock_timeout).
    #[arg(
        long = "database-lock-timeout-secs",
        env = "ALCOVE_DATABASE_LOCK_TIMEOUT_SECS",
        default_value_t = 5
    )]
    pub lock_timeout_secs: u64,
    /// Seconds before the database ends a session idle inside a
    /// transaction (idle_in_transaction_session_timeout).
    #[arg(
        long = "database-idle-in-transaction-secs",
        env = "ALCOVE_DATABASE_IDLE_IN_TRANSACTION_SECS",
        default_value_t = 15
    )]
    pub idle_in_transaction_secs: u64,
    /// Accept a database elsewhere than on this machine with sslmode below
    /// verify-ca (its certificate unchecked).
    #[arg(
        long = "database-allow-unverified-tls",
        env = "ALCOVE_DATABASE_ALLOW_UNVERIFIED_TLS"
    )]
    pub allow_unverified_tls: bool,
}

impl Default for DatabaseFlags {
    fn default() -> Self {
        let d = alcove_store::PgSettings::default();
        Self {
            pool_size: d.pool_size,
            connect_timeout_secs: d.connect_timeout.as_secs(),
            statement_timeout_secs: d.statement_timeout.as_secs(),
            pool_wait_secs: d.pool_wait_timeout.as_secs(),
            lock_timeout_secs: d.lock_timeout.as_secs(),
            idle_in_transaction_secs: d.idle_in_transaction_timeout.as_secs(),
            allow_unverified_tls: d.allow_unverified_tls,
        }
    }
}

impl DatabaseFlags {
    /// The store's settings.
    pub fn settings(&self) -> alcove_store::PgSettings {
        use std::time::Duration;
        alcove_store::PgSettings {
            pool_size: self.pool_size.max(1),
            connect_timeout: Duration::from_secs(self.connect_timeout_secs.max(1)),
            statement_timeout: Duration::from_secs(self.statement_timeout_secs.max(1)),
            pool_wait_timeout: Duration::from_secs(self.pool_wait_secs.max(1)),
            lock_timeout: Duration::from_secs(self.lock_timeout_secs.max(1)),
            idle_in_transaction_timeout: Duration::from_secs(self.idle_in_transaction_secs.max(1)),
            allow_unverified_tls: self.allow_unverified_tls,
        }
    }
}

impl Config {
    /// A configuration for tests and embedding: loopback on an ephemeral
    /// port, the given data directory, default limits.
    pub fn for_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            store: None,
            secrets_file: None,
            database: DatabaseFlags::default(),
            allow_plaintext_listen: false,
            sled_cache_mb: 64,
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            server_id: None,
            limits: Limits::default(),
        }
    }
}
