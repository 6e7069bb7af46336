//! `alcove-audit store`: every record of every tree of a relay's sled
//! store, classified without any key. A record passes only if it is one
//! of the documented kinds (docs/auditing.md): a sealed envelope of a
//! valid size whose bytes look random, an encrypted attachment chunk that
//! looks random, public key material that parses and verifies, or relay
//! bookkeeping of the documented fixed layout. Everything else is a
//! finding, named by tree and key.

use std::collections::BTreeMap;
use std::path::Path;

use alcove_keylog::MerkleLog;
use alcove_protocol::credential::CredentialCommitment;
use alcove_protocol::prekeys::{OneTimePreKey, SignedPreKey};
use alcove_protocol::sealed_sender::{is_envelope_len, ENVELOPE_VERSION};
use alcove_protocol::PublicIdentity;
use alcove_store::records::RECORD_VERSION;
use alcove_store::{
    device_tag, mailbox_tag, BlobInfo, CredentialSlot, DeliveryPolicy, DeviceRecord, LogEntry,
    LogRecord,
};
use serde::Serialize;

use crate::canary::{self, CanaryResult};
use crate::facts::{Facts, BLOB_EXPIRY_MS, SKEW_MS};
use crate::randomness;

/// A record that is not what the documented format allows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The tree.
    pub tree: String,
    /// The record's key, hex.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Per-tree counts.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TreeSummary {
    /// Records read.
    pub records: u64,
    /// Bytes of values.
    pub bytes: u64,
    /// Records per class.
    pub classes: BTreeMap<String, u64>,
}

/// The key log as found in the store.
#[derive(Debug, Clone, Serialize)]
pub struct KeyLogSummary {
    /// Entries.
    pub size: u64,
    /// Merkle root recomputed from the entries (hex).
    pub root: String,
    /// The log's public key (hex), derived from the stored signing key;
    /// compare with what `alcove-audit log` pinned.
    pub log_key: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// The directory audited.
    pub store: String,
    /// When, ms since the Unix epoch.
    pub audited_at_ms: u64,
    /// Records per tree.
    pub trees: BTreeMap<String, TreeSummary>,
    /// Everything that failed classification.
    pub findings: Vec<Finding>,
    /// The key log.
    pub keylog: Option<KeyLogSummary>,
    /// Canary search results.
    pub canaries: Vec<CanaryResult>,
    /// Files and bytes searched for canaries.
    pub files_scanned: u64,
    /// Bytes searched for canaries.
    pub bytes_scanned: u64,
    /// No finding and no canary found.
    pub clean: bool,
}

fn body(value: &[u8], len: Option<usize>) -> Result<&[u8], String> {
    match value.split_first() {
        Some((&RECORD_VERSION, rest)) => match len {
            Some(n) if rest.len() != n => Err(format!(
                "value is {} bytes after the version byte, the format has {n}",
                rest.len()
            )),
            _ => Ok(rest),
        },
        Some((v, _)) => Err(format!("unknown record version {v}")),
        None => Err("empty value".into()),
    }
}

fn key_len(key: &[u8], n: usize) -> Result<(), String> {
    if key.len() == n {
        Ok(())
    } else {
        Err(format!("key is {} bytes, the format has {n}", key.len()))
    }
}

pub(crate) fn public_keys(address: &[u8], identity: &[u8], spk: &[u8]) -> Result<(), String> {
    let identity =
        PublicIdentity::from_bytes(identity).map_err(|e| format!("identity key: {e}"))?;
    if identity.address().as_bytes() != address {
        return Err("identity key does not hash to the record's address".into());
    }
    SignedPreKey::from_bytes(spk, &identity).map_err(|e| format!("signed prekey: {e}"))?;
    Ok(())
}

/// A credential record decodes, and a revocation in it is the issuer's
/// for that digest.
pub(crate) fn credential_record(record: &[u8]) -> Result<(), String> {
    CredentialCommitment::from_bytes(record)
        .map(|_| ())
        .map_err(|e| format!("credential record: {e}"))
}

/// Checks a key-log entry's record; its class.
pub(crate) fn log_record(e: &LogEntry) -> Result<&'static str, String> {
    match &e.record {
        LogRecord::Keys {
            identity,
            signed_prekey,
        } => {
            public_keys(&e.address, identity, signed_prekey)?;
            Ok("public keys (key log)")
        }
        LogRecord::Credential(record) => {
            credential_record(record)?;
            Ok("credential record (key log)")
        }
    }
}

