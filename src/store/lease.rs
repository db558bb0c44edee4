//! Inbox leases: which instance works which IMAP inbox when several share one database (the
//! `inbox_leases` table, migration 0007). The watcher side — when to take, renew and give up —
//! is in `imap::lease`; here are the three statements and why each is safe.
//!
//! - Each runs on its own, in autocommit, never inside [`Store::begin`]: on PostgreSQL (READ
//!   COMMITTED) `INSERT … ON CONFLICT DO UPDATE … WHERE` locks the row and evaluates the
//!   `WHERE` on its latest version, so of two instances racing for a free lease exactly one
//!   updates it and the other sees 0 rows; SQLite runs one writer at a time anyway.
//! - Expiry is measured by the database's clock, not the instances': hosts whose clocks
//!   disagree still agree on when a lease runs out. A holder counts its own deadline from the
//!   moment it *sent* a renewal (see `imap::lease`), which is never later than the moment the
//!   database stamped it.
//! - Unlike PostgreSQL advisory locks (held per connection, lost behind PgBouncer in
//!   transaction mode: field notes), a row works through any pooler.

use super::{Backend, Store, StoreError};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use std::time::Duration;

/// The database's clock in Unix milliseconds, per backend. A constant fragment: the
/// `AssertSqlSafe` below only ever joins constant SQL.
fn db_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        // clock_timestamp(), not now(): now() is the start of the transaction.
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Take the lease on `inbox` for `ttl` if it is free, expired, or already ours (then it is
/// simply renewed). `true`: `holder` has it now.
pub async fn try_acquire(
    store: &Store,
    inbox: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let now = db_now(store.backend());
    let sql = format!(
        "INSERT INTO inbox_leases (inbox, holder, expires_at, acquired_at, renewed_at) \
         VALUES ($1, $2, {now} + $3, {now}, {now}) \
         ON CONFLICT (inbox) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
         acquired_at = CASE WHEN inbox_leases.holder = excluded.holder THEN inbox_leases.acquired_at \
         ELSE excluded.acquired_at END, renewed_at = excluded.renewed_at \
         WHERE inbox_leases.holder = excluded.holder OR inbox_leases.expires_at <= excluded.renewed_at"
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(inbox)
        .bind(holder)
        .bind(ms(ttl))
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Extend our lease by `ttl` from now. `false`: it is not ours any more (another instance took
/// it after it ran out); the caller must stop working the inbox.
pub async fn renew(
    store: &Store,
    inbox: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let now = db_now(store.backend());
    let sql = format!(
        "UPDATE inbox_leases SET expires_at = {now} + $3, renewed_at = {now} \
         WHERE inbox = $1 AND holder = $2"
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(inbox)
        .bind(holder)
        .bind(ms(ttl))
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Give the lease up (on shutdown), so that another instance takes over at once instead of
/// after the TTL. Only our own: a lease another instance took meanwhile is left alone.
pub async fn release(store: &Store, inbox: &str, holder: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM inbox_leases WHERE inbox = $1 AND holder = $2")
        .bind(inbox)
        .bind(holder)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// One lease as `postroom status` or a log line shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LeaseRow {
    pub inbox: String,
    pub holder: String,
    /// Milliseconds until it runs out by the database's clock; negative once expired.
    pub expires_in_ms: i64,
    /// Unix ms (database clock) when the current holder took it.
    pub acquired_at: i64,
}

/// Every lease, by inbox.
pub async fn list(store: &Store) -> Result<Vec<LeaseRow>, StoreError> {
    let now = db_now(store.backend());
    let sql = format!(
        "SELECT inbox, holder, expires_at - {now} AS expires_in_ms, acquired_at FROM inbox_leases ORDER BY inbox"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await?)
}

/// The lease on one inbox, if any.
pub async fn find(store: &Store, inbox: &str) -> Result<Option<LeaseRow>, StoreError> {
    Ok(list(store).await?.into_iter().find(|l| l.inbox == inbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Store {
        Store::in_memory().await
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_the_lease_runs_out() {
        let store = store().await;
        let ttl = Duration::from_millis(400);
        assert!(try_acquire(&store, "hd@x/INBOX", "a", ttl).await.unwrap());
        assert!(
            !try_acquire(&store, "hd@x/INBOX", "b", ttl).await.unwrap(),
            "taken while held"
        );
        assert!(try_acquire(&store, "hd@x/Other", "b", ttl).await.unwrap());
        // Taking it again is renewing it.
        assert!(try_acquire(&store, "hd@x/INBOX", "a", ttl).await.unwrap());
        assert!(renew(&store, "hd@x/INBOX", "a", ttl).await.unwrap());
        assert!(!renew(&store, "hd@x/INBOX", "b", ttl).await.unwrap());
        let held = find(&store, "hd@x/INBOX").await.unwrap().unwrap();
        assert_eq!(held.holder, "a");
        assert!(
            held.expires_in_ms > 0 && held.expires_in_ms <= 400,
            "{held:?}"
        );

        // The holder dies: after the TTL the other takes over, and the old one cannot renew.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(try_acquire(&store, "hd@x/INBOX", "b", ttl).await.unwrap());
        assert!(!renew(&store, "hd@x/INBOX", "a", ttl).await.unwrap());
        // Releasing someone else's lease does nothing; one's own frees it at once.
        release(&store, "hd@x/INBOX", "a").await.unwrap();
        assert_eq!(
            find(&store, "hd@x/INBOX").await.unwrap().unwrap().holder,
            "b"
        );
        release(&store, "hd@x/INBOX", "b").await.unwrap();
        assert!(try_acquire(&store, "hd@x/INBOX", "a", ttl).await.unwrap());
        assert_eq!(list(&store).await.unwrap().len(), 2);
    }
}
