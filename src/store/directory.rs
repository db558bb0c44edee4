//! Organisations, shared mailboxes, accounts and who is a member or owner of what.

use super::{Conn, StoreError, is_sqlite, now_ms, placeholders};
use crate::name_keys::NameKeys;
use crate::request::Role;
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

// The directory's own types are the domain's (`accounts.rs`): the rules read them without
// importing the store.
pub use crate::accounts::{Account, AccountStatus, Mailbox, MailboxSummary, Membership};

pub(super) fn mailbox_from_row(row: &sqlx::any::AnyRow) -> Result<Mailbox, StoreError> {
    Ok(Mailbox {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        organisation: row.try_get("organisation")?,
        address: row.try_get("address")?,
    })
}

pub(super) fn account_from_row(row: &sqlx::any::AnyRow) -> Result<Account, StoreError> {
    Ok(Account {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        organisation: row.try_get("organisation")?,
        address: row.try_get("address")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
    })
}

fn membership_from_row(row: &sqlx::any::AnyRow) -> Result<Membership, StoreError> {
    Ok(Membership {
        mailbox_id: row.try_get("mailbox_id")?,
        mailbox: row.try_get("mailbox")?,
        account_id: row.try_get("account_id")?,
        account: row.try_get("account")?,
        account_status: row.try_get("account_status")?,
        role: row.try_get("role")?,
    })
}

pub async fn find_mailbox(conn: &mut Conn, address: &str) -> Result<Option<Mailbox>, StoreError> {
    let row = sqlx::query(
        "SELECT m.id, m.organisation_id, o.name AS organisation, m.address \
         FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id WHERE m.address = $1",
    )
    .bind(address)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(mailbox_from_row).transpose()
}

pub async fn list_mailboxes(conn: &mut Conn) -> Result<Vec<Mailbox>, StoreError> {
    let rows = sqlx::query(
        "SELECT m.id, m.organisation_id, o.name AS organisation, m.address \
         FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id ORDER BY o.name, m.address",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(mailbox_from_row).collect()
}

pub async fn find_account(conn: &mut Conn, address: &str) -> Result<Option<Account>, StoreError> {
    let row = sqlx::query(
        "SELECT a.id, a.organisation_id, o.name AS organisation, a.address, a.name, a.status \
         FROM accounts a JOIN organisations o ON o.id = a.organisation_id WHERE a.address = $1",
    )
    .bind(address)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(account_from_row).transpose()
}

const MEMBERSHIP_SELECT_BY_MAILBOX: &str = "SELECT ms.mailbox_id, m.address AS mailbox, ms.account_id, \
     a.address AS account, a.status AS account_status, ms.role \
     FROM memberships ms JOIN mailboxes m ON m.id = ms.mailbox_id JOIN accounts a ON a.id = ms.account_id \
     WHERE ms.mailbox_id = $1 ORDER BY a.address";

/// Members and owners of one mailbox.
pub async fn mailbox_members(
    conn: &mut Conn,
    mailbox_id: i64,
) -> Result<Vec<Membership>, StoreError> {
    let rows = sqlx::query(MEMBERSHIP_SELECT_BY_MAILBOX)
        .bind(mailbox_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(membership_from_row).collect()
}

/// Every mailbox an account belongs to.
pub async fn account_memberships(
    conn: &mut Conn,
    account_id: i64,
) -> Result<Vec<Membership>, StoreError> {
    let rows = sqlx::query(
        "SELECT ms.mailbox_id, m.address AS mailbox, ms.account_id, a.address AS account, \
         a.status AS account_status, ms.role \
         FROM memberships ms JOIN mailboxes m ON m.id = ms.mailbox_id JOIN accounts a ON a.id = ms.account_id \
         WHERE ms.account_id = $1 ORDER BY m.address",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(membership_from_row).collect()
}

fn summary_sql() -> &'static str {
    "SELECT m.id, m.organisation_id, o.name AS organisation, m.address, \
     m.members_active + m.owners_active + m.members_inactive + m.owners_inactive AS members, \
     m.owners_active + m.owners_inactive AS owners \
     FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id \
     WHERE m.address = $1"
}

/// A mailbox with how many members (of any role) and owners it has, in ONE query: what the
/// rules need of a mailbox besides the roles of the accounts a message names. The counts are
/// the ones migration 0160's triggers keep on the mailbox row (active and not), so a
/// 200-member mailbox is one row read, not 200 memberships.
pub async fn find_mailbox_summary(
    conn: &mut Conn,
    address: &str,
) -> Result<Option<MailboxSummary>, StoreError> {
    let row = sqlx::query(summary_sql())
        .bind(address)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        Ok(MailboxSummary {
            mailbox: mailbox_from_row(&r)?,
            members: r.try_get("members")?,
            owners: r.try_get("owners")?,
        })
    })
    .transpose()
}

