//! Soak: the real `alcove-server` binary under a steady mixed load for a
//! bounded time, with subscribers that connect and disconnect all along.
//! Every interval it prints sends and deliveries per second and the
//! server's resident memory (VmRSS from /proc), so that memory growth at a
//! steady load shows.
//!
//! ```sh
//! cargo build --release -p alcove-server -p alcove-bench
//! target/release/soak --minutes 5 --write docs/reliability.md
//! ```
//!
//! Load: `--pairs` sender/recipient pairs. Senders send sealed-size
//! envelopes one after another; each recipient holds a live subscription
//! for one to four seconds, acknowledges what it gets, drops the stream
//! and subscribes again (resuming from its cursor); a registration every
//! second grows the key log. Everything talks to 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::{
    AckRequest, ChallengeRequest, RegisterRequest, SendRequest, SubscribeRequest,
};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::SignedPreKeyPair;
use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use rand::{Rng, RngCore};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

#[derive(Parser)]
struct Args {
    /// How long to run, minutes (fractions allowed).
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Sender/recipient pairs.
    #[arg(long, default_value_t = 16)]
    pairs: usize,
    /// Seconds between reports.
    #[arg(long, default_value_t = 15)]
    interval: u64,
    /// New registrations per second (0: none, to tell the memory that
    /// messaging needs from the memory that new users add).
    #[arg(long, default_value_t = 1.0)]
    registrations_per_sec: f64,
    /// Extra flags for the relay (repeatable), e.g. `--server-arg=--sled-cache-mb=16`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// The relay binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// Write the table into this Markdown file, between
    /// `<!-- SOAK:BEGIN -->` and `<!-- SOAK:END -->`.
    #[arg(long)]
    write: Option<std::path::PathBuf>,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn authed<T>(token: &str, m: T) -> Request<T> {
    let mut r = Request::new(m);
    if let Ok(v) = MetadataValue::try_from(format!("Bearer {token}")) {
        r.metadata_mut().insert(alcove_api::AUTHORIZATION, v);
    }
    r
}

async fn register(channel: Channel) -> anyhow::Result<(IdentityKeyPair, String)> {
    let identity = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    let address = identity.public().address();
    let mut auth = AuthClient::new(channel);
    let c = auth
        .challenge(ChallengeRequest {
            address: address.as_bytes().to_vec(),
        })
        .await?
        .into_inner();
    let sig = identity.sign(&alcove_api::auth_message(
        &c.server_id,
        address.as_bytes(),
        &c.challenge,
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let spk = SignedPreKeyPair::generate(&mut rand::rngs::OsRng, &identity, 1, now);
    let token = auth
        .register(RegisterRequest {
            identity: identity.public().to_bytes().to_vec(),
            signed_prekey: spk.public().to_bytes().to_vec(),
            one_time_prekeys: vec![],
            challenge: c.challenge,
            signature: sig.to_bytes().to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .token;
    Ok((identity, token))
}

fn start(
    bin: &std::path::Path,
    dir: &std::path::Path,
    extra: &[String],
) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--rate-per-sec", "1000000", "--rate-burst", "1000000"])
        .args([
            "--registrations-per-min",
            "1000000",
            "--challenges-per-min",
            "1000000",
        ])
        .args(["--deliveries-per-sec-per-key", "1000000"])
        .args(extra)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("alcove-server listening on ")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_string();
    Ok((child, addr))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("alcove-server"),
    };
    let dir = tempfile::tempdir()?;
    let (mut server, addr) = start(&bin, dir.path(), &args.server_args)?;
    let pid = server.id();
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;

    let sent = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let resubscribed = Arc::new(AtomicU64::new(0));
    let registered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.pairs {
        let (_, sender_token) = register(channel.clone()).await?;
        let (recipient, recipient_token) = register(channel.clone()).await?;
        let to = recipient.public().address().as_bytes().to_vec();
        let (c, sent, stop2) = (channel.clone(), sent.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut mb = MailboxClient::new(c);
            let mut envelope = vec![0u8; alcove_protocol::sealed_sender::MIN_ENVELOPE_LEN];
            rand::thread_rng().fill_bytes(&mut envelope);
            envelope[0] = 1;
            while !stop2.load(Ordering::Relaxed) {
                let mut id = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut id);
                let r = mb
                    .send(authed(
                        &sender_token,
                        SendRequest {
                            recipient: to.clone(),
                            client_message_id: id.to_vec(),
                            envelope: envelope.clone(),
                            ..Default::default()
                        },
                    ))
                    .await;
                match r {
                    Ok(_) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    // A full mailbox while its owner is between
                    // subscriptions: back off.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }));
        let (c, delivered, resubscribed, stop2) = (
            channel.clone(),
            delivered.clone(),
            resubscribed.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mb = MailboxClient::new(c);
            let mut cursor = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let hold = Duration::from_millis(rand::thread_rng().gen_range(1000..4000));
                let Ok(stream) = mb
                    .subscribe(authed(
                        &recipient_token,
                        SubscribeRequest {
                            after_sequence: cursor,
                            mailbox: vec![],
                        },
                    ))
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                resubscribed.fetch_add(1, Ordering::Relaxed);
                let mut stream = stream.into_inner();
                let until = Instant::now() + hold;
                let mut batch = Vec::new();
                loop {
                    let next = tokio::time::timeout_at(until.into(), stream.next()).await;
                    let Ok(Some(Ok(e))) = next else { break };
                    cursor = cursor.max(e.sequence);
                    batch.push(e.sequence);
                    if batch.len() >= 32 {
                        let n = batch.len() as u64;
                        if mb
                            .ack(authed(
                                &recipient_token,
                                AckRequest {
                                    sequences: std::mem::take(&mut batch),
                                    mailbox: vec![],
                                },
                            ))
                            .await
                            .is_ok()
                        {
                            delivered.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                }
                drop(stream); // disconnect
                if !batch.is_empty() {
                    let n = batch.len() as u64;
                    if mb
                        .ack(authed(
                            &recipient_token,
                            AckRequest {
                                sequences: batch,
                                mailbox: vec![],
                            },
                        ))
                        .await
                        .is_ok()
                    {
                        delivered.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    if args.registrations_per_sec > 0.0 {
        let pause = Duration::from_secs_f64(1.0 / args.registrations_per_sec);
        let (c, registered, stop2) = (channel.clone(), registered.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop2.load(Ordering::Relaxed) {
                if register(c.clone()).await.is_ok() {
                    registered.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(pause).await;
            }
        }));
    }

    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let interval = Duration::from_secs(args.interval.max(1));
    let start_rss = rss_kib(pid);
    let began = Instant::now();
    let mut rows = vec![format!(
        "| {:>6} | {:>9} | {:>12} | {:>14} | {:>14} | {:>9} |",
        "time s", "sent/s", "delivered/s", "subscriptions", "registrations", "RSS MiB"
    )];
    rows.push("|---:|---:|---:|---:|---:|---:|".into());
    rows.push(format!(
        "| {:>6} | {:>9} | {:>12} | {:>14} | {:>14} | {:>9.1} |",
        0,
        "-",
        "-",
        0,
        0,
        start_rss as f64 / 1024.0
    ));
    println!("{}\n{}\n{}", rows[0], rows[1], rows[2]);
    let (mut last_sent, mut last_delivered) = (0, 0);
    let mut rss_series = vec![start_rss];
    while began.elapsed() < total {
        tokio::time::sleep(interval.min(total.saturating_sub(began.elapsed()))).await;
        let (s, d) = (
            sent.load(Ordering::Relaxed),
            delivered.load(Ordering::Relaxed),
        );
        let secs = interval.as_secs_f64();
        let rss = rss_kib(pid);
        rss_series.push(rss);
        let row = format!(
            "| {:>6.0} | {:>9.0} | {:>12.0} | {:>14} | {:>14} | {:>9.1} |",
            began.elapsed().as_secs_f64(),
            (s - last_sent) as f64 / secs,
            (d - last_delivered) as f64 / secs,
            resubscribed.load(Ordering::Relaxed),
            registered.load(Ordering::Relaxed),
            rss as f64 / 1024.0
        );
        println!("{row}");
        rows.push(row);
        (last_sent, last_delivered) = (s, d);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = server.wait()?;

    // Growth at steady load: the second half of the run against the first.
    let n = rss_series.len();
    let early = rss_series[n / 4..n / 2].iter().copied().max().unwrap_or(0);
    let late = rss_series[n / 2..].iter().copied().max().unwrap_or(0);
    let summary = format!(
        "Server flags: `{}`. {:.1} minutes, {} pairs: {} sent, {} delivered and acknowledged, {} subscriptions \
         opened and dropped, {} registrations; server RSS {:.1} MiB at start, peak {:.1} MiB in \
         the second quarter, {:.1} MiB in the second half, {:.1} MiB at the end; server exit: {}.",
        args.server_args.join(" "),
        args.minutes,
        args.pairs,
        sent.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed),
        resubscribed.load(Ordering::Relaxed),
        registered.load(Ordering::Relaxed),
        start_rss as f64 / 1024.0,
        early as f64 / 1024.0,
        late as f64 / 1024.0,
        rss_series.last().copied().unwrap_or(0) as f64 / 1024.0,
        status
    );
    println!("{summary}");
    if let Some(path) = args.write {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let block = format!(
            "<!-- SOAK:BEGIN -->\n{}\n\n{}\n<!-- SOAK:END -->",
            rows.join("\n"),
            summary
        );
        let updated = match (
            text.find("<!-- SOAK:BEGIN -->"),
            text.find("<!-- SOAK:END -->"),
        ) {
            (Some(a), Some(b)) => format!(
                "{}{}{}",
                &text[..a],
                block,
                &text[b + "<!-- SOAK:END -->".len()..]
            ),
            _ => format!("{text}\n{block}\n"),
        };
        std::fs::write(&path, updated)?;
    }
    Ok(())
}
