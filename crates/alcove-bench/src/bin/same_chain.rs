//! The native half of the browser comparison in `docs/benchmarks.md`:
//! `alcove_protocol::vectors::same_chain` (one sending chain, each message
//! encrypted and decrypted), timed in this process. The wasm half is the
//! same function in `bindings/alcove-wasm` (`benchSameChain`), timed in
//! Node by `bindings/alcove-wasm/bench/same-chain.mjs`, which runs both.
//!
//! Usage: `same_chain MESSAGES SIZE` — prints `{"messages":..,"size":..,"ms":..}`.

use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let mut args = std::env::args().skip(1);
    let messages: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let started = Instant::now();
    if let Err(e) =
        alcove_protocol::vectors::same_chain(&mut ChaCha20Rng::from_seed([9; 32]), messages, size)
    {
        eprintln!("same_chain: {e}");
        std::process::exit(1);
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    println!("{{\"messages\":{messages},\"size\":{size},\"ms\":{ms:.3}}}");
}
