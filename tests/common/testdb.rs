//! One database per test, on the backend the run asks for:
//!
//! - `POSTROOM_TEST_BACKEND` unset or `sqlite`: a SQLite file in the test's own directory;
//! - `POSTROOM_TEST_BACKEND=postgres`: a fresh database on the PostgreSQL server named by
//!   `POSTROOM_TEST_PG_URL` (`scripts/test` starts a throw-away cluster and sets it), dropped
//!   again when the [`TestDb`] is dropped.
//!
//! Tests that exist only for PostgreSQL (several instances, a database outage) call
//! [`TestDb::postgres`] whatever the backend variable says.
//!
//! Shared by `tests/support` and `tests/daemon_support` (included with `#[path]`), so it
//! depends on nothing but sqlx and std.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

pub const BACKEND_ENV: &str = "POSTROOM_TEST_BACKEND";
pub const PG_URL_ENV: &str = "POSTROOM_TEST_PG_URL";

const HOW_TO_GET_PG: &str = "this test needs PostgreSQL: POSTROOM_TEST_PG_URL is not set.\n\
     Run the tests with `scripts/test` (it starts a throw-away cluster), or by hand, as root:\n    \
     d=$(mktemp -d) && tests/pgstack/pgstack.sh start $d && . $d/env && cargo test\n    \
     tests/pgstack/pgstack.sh destroy $d\n\
     or point POSTROOM_TEST_PG_URL at a server where the URL's user may CREATE DATABASE.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend this run tests (`POSTROOM_TEST_BACKEND`).
pub fn backend() -> Backend {
    match std::env::var(BACKEND_ENV).unwrap_or_default().trim() {
        "" | "sqlite" => Backend::Sqlite,
        "postgres" | "postgresql" | "pg" => Backend::Postgres,
        other => panic!("{BACKEND_ENV}={other:?}: expected sqlite or postgres"),
    }
}

/// The PostgreSQL server to create test databases on, if one is given.
pub fn pg_server_url() -> Option<String> {
    std::env::var(PG_URL_ENV)
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// The server, or a panic that says how to get one (like `MailStack::require`: a test that
/// needs PostgreSQL fails without it rather than passing silently).
pub fn require_pg_server() -> String {
    pg_server_url().unwrap_or_else(|| panic!("{HOW_TO_GET_PG}"))
}

/// `url` with its database name replaced by `db` (query string kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let cut = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| i + scheme_end);
    let mut out = format!("{}/{db}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A database for one test. `url` goes into the test's config.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    /// PostgreSQL: the server and the database to drop at the end.
    created: Option<(String, String)>,
}

impl TestDb {
    /// On the backend this run tests; a SQLite file goes into `dir`.
    pub fn new(dir: &Path) -> TestDb {
        match backend() {
            Backend::Sqlite => TestDb::sqlite(dir),
            Backend::Postgres => TestDb::postgres(),
        }
    }

    pub fn sqlite(dir: &Path) -> TestDb {
        TestDb {
            url: format!("sqlite://{}", dir.join("postroom.db").display()),
            backend: Backend::Sqlite,
            created: None,
        }
    }

    /// A fresh, empty PostgreSQL database (no schema: postroom migrates it).
    pub fn postgres() -> TestDb {
        TestDb::postgres_on(&require_pg_server())
    }

    /// A fresh database on the given server.
    pub fn postgres_on(server: &str) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "postroom_t{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() % 100_000)
                .unwrap_or(0)
        );
        admin(server, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {server}: {e}"));
        TestDb {
            url: with_database(server, &name),
            backend: Backend::Postgres,
            created: Some((server.to_owned(), name)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.created.take() {
            // FORCE: a daemon killed by the test may still hold connections for a moment.
            if let Err(e) = admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ) {
                eprintln!("testdb: could not drop {name}: {e}");
            }
        }
    }
}

/// Run one statement on the server's maintenance database. In a thread of its own with its
/// own runtime, so that it works from sync tests and from inside async ones alike.
pub fn admin(server: &str, statement: &str) -> Result<(), String> {
    let server = server.to_owned();
    let statement = statement.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::postgres::PgConnection::connect(&server)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let _ = conn.close().await;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }
}
