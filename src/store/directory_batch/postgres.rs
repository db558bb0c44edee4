//! A batch's statements on PostgreSQL: the batch is one JSON parameter that the statement
//! unpacks (`json_array_elements_text`, `json_to_recordset`), so every statement's text is the
//! same whatever the batch's size, and it is parsed and planned once per connection (sqlx
//! keeps it prepared) instead of once per batch. With a placeholder per value, a batch's
//! INSERT of 9,000 placeholders was parsed, analysed and planned again for every batch: a
//! tenth of the server's time of an import of 1.5 million accounts (perf), and without them
//! postroom's own CPU for that import fell by a third (README, Performance, change 33). sqlx's
//! `Any` driver, which the store runs on, binds no arrays and has no `COPY`; JSON is what both
//! ends already speak, and `serde_json` escapes every value.
//!
//! Each function returns the rows its statements gave; `directory_batch` reads them.
//!
//! `= ANY(ARRAY(SELECT …))` rather than `IN (SELECT …)`: the planner turns the array into one
//! index scan over its values, as it did the `IN (…)` list of placeholders, where a semi-join
//! with a function it believes returns 100 rows could be planned any other way.

use super::imported::ImportedAccount;
use crate::name_keys::NameKeys;
use crate::request::Role;
use crate::store::{Conn, StoreError};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

/// The most rows one statement carries in its JSON parameter: a batch of the import is a
/// thousand rows, so this only bounds what a caller with more would send at once.
const MAX_ROWS: usize = 5_000;

/// A list as the JSON parameter of a statement.
fn json<T: Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Invalid(format!("batch as JSON: {e}")))
}

/// Run `sql` once per part of `items` of at most [`MAX_ROWS`], the part as `$1` (in JSON) and
/// `now` as `$2` when the statement names it; all the rows they return.
async fn each_part<T: Serialize>(
    conn: &mut Conn,
    sql: &str,
    items: &[T],
    now: Option<i64>,
) -> Result<Vec<AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for part in items.chunks(MAX_ROWS) {
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(json(part)?);
        if let Some(now) = now {
            q = q.bind(now);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

pub(super) async fn rows_among(
    conn: &mut Conn,
    select: &'static str,
    column: &'static str,
    values: &[&str],
) -> Result<Vec<AnyRow>, StoreError> {
    let sql =
        format!("{select} WHERE {column} = ANY(ARRAY(SELECT json_array_elements_text($1::json)))");
    each_part(conn, &sql, values, None).await
}

pub(super) async fn memberships_among(
    conn: &mut Conn,
    mailboxes: &[i64],
    accounts: &[i64],
) -> Result<Vec<AnyRow>, StoreError> {
    let mailboxes = json(mailboxes)?;
    let mut rows = Vec::new();
    for part in accounts.chunks(MAX_ROWS) {
        let found = sqlx::query(
            "SELECT mailbox_id, account_id, role FROM memberships \
             WHERE mailbox_id = ANY(ARRAY(SELECT json_array_elements_text($1::json)::BIGINT)) \
             AND account_id = ANY(ARRAY(SELECT json_array_elements_text($2::json)::BIGINT))",
        )
        .bind(mailboxes.as_str())
        .bind(json(part)?)
        .fetch_all(&mut *conn)
        .await?;
        rows.extend(found);
    }
    Ok(rows)
}

pub(super) async fn insert_organisations(
    conn: &mut Conn,
    names: &[&str],
    now: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    let sql = "INSERT INTO organisations (name, created_at) \
        SELECT t.name, $2 FROM json_array_elements_text($1::json) AS t(name) \
        RETURNING id, name";
    each_part(conn, sql, names, Some(now)).await
}

/// A mailbox as one object of the statement's JSON parameter.
#[derive(Serialize)]
struct NewMailbox<'a> {
    o: i64,
    a: &'a str,
}

pub(super) async fn insert_mailboxes(
    conn: &mut Conn,
    mailboxes: &[(i64, &str)],
    now: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    let new: Vec<NewMailbox> = mailboxes
        .iter()
        .map(|&(o, a)| NewMailbox { o, a })
        .collect();
    let sql = "INSERT INTO mailboxes (organisation_id, address, created_at) \
        SELECT t.o, t.a, $2 FROM json_to_recordset($1::json) AS t(o BIGINT, a TEXT) \
        RETURNING id, address";
    each_part(conn, sql, &new, Some(now)).await
}

/// An account as one object of the statement's JSON parameter, with its name keys.
#[derive(Serialize)]
struct NewAccount<'a> {
    o: i64,
    a: &'a str,
    n: &'a str,
    s: &'a str,
    k: String,
    f: String,
    i: String,
}

pub(super) async fn insert_accounts(
    conn: &mut Conn,
    accounts: &[ImportedAccount<'_>],
    now: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    let new: Vec<NewAccount> = accounts
        .iter()
        .map(|a| {
            let keys = NameKeys::of(a.name);
            NewAccount {
                o: a.organisation_id,
                a: a.address,
                n: a.name,
                s: a.status.as_str(),
                k: keys.full,
                f: keys.first,
                i: keys.initial,
            }
        })
        .collect();
    // Job title and password none, nothing to change at sign-in.
    let sql = "INSERT INTO accounts (organisation_id, address, name, job_title, status, \
        password_hash, must_change, status_changed_at, created_at, name_key, first_key, \
        initial_key) \
        SELECT t.o, t.a, t.n, NULL, t.s, NULL, 0, $2, $2, t.k, t.f, t.i \
        FROM json_to_recordset($1::json) \
        AS t(o BIGINT, a TEXT, n TEXT, s TEXT, k TEXT, f TEXT, i TEXT) \
        RETURNING id, address";
    each_part(conn, sql, &new, Some(now)).await
}

/// A membership as one object of the statement's JSON parameter.
#[derive(Serialize)]
struct NewMembership<'a> {
    m: i64,
    a: i64,
    r: &'a str,
}

pub(super) async fn insert_memberships(
    conn: &mut Conn,
    memberships: &[(i64, i64, Role)],
    now: i64,
) -> Result<(), StoreError> {
    let new: Vec<NewMembership> = memberships
        .iter()
        .map(|&(m, a, role)| NewMembership {
            m,
            a,
            r: role.as_str(),
        })
        .collect();
    let sql = "INSERT INTO memberships (mailbox_id, account_id, role, created_at) \
        SELECT t.m, t.a, t.r, $2 FROM json_to_recordset($1::json) \
        AS t(m BIGINT, a BIGINT, r TEXT)";
    each_part(conn, sql, &new, Some(now)).await?;
    Ok(())
}
