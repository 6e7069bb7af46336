//! What a practice needs beyond chat (docs/therapy.md): clinician
//! credentials (`alcove credential ...`) and office hours with the
//! out-of-hours notice (`alcove availability ...`).

use std::path::{Path, PathBuf};

use alcove_client::{
    Availability, Client, Credential, CredentialClaims, DeviceAddress, IssuerKey, OfficeHours,
    Revocation, TrustedIssuer,
};
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum CredentialAction {
    /// Create an issuer key (for the practice or platform) in a new file
    /// readable by its owner only; prints the public key clients trust.
    IssuerKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a credential for a clinician's device (run by the issuer).
    Issue {
        /// The issuer's key file (`alcove credential issuer-key`).
        #[arg(long)]
        issuer_key: PathBuf,
        /// The clinician's device address.
        #[arg(long, allow_hyphen_values = true)]
        subject: String,
        /// The clinician's name as it should be shown.
        #[arg(long)]
        name: String,
        #[arg(long)]
        licence: String,
        #[arg(long)]
        jurisdiction: String,
        /// Days of validity from now.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
        valid_days: u64,
        /// Where to write the credential (binary).
        #[arg(long)]
        out: PathBuf,
    },
    /// Present a credential from this profile: commit it in the relay's
    /// key log and send it, sealed, to every contact.
    Publish { file: PathBuf },
    /// Verify the credential a contact presented against the issuers you
    /// trust and the key log.
    Show {
        /// Contact name, or the start of its address.
        #[arg(value_name = "CONTACT", allow_hyphen_values = true)]
        contact: String,
        /// A trusted issuer as NAME=PUBLIC_KEY_HEX (repeatable).
        #[arg(long = "trust", required = true)]
        trusted: Vec<String>,
    },
    /// Revoke a credential (run by its issuer); the relay logs it.
    Revoke {
        #[arg(long)]
        issuer_key: PathBuf,
        /// The credential file to revoke.
        #[arg(long)]
        credential: PathBuf,
        /// The relay the clinician uses.
        #[arg(long)]
        server: String,
    },
}

#[derive(Subcommand)]
pub enum AvailabilityAction {
    /// Set office hours, usual reply time and crisis text, and send them
    /// to every contact.
    Set {
        /// Office hours like "mon-fri 09:00-17:00" or "sat 10:00-12:00"
        /// (repeatable); none means no office hours.
        #[arg(long = "hours")]
        hours: Vec<String>,
        /// Local time as an offset from UTC, like +01:00 or -05:00.
        #[arg(long, default_value = "+00:00", allow_hyphen_values = true)]
        utc_offset: String,
        /// Usual reply time within office hours, in hours.
        #[arg(long, default_value_t = 0)]
        reply_within_hours: u32,
        /// What to do in a crisis (local emergency numbers).
        #[arg(long, default_value = "")]
        crisis: String,
        /// Text sent back to a message that arrives outside the hours.
        #[arg(long)]
        auto_reply: Option<String>,
    },
    /// Show a contact's office hours and whether a message now would get
    /// the out-of-hours notice (nothing is sent).
    Show {
        #[arg(value_name = "CONTACT", allow_hyphen_values = true)]
        contact: String,
    },
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_issuer_key(path: &Path) -> anyhow::Result<IssuerKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the issuer key {}", path.display()))?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("an issuer key file holds 64 hex digits")?;
    Ok(IssuerKey::from_seed(&seed))
}

fn read_credential(path: &Path) -> anyhow::Result<Credential> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Credential::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let _ = private;
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {} (it must not exist yet)", path.display()))
}

