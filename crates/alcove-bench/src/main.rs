//! Relay load generator.
//!
//! Starts a real relay (sled in a temporary directory) and a bare tonic echo
//! service on loopback, then drives N concurrent clients through each:
//!
//! - relay: each client is a sender and a recipient device; the sender
//!   sends a 1 KiB sealed envelope as the SDK does (unidentified:
//!   `Delivery.Send` on a connection without a token, with the
//!   recipient's delivery key), the recipient's live subscription
//!   receives it, the recipient acknowledges it (which deletes it, durably);
//!   the next send waits for the receipt. End-to-end latency is send to
//!   receipt.
//! - echo: each client sends the same 1 KiB payload to an echo RPC and waits
//!   for the answer: one round trip, nothing stored. The ceiling.
//!
//! `cargo run --release -p alcove-bench -- --clients 64 --seconds 10 --write docs/benchmarks.md`
//!
//! With `--compare-send-paths`: unidentified against authenticated sends
//! (`Mailbox.Send` with a token), alternating rounds on one relay.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::delivery_client::DeliveryClient;
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::{
    AckRequest, ChallengeRequest, FetchRequest, RegisterRequest, SendRequest, SubscribeRequest,
};
use alcove_protocol::delivery::DeliveryKey;
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::SignedPreKeyPair;
use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use rand::RngCore;
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

mod echo {
    tonic::include_proto!("alcove.bench");
}
use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::Payload;

#[derive(Parser)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of measurement per target (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Plaintext bytes per message (1 KiB lands in the 1 KiB padding bucket).
    #[arg(long, default_value_t = 800)]
    message_bytes: usize,
    /// Append the result table to this Markdown file.
    #[arg(long)]
    write: Option<std::path::PathBuf>,
    /// Also measure one and two relays on this PostgreSQL database (each
    /// run in a fresh schema, dropped afterwards).
    #[arg(long)]
    postgres: Option<String>,
    /// Instead of the echo comparison: unidentified sends (Delivery.Send,
    /// no token, the recipient's delivery key) against authenticated sends
    /// (Mailbox.Send with a token), alternating, on one sled relay.
    #[arg(long)]
    compare_send_paths: bool,
    /// Rounds of each path for --compare-send-paths and --store-size.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Instead of the echo comparison: the same load on an empty store and
    /// on one holding this many envelopes waiting (spread over
    /// --mailboxes registered devices), two relays side by side, rounds
    /// alternating.
    #[arg(long)]
    store_size: Option<u64>,
    /// Mailboxes the --store-size envelopes are spread over.
    #[arg(long, default_value_t = 10_000)]
    mailboxes: u64,
    /// The sled page cache of the --store-size relays, MiB (both get the
    /// same; the relay's default otherwise).
    #[arg(long, default_value_t = alcove_server::limits::DEFAULT_SLED_CACHE_MB)]
    sled_cache_mb: u64,
}

/// How the relay benchmark's senders send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendPath {
    /// `Mailbox.Send` with the sender's login token (the recipient accepts
    /// anyone).
    Authenticated,
    /// `Delivery.Send` on a connection without a token, presenting the
    /// recipient's delivery key (the recipient requires it).
    Unidentified,
}

/// Limits out of the way of a load test (one IP, many devices).
fn unlimited(limits: &mut alcove_server::limits::Limits) {
    limits.rate_per_sec = 1e9;
    limits.rate_burst = 1e9;
    limits.challenges_per_min = 1e9;
    limits.registrations_per_min = 1e9;
    limits.deliveries_per_sec_per_key = 1e9;
}

/// Envelopes a recipient acknowledges per Ack request.
const ACK_BATCH: usize = 16;

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[derive(Default)]
struct Run {
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Ok(v) = MetadataValue::try_from(format!("Bearer {token}")) {
        r.metadata_mut().insert(alcove_api::AUTHORIZATION, v);
    }
    r
}