/// The accounts among `addresses`, each with every mailbox it belongs to and that mailbox's
/// summary (its counts, as [`find_mailbox_summary`] reads them), in ONE query (each statement
/// is a round trip): keyed by address; an address that is no account is absent. The rules
/// look at every mailbox of the accounts a message names; each one that was not the sender's
/// cost a query of its own before (one or two per unlock in PostgreSQL's statement log of the
/// national bench's tiny run).
pub async fn find_accounts_with_memberships(
    conn: &mut Conn,
    addresses: &[String],
) -> Result<HashMap<String, AccountMemberships>, StoreError> {
    let mut found: HashMap<String, AccountMemberships> = HashMap::new();
    if addresses.is_empty() {
        return Ok(found);
    }
    let sql = format!(
        "SELECT a.id, a.organisation_id, o.name AS organisation, a.address, a.name, a.status, \
         ms.mailbox_id, m.address AS mailbox, ms.role, \
         m.organisation_id AS mailbox_organisation_id, mo.name AS mailbox_organisation, \
         m.members_active + m.owners_active + m.members_inactive + m.owners_inactive AS mailbox_members, \
         m.owners_active + m.owners_inactive AS mailbox_owners \
         FROM accounts a JOIN organisations o ON o.id = a.organisation_id \
         LEFT JOIN memberships ms ON ms.account_id = a.id LEFT JOIN mailboxes m ON m.id = ms.mailbox_id \
         LEFT JOIN organisations mo ON mo.id = m.organisation_id \
         WHERE a.address IN ({}) ORDER BY a.address, m.address",
        placeholders(1, addresses.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a.as_str());
    }
    for row in q.fetch_all(&mut *conn).await? {
        let address: String = row.try_get("address")?;
        let (account, memberships) = match found.entry(address) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert((account_from_row(&row)?, Vec::new())),
        };
        // An account in no mailbox still gives one row, its membership columns NULL.
        let Some(mailbox_id) = row.try_get::<Option<i64>, _>("mailbox_id")? else {
            continue;
        };
        let mailbox: String = row.try_get("mailbox")?;
        let summary = MailboxSummary {
            mailbox: Mailbox {
                id: mailbox_id,
                organisation_id: row.try_get("mailbox_organisation_id")?,
                organisation: row.try_get("mailbox_organisation")?,
                address: mailbox.clone(),
            },
            members: row.try_get("mailbox_members")?,
            owners: row.try_get("mailbox_owners")?,
        };
        memberships.push((
            Membership {
                mailbox_id,
                mailbox,
                account_id: account.id,
                account: account.address.clone(),
                account_status: account.status,
                role: row.try_get("role")?,
            },
            summary,
        ));
    }
    Ok(found)
}

/// An account with each of its memberships and the summary of that membership's mailbox.
pub type AccountMemberships = (Account, Vec<(Membership, MailboxSummary)>);

/// True when the address is already used by an account or a mailbox.
pub async fn address_taken(conn: &mut Conn, address: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM accounts WHERE address = $1) + (SELECT COUNT(*) FROM mailboxes WHERE address = $1)",
    )
    .bind(address)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

pub async fn count_accounts_in_organisation(
    conn: &mut Conn,
    organisation_id: i64,
) -> Result<i64, StoreError> {
    // Kept by triggers (migrations 0161, 0190): no index names an account's status, so that a
    // status change leaves the account's indexes alone (a HOT update on PostgreSQL).
    Ok(sqlx::query_scalar(
        "SELECT account_count - disabled_account_count FROM organisations WHERE id = $1",
    )
    .bind(organisation_id)
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or(0))
}

/// How many owners a mailbox has, whatever their accounts' status.
pub async fn count_owners(conn: &mut Conn, mailbox_id: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE mailbox_id = $1 AND role = 'owner'",
    )
    .bind(mailbox_id)
    .fetch_one(&mut *conn)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Writes used by applied requests (the import writes in batches: `directory_batch`).

/// New account fields.
pub struct NewAccount<'a> {
    pub organisation_id: i64,
    pub address: &'a str,
    pub name: &'a str,
    pub job_title: Option<&'a str>,
    pub status: AccountStatus,
    pub password_hash: Option<&'a str>,
    pub must_change: bool,
}

pub async fn insert_account(conn: &mut Conn, a: &NewAccount<'_>) -> Result<i64, StoreError> {
    let now = now_ms();
    let keys = NameKeys::of(a.name);
    Ok(sqlx::query_scalar(
        "INSERT INTO accounts (organisation_id, address, name, job_title, status, password_hash, must_change, \
         status_changed_at, created_at, name_key, first_key, initial_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) RETURNING id",
    )
    .bind(a.organisation_id)
    .bind(a.address)
    .bind(a.name)
    .bind(a.job_title)
    .bind(a.status.as_str())
    .bind(a.password_hash)
    .bind(i64::from(a.must_change))
    .bind(now)
    .bind(keys.full)
    .bind(keys.first)
    .bind(keys.initial)
    .fetch_one(&mut *conn)
    .await?)
}

