//! `alcove-audit store --postgres URL`: the PostgreSQL counterpart of the
//! sled audit. It reads every row of every table in the URL's schema (the
//! first of its `search_path`, as the relay uses it) with a read-only
//! transaction, classifies each column value the way the sled audit
//! classifies records, runs the same cross-checks and searches every
//! value for the canaries. A table, column, function, view or sequence
//! the documented schema does not have is a finding: the audit vouches
//! only for what it knows.
//!
//! A role with `USAGE` on the schema and `SELECT` on its tables is enough
//! (docs/auditing.md gives the grants).

use std::collections::{BTreeMap, BTreeSet};

use alcove_protocol::prekeys::OneTimePreKey;
use alcove_protocol::sealed_sender::{is_envelope_len, ENVELOPE_VERSION};
use alcove_store::postgres::{Target, MIGRATIONS};
use alcove_store::{BlobInfo, LogEntry, LogRecord, PgSettings};
use anyhow::Context;

use crate::canary::Searcher;
use crate::facts::{Facts, BLOB_EXPIRY_MS, SKEW_MS};
use crate::randomness;
use crate::store::{
    credential_record, keylog_summary, log_record, public_keys, Finding, StoreReport, TreeSummary,
};

/// Every table of the documented schema and its columns, in order.
pub const SCHEMA: &[(&str, &[&str])] = &[
    ("blob_chunks", &["id", "idx", "data"]),
    (
        "blobs",
        &["id", "finished", "size", "chunks", "expires_at_ms"],
    ),
    (
        "dedupe",
        &["address", "client_message_id", "seq", "received_at_ms"],
    ),
    (
        "devices",
        &[
            "address",
            "registered_at_ms",
            "identity",
            "signed_prekey",
            "log_index",
            "epoch",
        ],
    ),
    (
        "keylog",
        &[
            "idx",
            "address",
            "epoch",
            "salt",
            "logged_at_ms",
            "identity",
            "signed_prekey",
            "credential",
        ],
    ),
    (
        "credentials",
        &["address", "log_index", "epoch", "record", "revoked"],
    ),
    ("delivery_policies", &["address", "verifier"]),
    ("mailbox_heads", &["address", "last_seq", "depth"]),
    (
        "mailboxes",
        &[
            "address",
            "seq",
            "received_at_ms",
            "client_message_id",
            "envelope",
        ],
    ),
    ("meta", &["name", "value"]),
    ("one_time_prekeys", &["address", "id", "prekey"]),
    ("schema_migrations", &["version", "applied_at"]),
];

/// Functions the schema may hold.
pub const FUNCTIONS: &[&str] = &["alcove_enqueue"];

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("{what} is {} bytes, the format has {N}", v.len()))
}

fn nonneg(v: i64, what: &str) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{what} is negative"))
}

/// An envelope as the relay stores it: version byte, a padding bucket's
/// length, random-looking bytes.
fn envelope(e: &[u8]) -> Result<(), String> {
    if e.first() != Some(&ENVELOPE_VERSION) {
        return Err("not a sealed envelope (wrong version byte)".into());
    }
    if !is_envelope_len(e.len()) {
        return Err(format!(
            "not a sealed envelope: {} bytes is no padding bucket plus the envelope overhead",
            e.len()
        ));
    }
    randomness::check(&e[1..])
}

