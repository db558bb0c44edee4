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
//! commit only appends to the log (and syncs it, as before: `synchronous` is unchanged, so a
//! committed transaction survives a power cut). The connections' own threshold is raised
//! ([`CONNECTION_SETTING`]) rather than switched off, so a log whose checkpointer is not
//! running still stays bounded.

use sqlx::AnyPool;
use std::time::Duration;

/// The connection setting that leaves checkpoints to the checkpointer, run on every new
/// connection of the pool: a commit checkpoints by itself only past 10,000 pages of log, a
/// safety net at ten times SQLite's default that the checkpointer keeps the log well under.
pub(super) const CONNECTION_SETTING: &str = "PRAGMA wal_autocheckpoint = 10000";

/// How long the checkpointer waits after copying something (the log is being written) and
/// after finding nothing to copy (idle: it wakes once a second).
const BUSY_PAUSE: Duration = Duration::from_millis(100);
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// Runs until the pool closes, or until the [`Checkpointer`] is dropped with the last clone
/// of its store.
pub(super) struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    pub(super) fn start(pool: AnyPool) -> Checkpointer {
        Checkpointer(tokio::spawn(run(pool)))
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

async fn run(pool: AnyPool) {
    let mut pause = IDLE_PAUSE;
    let mut last = None;
    loop {
        tokio::time::sleep(pause).await;
        if pool.is_closed() {
            return;
        }
        pause = match checkpoint(&pool).await {
            // The log as it was last time: nothing was written since, so nothing to copy.
            Ok(state) if last == Some(state) => IDLE_PAUSE,
            Ok(state) => {
                last = Some(state);
                BUSY_PAUSE
            }
            // A closed pool ends the task; anything else (the file gone read-only, a full
            // disk) is tried again, and the commits' own threshold still bounds the log.
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!("SQLite checkpoint failed (tried again in a second): {e}");
                IDLE_PAUSE
            }
        };
    }
}

/// One passive checkpoint: the pages in the log, and how many of them are now in the
/// database (both -1 when the file is not in WAL mode).
async fn checkpoint(pool: &AnyPool) -> Result<(i64, i64), sqlx::Error> {
    use sqlx::Row;
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    // Columns: busy, pages in the log, pages checkpointed.
    Ok((row.try_get(1)?, row.try_get(2)?))
}

#[cfg(test)]
mod tests {
    use crate::store::{DatabaseConfig, Store};
    use std::time::Duration;

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
        let mut c = store.read().await.unwrap();
        let threshold: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(threshold, 10_000);
        drop(c);
        let before = std::fs::metadata(&file).unwrap().len();
        // ~2 MB in 100 commits: 500 pages of log, a twentieth of the threshold.
        for i in 0..100i64 {
            let mut tx = store.begin().await.unwrap();
            sqlx::query("INSERT INTO messages (message_id, sha256, raw, size, from_address, subject, source, received_at) VALUES ($1, $1, $2, 20000, 'a@b', 's', 'test', 0)")
                .bind(format!("m{i}"))
                .bind(vec![b'x'; 20_000])
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let mut grown = 0;
        for _ in 0..50 {
            grown = std::fs::metadata(&file)
                .unwrap()
                .len()
                .saturating_sub(before);
            if grown >= 1_500_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            grown >= 1_500_000,
            "the database grew by {grown} bytes only"
        );
        store.close().await;
    }
}
