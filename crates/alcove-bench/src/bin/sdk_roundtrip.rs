//! Send + receive round trips through the Rust SDK against a running relay,
//! the baseline for the Python binding's figure (`bindings/python/bench/roundtrip.py`
//! runs both against the same relay in one run).
//!
//! `sdk_roundtrip --url http://127.0.0.1:PORT --dir DIR --count N`: two
//! profiles in DIR exchange N texts, one at a time (send, then the other side
//! syncs until it has it); prints `rust_sdk <round trips per second>`.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use alcove_client::{Body, Client};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long, default_value_t = 500)]
    count: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let a = Client::create(&args.dir.join("a"), &[1; 32], &args.url, "A").await?;
    let b = Client::create(&args.dir.join("b"), &[2; 32], &args.url, "B").await?;
    let invite = a.create_invite(Duration::from_secs(600)).await?;
    let to_a = b.accept_invite(&invite).await?.address;
    let to_b = a.sync().await?[0].contact;
    b.send_text(&to_a, "warm-up").await?;
    a.sync().await?;
    let start = Instant::now();
    for i in 0..args.count {
        a.send_text(&to_b, &format!("message {i}")).await?;
        loop {
            let got = b.sync().await?;
            if got.iter().any(
                |e| matches!(e.body(), Some(Body::Text(t)) if t.body == format!("message {i}")),
            ) {
                for e in &got {
                    b.confirm(e).await?;
                }
                break;
            }
        }
    }
    let rate = f64::from(args.count) / start.elapsed().as_secs_f64();
    println!("rust_sdk {rate:.1}");
    Ok(())
}