async fn register(
    channel: Channel,
    identity: &IdentityKeyPair,
    delivery: Option<&DeliveryKey>,
) -> anyhow::Result<String> {
    let mut rng = rand::rngs::OsRng;
    let mut auth = AuthClient::new(channel);
    let address = identity.public().address();
    let c = auth
        .challenge(ChallengeRequest {
            address: address.as_bytes().to_vec(),
        })
        .await?
        .into_inner();
    let signature = identity.sign(&alcove_api::auth_message(
        &c.server_id,
        address.as_bytes(),
        &c.challenge,
    ));
    let spk = SignedPreKeyPair::generate(&mut rng, identity, 1, 0);
    let r = auth
        .register(RegisterRequest {
            identity: identity.public().to_bytes().to_vec(),
            signed_prekey: spk.public().to_bytes().to_vec(),
            one_time_prekeys: vec![],
            challenge: c.challenge,
            signature: signature.to_bytes().to_vec(),
            delivery_verifier: delivery
                .map(|k| k.verifier().0.to_vec())
                .unwrap_or_default(),
        })
        .await?
        .into_inner();
    Ok(r.token)
}

/// Runs `op` for every client at once and gathers the latencies each one
/// measured inside the window.
async fn measure<F, Fut>(clients: usize, window: Duration, op: F) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Vec<u32>>> + Send + 'static,
{
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let op = op.clone();
            tokio::spawn(async move { op(i).await })
        })
        .collect();
    let mut run = Run {
        elapsed: window,
        ..Run::default()
    };
    for t in tasks {
        run.latencies_us.extend(t.await??);
    }
    run.latencies_us.sort_unstable();
    Ok(run)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let warmup = Duration::from_secs(1);
    let window = Duration::from_secs(args.seconds);

    // --- Relay on sled in a temporary directory.
    let dir = tempfile::tempdir()?;
    let mut config = alcove_server::Config::for_dir(dir.path());
    unlimited(&mut config.limits);
    config.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let relay = alcove_server::start(config).await?;
    let relay_addr = relay.addr;

    if let Some(envelopes) = args.store_size {
        relay.shutdown().await?;
        let table = compare_store_sizes(&args, envelopes, window, warmup).await?;
        return emit(&table, args.write.as_deref());
    }

    if args.compare_send_paths {
        let table = compare_send_paths(&args, relay_addr, window, warmup).await?;
        relay.shutdown().await?;
        return emit(&table, args.write.as_deref());
    }

    let (relay_run, envelope_len) = measure_relay(
        &[relay_addr],
        args.clients,
        window,
        warmup,
        args.message_bytes,
        SendPath::Unidentified,
    )
    .await?;
    let flush = flush_summary(relay.metrics_addr).await;
    relay.shutdown().await?;

    // --- Bare echo on loopback, same payload size, same concurrency.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = listener.local_addr()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(
        Server::builder()
            .add_service(EchoServer::new(EchoService))
            .serve_with_incoming(incoming),
    );
    let payload = vec![0x42u8; envelope_len];
    let mut channels = Vec::new();
    for _ in 0..args.clients {
        channels.push(connect(echo_addr).await?);
    }
    let echo_run = measure(args.clients, window, move |i| {
        let channel = channels[i].clone();
        let payload = payload.clone();
        async move {
            let mut client = EchoClient::new(channel);
            let begin = Instant::now();
            let mut latencies = Vec::new();
            while begin.elapsed() < warmup + window {
                let t = Instant::now();
                client
                    .echo(Payload {
                        data: payload.clone(),
                    })
                    .await?;
                if begin.elapsed() > warmup && begin.elapsed() < warmup + window {
                    latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok(latencies)
        }
    })
    .await?;
    server.abort();

    let ratio = relay_run.rate() / echo_run.rate();
    let table = format!(
        "\n### Relay, {clients} concurrent clients, {len}-byte envelopes ({date})\n\n\
         Command: `cargo run --release -p alcove-bench -- --clients {clients} --seconds {secs}`\n\n\
         | Target | Messages/s | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|\n\
         | Relay: send → live delivery → ack (batches of {ACK_BATCH}), durable (sled, group commit) | {r:.0} | {r50:.2} | {r99:.2} | {r999:.2} |\n\
         | Bare tonic echo, same payload and concurrency (ceiling) | {e:.0} | {e50:.2} | {e99:.2} | {e999:.2} |\n\n\
         Relay throughput is **{ratio:.2}x** the echo ceiling. Group commit during the relay run: {flush}.\n",
        clients = args.clients,
        len = envelope_len,
        date = chrono_date(),
        secs = args.seconds,
        r = relay_run.rate(),
        r50 = relay_run.percentile(0.5),
        r99 = relay_run.percentile(0.99),
        r999 = relay_run.percentile(0.999),
        e = echo_run.rate(),
        e50 = echo_run.percentile(0.5),
        e99 = echo_run.percentile(0.99),
        e999 = echo_run.percentile(0.999),
    );
    let mut table = table;
    if let Some(url) = &args.postgres {
        let mut rows = Vec::new();
        for n in [1usize, 2] {
            let (admin, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let schema = format!("alcove_bench_{:016x}", rand::random::<u64>());
            admin
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await?;
            let sep = if url.contains('?') { '&' } else { '?' };
            let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
            let mut relays = Vec::new();
            for _ in 0..n {
                let mut config = alcove_server::Config::for_dir(dir.path().join("unused"));
                config.store = Some(scoped.clone());
                config.secrets_file = Some(dir.path().join(format!("{schema}.secrets")));
                unlimited(&mut config.limits);
                relays.push(alcove_server::start(config).await?);
            }
            let addrs: Vec<_> = relays.iter().map(|r| r.addr).collect();
            let (run, _) = measure_relay(
                &addrs,
                args.clients,
                window,
                warmup,
                args.message_bytes,
                SendPath::Unidentified,
            )
            .await?;
            for r in relays {
                r.shutdown().await?;
            }
            admin
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await?;
            rows.push((n, run));
        }
        let one = rows[0].1.rate();
        let two = rows[1].1.rate();
        table.push_str(&format!(
            "\n#### Same load on PostgreSQL (same run)\n\n\
             Command: add `--postgres {url}`. Two relays: each sender talks to one relay and its \
             recipient subscribes on the other, so every message crosses relays (NOTIFY).\n\n\
             | Store | Relays | Messages/s | p50 ms | p99 ms |\n|---|---|---|---|---|\n\
             | sled (group commit) | 1 | {s:.0} | {s50:.2} | {s99:.2} |\n\
             | PostgreSQL | 1 | {one:.0} | {o50:.2} | {o99:.2} |\n\
             | PostgreSQL | 2 | {two:.0} | {t50:.2} | {t99:.2} |\n\n\
             Scaling from one to two PostgreSQL relays: **{scale:.2}x**.\n",
            s = relay_run.rate(),
            s50 = relay_run.percentile(0.5),
            s99 = relay_run.percentile(0.99),
            o50 = rows[0].1.percentile(0.5),
            o99 = rows[0].1.percentile(0.99),
            t50 = rows[1].1.percentile(0.5),
            t99 = rows[1].1.percentile(0.99),
            scale = two / one,
        ));
    }
    emit(&table, args.write.as_deref())
}

/// Prints a result section and appends it to `write`, if given.
fn emit(table: &str, write: Option<&std::path::Path>) -> anyhow::Result<()> {
    print!("{table}");
    if let Some(path) = write {
        let mut doc = std::fs::read_to_string(path).unwrap_or_default();
        doc.push_str(table);
        std::fs::write(path, doc)?;
    }
    Ok(())
}

/// Flushes, writes per flush and mean flush time, from the relay's metrics.
async fn flush_summary(addr: Option<std::net::SocketAddr>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(addr) = addr else {
        return "no metrics".into();
    };
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return "no metrics".into();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text).await;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let flushes = value("alcove_store_flushes_total ");
    let commits = value("alcove_store_commits_total ");
    let micros = value("alcove_store_flush_micros_total ");
    format!(
        "{flushes:.0} flushes, {:.1} writes per flush, {:.2} ms per flush",
        commits / flushes.max(1.0),
        micros / flushes.max(1.0) / 1000.0
    )
}

/// Today's date (UTC), as `date -u +%F` prints it.
fn chrono_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "date unknown".into())
}