/// Classifies one record; `Ok(class)` or `Err(reason)`.
fn classify(tree: &str, key: &[u8], value: &[u8]) -> Result<&'static str, String> {
    match tree {
        "devices" => match key.split_first() {
            Some((&device_tag::DEVICE, address)) => {
                key_len(address, 32)?;
                let d = DeviceRecord::decode(value).map_err(|e| e.to_string())?;
                public_keys(address, &d.identity, &d.signed_prekey)?;
                Ok("public keys")
            }
            Some((&device_tag::LOG_ENTRY, index)) => {
                key_len(index, 8)?;
                let e = LogEntry::decode(index, value).map_err(|e| e.to_string())?;
                log_record(&e)
            }
            Some((&device_tag::CREDENTIAL, address)) => {
                key_len(address, 32)?;
                let slot = CredentialSlot::decode(value).map_err(|e| e.to_string())?;
                credential_record(&slot.record)?;
                Ok("credential record (digest, issuer key, revocation)")
            }
            Some((&device_tag::DELIVERY, address)) => {
                key_len(address, 32)?;
                match DeliveryPolicy::decode(value).map_err(|e| e.to_string())? {
                    DeliveryPolicy::Open => Ok("delivery policy (anyone)"),
                    DeliveryPolicy::Verifier(_) => Ok("delivery policy (key verifier)"),
                }
            }
            Some((&device_tag::LOG_SIZE, [])) => {
                if value.len() == 8 {
                    Ok("key log size")
                } else {
                    Err("key log size is not 8 bytes".into())
                }
            }
            _ => Err("unknown key in the devices tree".into()),
        },
        "one_time_prekeys" => {
            key_len(key, 36)?;
            OneTimePreKey::from_bytes(body(value, None)?)
                .map_err(|e| format!("one-time prekey: {e}"))?;
            Ok("public keys")
        }
        "mailboxes" => match key.get(32) {
            Some(&mailbox_tag::MESSAGE) => {
                key_len(key, 41)?;
                let b = body(value, None)?;
                if b.len() < 24 {
                    return Err("too short for a mailbox record".into());
                }
                // Receive time (8), the sender's random client message id
                // (16), the envelope.
                let envelope = &b[24..];
                if envelope.first() != Some(&ENVELOPE_VERSION) {
                    return Err("not a sealed envelope (wrong version byte)".into());
                }
                if !is_envelope_len(envelope.len()) {
                    return Err(format!(
                        "not a sealed envelope: {} bytes is no padding bucket plus the envelope overhead",
                        envelope.len()
                    ));
                }
                randomness::check(&envelope[1..])?;
                Ok("sealed envelope")
            }
            Some(&mailbox_tag::HEAD) => {
                key_len(key, 33)?;
                body(value, Some(16))?;
                Ok("mailbox counters")
            }
            Some(&mailbox_tag::DEDUPE) => {
                key_len(key, 49)?;
                body(value, Some(16))?;
                Ok("idempotency key (sequence, time)")
            }
            _ => Err("unknown key in the mailboxes tree".into()),
        },
        "blob_chunks" => {
            key_len(key, 20)?;
            randomness::check(body(value, None)?)?;
            Ok("encrypted attachment chunk")
        }
        "blobs" => {
            key_len(key, 16)?;
            BlobInfo::decode(value).map_err(|e| e.to_string())?;
            Ok("blob size and expiry")
        }
        "meta" => classify_meta(key, value),
        _ => Err("tree is not part of the documented store layout".into()),
    }
}

pub(crate) fn classify_meta(key: &[u8], value: &[u8]) -> Result<&'static str, String> {
    let name = std::str::from_utf8(key).map_err(|_| "meta key is not UTF-8".to_string())?;
    let fixed = |n: usize| {
        if value.len() == n {
            Ok(())
        } else {
            Err(format!("{name} is {} bytes, expected {n}", value.len()))
        }
    };
    match name {
        "schema_version" => {
            if !value.is_empty() && value.iter().all(u8::is_ascii_digit) && value.len() <= 4 {
                Ok("relay setting")
            } else {
                Err("schema_version is not a small number".into())
            }
        }
        "server_id" => fixed(16).map(|_| "relay setting"),
        "secrets_fingerprint" => fixed(16).map(|_| "relay setting"),
        "notify_channel" => {
            if std::str::from_utf8(value).is_ok_and(alcove_store::postgres::is_channel_name) {
                Ok("relay setting")
            } else {
                Err("notify_channel is not alcove_ and 32 hex digits".into())
            }
        }
        "token_key" | "keylog_signing_key" => {
            fixed(32)?;
            Ok("relay secret (not user data)")
        }
        _ => Err(format!("unknown relay setting {name:?}")),
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(arr::<8>(b))
}

