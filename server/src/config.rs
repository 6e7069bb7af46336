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
    /// share one database. Without it, sled in --data-dir.
    #[arg(long, env = "ALCOVE_STORE")]
    pub store: Option<String>,

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

impl Config {
    /// A configuration for tests and embedding: loopback on an ephemeral
    /// port, the given data directory, default limits.
    pub fn for_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            store: None,
            sled_cache_mb: 64,
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            server_id: None,
            limits: Limits::default(),
        }
    }
}
