//! The audit trail's chain as stored: events with their chain columns (`seq`, `prev_hash`,
//! `hash`, migration 0050) and the head row (`audit_head`: how many events are chained and the
//! last one's hash). `audit::chain` hashes, appends and verifies with these statements; what a
//! hash covers and what a broken link means are explained there.

use super::{Conn, StoreError, is_sqlite, placeholders};
use sqlx::{AssertSqlSafe, Row};

/// One stored event with its chain columns, as `audit::chain::verify` reads it. The action
/// stays the text stored: the hash covers that text, and verifying reports a value this build
/// does not know as it is rather than failing to read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
    pub at: i64,
    pub actor: String,
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub subject: Option<String>,
    pub detail: String,
    pub request_id: Option<i64>,
    pub message_id: Option<i64>,
}

const EVENT_COLUMNS: &str = "id, seq, prev_hash, hash, at, actor, on_behalf_of, action, subject, detail, request_id, message_id";

/// Up to `limit` events after row id `after`, in id order.
pub async fn events_after(
    conn: &mut Conn,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// The event with this place in the chain, if one is stored.
pub async fn event_with_seq(conn: &mut Conn, seq: i64) -> Result<Option<StoredEvent>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq = $1"
    )))
    .bind(seq)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The head as stored: chained event count and last hash (`None` before the first).
pub async fn head(conn: &mut Conn) -> Result<(i64, Option<String>), StoreError> {
    let row = sqlx::query("SELECT event_count, head_hash FROM audit_head WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(r) => Ok((r.try_get("event_count")?, r.try_get("head_hash")?)),
        None => Ok((0, None)),
    }
}

/// The head, taken for an append in the caller's transaction (stamping `at`): chained event
/// count and last hash (`None` before the first).
pub async fn take_head(conn: &mut Conn, at: i64) -> Result<(i64, Option<String>), StoreError> {
    // The UPDATE takes the head row's lock until commit: on PostgreSQL a concurrent writer
    // waits here, then reads the head this one left (READ COMMITTED) or fails with a
    // serialisation error and is retried (SERIALIZABLE, `Store::begin`); never a fork. On
    // SQLite the write transaction already excludes every other writer.
    let row = sqlx::query(
        "UPDATE audit_head SET updated_at = $1 WHERE id = 1 RETURNING event_count, head_hash",
    )
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get("event_count")?, row.try_get("head_hash")?))
}

/// One event to insert, hashed already.
pub struct ChainedEvent<'a> {
    pub actor: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub detail: &'a str,
    pub request_id: Option<i64>,
    pub message_id: Option<i64>,
    pub seq: i64,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// Insert `events` (all at time `at`) in ONE statement and move the head to `new_count`
/// events and `new_head`; in the transaction whose head [`take_head`] took.
pub async fn insert_events(
    conn: &mut Conn,
    at: i64,
    events: &[ChainedEvent<'_>],
    new_count: i64,
    new_head: &str,
) -> Result<(), StoreError> {
    // `$1` is the time, then ten per event, then the head's new count and hash.
    const PER: usize = 10;
    let rows: Vec<String> = (0..events.len())
        .map(|i| format!("($1, {})", placeholders(2 + i * PER, PER)))
        .collect();
    let after = 2 + events.len() * PER;
    let insert = format!(
        "INSERT INTO audit_events (at, actor, on_behalf_of, action, subject, detail, request_id, message_id, seq, prev_hash, hash) \
         VALUES {}",
        rows.join(", ")
    );
    let set_head = format!(
        "UPDATE audit_head SET event_count = ${after}, head_hash = ${} WHERE id = 1",
        after + 1
    );
    // One round trip for both. PostgreSQL: a data-modifying WITH runs even unreferenced.
    // SQLite: two statements in one query string, which sqlx runs in turn on its worker with
    // the numbered parameters each names (a round trip to that thread per statement is what
    // the pipeline's time goes on).
    let sql = if is_sqlite(conn) {
        format!("{insert}; {set_head}")
    } else {
        format!("WITH ins AS ({insert}) {set_head}")
    };
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(at);
    for e in events {
        q = q
            .bind(e.actor)
            .bind(e.on_behalf_of)
            .bind(e.action)
            .bind(e.subject)
            .bind(e.detail)
            .bind(e.request_id)
            .bind(e.message_id)
            .bind(e.seq)
            .bind(e.prev_hash)
            .bind(e.hash);
    }
    q.bind(new_count).bind(new_head).execute(&mut *conn).await?;
    Ok(())
}
