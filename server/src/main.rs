//! `alcove-server`: run the relay until SIGTERM or Ctrl-C.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match alcove_server::Config::load() {
        Ok(c) => c,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(clap) => clap.exit(),
            Err(e) => {
                eprintln!("alcove-server: {e:#}");
                std::process::exit(2);
            }
        },
    };
    if config.check_config {
        match config.check() {
            Ok(report) => {
                println!("{report}configuration OK");
                return Ok(());
            }
            Err(e) => {
                eprintln!("alcove-server: configuration not usable: {e:#}");
                std::process::exit(2);
            }
        }
    }
    // Handlers first: a SIGTERM that arrives right after the "listening"
    // line must shut down cleanly, not kill the process.
    let stop = shutdown_signal()?;
    let relay = alcove_server::start(config).await?;
    // One line on stdout that scripts and tests can wait for.
    println!("alcove-server listening on {}", relay.addr);
    if let Some(m) = relay.metrics_addr {
        println!("metrics on http://{m}/metrics");
    }
    stop.await;
    tracing::info!("shutting down");
    relay.shutdown().await
}

/// Installs the SIGTERM and Ctrl-C handlers now; the future resolves on
/// the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = ctrl_c => {},
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    })
}
