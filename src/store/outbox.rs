//! The outbox as the SMTP sender and the staff page see it: which replies are due, who is
//! sending one, and what became of each.
//!
//! Rows are written by [`super::journal::enqueue_reply`] inside the pipeline's transaction;
//! everything here runs *outside* it, one short statement at a time, because the sender
//! must never hold a transaction while it waits on an SMTP server.
//!
//! # Claiming (several senders)
//!
//! A sender first reads candidates with [`due`] (no lock), then [`claim_many`]s a handful
//! (twice its number of connections) just before sending them: a single compare-and-set
//! `UPDATE … RETURNING id` that sets a lease (`claimed_until`) only on rows still pending,
//! due and unclaimed. The lease is stamped and compared by the *database's* clock, so
//! instances on hosts whose clocks differ agree on when it runs out, and it needs no margin
//! for clock skew. It is atomic on both backends when run on its own (autocommit):
//! - SQLite takes the write lock for the statement, so claims are serialised;
//! - PostgreSQL (READ COMMITTED, the default outside `Store::begin`) makes a second
//!   claimer wait on the row lock and re-check the `WHERE` once the first commits, so it
//!   skips those rows instead of claiming them twice. Do not run it inside `Store::begin()`:
//!   SERIALIZABLE turns that race into a serialisation error instead of "not claimed".
//!
//! A handful, not the whole pass: a sender that dies strands only the few it held until their
//! lease runs out, while the senders wait for the write lock once per handful rather than once
//! per reply (on SQLite that wait, behind the pipeline's transactions, was most of a reply's
//! cost). A sender that stops gives its unsent claims back ([`release`]).
//!
//! A sender that dies mid-send leaves its lease to run out; the reply is then due again.
//! SMTP gives at-least-once delivery at best (RFC 5321 §4.5.4.1 on lost replies to the
//! final "."), so a crash between the server's 250 and [`mark_sent_many`] can send it twice.

use super::{Conn, StoreError, now_ms, placeholders, synced_again, unsynced};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::time::Duration;

/// What replaces the secret (a temporary password) in the stored body once it was sent.
pub const SECRET_PLACEHOLDER: &str = "[shown once, not kept]";

/// Stored `last_error` texts are cut to this many characters (a server may answer at
/// length; the staff page needs the gist).
const MAX_ERROR_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    Pending,
    Sent,
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OutboxStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(OutboxStatus::Pending),
            "sent" => Ok(OutboxStatus::Sent),
            "failed" => Ok(OutboxStatus::Failed),
            other => Err(format!(
                "`{other}` is not an outbox status (pending, sent, failed)"
            )),
        }
    }
}

/// A reply due for sending: everything needed to build the message.
///
/// `Debug` leaves out the body and the secret: a pending body holds a temporary password.
#[derive(Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub request_id: Option<i64>,
    /// The request's reference (`HD-000042`), for log lines.
    pub reference: Option<String>,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    /// Ours, without `<>`.
    pub message_id: String,
    /// Without `<>`.
    pub in_reply_to: Option<String>,
    /// Space-separated, without `<>`.
    pub references_ids: Option<String>,
    pub secret: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    /// Set by [`retry_now`]: the give-up clock runs from here instead of `created_at`.
    pub retried_at: Option<i64>,
}

impl OutboxRow {
    /// When the current round of attempts started (creation, or the last staff retry).
    pub fn attempts_since(&self) -> i64 {
        self.retried_at.unwrap_or(self.created_at)
    }
}

impl std::fmt::Debug for OutboxRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRow")
            .field("id", &self.id)
            .field("reference", &self.reference)
            .field("to_address", &self.to_address)
            .field("subject", &self.subject)
            .field("message_id", &self.message_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// One line of the staff page's outbox list: no body, no secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxSummary {
    pub id: i64,
    pub request_id: Option<i64>,
    pub reference: Option<String>,
    pub to_address: String,
    pub subject: String,
    pub message_id: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    /// Unix ms.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// A sender holds it until then (Unix ms): it is being sent right now.
    pub claimed_until: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

/// The database's clock in Unix milliseconds, as SQL for the connection's backend (a
/// constant fragment: see `store::lease`). The job queue's leases use the same clock.
pub(super) fn db_now(conn: &Conn) -> &'static str {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    } else {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    }
}