/// The URL without its password, for the report.
fn shown(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Audits the PostgreSQL store at `url`.
/// `retention_days`: as for [`crate::store::audit`].
pub async fn audit(
    url: &str,
    canaries: &[String],
    retention_days: Option<u64>,
) -> anyhow::Result<StoreReport> {
    // The auditor decides where it connects from; a remote database still
    // gets TLS as the URL says, but the audit does not refuse it.
    let settings = PgSettings {
        allow_unverified_tls: true,
        statement_timeout: std::time::Duration::from_secs(600),
        ..PgSettings::default()
    };
    let target = Target::parse(url, &settings)?;
    let (mut client, connection) = target
        .config()
        .connect(target.tls())
        .await
        .context("connecting to the database")?;
    tokio::spawn(connection);
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let schema: String = tx.query_one("SELECT current_schema()", &[]).await?.get(0);

    let mut findings = Vec::new();
    let mut tables: BTreeMap<String, TreeSummary> = BTreeMap::new();
    // What is in the schema, against what should be.
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in tx
        .query(
            "SELECT c.relname, c.relkind::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
            &[&schema],
        )
        .await?
    {
        let (name, kind): (String, String) = (row.get(0), row.get(1));
        if kind == "r" || kind == "p" {
            columns.insert(name, Vec::new());
        } else {
            findings.push(Finding {
                tree: name,
                key: String::new(),
                reason: format!(
                    "a {} the documented schema does not have",
                    match kind.as_str() {
                        "v" => "view",
                        "m" => "materialized view",
                        "S" => "sequence",
                        _ => "foreign table",
                    }
                ),
            });
        }
    }
    for row in tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
            &[&schema],
        )
        .await?
    {
        if let Some(c) = columns.get_mut(&row.get::<_, String>(0)) {
            c.push(row.get(1));
        }
    }
    for row in tx
        .query(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = $1",
            &[&schema],
        )
        .await?
    {
        let name: String = row.get(0);
        if !FUNCTIONS.contains(&name.as_str()) {
            findings.push(Finding {
                tree: format!("function {name}"),
                key: String::new(),
                reason: "a function the documented schema does not have".into(),
            });
        }
    }
    // A schema without Alcove's tables (a mistyped schema or database)
    // would audit clean: refuse it instead.
    anyhow::ensure!(
        columns.contains_key("schema_migrations") && columns.contains_key("devices"),
        "schema {schema} is not an Alcove store: it has no schema_migrations or devices table \
         (a mistyped URL or search_path?)"
    );
    let known: BTreeMap<&str, &[&str]> = SCHEMA.iter().copied().collect();
    for (table, cols) in &columns {
        match known.get(table.as_str()) {
            None => findings.push(Finding {
                tree: table.clone(),
                key: String::new(),
                reason: "a table the documented schema does not have".into(),
            }),
            Some(expected) => {
                let have: BTreeSet<&str> = cols.iter().map(String::as_str).collect();
                let want: BTreeSet<&str> = expected.iter().copied().collect();
                for extra in have.difference(&want) {
                    findings.push(Finding {
                        tree: table.clone(),
                        key: format!("column {extra}"),
                        reason: "a column the documented schema does not have".into(),
                    });
                }
                for missing in want.difference(&have) {
                    findings.push(Finding {
                        tree: table.clone(),
                        key: format!("column {missing}"),
                        reason: "a documented column is missing".into(),
                    });
                }
            }
        }
    }

    let mut searcher = Searcher::new(canaries)?;
    let mut facts = Facts::default();
    let mut entries: Vec<(u64, LogEntry)> = Vec::new();
    let mut log_seed: Option<Vec<u8>> = None;
    for (table, cols) in &columns {
        let summary = tables.entry(table.clone()).or_default();
        // Every column as text or bytes, for the canary search; the
        // documented ones are also read typed below.
        let list = cols
            .iter()
            .map(|c| format!("\"{}\"::text", c.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", ");
        let documented = known
            .get(table.as_str())
            .is_some_and(|want| want.iter().all(|w| cols.iter().any(|c| c == w)));
        let typed = if documented {
            known[table.as_str()].join(", ")
        } else {
            "NULL".into()
        };
        let sql = format!(
            "SELECT {typed}, {list} FROM \"{}\"",
            table.replace('"', "\"\"")
        );
        let rows = tx
            .query(sql.as_str(), &[])
            .await
            .with_context(|| format!("reading {table}"))?;
        let offset = if documented {
            known[table.as_str()].len()
        } else {
            1
        };
        for (n, row) in rows.iter().enumerate() {
            summary.records += 1;
            let mut key = format!("row {n}");
            for (i, c) in cols.iter().enumerate() {
                let text: Option<String> = row.get(offset + i);
                if let Some(t) = text {
                    summary.bytes += t.len() as u64;
                    let location = format!("{table}.{c} row {n}");
                    searcher.scan(&location, t.as_bytes());
                    // bytea renders as \x…: search its bytes too.
                    if let Some(hex) = t.strip_prefix("\\x") {
                        if let Ok(raw) = hex::decode(hex) {
                            searcher.scan(&location, &raw);
                        }
                    }
                }
            }
            if !documented {
                continue;
            }
            let outcome = classify(
                table,
                row,
                &mut facts,
                &mut entries,
                &mut log_seed,
                &mut key,
            );
            match outcome {
                Ok(class) => *summary.classes.entry(class.to_string()).or_default() += 1,
                Err(reason) => findings.push(Finding {
                    tree: table.clone(),
                    key,
                    reason,
                }),
            }
        }
    }
    if columns.contains_key("mailboxes") {
        let links = crate::facts::SenderLinks::new(&facts.devices)?;
        for row in tx
            .query("SELECT address, seq, envelope FROM mailboxes", &[])
            .await
            .context("reading mailboxes for sender links")?
        {
            let (Ok(address), Ok(seq), Ok(envelope)) = (
                row.try_get::<_, Vec<u8>>(0),
                row.try_get::<_, i64>(1),
                row.try_get::<_, Vec<u8>>(2),
            ) else {
                continue;
            };
            let Ok(owner) = <[u8; 32]>::try_from(address.as_slice()) else {
                continue;
            };
            let location = format!("{}/{seq}", hex::encode(owner));
            if let Some(f) = links.check("mailboxes", location, &owner, &envelope) {
                findings.push(f);
            }
        }
    }
    tx.commit().await?;
    facts.retention_days = retention_days;
    findings.extend(facts.check(crate::now_ms() as i64));
    let keylog = keylog_summary(&mut entries, log_seed.as_deref(), &mut findings);
    let (canaries, values, bytes) = searcher.finish();
    let clean = findings.is_empty() && canaries.iter().all(|c| c.hits.is_empty());
    Ok(StoreReport {
        store: format!("{} (schema {schema})", shown(url)),
        audited_at_ms: crate::now_ms(),
        trees: tables,
        findings,
        keylog,
        canaries,
        files_scanned: values,
        bytes_scanned: bytes,
        clean,
    })
}

/// Classifies one row of a documented table; `key` is set to the row's
/// natural key for the report.
fn classify(
    table: &str,
    row: &tokio_postgres::Row,
    facts: &mut Facts,
    entries: &mut Vec<(u64, LogEntry)>,
    log_seed: &mut Option<Vec<u8>>,
    key: &mut String,
) -> Result<&'static str, String> {
    // try_get: a column of another type, or a NULL, is a finding, not a
    // panic.
    let bytes = |i: usize| -> Result<Vec<u8>, String> {
        row.try_get::<_, Vec<u8>>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    let int = |i: usize| -> Result<i64, String> {
        row.try_get::<_, i64>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    let int32 = |i: usize| -> Result<i32, String> {
        row.try_get::<_, i32>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    match table {
        "devices" => {
            let address = fixed::<32>(&bytes(0)?, "address")?;
            *key = hex::encode(address);
            public_keys(&address, &bytes(2)?, &bytes(3)?)?;
            nonneg(int(4)?, "log_index")?;
            nonneg(int(5)?, "epoch")?;
            facts.devices.insert(address);
            facts.time(table, key, "registered at", int(1)?, SKEW_MS);
            Ok("public keys")
        }
        "keylog" => {
            let index = nonneg(int(0)?, "idx")?;
            *key = index.to_string();
            let address = fixed::<32>(&bytes(1)?, "address")?;
            let salt = fixed::<32>(&bytes(3)?, "salt")?;
            let optional = |i: usize| -> Result<Option<Vec<u8>>, String> {
                row.try_get::<_, Option<Vec<u8>>>(i)
                    .map_err(|e| format!("column {i}: {e}"))
            };
            let record = match (optional(5)?, optional(6)?, optional(7)?) {
                (Some(identity), Some(signed_prekey), None) => LogRecord::Keys {
                    identity,
                    signed_prekey,
                },
                (None, None, Some(record)) => LogRecord::Credential(record),
                _ => return Err("neither a key record nor a credential record".into()),
            };
            let entry = LogEntry {
                index,
                address,
                epoch: nonneg(int(2)?, "epoch")?,
                salt,
                logged_at_ms: int(4)?,
                record,
            };
            let class = log_record(&entry)?;
            facts.time(table, key, "logged at", entry.logged_at_ms, SKEW_MS);
            entries.push((index, entry));
            Ok(class)
        }
        "credentials" => {
            let address = fixed::<32>(&bytes(0)?, "address")?;
            *key = hex::encode(address);
            nonneg(int(1)?, "log_index")?;
            nonneg(int(2)?, "epoch")?;
            credential_record(&bytes(3)?)?;
            if !bytes(4)?.len().is_multiple_of(32) {
                return Err("revoked is not a list of 32-byte digests".into());
            }
            Ok("credential record (digest, issuer key, revocation)")
        }
        "one_time_prekeys" => {
            let address = fixed::<32>(&bytes(0)?, "address")?;
            *key = format!("{}/{}", hex::encode(address), int(1)?);
            u32::try_from(int(1)?).map_err(|_| "id is not a 32-bit number".to_string())?;
            OneTimePreKey::from_bytes(&bytes(2)?).map_err(|e| format!("one-time prekey: {e}"))?;
            facts.prekey_owners.insert(address);
            Ok("public keys")
        }
        "delivery_policies" => {
            let address = fixed::<32>(&bytes(0)?, "address")?;
            *key = hex::encode(address);
            facts.delivery_policies.insert(address);
            let verifier: Option<Vec<u8>> = row.try_get(1).map_err(|e| format!("column 1: {e}"))?;
            match verifier {
                None => Ok("delivery policy (anyone)"),
                Some(v) => {
                    fixed::<32>(&v, "verifier")?;
                    Ok("delivery policy (key verifier)")
                }
            }
        }
        "mailbox_heads" => {
            let address = fixed::<32>(&bytes(0)?, "address")?;
            *key = hex::encode(address);
            let last = nonneg(int(1)?, "last_seq")?;
            let depth = nonneg(int(2)?, "depth")?;
            facts.heads.insert(address, (last, depth));
            Ok("mailbox counters")
        }
        "mailboxes" => {
            let address = fixed::<32>(&bytes(0)?, "address")?;
            let seq = nonneg(int(1)?, "seq")?;
            *key = format!("{}/{seq}", hex::encode(address));
            let id = fixed::<16>(&bytes(3)?, "client_message_id")?;
            envelope(&bytes(4)?)?;
            facts.messages.insert((address, seq), id);
            facts.time(table, key, "received at", int(2)?, SKEW_MS);
            Ok("sealed envelope")
        }
        "dedupe" => {
            let address = fixed::<32>(&bytes(0)?, "address")?;
            let id = fixed::<16>(&bytes(1)?, "client_message_id")?;
            *key = format!("{}/{}", hex::encode(address), hex::encode(id));
            let seq = nonneg(int(2)?, "seq")?;
            facts.dedupe.push((address, id, seq));
            facts.time(table, key, "idempotency key from", int(3)?, SKEW_MS);
            Ok("idempotency key (sequence, time)")
        }
        "blobs" => {
            let id = fixed::<16>(&bytes(0)?, "id")?;
            *key = hex::encode(id);
            let info = BlobInfo {
                finished: row.try_get(1).map_err(|e| format!("column 1: {e}"))?,
                size: nonneg(int(2)?, "size")?,
                chunks: u32::try_from(int32(3)?).map_err(|_| "chunks is negative".to_string())?,
                expires_at_ms: int(4)?,
            };
            facts.time(table, key, "expires at", info.expires_at_ms, BLOB_EXPIRY_MS);
            Ok("blob size and expiry")
        }
        "blob_chunks" => {
            let id = fixed::<16>(&bytes(0)?, "id")?;
            let idx = int32(1)?;
            *key = format!("{}/{idx}", hex::encode(id));
            randomness::check(&bytes(2)?)?;
            Ok("encrypted attachment chunk")
        }
        "meta" => {
            let name: String = row.try_get(0).map_err(|e| format!("column 0: {e}"))?;
            let value = bytes(1)?;
            *key = name.clone();
            if name == "keylog_signing_key" {
                *log_seed = Some(value.clone());
            }
            crate::store::classify_meta(name.as_bytes(), &value)
        }
        "schema_migrations" => {
            let version = int32(0)?;
            *key = version.to_string();
            if (1..=MIGRATIONS.len() as i32).contains(&version) {
                Ok("schema version")
            } else {
                Err(format!(
                    "schema version {version} is not one this auditor knows"
                ))
            }
        }
        _ => Err("not a documented table".into()),
    }
}
