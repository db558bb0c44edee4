//! Signed checkpoints of the audit chain as stored (`audit_checkpoints`): each one's time,
//! event count, head hash, public key, signature and full text. Signing, parsing and the
//! daemon's schedule are in `audit::checkpoint`.

use super::{Conn, StoreError};

/// A checkpoint to store, signed already.
pub struct NewCheckpoint<'a> {
    pub at: i64,
    pub events: i64,
    pub head: &'a str,
    pub public_key: &'a str,
    pub signature: &'a str,
    /// The text form, as printed and emailed.
    pub text: &'a str,
}

pub async fn insert(conn: &mut Conn, c: &NewCheckpoint<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (at, event_count, head_hash, public_key, signature, text) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.at)
    .bind(c.events)
    .bind(c.head)
    .bind(c.public_key)
    .bind(c.signature)
    .bind(c.text)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A stored checkpoint (its text form aside).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredCheckpoint {
    /// Unix ms.
    pub at: i64,
    #[sqlx(rename = "event_count")]
    pub events: i64,
    #[sqlx(rename = "head_hash")]
    pub head: String,
    pub public_key: String,
    pub signature: String,
}

/// Every stored checkpoint, oldest first.
pub async fn all(conn: &mut Conn) -> Result<Vec<StoredCheckpoint>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT event_count, head_hash, at, public_key, signature FROM audit_checkpoints ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// The most recent stored checkpoint.
pub async fn latest(conn: &mut Conn) -> Result<Option<StoredCheckpoint>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT event_count, head_hash, at, public_key, signature FROM audit_checkpoints ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?)
}
