//! `alcove`: Alcove for people and scripts.
//!
//! `alcove demo` runs the whole mission on an embedded relay: invite,
//! verification, messages while one side is offline, homework with a
//! worksheet, submission, feedback, receipts, and a check that the relay
//! stored no plaintext.
#![forbid(unsafe_code)]

mod demo;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "alcove",
    version,
    about = "End-to-end encrypted messaging for therapy apps."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a therapist and a client through an embedded relay, end to end.
    Demo {
        /// Keep the demo's files in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo { dir } => match dir {
            Some(d) => {
                std::fs::create_dir_all(&d)?;
                demo::run(&d).await
            }
            None => {
                let tmp = tempfile::tempdir()?;
                demo::run(tmp.path()).await
            }
        },
    }
}