/// The credential commands that need no profile (the issuer's), if this
/// is one; `None` otherwise.
pub async fn issuer_command(action: &CredentialAction, json: bool) -> Option<anyhow::Result<()>> {
    let run = async {
        match action {
            CredentialAction::IssuerKey { out } => {
                let key = IssuerKey::generate(&mut rand_core::OsRng);
                write_new(out, hex::encode(key.to_seed().as_slice()).as_bytes(), true)?;
                if json {
                    println!("{}", json!({ "issuer": key.public().to_string() }));
                } else {
                    println!("issuer public key {}", key.public());
                    eprintln!("give this key to the client apps that should trust this issuer");
                }
                Ok(())
            }
            CredentialAction::Issue {
                issuer_key,
                subject,
                name,
                licence,
                jurisdiction,
                valid_days,
                out,
            } => {
                let issuer = read_issuer_key(issuer_key)?;
                let subject: DeviceAddress = subject.parse().context("subject address")?;
                let now = now_secs();
                let credential = Credential::issue(
                    &mut rand_core::OsRng,
                    &issuer,
                    CredentialClaims {
                        subject,
                        display_name: name.clone(),
                        licence_number: licence.clone(),
                        jurisdiction: jurisdiction.clone(),
                        issued_at: now,
                        expires_at: now + valid_days * 86_400,
                    },
                )?;
                write_new(out, credential.as_bytes(), false)?;
                if json {
                    println!(
                        "{}",
                        json!({ "credential": out.display().to_string(),
                                "digest": hex::encode(credential.digest()),
                                "expires_at": credential.claims().expires_at })
                    );
                } else {
                    println!(
                        "credential for {name} written to {} (valid {valid_days} days)",
                        out.display()
                    );
                }
                Ok(())
            }
            CredentialAction::Revoke {
                issuer_key,
                credential,
                server,
            } => {
                let issuer = read_issuer_key(issuer_key)?;
                let credential = read_credential(credential)?;
                let revocation = Revocation::sign(&issuer, &credential, now_secs())?;
                alcove_client::revoke_credential(server, &credential.claims().subject, &revocation)
                    .await?;
                if json {
                    println!("{}", json!({ "revoked": hex::encode(credential.digest()) }));
                } else {
                    println!("revoked; clients refuse the credential from their next check");
                }
                Ok(())
            }
            CredentialAction::Publish { .. } | CredentialAction::Show { .. } => {
                unreachable!("profile commands")
            }
        }
    };
    match action {
        CredentialAction::Publish { .. } | CredentialAction::Show { .. } => None,
        _ => Some(run.await),
    }
}

fn trusted_issuer(spec: &str) -> anyhow::Result<TrustedIssuer> {
    let (name, key) = spec
        .rsplit_once('=')
        .context("a trusted issuer is NAME=PUBLIC_KEY_HEX")?;
    let key: [u8; 32] = hex::decode(key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .context("an issuer's public key is 64 hex digits")?;
    Ok(TrustedIssuer {
        name: name.trim().to_string(),
        key,
    })
}

/// `alcove credential publish|show`.
pub async fn credential(
    client: &Client,
    action: CredentialAction,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        CredentialAction::Publish { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            client.present_credential(&bytes).await?;
            if json {
                println!("{}", json!({ "presented": true }));
            } else {
                println!("credential committed in the key log and sent to every contact");
            }
        }
        CredentialAction::Show { contact, trusted } => {
            let trusted = trusted
                .iter()
                .map(|t| trusted_issuer(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let contact = crate::find_contact(client, &contact).await?;
            let v = client.verify_credential(&contact.address, &trusted).await?;
            if json {
                println!(
                    "{}",
                    json!({ "name": v.display_name, "licence": v.licence_number,
                            "jurisdiction": v.jurisdiction, "expires_at": v.expires_at,
                            "issuer": v.issuer_name, "badge": v.badge() })
                );
            } else {
                println!(
                    "{} — {} (licence {}, {}; valid until {})",
                    v.display_name,
                    v.badge(),
                    v.licence_number,
                    v.jurisdiction,
                    crate::utc(v.expires_at)
                );
            }
        }
        _ => unreachable!("issuer commands run without a profile"),
    }
    Ok(())
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> anyhow::Result<u32> {
    let s = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| s.starts_with(d))
        .map(|i| i as u32 + 1)
        .with_context(|| format!("{s:?} is not a day (mon ... sun)"))
}

fn minute(s: &str) -> anyhow::Result<u32> {
    let (h, m) = s.trim().split_once(':').context("times are HH:MM")?;
    let (h, m): (u32, u32) = (h.parse()?, m.parse()?);
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        bail!("{s:?} is not a time of day");
    }
    Ok(h * 60 + m)
}

/// "mon-fri 09:00-17:00", "sat,sun 10:00-12:00" → windows.
pub fn parse_hours(spec: &str) -> anyhow::Result<Vec<OfficeHours>> {
    let (days, times) = spec
        .trim()
        .split_once(' ')
        .context("office hours look like \"mon-fri 09:00-17:00\"")?;
    let (start, end) = times
        .split_once('-')
        .context("a time range is HH:MM-HH:MM")?;
    let (start_minute, end_minute) = (minute(start)?, minute(end)?);
    if start_minute >= end_minute {
        bail!("office hours must end after they start: {times}");
    }
    let mut list = Vec::new();
    for part in days.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => (day(part)?, day(part)?),
        };
        if from > to {
            bail!("{part:?}: a day range runs from Monday towards Sunday");
        }
        list.extend((from..=to).map(|weekday| OfficeHours {
            weekday,
            start_minute,
            end_minute,
        }));
    }
    Ok(list)
}

