//! A batch's statements on PostgreSQL: the batch is one JSON parameter that the statement
//! unpacks (`json_array_elements_text`, `json_to_recordset`), so every statement's text is the
//! same whatever the batch's size, and it is parsed and planned once per connection (sqlx
//! keeps it prepared) instead of once per batch. With a placeholder per value, a batch's
//! INSERT of 9,000 placeholders was parsed, analysed and planned again for every batch: a
//! tenth of the server's time of an import of 1.5 million accounts (perf), and the client
//! spent a third of its own writing and binding them (README, Performance, change 33). sqlx's
//! `Any` driver, which the store runs on, binds no arrays and has no `COPY`; JSON is what both
//! ends already speak, and `serde_json` escapes every value.
//!
//! `= ANY(ARRAY(SELECT …))` rather than `IN (SELECT …)`: the planner turns the array into one
//! index scan over its values, as it did the `IN (…)` list of placeholders, where a semi-join
//! with a function it believes returns 100 rows could be planned any other way.

use super::{ImportedAccount, SELECT_ACCOUNTS, SELECT_MAILBOXES};
use crate::accounts::{Account, Mailbox};
use crate::name_keys::NameKeys;
use crate::request::Role;
use crate::store::{Conn, StoreError, now_ms};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// The most rows one statement carries in its JSON parameter: a batch of the import is a
/// thousand rows, so this only bounds what a caller with more would send at once.
const MAX_ROWS: usize = 5_000;

/// A list as the JSON parameter of a statement.
fn json<T: Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Invalid(format!("batch as JSON: {e}")))
}

/// The values of a JSON array of strings, as an array to compare a column with.
const TEXTS: &str = "ARRAY(SELECT json_array_elements_text($1::json))";

pub(super) async fn organisations_named(
    conn: &mut Conn,
    names: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut found = HashMap::new();
    let sql = format!("SELECT id, name FROM organisations WHERE name = ANY({TEXTS})");
    for chunk in names.chunks(MAX_ROWS) {
        let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(json(chunk)?)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            found.insert(row.try_get("name")?, row.try_get("id")?);
        }
    }
    Ok(found)
}

pub(super) async fn mailboxes_at(
    conn: &mut Conn,
    addresses: &[&str],
) -> Result<HashMap<String, Mailbox>, StoreError> {
    let mut found = HashMap::new();
    let sql = format!("{} WHERE m.address = ANY({TEXTS})", SELECT_MAILBOXES);
    for chunk in addresses.chunks(MAX_ROWS) {
        let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(json(chunk)?)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let m = crate::store::directory::mailbox_from_row(&row)?;
            found.insert(m.address.clone(), m);
        }
    }
    Ok(found)
}

pub(super) async fn accounts_at(
    conn: &mut Conn,
    addresses: &[&str],
) -> Result<HashMap<String, Account>, StoreError> {
    let mut found = HashMap::new();
    let sql = format!("{} WHERE a.address = ANY({TEXTS})", SELECT_ACCOUNTS);
    for chunk in addresses.chunks(MAX_ROWS) {
        let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(json(chunk)?)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let a = crate::store::directory::account_from_row(&row)?;
            found.insert(a.address.clone(), a);
        }
    }
    Ok(found)
}

pub(super) async fn memberships_among(
    conn: &mut Conn,
    mailboxes: &[i64],
    accounts: &[i64],
) -> Result<HashMap<(i64, i64), Role>, StoreError> {
    let mut found = HashMap::new();
    let mailboxes = json(mailboxes)?;
    for chunk in accounts.chunks(MAX_ROWS) {
        let rows = sqlx::query(
            "SELECT mailbox_id, account_id, role FROM memberships \
             WHERE mailbox_id = ANY(ARRAY(SELECT json_array_elements_text($1::json)::BIGINT)) \
             AND account_id = ANY(ARRAY(SELECT json_array_elements_text($2::json)::BIGINT))",
        )
        .bind(mailboxes.as_str())
        .bind(json(chunk)?)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            found.insert(
                (row.try_get("mailbox_id")?, row.try_get("account_id")?),
                row.try_get("role")?,
            );
        }
    }
    Ok(found)
}

pub(super) async fn insert_organisations(
    conn: &mut Conn,
    names: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut ids = HashMap::new();
    let now = now_ms();
    for chunk in names.chunks(MAX_ROWS) {
        let rows = sqlx::query(
            "INSERT INTO organisations (name, created_at) \
             SELECT t.name, $2 FROM json_array_elements_text($1::json) AS t(name) \
             RETURNING id, name",
        )
        .bind(json(chunk)?)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            ids.insert(row.try_get("name")?, row.try_get("id")?);
        }
    }
    Ok(ids)
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
) -> Result<HashMap<String, i64>, StoreError> {
    let mut ids = HashMap::new();
    let now = now_ms();
    for chunk in mailboxes.chunks(MAX_ROWS) {
        let new: Vec<NewMailbox> = chunk.iter().map(|&(o, a)| NewMailbox { o, a }).collect();
        let rows = sqlx::query(
            "INSERT INTO mailboxes (organisation_id, address, created_at) \
             SELECT t.o, t.a, $2 FROM json_to_recordset($1::json) AS t(o BIGINT, a TEXT) \
             RETURNING id, address",
        )
        .bind(json(&new)?)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            ids.insert(row.try_get("address")?, row.try_get("id")?);
        }
    }
    Ok(ids)
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
) -> Result<HashMap<String, i64>, StoreError> {
    let mut ids = HashMap::new();
    let now = now_ms();
    for chunk in accounts.chunks(MAX_ROWS) {
        let new: Vec<NewAccount> = chunk
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
        let rows = sqlx::query(
            "INSERT INTO accounts (organisation_id, address, name, job_title, status, \
             password_hash, must_change, status_changed_at, created_at, name_key, first_key, \
             initial_key) \
             SELECT t.o, t.a, t.n, NULL, t.s, NULL, 0, $2, $2, t.k, t.f, t.i \
             FROM json_to_recordset($1::json) \
             AS t(o BIGINT, a TEXT, n TEXT, s TEXT, k TEXT, f TEXT, i TEXT) \
             RETURNING id, address",
        )
        .bind(json(&new)?)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            ids.insert(row.try_get("address")?, row.try_get("id")?);
        }
    }
    Ok(ids)
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
) -> Result<(), StoreError> {
    let now = now_ms();
    for chunk in memberships.chunks(MAX_ROWS) {
        let new: Vec<NewMembership> = chunk
            .iter()
            .map(|&(m, a, role)| NewMembership {
                m,
                a,
                r: role.as_str(),
            })
            .collect();
        sqlx::query(
            "INSERT INTO memberships (mailbox_id, account_id, role, created_at) \
             SELECT t.m, t.a, t.r, $2 FROM json_to_recordset($1::json) \
             AS t(m BIGINT, a BIGINT, r TEXT)",
        )
        .bind(json(&new)?)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
