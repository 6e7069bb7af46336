//! Test support (feature `testing`): a PostgreSQL schema of its own for
//! one test, so that tests can share one server and run in parallel.
//!
//! ```no_run
//! # async fn demo() {
//! use alcove_store::testing::{postgres_url, TestSchema};
//! let Some(base) = postgres_url("my test") else { return }; // says SKIPPED
//! let schema = TestSchema::create(&base).await;
//! let store = alcove_store::PostgresStore::connect(schema.url()).await.unwrap();
//! # drop(store);
//! // the schema and everything in it are dropped with `schema`
//! # }
//! ```

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "ALCOVE_TEST_POSTGRES_URL";

/// The server tests may use; without one, prints that `what` was skipped
/// on PostgreSQL and why, and returns `None`.
pub fn postgres_url(what: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Straight to the process's stderr, not through `eprintln!`:
            // the test harness captures the macros' output of passing
            // tests, and a skip must be visible in a plain `cargo test`.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "{what} on PostgreSQL SKIPPED: {POSTGRES_URL_VAR} is not set \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A fresh schema on a PostgreSQL server, dropped (with everything in it)
/// when this value is dropped.
pub struct TestSchema {
    base: String,
    name: String,
    url: String,
}

impl TestSchema {
    /// Creates a schema with a random name on the server at `base`.
    ///
    /// # Panics
    /// If the server cannot be reached: a test that was given a server
    /// must not pass without it.
    pub async fn create(base: &str) -> Self {
        let name = format!("alcove_test_{:016x}", rand::random::<u64>());
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but unreachable: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create a test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Self {
            base: base.to_owned(),
            name,
            url,
        }
    }

    /// A URL whose connections see this schema only.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the relays of this test deployment keep their shared secrets
    /// file (`alcove-server --secrets-file`); removed with the schema.
    pub fn secrets_file(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{}.secrets", self.name))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop may run inside a test's runtime, which cannot be blocked on:
        // drop the schema from a thread with a runtime of its own. A task
        // of the finished test could still hold a row lock while its
        // runtime waits here, so the wait is bounded.
        let _ = std::fs::remove_file(self.secrets_file());
        let (base, name) = (self.base.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA {name} CASCADE"
                    ))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}
