//! What `postroom replay` (`ops::replay`) reads: the stored messages of a period, one at a
//! time, each with the outcome it had. Replay writes nothing here.

use super::{Conn, StoreError};
use sqlx::Row;

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
#[derive(Debug, Clone)]
pub struct ReplayMessage {
    /// Empty once retention has dropped it.
    pub raw: Vec<u8>,
    /// The outcome it had: the message's own, else its request's.
    pub outcome: Option<String>,
    pub reference: Option<String>,
    /// When retention dropped its raw bytes.
    pub raw_deleted_at: Option<i64>,
}

pub async fn message(conn: &mut Conn, id: i64) -> Result<Option<ReplayMessage>, StoreError> {
    let row = sqlx::query(
        "SELECT m.raw, COALESCE(m.outcome, r.outcome), r.reference, m.raw_deleted_at FROM messages m \
         LEFT JOIN requests r ON r.id = m.request_id OR (m.request_id IS NULL AND r.message_id = m.id) \
         WHERE m.id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(ReplayMessage {
            raw: row.try_get(0)?,
            outcome: row.try_get(1)?,
            reference: row.try_get(2)?,
            raw_deleted_at: row.try_get(3)?,
        })
    })
    .transpose()
}