/// "+01:00", "-05:30", "+0" → minutes east of UTC.
pub fn parse_offset(s: &str) -> anyhow::Result<i32> {
    let s = s.trim();
    let (sign, rest) = match s.split_at_checked(1) {
        Some(("-", r)) => (-1, r),
        Some(("+", r)) => (1, r),
        _ => (1, s),
    };
    let minutes = match rest.split_once(':') {
        Some((h, m)) => h.parse::<i32>()? * 60 + m.parse::<i32>()?,
        None => rest.parse::<i32>()? * 60,
    };
    Ok(sign * minutes)
}

/// `alcove availability set|show`.
pub async fn availability(
    client: &Client,
    action: AvailabilityAction,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        AvailabilityAction::Set {
            hours,
            utc_offset,
            reply_within_hours,
            crisis,
            auto_reply,
        } => {
            let mut windows = Vec::new();
            for spec in &hours {
                windows.extend(parse_hours(spec)?);
            }
            client
                .set_availability(Availability {
                    updated_at_ms: 0,
                    utc_offset_minutes: parse_offset(&utc_offset)?,
                    hours: windows,
                    reply_within_hours,
                    crisis_text: crisis,
                })
                .await?;
            client.set_auto_reply(auto_reply.as_deref()).await?;
            if json {
                println!("{}", json!({ "availability": "set" }));
            } else {
                println!("office hours set and sent to every contact");
            }
        }
        AvailabilityAction::Show { contact } => {
            let contact = crate::find_contact(client, &contact).await?;
            let a = client.contact_availability(&contact.address)?;
            let notice = client.out_of_hours_notice(&contact.address)?;
            if json {
                println!(
                    "{}",
                    json!({ "set": a.is_some(),
                            "hours": a.as_ref().map(|a| a.hours.iter().map(|h| json!({
                                "weekday": h.weekday, "start_minute": h.start_minute,
                                "end_minute": h.end_minute })).collect::<Vec<_>>()),
                            "utc_offset_minutes": a.as_ref().map(|a| a.utc_offset_minutes),
                            "open_now": a.is_some() && notice.is_none(),
                            "notice": notice.as_ref().map(|n| n.to_string()) })
                );
            } else {
                match (&a, &notice) {
                    (None, _) => println!("{} set no office hours", contact.name),
                    (Some(_), None) => println!("{} is within office hours now", contact.name),
                    (Some(_), Some(n)) => println!("{n}"),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_hours_and_offsets_parse() {
        let w = parse_hours("mon-fri 09:00-17:30").unwrap();
        assert_eq!(w.len(), 5);
        assert_eq!((w[0].weekday, w[4].weekday), (1, 5));
        assert_eq!((w[0].start_minute, w[0].end_minute), (540, 1050));
        let w = parse_hours("sat,sun 10:00-24:00").unwrap();
        assert_eq!(w.iter().map(|h| h.weekday).collect::<Vec<_>>(), vec![6, 7]);
        for bad in [
            "mon 17:00-09:00",
            "fri-mon 09:00-10:00",
            "xyz 09:00-10:00",
            "mon 9-10",
        ] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_offset("+01:00").unwrap(), 60);
        assert_eq!(parse_offset("-05:30").unwrap(), -330);
        assert_eq!(parse_offset("2").unwrap(), 120);
    }
}
