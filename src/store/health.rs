//! Instances report their state here every few seconds (see `daemon.rs`), for `postroom status`
//! and for anyone looking from another process.

use super::{Conn, StoreError, now_ms};
use crate::status::StatusSnapshot;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InstanceHealth {
    pub instance: String,
    pub imap_state: String,
    pub imap_error: Option<String>,
    pub token_failures: i64,
    pub last_processed_at: Option<i64>,
    pub started_at: i64,
    pub updated_at: i64,
}

pub async fn report(conn: &mut Conn, instance: &str, s: &StatusSnapshot) -> Result<(), StoreError> {
    let now = now_ms();
    let failures = i64::try_from(s.token_failures).unwrap_or(i64::MAX);
    let updated = sqlx::query(
        "UPDATE instance_health SET imap_state = $2, imap_error = $3, token_failures = $4, last_processed_at = $5, \
         started_at = $6, updated_at = $7 WHERE instance = $1",
    )
    .bind(instance)
    .bind(s.imap_state.as_str())
    .bind(s.imap_last_error.as_deref())
    .bind(failures)
    .bind(s.last_processed_ms)
    .bind(s.started_at_ms)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO instance_health (instance, imap_state, imap_error, token_failures, last_processed_at, started_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(instance)
        .bind(s.imap_state.as_str())
        .bind(s.imap_last_error.as_deref())
        .bind(failures)
        .bind(s.last_processed_ms)
        .bind(s.started_at_ms)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Every instance that reported, most recent first.
pub async fn list(conn: &mut Conn) -> Result<Vec<InstanceHealth>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT instance, imap_state, imap_error, token_failures, last_processed_at, started_at, updated_at \
         FROM instance_health ORDER BY updated_at DESC",
    )
    .fetch_all(&mut *conn)
    .await?)
}
