//! The waiting requests the queue's targets are counted on (issue 17), and the notices sent
//! when one passes its target (migration 0140).

use super::views::{QueueWho, RequestSummary, summary_from_row};
use super::{Conn, StoreError, placeholders};
use crate::request::RequestKind;
use sqlx::Row;

/// A waiting request, as much of it as its deadline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub id: i64,
    pub kind: RequestKind,
    pub created_at: i64,
}

/// Every request waiting for a person (of `who`), oldest first. The queue is what a team has
/// in hand — hundreds, not the 100,000 of the whole log — and working time is counted in
/// Rust, so its order by time left is made from this list.
pub async fn waiting(conn: &mut Conn, who: QueueWho<'_>) -> Result<Vec<Waiting>, StoreError> {
    let claim = match who {
        QueueWho::All => "",
        QueueWho::Mine(_) => {
            " AND EXISTS (SELECT 1 FROM claims c WHERE c.request_id = r.id AND c.staff = $1)"
        }
        QueueWho::Unclaimed => " AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.request_id = r.id)",
    };
    let sql = format!(
        "SELECT r.id, r.kind, r.created_at FROM requests r WHERE r.outcome = 'needs_review'{claim} ORDER BY r.id"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let QueueWho::Mine(name) = who {
        q = q.bind(name);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(Waiting {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The list rows of some requests, in the order of `ids`.
pub async fn summaries(conn: &mut Conn, ids: &[i64]) -> Result<Vec<RequestSummary>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT r.id, r.reference, r.kind, r.outcome, r.reason, r.mailbox, r.requester, r.target, \
         r.created_at, m.subject, m.from_address FROM requests r JOIN messages m ON m.id = r.message_id \
         WHERE r.id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut found = rows
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    found.sort_by_key(|s| ids.iter().position(|id| *id == s.id));
    Ok(found)
}

/// A waiting request that passed its target and has not been notified yet.
#[derive(Debug, Clone)]
pub struct Unnotified {
    pub id: i64,
    pub reference: String,
    pub kind: RequestKind,
    pub created_at: i64,
    pub mailbox: Option<String>,
    pub subject: String,
    pub from_address: Option<String>,
}

/// Waiting requests with no notice yet, oldest first.
pub async fn unnotified(conn: &mut Conn) -> Result<Vec<Unnotified>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.id, r.reference, r.kind, r.created_at, r.mailbox, m.subject, m.from_address \
         FROM requests r JOIN messages m ON m.id = r.message_id WHERE r.outcome = 'needs_review' \
         AND NOT EXISTS (SELECT 1 FROM target_notices n WHERE n.request_id = r.id) ORDER BY r.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Unnotified {
                id: r.try_get("id")?,
                reference: r
                    .try_get::<Option<String>, _>("reference")?
                    .unwrap_or_default(),
                kind: r.try_get("kind")?,
                created_at: r.try_get("created_at")?,
                mailbox: r.try_get("mailbox")?,
                subject: r.try_get("subject")?,
                from_address: r.try_get("from_address")?,
            })
        })
        .collect()
}

/// Record that request `id` was notified; false when it already was (another pass or
/// another instance got there first), and then nothing more must be sent.
pub async fn mark_notified(conn: &mut Conn, id: i64, at: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO target_notices (request_id, notified_at) VALUES ($1, $2) \
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
