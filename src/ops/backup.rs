//! `postroom backup FILE`: a consistent copy of a running SQLite database.
//!
//! `VACUUM INTO` (SQLite ≥ 3.27) writes a transactionally consistent, compacted copy while
//! the daemon keeps working; it is the online backup SQLite recommends for a live WAL database
//! (copying the file itself can tear). PostgreSQL has its own tools.

use crate::store::{self, Backend, Store, StoreError};
use std::path::Path;

pub async fn backup(store: &Store, to: &Path) -> Result<u64, StoreError> {
    if store.backend() != Backend::Sqlite {
        return Err(StoreError::Invalid(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (e.g. pg_dump -Fc -f postroom.dump DBNAME)".into(),
        ));
    }
    if to.exists() {
        return Err(StoreError::Invalid(format!(
            "{} exists already; choose a new file",
            to.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| StoreError::Invalid(format!("{} is not a UTF-8 path", to.display())))?;
    let mut conn = store.read().await?;
    store::backup::vacuum_into(&mut conn, target).await?;
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}
