//! A batch's statements on SQLite: every value bound on its own, anonymous placeholders (`?`,
//! bound in order), no statement binding more than [`MAX_BINDS`] values (SQLite allows
//! 32,766). sqlx asks SQLite the name of every parameter as it binds, and SQLite finds a name
//! by walking the statement's list of names, so binding n numbered parameters (`$1`) would
//! cost n² — most of an import's time at a few thousand values a statement. Each function
//! returns the rows its statements gave; `directory_batch` reads them.

use super::imported::ImportedAccount;
use crate::name_keys::NameKeys;
use crate::request::Role;
use crate::store::{Conn, StoreError};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

/// The most values one statement binds, under SQLite's limit with room to spare.
const MAX_BINDS: usize = 30_000;

/// `n` placeholders, comma-separated.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(…), (…), …`: `rows` tuples of `width` placeholders each.
fn tuples(rows: usize, width: usize) -> String {
    vec![format!("({})", marks(width)); rows].join(", ")
}

pub(super) async fn rows_among(
    conn: &mut Conn,
    select: &'static str,
    column: &'static str,
    values: &[&str],
) -> Result<Vec<AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in values.chunks(MAX_BINDS) {
        let sql = format!("{select} WHERE {column} IN ({})", marks(chunk.len()));
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for v in chunk {
            q = q.bind(*v);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

pub(super) async fn memberships_among(
    conn: &mut Conn,
    mailboxes: &[i64],
    accounts: &[i64],
) -> Result<Vec<AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in accounts.chunks(MAX_BINDS.saturating_sub(mailboxes.len()).max(1)) {
        let sql = format!(
            "SELECT mailbox_id, account_id, role FROM memberships \
             WHERE mailbox_id IN ({}) AND account_id IN ({})",
            marks(mailboxes.len()),
            marks(chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for m in mailboxes {
            q = q.bind(*m);
        }
        for a in chunk {
            q = q.bind(*a);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// RETURNING's order is not the VALUES' order on SQLite: each id comes back with its name or
/// address, by which `directory_batch` maps it.
pub(super) async fn insert_organisations(
    conn: &mut Conn,
    names: &[&str],
    now: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in names.chunks(MAX_BINDS / 2) {
        let sql = format!(
            "INSERT INTO organisations (name, created_at) VALUES {} RETURNING id, name",
            tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for name in chunk {
            q = q.bind(*name).bind(now);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

pub(super) async fn insert_mailboxes(
    conn: &mut Conn,
    mailboxes: &[(i64, &str)],
    now: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in mailboxes.chunks(MAX_BINDS / 3) {
        let sql = format!(
            "INSERT INTO mailboxes (organisation_id, address, created_at) VALUES {} \
             RETURNING id, address",
            tuples(chunk.len(), 3)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (organisation_id, address) in chunk {
            q = q.bind(*organisation_id).bind(*address).bind(now);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

pub(super) async fn insert_accounts(
    conn: &mut Conn,
    accounts: &[ImportedAccount<'_>],
    now: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    // Nine bound values an account; job title and password none, nothing to change at sign-in.
    const ONE: &str = "(?, ?, ?, NULL, ?, NULL, 0, ?, ?, ?, ?, ?)";
    let mut rows = Vec::new();
    for chunk in accounts.chunks(MAX_BINDS / 9) {
        let sql = format!(
            "INSERT INTO accounts (organisation_id, address, name, job_title, status, password_hash, \
             must_change, status_changed_at, created_at, name_key, first_key, initial_key) \
             VALUES {} RETURNING id, address",
            vec![ONE; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for a in chunk {
            let keys = NameKeys::of(a.name);
            q = q
                .bind(a.organisation_id)
                .bind(a.address)
                .bind(a.name)
                .bind(a.status.as_str())
                .bind(now)
                .bind(now)
                .bind(keys.full)
                .bind(keys.first)
                .bind(keys.initial);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

pub(super) async fn insert_memberships(
    conn: &mut Conn,
    memberships: &[(i64, i64, Role)],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in memberships.chunks(MAX_BINDS / 4) {
        let sql = format!(
            "INSERT INTO memberships (mailbox_id, account_id, role, created_at) VALUES {}",
            tuples(chunk.len(), 4)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (mailbox_id, account_id, role) in chunk {
            q = q
                .bind(*mailbox_id)
                .bind(*account_id)
                .bind(role.as_str())
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
