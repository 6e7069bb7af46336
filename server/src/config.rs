//! Command-line flags, each with an environment variable, and a TOML file
//! of the same settings (`--config`).
//!
//! The file's keys are the long flag names (`listen = "0.0.0.0:7443"`,
//! `tls-cert = "/etc/alcove/relay.crt"`, `rate-per-sec = 200`,
//! `allow-plaintext-listen = true`). Precedence: a flag on the command
//! line, then its environment variable, then the file, then the default.
//! An unknown key or a value of the wrong kind is an error naming the key.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::limits::{Limits, DEFAULT_SLED_CACHE_MB};

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
    #[arg(long, env = "ALCOVE_SLED_CACHE_MB", default_value_t = DEFAULT_SLED_CACHE_MB)]
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

    /// Web origins (`https://portal.example.org`) whose pages may call the
    /// relay over grpc-web; repeat the flag or separate origins with
    /// commas. None by default, and then no browser page can use the
    /// relay. grpc-web is served beside gRPC on the same port either way.
    #[arg(
        long = "allow-origin",
        env = "ALCOVE_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allow_origins: Vec<String>,

    /// Name devices sign in their login proof. Defaults to a random id
    /// chosen once and kept in the store.
    #[arg(long, env = "ALCOVE_SERVER_ID")]
    pub server_id: Option<String>,

    /// Request limits.
    #[command(flatten)]
    pub limits: Limits,

    /// A TOML file of settings (keys are the long flag names); flags and
    /// environment variables override it.
    #[arg(long, env = "ALCOVE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration (flags, environment, file) and the files it
    /// names, print the settings in force and exit: 0 if usable, 2 if not.
    #[arg(long)]
    pub check_config: bool,
}

/// Timeouts and pool size of the PostgreSQL store.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseFlags {
    /// Connections per relay.
    #[arg(
        long = "database-pool-size",
        env = "ALCOVE_DATABASE_POOL_SIZE",
        default_value_t = DatabaseFlags::DEFAULTS.pool_size
    )]
    pub pool_size: usize,
    /// Seconds a connection attempt may take.
    #[arg(
        long = "database-connect-timeout-secs",
        env = "ALCOVE_DATABASE_CONNECT_TIMEOUT_SECS",
        default_value_t = DatabaseFlags::DEFAULTS.connect_timeout_secs
    )]
    pub connect_timeout_secs: u64,
    /// Seconds a statement may run (statement_timeout); the relay stops
    /// waiting for any answer 2 s after it.
    #[arg(
        long = "database-statement-timeout-secs",
        env = "ALCOVE_DATABASE_STATEMENT_TIMEOUT_SECS",
        default_value_t = DatabaseFlags::DEFAULTS.statement_timeout_secs
    )]
    pub statement_timeout_secs: u64,
    /// Seconds a request waits for a free pooled connection.
    #[arg(
        long = "database-pool-wait-secs",
        env = "ALCOVE_DATABASE_POOL_WAIT_SECS",
        default_value_t = DatabaseFlags::DEFAULTS.pool_wait_secs
    )]
    pub pool_wait_secs: u64,
    /// Seconds a statement waits for a lock (lock_timeout).
    #[arg(
        long = "database-lock-timeout-secs",
        env = "ALCOVE_DATABASE_LOCK_TIMEOUT_SECS",
        default_value_t = DatabaseFlags::DEFAULTS.lock_timeout_secs
    )]
    pub lock_timeout_secs: u64,
    /// Seconds before the database ends a session idle inside a
    /// transaction (idle_in_transaction_session_timeout).
    #[arg(
        long = "database-idle-in-transaction-secs",
        env = "ALCOVE_DATABASE_IDLE_IN_TRANSACTION_SECS",
        default_value_t = DatabaseFlags::DEFAULTS.idle_in_transaction_secs
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

impl DatabaseFlags {
    /// The defaults: the store's own (`PgSettings::DEFAULT`), in the
    /// flags' units. The flags' defaults and [`DatabaseFlags::default`]
    /// read them.
    pub const DEFAULTS: Self = {
        let d = alcove_store::PgSettings::DEFAULT;
        Self {
            pool_size: d.pool_size,
            connect_timeout_secs: d.connect_timeout.as_secs(),
            statement_timeout_secs: d.statement_timeout.as_secs(),
            pool_wait_secs: d.pool_wait_timeout.as_secs(),
            lock_timeout_secs: d.lock_timeout.as_secs(),
            idle_in_transaction_secs: d.idle_in_transaction_timeout.as_secs(),
            allow_unverified_tls: d.allow_unverified_tls,
        }
    };
}

