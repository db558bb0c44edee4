//! The statement behind `postroom backup` (see `ops::backup`): a consistent copy of a live
//! SQLite database, written by SQLite itself.

use super::{Conn, StoreError};

/// `VACUUM INTO` (SQLite ≥ 3.27): a transactionally consistent, compacted copy of the
/// database at `target`, written while others keep working. SQLite only, and never inside a
/// transaction (`VACUUM` refuses to run in one).
pub async fn vacuum_into(conn: &mut Conn, target: &str) -> Result<(), StoreError> {
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