/// Notes what a record that passed classification says, for the
/// cross-checks ([`crate::facts`]).
fn note(facts: &mut Facts, tree: &str, key: &[u8], value: &[u8]) {
    let k = hex::encode(key);
    let body = value.get(1..).unwrap_or_default();
    match (tree, key.first(), key.get(32)) {
        ("devices", Some(&device_tag::DEVICE), _) => {
            facts.devices.insert(arr::<32>(&key[1..]));
            if let Ok(d) = DeviceRecord::decode(value) {
                facts.time(tree, &k, "registered at", d.registered_at_ms, SKEW_MS);
            }
        }
        ("devices", Some(&device_tag::DELIVERY), _) => {
            facts.delivery_policies.insert(arr::<32>(&key[1..]));
        }
        ("devices", Some(&device_tag::LOG_ENTRY), _) => {
            if let Ok(e) = LogEntry::decode(&key[1..], value) {
                facts.time(tree, &k, "logged at", e.logged_at_ms, SKEW_MS);
            }
        }
        ("one_time_prekeys", _, _) => {
            facts.prekey_owners.insert(arr::<32>(key));
        }
        ("mailboxes", _, Some(&mailbox_tag::MESSAGE)) => {
            let address = arr::<32>(key);
            let seq = be64(&key[33..]);
            facts.messages.insert((address, seq), arr::<16>(&body[8..]));
            facts.time(tree, &k, "received at", be64(body) as i64, SKEW_MS);
        }
        ("mailboxes", _, Some(&mailbox_tag::HEAD)) => {
            facts
                .heads
                .insert(arr::<32>(key), (be64(body), be64(&body[8..])));
        }
        ("mailboxes", _, Some(&mailbox_tag::DEDUPE)) => {
            facts
                .dedupe
                .push((arr::<32>(key), arr::<16>(&key[33..]), be64(body)));
            facts.time(
                tree,
                &k,
                "idempotency key from",
                be64(&body[8..]) as i64,
                SKEW_MS,
            );
        }
        ("blobs", _, _) => {
            if let Ok(b) = BlobInfo::decode(value) {
                facts.time(tree, &k, "expires at", b.expires_at_ms, BLOB_EXPIRY_MS);
            }
        }
        _ => {}
    }
}

/// Audits a sled store directory. sled needs write access and an
/// exclusive lock to open a database, so the audit works on a copy in a
/// temporary directory; the original is only read (the canary search
/// reads its raw files).
/// `retention_days`: the practice's retention period; envelopes waiting
/// longer and blobs kept longer are findings.
pub fn audit(
    dir: &Path,
    canaries: &[String],
    retention_days: Option<u64>,
) -> anyhow::Result<StoreReport> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    // An empty or foreign directory would open as a new, empty sled
    // database and audit clean: refuse it instead.
    for file in ["conf", "db"] {
        anyhow::ensure!(
            dir.join(file).is_file(),
            "{} is not an Alcove store: it has no sled `{file}` file \
             (a mistyped path? the relay's --data-dir holds one)",
            dir.display()
        );
    }
    let copy = tempfile::tempdir()?;
    copy_dir(dir, copy.path())?;
    let db = sled::Config::new()
        .path(copy.path())
        .open()
        .map_err(|e| anyhow::anyhow!("{} does not open as a sled store: {e}", dir.display()))?;
    let mut trees = BTreeMap::new();
    let mut findings = Vec::new();
    let mut entries: Vec<(u64, LogEntry)> = Vec::new();
    let mut log_seed: Option<Vec<u8>> = None;
    let mut facts = Facts::default();
    for name in db.tree_names() {
        let name = String::from_utf8_lossy(&name).to_string();
        let tree = db.open_tree(&name)?;
        let summary: &mut TreeSummary = trees.entry(name.clone()).or_default();
        for item in tree.iter() {
            let (k, v) = item?;
            summary.records += 1;
            summary.bytes += v.len() as u64;
            let tree_name = if name == "__sled__default" {
                "(sled default tree)"
            } else {
                name.as_str()
            };
            match classify(tree_name, &k, &v) {
                Ok(class) => {
                    *summary.classes.entry(class.to_string()).or_default() += 1;
                    note(&mut facts, tree_name, &k, &v);
                    if name == "devices" && k.first() == Some(&device_tag::LOG_ENTRY) {
                        if let Ok(e) = LogEntry::decode(&k[1..], &v) {
                            entries.push((e.index, e));
                        }
                    }
                    if name == "meta" && k.as_ref() == b"keylog_signing_key" {
                        log_seed = Some(v.to_vec());
                    }
                }
                Err(reason) => findings.push(Finding {
                    tree: name.clone(),
                    key: hex::encode(&k),
                    reason,
                }),
            }
        }
    }
    let is_store = db
        .open_tree("meta")
        .ok()
        .and_then(|m| m.get("schema_version").ok().flatten())
        .is_some();
    anyhow::ensure!(
        is_store,
        "{} is a sled database but not an Alcove store: it has no meta/schema_version",
        dir.display()
    );
    let links = crate::facts::SenderLinks::new(&facts.devices)?;
    for item in db.open_tree("mailboxes")?.iter() {
        let (k, v) = item?;
        if k.len() >= 33 && k[32] == mailbox_tag::MESSAGE {
            if let Some(f) = links.check("mailboxes", hex::encode(&k), &arr::<32>(&k), &v) {
                findings.push(f);
            }
        }
    }
    drop(db);
    facts.retention_days = retention_days;
    findings.extend(facts.check(crate::now_ms() as i64));
    let keylog = keylog_summary(&mut entries, log_seed.as_deref(), &mut findings);
    let (canaries, files_scanned, bytes_scanned) = canary::search(dir, canaries)?;
    let clean = findings.is_empty() && canaries.iter().all(|c| c.hits.is_empty());
    Ok(StoreReport {
        store: dir.display().to_string(),
        audited_at_ms: crate::now_ms(),
        trees,
        findings,
        keylog,
        canaries,
        files_scanned,
        bytes_scanned,
        clean,
    })
}

