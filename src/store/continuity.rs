//! What continuity needs from the database: each shared mailbox's members and owners counted
//! by status, when each last sent a request, and the reminder episodes (migration 0080).

use super::{Conn, StoreError};
use sqlx::{FromRow, Row};

/// One shared mailbox, counted.
#[derive(Debug, Clone, FromRow)]
pub struct MailboxCounts {
    pub mailbox_id: i64,
    pub address: String,
    pub organisation: String,
    pub created_at: i64,
    pub members: i64,
    pub active_members: i64,
    pub owners: i64,
    pub active_owners: i64,
}

/// Every shared mailbox with its members and owners counted: the counts the database keeps on
/// each mailbox (migration 0160), so one pass over the mailboxes rather than the memberships.
pub async fn mailbox_counts(conn: &mut Conn) -> Result<Vec<MailboxCounts>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.id AS mailbox_id, m.address, o.name AS organisation, m.created_at, \
         m.members_active + m.owners_active + m.members_inactive + m.owners_inactive AS members, \
         m.members_active + m.owners_active AS active_members, \
         m.owners_active + m.owners_inactive AS owners, \
         m.owners_active AS active_owners \
         FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id \
         ORDER BY m.address",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// When each mailbox last sent a request (by postroom's record), by mailbox address.
pub async fn last_requests(conn: &mut Conn) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT mailbox, MAX(created_at) AS last_at FROM requests WHERE mailbox IS NOT NULL GROUP BY mailbox",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("mailbox")?, r.try_get("last_at")?)))
        .collect()
}

/// A mailbox's reminder episode.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Episode {
    pub mailbox_id: i64,
    /// When the mailbox was first found at risk (this episode).
    pub since: i64,
    /// The risks' codes, comma-separated, as last found.
    pub risks: String,
    pub sent_count: i64,
    pub last_sent_at: Option<i64>,
    /// Set when the mailbox was found no longer at risk: the episode is over.
    pub fixed_at: Option<i64>,
}

pub async fn episodes(conn: &mut Conn) -> Result<Vec<Episode>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT mailbox_id, since, risks, sent_count, last_sent_at, fixed_at FROM continuity_reminders \
         ORDER BY mailbox_id",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Write an episode as it now stands (a new one replaces a fixed one of the same mailbox).
pub async fn save_episode(conn: &mut Conn, e: &Episode) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO continuity_reminders (mailbox_id, since, risks, sent_count, last_sent_at, fixed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (mailbox_id) DO UPDATE SET since = excluded.since, risks = excluded.risks, \
         sent_count = excluded.sent_count, last_sent_at = excluded.last_sent_at, fixed_at = excluded.fixed_at",
    )
    .bind(e.mailbox_id)
    .bind(e.since)
    .bind(e.risks.as_str())
    .bind(e.sent_count)
    .bind(e.last_sent_at)
    .bind(e.fixed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Open episodes (mailboxes the last pass found at risk), longest at risk first, with the
/// mailbox's address; and how many there are in all.
pub async fn open_episodes(
    conn: &mut Conn,
    limit: i64,
) -> Result<(Vec<(String, Episode)>, i64), StoreError> {
    let rows = sqlx::query(
        "SELECT m.address AS mailbox, c.mailbox_id, c.since, c.risks, c.sent_count, c.last_sent_at, c.fixed_at \
         FROM continuity_reminders c JOIN mailboxes m ON m.id = c.mailbox_id \
         WHERE c.fixed_at IS NULL ORDER BY c.since, m.address LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM continuity_reminders WHERE fixed_at IS NULL")
            .fetch_one(&mut *conn)
            .await?;
    let list = rows
        .iter()
        .map(|r| Ok((r.try_get("mailbox")?, Episode::from_row(r)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((list, total))
}
