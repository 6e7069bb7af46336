//! How the relay reaches PostgreSQL: the URL, TLS as libpq's `sslmode`
//! and `sslrootcert` describe it, and the timeouts every connection gets.
//!
//! tokio-postgres understands `sslmode=disable|prefer|require` only and
//! refuses `sslrootcert`, so both are taken out of the URL here and the
//! rest is handed to tokio-postgres unchanged. The modes mean what they
//! mean to libpq:
//!
//! | sslmode      | encrypted            | certificate checked                   |
//! |--------------|----------------------|---------------------------------------|
//! | `disable`    | never                | -                                     |
//! | `prefer`     | if the server offers | only with `sslrootcert` (as verify-ca)|
//! | `require`    | always               | only with `sslrootcert` (as verify-ca)|
//! | `verify-ca`  | always               | chain to `sslrootcert`                |
//! | `verify-full`| always               | chain to `sslrootcert`, and host name |
//!
//! `prefer` is the default, as in libpq. A database that is not on this
//! machine is refused unless the mode is `verify-ca` or `verify-full`
//! ([`PgSettings::allow_unverified_tls`] lifts that), because the relay's
//! traffic to it carries every envelope and every key publication.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Result, StoreError};

/// Timeouts and limits of the relay's database connections.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Connections in the pool.
    pub pool_size: usize,
    /// Opening a connection (TCP, TLS and start-up) may take this long.
    pub connect_timeout: Duration,
    /// A statement may run this long on the server (`statement_timeout`);
    /// the relay also stops waiting for any answer a little after it, so a
    /// database that does not answer at all fails the call too.
    pub statement_timeout: Duration,
    /// A request waits this long for a free pooled connection.
    pub pool_wait_timeout: Duration,
    /// Waiting for a row or advisory lock ends after this long
    /// (`lock_timeout`), so one stuck holder cannot stall everyone.
    pub lock_timeout: Duration,
    /// The server ends a session left idle inside a transaction this long
    /// (`idle_in_transaction_session_timeout`), releasing its locks.
    pub idle_in_transaction_timeout: Duration,
    /// Accept a database elsewhere than on this machine without a verified
    /// certificate (`sslmode` below `verify-ca`).
    pub allow_unverified_tls: bool,
}

impl PgSettings {
    /// The defaults, written once: [`PgSettings::default`] and the relay's
    /// `--database-*` flags read them.
    pub const DEFAULT: Self = Self {
        pool_size: 16,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(10),
        pool_wait_timeout: Duration::from_secs(5),
        lock_timeout: Duration::from_secs(5),
        idle_in_transaction_timeout: Duration::from_secs(15),
        allow_unverified_tls: false,
    };
}

impl Default for PgSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PgSettings {
    /// How long the relay waits for any answer before it gives up on the
    /// call: the statement timeout plus a margin for the round trip, so
    /// that a server that answers reports its own timeout first.
    pub fn deadline(&self) -> Duration {
        self.statement_timeout + Duration::from_secs(2)
    }
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it.
    Prefer,
    /// TLS always.
    Require,
    /// TLS, certificate chained to `sslrootcert`.
    VerifyCa,
    /// TLS, certificate chained to `sslrootcert` and naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(StoreError::Config(format!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            )))
            }
        })
    }

    /// Whether the server's certificate is checked at all.
    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

