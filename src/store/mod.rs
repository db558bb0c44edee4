//! The database: one interface over SQLite (the default) and PostgreSQL.
//!
//! Queries are written once, with `$1` placeholders that both backends accept, through sqlx's
//! `Any` driver; times are Unix milliseconds and flags integers because `Any` has no time or
//! bool mapping that both backends share. Where the SQL must differ (migrations, how a write
//! transaction starts) the [`Backend`] chooses.

pub mod audit_chain;
pub mod audit_checkpoints;
pub mod backup;
pub mod claims;
pub mod columns;
pub mod continuity;
pub mod directory;
pub mod directory_batch;
pub mod health;
pub mod imap_state;
pub mod jobs;
pub mod journal;
pub mod lease;
pub mod membership_history;
pub mod mentions;
pub mod merges;
pub mod outbox;
pub mod presence;
pub mod replay;
pub mod report;
pub mod retention;
pub mod saved_replies;
pub mod saved_searches;
pub mod staff;
pub mod status;
pub mod targets;
pub mod views;
mod wal;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection, Transaction};
use std::str::FromStr;
use std::sync::{Arc, Once};

pub use sqlx::Error as DbError;
// Time as the store keeps it; the clock is its own module so that the rules and the status
// read it without importing the store.
pub use crate::clock::{format_ms, now_ms};

/// Where the database is and how many connections to it (the `[database]` section, checked
/// by `config.rs`, which composes it).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

/// A write transaction on either backend; every write postroom makes happens inside one (or
/// in one statement on a [`WriteConn`]). Derefs to the connection, so query functions take
/// `&mut tx`; ends with [`Tx::commit`] or [`Tx::rollback`] (dropped: rolled back).
pub struct Tx {
    inner: Transaction<'static, Any>,
    /// SQLite: this process's turn to write, held until the end (see [`Store::begin`]).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let Tx { inner, _turn } = self;
        inner.commit().await
    }

    /// Commit when `result` is a success, roll back when it is not; `result` either way,
    /// unless the commit or the rollback itself fails.
    pub async fn finish<T, E: From<StoreError>>(self, result: Result<T, E>) -> Result<T, E> {
        match result {
            Ok(v) => {
                self.commit().await.map_err(StoreError::from)?;
                Ok(v)
            }
            Err(e) => {
                self.rollback().await.map_err(StoreError::from)?;
                Err(e)
            }
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let Tx { inner, _turn } = self;
        inner.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

/// A pooled connection for one write statement on its own (autocommit), holding this
/// process's turn to write on SQLite like a [`Tx`].
pub struct WriteConn {
    inner: sqlx::pool::PoolConnection<Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}
/// What query functions take: a transaction or a pooled connection both deref to it.
pub type Conn = AnyConnection;

/// A transaction begun on a connection a caller was given ([`begin_on`]). Derefs to the
/// connection; ends with `commit` (dropped: rolled back).
pub type ConnTx<'c> = Transaction<'c, Any>;

/// Whether `conn` is inside a transaction already (its statements then join it).
pub fn in_transaction(conn: &Conn) -> bool {
    conn.is_in_transaction()
}

/// A transaction of its own on `conn`, for statements that must never be written apart by a
/// caller given a connection outside one: SQLite takes the write lock at once (`BEGIN
/// IMMEDIATE`, as in [`Store::begin`]); PostgreSQL begins at its default isolation.
pub async fn begin_on(conn: &mut Conn) -> Result<ConnTx<'_>, StoreError> {
    let sqlite = is_sqlite(conn);
    Ok(conn
        .begin_with(if sqlite { SQLITE_BEGIN } else { "BEGIN" })
        .await?)
}

/// Whether `conn` is a SQLite connection (where the SQL of the two backends must differ).
pub(crate) fn is_sqlite(conn: &Conn) -> bool {
    conn.backend_name().eq_ignore_ascii_case("sqlite")
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
    /// The database could not be opened: one line naming it and the cause (the error is
    /// kept for [`StoreError::is_unavailable`], not repeated as a source chain).
    #[error("cannot open the database {target}: {}", innermost(error))]
    Open { target: String, error: sqlx::Error },
}

/// The cause of an error in the words of whoever raised it (SQLite's or PostgreSQL's own
/// message, not sqlx's wrapping of it).
fn innermost(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// Where a database URL points, without a password: the file for SQLite, host and database
/// for PostgreSQL.
fn target_of(url: &str) -> String {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        return path.split('?').next().unwrap_or(path).to_owned();
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{}", rest.split('?').next().unwrap_or(rest))
        }
        None => "(unreadable URL)".to_owned(),
    }
}

