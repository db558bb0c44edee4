//! SQLite's write-ahead log copied back into the database off the path of a commit (issue 18).
//!
//! By default SQLite checkpoints inside a commit: the transaction that takes the log past
//! 1,000 pages (`wal_autocheckpoint`) copies them into the database file and syncs it before
//! its `COMMIT` returns (https://www.sqlite.org/wal.html#automatic_checkpoint). In a national
//! directory every request dirties pages all over a 5 GB file (request, audit, reply, search
//! terms, the account and its indexes: ~48 pages), so one request in 21 paid for a checkpoint
//! and the apply p99 was ~10 ms against a median of 3.
//!
//! So each process that opens a SQLite file runs a checkpointer: a task that copies the log
//! with a `PASSIVE` checkpoint, which never waits for a writer and never makes one wait — a
//! commit only appends to the log (and syncs it, as before, so a committed transaction
//! survives a power cut; the reply sender's claims and records alone are not synced at once,
//! [`super::unsynced`], and a checkpoint syncs them with the log before copying it). The
//! connections' own threshold is raised
//! ([`CONNECTION_SETTING`]) rather than switched off, so a log whose checkpointer is not
//! running still stays bounded.

use rustix::thread::CpuSet;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, AnyPool, Connection};
use std::time::Duration;

/// The connection setting that leaves checkpoints to the checkpointer, run on every new
/// connection of the pool: a commit checkpoints by itself only past 10,000 pages of log, a
/// safety net at ten times SQLite's default that the checkpointer keeps the log well under.
pub(super) const CONNECTION_SETTING: &str = "PRAGMA wal_autocheckpoint = 10000";

/// How long the checkpointer waits after copying something (the log is being written) and
/// after finding nothing to copy (idle: it wakes once a second).
const BUSY_PAUSE: Duration = Duration::from_millis(100);
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// Runs until the pool closes, until [`Checkpointer::stop`], or until the [`Checkpointer`] is
/// dropped with the last clone of its store.
pub(super) struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    /// With `cpus` (the process keeps its threads on one CPU and has others:
    /// [`crate::cpu::background_cpus`]), `options` open the checkpointer's own connection, run
    /// there; without, it borrows one of the pool's.
    pub(super) fn start(
        pool: AnyPool,
        options: AnyConnectOptions,
        cpus: Option<CpuSet>,
    ) -> Checkpointer {
        Checkpointer(tokio::spawn(run(pool, options, cpus)))
    }

    pub(super) fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkpointer")
    }
}

async fn run(pool: AnyPool, options: AnyConnectOptions, cpus: Option<CpuSet>) {
    let mut pause = IDLE_PAUSE;
    let mut last = None;
    let mut own: Option<AnyConnection> = None;
    loop {
        tokio::time::sleep(pause).await;
        if pool.is_closed() {
            return;
        }
        if let (Some(cpus), None) = (cpus, &own) {
            own = connect_on(cpus, options.clone())
                .await
                .map_err(|e| tracing::warn!("SQLite checkpointer's connection: {e}"))
                .ok();
        }
        let copied = match own.as_mut() {
            Some(conn) => checkpoint(conn).await,
            // No CPUs of its own, or its connection not opened (tried again next time).
            None => checkpoint(&pool).await,
        };
        pause = match copied {
            // The log as it was last time: nothing was written since, so nothing to copy.
            Ok(state) if last == Some(state) => IDLE_PAUSE,
            Ok(state) => {
                last = Some(state);
                BUSY_PAUSE
            }
            // A closed pool ends the task; anything else (the file gone read-only, a full
            // disk) is tried again, on a new connection, and the commits' own threshold still
            // bounds the log.
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!("SQLite checkpoint failed (tried again in a second): {e}");
                own = None;
                IDLE_PAUSE
            }
        };
    }
}

/// A connection whose thread runs on `cpus`.
///
/// sqlx runs each SQLite connection on a thread of its own, made when the connection is
/// opened, and a new thread starts on its maker's CPUs. So it is opened from a short-lived
/// thread placed on `cpus` first. Measured (README, Performance, change 31): with the
/// checkpoint on the requests' one CPU, a request that met a checkpoint's copying (10–15 ms,
/// one each 100 ms under load) took 4.5–8 ms instead of 1.5.
async fn connect_on(
    cpus: CpuSet,
    options: AnyConnectOptions,
) -> Result<AnyConnection, sqlx::Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("postroom-wal-connect".into())
        .spawn(move || {
            // Refused (a sandbox): the connection simply shares the requests' CPU, as before.
            let _ = rustix::thread::sched_setaffinity(None, &cpus);
            let opened = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(sqlx::Error::Io)
                .and_then(|rt| rt.block_on(AnyConnection::connect_with(&options)));
            let _ = tx.send(opened);
        })
        .map_err(sqlx::Error::Io)?;
    rx.await
        .map_err(|_| sqlx::Error::WorkerCrashed)
        .and_then(|opened| opened)
}