/// A parsed database URL: what to connect to and how.
#[derive(Clone)]
pub struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
    /// The TLS mode in force (after `sslrootcert` upgraded it, if it did).
    pub ssl_mode: SslMode,
    /// Every host named is this machine (loopback or a Unix socket).
    pub local: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config can carry a password: show neither it nor the URL.
        f.debug_struct("Target")
            .field("ssl_mode", &self.ssl_mode)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Parses `url` (`postgres://…` or `key=value …`) and applies the
    /// settings' timeouts to every connection it makes.
    pub fn parse(url: &str, settings: &PgSettings) -> Result<Self> {
        let (rest, ssl_mode, rootcert) = take_tls_params(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| StoreError::Config(format!("the database URL does not parse: {e}")))?;
        let ssl_mode = match (ssl_mode, &rootcert) {
            // libpq: with a root certificate, require means verify-ca.
            (SslMode::Prefer | SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (m, _) => m,
        };
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        config
            .connect_timeout(settings.connect_timeout)
            // A peer that vanished (a NAT or load balancer that forgot the
            // link, a host that lost power) is noticed in about 25 s even
            // on an idle connection, and unacknowledged writes give up
            // after 20 s.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(20));
        if config.get_application_name().is_none() {
            config.application_name("alcove-relay");
        }
        // Settings every session gets, after (so over) anything the URL
        // set: the code assumes READ COMMITTED (each statement of
        // `alcove_enqueue` sees what the previous holder of the mailbox's
        // lock committed).
        let ours = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={} \
             -c default_transaction_isolation=read\\ committed",
            settings.statement_timeout.as_millis(),
            settings.lock_timeout.as_millis(),
            settings.idle_in_transaction_timeout.as_millis(),
        );
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {ours}"),
            _ => ours,
        };
        config.options(options);
        let local = !config.get_hosts().is_empty()
            && config.get_hosts().iter().all(|h| match h {
                Host::Tcp(name) => is_local(name),
                #[cfg(unix)]
                Host::Unix(_) => true,
            })
            && config
                .get_hostaddrs()
                .iter()
                .all(std::net::IpAddr::is_loopback);
        let tls = MakeRustlsConnect::new(client_config(ssl_mode, rootcert)?);
        Ok(Self {
            config,
            tls,
            ssl_mode,
            local,
        })
    }

    /// Refuses a database elsewhere than on this machine whose
    /// certificate is not verified, unless the settings allow it.
    pub fn check_secure(&self, settings: &PgSettings) -> Result<()> {
        if self.local || self.ssl_mode.verifies() || settings.allow_unverified_tls {
            return Ok(());
        }
        Err(StoreError::Config(format!(
            "the database is not on this machine and sslmode is {:?}: anyone on the path could \
             read or change what the relay stores. Use sslmode=verify-full&sslrootcert=CA.pem \
             (or verify-ca), or accept the risk explicitly (--database-allow-unverified-tls)",
            self.ssl_mode
        )))
    }

    /// The connection settings (host, user, timeouts; TLS mode).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector for this target's `sslmode`.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// The same target with another `application_name`.
    pub(crate) fn named(&self, name: &str) -> tokio_postgres::Config {
        let mut c = self.config.clone();
        c.application_name(name);
        c
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Splits `sslmode` and `sslrootcert` off the URL or key-value string.
fn take_tls_params(url: &str) -> Result<(String, SslMode, Option<PathBuf>)> {
    let mut mode = SslMode::Prefer;
    let mut rootcert = None;
    let mut take = |key: &str, value: String| -> Result<bool> {
        match key {
            "sslmode" => mode = SslMode::parse(&value)?,
            "sslrootcert" => rootcert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, percent_decode(v)?)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k.trim(), v.trim().trim_matches('\'').to_owned())? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, rootcert))
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| StoreError::Config("bad %-escape in the database URL".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| StoreError::Config("database URL is not UTF-8".into()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(mode: SslMode, rootcert: Option<PathBuf>) -> Result<ClientConfig> {
    let tls_error = |e: rustls::Error| StoreError::Config(format!("TLS set-up: {e}"));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, rootcert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(StoreError::Config(format!(
                "sslmode={} needs sslrootcert=FILE (the CA certificate, PEM) in the database URL",
                if mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            )))
        }
        (SslMode::VerifyCa | SslMode::VerifyFull, Some(path)) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Config(format!("sslrootcert {}: {e}", path.display())))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    StoreError::Config(format!("sslrootcert {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(StoreError::Config(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| StoreError::Config(format!("TLS set-up: {e}")))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        _ => Arc::new(Unverified(provider())),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate: encryption against
/// a passive listener only, as in libpq. The handshake signature is still
/// checked against the certificate presented.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url_and_the_rest_kept() {
        let (rest, mode, root) = take_tls_params(
            "postgres://u@db.example:5432/alcove?sslmode=verify-full&options=-csearch_path%3Dx&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u@db.example:5432/alcove?options=-csearch_path%3Dx"
        );
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
        let (rest, mode, root) =
            take_tls_params("host=db.example sslmode=require user=u dbname=alcove").unwrap();
        assert_eq!(rest, "host=db.example user=u dbname=alcove");
        assert_eq!((mode, root), (SslMode::Require, None));
        assert!(take_tls_params("postgres://h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn a_remote_database_without_a_verified_certificate_is_refused() {
        let s = PgSettings::default();
        let remote = Target::parse("postgres://u@db.example/alcove?sslmode=require", &s).unwrap();
        let err = remote.check_secure(&s).unwrap_err().to_string();
        assert!(err.contains("verify-full"), "{err}");
        let allowed = PgSettings {
            allow_unverified_tls: true,
            ..PgSettings::default()
        };
        remote.check_secure(&allowed).unwrap();
        for local in [
            "postgres://u@127.0.0.1/alcove",
            "postgres://u@localhost/alcove",
            "postgres://u@[::1]/alcove",
        ] {
            let t = Target::parse(local, &s).unwrap();
            assert!(t.local, "{local}");
            t.check_secure(&s).unwrap();
        }
        let missing_ca = Target::parse("postgres://u@db.example/alcove?sslmode=verify-full", &s)
            .unwrap_err()
            .to_string();
        assert!(missing_ca.contains("sslrootcert"), "{missing_ca}");
    }
}