impl Store {
    /// Run `body` in a transaction of its own: committed when it returns `Ok`, rolled back
    /// when it returns `Err`, and run again from the start (up to [`ATTEMPTS`] times) when the
    /// database reports a conflict. The body owns the transaction while it runs and hands it
    /// back with its result, so it may borrow anything the caller holds:
    ///
    /// ```ignore
    /// store.transaction(|mut tx| async move {
    ///     let result = decide_in(&mut tx, cfg, reference).await;
    ///     (tx, result)
    /// }).await
    /// ```
    pub async fn transaction<T, E, F, Fut>(&self, mut body: F) -> Result<T, E>
    where
        F: FnMut(Tx) -> Fut,
        Fut: std::future::Future<Output = (Tx, Result<T, E>)>,
        E: From<StoreError> + Conflict,
    {
        let mut n = 0u32;
        loop {
            n += 1;
            let tx = self.begin().await?;
            let (tx, result) = body(tx).await;
            match tx.finish(result).await {
                Err(e) if e.is_conflict() && n < ATTEMPTS => {
                    tracing::debug!(attempt = n, "transaction conflict, trying again");
                    // A random point between half and all of n × 20 ms ("equal jitter", as
                    // `jobs::retry_delay`): two writers that met on the same row (the audit
                    // head) and waited the same fixed time could meet again on every attempt.
                    let ms = u64::from(n) * 20;
                    let wait = rand::Rng::gen_range(&mut rand::thread_rng(), ms / 2..=ms);
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                other => return other,
            }
        }
    }
}

/// How many times [`Store::transaction`] runs a transaction that meets conflicts. Eight, not
/// four: under load two job workers recording at once (each record moves the audit chain's
/// head) used up four attempts in a CI run and in one of four local runs of the jobs tests
/// (`jobs::two_workers_never_do_one_job_twice`); the waits add up to at most 560 ms.
pub const ATTEMPTS: u32 = 8;

/// An error that says whether the same transaction, run again, may succeed.
pub trait Conflict {
    fn is_conflict(&self) -> bool;
}

impl Conflict for StoreError {
    fn is_conflict(&self) -> bool {
        self.is_retryable()
    }
}

impl StoreError {
    /// A conflict that a fresh attempt of the same transaction may not meet: PostgreSQL's
    /// serialisation failure or deadlock, SQLite's busy/locked database.
    pub fn is_retryable(&self) -> bool {
        let StoreError::Db(sqlx::Error::Database(e)) = self else {
            return false;
        };
        matches!(
            e.code().as_deref(),
            Some("40001" | "40P01" | "5" | "6" | "517" | "262")
        )
    }

    /// The database cannot be reached or is not serving (down, restarting, out of
    /// connections or disk): nothing about the data, so the same work is tried again later —
    /// unlike a refusal of this data (a constraint, a trigger), which would only fail again.
    pub fn is_unavailable(&self) -> bool {
        use sqlx::migrate::MigrateError;
        let e = match self {
            StoreError::Db(e)
            | StoreError::Open { error: e, .. }
            | StoreError::Migrate(
                MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _),
            ) => e,
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
            _ => false,
        }
    }
}

/// PostgreSQL SQLSTATE classes 08 (connection exception), 53 (insufficient resources: disk
/// full, out of memory, too many connections) and 57 (operator intervention: shutdown, the
/// server starting up, a cancelled statement); SQLite's I/O error, disk full and cannot-open
/// (primary codes 10, 13, 14, whatever the extended code).
fn unavailable_code(code: &str) -> bool {
    // A SQLSTATE has exactly five characters; SQLite's (extended) codes have at most four
    // digits.
    if code.len() == 5 {
        return matches!(code.get(..2), Some("08" | "53" | "57"));
    }
    code.parse::<u32>()
        .is_ok_and(|sqlite| matches!(sqlite & 0xff, 10 | 13 | 14))
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. A SQLite file: a pool of one connection of its own, so the writer's
    /// page cache and prepared statements stay warm (SQLite drops a connection's whole page
    /// cache when it sees another connection's commit, and writes taken from the shared pool
    /// went round its connections, each re-reading the pages the last one changed). Otherwise
    /// the same pool as `pool`.
    writer: AnyPool,
    backend: Backend,
    /// SQLite only: whose turn it is to write, within this process (see [`Store::begin`]).
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite file only: copies the write-ahead log into the database off the commits' path
    /// ([`wal`]); stops with the last clone of the store.
    _checkpointer: Option<Arc<wal::Checkpointer>>,
}

