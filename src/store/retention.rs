//! What the retention pass (`ops::retention`, `[retention]`) reads and removes: the raw bytes
//! of old messages, and accounts disabled for longer than the configured time. The audit
//! events it records go through [`super::journal::insert_audit`] like every other.

use super::{Conn, StoreError};
use sqlx::Row;

/// Messages received before a cutoff whose raw bytes are still stored: how many, and the
/// range of their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct RawToDrop {
    pub count: i64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
}

pub async fn raw_to_drop(conn: &mut Conn, received_before: i64) -> Result<RawToDrop, StoreError> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*) AS count, MIN(id) AS first_id, MAX(id) AS last_id FROM messages \
         WHERE received_at < $1 AND raw_deleted_at IS NULL",
    )
    .bind(received_before)
    .fetch_one(&mut *conn)
    .await?)
}

/// Accounts disabled since before `disabled_before`: (id, address), by address.
pub async fn disabled_accounts(
    conn: &mut Conn,
    disabled_before: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, address FROM accounts WHERE status = 'disabled' AND status_changed_at < $1 ORDER BY address",
    )
    .bind(disabled_before)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("address")?)))
        .collect()
}

/// Drop the raw bytes of the messages [`raw_to_drop`] counts (the rows, their SHA-256 and
/// their requests stay), stamping when.
pub async fn drop_raw(conn: &mut Conn, received_before: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET raw = $2, raw_deleted_at = $3 WHERE received_at < $1 AND raw_deleted_at IS NULL")
        .bind(received_before)
        .bind(Vec::<u8>::new())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Forget the status changes older than `before` (Unix ms): the log (migration 0190) serves
/// the directory page's recent changes, which never reach that far back
/// ([`super::views::RECENT_STATUS_DAYS`]). The audit trail keeps every change.
pub async fn prune_status_changes(conn: &mut Conn, before: i64) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM account_status_changes WHERE changed_at < $1")
            .bind(before)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}

/// Delete an account and its memberships.
pub async fn delete_account(conn: &mut Conn, account_id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM memberships WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
