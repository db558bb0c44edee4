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

/// The columns an insert of events names, in the order [`bind_events`] binds them.
const INSERT_EVENTS: &str = "INSERT INTO audit_events (at, actor, on_behalf_of, action, \
    subject, detail, request_id, message_id, seq, prev_hash, hash)";

/// Values bound per event after the time (`$1`).
const PER_EVENT: usize = 10;

/// `($1, $2, …), ($1, $12, …)`: the rows of `n` events, the time first, then ten per event.
fn event_rows(n: usize) -> String {
    (0..n)
        .map(|i| format!("($1, {})", placeholders(2 + i * PER_EVENT, PER_EVENT)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1` the time, then each event's ten values, in [`INSERT_EVENTS`]'s order.
fn bind_events<'q>(
    sql: String,
    at: i64,
    events: &'q [ChainedEvent<'q>],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
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
    q
}

/// SQLite: insert `events` (all at time `at`) and move the head from `from` (event count,
/// hash) to `to`, both only if the head is still `from`, in one round trip: whether it was.
/// In a write transaction the head cannot move between the check and the writes (SQLite has
/// one writer), so either both are written or neither; `audit::chain` then takes the head the
/// ordinary way ([`take_head`]). The head is stamped `at`, as [`take_head`] stamps it.
pub async fn insert_events_if_head(
    conn: &mut Conn,
    at: i64,
    events: &[ChainedEvent<'_>],
    from: (i64, &str),
    to: (i64, &str),
) -> Result<bool, StoreError> {
    let after = 2 + events.len() * PER_EVENT;
    let (count, hash, new_count, new_hash) = (after, after + 1, after + 2, after + 3);
    let still = format!("event_count = ${count} AND head_hash = ${hash}");
    // The SELECT over VALUES keeps the insert's values bound, and its WHERE is the same test
    // as the UPDATE's, made before either writes.
    let sql = format!(
        "{INSERT_EVENTS} SELECT * FROM (VALUES {rows}) \
         WHERE EXISTS (SELECT 1 FROM audit_head WHERE id = 1 AND {still}); \
         UPDATE audit_head SET event_count = ${new_count}, head_hash = ${new_hash}, updated_at = $1 \
         WHERE id = 1 AND {still}",
        rows = event_rows(events.len())
    );
    let written = bind_events(sql, at, events)
        .bind(from.0)
        .bind(from.1)
        .bind(to.0)
        .bind(to.1)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let all = u64::try_from(events.len())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    match written {
        0 => Ok(false),
        n if n == all => Ok(true),
        n => Err(StoreError::Invalid(format!(
            "appending {} audit events after a known head wrote {n} rows",
            events.len()
        ))),
    }
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
    let after = 2 + events.len() * PER_EVENT;
    let insert = format!("{INSERT_EVENTS} VALUES {}", event_rows(events.len()));
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
    bind_events(sql, at, events)
        .bind(new_count)
        .bind(new_head)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
