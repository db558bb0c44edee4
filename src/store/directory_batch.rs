//! The statements `directory import` applies a batch of rows with (issue 18): each batch
//! looks up everything its rows name in a few queries and writes its new rows with one INSERT
//! per table, instead of three or four statements per row — one round trip each, the cost of
//! an import on PostgreSQL.
//!
//! The same statements in the form each backend runs fastest: on SQLite every value bound on
//! its own ([`sqlite`]), on PostgreSQL the whole batch as one JSON parameter ([`postgres`]).
//! A form only runs statements and returns their rows; this module reads them, so both give
//! the import's checks (src/directory_csv.rs) the same maps, and its tests run on both.

mod imported;
mod postgres;
mod sqlite;

// Its own module, so that both forms take it from beside them rather than from this one.
pub use imported::ImportedAccount;

use super::directory::{account_from_row, mailbox_from_row};
use super::{Conn, StoreError, is_sqlite, now_ms};
use crate::accounts::{Account, AccountStatus, Mailbox};
use crate::name_keys::NameKeys;
use crate::request::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

/// What the look-ups of mailboxes select (read by [`mailbox_from_row`]).
const SELECT_MAILBOXES: &str = "SELECT m.id, m.organisation_id, o.name AS organisation, \
    m.address FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id";

/// What the look-ups of accounts select (read by [`account_from_row`]).
const SELECT_ACCOUNTS: &str = "SELECT a.id, a.organisation_id, o.name AS organisation, \
    a.address, a.name, a.status FROM accounts a JOIN organisations o ON o.id = a.organisation_id";

