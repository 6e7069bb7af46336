//! `alcove`: Alcove for people and scripts.
//!
//! Every command works on one profile directory (`--profile`), unlocked by a
//! 32-byte storage key given as 64 hex digits in `ALCOVE_STORAGE_KEY` or in
//! a file (`--key-file`). `--json` prints one JSON object per result line
//! for scripts. `alcove demo` runs the whole mission on an embedded relay.
#![forbid(unsafe_code)]

mod demo;
mod export;
mod groups;
mod practice;

use std::path::{Path, PathBuf};
use std::time::Duration;

use alcove_client::{AttachmentPointer, Body, Client, Contact, Event, EventKind, MessageId};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "alcove",
    version,
    about = "End-to-end encrypted messaging for therapy apps."
)]
struct Cli {
    /// Profile directory.
    #[arg(
        long,
        global = true,
        env = "ALCOVE_PROFILE",
        default_value = "./alcove-profile"
    )]
    profile: PathBuf,
    /// File holding the 32-byte storage key (raw or as 64 hex digits).
    /// Otherwise ALCOVE_STORAGE_KEY (64 hex digits) is used.
    #[arg(long, global = true, env = "ALCOVE_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The contact a command is for: its name, or the start of its address.
/// Addresses are base64url, so one in 64 begins with `-`; it is still read
/// as the contact, not as a flag.
#[derive(clap::Args)]
struct ContactArg {
    /// Contact name, or the start of its address.
    #[arg(value_name = "CONTACT", allow_hyphen_values = true)]
    contact: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create a profile and register it with a relay.
    Init {
        #[arg(long)]
        server: String,
        #[arg(long)]
        name: String,
    },
    /// Print an invite link (for a QR code) to give a client out of band.
    Invite {
        /// How long the invite is valid, in hours (at least 1).
        #[arg(long, default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..))]
        valid_hours: u64,
        /// How many people may accept it.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        uses: u32,
    },
    /// Accept an invite link; the new contact is verified through it.
    Accept {
        invite: String,
        /// Name to show for the inviter.
        #[arg(long)]
        name: Option<String>,
    },
    /// List contacts with their safety numbers.
    Contacts,
    /// Send a text message.
    Send {
        #[command(flatten)]
        contact: ContactArg,
        text: String,
    },
    /// Assign homework, optionally with a worksheet.
    Assign {
        #[command(flatten)]
        contact: ContactArg,
        #[arg(long)]
        title: String,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
        #[arg(long, default_value = "")]
        instructions: String,
        file: Option<PathBuf>,
    },
    /// Hand in homework for an assignment (its message id, in hex).
    Submit {
        #[command(flatten)]
        contact: ContactArg,
        #[arg(long)]
        assignment: String,
        text: String,
        file: Option<PathBuf>,
    },
    /// Give feedback on a message (its id, in hex).
    Feedback {
        #[command(flatten)]
        contact: ContactArg,
        #[arg(long)]
        refers_to: String,
        text: String,
    },
    /// Send a document.
    Attach {
        #[command(flatten)]
        contact: ContactArg,
        file: PathBuf,
    },
    /// Receive messages (and keep receiving with --follow).
    Inbox {
        #[arg(long)]
        follow: bool,
    },
    /// Download a received attachment by its blob id (hex).
    Download {
        blob_id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Who may write to this profile without identifying themselves to
    /// the relay (docs/protocol.md §14).
    Delivery {
        #[command(subcommand)]
        action: DeliveryAction,
    },
    /// Export the conversation as a signed, hash-chained transcript: FILE
    /// (JSON, verified by `alcove-audit transcript`) and FILE with .html.
    Export {
        #[command(flatten)]
        contact: ContactArg,
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the conversation this device keeps.
    History {
        #[command(flatten)]
        contact: ContactArg,
    },
    /// Verifiable records for what this device writes to a contact: while
    /// on, each message carries this device's signature, so a transcript
    /// proves its authorship to anyone (this gives up deniability). The
    /// contact is told.
    Records {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[command(flatten)]
        contact: ContactArg,
    },
    /// Disappearing messages for a conversation, for both sides: each
    /// device deletes messages this many days after sending or receiving
    /// them (`off` to stop). The contact is told.
    Disappearing {
        #[command(flatten)]
        contact: ContactArg,
        /// Days (1 to 1825), or `off`.
        #[arg(long)]
        days: String,
    },
    /// Clinician credentials: issue (issuer), publish (clinician), show
    /// (client), revoke (issuer). See docs/therapy.md.
    Credential {
        #[command(subcommand)]
        action: practice::CredentialAction,
    },
    /// Office hours, usual reply time, crisis text and auto-reply.
    Availability {
        #[command(subcommand)]
        action: practice::AvailabilityAction,
    },
    /// Group and couples therapy: create, add, remove, members, send,
    /// assign, submit, leave, update-keys (docs/groups.md).
    Group {
        #[command(subcommand)]
        action: groups::GroupAction,
    },
    /// Run a therapist and a client through an embedded relay, end to end.
    Demo {
        /// Keep the demo's files in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DeliveryAction {
    /// Replace the delivery key: contacts get the new one at once; anyone
    /// else holding the old one (an invite handed out earlier) is cut off.
    Rotate,
    /// Accept messages from anyone (`on`), or only from contacts and
    /// invite holders (`off`, the default).
    Open {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

fn storage_key(key_file: Option<&Path>) -> anyhow::Result<[u8; 32]> {
    let text = match key_file {
        Some(path) => {
            let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if raw.len() == 32 {
                return Ok(raw.try_into().unwrap_or([0; 32]));
            }
            String::from_utf8(raw).context("key file is neither 32 bytes nor hex")?
        }
        None => std::env::var("ALCOVE_STORAGE_KEY")
            .context("no storage key: set ALCOVE_STORAGE_KEY (64 hex digits) or --key-file")?,
    };
    let bytes = hex::decode(text.trim()).context("storage key is not hex")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("storage key must be 32 bytes (64 hex digits)"))
}

/// A period in words: days, or hours.
fn duration_text(secs: u64) -> String {
    if secs.is_multiple_of(86_400) {
        format!("{} day(s)", secs / 86_400)
    } else {
        format!("{} hour(s)", secs / 3600)
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM`.
fn utc(secs: u64) -> String {
    alcove_client::format_utc(secs)
}

pub(crate) fn message_id(hex_id: &str) -> anyhow::Result<MessageId> {
    let bytes = hex::decode(hex_id).context("message id is not hex")?;
    MessageId::from_slice(&bytes).context("message id must be 16 bytes (32 hex digits)")
}

pub(crate) async fn find_contact(client: &Client, wanted: &str) -> anyhow::Result<Contact> {
    let contacts = client.contacts().await;
    let matches: Vec<Contact> = contacts
        .into_iter()
        .filter(|c| {
            c.name.eq_ignore_ascii_case(wanted) || c.address.to_string().starts_with(wanted)
        })
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().unwrap_or_else(|| unreachable!())),
        0 => bail!("no contact named or addressed {wanted:?}"),
        _ => bail!("{wanted:?} matches several contacts; use more of the address"),
    }
}

fn progress_bar(label: &str) -> impl FnMut(u64, u64) + Send + '_ {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    move |done, total| {
        if tty {
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            eprint!("\r{label}: {pct:3}% ({done}/{total} bytes)");
            if done == total {
                eprintln!();
            }
        }
    }
}

pub(crate) fn print_sent(json: bool, what: &str, id: &MessageId) {
    if json {
        println!("{}", json!({ "sent": what, "message_id": id.to_hex() }));
    } else {
        println!("sent {what} {}", id.to_hex());
    }
}

/// The out-of-hours notice for what was just written, if the contact is
/// outside office hours: shown at once (the SDK also keeps it in the
/// inbox).
fn print_notice(
    client: &Client,
    to: &alcove_client::DeviceAddress,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(n) = client.out_of_hours_notice(to)? {
        if json {
            println!(
                "{}",
                json!({ "notice": n.to_string(), "crisis_text": n.crisis_text })
            );
        } else {
            eprintln!("{n}");
        }
    }
    Ok(())
}

fn pointer_json(p: &AttachmentPointer) -> serde_json::Value {
    json!({ "blob_id": hex::encode(&p.blob_id), "file_name": p.file_name, "size": p.size,
            "media_type": p.media_type })
}

fn pointers_text(list: &[AttachmentPointer]) -> String {
    list.iter()
        .map(|p| format!(" [file {} blob {}]", p.file_name, hex::encode(&p.blob_id)))
        .collect()
}

fn ids_json(ids: &[Vec<u8>]) -> Vec<String> {
    ids.iter().map(hex::encode).collect()
}

/// An event as a kind, a line of text for people, and structured fields
/// for scripts (ids, blob ids, file names, sizes, dates as fields of
/// their own, never only inside the text).
fn describe(e: &Event) -> (&'static str, String, serde_json::Value) {
    match &e.kind {
        EventKind::Message { id, body } => {
            let (kind, text, mut fields) = describe_body(body);
            fields["message_id"] = json!(id.to_hex());
            (kind, text, fields)
        }
        EventKind::SessionReset { reason } => (
            "session_reset",
            format!("a message did not decrypt ({reason}); asked for it again"),
            json!({ "reason": reason }),
        ),
        EventKind::Resent { id } => (
            "resent",
            format!("sent {} again at their request", id.to_hex()),
            json!({ "message_id": id.to_hex() }),
        ),
        EventKind::DeliveryFailed { id, reason } => (
            "delivery_failed",
            format!(
                "message {} not delivered: {reason}",
                id.map_or("(unknown)".to_string(), |i| i.to_hex())
            ),
            json!({ "message_id": id.map(|i| i.to_hex()), "reason": reason }),
        ),
        EventKind::Undecryptable { reason } => (
            "undecryptable",
            format!("a message could not be decrypted: {reason}"),
            json!({ "reason": reason }),
        ),
        EventKind::InviteRefused { reason } => (
            "invite_refused",
            format!("accepted an invite that is not valid: {reason}; contact left unverified"),
            json!({ "reason": reason }),
        ),
        EventKind::GroupChanged(c) => (
            "group_changed",
            if c.removed_me {
                format!(
                    "removed from the group \"{}\" ({})",
                    c.title,
                    c.group.to_hex()
                )
            } else {
                format!(
                    "group \"{}\" ({}) epoch {}: {} joined, {} left",
                    c.title,
                    c.group.to_hex(),
                    c.epoch,
                    c.added.len(),
                    c.removed.len()
                )
            },
            json!({ "group": c.group.to_hex(), "title": c.title, "epoch": c.epoch,
                    "added": c.added.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "removed": c.removed.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "removed_me": c.removed_me }),
        ),
        EventKind::OutOfHours(n) => (
            "out_of_hours",
            n.to_string(),
            json!({ "crisis_text": n.crisis_text, "reply_within_hours": n.reply_within_hours,
                    "next_opening_ms": n.next_opening_ms }),
        ),
    }
}

fn describe_body(body: &Body) -> (&'static str, String, serde_json::Value) {
    match body {
        Body::Text(t) => (
            "text",
            t.body.clone(),
            json!({ "body": t.body, "reply_to": (!t.reply_to.is_empty()).then(|| hex::encode(&t.reply_to)) }),
        ),
        Body::HomeworkAssignment(a) => (
            "homework_assignment",
            format!(
                "{} (due {}): {}{}",
                a.title,
                if a.due_date.is_empty() {
                    "-"
                } else {
                    &a.due_date
                },
                a.instructions,
                pointers_text(&a.attachments)
            ),
            json!({ "title": a.title, "instructions": a.instructions,
                    "due_date": (!a.due_date.is_empty()).then_some(&a.due_date),
                    "attachments": a.attachments.iter().map(pointer_json).collect::<Vec<_>>() }),
        ),
        Body::HomeworkSubmission(s) => (
            "homework_submission",
            format!(
                "for {}: {}{}",
                hex::encode(&s.assignment_id),
                s.body,
                pointers_text(&s.attachments)
            ),
            json!({ "assignment_id": hex::encode(&s.assignment_id), "body": s.body,
                    "attachments": s.attachments.iter().map(pointer_json).collect::<Vec<_>>() }),
        ),
        Body::Feedback(f) => (
            "feedback",
            format!("on {}: {}", hex::encode(&f.refers_to), f.body),
            json!({ "refers_to": hex::encode(&f.refers_to), "body": f.body }),
        ),
        Body::Attachment(a) => (
            "attachment",
            format!(
                "{} ({} bytes, {}) blob {}",
                a.file_name,
                a.size,
                a.media_type,
                hex::encode(&a.blob_id)
            ),
            json!({ "attachment": pointer_json(a) }),
        ),
        Body::DeliveryReceipt(r) => (
            "delivery_receipt",
            format!("{} message(s)", r.message_ids.len()),
            json!({ "message_ids": ids_json(&r.message_ids) }),
        ),
        Body::ReadReceipt(r) => (
            "read_receipt",
            format!("{} message(s)", r.message_ids.len()),
            json!({ "message_ids": ids_json(&r.message_ids) }),
        ),
        Body::InviteAccepted(i) => (
            "invite_accepted",
            i.display_name.clone(),
            json!({ "display_name": i.display_name }),
        ),
        // Recovery messages are handled inside the SDK and never become
        // message events.
        Body::RetryRequest(_) | Body::RetryUnavailable(_) => ("recovery", String::new(), json!({})),
        Body::DeliveryKeyChanged(_) => ("delivery-key", String::new(), json!({})),
        // Kept by the SDK, never a message event.
        Body::CredentialPresentation(_) => ("credential", String::new(), json!({})),
        Body::Availability(_) => ("availability", String::new(), json!({})),
        // Group control messages are handled inside the SDK.
        Body::GroupUpdate(_)
        | Body::GroupSenderKey(_)
        | Body::GroupKeyUpdate(_)
        | Body::GroupLeave(_) => ("group-control", String::new(), json!({})),
        Body::RecordSigning(r) => (
            "verifiable_records",
            format!(
                "turned verifiable records {}: their messages {} be proven to others",
                if r.enabled { "on" } else { "off" },
                if r.enabled {
                    "can now"
                } else {
                    "can no longer"
                }
            ),
            json!({ "enabled": r.enabled }),
        ),
        Body::Retention(r) => (
            "disappearing",
            if r.seconds == 0 {
                "turned disappearing messages off".to_string()
            } else {
                format!(
                    "set messages to disappear after {}",
                    duration_text(r.seconds)
                )
            },
            json!({ "seconds": r.seconds }),
        ),
    }
}

fn print_event(json: bool, e: &Event) {
    let from = if e.contact_name.is_empty() {
        e.contact.to_string()
    } else {
        e.contact_name.clone()
    };
    let (kind, text, fields) = describe(e);
    let id = MessageId(e.event_id.0).to_hex();
    let group = e.group.map(|g| g.to_hex());
    if json {
        let mut out = json!({ "event_id": id, "contact": e.contact.to_string(),
                              "contact_name": e.contact_name, "from": from, "at_ms": e.at_ms,
                              "kind": kind, "text": text, "group": group });
        if let (Some(out), serde_json::Value::Object(extra)) = (out.as_object_mut(), fields) {
            out.extend(extra);
        }
        println!("{out}");
    } else {
        match group {
            Some(g) => println!("{id} {from} [{kind}, group {}] {text}", &g[..8]),
            None => println!("{id} {from} [{kind}] {text}"),
        }
    }
}

pub(crate) async fn attach(
    client: &Client,
    file: Option<&Path>,
) -> anyhow::Result<Vec<alcove_client::AttachmentPointer>> {
    match file {
        None => Ok(vec![]),
        Some(path) => {
            let media = media_type(path);
            Ok(vec![
                client
                    .upload_file(path, media, progress_bar("upload"))
                    .await?,
            ])
        }
    }
}

fn media_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Demo { dir } = &cli.command {
        return match dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                demo::run(d).await
            }
            None => {
                let tmp = tempfile::tempdir()?;
                demo::run(tmp.path()).await
            }
        };
    }
    if let Command::Credential { action } = &cli.command {
        if let Some(done) = practice::issuer_command(action, cli.json).await {
            return done;
        }
    }
    let key = storage_key(cli.key_file.as_deref())?;
    if let Command::Init { server, name } = &cli.command {
        let client = Client::create(&cli.profile, &key, server, name).await?;
        if cli.json {
            println!("{}", json!({ "address": client.address().to_string() }));
        } else {
            println!(
                "profile created in {}; address {}",
                cli.profile.display(),
                client.address()
            );
        }
        return Ok(());
    }
    let client = Client::open(&cli.profile, &key).await?;
    let json = cli.json;
    match cli.command {
        Command::Init { .. } | Command::Demo { .. } => unreachable!("handled above"),
        Command::Invite { valid_hours, uses } => {
            let link = client
                .create_invite_for(Duration::from_secs(valid_hours * 3600), uses)
                .await?;
            if json {
                println!(
                    "{}",
                    json!({ "invite": link, "uses": uses, "valid_hours": valid_hours })
                );
            } else {
                println!("{link}");
                eprintln!(
                    "valid for {valid_hours} hour(s); {uses} {} may accept it",
                    if uses == 1 { "person" } else { "people" }
                );
            }
        }
        Command::Accept { invite, name } => {
            let contact = client.accept_invite(&invite).await?;
            if let Some(n) = &name {
                client.rename_contact(&contact.address, n).await?;
            }
            if json {
                println!(
                    "{}",
                    json!({ "address": contact.address.to_string(), "safety_number": contact.safety_number })
                );
            } else {
                println!(
                    "verified contact {} — safety number {}",
                    contact.address, contact.safety_number
                );
            }
        }
        Command::Credential { action } => practice::credential(&client, action, json).await?,
        Command::Export { contact, out } => {
            let c = find_contact(&client, &contact.contact).await?;
            let transcript = client.export_transcript(&c.address).await?;
            let page = export::write(&transcript, &out)?;
            if json {
                println!(
                    "{}",
                    json!({ "transcript": out.display().to_string(),
                            "rendering": page.display().to_string(), "entries": transcript.count })
                );
            } else {
                println!(
                    "{} entries written to {} (readable copy: {})",
                    transcript.count,
                    out.display(),
                    page.display()
                );
            }
        }
        Command::History { contact } => {
            let c = find_contact(&client, &contact.contact).await?;
            for item in client.history(&c.address).await? {
                let (kind, text, fields) = describe_body(&item.body);
                let by = match item.direction {
                    alcove_client::Direction::Sent => "me",
                    alcove_client::Direction::Received => c.name.as_str(),
                };
                if json {
                    println!(
                        "{}",
                        json!({ "by": by, "kind": kind, "text": text, "message_id": item.id.to_hex(),
                                "sent_at_ms": item.sent_at_ms, "author_signed": item.author_signed,
                                "fields": fields })
                    );
                } else {
                    println!(
                        "{} {by}: [{kind}] {text}",
                        utc(u64::try_from(item.sent_at_ms / 1000).unwrap_or(0))
                    );
                }
            }
        }
        Command::Records { state, contact } => {
            let c = find_contact(&client, &contact.contact).await?;
            client
                .set_verifiable_records(&c.address, state == "on")
                .await?;
            if json {
                println!("{}", json!({ "verifiable_records": state }));
            } else {
                println!(
                    "verifiable records {state} for what you write to {}",
                    c.name
                );
            }
        }
        Command::Disappearing { contact, days } => {
            let c = find_contact(&client, &contact.contact).await?;
            let after = match days.as_str() {
                "off" => None,
                n => {
                    let d: u64 = n.parse().context("--days is a number of days or `off`")?;
                    anyhow::ensure!((1..=1825).contains(&d), "--days is 1 to 1825");
                    Some(Duration::from_secs(d * 86_400))
                }
            };
            client.set_disappearing(&c.address, after).await?;
            if json {
                println!("{}", json!({ "disappearing_days": days }));
            } else {
                println!("disappearing messages: {days} (both sides)");
            }
        }
        Command::Availability { action } => practice::availability(&client, action, json).await?,
        Command::Group { action } => groups::run(&client, action, json).await?,
        Command::Delivery { action } => {
            let done = match action {
                DeliveryAction::Rotate => {
                    client.rotate_delivery_key().await?;
                    "rotated"
                }
                DeliveryAction::Open { state } => {
                    let open = state == "on";
                    client.accept_messages_from_anyone(open).await?;
                    if open {
                        "open to anyone"
                    } else {
                        "contacts and invite holders only"
                    }
                }
            };
            if json {
                println!("{}", json!({ "delivery": done }));
            } else {
                println!("delivery key {done}");
            }
        }
        Command::Contacts => {
            for c in client.contacts().await {
                if json {
                    println!(
                        "{}",
                        json!({ "name": c.name, "address": c.address.to_string(), "verified": c.verified,
                                "key_changed": c.key_changed, "safety_number": c.safety_number })
                    );
                } else {
                    let state = match (c.key_changed, c.verified) {
                        (true, _) => "KEY CHANGED",
                        (false, true) => "verified",
                        (false, false) => "unverified",
                    };
                    println!("{:20} {} {state:11} {}", c.name, c.address, c.safety_number);
                }
            }
        }
        Command::Send { contact, text } => {
            let c = find_contact(&client, &contact.contact).await?;
            let id = client.send_text(&c.address, &text).await?;
            print_sent(json, "text", &id);
            print_notice(&client, &c.address, json)?;
        }
        Command::Assign {
            contact,
            title,
            due,
            instructions,
            file,
        } => {
            let c = find_contact(&client, &contact.contact).await?;
            let files = attach(&client, file.as_deref()).await?;
            let id = client
                .assign_homework(&c.address, &title, &instructions, due.as_deref(), files)
                .await?;
            print_sent(json, "homework_assignment", &id);
            print_notice(&client, &c.address, json)?;
        }
        Command::Submit {
            contact,
            assignment,
            text,
            file,
        } => {
            let c = find_contact(&client, &contact.contact).await?;
            let files = attach(&client, file.as_deref()).await?;
            let id = client
                .submit_homework(&c.address, &message_id(&assignment)?, &text, files)
                .await?;
            print_sent(json, "homework_submission", &id);
            print_notice(&client, &c.address, json)?;
        }
        Command::Feedback {
            contact,
            refers_to,
            text,
        } => {
            let c = find_contact(&client, &contact.contact).await?;
            let id = client
                .send_feedback(&c.address, &message_id(&refers_to)?, &text)
                .await?;
            print_sent(json, "feedback", &id);
            print_notice(&client, &c.address, json)?;
        }
        Command::Attach { contact, file } => {
            let c = find_contact(&client, &contact.contact).await?;
            let pointer = client
                .upload_file(&file, media_type(&file), progress_bar("upload"))
                .await?;
            let id = client.send_attachment(&c.address, pointer).await?;
            print_sent(json, "attachment", &id);
            print_notice(&client, &c.address, json)?;
        }
        Command::Inbox { follow } => {
            for e in client.pending_events().await? {
                print_event(json, &e);
                client.confirm(&e).await?;
            }
            for e in client.sync().await? {
                print_event(json, &e);
                client.confirm(&e).await?;
            }
            if follow {
                let mut events = std::pin::pin!(client.events());
                while let Some(e) = events.next().await {
                    let e = e?;
                    print_event(json, &e);
                    client.confirm(&e).await?;
                }
            }
        }
        Command::Download { blob_id, out } => {
            let id = hex::decode(&blob_id).context("blob id is not hex")?;
            let pointer = client
                .attachment(&id)
                .await?
                .context("no received attachment with that blob id")?;
            client
                .download_file(&pointer, &out, progress_bar("download"))
                .await?;
            if json {
                println!(
                    "{}",
                    json!({ "saved": out.display().to_string(), "bytes": pointer.size })
                );
            } else {
                println!("saved {} ({} bytes, verified)", out.display(), pointer.size);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("alcove").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn a_contact_address_beginning_with_a_hyphen_is_a_value() {
        for args in [
            &["send", "-dQw4w9", "hello"][..],
            &["attach", "-dQw4w9", "notes.pdf"],
            &["assign", "-dQw4w9", "--title", "Diary"],
            &["submit", "-dQw4w9", "--assignment", "00", "done"],
            &["feedback", "-dQw4w9", "--refers-to", "00", "thanks"],
        ] {
            let contact = match parse(args).command {
                Command::Send { contact, .. }
                | Command::Attach { contact, .. }
                | Command::Assign { contact, .. }
                | Command::Submit { contact, .. }
                | Command::Feedback { contact, .. } => contact.contact,
                _ => panic!("{args:?} parsed as another command"),
            };
            assert_eq!(contact, "-dQw4w9", "{args:?}");
        }
    }

    // Accepting hyphen values must not swallow the global flags.
    #[test]
    fn flags_before_the_contact_are_still_flags() {
        let cli = parse(&["send", "--json", "bob", "hello"]);
        assert!(cli.json);
        match cli.command {
            Command::Send { contact, text } => {
                assert_eq!(contact.contact, "bob");
                assert_eq!(text, "hello");
            }
            _ => panic!("parsed as another command"),
        }
        let help = Cli::try_parse_from(["alcove", "send", "--help"]).err();
        assert_eq!(
            help.map(|e| e.kind()),
            Some(clap::error::ErrorKind::DisplayHelp)
        );
    }
}
