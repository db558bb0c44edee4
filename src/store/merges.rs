//! Requests merged into another (issue 17, migration 0131): a site asked for the same thing
//! twice; the second is kept, linked to the first, which carries the one answer.

use super::{Conn, StoreError};
use sqlx::FromRow;

/// A request merged into another, as either side's page shows it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Merge {
    /// The merged (second) request.
    pub reference: String,
    pub message_id: i64,
    pub subject: String,
    /// The request it was merged into.
    pub into_reference: String,
    pub merged_by: String,
    /// Unix ms.
    pub merged_at: i64,
}

const SELECT: &str = "SELECT r.reference, r.message_id, m.subject, i.reference AS into_reference, \
     g.merged_by, g.merged_at FROM merges g JOIN requests r ON r.id = g.request_id \
     JOIN requests i ON i.id = g.into_request_id JOIN messages m ON m.id = r.message_id";

pub async fn insert(
    conn: &mut Conn,
    request_id: i64,
    into_request_id: i64,
    by: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merges (request_id, into_request_id, merged_by, merged_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(request_id)
    .bind(into_request_id)
    .bind(by)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where request `request_id` was merged, if it was.
pub async fn of_request(conn: &mut Conn, request_id: i64) -> Result<Option<Merge>, StoreError> {
    let sql = format!("{SELECT} WHERE g.request_id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(request_id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// The requests merged into request `request_id`, oldest first.
pub async fn into_request(conn: &mut Conn, request_id: i64) -> Result<Vec<Merge>, StoreError> {
    let sql = format!("{SELECT} WHERE g.into_request_id = $1 ORDER BY g.request_id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(request_id)
        .fetch_all(&mut *conn)
        .await?)
}

const CANDIDATES: &str = "SELECT r.reference, m.subject FROM requests r \
     JOIN messages m ON m.id = r.message_id \
     WHERE r.mailbox = $1 AND r.id <> $2 AND r.outcome <> 'duplicate' ORDER BY r.id DESC LIMIT $3";

/// Other requests of the same mailbox a request could be merged into: the newest first,
/// not itself, not merged themselves.
pub async fn candidates(
    conn: &mut Conn,
    mailbox: &str,
    not: i64,
    limit: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    use sqlx::Row;
    let rows = sqlx::query(CANDIDATES)
        .bind(mailbox)
        .bind(not)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("reference")?, r.try_get("subject")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use sqlx::Row;

    /// A waiting request's page lists these: index lookups, never a walk of every request.
    #[tokio::test]
    async fn the_page_reads_use_their_indexes() {
        let store = Store::in_memory().await;
        let mut c = store.read().await.unwrap();
        let into = format!("{SELECT} WHERE g.into_request_id = $1 ORDER BY g.request_id");
        let of = format!("{SELECT} WHERE g.request_id = $1");
        for (sql, index) in [
            (CANDIDATES.to_owned(), "requests_mailbox"),
            (into, "merges_into"),
            (of, "INTEGER PRIMARY KEY"),
        ] {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
            q = if sql.contains("$3") {
                q.bind("x").bind(1i64).bind(1i64)
            } else {
                q.bind(1i64)
            };
            let rows = q.fetch_all(&mut *c).await.unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            let plan = plan.join("; ");
            assert!(plan.contains(index), "{sql}: {plan}");
            assert!(!plan.contains("SCAN r"), "{sql}: {plan}");
        }
    }
}
