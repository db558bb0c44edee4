//! Helpdesk staff who may use the web page: accounts (`postroom staff add`), sessions and
//! failed sign-ins.
//!
//! Passwords are kept only as Argon2id hashes; a session is a random token in the browser's
//! cookie of which only the SHA-256 is stored. Hashing a password takes tens of milliseconds
//! of CPU on purpose, so the async functions here move it off the runtime's worker threads.

use super::journal::{self, NewAuditEvent};
use super::{Conn, Store, StoreError, now_ms};
use crate::action::AuditAction;
use crate::password;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// What a staff member may do on the staff page. An agent clears the queue (every page that
/// shows requests, messages, the directory, the audit trail and the outbox; apply, reject,
/// comment, retry a reply); an admin may also manage staff and export personal data in bulk
/// (the audit CSV). Which route needs which is one table, `web::routes` (SECURITY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    Agent,
    Admin,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Agent => "agent",
            StaffRole::Admin => "admin",
        }
    }
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StaffRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "agent" => Ok(StaffRole::Agent),
            "admin" => Ok(StaffRole::Admin),
            other => Err(format!("unknown staff role `{other}` (agent or admin)")),
        }
    }
}

/// Shortest password `staff add` accepts: a passphrase, since the page is reachable from a
/// network and guarded only by it (and by login throttling).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest name: it is shown in the audit trail and signs rejection messages.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("{0}")]
    Invalid(String),
    #[error("a staff member called `{0}` already exists")]
    Exists(String),
    #[error("no staff member called `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for StaffError {
    fn from(e: sqlx::Error) -> Self {
        StaffError::Store(StoreError::Db(e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    pub id: i64,
    pub name: String,
    pub role: StaffRole,
    pub disabled: bool,
    /// Unix ms.
    pub created_at: i64,
}

/// A staff name as stored: lower-case letters, digits, `.`, `_`, `-` (it appears in the audit
/// trail as `staff:NAME` and at the foot of rejection messages).
pub fn normalise_name(name: &str) -> Result<String, StaffError> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(StaffError::Invalid("the staff name is empty".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(StaffError::Invalid(format!(
            "a staff name has at most {MAX_NAME_CHARS} characters"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(StaffError::Invalid(format!(
            "`{name}`: a staff name uses only letters, digits, `.`, `_` and `-`"
        )));
    }
    Ok(name)
}

fn check_password(password: &str) -> Result<(), StaffError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StaffError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

async fn hash_off_thread(password: &str) -> Result<String, StaffError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| StaffError::Invalid(format!("cannot hash the password: {e}")))?
        .map_err(StaffError::Invalid)
}

fn member_from_row(r: &sqlx::any::AnyRow) -> Result<StaffMember, StaffError> {
    let disabled: i64 = r.try_get("disabled")?;
    Ok(StaffMember {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        disabled: disabled != 0,
        created_at: r.try_get("created_at")?,
    })
}

/// `postroom staff add NAME --role agent|admin`: a new staff member who can sign in with
/// `password`. Audited as `staff.added` by `cli`.
pub async fn add(
    store: &Store,
    name: &str,
    role: StaffRole,
    password: &str,
) -> Result<StaffMember, StaffError> {
    add_by(store, "cli", name, role, password).await
}

/// [`add`], audited as done by `actor` (`cli`, or `staff:NAME` from the staff page).
pub async fn add_by(
    store: &Store,
    actor: &str,
    name: &str,
    role: StaffRole,
    password: &str,
) -> Result<StaffMember, StaffError> {
    let name = normalise_name(name)?;
    check_password(password)?;
    let hash = hash_off_thread(password).await?;
    let mut tx = store.begin().await?;
    let conn: &mut Conn = &mut tx;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM staff WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Err(StaffError::Exists(name));
    }
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO staff (name, role, password_hash, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, 0, $4, $4) RETURNING id",
    )
    .bind(&name)
    .bind(role.as_str())
    .bind(&hash)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    audit(
        conn,
        actor,
        AuditAction::StaffAdded.as_str(),
        &name,
        json!({ "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(StaffMember {
        id,
        name,
        role,
        disabled: false,
        created_at: now,
    })
}

/// A new password for an existing staff member; every session they have ends.
pub async fn set_password(store: &Store, name: &str, password: &str) -> Result<(), StaffError> {
    set_password_by(store, "cli", name, password).await
}

/// [`set_password`], audited as done by `actor`.
pub async fn set_password_by(
    store: &Store,
    actor: &str,
    name: &str,
    password: &str,
) -> Result<(), StaffError> {
    let name = normalise_name(name)?;
    check_password(password)?;
    let hash = hash_off_thread(password).await?;
    let mut tx = store.begin().await?;
    let conn: &mut Conn = &mut tx;
    let id = id_of(conn, &name).await?;
    sqlx::query("UPDATE staff SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(&hash)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    end_all_sessions(conn, id).await?;
    audit(
        conn,
        actor,
        AuditAction::StaffPasswordSet.as_str(),
        &name,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Stop (or allow again) a staff member signing in; disabling ends their sessions at once.
pub async fn set_disabled(store: &Store, name: &str, disabled: bool) -> Result<(), StaffError> {
    set_disabled_by(store, "cli", name, disabled).await
}

/// [`set_disabled`], audited as done by `actor`.
pub async fn set_disabled_by(
    store: &Store,
    actor: &str,
    name: &str,
    disabled: bool,
) -> Result<(), StaffError> {
    let name = normalise_name(name)?;
    let mut tx = store.begin().await?;
    let conn: &mut Conn = &mut tx;
    let id = id_of(conn, &name).await?;
    sqlx::query("UPDATE staff SET disabled = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(i64::from(disabled))
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    if disabled {
        end_all_sessions(conn, id).await?;
    }
    let action = if disabled {
        AuditAction::StaffDisabled.as_str()
    } else {
        AuditAction::StaffEnabled.as_str()
    };
    audit(conn, actor, action, &name, json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// A new role for an existing staff member, audited as `staff.role_set` by `actor`. Takes
/// effect on their next page: the role is read with the session on every request.
pub async fn set_role_by(
    store: &Store,
    actor: &str,
    name: &str,
    role: StaffRole,
) -> Result<(), StaffError> {
    let name = normalise_name(name)?;
    let mut tx = store.begin().await?;
    let conn: &mut Conn = &mut tx;
    let id = id_of(conn, &name).await?;
    sqlx::query("UPDATE staff SET role = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    audit(
        conn,
        actor,
        AuditAction::StaffRoleSet.as_str(),
        &name,
        json!({ "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One staff member by name.
pub async fn find(store: &Store, name: &str) -> Result<Option<StaffMember>, StaffError> {
    let Ok(name) = normalise_name(name) else {
        return Ok(None);
    };
    let mut conn = store.read().await?;
    let row = sqlx::query("SELECT id, name, role, disabled, created_at FROM staff WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(member_from_row).transpose()
}

/// Every staff member, by name.
pub async fn list(store: &Store) -> Result<Vec<StaffMember>, StaffError> {
    let mut conn = store.read().await?;
    let rows = sqlx::query("SELECT id, name, role, disabled, created_at FROM staff ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(member_from_row).collect()
}

async fn id_of(conn: &mut Conn, name: &str) -> Result<i64, StaffError> {
    sqlx::query_scalar("SELECT id FROM staff WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StaffError::NotFound(name.to_owned()))
}

async fn end_all_sessions(conn: &mut Conn, staff_id: i64) -> Result<(), StaffError> {
    sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1")
        .bind(staff_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn audit(
    conn: &mut Conn,
    actor: &str,
    action: &str,
    name: &str,
    detail: serde_json::Value,
) -> Result<(), StaffError> {
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor,
            on_behalf_of: None,
            action,
            subject: Some(&format!("staff:{name}")),
            detail,
            request_id: None,
            message_id: None,
        },
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Signing in.

/// Verifying against this when the name is unknown makes an unknown name cost as much time as
/// a wrong password, so response times do not tell which staff names exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password::hash("not a real password, only for timing").unwrap_or_default());

/// The staff member if `name` and `password` match an enabled account. Runs Argon2 on a
/// blocking thread.
pub async fn verify_login(
    store: &Store,
    name: &str,
    password: &str,
) -> Result<Option<StaffMember>, StaffError> {
    let Ok(name) = normalise_name(name) else {
        return Ok(None);
    };
    let mut conn = store.read().await?;
    let row = sqlx::query(
        "SELECT id, name, role, disabled, created_at, password_hash FROM staff WHERE name = $1",
    )
    .bind(&name)
    .fetch_optional(&mut *conn)
    .await?;
    drop(conn);
    let (member, hash) = match &row {
        Some(r) => (
            Some(member_from_row(r)?),
            Some(r.try_get::<String, _>("password_hash")?),
        ),
        None => (None, None),
    };
    let password = password.to_owned();
    // The dummy hash is made on first use, on the blocking thread too (it costs an Argon2).
    let ok = tokio::task::spawn_blocking(move || {
        password::verify(&password, hash.as_deref().unwrap_or(&DUMMY_HASH))
    })
    .await
    .unwrap_or(false);
    Ok(member.filter(|m| ok && !m.disabled))
}

/// The SHA-256 of a session token, as stored.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Length of a session token: 43 characters of a 57-letter alphabet, about 250 bits.
const SESSION_TOKEN_CHARS: usize = 43;

/// Start a session for `staff_id` lasting `ttl_ms`; returns the token for the cookie (the
/// only place it is kept).
pub async fn create_session(
    store: &Store,
    staff_id: i64,
    ttl_ms: i64,
    ip: &str,
) -> Result<String, StaffError> {
    let token = password::token(SESSION_TOKEN_CHARS);
    let now = now_ms();
    let mut conn = store.read().await?;
    // Expired sessions are useless; sweeping them here keeps the table small without a timer.
    sqlx::query("DELETE FROM staff_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO staff_sessions (token_sha256, staff_id, created_at, expires_at, last_seen_at, ip) \
         VALUES ($1, $2, $3, $4, $3, $5)",
    )
    .bind(token_digest(&token))
    .bind(staff_id)
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .bind(ip)
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// The staff member a session token belongs to, if the session is live and they may still
/// sign in.
pub async fn session(store: &Store, token: &str) -> Result<Option<StaffMember>, StaffError> {
    let mut conn = store.read().await?;
    let row = sqlx::query(
        "SELECT s.id, s.name, s.role, s.disabled, s.created_at FROM staff_sessions x \
         JOIN staff s ON s.id = x.staff_id \
         WHERE x.token_sha256 = $1 AND x.expires_at > $2 AND s.disabled = 0",
    )
    .bind(token_digest(token))
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(member_from_row).transpose()
}

/// Sign out: the token stops working.
pub async fn end_session(store: &Store, token: &str) -> Result<(), StaffError> {
    let mut conn = store.read().await?;
    sqlx::query("DELETE FROM staff_sessions WHERE token_sha256 = $1")
        .bind(token_digest(token))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Failed sign-ins since `since_ms`: for this name from this address, from this address
/// for any name, and for this name from any address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    pub name_and_ip: i64,
    pub ip: i64,
    pub name: i64,
}

pub async fn recent_failures(
    store: &Store,
    name: &str,
    ip: &str,
    since_ms: i64,
) -> Result<Failures, StaffError> {
    let name = name.trim().to_ascii_lowercase();
    let mut conn = store.read().await?;
    let row = sqlx::query(
        "SELECT \
           (SELECT COUNT(*) FROM staff_login_failures WHERE name = $1 AND ip = $2 AND at >= $3) AS name_and_ip, \
           (SELECT COUNT(*) FROM staff_login_failures WHERE ip = $2 AND at >= $3) AS ip, \
           (SELECT COUNT(*) FROM staff_login_failures WHERE name = $1 AND at >= $3) AS name",
    )
    .bind(&name)
    .bind(ip)
    .bind(since_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Failures {
        name_and_ip: row.try_get("name_and_ip")?,
        ip: row.try_get("ip")?,
        name: row.try_get("name")?,
    })
}

/// Count one failed sign-in. Rows older than `forget_before_ms` go at the same time.
pub async fn record_failure(
    store: &Store,
    name: &str,
    ip: &str,
    forget_before_ms: i64,
) -> Result<(), StaffError> {
    // Whatever was typed is kept only clipped: the name field is attacker-controlled.
    let name: String = name.trim().to_ascii_lowercase().chars().take(200).collect();
    let mut conn = store.read().await?;
    sqlx::query("DELETE FROM staff_login_failures WHERE at < $1")
        .bind(forget_before_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO staff_login_failures (name, ip, at) VALUES ($1, $2, $3)")
        .bind(&name)
        .bind(ip)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A successful sign-in forgets that name's failures from that address.
pub async fn clear_failures(store: &Store, name: &str, ip: &str) -> Result<(), StaffError> {
    let mut conn = store.read().await?;
    sqlx::query("DELETE FROM staff_login_failures WHERE name = $1 AND ip = $2")
        .bind(name.trim().to_ascii_lowercase())
        .bind(ip)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The sign-in throttle (issue 13): a try is counted *before* its password is checked, in one
// transaction that reads the counts and reserves the try, so that concurrent tries (in one
// process or several, on either backend) cannot all pass the same count.

/// The throttle's limits over a sliding window (`web::auth` holds the values).
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    pub window_ms: i64,
    /// Failures for one name from one address before that pair is refused for the window.
    pub max_name_and_ip: i64,
    /// Failures from one address (any names) before it gets one try per `pause_ms`.
    pub max_ip: i64,
    /// Failures for one name (any addresses) before it gets one try per `pause_ms`.
    pub max_name: i64,
    pub pause_ms: i64,
}

/// The throttle's answer to a sign-in try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Check the password. The try is already counted as a failure (row `id`) until
    /// [`try_succeeded`] or [`withdraw_try`].
    Granted { id: i64 },
    /// Too many failures for this name from this address: refused until the oldest leaves
    /// the window.
    Locked { retry_after_ms: i64 },
    /// The address (or the name) is over its limit: it gets one try per pause, and the next
    /// one is this far away. A correct password gets in after the pause; nobody is shut out
    /// for the whole window by someone else's failures.
    Paused { retry_after_ms: i64 },
}

/// Count and reserve one sign-in try for `name` from `from`, atomically: SQLite takes the write
/// lock (`BEGIN IMMEDIATE`), PostgreSQL locks the failures table for the transaction (so
/// several instances queue too; `LOCK TABLE` before the first query, so the counts see every
/// earlier reservation).
///
/// `from` is the client's address, or for a browser known for this name (`web::auth`) that
/// browser (`browser:ID`), with `shared = false`: its tries then count only against itself
/// (the per-`from` limit), not against the address's or the name's limits that other people's
/// failures fill.
pub async fn reserve_try(
    store: &Store,
    name: &str,
    from: &str,
    shared: bool,
    limits: ThrottleLimits,
) -> Result<Reservation, StaffError> {
    // Whatever was typed is kept only clipped: the name field is attacker-controlled.
    let name: String = name.trim().to_ascii_lowercase().chars().take(200).collect();
    let ip: String = from.chars().take(64).collect();
    match store.backend() {
        super::Backend::Sqlite => {
            let mut tx = store.begin().await?;
            let r = reserve_in(&mut tx, &name, &ip, shared, limits).await?;
            tx.commit().await?;
            Ok(r)
        }
        super::Backend::Postgres => {
            let mut tx = store.pool().begin().await?;
            sqlx::query("LOCK TABLE staff_login_failures IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            let r = reserve_in(&mut tx, &name, &ip, shared, limits).await?;
            tx.commit().await?;
            Ok(r)
        }
    }
}

async fn reserve_in(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    ip: &str,
    shared: bool,
    l: ThrottleLimits,
) -> Result<Reservation, StaffError> {
    let now = now_ms();
    let since = now.saturating_sub(l.window_ms);
    sqlx::query("DELETE FROM staff_login_failures WHERE at < $1")
        .bind(since)
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(
        "SELECT \
           (SELECT COUNT(*) FROM staff_login_failures WHERE name = $1 AND ip = $2 AND at >= $3) AS pair, \
           (SELECT MIN(at) FROM staff_login_failures WHERE name = $1 AND ip = $2 AND at >= $3) AS pair_oldest, \
           (SELECT COUNT(*) FROM staff_login_failures WHERE ip = $2 AND at >= $3) AS from_ip, \
           (SELECT MAX(at) FROM staff_login_failures WHERE ip = $2 AND at >= $3) AS ip_latest, \
           (SELECT COUNT(*) FROM staff_login_failures WHERE name = $1 AND at >= $3) AS for_name, \
           (SELECT MAX(at) FROM staff_login_failures WHERE name = $1 AND at >= $3) AS name_latest",
    )
    .bind(name)
    .bind(ip)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    let pair: i64 = row.try_get("pair")?;
    let pair_oldest: Option<i64> = row.try_get("pair_oldest")?;
    let from_ip: i64 = row.try_get("from_ip")?;
    let ip_latest: Option<i64> = row.try_get("ip_latest")?;
    let for_name: i64 = row.try_get("for_name")?;
    let name_latest: Option<i64> = row.try_get("name_latest")?;
    if pair >= l.max_name_and_ip {
        let until = pair_oldest.unwrap_or(now).saturating_add(l.window_ms);
        return Ok(Reservation::Locked {
            retry_after_ms: until.saturating_sub(now).max(1),
        });
    }
    let wait = |count: i64, max: i64, latest: Option<i64>| {
        (shared && count >= max)
            .then(|| {
                latest
                    .unwrap_or(0)
                    .saturating_add(l.pause_ms)
                    .saturating_sub(now)
            })
            .filter(|w| *w > 0)
    };
    let paused = [
        wait(from_ip, l.max_ip, ip_latest),
        wait(for_name, l.max_name, name_latest),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(retry_after_ms) = paused {
        return Ok(Reservation::Paused { retry_after_ms });
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO staff_login_failures (name, ip, at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(ip)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Reservation::Granted { id })
}

/// The reserved try signed in: it is no failure, and that name's failures from that address
/// are forgotten.
pub async fn try_succeeded(store: &Store, id: i64, name: &str, ip: &str) -> Result<(), StaffError> {
    withdraw_try(store, id).await?;
    clear_failures(store, name, ip).await
}

/// The reserved try was never checked (the server was too busy): it does not count.
pub async fn withdraw_try(store: &Store, id: i64) -> Result<(), StaffError> {
    let mut conn = store.read().await?;
    sqlx::query("DELETE FROM staff_login_failures WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The staff page's signing key called `name`, made (random) on first use and shared by every
/// instance through the database.
pub async fn web_key(store: &Store, name: &str) -> Result<String, StaffError> {
    let mut conn = store.read().await?;
    let select = "SELECT key FROM web_keys WHERE name = $1";
    if let Some(key) = sqlx::query_scalar::<_, String>(select)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(key);
    }
    // Two instances starting together: one insert wins, both read the winner.
    sqlx::query(
        "INSERT INTO web_keys (name, key, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(password::token(64))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_scalar(select)
        .bind(name)
        .fetch_one(&mut *conn)
        .await?)
}
