//! Who has a waiting request open, or is deciding it (issue 17, migration 0130): rows with a
//! short expiry, so a closed tab or a stopped instance drops out by itself. In the database,
//! not in memory, so that several postroom instances behind one address see each other's
//! staff.

use super::{Conn, StoreError};
use sqlx::FromRow;
use std::fmt;
use std::str::FromStr;

/// What a staff member is doing with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceState {
    /// The request's page is open.
    Viewing,
    /// They are filling in one of its decision forms (apply, reject, merge).
    Deciding,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Viewing => "viewing",
            PresenceState::Deciding => "deciding",
        }
    }
}

impl fmt::Display for PresenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PresenceState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewing" => Ok(PresenceState::Viewing),
            "deciding" => Ok(PresenceState::Deciding),
            other => Err(format!("unknown presence state {other:?}")),
        }
    }
}

/// Someone on a request's page.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Present {
    pub staff: String,
    pub state: PresenceState,
    /// Unix ms: when they opened it (this visit).
    pub since: i64,
}

const SWEEP: &str = "DELETE FROM presence WHERE expires_at <= $1";
const OTHERS: &str = "SELECT staff, state, since FROM presence \
     WHERE request_id = $1 AND staff <> $2 AND expires_at > $3 ORDER BY since, staff";

/// `staff` is on request `request_id`'s page, doing `state`, until `now + ttl_ms`. A visit
/// that had expired starts again (`since` = now). Expired rows of every request are swept.
pub async fn touch(
    conn: &mut Conn,
    request_id: i64,
    staff: &str,
    state: PresenceState,
    now: i64,
    ttl_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(SWEEP).bind(now).execute(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO presence (request_id, staff, state, since, expires_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (request_id, staff) DO UPDATE SET state = excluded.state, \
         expires_at = excluded.expires_at",
    )
    .bind(request_id)
    .bind(staff)
    .bind(state.as_str())
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Everyone on the request's page now, except `staff`, those deciding first.
pub async fn others(
    conn: &mut Conn,
    request_id: i64,
    staff: &str,
    now: i64,
) -> Result<Vec<Present>, StoreError> {
    let mut rows: Vec<Present> = sqlx::query_as(OTHERS)
        .bind(request_id)
        .bind(staff)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    rows.sort_by_key(|p| p.state != PresenceState::Deciding);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use sqlx::Row;

    /// Every page view sweeps and reads presence: both stay index lookups however many
    /// requests and rows there are.
    #[tokio::test]
    async fn the_sweep_and_the_read_use_their_indexes() {
        let store = Store::in_memory().await;
        let mut c = store.read().await.unwrap();
        for (sql, index) in [
            (SWEEP, "presence_expires"),
            (OTHERS, "sqlite_autoindex_presence_1"),
        ] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(1i64)
                .bind("x")
                .bind(1i64)
                .fetch_all(&mut *c)
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            let plan = plan.join("; ");
            assert!(plan.contains(index), "{sql}: {plan}");
        }
    }
}