/// Recomputes the key log's root from its entries (in index order; a gap
/// is a finding) and derives the log key from the stored seed, if any.
pub(crate) fn keylog_summary(
    entries: &mut [(u64, LogEntry)],
    log_seed: Option<&[u8]>,
    findings: &mut Vec<Finding>,
) -> Option<KeyLogSummary> {
    if entries.is_empty() && log_seed.is_none() {
        None
    } else {
        entries.sort_by_key(|(i, _)| *i);
        let mut log = MerkleLog::new();
        for (expected, (index, e)) in entries.iter().enumerate() {
            if *index != expected as u64 {
                let mut key = vec![device_tag::LOG_ENTRY];
                key.extend_from_slice(&index.to_be_bytes());
                findings.push(Finding {
                    tree: "devices".into(),
                    key: hex::encode(key),
                    reason: format!("gap in the key log: expected entry {expected}"),
                });
                break;
            }
            log.push(e.leaf());
        }
        let log_key = log_seed
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
            .map(|s| {
                hex::encode(
                    ed25519_dalek::SigningKey::from_bytes(&s)
                        .verifying_key()
                        .as_bytes(),
                )
            });
        Some(KeyLogSummary {
            size: log.size(),
            root: hex::encode(log.root_at(log.size()).unwrap_or_default()),
            log_key,
        })
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The report for people.
pub fn render(r: &StoreReport) -> String {
    let mut out = String::new();
    let verdict = if r.clean { "CLEAN" } else { "FAILED" };
    out.push_str(&format!("Alcove store audit: {verdict}\n"));
    out.push_str(&format!("store: {}\n", r.store));
    out.push_str(&format!(
        "audited at: {} ms since the Unix epoch\n\n",
        r.audited_at_ms
    ));
    out.push_str("tree                    records      bytes  classes\n");
    for (name, t) in &r.trees {
        let classes: Vec<String> = t.classes.iter().map(|(c, n)| format!("{n} {c}")).collect();
        out.push_str(&format!(
            "{name:<22} {:>8} {:>10}  {}\n",
            t.records,
            t.bytes,
            classes.join(", ")
        ));
    }
    if let Some(k) = &r.keylog {
        out.push_str(&format!(
            "\nkey log: {} entries, root {}\nlog key: {}\n",
            k.size,
            k.root,
            k.log_key.as_deref().unwrap_or("(none stored)")
        ));
    }
    out.push_str(&format!("\nfindings: {}\n", r.findings.len()));
    for f in &r.findings {
        out.push_str(&format!("  FAIL {} key {}: {}\n", f.tree, f.key, f.reason));
    }
    if !r.canaries.is_empty() {
        out.push_str(&format!(
            "\ncanaries ({} files or values, {} bytes searched, as {}; whole and every {}-character piece):\n",
            r.files_scanned,
            r.bytes_scanned,
            r.canaries[0].encodings.join(", "),
            canary::FRAGMENT_CHARS
        ));
        for c in &r.canaries {
            if c.hits.is_empty() {
                out.push_str(&format!("  absent  {:?}\n", c.canary));
            } else {
                out.push_str(&format!("  FOUND   {:?}\n", c.canary));
                for h in &c.hits {
                    let piece = h
                        .fragment
                        .as_ref()
                        .map(|f| format!(", the piece {f:?}"))
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "          {} at byte {} ({}{piece})\n",
                        h.file, h.offset, h.encoding
                    ));
                }
            }
        }
    }
    out
}