/// Fills a sled store in `dir` with `mailboxes` registered devices and
/// `envelopes` envelopes waiting, spread evenly over them, written through
/// the store API by 256 concurrent writers (each write durable, as a
/// relay's). Returns how long it took.
async fn preload(
    dir: &std::path::Path,
    envelopes: u64,
    mailboxes: u64,
) -> anyhow::Result<Duration> {
    use alcove_store::Store;
    let begin = Instant::now();
    let store = Arc::new(alcove_store::SledStore::open(dir)?);
    let mut addresses = Vec::new();
    let mut rng = rand::rngs::OsRng;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    for _ in 0..mailboxes {
        let identity = IdentityKeyPair::generate(&mut rng);
        let spk = SignedPreKeyPair::generate(&mut rng, &identity, 1, (now / 1000) as u64);
        let address = *identity.public().address().as_bytes();
        let mut salt = [0u8; 32];
        rng.fill_bytes(&mut salt);
        addresses.push((
            address,
            identity.public().to_bytes().to_vec(),
            spk.public().to_bytes().to_vec(),
            salt,
        ));
    }
    let addresses = Arc::new(addresses);
    let writers = 256u64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let addresses = addresses.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::OsRng;
            let mut envelope = vec![0u8; alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN];
            let mut i = w;
            while i < mailboxes {
                let (address, identity, spk, salt) = &addresses[i as usize];
                store
                    .publish_keys(address, Some(identity), spk, salt, now)
                    .await?;
                i += writers;
            }
            let mut n = w;
            while n < envelopes {
                let (address, ..) = &addresses[(n % mailboxes) as usize];
                rng.fill_bytes(&mut envelope);
                envelope[0] = alcove_protocol::sealed_sender::ENVELOPE_VERSION;
                let mut id = [0u8; 16];
                rng.fill_bytes(&mut id);
                store
                    .enqueue(address, &id, &envelope, now - now % 60_000, u64::MAX)
                    .await?;
                n += writers;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    store.close().await?;
    Ok(begin.elapsed())
}

/// Fetch rate: each client reads the same full page (100 envelopes waiting,
/// not acknowledged) of its own mailbox again and again.
async fn measure_fetch(
    relay: std::net::SocketAddr,
    clients: usize,
    window: Duration,
    warmup: Duration,
) -> anyhow::Result<Run> {
    let mut devices = Vec::new();
    for _ in 0..clients {
        let mut rng = rand::rngs::OsRng;
        let channel = connect(relay).await?;
        let identity = IdentityKeyPair::generate(&mut rng);
        let token = register(channel.clone(), &identity, None).await?;
        let mut delivery = DeliveryClient::new(connect(relay).await?);
        let envelope = alcove_protocol::sealed_sender::seal(
            &mut rng,
            &identity,
            identity.public(),
            &[0x42; 800],
        )?;
        for _ in 0..100 {
            let mut cid = [0u8; 16];
            rng.fill_bytes(&mut cid);
            delivery
                .send(SendRequest {
                    recipient: identity.public().address().as_bytes().to_vec(),
                    client_message_id: cid.to_vec(),
                    envelope: envelope.clone(),
                    access_key: Vec::new(),
                })
                .await?;
        }
        devices.push(Arc::new((channel, token)));
    }
    measure(clients, window, move |i| {
        let device = devices[i].clone();
        async move {
            let (channel, token) = &*device;
            let mut mailbox =
                MailboxClient::new(channel.clone()).max_decoding_message_size(8 << 20);
            let begin = Instant::now();
            let mut latencies = Vec::new();
            while begin.elapsed() < warmup + window {
                let t = Instant::now();
                let page = mailbox
                    .fetch(authed(
                        token,
                        FetchRequest {
                            limit: 100,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                anyhow::ensure!(page.envelopes.len() == 100, "a page of 100");
                if begin.elapsed() > warmup && begin.elapsed() < warmup + window {
                    latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok(latencies)
        }
    })
    .await
}

/// Sends and fetches on an empty store against a store holding
/// `envelopes` waiting envelopes, as a Markdown section.
async fn compare_store_sizes(
    args: &Args,
    envelopes: u64,
    window: Duration,
    warmup: Duration,
) -> anyhow::Result<String> {
    let empty_dir = tempfile::tempdir()?;
    let full_dir = tempfile::tempdir()?;
    let took = preload(full_dir.path(), envelopes, args.mailboxes).await?;
    let mut relays = Vec::new();
    let mut started = Vec::new();
    for dir in [empty_dir.path(), full_dir.path()] {
        let mut config = alcove_server::Config::for_dir(dir);
        unlimited(&mut config.limits);
        config.limits.max_mailbox_depth = u64::MAX;
        config.sled_cache_mb = args.sled_cache_mb;
        let t = Instant::now();
        relays.push(alcove_server::start(config).await?);
        started.push(t.elapsed());
    }
    let mut rows = Vec::new();
    // [store][send, fetch] sums of rates.
    let mut sums = [[0.0f64; 2]; 2];
    let full = format!("{envelopes} waiting");
    for round in 1..=args.rounds {
        for (slot, name) in ["empty", full.as_str()].into_iter().enumerate() {
            let addr = relays[slot].addr;
            let (send, _) = measure_relay(
                &[addr],
                args.clients,
                window,
                warmup,
                args.message_bytes,
                SendPath::Unidentified,
            )
            .await?;
            let fetch = measure_fetch(addr, args.clients, window, warmup).await?;
            sums[slot][0] += send.rate();
            sums[slot][1] += fetch.rate();
            rows.push(format!(
                "| {round} | {name} | {:.0} | {:.2} | {:.0} | {:.2} |",
                send.rate(),
                send.percentile(0.99),
                fetch.rate(),
                fetch.percentile(0.99),
            ));
        }
    }
    for r in relays {
        r.shutdown().await?;
    }
    let size: u64 = walk_size(full_dir.path());
    Ok(format!(
        "\n### Cost against store size: {envelopes} envelopes waiting in {mailboxes} mailboxes ({date})\n\n\
         Command: `cargo run --release -p alcove-bench -- --store-size {envelopes} --mailboxes {mailboxes} \
         --clients {clients} --seconds {secs} --rounds {rounds} --sled-cache-mb {cache}`. Two sled relays side by side, \
         each with a {cache} MiB page cache, one on an \
         empty store and one on a store preloaded through the store API ({mailboxes} registered devices, \
         {envelopes} sealed-size envelopes of 449 bytes waiting, {mb:.0} MB on disk, written in {took:.0} s; \
         the relay on it started in {start:.1} s, recovery scan included). Rounds alternate between them. \
         Send: send → live delivery → ack, as above (unidentified). Fetch: each client reads its own \
         mailbox's full page of 100 waiting envelopes, again and again.\n\n\
         | Round | Store | Sends/s | p99 ms | Fetches/s (100 envelopes each) | p99 ms |\n|---|---|---|---|---|---|\n{rows}\n\n\
         Full over empty, sum of rounds: sends **{send:.2}x**, fetches **{fetch:.2}x**.\n",
        mailboxes = args.mailboxes,
        date = chrono_date(),
        clients = args.clients,
        secs = args.seconds,
        rounds = args.rounds,
        cache = args.sled_cache_mb,
        mb = size as f64 / 1e6,
        took = took.as_secs_f64(),
        start = started[1].as_secs_f64(),
        rows = rows.join("\n"),
        send = sums[1][0] / sums[0][0],
        fetch = sums[1][1] / sums[0][1],
    ))
}

/// Bytes of the files under `dir`.
fn walk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Unidentified against authenticated sends, alternating rounds on one
/// relay, as a Markdown section.
async fn compare_send_paths(
    args: &Args,
    relay: std::net::SocketAddr,
    window: Duration,
    warmup: Duration,
) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    let mut sums = [0.0f64; 2];
    for round in 1..=args.rounds {
        for (slot, path) in [SendPath::Authenticated, SendPath::Unidentified]
            .into_iter()
            .enumerate()
        {
            let (run, _) = measure_relay(
                &[relay],
                args.clients,
                window,
                warmup,
                args.message_bytes,
                path,
            )
            .await?;
            sums[slot] += run.rate();
            rows.push(format!(
                "| {round} | {path:?} | {:.0} | {:.2} | {:.2} |",
                run.rate(),
                run.percentile(0.5),
                run.percentile(0.99)
            ));
        }
    }
    let ratio = sums[1] / sums[0];
    Ok(format!(
        "\n### Unidentified against authenticated sends, {clients} clients ({date})\n\n\
         Command: `cargo run --release -p alcove-bench -- --compare-send-paths --clients {clients} \
         --seconds {secs} --rounds {rounds}`. One sled relay; each round runs the authenticated \
         path (`Mailbox.Send` with a token) and then the unidentified one (`Delivery.Send` on a \
         connection without a token, with the recipient's delivery key checked against its \
         verifier); send → live delivery → ack as in the table above.\n\n\
         | Round | Send path | Messages/s | p50 ms | p99 ms |\n|---|---|---|---|---|\n{rows}\n\n\
         Unidentified over authenticated, sum of rounds: **{ratio:.2}x**.\n",
        clients = args.clients,
        date = chrono_date(),
        secs = args.seconds,
        rounds = args.rounds,
        rows = rows.join("\n"),
    ))
}

/// The relay measurement: `clients` sender/recipient pairs; sender `i`
/// talks to `addrs[i % n]`, its recipient subscribes on `addrs[(i + 1) % n]`
/// (with two relays, every message crosses from one to the other).
async fn measure_relay(
    addrs: &[std::net::SocketAddr],
    clients: usize,
    window: Duration,
    warmup: Duration,
    message_bytes: usize,
    path: SendPath,
) -> anyhow::Result<(Run, usize)> {
    // Devices and their envelopes, set up before the clock starts.
    let mut pairs = Vec::new();
    let mut keys = Vec::new();
    for i in 0..clients {
        let mut rng = rand::rngs::OsRng;
        let channel = connect(addrs[i % addrs.len()]).await?;
        let recv_channel = connect(addrs[(i + 1) % addrs.len()]).await?;
        let sender = IdentityKeyPair::generate(&mut rng);
        let recipient = IdentityKeyPair::generate(&mut rng);
        let key = DeliveryKey::generate(&mut rng);
        let sender_token = register(channel.clone(), &sender, None).await?;
        let recipient_token = register(
            recv_channel.clone(),
            &recipient,
            (path == SendPath::Unidentified).then_some(&key),
        )
        .await?;
        keys.push(Arc::new(key.as_bytes().to_vec()));
        let envelope = alcove_protocol::sealed_sender::seal(
            &mut rng,
            &sender,
            recipient.public(),
            &vec![0x42; message_bytes],
        )?;
        pairs.push(Arc::new((
            channel,
            recv_channel,
            sender_token,
            recipient_token,
            *recipient.public().address().as_bytes(),
            envelope,
        )));
    }
    let envelope_len = pairs.first().map_or(0, |p| p.5.len());

    let relay_run = {
        let pairs = pairs.clone();
        let addrs = addrs.to_vec();
        measure(clients, window, move |i| {
            let pair = pairs[i].clone();
            let key = keys[i].clone();
            let addr = addrs[i % addrs.len()];
            async move {
                // The unidentified path sends on a connection of its own
                // that never carries a token, as the SDK does.
                let mut delivery = match path {
                    SendPath::Unidentified => Some(DeliveryClient::new(connect(addr).await?)),
                    SendPath::Authenticated => None,
                };
                let (channel, recv_channel, sender_token, recipient_token, recipient, envelope) =
                    &*pair;
                let mut mailbox = MailboxClient::new(channel.clone());
                let acker = MailboxClient::new(recv_channel.clone());
                let mut stream = acker
                    .clone()
                    .subscribe(authed(recipient_token, SubscribeRequest::default()))
                    .await?
                    .into_inner();
                let begin = Instant::now();
                let mut latencies = Vec::new();
                let mut pending_acks = Vec::new();
                let mut to_ack = Vec::new();
                while begin.elapsed() < warmup + window {
                    let mut cid = [0u8; 16];
                    rand::thread_rng().fill_bytes(&mut cid);
                    let t = Instant::now();
                    let request = SendRequest {
                        recipient: recipient.to_vec(),
                        client_message_id: cid.to_vec(),
                        envelope: envelope.clone(),
                        access_key: Vec::new(),
                    };
                    match delivery.as_mut() {
                        Some(d) => {
                            d.send(SendRequest {
                                access_key: key.to_vec(),
                                ..request
                            })
                            .await?;
                        }
                        None => {
                            mailbox.send(authed(sender_token, request)).await?;
                        }
                    }
                    let got = stream.next().await.context("subscription ended")??;
                    let latency = t.elapsed();
                    if begin.elapsed() > warmup && begin.elapsed() < warmup + window {
                        latencies.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                    }
                    // Acknowledge in batches, off the critical path, as the
                    // SDK does.
                    to_ack.push(got.sequence);
                    if to_ack.len() == ACK_BATCH {
                        let req = authed(
                            recipient_token,
                            AckRequest {
                                sequences: std::mem::take(&mut to_ack),
                                ..Default::default()
                            },
                        );
                        let mut a = acker.clone();
                        pending_acks.push(tokio::spawn(async move { a.ack(req).await }));
                    }
                    if pending_acks.len() > 4 {
                        for p in pending_acks.drain(..) {
                            p.await??;
                        }
                    }
                }
                if !to_ack.is_empty() {
                    let req = authed(
                        recipient_token,
                        AckRequest {
                            sequences: to_ack,
                            ..Default::default()
                        },
                    );
                    acker.clone().ack(req).await?;
                }
                for p in pending_acks {
                    p.await??;
                }
                Ok(latencies)
            }
        })
        .await?
    };
    Ok((relay_run, envelope_len))
}
