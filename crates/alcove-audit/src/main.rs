//! `alcove-audit`: audit a relay's store and key log. Exit code 0: clean
//! and verified; 1: the audit found something; 2: the audit could not run.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "alcove-audit",
    version,
    about = "Audit an Alcove relay: its store holds nothing readable, its key log only grows."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify every record of a relay's store: a sled data directory
    /// (offline; the relay stopped, or a copy of a stopped store), or a
    /// PostgreSQL schema with --postgres (live; a read-only role is enough).
    Store {
        /// The relay's data directory (sled).
        #[arg(required_unless_present = "postgres", conflicts_with = "postgres")]
        dir: Option<PathBuf>,
        /// The relay's PostgreSQL URL (its schema via search_path, as the
        /// relay's own URL has it; TLS by sslmode and sslrootcert).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// A plaintext that must not occur in the store's files (searched
        /// as UTF-8, UTF-16 and base64). Repeatable; may begin with `-`.
        #[arg(long = "canary", value_name = "TEXT", allow_hyphen_values = true)]
        canaries: Vec<String>,
        /// The practice's retention period in days: report envelopes
        /// waiting longer and blobs kept longer.
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify an exported conversation transcript offline (`alcove export`):
    /// its hash chain, its readable text against the signed content, the
    /// exporter's signature and every author signature. A tampered,
    /// reordered, truncated or spliced transcript is refused (exit 1).
    Transcript {
        /// The transcript file (JSON).
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify the relay's key log: signed head, consistency with the last
    /// head in the state file, optional inclusion of devices' keys.
    Log {
        /// The relay, e.g. http://127.0.0.1:7443.
        #[arg(long)]
        server: String,
        /// Where the auditor keeps the pinned log key and the heads it
        /// verified (JSON; created on the first run).
        #[arg(long)]
        state: Option<PathBuf>,
        /// The log key (hex) to expect, as published by the operator.
        #[arg(long, value_name = "HEX")]
        log_key: Option<String>,
        /// A device address (base64url or hex) whose current keys must be
        /// in the log. Repeatable. A base64url address may begin with `-`;
        /// it is still taken as the value.
        #[arg(long = "address", value_name = "ADDRESS", allow_hyphen_values = true)]
        addresses: Vec<String>,
        /// Download every leaf hash and recompute the root.
        #[arg(long)]
        mirror: bool,
        /// CA certificate (PEM) for an https:// relay.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print<T: serde::Serialize>(json: bool, report: &T, human: String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        print!("{human}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome: anyhow::Result<bool> = match cli.command {
        Command::Store {
            dir,
            postgres,
            canaries,
            retention_days,
            json,
        } => match (dir, postgres) {
            (_, Some(url)) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(alcove_audit::postgres::audit(
                        &url,
                        &canaries,
                        retention_days,
                    ))
                }),
            (Some(dir), None) => alcove_audit::store::audit(&dir, &canaries, retention_days),
            (None, None) => Err(anyhow::anyhow!("give a data directory or --postgres URL")),
        }
        .map(|r| {
            print(json, &r, alcove_audit::store::render(&r));
            r.clean
        }),
        Command::Transcript { file, json } => alcove_audit::transcript::audit(&file).map(|r| {
            print(json, &r, alcove_audit::transcript::render(&r));
            r.verified
        }),
        Command::Log {
            server,
            state,
            log_key,
            addresses,
            mirror,
            ca,
            json,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(alcove_audit::log::audit(&alcove_audit::log::Options {
                    server: &server,
                    state: state.as_deref(),
                    log_key: log_key.as_deref(),
                    addresses: &addresses,
                    mirror,
                    ca: ca.as_deref(),
                }))
            })
            .map(|r| {
                print(json, &r, alcove_audit::log::render(&r));
                r.ok
            }),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("alcove-audit: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A base64url address starts with '-' for one device in 64; it must
    // still be read as the value of --address, not as an unknown flag.
    #[test]
    fn an_address_beginning_with_a_hyphen_is_a_value() {
        let address = "-dQw4w9WgXcQ-dQw4w9WgXcQ-dQw4w9WgXcQ-dQw4w9";
        let cli = Cli::try_parse_from([
            "alcove-audit",
            "log",
            "--server",
            "http://127.0.0.1:1",
            "--address",
            address,
            "--json",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Command::Log {
                addresses, json, ..
            } => {
                assert_eq!(addresses, [address]);
                assert!(json);
            }
            _ => panic!("parsed as another command"),
        }
    }

    #[test]
    fn a_canary_beginning_with_a_hyphen_is_a_value() {
        let cli = Cli::try_parse_from(["alcove-audit", "store", "d", "--canary", "-x-", "--json"])
            .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Command::Store { canaries, json, .. } => {
                assert_eq!(canaries, ["-x-"]);
                assert!(json);
            }
            _ => panic!("parsed as another command"),
        }
    }
}