/// One passive checkpoint: the pages in the log, and how many of them are now in the
/// database (both -1 when the file is not in WAL mode).
async fn checkpoint<'c>(
    on: impl sqlx::Executor<'c, Database = sqlx::Any>,
) -> Result<(i64, i64), sqlx::Error> {
    use sqlx::Row;
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(on)
        .await?;
    // Columns: busy, pages in the log, pages checkpointed.
    Ok((row.try_get(1)?, row.try_get(2)?))
}

#[cfg(test)]
mod tests {
    use super::{CONNECTION_SETTING, Checkpointer};
    use crate::store::{DatabaseConfig, Store};
    use rustix::thread::{CpuSet, Pid, sched_getaffinity};
    use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
    use std::path::Path;
    use std::str::FromStr;
    use std::time::Duration;

    /// ~2 MB in 100 commits (500 pages of log, a twentieth of the commits' threshold), then
    /// how much the database file grew within five seconds.
    async fn write_and_watch(pool: &sqlx::AnyPool, file: &Path) -> u64 {
        let before = std::fs::metadata(file).unwrap().len();
        for i in 0..100i64 {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("INSERT INTO blobs (id, body) VALUES ($1, $2)")
                .bind(i)
                .bind(vec![b'x'; 20_000])
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let mut grown = 0;
        for _ in 0..50 {
            grown = std::fs::metadata(file)
                .unwrap()
                .len()
                .saturating_sub(before);
            if grown >= 1_500_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        grown
    }

    /// A pool on `file` as a store's, but with no checkpointer of its own.
    async fn bare_pool(file: &Path) -> sqlx::AnyPool {
        // Opening a store installs sqlx's drivers.
        let dir = tempfile::tempdir().unwrap();
        Store::connect(&DatabaseConfig {
            url: format!("sqlite://{}", dir.path().join("drivers.db").display()),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap()
        .close()
        .await;
        let options =
            AnyConnectOptions::from_str(&format!("sqlite://{}?mode=rwc", file.display())).unwrap();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query(CONNECTION_SETTING)
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    /// The log reaches the database while the store is open, though far under the commits'
    /// own threshold: the checkpointer copied it (without it, these few hundred pages would
    /// wait in the log until the last connection closed).
    #[tokio::test]
    async fn the_log_is_copied_into_the_database_off_the_commits() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wal.db");
        let store = Store::open(&DatabaseConfig {
            url: format!("sqlite://{}", file.display()),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let threshold: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(threshold, 10_000);
        sqlx::query("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .execute(store.pool())
            .await
            .unwrap();
        let grown = write_and_watch(store.pool(), &file).await;
        assert!(
            grown >= 1_500_000,
            "the database grew by {grown} bytes only"
        );
        store.close().await;
    }

    /// The threads of sqlx's SQLite connections in this process that may run on `cpu` alone.
    fn workers_on_only(cpu: usize) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| t.ok())
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|name| name.starts_with("sqlx-sqlite"))
            })
            .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|tid| sched_getaffinity(Some(Pid::from_raw(tid)?)).ok())
            .filter(|set| set.count() == 1 && set.is_set(cpu))
            .count()
    }

    /// Given CPUs of its own (`postroom run` keeps the requests on one CPU), the checkpointer
    /// copies the log on a connection whose thread runs there, not on the requests' CPU: its
    /// copying then never takes that CPU from a request (README, Performance, change 30).
    #[tokio::test]
    async fn given_cpus_it_copies_on_a_connection_that_runs_there() {
        let allowed = sched_getaffinity(None).unwrap();
        let Some(cpu) = (0..CpuSet::MAX_CPU).find(|c| allowed.is_set(*c)) else {
            panic!("this process may run on no CPU");
        };
        if allowed.count() < 2 {
            // The test's threads run on that one CPU already: nothing to tell apart.
            eprintln!("one CPU: the placement cannot be seen");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wal.db");
        let pool = bare_pool(&file).await;
        let before = workers_on_only(cpu);
        let mut only = CpuSet::new();
        only.set(cpu);
        let options = AnyConnectOptions::from_str(&format!("sqlite://{}", file.display())).unwrap();
        let checkpointer = Checkpointer::start(pool.clone(), options, Some(only));
        // Only this checkpointer can have copied the log: the pool has none.
        let grown = write_and_watch(&pool, &file).await;
        assert!(
            grown >= 1_500_000,
            "the database grew by {grown} bytes only"
        );
        assert_eq!(
            workers_on_only(cpu),
            before + 1,
            "the checkpointer's connection is not on CPU {cpu} alone"
        );
        checkpointer.stop();
        pool.close().await;
    }
}
