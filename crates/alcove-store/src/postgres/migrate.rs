//! Schema migrations: numbered, compiled into the binary, each recorded in
//! `schema_migrations`, applied at start-up by whichever relay gets the
//! migration lock first (an advisory lock per schema, so that deployments
//! sharing a server do not wait for each other).
//!
//! Two kinds:
//! * ordinary migrations run in one transaction with their record, so a
//!   crash leaves all or nothing;
//! * `no transaction` migrations hold exactly one statement and run
//!   outside any transaction: this is how an index is added to a table in
//!   use, with `CREATE INDEX CONCURRENTLY IF NOT EXISTS`, which takes no
//!   lock that blocks writes. A plain `CREATE INDEX` would hold a SHARE
//!   lock for the whole build, and every send would queue behind it during
//!   a rolling upgrade. If such a build is interrupted, PostgreSQL leaves
//!   an invalid index behind; the runner drops an invalid index of the
//!   same name (concurrently) before it tries again.
//!
//! The migration connection has no statement or lock timeout: an index
//! build may take minutes, and a relay starting meanwhile waits for it.

use tokio_postgres::Client;

use super::db;
use crate::{Result, StoreError};

/// One schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number; applied in increasing order.
    pub version: i32,
    /// The SQL.
    pub sql: &'static str,
    /// Runs inside a transaction with its record (false: one statement,
    /// run on its own, for `CREATE INDEX CONCURRENTLY`).
    pub in_transaction: bool,
}

/// The migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/0001_init.sql"),
        in_transaction: true,
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/0002_dedupe_window.sql"),
        in_transaction: true,
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/0003_enqueue_function.sql"),
        in_transaction: true,
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/0004_delivery_policies.sql"),
        in_transaction: true,
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/0005_credentials.sql"),
        in_transaction: true,
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/0006_notify_sequence.sql"),
        in_transaction: true,
    },
];

const LOCK: &str = "hashtextextended('alcove migrate ' || current_schema(), 0)";

/// Applies the pending `migrations` on `client`, a connection of its own.
pub async fn run(client: &Client, migrations: &[Migration]) -> Result<()> {
    client
        .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
        .await
        .map_err(db)?;
    client
        .execute(&format!("SELECT pg_advisory_lock({LOCK})"), &[])
        .await
        .map_err(db)?;
    let applied = apply(client, migrations).await;
    let unlocked = client
        .execute(&format!("SELECT pg_advisory_unlock({LOCK})"), &[])
        .await
        .map_err(db);
    applied.and(unlocked.map(|_| ()))
}

async fn apply(client: &Client, migrations: &[Migration]) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db)?;
    for m in migrations {
        let done = client
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&m.version],
            )
            .await
            .map_err(db)?;
        if done.is_some() {
            continue;
        }
        if m.in_transaction {
            client
                .batch_execute(&format!(
                    "BEGIN; {}; INSERT INTO schema_migrations (version) VALUES ({}); COMMIT",
                    m.sql.trim().trim_end_matches(';'),
                    m.version
                ))
                .await
                .map_err(db)?;
        } else {
            if let Some(index) = concurrent_index_name(m.sql) {
                // A build interrupted earlier left an invalid index: drop
                // it, or IF NOT EXISTS would keep it forever.
                let invalid = client
                    .query_opt(
                        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE c.relname = $1 AND n.nspname = current_schema()
                           AND NOT i.indisvalid",
                        &[&index],
                    )
                    .await
                    .map_err(db)?;
                if invalid.is_some() {
                    client
                        .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                        .await
                        .map_err(db)?;
                }
            }
            client.batch_execute(m.sql).await.map_err(db)?;
            client
                .execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[&m.version],
                )
                .await
                .map_err(db)?;
        }
        tracing::info!(version = m.version, "applied schema migration");
    }
    let newest: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(db)?
        .get(0);
    if newest > migrations.last().map(|m| m.version) {
        return Err(StoreError::Corrupt(
            "schema_migrations: the database is newer than this relay",
        ));
    }
    Ok(())
}

/// The index a `CREATE INDEX CONCURRENTLY [IF NOT EXISTS] name` creates.
fn concurrent_index_name(sql: &str) -> Option<String> {
    let words: Vec<String> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .flat_map(str::split_whitespace)
        .map(str::to_ascii_lowercase)
        .collect();
    let at = words
        .windows(3)
        .position(|w| w == ["create", "index", "concurrently"])?;
    let mut rest = words[at + 3..].iter();
    let mut name = rest.next()?;
    if name == "if" {
        rest.next(); // not
        rest.next(); // exists
        name = rest.next()?;
    }
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_of_a_concurrent_migration_is_found() {
        assert_eq!(
            concurrent_index_name(
                "-- why\nCREATE INDEX CONCURRENTLY IF NOT EXISTS mailboxes_received\n ON mailboxes (received_at_ms)"
            ),
            Some("mailboxes_received".into())
        );
        assert_eq!(
            concurrent_index_name("create index concurrently x on t (a)"),
            Some("x".into())
        );
        assert_eq!(concurrent_index_name("CREATE INDEX x ON t (a)"), None);
    }

    #[test]
    fn every_migration_in_a_transaction_or_a_single_statement() {
        for m in MIGRATIONS {
            if !m.in_transaction {
                assert!(concurrent_index_name(m.sql).is_some(), "{}", m.version);
            }
        }
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[1] == w[0] + 1));
    }
}
