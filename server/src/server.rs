//! Wiring: store, services, health, reflection, TLS, background sweeps,
//! metrics, graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcove_api::v1::auth_server::AuthServer;
use alcove_api::v1::blobs_server::BlobsServer;
use alcove_api::v1::delivery_server::DeliveryServer;
use alcove_api::v1::key_log_server::KeyLogServer;
use alcove_api::v1::keys_server::KeysServer;
use alcove_api::v1::mailbox_server::MailboxServer;
use alcove_store::{PostgresStore, SledStore, Store, StoreError};
use anyhow::Context;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::web::{AllowedOrigins, OriginGate};
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::auth::{now_ms, Authenticator};
use crate::config::Config;
use crate::limits::{
    RateLimiter, LAST_USER_WAIT, LISTEN_PING_INTERVAL, RESCAN_INTERVAL, RETENTION_BATCH,
    RETENTION_INTERVAL, SHUTDOWN_GRACE, STORE_LOCK_WAIT, SWEEP_INTERVAL,
};
use crate::metrics::{self, Metrics};
use crate::notify::Notifier;
use crate::service::delivery::{refuse_tokens, Unidentified};
use crate::service::{Relay, Services};

/// A running relay.
pub struct RelayHandle {
    /// The gRPC address it listens on.
    pub addr: SocketAddr,
    /// The metrics address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The server id devices sign.
    pub server_id: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RelayHandle {
    /// Stops accepting, ends live streams, waits for requests in flight,
    /// flushes and closes the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.context("relay task panicked")?
    }

    /// Runs until the relay stops by itself (it does not, short of an error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("relay task panicked")?
    }
}

/// A limiter of `n` a minute that allows all `n` at once.
fn per_minute(n: f64) -> RateLimiter {
    RateLimiter::new(n / 60.0, n.max(1.0))
}

