//! What `postroom status` (`ops::status`) reads besides each instance's health
//! ([`super::health`]) and the outbox counts ([`super::outbox::counts`]): when the last message
//! came, how many requests wait, and the oldest of them.

use super::{Conn, StoreError};
use sqlx::Row;

/// When the most recent message was received (Unix ms); `None` before the first.
pub async fn last_message_at(conn: &mut Conn) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT MAX(received_at) FROM messages")
        .fetch_one(&mut *conn)
        .await?)
}

/// How many requests have this outcome now (`needs_review`, `awaiting_confirmation`, …).
pub async fn count_requests_with_outcome(
    conn: &mut Conn,
    outcome: &str,
) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM requests WHERE outcome = $1")
            .bind(outcome)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// The request that has waited longest for review: its reference and when it was made.
pub async fn oldest_waiting(conn: &mut Conn) -> Result<Option<(String, i64)>, StoreError> {
    let row = sqlx::query(
        "SELECT reference, created_at FROM requests WHERE outcome = 'needs_review' ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((r.try_get("reference")?, r.try_get("created_at")?)))
        .transpose()
}
