//! What `directory at` (`audit::as_of`) reads to rebuild memberships as of a time: today's
//! memberships, the trail's membership events in order, and how many directory imports (whose
//! changes are not itemised) came after the time asked.

use super::{Conn, StoreError};
use crate::action::AuditAction;
use crate::request::Role;

/// Directory imports recorded after `after` (Unix ms).
pub async fn imports_after(conn: &mut Conn, after: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'directory.import' AND at > $1",
    )
    .bind(after)
    .fetch_one(&mut *conn)
    .await?)
}

/// One of today's memberships.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Current {
    pub mailbox: String,
    pub account: String,
    pub role: Role,
}

/// Today's memberships, of one mailbox or of all.
pub async fn current(conn: &mut Conn, mailbox: Option<&str>) -> Result<Vec<Current>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT mb.address AS mailbox, a.address AS account, m.role FROM memberships m \
         JOIN mailboxes mb ON mb.id = m.mailbox_id JOIN accounts a ON a.id = m.account_id \
         WHERE (CAST($1 AS TEXT) IS NULL OR mb.address = $1)",
    )
    .bind(mailbox)
    .fetch_all(&mut *conn)
    .await?)
}

/// One `membership.added`, `membership.removed` or `membership.role_changed` event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipEvent {
    pub at: i64,
    pub action: AuditAction,
    /// The account.
    pub subject: Option<String>,
    /// The event's JSON detail (mailbox, role, from, to), as stored.
    pub detail: String,
    /// The reference of the request that made it, if one did.
    pub reference: Option<String>,
    pub actor: String,
}

/// Every membership event of the trail, in the order written.
pub async fn events(conn: &mut Conn) -> Result<Vec<MembershipEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT e.at, e.action, e.subject, e.detail, r.reference, e.actor FROM audit_events e \
         LEFT JOIN requests r ON r.id = e.request_id \
         WHERE e.action IN ('membership.added', 'membership.removed', 'membership.role_changed') \
         ORDER BY e.id",
    )
    .fetch_all(&mut *conn)
    .await?)
}