fn hex_key(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wakes this relay's subscribers for envelopes other relays accepted
/// (PostgreSQL NOTIFY). Every time LISTEN is (re-)established it wakes
/// every subscriber, so that whatever was committed while it was not
/// listening is read; it pings the LISTEN connection so a dead link is
/// noticed, and re-reads everything every [`RESCAN_INTERVAL`] as a safety
/// net. Ends with the relay.
async fn listen_to_other_relays(pg: Arc<PostgresStore>, relay: std::sync::Weak<Relay>) {
    let mut retry = Duration::from_millis(100);
    let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(mut shutdown) = relay.upgrade().map(|r| r.shutdown.clone()) else {
            return;
        };
        match pg.listen().await {
            Ok(mut n) => {
                // Listening again: anything committed before this point
                // and after the last notification heard is read now.
                match relay.upgrade() {
                    Some(r) => r.notifier.wake_all(),
                    None => return,
                }
                retry = Duration::from_millis(100);
                let mut ping = tokio::time::interval(LISTEN_PING_INTERVAL);
                ping.tick().await;
                loop {
                    tokio::select! {
                        address = n.receiver.recv() => match (address, relay.upgrade()) {
                            (Some((a, sequence)), Some(r)) => r.notifier.stored_elsewhere(&a, sequence),
                            (_, None) => return,
                            (None, Some(_)) => {
                                tracing::warn!("lost the PostgreSQL notification connection; listening again");
                                break;
                            }
                        },
                        _ = ping.tick() => if let Err(e) = n.ping().await {
                            tracing::warn!(error = %e, "the PostgreSQL notification connection stopped answering; listening again");
                            break;
                        },
                        _ = rescan.tick() => match relay.upgrade() {
                            Some(r) => r.notifier.wake_all(),
                            None => return,
                        },
                        _ = shutdown.changed() => return,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN on PostgreSQL; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.changed() => return,
        }
        retry = (retry * 2).min(Duration::from_secs(5));
    }
}

/// Opens the sled store, waiting a little if another relay (one that is
/// still shutting down, or a restart in the same process whose last
/// connections are closing) holds its lock.
async fn open_store(dir: &std::path::Path, cache_bytes: u64) -> anyhow::Result<SledStore> {
    let deadline = std::time::Instant::now() + STORE_LOCK_WAIT;
    loop {
        match SledStore::open_with_cache(dir, cache_bytes) {
            Ok(s) => return Ok(s),
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                tracing::warn!(
                    "store in {} is locked; waiting for its previous owner",
                    dir.display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("opening store in {}", dir.display())),
        }
    }
}

/// Opens the store (sled in `config.data_dir`, or PostgreSQL) and starts
/// serving, in these steps.
pub async fn start(config: Config) -> anyhow::Result<RelayHandle> {
    refuse_plaintext_off_loopback(&config)?;
    let backend = open_backend(&config).await?;
    let (relay, server_id, stopping) = assemble_relay(&config, backend).await?;
    let (incoming, addr) = bind(&config).await?;
    let metrics_task = serve_metrics(&config, &relay).await?;
    let metrics_addr = metrics_task.as_ref().map(|(a, _)| *a);
    let routes = routes(&relay).await?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = spawn_serving(
        &config,
        routes,
        incoming,
        relay,
        stopping,
        stop_rx,
        metrics_task,
    )?;
    let tls = config.tls_cert.is_some();
    tracing::info!(%addr, tls, "relay listening");
    Ok(RelayHandle {
        addr,
        metrics_addr,
        server_id,
        stop: Some(stop_tx),
        task,
    })
}

/// Step 1: plain gRPC only on loopback, unless the operator said it sits
/// behind a TLS-terminating proxy.
fn refuse_plaintext_off_loopback(config: &Config) -> anyhow::Result<()> {
    let tls = config.tls_cert.is_some();
    if !tls && !config.listen.ip().is_loopback() {
        if !config.allow_plaintext_listen {
            anyhow::bail!(
                "--listen {} is reachable from other machines, and without --tls-cert/--tls-key \
                 every login token and envelope would cross the network in clear. Give a \
                 certificate, or, for a relay behind a TLS-terminating proxy on a private network, \
                 --allow-plaintext-listen",
                config.listen
            );
        }
        tracing::warn!(
            listen = %config.listen,
            "SERVING PLAINTEXT gRPC ON A NON-LOOPBACK ADDRESS (--allow-plaintext-listen): \
             only safe behind a TLS-terminating proxy on a private network"
        );
    }
    Ok(())
}

/// The store a relay runs on, and what its metrics read from it.
struct Backend {
    store: Arc<dyn Store>,
    flush_stats: Option<Arc<alcove_store::FlushStats>>,
    postgres: Option<Arc<PostgresStore>>,
}

/// Step 2: the store: PostgreSQL with `--store`, else sled in the data
/// directory (waiting a little for a previous owner's lock).
async fn open_backend(config: &Config) -> anyhow::Result<Backend> {
    Ok(match &config.store {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let pg = Arc::new(
                PostgresStore::connect_with(url, config.database.settings())
                    .await
                    .context("connecting to the PostgreSQL store")?,
            );
            let facts = pg.session_facts().await?;
            tracing::info!(
                sslmode = ?pg.target().ssl_mode,
                encrypted = facts.tls,
                local = pg.target().local,
                isolation = %facts.isolation,
                statement_timeout = %facts.statement_timeout,
                "store: PostgreSQL"
            );
            let stats = pg.flush_stats();
            Backend {
                store: pg.clone() as Arc<dyn Store>,
                flush_stats: Some(stats),
                postgres: Some(pg),
            }
        }
        Some(other) => anyhow::bail!(
            "--store must be a postgres:// URL (got {other:?}); leave it out for sled in --data-dir"
        ),
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
            let sled = open_store(&config.data_dir, config.sled_cache_mb << 20).await?;
            let stats = sled.flush_stats();
            Backend {
                store: Arc::new(sled) as Arc<dyn Store>,
                flush_stats: Some(stats),
                postgres: None,
            }
        }
    })
}

/// What shutdown needs: the switch that ends live subscriptions, and the
/// receiver that closes when the last user of the relay lets go.
struct Stopping {
    shutdown_tx: watch::Sender<bool>,
    relay_gone: tokio::sync::mpsc::Receiver<()>,
}

/// Step 3: the relay's state: server id, secrets, metrics, key log,
/// limits and rate limiters; on PostgreSQL, the task that hears other
/// relays' sends.
async fn assemble_relay(
    config: &Config,
    backend: Backend,
) -> anyhow::Result<(Arc<Relay>, String, Stopping)> {
    let store = backend.store.clone();
    let server_id = match &config.server_id {
        Some(id) => id.clone(),
        None => {
            let mut fresh = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut fresh);
            hex_key(&store.meta_or_insert("server_id", &fresh).await?)
        }
    };
    let secrets = crate::secrets::load(
        store.as_ref(),
        config.secrets_file.as_deref(),
        backend.postgres.is_some(),
    )
    .await?;

    let metrics = Arc::new(Metrics::with_flush_stats(backend.flush_stats.clone()));
    let depth = store.total_depth().await?;
    metrics.queue_depth.store(
        i64::try_from(depth).unwrap_or(i64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );

    let keylog = crate::keylog::KeyLog::open(store.clone(), &secrets.log_seed)
        .await
        .context("loading the key log")?;
    tracing::info!(
        entries = keylog.size(),
        log_key = %hex_key(keylog.log_key().as_bytes()),
        "key log loaded"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (last_user, relay_gone) = tokio::sync::mpsc::channel::<()>(1);
    let limits = config.limits.clone();
    let relay = Arc::new(Relay {
        store: store.clone(),
        auth: Authenticator::new(
            server_id.clone(),
            *secrets.token_key,
            Duration::from_secs(limits.token_ttl_secs),
        ),
        keylog,
        device_rate: RateLimiter::new(limits.rate_per_sec, limits.rate_burst),
        bundle_rate: per_minute(limits.bundle_fetches_per_min),
        ip_rate: RateLimiter::new(limits.rate_per_sec, limits.rate_burst),
        challenge_rate: per_minute(limits.challenges_per_min),
        register_rate: per_minute(limits.registrations_per_min),
        delivery_ip_rate: RateLimiter::new(limits.rate_per_sec, limits.rate_burst),
        credential_rate: RateLimiter::new(
            limits.deliveries_per_sec_per_key,
            (limits.deliveries_per_sec_per_key * 10.0).max(1.0),
        ),
        bundle_ip_rate: per_minute(limits.bundle_fetches_per_min_per_ip),
        prekey_target_rate: RateLimiter::new(
            limits.one_time_prekeys_per_hour_per_target / 3600.0,
            limits.one_time_prekeys_per_hour_per_target.max(1.0),
        ),
        limits,
        metrics: metrics.clone(),
        notifier: Notifier::default(),
        subscriptions: Mutex::new(HashMap::new()),
        shutdown: shutdown_rx,
        last_user,
    });
    drop(store);
    drop(secrets);
    if let Some(pg) = backend.postgres {
        tokio::spawn(listen_to_other_relays(pg, Arc::downgrade(&relay)));
    }
    Ok((
        relay,
        server_id,
        Stopping {
            shutdown_tx,
            relay_gone,
        },
    ))
}

/// Step 4: the gRPC listener.
async fn bind(config: &Config) -> anyhow::Result<(TcpIncoming, SocketAddr)> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    // TCP_NODELAY: without it every unary call waits ~40 ms for a delayed ACK.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    Ok((incoming, addr))
}

/// A running metrics endpoint: its address and task.
type MetricsTask = Option<(SocketAddr, JoinHandle<()>)>;

/// Step 5: the Prometheus endpoint, if `--metrics-listen` asks for one.
async fn serve_metrics(config: &Config, relay: &Arc<Relay>) -> anyhow::Result<MetricsTask> {
    let metrics = relay.metrics.clone();
    Ok(match config.metrics_listen {
        Some(a) => {
            let l = TcpListener::bind(a)
                .await
                .with_context(|| format!("binding metrics {a}"))?;
            let metrics_addr = l.local_addr()?;
            Some((
                metrics_addr,
                tokio::spawn(metrics::serve(l, metrics.clone())),
            ))
        }
        None => None,
    })
}

/// Step 6: every service, with its message-size limit; health and
/// reflection.
async fn routes(relay: &Arc<Relay>) -> anyhow::Result<tonic::service::Routes> {
    let services = Services {
        relay: relay.clone(),
    };
    // Decode anything up to the largest envelope the protocol can make, so
    // that an envelope over the configured limit gets our clear
    // RESOURCE_EXHAUSTED; only larger garbage meets tonic's own limit.
    let largest_envelope = alcove_protocol::sealed_sender::ENVELOPE_OVERHEAD
        + alcove_protocol::limits::PADDING_BUCKETS
            [alcove_protocol::limits::PADDING_BUCKETS.len() - 1];
    let max_message = relay.limits.max_envelope_bytes.max(largest_envelope) + 64 * 1024;
    let keys_message = relay.limits.max_keys_message();
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<MailboxServer<Services>>()
        .await;
    health_reporter.set_serving::<AuthServer<Services>>().await;
    health_reporter.set_serving::<KeysServer<Services>>().await;
    health_reporter
        .set_serving::<KeyLogServer<Services>>()
        .await;
    health_reporter.set_serving::<BlobsServer<Services>>().await;
    health_reporter
        .set_serving::<DeliveryServer<Unidentified>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(alcove_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("reflection service")?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(alcove_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("reflection service")?;

    Ok(tonic::service::Routes::new(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(AuthServer::new(services.clone()).max_decoding_message_size(keys_message))
        .add_service(KeysServer::new(services.clone()).max_decoding_message_size(keys_message))
        .add_service(KeyLogServer::new(services.clone()).max_decoding_message_size(4 * 1024))
        .add_service(MailboxServer::new(services.clone()).max_decoding_message_size(max_message))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            DeliveryServer::new(Unidentified {
                relay: relay.clone(),
            })
            .max_decoding_message_size(max_message),
            refuse_tokens,
        ))
        .add_service(
            BlobsServer::new(services.clone())
                .max_decoding_message_size(crate::limits::MAX_UPLOAD_PIECE + 1024),
        ))
}

/// Step 7: serve until stopped, then shut down in order: live
/// subscriptions end, requests get [`SHUTDOWN_GRACE`], the sweeper and
/// metrics stop, the last user lets go of the store, the store closes.
fn spawn_serving(
    config: &Config,
    routes: tonic::service::Routes,
    incoming: TcpIncoming,
    relay: Arc<Relay>,
    mut stopping: Stopping,
    stop_rx: oneshot::Receiver<()>,
    metrics_task: MetricsTask,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let mut builder = Server::builder();
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let cert = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .context("TLS configuration")?;
    }

    // Outermost first: web origins that are not allowed are refused, CORS
    // answers the allowed ones, grpc-web becomes gRPC, then the routes.
    let origins = AllowedOrigins::parse(&config.allow_origins)?;
    let layers = tower::ServiceBuilder::new()
        .layer(tower::layer::layer_fn({
            let origins = origins.clone();
            move |inner| OriginGate::new(inner, origins.clone())
        }))
        .layer(origins.cors())
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(tower::layer::layer_fn(crate::frames::OversizedFrames::new));
    let router = builder
        .accept_http1(true)
        .layer(layers)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(config.limits.max_streams_per_connection))
        .add_routes(routes);
    let sweeper = tokio::spawn(sweep(relay.clone()));
    let shutdown_tx = stopping.shutdown_tx.clone();
    let mut subscribed = stopping.shutdown_tx.subscribe();
    Ok(tokio::spawn(async move {
        let serve = router.serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_rx.await;
            // End live subscriptions so the graceful shutdown can finish.
            let _ = shutdown_tx.send(true);
        });
        tokio::pin!(serve);
        // Requests in flight get SHUTDOWN_GRACE to finish; connections a
        // client keeps open past that are dropped with the process.
        let served = tokio::select! {
            r = &mut serve => r,
            _ = async {
                let _ = subscribed.wait_for(|s| *s).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {
                tracing::warn!("shutdown grace period over; dropping open connections");
                Ok(())
            }
        };
        sweeper.abort();
        let _ = sweeper.await;
        if let Some((_, t)) = metrics_task {
            t.abort();
            let _ = t.await;
        }
        // Streams still finishing hold the relay; when the last one lets
        // go, the relay drops and `relay_gone` closes. Bounded: a stream
        // stuck past that is cut off with the process.
        let store = relay.store.clone();
        drop(relay);
        if tokio::time::timeout(LAST_USER_WAIT, stopping.relay_gone.recv())
            .await
            .is_err()
        {
            tracing::warn!("requests still hold the store; closing it anyway");
        }
        let closed = store.close().await;
        tracing::info!("relay stopped; store flushed and closed");
        served.context("serving gRPC")?;
        closed.context("closing the store")?;
        Ok(())
    }))
}

/// Deletes expired blobs, envelopes past the retention period and old
/// idempotency keys, periodically.
async fn sweep(relay: Arc<Relay>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    let mut retention_swept: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let now = now_ms();
        let retention_due = retention_swept.is_none_or(|t| t.elapsed() >= RETENTION_INTERVAL);
        if let (Some(retention), true) = (relay.limits.retention_ms(), retention_due) {
            retention_swept = Some(std::time::Instant::now());
            loop {
                match relay
                    .store
                    .expire_messages(now.saturating_sub(retention), RETENTION_BATCH)
                    .await
                {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(deleted = n, "envelopes past the retention period");
                        }
                        if n < RETENTION_BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "expiring envelopes failed");
                        break;
                    }
                }
            }
        }
        match relay.store.expired_blobs(now, 1000).await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = relay.store.delete_blob(&id).await {
                        tracing::warn!(error = %e, "deleting an expired blob failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing expired blobs failed"),
        }
        let retention = i64::try_from(relay.limits.dedupe_retention_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        if let Err(e) = relay
            .store
            .prune_dedupe(now - retention, relay.limits.dedupe_window)
            .await
        {
            tracing::warn!(error = %e, "pruning idempotency keys failed");
        }
    }
}
