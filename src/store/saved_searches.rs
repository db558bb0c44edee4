//! Saved searches (issue 17, migration 0142): a staff member's named filters on the requests
//! page. Each is its owner's alone: every statement names the owner, so nobody lists, uses or
//! deletes another's. Saving and deleting are audited.

use super::journal::{self, NewAuditEvent};
use super::{Conn, Store, StoreError, now_ms};
use crate::action::AuditAction;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SavedSearch {
    pub id: i64,
    pub name: String,
    /// The requests page's query string, without a cursor.
    pub query: String,
}

/// `staff`'s saved searches, by name.
pub async fn of_staff(conn: &mut Conn, staff: &str) -> Result<Vec<SavedSearch>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, name, query FROM saved_searches WHERE staff = $1 ORDER BY name, id",
    )
    .bind(staff)
    .fetch_all(&mut *conn)
    .await?)
}

/// Save (or replace, under the same name) one of `staff`'s searches.
pub async fn save(store: &Store, staff: &str, name: &str, query: &str) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO saved_searches (staff, name, query, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (staff, name) DO UPDATE SET query = excluded.query, created_at = excluded.created_at",
    )
    .bind(staff)
    .bind(name)
    .bind(query)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    journal::insert_audit(
        &mut tx,
        &NewAuditEvent {
            actor: &format!("staff:{staff}"),
            on_behalf_of: None,
            action: AuditAction::SearchSaved.as_str(),
            subject: Some(name),
            detail: json!({ "query": query }),
            request_id: None,
            message_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Delete one of `staff`'s searches; false when `staff` has none with this id (another's is
/// not theirs to delete).
pub async fn delete(store: &Store, staff: &str, id: i64) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM saved_searches WHERE id = $1 AND staff = $2")
            .bind(id)
            .bind(staff)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(name) = name else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM saved_searches WHERE id = $1 AND staff = $2")
        .bind(id)
        .bind(staff)
        .execute(&mut *tx)
        .await?;
    journal::insert_audit(
        &mut tx,
        &NewAuditEvent {
            actor: &format!("staff:{staff}"),
            on_behalf_of: None,
            action: AuditAction::SearchDeleted.as_str(),
            subject: Some(&name),
            detail: json!({ "saved_search": id }),
            request_id: None,
            message_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