impl Store {
    /// A migrated SQLite database in memory, for unit tests. One connection: each connection
    /// to `sqlite::memory:` is a database of its own.
    #[cfg(test)]
    pub(crate) async fn in_memory() -> Store {
        Store::open(&DatabaseConfig {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(5),
        })
        .await
        .expect("an in-memory store")
    }

    /// Connect (creating a SQLite file when missing) and bring the schema up to date.
    pub async fn open(cfg: &DatabaseConfig) -> Result<Store, StoreError> {
        let store = Store::connect(cfg).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connect without migrating.
    pub async fn connect(cfg: &DatabaseConfig) -> Result<Store, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let backend = if cfg.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            // sqlx does not create a missing SQLite file unless asked (field notes).
            Backend::Sqlite if !cfg.url.contains("mode=") && !cfg.url.contains(":memory:") => {
                let sep = if cfg.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}mode=rwc", cfg.url)
            }
            _ => cfg.url.clone(),
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let checkpoint_options = options.clone();
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(cfg.acquire_timeout);
        let file = backend == Backend::Sqlite && !url.contains(":memory:");
        if file {
            pool_options = pool_options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query(wal::CONNECTION_SETTING)
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            });
        }
        if backend == Backend::Sqlite && url.contains(":memory:") {
            // Every connection to `:memory:` is a different database: keep exactly one.
            pool_options = pool_options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        // Lazy: its first connection is made after the file is in WAL mode (below).
        let writer = file.then(|| {
            pool_options
                .clone()
                .max_connections(1)
                .min_connections(0)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(options.clone())
        });
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(|error| StoreError::Open {
                target: target_of(&cfg.url),
                error,
            })?;
        if file {
            // WAL lets the web page read while the pipeline writes; it is a property of the
            // file, so setting it once is enough.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let write_turn =
            (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let checkpointer = file.then(|| {
            Arc::new(wal::Checkpointer::start(
                pool.clone(),
                checkpoint_options,
                crate::cpu::background_cpus(),
            ))
        });
        Ok(Store {
            writer: writer.unwrap_or_else(|| pool.clone()),
            pool,
            backend,
            write_turn,
            _checkpointer: checkpointer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrator().run(&self.pool).await?;
        self.key_account_names().await?;
        self.index_mentions().await
    }

    /// Requests recorded before migration 0142 get their mentions (names are folded in Rust),
    /// a batch per transaction; a no-op once none is left.
    async fn index_mentions(&self) -> Result<(), StoreError> {
        loop {
            let mut tx = self.begin().await?;
            let done = mentions::index_pending(&mut tx, 1000).await?;
            tx.commit().await?;
            if done == 0 {
                return Ok(());
            }
        }
    }

    /// Accounts written before migration 0040 get their name keys (folded in Rust, so not in
    /// the migration's SQL), a batch per transaction; a no-op once every account has them.
    async fn key_account_names(&self) -> Result<(), StoreError> {
        loop {
            let mut tx = self.begin().await?;
            let keyed = directory::key_unkeyed_accounts(&mut tx, 1000).await?;
            tx.commit().await?;
            if keyed == 0 {
                return Ok(());
            }
        }
    }

    /// Migrations known to this build that the database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default();
        Ok(self
            .migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// Start a write transaction. SQLite takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so two writers queue instead of failing with "database is locked" when a read
    /// transaction upgrades; PostgreSQL runs serialisable so the last-owner guard holds
    /// under concurrency.
    ///
    /// SQLite has one writer at a time, and a writer that finds the lock taken waits in
    /// SQLite's busy handler, which *sleeps* (1, 2, 5, 10… ms) and polls: with the pipeline
    /// and the outbox writing side by side, most of each message's time went on those
    /// sleeps. So the writers of this process first queue on an async mutex, in order, and
    /// only the writers of other processes (a CLI command) meet the busy handler.
    /// Never start a write while holding one: that waits for ever.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let turn = self.write_turn().await;
        let statement = match self.backend {
            Backend::Sqlite => SQLITE_BEGIN,
            Backend::Postgres => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        };
        Ok(Tx {
            inner: self.writer.begin_with(statement).await?,
            _turn: turn,
        })
    }

    /// A connection for one write statement on its own, in this process's turn to write
    /// ([`Store::begin`]).
    pub async fn write(&self) -> Result<WriteConn, StoreError> {
        let turn = self.write_turn().await;
        Ok(WriteConn {
            inner: self.writer.acquire().await?,
            _turn: turn,
        })
    }

    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_turn {
            Some(turn) => Some(Arc::clone(turn).lock_owned().await),
            None => None,
        }
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<sqlx::pool::PoolConnection<Any>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    pub async fn close(&self) {
        if let Some(checkpointer) = &self._checkpointer {
            checkpointer.stop();
        }
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// `sql` — one write run on its own (autocommit) — committed on SQLite without waiting for
/// the disk: `PRAGMA synchronous = NORMAL` for that statement and FULL again after it, in the
/// same round trip to SQLite's thread. PostgreSQL: `sql` as it is.
///
/// In WAL mode a commit under NORMAL is written to the log but not synced
/// (<https://www.sqlite.org/pragma.html#pragma_synchronous>): a crash of postroom loses
/// nothing (the kernel has the write), a power cut or a crash of the machine may lose it
/// until the next synced commit or checkpoint — the log is written in order, so syncing it
/// for a later commit or for the checkpointer (every 100 ms while writes come, [`wal`]) makes
/// this one durable too. Only for bookkeeping whose loss means work done again, never work
/// lost: the reply sender's claims and "sent" records (a reply sent a second time after a
/// power cut, as after any crash between the server's 250 and the record). Those were most of
/// the SQLite daemon's syncs: a sync per reply against one per group of up to fifty
/// messages (README, Performance).
///
/// If `sql` fails, its trailing PRAGMA does not run: pass the statement's result through
/// [`synced_again`], which sets FULL again at once. Should that fail too (the connection is
/// broken), [`Store::begin`] and [`begin_on`] set FULL with their `BEGIN`, so no transaction
/// ever commits unsynced because of it.
pub(crate) fn unsynced(conn: &Conn, sql: &str) -> String {
    if is_sqlite(conn) {
        format!("PRAGMA synchronous = NORMAL; {sql}; PRAGMA synchronous = FULL")
    } else {
        sql.to_owned()
    }
}

/// The result of an [`unsynced`] statement, with FULL set again on `conn` when it failed (its
/// own trailing PRAGMA did not run), so that no later write on the connection commits
/// unsynced either. The statement's error is returned as it was.
pub(crate) async fn synced_again<T>(
    conn: &mut Conn,
    result: Result<T, sqlx::Error>,
) -> Result<T, StoreError> {
    if result.is_err()
        && is_sqlite(conn)
        && let Err(e) = sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
    {
        tracing::warn!("setting synchronous = FULL again after a failed statement: {e}");
    }
    Ok(result?)
}

/// SQLite's `BEGIN` for a write transaction: the write lock at once (`IMMEDIATE`), and every
/// commit synced (FULL, sqlx's default, which [`unsynced`] may have left lowered after a
/// failure). `sqlite3_exec` runs both in one round trip.
const SQLITE_BEGIN: &str = "PRAGMA synchronous = FULL; BEGIN IMMEDIATE";

/// `$first, $first+1, …` for `n` values: the placeholders of an `IN (…)` list or of one row
/// of a multi-row `VALUES` (the values themselves are always bound, never written into the
/// SQL).
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQLite's plan for `sql` with every `$n` bound to a plausible value (texts first, then
/// integers; the plan does not depend on the values), as one string: what the plan tests of
/// the store's queries read.
#[cfg(test)]
pub(crate) async fn sqlite_plan(store: &Store, sql: &str, texts: usize, ints: usize) -> String {
    use sqlx::Row;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
    for _ in 0..texts {
        q = q.bind("x");
    }
    for _ in 0..ints {
        q = q.bind(1i64);
    }
    let mut c = store.read().await.unwrap();
    let rows = q.fetch_all(&mut *c).await.unwrap();
    rows.iter()
        .map(|r| r.try_get::<String, _>("detail").unwrap())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn unavailable_codes() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "10", "266", "14", "13",
        ] {
            assert!(super::unavailable_code(code), "{code}");
        }
        // Serialisation failures, constraint and trigger refusals, busy SQLite: not outages.
        for code in ["40001", "23505", "P0001", "5", "517", "19", "1555"] {
            assert!(!super::unavailable_code(code), "{code}");
        }
    }
}