/// Which of an account's name keys a look-up compares (see `resolve::NameKeys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    Full,
    First,
    Initial,
}

/// Addresses of the accounts of an organisation (or of the members of one of its mailboxes)
/// whose name key equals `key`; at most `limit`, by address. Uses the per-organisation
/// indexes of migration 0040.
pub async fn find_accounts_by_name(
    conn: &mut Conn,
    organisation_id: i64,
    mailbox_id: Option<i64>,
    column: NameMatch,
    key: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let sql = by_name_sql(column, mailbox_id.is_some());
    let mut q = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(organisation_id)
        .bind(key)
        .bind(limit);
    if let Some(m) = mailbox_id {
        q = q.bind(m);
    }
    Ok(q.fetch_all(&mut *conn).await?)
}

/// The look-up of [`find_accounts_by_name`]: `$1` organisation, `$2` key, `$3` limit, `$4`
/// mailbox when `in_mailbox`. Migration 0170's indexes hold the address after the key, so the
/// organisation-wide form reads the first matches in address order from the index alone.
fn by_name_sql(column: NameMatch, in_mailbox: bool) -> String {
    // The column is chosen from a closed set, never from input.
    let column = match column {
        NameMatch::Full => "name_key",
        NameMatch::First => "first_key",
        NameMatch::Initial => "initial_key",
    };
    if in_mailbox {
        format!(
            "SELECT a.address FROM accounts a JOIN memberships ms ON ms.account_id = a.id \
             WHERE a.organisation_id = $1 AND a.{column} = $2 AND ms.mailbox_id = $4 \
             ORDER BY a.address LIMIT $3"
        )
    } else {
        format!(
            "SELECT a.address FROM accounts a WHERE a.organisation_id = $1 AND a.{column} = $2 \
             ORDER BY a.address LIMIT $3"
        )
    }
}

/// Store an account's name keys (after its name changed).
pub async fn set_name_keys(conn: &mut Conn, account_id: i64, name: &str) -> Result<(), StoreError> {
    let keys = NameKeys::of(name);
    sqlx::query(
        "UPDATE accounts SET name_key = $2, first_key = $3, initial_key = $4 WHERE id = $1",
    )
    .bind(account_id)
    .bind(keys.full)
    .bind(keys.first)
    .bind(keys.initial)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Key the accounts that have no name keys yet (written before migration 0040), a batch at a
/// time; returns how many were keyed.
pub async fn key_unkeyed_accounts(conn: &mut Conn, batch: i64) -> Result<u64, StoreError> {
    let rows =
        sqlx::query("SELECT id, name FROM accounts WHERE name_key IS NULL ORDER BY id LIMIT $1")
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?;
    let mut keyed = 0;
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let name: String = row.try_get("name")?;
        set_name_keys(conn, id, &name).await?;
        keyed += 1;
    }
    Ok(keyed)
}

