//! The statements `directory import` applies a batch of rows with (issue 18): each batch
//! looks up everything its rows name in a few `IN (…)` queries and writes its new rows with
//! multi-row INSERTs, instead of three or four statements per row — one round trip each, the
//! cost of an import on PostgreSQL. Every function splits its input so that no statement
//! binds more than [`MAX_BINDS`] values (SQLite allows 32,766, PostgreSQL 65,535).

use super::{Conn, StoreError, is_sqlite, now_ms};
use crate::accounts::{Account, AccountStatus, Mailbox};
use crate::name_keys::NameKeys;
use crate::request::Role;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// The most values one statement binds, under both backends' limits with room to spare.
const MAX_BINDS: usize = 30_000;

/// Placeholders for statements of thousands of values. PostgreSQL numbers them (`$1`); on
/// SQLite they are anonymous (`?`, bound in order): sqlx asks SQLite the name of every
/// parameter as it binds, and SQLite finds a name by walking the statement's list of names,
/// so binding n numbered parameters costs n² — most of an import's time at a few thousand
/// values a statement. Every statement here binds its values in the order they appear.
#[derive(Clone, Copy)]
struct Marks {
    sqlite: bool,
}

impl Marks {
    fn of(conn: &Conn) -> Marks {
        Marks {
            sqlite: is_sqlite(conn),
        }
    }

    /// The placeholder of the `i`-th value (from 1).
    fn one(self, i: usize) -> String {
        if self.sqlite {
            "?".to_owned()
        } else {
            format!("${i}")
        }
    }

