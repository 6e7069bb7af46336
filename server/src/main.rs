//! `alcove-server`: run the relay until SIGTERM or Ctrl-C.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = alcove_server::Config::parse();
    let relay = alcove_server::start(config).await?;
    // One line on stdout that scripts and tests can wait for.
    println!("alcove-server listening on {}", relay.addr);
    if let Some(m) = relay.metrics_addr {
        println!("metrics on http://{m}/metrics");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    relay.shutdown().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