impl Default for DatabaseFlags {
    fn default() -> Self {
        Self::DEFAULTS
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
            sled_cache_mb: DEFAULT_SLED_CACHE_MB,
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            allow_origins: Vec::new(),
            server_id: None,
            limits: Limits::default(),
            config: None,
            check_config: false,
        }
    }
}

impl Config {
    /// Parses the command line, the environment and the `--config` file.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_from(std::env::args_os().collect(), |k| {
            std::env::var_os(k).is_some()
        })
    }

    /// As [`Config::load`], for given arguments and environment.
    pub fn load_from(
        mut args: Vec<std::ffi::OsString>,
        env_has: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use clap::CommandFactory as _;
        let first = Self::try_parse_from(&args)?;
        let Some(path) = first.config.clone() else {
            return Ok(first);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("config file {}", path.display()))?;
        let command = Self::command();
        let given: Vec<String> = args
            .iter()
            .filter_map(|a| a.to_str())
            .filter_map(|a| a.strip_prefix("--"))
            .map(|a| a.split('=').next().unwrap_or(a).to_owned())
            .collect();
        for (key, value) in table {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()))
                .filter(|a| !matches!(a.get_long(), Some("config") | Some("check-config")))
                .ok_or_else(|| {
                    anyhow::anyhow!("config file {}: unknown setting {key:?}", path.display())
                })?;
            let from_env = arg.get_env().and_then(|e| e.to_str()).is_some_and(&env_has);
            if given.iter().any(|g| g == &key) || from_env {
                continue;
            }
            let is_switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
            match (value, is_switch) {
                (toml::Value::Boolean(true), true) => args.push(format!("--{key}").into()),
                (toml::Value::Boolean(false), true) => {}
                (_, true) => anyhow::bail!(
                    "config file {}: {key} must be true or false",
                    path.display()
                ),
                (toml::Value::String(s), false) => {
                    args.push(format!("--{key}={s}").into());
                }
                (v @ (toml::Value::Integer(_) | toml::Value::Float(_)), false) => {
                    args.push(format!("--{key}={v}").into());
                }
                (_, false) => anyhow::bail!(
                    "config file {}: {key} must be a string or a number",
                    path.display()
                ),
            }
        }
        Self::try_parse_from(&args)
            .with_context(|| format!("with the config file {}", path.display()))
    }

    /// Checks what can be checked without serving: the listen address,
    /// the TLS files, the store URL, the secrets file. Returns the settings
    /// in force, for people (the database URL without its password).
    pub fn check(&self) -> anyhow::Result<String> {
        use anyhow::Context as _;
        let mut out = String::new();
        out.push_str(&format!("listen: {}\n", self.listen));
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let c =
                    std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
                let k = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
                anyhow::ensure!(
                    String::from_utf8_lossy(&c).contains("BEGIN CERTIFICATE"),
                    "{} holds no PEM certificate",
                    cert.display()
                );
                anyhow::ensure!(
                    String::from_utf8_lossy(&k).contains("PRIVATE KEY"),
                    "{} holds no PEM private key",
                    key.display()
                );
                out.push_str(&format!("tls: {} and {}\n", cert.display(), key.display()));
            }
            _ => {
                anyhow::ensure!(
                    self.listen.ip().is_loopback() || self.allow_plaintext_listen,
                    "--listen {} is not loopback and there is no --tls-cert/--tls-key \
                     (or --allow-plaintext-listen)",
                    self.listen
                );
                out.push_str("tls: off\n");
            }
        }
        match &self.store {
            Some(url) => {
                let target = alcove_store::postgres::Target::parse(url, &self.database.settings())?;
                target.check_secure(&self.database.settings())?;
                anyhow::ensure!(self.secrets_file.is_some(), "--store needs --secrets-file");
                out.push_str(&format!(
                    "store: PostgreSQL, sslmode {:?}, {}\n",
                    target.ssl_mode,
                    if target.local {
                        "on this machine"
                    } else {
                        "remote"
                    }
                ));
            }
            None => out.push_str(&format!("store: sled in {}\n", self.data_dir.display())),
        }
        if let Some(f) = &self.secrets_file {
            if f.exists() {
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
                out.push_str(&format!("secrets file: {}\n", f.display()));
            } else {
                let dir = f.parent().filter(|d| !d.as_os_str().is_empty());
                anyhow::ensure!(
                    dir.is_none_or(|d| d.is_dir()),
                    "the directory of the secrets file {} does not exist",
                    f.display()
                );
                out.push_str(&format!(
                    "secrets file: {} (created on first start)\n",
                    f.display()
                ));
            }
        }
        if let Some(m) = self.metrics_listen {
            out.push_str(&format!("metrics: {m}\n"));
        }
        let origins = crate::web::AllowedOrigins::parse(&self.allow_origins)?;
        out.push_str(&format!("browser origins: {origins}\n"));
        out.push_str(&format!(
            "limits: envelope {} B, blob {} B, mailbox {} messages, {} requests/s per device\n",
            self.limits.max_envelope_bytes,
            self.limits.max_blob_bytes,
            self.limits.max_mailbox_depth,
            self.limits.rate_per_sec
        ));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, args: &[&str]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("alcove.toml");
        std::fs::write(&path, file)?;
        let mut argv: Vec<std::ffi::OsString> = vec!["alcove-server".into()];
        argv.extend(args.iter().map(Into::into));
        argv.push("--config".into());
        argv.push(path.into());
        Config::load_from(argv, |_| false)
    }

    /// Each default is written once (`Limits::DEFAULTS`,
    /// `PgSettings::DEFAULT`, `DEFAULT_SLED_CACHE_MB`): what the flags
    /// default to is what an embedded relay (`Config::for_dir`) gets.
    #[test]
    fn the_flags_defaults_are_the_embedded_defaults() {
        use clap::CommandFactory as _;
        let set: Vec<String> = Config::command()
            .get_arguments()
            .filter_map(|a| a.get_env().and_then(|e| e.to_str()).map(str::to_owned))
            .filter(|e| std::env::var_os(e).is_some())
            .collect();
        if !set.is_empty() {
            eprintln!("skipped: the environment sets {set:?}");
            return;
        }
        let parsed = Config::try_parse_from(["alcove-server"]).unwrap();
        let embedded = Config::for_dir("./alcove-data");
        assert_eq!(
            format!("{:?}", parsed.limits),
            format!("{:?}", embedded.limits)
        );
        assert_eq!(
            format!("{:?}", parsed.database),
            format!("{:?}", embedded.database)
        );
        assert_eq!(parsed.sled_cache_mb, embedded.sled_cache_mb);
        assert_eq!(
            format!("{:?}", parsed.database.settings()),
            format!("{:?}", alcove_store::PgSettings::default())
        );
    }

    #[test]
    fn the_file_sets_what_flags_do_not() {
        let c = load(
            "listen = \"127.0.0.1:7777\"\nrate-per-sec = 12.5\nmax-page = 50\nallow-plaintext-listen = true\n",
            &["--max-page", "70"],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7777);
        assert_eq!(c.limits.rate_per_sec, 12.5);
        assert_eq!(c.limits.max_page, 70, "the flag wins over the file");
        assert!(c.allow_plaintext_listen);
    }

    #[test]
    fn unknown_keys_and_wrong_kinds_are_refused_by_name() {
        let e = load("lisen = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown setting \"lisen\""),
            "{e:#}"
        );
        let e = load("allow-plaintext-listen = \"yes\"\n", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("true or false"), "{e:#}");
        let e = load("max-page = \"many\"\n", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("max-page"), "{e:#}");
        assert!(load("listen = [1]\n", &[]).is_err());
    }

    #[test]
    fn the_shipped_example_parses() {
        let example = include_str!("../deploy/alcove.toml");
        let c = load(example, &[]).unwrap();
        assert_eq!(c.listen.port(), 7443);
        assert_eq!(c.limits.max_mailbox_depth, 10_000);
    }

    #[test]
    fn the_check_refuses_what_would_not_run() {
        let ok = load("listen = \"127.0.0.1:7443\"\n", &[]).unwrap();
        assert!(ok.check().unwrap().contains("store: sled"));
        let public = load("listen = \"0.0.0.0:7443\"\n", &[]).unwrap();
        assert!(public.check().is_err());
        let pg = load(
            "store = \"postgres://alcove@db.example/alcove?sslmode=require\"\n",
            &[],
        )
        .unwrap();
        let e = pg.check().unwrap_err().to_string();
        assert!(e.contains("verify-full"), "{e}");
    }
}
