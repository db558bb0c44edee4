//! Saved replies (issue 17, migration 0141): kept by admins, offered in a request's reject
//! and comment forms. Each change is written with its audit event in one transaction.

use super::journal::{self, NewAuditEvent};
use super::{Conn, Store, StoreError, now_ms};
use crate::action::AuditAction;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SavedReply {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub updated_by: String,
    pub updated_at: i64,
}

/// Every saved reply, by title.
pub async fn list(conn: &mut Conn) -> Result<Vec<SavedReply>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, title, body, updated_by, updated_at FROM saved_replies ORDER BY title, id",
    )
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn find(conn: &mut Conn, id: i64) -> Result<Option<SavedReply>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, title, body, updated_by, updated_at FROM saved_replies WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// What a change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Done,
    /// Another saved reply has this title.
    TitleTaken,
    /// No saved reply has this id.
    NotFound,
}

async fn title_taken(conn: &mut Conn, title: &str, not_id: i64) -> Result<bool, StoreError> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM saved_replies WHERE title = $1 AND id <> $2")
            .bind(title)
            .bind(not_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(n > 0)
}

async fn audit(
    conn: &mut Conn,
    actor: &str,
    action: AuditAction,
    title: &str,
    id: i64,
) -> Result<(), StoreError> {
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor,
            on_behalf_of: None,
            action: action.as_str(),
            subject: Some(title),
            detail: json!({ "saved_reply": id }),
            request_id: None,
            message_id: None,
        },
    )
    .await
}

/// Add a saved reply as `staff` (the audit's actor is `staff:NAME`).
pub async fn add(
    store: &Store,
    title: &str,
    body: &str,
    staff: &str,
) -> Result<Change, StoreError> {
    let mut tx = store.begin().await?;
    if title_taken(&mut tx, title, 0).await? {
        return Ok(Change::TitleTaken);
    }
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO saved_replies (title, body, updated_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(title)
    .bind(body)
    .bind(staff)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut tx,
        &format!("staff:{staff}"),
        AuditAction::SavedReplyAdded,
        title,
        id,
    )
    .await?;
    tx.commit().await?;
    Ok(Change::Done)
}

pub async fn update(
    store: &Store,
    id: i64,
    title: &str,
    body: &str,
    staff: &str,
) -> Result<Change, StoreError> {
    let mut tx = store.begin().await?;
    if title_taken(&mut tx, title, id).await? {
        return Ok(Change::TitleTaken);
    }
    let done = sqlx::query(
        "UPDATE saved_replies SET title = $2, body = $3, updated_by = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(title)
    .bind(body)
    .bind(staff)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(Change::NotFound);
    }
    audit(
        &mut tx,
        &format!("staff:{staff}"),
        AuditAction::SavedReplyChanged,
        title,
        id,
    )
    .await?;
    tx.commit().await?;
    Ok(Change::Done)
}

pub async fn delete(store: &Store, id: i64, staff: &str) -> Result<Change, StoreError> {
    let mut tx = store.begin().await?;
    let Some(r) = find(&mut tx, id).await? else {
        return Ok(Change::NotFound);
    };
    sqlx::query("DELETE FROM saved_replies WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit(
        &mut tx,
        &format!("staff:{staff}"),
        AuditAction::SavedReplyDeleted,
        &r.title,
        id,
    )
    .await?;
    tx.commit().await?;
    Ok(Change::Done)
}
