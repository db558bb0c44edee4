//! What a forensic report reads: the requests of a mailbox or about an account in a period,
//! each with its message, audit events and replies.

use super::outbox::OutboxStatus;
use super::{Conn, StoreError};
use crate::outcome::Outcome;
use crate::request::RequestKind;

/// Whose requests a report covers.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// Every request the shared mailbox sent.
    Mailbox(&'a str),
    /// Every request about the account or asked by it.
    Account(&'a str),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: i64,
    pub reference: Option<String>,
    pub created_at: i64,
    pub kind: RequestKind,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub mailbox: Option<String>,
    pub requester: Option<String>,
    pub target: Option<String>,
    pub message_id: Option<String>,
    pub from_address: Option<String>,
    pub subject: String,
    pub source: String,
}

/// At most this many requests in one report (a longer period is asked for in parts).
pub const MAX_REQUESTS: i64 = 10_000;

pub async fn requests(
    conn: &mut Conn,
    who: Subject<'_>,
    from_ms: i64,
    until_ms: i64,
) -> Result<Vec<RequestRow>, StoreError> {
    let (filter, address) = match who {
        Subject::Mailbox(a) => ("r.mailbox = $3", a),
        Subject::Account(a) => ("(r.target = $3 OR r.requester = $3)", a),
    };
    // `filter` is one of the two constants above; the values are bound.
    let sql = format!(
        "SELECT r.id, r.reference, r.created_at, r.kind, r.outcome, r.reason, r.mailbox, r.requester, \
         r.target, m.message_id, m.from_address, m.subject, m.source \
         FROM requests r JOIN messages m ON m.id = r.message_id \
         WHERE r.created_at >= $1 AND r.created_at < $2 AND {filter} ORDER BY r.created_at, r.id LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(from_ms)
        .bind(until_ms)
        .bind(address)
        .bind(MAX_REQUESTS)
        .fetch_all(&mut *conn)
        .await?)
}

/// The action stays the text stored: the trail is read as written, and may hold acts this
/// build does not know (written by another version sharing the database); a report shows
/// them rather than failing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: String,
}

/// A request's audit events, in order.
pub async fn events(conn: &mut Conn, request_id: i64) -> Result<Vec<EventRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT at, actor, action, subject, detail FROM audit_events WHERE request_id = $1 ORDER BY id",
    )
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplyRow {
    pub created_at: i64,
    #[sqlx(rename = "to_address")]
    pub to: String,
    pub subject: String,
    pub status: OutboxStatus,
    pub sent_at: Option<i64>,
}

/// The replies queued for a request (never their bodies: a reply may carry a password).
pub async fn replies(conn: &mut Conn, request_id: i64) -> Result<Vec<ReplyRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT created_at, to_address, subject, status, sent_at FROM outbox WHERE request_id = $1 ORDER BY id",
    )
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?)
}