    /// `n` placeholders from the `first`-th value, comma-separated.
    fn list(self, first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| self.one(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `(…), (…), …`: `rows` tuples of `width` placeholders each.
    fn tuples(self, rows: usize, width: usize) -> String {
        (0..rows)
            .map(|r| format!("({})", self.list(r * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

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

/// The ids of the organisations among `names`, by name; a name that is no organisation is
/// absent.
pub async fn organisations_named(
    conn: &mut Conn,
    names: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let marks = Marks::of(conn);
    let mut found = HashMap::new();
    for chunk in names.chunks(MAX_BINDS) {
        let sql = format!(
            "SELECT id, name FROM organisations WHERE name IN ({})",
            marks.list(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for name in chunk {
            q = q.bind(*name);
        }
        for row in q.fetch_all(&mut *conn).await? {
            found.insert(row.try_get("name")?, row.try_get("id")?);
        }
    }
    Ok(found)
}

/// The mailboxes among `addresses`, by address.
pub async fn mailboxes_at(
    conn: &mut Conn,
    addresses: &[&str],
) -> Result<HashMap<String, Mailbox>, StoreError> {
    let marks = Marks::of(conn);
    let mut found = HashMap::new();
    for chunk in addresses.chunks(MAX_BINDS) {
        let sql = format!(
            "SELECT m.id, m.organisation_id, o.name AS organisation, m.address \
             FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id \
             WHERE m.address IN ({})",
            marks.list(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for a in chunk {
            q = q.bind(*a);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let m = Mailbox {
                id: row.try_get("id")?,
                organisation_id: row.try_get("organisation_id")?,
                organisation: row.try_get("organisation")?,
                address: row.try_get("address")?,
            };
            found.insert(m.address.clone(), m);
        }
    }
    Ok(found)
}

/// The accounts among `addresses`, by address.
pub async fn accounts_at(
    conn: &mut Conn,
    addresses: &[&str],
) -> Result<HashMap<String, Account>, StoreError> {
    let marks = Marks::of(conn);
    let mut found = HashMap::new();
    for chunk in addresses.chunks(MAX_BINDS) {
        let sql = format!(
            "SELECT a.id, a.organisation_id, o.name AS organisation, a.address, a.name, a.status \
             FROM accounts a JOIN organisations o ON o.id = a.organisation_id \
             WHERE a.address IN ({})",
            marks.list(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for a in chunk {
            q = q.bind(*a);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let a = super::directory::account_from_row(&row)?;
            found.insert(a.address.clone(), a);
        }
    }
    Ok(found)
}

/// The roles of the memberships of `accounts` in `mailboxes`, by (mailbox id, account id).
/// `mailboxes` is bound whole in every statement: the caller keeps it to a batch's size.
pub async fn memberships_among(
    conn: &mut Conn,
    mailboxes: &[i64],
    accounts: &[i64],
) -> Result<HashMap<(i64, i64), Role>, StoreError> {
    let marks = Marks::of(conn);
    let mut found = HashMap::new();
    if mailboxes.is_empty() {
        return Ok(found);
    }
    for chunk in accounts.chunks(MAX_BINDS.saturating_sub(mailboxes.len()).max(1)) {
        let sql = format!(
            "SELECT mailbox_id, account_id, role FROM memberships \
             WHERE mailbox_id IN ({}) AND account_id IN ({})",
            marks.list(1, mailboxes.len()),
            marks.list(mailboxes.len() + 1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for m in mailboxes {
            q = q.bind(*m);
        }
        for a in chunk {
            q = q.bind(*a);
        }
        for row in q.fetch_all(&mut *conn).await? {
            found.insert(
                (row.try_get("mailbox_id")?, row.try_get("account_id")?),
                row.try_get("role")?,
            );
        }
    }
    Ok(found)
}

/// Insert organisations (none of which exists yet); their ids by name.
pub async fn insert_organisations(
    conn: &mut Conn,
    names: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let marks = Marks::of(conn);
    let mut ids = HashMap::new();
    let now = now_ms();
    for chunk in names.chunks(MAX_BINDS / 2) {
        let sql = format!(
            "INSERT INTO organisations (name, created_at) VALUES {} RETURNING id, name",
            marks.tuples(chunk.len(), 2)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for name in chunk {
            q = q.bind(*name).bind(now);
        }
        // RETURNING's order is not the VALUES' order on SQLite: each id comes with its name.
        for row in q.fetch_all(&mut *conn).await? {
            ids.insert(row.try_get("name")?, row.try_get("id")?);
        }
    }
    Ok(ids)
}

/// Insert mailboxes (organisation id, address), none of which exists yet; ids by address.
pub async fn insert_mailboxes(
    conn: &mut Conn,
    mailboxes: &[(i64, &str)],
) -> Result<HashMap<String, i64>, StoreError> {
    let marks = Marks::of(conn);
    let mut ids = HashMap::new();
    let now = now_ms();
    for chunk in mailboxes.chunks(MAX_BINDS / 3) {
        let sql = format!(
            "INSERT INTO mailboxes (organisation_id, address, created_at) VALUES {} \
             RETURNING id, address",
            marks.tuples(chunk.len(), 3)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (organisation_id, address) in chunk {
            q = q.bind(*organisation_id).bind(*address).bind(now);
        }
        for row in q.fetch_all(&mut *conn).await? {
            ids.insert(row.try_get("address")?, row.try_get("id")?);
        }
    }
    Ok(ids)
}

/// An account an import makes: no job title, no password, nothing to change at sign-in.
pub struct ImportedAccount<'a> {
    pub organisation_id: i64,
    pub address: &'a str,
    pub name: &'a str,
    pub status: AccountStatus,
}

/// Insert accounts, none of which exists yet, with their name keys as
/// [`super::directory::insert_account`] writes them; ids by address.
pub async fn insert_accounts(
    conn: &mut Conn,
    accounts: &[ImportedAccount<'_>],
) -> Result<HashMap<String, i64>, StoreError> {
    const WIDTH: usize = 9;
    let marks = Marks::of(conn);
    let mut ids = HashMap::new();
    let now = now_ms();
    for chunk in accounts.chunks(MAX_BINDS / WIDTH) {
        let values = (0..chunk.len())
            .map(|r| {
                let p = |i: usize| marks.one(r * WIDTH + i);
                format!(
                    "({}, {}, {}, NULL, {}, NULL, 0, {}, {}, {}, {}, {})",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    p(7),
                    p(8),
                    p(9)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO accounts (organisation_id, address, name, job_title, status, password_hash, \
             must_change, status_changed_at, created_at, name_key, first_key, initial_key) \
             VALUES {values} RETURNING id, address"
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
        for row in q.fetch_all(&mut *conn).await? {
            ids.insert(row.try_get("address")?, row.try_get("id")?);
        }
    }
    Ok(ids)
}

/// Insert memberships (mailbox id, account id, role), none of which exists yet.
pub async fn insert_memberships(
    conn: &mut Conn,
    memberships: &[(i64, i64, Role)],
) -> Result<(), StoreError> {
    let marks = Marks::of(conn);
    let now = now_ms();
    for chunk in memberships.chunks(MAX_BINDS / 4) {
        let sql = format!(
            "INSERT INTO memberships (mailbox_id, account_id, role, created_at) VALUES {}",
            marks.tuples(chunk.len(), 4)
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
