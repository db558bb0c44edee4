//! The `imap_state` table: per IMAP account and folder, the UIDVALIDITY the watcher last saw
//! and the next UID it has not seen. The watcher's side — what the numbers mean and what a
//! stale one costs — is in `imap::state`.

use super::{Conn, StoreError};
use sqlx::Row;

/// The stored (uidvalidity, next_uid) of a folder, as stored (the watcher checks the range).
pub async fn load(
    conn: &mut Conn,
    mailbox: &str,
    folder: &str,
) -> Result<Option<(i64, i64)>, StoreError> {
    let row = sqlx::query(
        "SELECT uidvalidity, next_uid FROM imap_state WHERE mailbox = $1 AND folder = $2",
    )
    .bind(mailbox)
    .bind(folder)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((row.try_get("uidvalidity")?, row.try_get("next_uid")?)))
        .transpose()
}

/// Store a folder's checkpoint, replacing the one before.
pub async fn save(
    conn: &mut Conn,
    mailbox: &str,
    folder: &str,
    uidvalidity: i64,
    next_uid: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO imap_state (mailbox, folder, uidvalidity, next_uid, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (mailbox, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, \
         next_uid = excluded.next_uid, updated_at = excluded.updated_at",
    )
    .bind(mailbox)
    .bind(folder)
    .bind(uidvalidity)
    .bind(next_uid)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
