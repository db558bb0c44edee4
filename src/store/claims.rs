//! Who has taken which waiting request (issue 17, migration 0090).

use super::{Conn, StoreError};
use crate::action::AuditAction;
use sqlx::{FromRow, Row};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Claim {
    /// The staff member who has it.
    pub staff: String,
    /// Who gave it to them (themselves, or a colleague handing it over).
    pub claimed_by: String,
    pub claimed_at: i64,
}

pub async fn of_request(conn: &mut Conn, request_id: i64) -> Result<Option<Claim>, StoreError> {
    Ok(
        sqlx::query_as("SELECT staff, claimed_by, claimed_at FROM claims WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// The claims of some requests (a page of the queue), by request id.
pub async fn of_requests(conn: &mut Conn, ids: &[i64]) -> Result<HashMap<i64, Claim>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // One placeholder per id: the values are bound, never written into the SQL.
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT request_id, staff, claimed_by, claimed_at FROM claims WHERE request_id IN ({})",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("request_id")?, Claim::from_row(r)?)))
        .collect()
}

/// Give the request to `staff` (replacing any claim).
pub async fn set(
    conn: &mut Conn,
    request_id: i64,
    staff: &str,
    by: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO claims (request_id, staff, claimed_by, claimed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (request_id) DO UPDATE SET staff = excluded.staff, claimed_by = excluded.claimed_by, \
         claimed_at = excluded.claimed_at",
    )
    .bind(request_id)
    .bind(staff)
    .bind(by)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn release(conn: &mut Conn, request_id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM claims WHERE request_id = $1")
        .bind(request_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The last decision recorded on a request.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Decided {
    /// Who: `staff:NAME`, `postroom`, or the confirming account.
    pub actor: String,
    pub action: AuditAction,
    /// Unix ms.
    pub at: i64,
}

pub async fn last_decision(
    conn: &mut Conn,
    request_id: i64,
) -> Result<Option<Decided>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT actor, action, at FROM audit_events WHERE request_id = $1 \
         AND action IN ('request.applied', 'request.rejected', 'request.awaiting_confirmation', 'request.ignored', \
         'request.merged') \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(request_id)
    .fetch_optional(&mut *conn)
    .await?)
}