pub async fn set_status(
    conn: &mut Conn,
    account_id: i64,
    status: AccountStatus,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE accounts SET status = $2, status_changed_at = $3 WHERE id = $1")
        .bind(account_id)
        .bind(status.as_str())
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A new temporary password: the account must change it at next sign-in, and it is unlocked.
pub async fn set_temporary_password(
    conn: &mut Conn,
    account_id: i64,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, must_change = 1, \
         status_changed_at = CASE WHEN status <> 'active' THEN $3 ELSE status_changed_at END, status = 'active' \
         WHERE id = $1",
    )
    .bind(account_id)
    .bind(hash)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Add a membership or change its role. Returns the previous role, if there was one.
pub async fn upsert_membership(
    conn: &mut Conn,
    mailbox_id: i64,
    account_id: i64,
    role: Role,
) -> Result<Option<Role>, StoreError> {
    let previous: Option<Role> = sqlx::query_scalar(
        "SELECT role FROM memberships WHERE mailbox_id = $1 AND account_id = $2",
    )
    .bind(mailbox_id)
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    match &previous {
        Some(_) => {
            sqlx::query(
                "UPDATE memberships SET role = $3 WHERE mailbox_id = $1 AND account_id = $2",
            )
            .bind(mailbox_id)
            .bind(account_id)
            .bind(role.as_str())
            .execute(&mut *conn)
            .await?;
        }
        None => insert_membership(conn, mailbox_id, account_id, role).await?,
    }
    Ok(previous)
}

/// A membership known to be new (its account was just made): one statement, no look-up.
pub async fn insert_membership(
    conn: &mut Conn,
    mailbox_id: i64,
    account_id: i64,
    role: Role,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memberships (mailbox_id, account_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(mailbox_id)
    .bind(account_id)
    .bind(role.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn remove_membership(
    conn: &mut Conn,
    mailbox_id: i64,
    account_id: i64,
) -> Result<bool, StoreError> {
    let r = sqlx::query("DELETE FROM memberships WHERE mailbox_id = $1 AND account_id = $2")
        .bind(mailbox_id)
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// One row of `directory export`. The role and the status stay text: the rows of an account
/// or a mailbox without a membership have none (`''`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, sqlx::FromRow)]
pub struct ExportRow {
    pub organisation: String,
    pub mailbox: String,
    pub account: String,
    pub name: String,
    pub role: String,
    pub status: String,
}

/// The whole directory as rows: one per membership, one per account without any, one per
/// mailbox without any, sorted — so that `import` of an `export` changes nothing.
pub async fn export_rows(conn: &mut Conn) -> Result<Vec<ExportRow>, StoreError> {
    let mut out = Vec::new();
    for_each_export_row(conn, |row| {
        out.push(row);
        Ok::<_, StoreError>(())
    })
    .await?;
    Ok(out)
}

/// [`export_rows`] one row at a time, in the same order, to `each`: memory stays flat
/// however large the directory (the database sorts; issue 18). The order is by bytes, as
/// Rust sorts strings: PostgreSQL is told so (`COLLATE "C"`), SQLite compares bytes already.
pub async fn for_each_export_row<E: From<StoreError>>(
    conn: &mut Conn,
    mut each: impl FnMut(ExportRow) -> Result<(), E>,
) -> Result<(), E> {
    let order = if is_sqlite(conn) {
        "organisation, mailbox, account, name, role, status"
    } else {
        "organisation COLLATE \"C\", mailbox COLLATE \"C\", account COLLATE \"C\", \
         name COLLATE \"C\", role COLLATE \"C\", status COLLATE \"C\""
    };
    let sql = format!(
        "SELECT organisation, mailbox, account, name, role, status FROM ( \
         SELECT o.name AS organisation, m.address AS mailbox, a.address AS account, a.name AS name, \
                ms.role AS role, a.status AS status \
         FROM memberships ms JOIN mailboxes m ON m.id = ms.mailbox_id JOIN accounts a ON a.id = ms.account_id \
              JOIN organisations o ON o.id = m.organisation_id \
         UNION ALL \
         SELECT o.name, '', a.address, a.name, '', a.status FROM accounts a JOIN organisations o ON o.id = a.organisation_id \
         WHERE NOT EXISTS (SELECT 1 FROM memberships ms WHERE ms.account_id = a.id) \
         UNION ALL \
         SELECT o.name, m.address, '', '', '', '' FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id \
         WHERE NOT EXISTS (SELECT 1 FROM memberships ms WHERE ms.mailbox_id = m.id) \
         UNION ALL \
         SELECT o.name, '', '', '', '', '' FROM organisations o \
         WHERE NOT EXISTS (SELECT 1 FROM mailboxes m WHERE m.organisation_id = o.id) \
           AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.organisation_id = o.id) \
         ) d ORDER BY {order}"
    );
    let mut rows = sqlx::query_as::<_, ExportRow>(AssertSqlSafe(sql)).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.map_err(StoreError::from)? {
        each(row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn plan(sql: &str, texts: usize, ints: usize) -> String {
        let store = Store::in_memory().await;
        crate::store::sqlite_plan(&store, sql, texts, ints).await
    }

    /// A name resolves from its index (issue 18): the organisation's matches in address order,
    /// no row read and no sort, so a common first name in a large trust costs six index
    /// entries, not hundreds of rows.
    #[tokio::test]
    async fn a_name_resolves_from_the_index_alone() {
        for (column, index) in [
            (NameMatch::Full, "accounts_name_key"),
            (NameMatch::First, "accounts_first_key"),
            (NameMatch::Initial, "accounts_initial_key"),
        ] {
            // SQLite's plan does not depend on the values bound.
            let p = plan(&by_name_sql(column, false), 1, 2).await;
            assert!(p.contains(&format!("USING COVERING INDEX {index}")), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
    }

    /// What the rules read of a mailbox is its own row: the counts are kept on it (migration
    /// 0160), not counted from its memberships.
    #[tokio::test]
    async fn a_mailbox_summary_reads_no_membership() {
        let p = plan(summary_sql(), 1, 0).await;
        assert!(p.contains("SEARCH m USING INDEX"), "{p}");
        assert!(!p.contains("memberships"), "{p}");
    }
}