/// A reply held for a job (`after_job`, see `journal::hold_reply`) is not due before the job
/// is done. (Written so that it reads the same with or without the `o` alias.)
const NOT_HELD: &str = "(after_job IS NULL OR EXISTS (SELECT 1 FROM jobs j WHERE j.id = after_job AND j.status = 'done'))";

/// Pending replies whose time (`next_attempt_at` against `now`) has come and that no sender
/// holds (leases against the database's clock) and no job holds back, oldest first.
pub async fn due(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let db_now = db_now(conn);
    let sql = format!(
        "SELECT o.id, o.request_id, r.reference, o.to_address, o.subject, o.body, o.message_id, \
         o.in_reply_to, o.references_ids, o.secret, o.attempts, o.created_at, o.retried_at \
         FROM outbox o LEFT JOIN requests r ON r.id = o.request_id \
         WHERE o.status = 'pending' AND o.next_attempt_at <= $1 \
         AND (o.claimed_until IS NULL OR o.claimed_until <= {db_now}) AND {NOT_HELD} \
         ORDER BY o.created_at, o.id LIMIT $2"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
}

/// Take the lease on due replies for `lease` (by the database's clock), in one statement:
/// the ids actually claimed; the others are held by another sender or no longer pending and
/// due (`next_attempt_at` against `now`). Run it on its own, not inside `Store::begin()` (see
/// the module comment).
pub async fn claim_many(
    conn: &mut Conn,
    ids: &[i64],
    now: i64,
    lease: Duration,
) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let db_now = db_now(conn);
    // Unsynced on SQLite: a claim lost to a power cut only lets the reply be sent again.
    let sql = unsynced(
        conn,
        &format!(
            "UPDATE outbox SET claimed_until = {db_now} + $2 WHERE id IN ({}) AND status = 'pending' \
             AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= {db_now}) \
             AND {NOT_HELD} RETURNING id",
            placeholders(3, ids.len())
        ),
    );
    let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
        .bind(now)
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    for id in ids {
        q = q.bind(*id);
    }
    let claimed = q.fetch_all(&mut *conn).await;
    synced_again(conn, claimed).await
}

