//! What `postroom replay` (`ops::replay`) reads: the stored messages of a period, one at a
//! time, each with the outcome it had. Replay writes nothing here.

use super::{Conn, StoreError};
use crate::outcome::Outcome;

/// The ids of the messages received since `since` (Unix ms), oldest first.
pub async fn message_ids_since(conn: &mut Conn, since: i64) -> Result<Vec<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM messages WHERE received_at >= $1 ORDER BY id")
            .bind(since)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// A stored message as replay needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplayMessage {
    /// Empty once retention has dropped it.
    pub raw: Vec<u8>,
    /// The outcome it had: the message's own, else its request's.
    pub outcome: Option<Outcome>,
    pub reference: Option<String>,
    /// When retention dropped its raw bytes.
    pub raw_deleted_at: Option<i64>,
}

pub async fn message(conn: &mut Conn, id: i64) -> Result<Option<ReplayMessage>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.raw, COALESCE(m.outcome, r.outcome) AS outcome, r.reference, m.raw_deleted_at FROM messages m \
         LEFT JOIN requests r ON r.id = m.request_id OR (m.request_id IS NULL AND r.message_id = m.id) \
         WHERE m.id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}