/// Plan the rest of this transaction for a bulk write that finds every row by an index
/// (PostgreSQL; nothing on SQLite, whose planner has no such trap). An import is one
/// transaction, so the tables fill inside it with no statistics — autovacuum cannot see
/// uncommitted rows — and the planner, costing a batch's thousand index probes above a scan of
/// a table it believes small, scanned `accounts` once per batch: 239 scans reading 15 million
/// rows in an import of 230,000. `SET LOCAL` ends with the transaction; scans stay possible
/// where no index serves (it only makes them the last resort).
pub async fn plan_for_indexed_bulk(conn: &mut Conn) -> Result<(), StoreError> {
    if !is_sqlite(conn) {
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The rows of `select` whose `column` is one of `values`; `select` and `column` are this
/// module's own text, never a caller's.
async fn rows_among(
    conn: &mut Conn,
    select: &'static str,
    column: &'static str,
    values: &[&str],
) -> Result<Vec<AnyRow>, StoreError> {
    if is_sqlite(conn) {
        sqlite::rows_among(conn, select, column, values).await
    } else {
        postgres::rows_among(conn, select, column, values).await
    }
}

/// Rows of an id and a text column, as ids by that text.
fn ids_by(rows: &[AnyRow], key: &str) -> Result<HashMap<String, i64>, StoreError> {
    rows.iter()
        .map(|row| Ok((row.try_get(key)?, row.try_get("id")?)))
        .collect()
}

/// The ids of the organisations among `names`, by name; a name that is no organisation is
/// absent.
pub async fn organisations_named(
    conn: &mut Conn,
    names: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let rows = rows_among(conn, "SELECT id, name FROM organisations", "name", names).await?;
    ids_by(&rows, "name")
}

/// The mailboxes among `addresses`, by address.
pub async fn mailboxes_at(
    conn: &mut Conn,
    addresses: &[&str],
) -> Result<HashMap<String, Mailbox>, StoreError> {
    let rows = rows_among(conn, SELECT_MAILBOXES, "m.address", addresses).await?;
    rows.iter()
        .map(|row| {
            let m = mailbox_from_row(row)?;
            Ok((m.address.clone(), m))
        })
        .collect()
}

/// The accounts among `addresses`, by address.
pub async fn accounts_at(
    conn: &mut Conn,
    addresses: &[&str],
) -> Result<HashMap<String, Account>, StoreError> {
    let rows = rows_among(conn, SELECT_ACCOUNTS, "a.address", addresses).await?;
    rows.iter()
        .map(|row| {
            let a = account_from_row(row)?;
            Ok((a.address.clone(), a))
        })
        .collect()
}

/// The roles of the memberships of `accounts` in `mailboxes`, by (mailbox id, account id).
/// `mailboxes` is sent whole with every part of `accounts`: the caller keeps it to a batch's
/// size.
pub async fn memberships_among(
    conn: &mut Conn,
    mailboxes: &[i64],
    accounts: &[i64],
) -> Result<HashMap<(i64, i64), Role>, StoreError> {
    if mailboxes.is_empty() || accounts.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = if is_sqlite(conn) {
        sqlite::memberships_among(conn, mailboxes, accounts).await?
    } else {
        postgres::memberships_among(conn, mailboxes, accounts).await?
    };
    rows.iter()
        .map(|row| {
            let key = (row.try_get("mailbox_id")?, row.try_get("account_id")?);
            Ok((key, row.try_get("role")?))
        })
        .collect()
}

/// Insert organisations (none of which exists yet); their ids by name.
pub async fn insert_organisations(
    conn: &mut Conn,
    names: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let now = now_ms();
    let rows = if is_sqlite(conn) {
        sqlite::insert_organisations(conn, names, now).await?
    } else {
        postgres::insert_organisations(conn, names, now).await?
    };
    ids_by(&rows, "name")
}

/// Insert mailboxes (organisation id, address), none of which exists yet; ids by address.
pub async fn insert_mailboxes(
    conn: &mut Conn,
    mailboxes: &[(i64, &str)],
) -> Result<HashMap<String, i64>, StoreError> {
    let now = now_ms();
    let rows = if is_sqlite(conn) {
        sqlite::insert_mailboxes(conn, mailboxes, now).await?
    } else {
        postgres::insert_mailboxes(conn, mailboxes, now).await?
    };
    ids_by(&rows, "address")
}

/// Insert accounts, none of which exists yet, with their name keys as
/// [`super::directory::insert_account`] writes them; ids by address.
pub async fn insert_accounts(
    conn: &mut Conn,
    accounts: &[ImportedAccount<'_>],
) -> Result<HashMap<String, i64>, StoreError> {
    let now = now_ms();
    let rows = if is_sqlite(conn) {
        sqlite::insert_accounts(conn, accounts, now).await?
    } else {
        postgres::insert_accounts(conn, accounts, now).await?
    };
    ids_by(&rows, "address")
}

/// Insert memberships (mailbox id, account id, role), none of which exists yet.
pub async fn insert_memberships(
    conn: &mut Conn,
    memberships: &[(i64, i64, Role)],
) -> Result<(), StoreError> {
    let now = now_ms();
    if is_sqlite(conn) {
        sqlite::insert_memberships(conn, memberships, now).await
    } else {
        postgres::insert_memberships(conn, memberships, now).await
    }
}

/// An existing account as the rows of a batch left it.
pub struct AccountChange<'a> {
    pub id: i64,
    pub name: &'a str,
    pub status: AccountStatus,
    /// A row changed its status (even if a later one changed it back): the time is now.
    pub status_changed: bool,
    /// A row changed it and gave a name: its name keys are written again.
    pub rekey: bool,
}

/// Write an account a batch changed: one statement.
pub async fn update_account(conn: &mut Conn, c: &AccountChange<'_>) -> Result<(), StoreError> {
    let keys = NameKeys::of(c.name);
    sqlx::query(
        "UPDATE accounts SET name = $2, status = $3, \
         status_changed_at = CASE WHEN $4 = 1 THEN $5 ELSE status_changed_at END, \
         name_key = CASE WHEN $6 = 1 THEN $7 ELSE name_key END, \
         first_key = CASE WHEN $6 = 1 THEN $8 ELSE first_key END, \
         initial_key = CASE WHEN $6 = 1 THEN $9 ELSE initial_key END \
         WHERE id = $1",
    )
    .bind(c.id)
    .bind(c.name)
    .bind(c.status.as_str())
    .bind(i64::from(c.status_changed))
    .bind(now_ms())
    .bind(i64::from(c.rekey))
    .bind(keys.full)
    .bind(keys.first)
    .bind(keys.initial)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Change the role of an existing membership.
pub async fn set_role(
    conn: &mut Conn,
    mailbox_id: i64,
    account_id: i64,
    role: Role,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE memberships SET role = $3 WHERE mailbox_id = $1 AND account_id = $2")
        .bind(mailbox_id)
        .bind(account_id)
        .bind(role.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
