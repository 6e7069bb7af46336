//! The relay's cost for one group message to 12 members against 12
//! one-to-one sends of the same text, through the Rust SDK and a real relay
//! (sled in a temporary directory) on loopback, alternating in one run.
//!
//! `cargo run --release -p alcove-bench --bin group_fanout -- --rounds 100`
//! prints a Markdown table (see `docs/benchmarks.md`, "Groups").
//!
//! Both put 12 sealed envelopes of the same padded size into 12 mailboxes:
//! the relay cannot tell them apart, which is the point. What differs is the
//! sender's work: one sender-key encryption and 12 seals for the group
//! message, 12 ratchet encryptions and 12 seals for the one-to-one sends.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use alcove_client::Client;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Rounds; each sends one group message and 12 one-to-one messages.
    #[arg(long, default_value_t = 100)]
    rounds: u32,
    /// Members besides the sender.
    #[arg(long, default_value_t = 12)]
    members: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let relay =
        alcove_server::start(alcove_server::Config::for_dir(dir.path().join("relay"))).await?;
    let url = format!("http://{}", relay.addr);
    let therapist = Client::create(&dir.path().join("t"), &[1; 32], &url, "T").await?;
    let invite = therapist
        .create_invite_for(Duration::from_secs(3600), args.members as u32)
        .await?;
    let mut clients = Vec::new();
    for i in 0..args.members {
        let c = Client::create(
            &dir.path().join(format!("c{i}")),
            &[10 + i as u8; 32],
            &url,
            &format!("C{i}"),
        )
        .await?;
        c.accept_invite(&invite).await?;
        clients.push(c);
    }
    therapist.sync().await?;
    let addrs: Vec<_> = clients.iter().map(|c| c.address()).collect();
    let group = therapist.create_group("bench", &addrs).await?;
    let text = "x".repeat(800);
    // Warm-up: chains distributed, sessions ratcheted, mailboxes drained.
    therapist.send_group_text(&group, &text).await?;
    for a in &addrs {
        therapist.send_text(a, &text).await?;
    }
    for c in &clients {
        c.sync().await?;
    }
    let (mut group_time, mut pairwise_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..args.rounds {
        let start = Instant::now();
        therapist.send_group_text(&group, &text).await?;
        group_time += start.elapsed();
        let start = Instant::now();
        for a in &addrs {
            therapist.send_text(a, &text).await?;
        }
        pairwise_time += start.elapsed();
        if round % 10 == 9 {
            for c in &clients {
                c.sync().await?;
            }
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(args.rounds);
    println!(
        "| To {} members, 800-byte text | per message (ms) | envelopes | relay calls |",
        args.members
    );
    println!("|---|---|---|---|");
    println!(
        "| One group message | {:.2} | {} | {} |",
        per(group_time),
        args.members,
        args.members
    );
    println!(
        "| {} one-to-one sends | {:.2} | {} | {} |",
        args.members,
        per(pairwise_time),
        args.members,
        args.members
    );
    println!(
        "\nratio (one-to-one / group): {:.2}x; rounds {}",
        pairwise_time.as_secs_f64() / group_time.as_secs_f64(),
        args.rounds
    );
    relay.shutdown().await?;
    Ok(())
}