/// Give claimed rows back unsent (the sender is stopping): due again at once for any sender.
pub async fn release(conn: &mut Conn, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE outbox SET claimed_until = NULL WHERE id IN ({}) AND status = 'pending'",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// The server accepted them: done, and each secret is blanked out of the stored body (it was
/// shown once, in the mail) and forgotten.
pub async fn mark_sent_many(conn: &mut Conn, ids: &[i64], now: i64) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    // Unsynced on SQLite (`store::unsynced`): a record lost to a power cut sends the reply
    // again, with its secret, which stays stored until a record lands.
    let sql = unsynced(
        conn,
        &format!(
            "UPDATE outbox SET status = 'sent', sent_at = $1, attempts = attempts + 1, claimed_until = NULL, \
             body = CASE WHEN secret IS NULL OR secret = '' THEN body ELSE REPLACE(body, secret, $2) END, \
             secret = NULL WHERE id IN ({})",
            placeholders(3, ids.len())
        ),
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(now)
        .bind(SECRET_PLACEHOLDER);
    for id in ids {
        q = q.bind(*id);
    }
    let recorded = q.execute(&mut *conn).await;
    synced_again(conn, recorded).await?;
    Ok(())
}

/// A temporary failure: try again at `next_attempt_at` (Unix ms). `attempts` is the new
/// total, counting the one that just failed.
pub async fn mark_retry(
    conn: &mut Conn,
    id: i64,
    attempts: i64,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET attempts = $2, next_attempt_at = $3, last_error = $4, claimed_until = NULL \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(attempts)
    .bind(next_attempt_at)
    .bind(clip(error))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Given up: a permanent refusal, or temporary failures for longer than
/// `smtp.give_up_after`. Counts the attempt that failed. The body keeps its secret so that
/// [`retry_now`] can still send it.
pub async fn mark_failed(conn: &mut Conn, id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $2, claimed_until = NULL \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(clip(error))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Staff pressed "retry" on a failed reply: pending again, due now, with a fresh round of
/// attempts (backoff and the give-up clock start over). `false` when the row is not failed.
pub async fn retry_now(conn: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, retried_at = $2, \
         claimed_until = NULL WHERE id = $1 AND status = 'failed'",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The request a reply belongs to: `None` when there is no such reply, `Some(None)` for a
/// reply of no request (an audit checkpoint).
pub async fn request_of(conn: &mut Conn, id: i64) -> Result<Option<Option<i64>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT request_id FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Newest first; `status` `None` lists every row.
pub async fn list(
    conn: &mut Conn,
    status: Option<OutboxStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<OutboxSummary>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT o.id, o.request_id, r.reference, o.to_address, o.subject, o.message_id, o.status, o.attempts, \
         o.next_attempt_at, o.last_error, o.created_at, o.sent_at, o.claimed_until \
         FROM outbox o LEFT JOIN requests r ON r.id = o.request_id \
         WHERE (CAST($1 AS TEXT) IS NULL OR o.status = $1) ORDER BY o.id DESC LIMIT $2 OFFSET $3",
    )
    .bind(status.map(OutboxStatus::as_str))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn counts(conn: &mut Conn) -> Result<OutboxCounts, StoreError> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        .fetch_all(&mut *conn)
        .await?;
    let mut counts = OutboxCounts::default();
    for r in &rows {
        let n: i64 = r.try_get("n")?;
        match r.try_get("status")? {
            OutboxStatus::Pending => counts.pending = n,
            OutboxStatus::Sent => counts.sent = n,
            OutboxStatus::Failed => counts.failed = n,
        }
    }
    Ok(counts)
}

/// How long the oldest pending reply has waited (for health checks and alerts).
pub async fn oldest_pending_age(conn: &mut Conn, now: i64) -> Result<Option<Duration>, StoreError> {
    let oldest: Option<i64> =
        sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE status = 'pending'")
            .fetch_one(&mut *conn)
            .await?;
    Ok(oldest.map(|t| Duration::from_millis(u64::try_from(now.saturating_sub(t)).unwrap_or(0))))
}

/// When the next pending reply becomes sendable (Unix ms): its `next_attempt_at`, or the
/// end of another sender's lease if that is later (a lease ends by the database's clock:
/// close enough to plan a wait, and a claim decides anyway). `None` when nothing is pending.
pub async fn next_due_at(conn: &mut Conn) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(CASE WHEN claimed_until IS NOT NULL AND claimed_until > next_attempt_at \
         THEN claimed_until ELSE next_attempt_at END) FROM outbox WHERE status = 'pending'",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// An error as stored: cut to [`MAX_ERROR_CHARS`] (the job queue stores its errors alike).
pub(super) fn clip(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", error.get(..cut).unwrap_or(error)),
        None => error.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::journal::{NewOutboxItem, enqueue_reply};

    async fn store() -> Store {
        Store::in_memory().await
    }

    async fn enqueue(store: &Store, message_id: &str, secret: Option<&str>) -> i64 {
        let mut tx = store.begin().await.unwrap();
        let id = enqueue_reply(
            &mut tx,
            &NewOutboxItem {
                request_id: None,
                to: "site@nhs.example",
                subject: "s",
                body: "password: P4ss, again: P4ss.",
                message_id,
                in_reply_to: None,
                references: None,
                secret,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    #[tokio::test]
    async fn a_claimed_row_is_neither_due_nor_claimable_until_its_lease_ends() {
        let store = store().await;
        let id = enqueue(&store, "a@x", None).await;
        let mut c = store.read().await.unwrap();
        let lease = Duration::from_millis(300);
        let now = now_ms();
        assert_eq!(due(&mut c, now, 10).await.unwrap().len(), 1);
        assert_eq!(
            claim_many(&mut c, &[id], now, lease).await.unwrap(),
            vec![id]
        );
        assert!(
            claim_many(&mut c, &[id], now, lease)
                .await
                .unwrap()
                .is_empty(),
            "claimed twice"
        );
        assert!(due(&mut c, now, 10).await.unwrap().is_empty());
        let until = next_due_at(&mut c).await.unwrap().unwrap();
        // The lease is stamped by the database's clock; SQLite's julianday() arithmetic may
        // land a millisecond or two below ours.
        assert!(
            (now - 50..=now_ms() + 300).contains(&(until - 300)),
            "{until} vs {now}"
        );
        // A crashed sender's lease runs out.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let now = now_ms();
        assert_eq!(due(&mut c, now, 10).await.unwrap().len(), 1);
        assert_eq!(
            claim_many(&mut c, &[id], now, lease).await.unwrap(),
            vec![id]
        );
    }

    /// `synchronous` on `c` now (SQLite: 1 NORMAL, 2 FULL).
    async fn sync_level(c: &mut Conn) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn claims_and_sent_records_commit_unsynced_and_every_transaction_synced() {
        let store = store().await;
        let id = enqueue(&store, "c@x", Some("P4ss")).await;
        let mut c = store.write().await.unwrap();
        assert_eq!(sync_level(&mut c).await, 2, "sqlx opens SQLite with FULL");
        // What `synchronous` was while each UPDATE of the outbox ran: a trigger of this
        // connection alone (TEMP) writes it down.
        for sql in [
            "CREATE TEMP TABLE seen (level INTEGER)",
            "CREATE TEMP TRIGGER seen_sync AFTER UPDATE ON outbox \
             BEGIN INSERT INTO seen SELECT synchronous FROM pragma_synchronous; END",
        ] {
            sqlx::query(sql).execute(&mut *c).await.unwrap();
        }
        let now = now_ms();
        let claimed = claim_many(&mut c, &[id], now, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(claimed, vec![id]);
        mark_sent_many(&mut c, &[id], now).await.unwrap();
        let seen: Vec<i64> = sqlx::query_scalar("SELECT level FROM seen")
            .fetch_all(&mut *c)
            .await
            .unwrap();
        assert_eq!(
            seen,
            vec![1, 1],
            "the claim and the record ran under NORMAL"
        );
        assert_eq!(sync_level(&mut c).await, 2, "and FULL is back after each");
        assert_eq!(
            list(&mut c, Some(OutboxStatus::Sent), 10, 0).await.unwrap()[0].id,
            id
        );

        // A statement that fails skips its trailing PRAGMA; `synced_again` sets FULL at once…
        let failing = crate::store::unsynced(&c, "UPDATE no_such_table SET x = 1");
        let failed = sqlx::query(sqlx::AssertSqlSafe(failing.clone()))
            .execute(&mut *c)
            .await;
        assert!(crate::store::synced_again(&mut c, failed).await.is_err());
        assert_eq!(sync_level(&mut c).await, 2);
        // …and should that not happen, the connection stays at NORMAL only until…
        let failed = sqlx::query(sqlx::AssertSqlSafe(failing))
            .execute(&mut *c)
            .await;
        assert!(failed.is_err());
        assert_eq!(sync_level(&mut c).await, 1);
        drop(c);
        // …the next transaction on it (the pool has this one connection), FULL again.
        let mut tx = store.begin().await.unwrap();
        assert_eq!(sync_level(&mut tx).await, 2);
        tx.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn retry_failed_and_retry_now_move_a_row_through_its_states() {
        let store = store().await;
        let id = enqueue(&store, "b@x", Some("P4ss")).await;
        let mut c = store.read().await.unwrap();
        let now = now_ms();
        mark_retry(&mut c, id, 1, now + 500, "451 later")
            .await
            .unwrap();
        assert!(due(&mut c, now, 10).await.unwrap().is_empty());
        assert_eq!(next_due_at(&mut c).await.unwrap(), Some(now + 500));
        assert_eq!(due(&mut c, now + 500, 10).await.unwrap()[0].attempts, 1);

        mark_failed(&mut c, id, &"x".repeat(5000)).await.unwrap();
        let failed = list(&mut c, Some(OutboxStatus::Failed), 10, 0)
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].attempts, 2);
        assert!(failed[0].last_error.as_deref().unwrap().chars().count() <= MAX_ERROR_CHARS + 1);
        assert_eq!(
            counts(&mut c).await.unwrap(),
            OutboxCounts {
                pending: 0,
                sent: 0,
                failed: 1
            }
        );
        assert_eq!(next_due_at(&mut c).await.unwrap(), None);

        assert!(retry_now(&mut c, id).await.unwrap());
        let row = due(&mut c, now_ms(), 10).await.unwrap().remove(0);
        assert_eq!(row.attempts, 0);
        assert!(row.retried_at.is_some());
        assert_eq!(row.secret.as_deref(), Some("P4ss"));

        mark_sent_many(&mut c, &[id], now_ms()).await.unwrap();
        let body: String = sqlx::query_scalar("SELECT body FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(
            body,
            format!("password: {SECRET_PLACEHOLDER}, again: {SECRET_PLACEHOLDER}.")
        );
        assert!(
            !retry_now(&mut c, id).await.unwrap(),
            "a sent reply is not retried"
        );
        assert_eq!(
            list(&mut c, None, 10, 0).await.unwrap()[0].status,
            OutboxStatus::Sent
        );
        assert_eq!(oldest_pending_age(&mut c, now_ms()).await.unwrap(), None);
    }
}
