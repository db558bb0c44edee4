//! What happened: stored messages, requests, comments, the append-only audit trail, and the
//! outbox of replies waiting for the SMTP sender.

use super::{Conn, StoreError, format_ms, now_ms};
use crate::outcome::Outcome;
use crate::reason::Reason;
use crate::request::RequestKind;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

/// A message already stored, found by Message-ID or by the SHA-256 of its bytes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SeenMessage {
    pub id: i64,
    pub reference: Option<String>,
    /// What became of it: the message's own outcome, else its request's.
    pub outcome: Option<Outcome>,
    /// Where it came from (`messages.source`).
    pub source: String,
}

pub async fn find_seen_message(
    conn: &mut Conn,
    message_id: Option<&str>,
    sha256: &str,
) -> Result<Option<SeenMessage>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.id, r.reference, COALESCE(m.outcome, r.outcome) AS outcome, m.source AS source FROM messages m \
         LEFT JOIN requests r ON r.id = COALESCE(m.request_id, (SELECT r2.id FROM requests r2 WHERE r2.message_id = m.id LIMIT 1)) \
         WHERE m.sha256 = $1 OR (CAST($2 AS TEXT) IS NOT NULL AND m.message_id = $2) ORDER BY m.id LIMIT 1",
    )
    .bind(sha256)
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Remember what became of a stored message (see migration 0006).
pub async fn set_message_outcome(conn: &mut Conn, filing: &Filing<'_>) -> Result<(), StoreError> {
    bind_filing(sqlx::query(AssertSqlSafe(filing_update(1))), Some(filing))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub struct NewMessage<'a> {
    pub message_id: Option<&'a str>,
    pub sha256: &'a str,
    pub raw: &'a [u8],
    pub from_address: Option<&'a str>,
    pub subject: &'a str,
    /// Where it came from: `file:NAME` or `imap:MAILBOX/FOLDER/UID`.
    pub source: &'a str,
}

/// Store a message unless one with the same bytes (SHA-256) or Message-ID is stored already
/// (both are unique, see migration 0001): `None` then, and nothing is written. One statement
/// where a look-up and an insert would be two; and two instances on one PostgreSQL database
/// that take the same message at once see a duplicate rather than a constraint error.
pub async fn insert_message_if_new(
    conn: &mut Conn,
    m: &NewMessage<'_>,
) -> Result<Option<i64>, StoreError> {
    let size = i64::try_from(m.raw.len()).unwrap_or(i64::MAX);
    Ok(sqlx::query_scalar(
        "INSERT INTO messages (message_id, sha256, raw, size, from_address, subject, source, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(m.message_id)
    .bind(m.sha256)
    .bind(m.raw.to_vec())
    .bind(size)
    .bind(m.from_address)
    .bind(m.subject)
    .bind(m.source)
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?)
}

pub struct NewRequest<'a> {
    pub message_id: i64,
    pub kind: &'a str,
    pub outcome: &'a str,
    /// Stored twice: its code (`reason`, for queries) and whole (`reason_json`).
    pub reason: Option<&'a Reason>,
    pub mailbox: Option<&'a str>,
    pub requester: Option<&'a str>,
    pub target: Option<&'a str>,
    pub fields_json: &'a str,
    /// The message's sender, as stored with it: a term the request is found by.
    pub from_address: Option<&'a str>,
}

/// Insert a request, give it its reference (`HD-000042` from its row id) and write the terms
/// it is found by (`request_mentions`), in one round trip: the id is chosen first and the
/// reference written with the row, not by a second UPDATE, and the terms go with it.
pub async fn insert_request(
    conn: &mut Conn,
    r: &NewRequest<'_>,
    reference_prefix: &str,
) -> Result<(i64, String), StoreError> {
    let now = now_ms();
    let reason_json = reason_json(r.reason)?;
    let terms = super::mentions::new_terms(
        &[r.mailbox, r.requester, r.target, r.from_address],
        r.fields_json,
    );
    // `$12` on: one per term.
    let term_rows = (0..terms.len())
        .map(|i| format!("(${})", 12 + i))
        .collect::<Vec<_>>()
        .join(", ");
    const COLUMNS: &str = "message_id, kind, outcome, reason, reason_json, mailbox, requester, target, fields, created_at, updated_at";
    const VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10";
    let sql = if super::is_sqlite(conn) {
        // Inside the write transaction the new row's id is the largest plus one, which is the
        // id SQLite itself gives a rowid table without AUTOINCREMENT
        // (https://www.sqlite.org/autoinc.html); after the insert it is the largest. The
        // terms are a second statement in the same query string: sqlx runs both on its
        // worker thread in one command.
        let insert = format!(
            "INSERT INTO requests (id, reference, {COLUMNS}) \
             SELECT n.id, $11 || '-' || printf('%06d', n.id), {VALUES} \
             FROM (SELECT COALESCE(MAX(id), 0) + 1 AS id FROM requests) n RETURNING id, reference"
        );
        if terms.is_empty() {
            insert
        } else {
            format!(
                "{insert}; INSERT INTO request_mentions (term, request_id) \
                 SELECT t.column1, (SELECT MAX(id) FROM requests) FROM (VALUES {term_rows}) t"
            )
        }
    } else {
        // The id the column's default would have taken. lpad cuts a longer string to the
        // length given, so the length is never below the number's own. The terms' insert
        // reads the new row from the WITH; its foreign key is checked at the statement's end.
        let insert = format!(
            "INSERT INTO requests (id, reference, {COLUMNS}) \
             SELECT n.id, $11 || '-' || lpad(CAST(n.id AS TEXT), GREATEST(6, length(CAST(n.id AS TEXT))), '0'), \
             {VALUES} FROM (SELECT nextval(pg_get_serial_sequence('requests', 'id')) AS id) n \
             RETURNING id, reference"
        );
        if terms.is_empty() {
            insert
        } else {
            format!(
                "WITH r AS ({insert}), t AS (INSERT INTO request_mentions (term, request_id) \
                 SELECT t.term, r.id FROM r, (VALUES {term_rows}) t(term)) \
                 SELECT id, reference FROM r"
            )
        }
    };
    let mut q =
        bind_request(sqlx::query(AssertSqlSafe(sql)), r, reason_json, now).bind(reference_prefix);
    for t in &terms {
        q = q.bind(t.as_str());
    }
    // Every row, not the first: fetching one would stop SQLite's worker before the second
    // statement (sqlx's fetch_optional runs a query string only to its first row).
    let rows = q.fetch_all(&mut *conn).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Invalid("inserting a request returned no row".into()))?;
    Ok((row.try_get("id")?, row.try_get("reference")?))
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// The first ten parameters of a new request, in `insert_request`'s order.
fn bind_request<'q>(
    q: AnyQuery<'q>,
    r: &NewRequest<'q>,
    reason_json: Option<String>,
    now: i64,
) -> AnyQuery<'q> {
    q.bind(r.message_id)
        .bind(r.kind)
        .bind(r.outcome)
        .bind(r.reason.map(Reason::code))
        .bind(reason_json)
        .bind(r.mailbox)
        .bind(r.requester)
        .bind(r.target)
        .bind(r.fields_json)
        .bind(now)
}

/// A reason as `requests.reason_json` keeps it (migration 0110).
fn reason_json(reason: Option<&Reason>) -> Result<Option<String>, StoreError> {
    reason
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Invalid(format!("cannot serialize the reason: {e}")))
}

/// A stored request, as the CLI, the staff page and thread replies need it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    pub id: i64,
    pub reference: String,
    pub message_id: i64,
    pub kind: RequestKind,
    pub outcome: Outcome,
    /// The reason's code ([`Reason::code`]).
    pub reason: Option<String>,
    /// The reason whole, as JSON ([`Reason`] serialized), exactly as the site was told it;
    /// `None` for requests recorded before migration 0110. Read by the staff page
    /// (`web::reasons`); not part of the CLI's output.
    #[serde(skip)]
    pub reason_json: Option<String>,
    pub mailbox: Option<String>,
    pub requester: Option<String>,
    pub target: Option<String>,
    pub fields: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A column that holds one of the closed sets (a kind, an outcome) read back as it: a value
/// the code does not know is an error that names it, not a silent `Unknown`.
fn closed<T: std::str::FromStr<Err = String>>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|e| StoreError::Invalid(format!("requests.{column}: {e}")))
}

fn request_from_row(r: &sqlx::any::AnyRow) -> Result<RequestRow, StoreError> {
    Ok(RequestRow {
        id: r.try_get("id")?,
        reference: r
            .try_get::<Option<String>, _>("reference")?
            .unwrap_or_default(),
        message_id: r.try_get("message_id")?,
        kind: closed("kind", &r.try_get::<String, _>("kind")?)?,
        outcome: closed("outcome", &r.try_get::<String, _>("outcome")?)?,
        reason: r.try_get("reason")?,
        reason_json: r.try_get("reason_json")?,
        mailbox: r.try_get("mailbox")?,
        requester: r.try_get("requester")?,
        target: r.try_get("target")?,
        fields: r.try_get("fields")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub async fn find_request(
    conn: &mut Conn,
    reference: &str,
) -> Result<Option<RequestRow>, StoreError> {
    let row = sqlx::query(
        "SELECT id, reference, message_id, kind, outcome, reason, reason_json, mailbox, requester, target, fields, created_at, updated_at \
         FROM requests WHERE reference = $1",
    )
    .bind(reference)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(request_from_row).transpose()
}

pub async fn insert_comment(
    conn: &mut Conn,
    request_id: i64,
    message_id: Option<i64>,
    author: &str,
    body: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO comments (request_id, message_id, author, body, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(request_id)
    .bind(message_id)
    .bind(author)
    .bind(body)
    .bind(now_ms())
    .fetch_one(&mut *conn)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Audit trail.

/// One audit event: who did what, on whose behalf, to what, because of which message.
///
/// The action stays the text stored: the trail is read as written, and may hold acts this
/// build does not know (written by another version sharing the database, or by a test);
/// whoever reads the trail sees every event rather than an error.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// The person (account address), `staff:NAME`, or `postroom` for automatic acts.
    pub actor: String,
    /// The shared mailbox the request came from.
    pub on_behalf_of: Option<String>,
    pub action: String,
    /// The account or mailbox acted on.
    pub subject: Option<String>,
    pub detail: serde_json::Value,
    pub reference: Option<String>,
    pub message_id: Option<i64>,
}

/// An audit event as its readers select it: `e.id, e.at, e.actor, e.on_behalf_of, e.action,
/// e.subject, e.detail, r.reference, e.message_id`.
pub(super) fn audit_from_row(r: &sqlx::any::AnyRow) -> Result<AuditEvent, sqlx::Error> {
    let detail: String = r.try_get("detail")?;
    Ok(AuditEvent {
        id: r.try_get("id")?,
        at: format_ms(r.try_get("at")?),
        actor: r.try_get("actor")?,
        on_behalf_of: r.try_get("on_behalf_of")?,
        action: r.try_get("action")?,
        subject: r.try_get("subject")?,
        // A detail that is not JSON (never written so, but the trail is shown as it is) is
        // shown as its text.
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        reference: r.try_get("reference")?,
        message_id: r.try_get("message_id")?,
    })
}

pub struct NewAuditEvent<'a> {
    pub actor: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub detail: serde_json::Value,
    pub request_id: Option<i64>,
    pub message_id: Option<i64>,
}

pub async fn insert_audit(conn: &mut Conn, e: &NewAuditEvent<'_>) -> Result<(), StoreError> {
    insert_audits(conn, std::slice::from_ref(e)).await
}

/// Several audit events in ONE statement, in order (their ids, and so the order the trail
/// shows, follow the slice). A request that is applied writes its own event and one per part
/// of the change together.
///
/// Each event is chained (`audit::chain`): it stores its place, the previous event's hash and
/// its own, computed here after taking the chain's head in the same transaction (a caller
/// outside a transaction gets one for the head and the events together).
pub async fn insert_audits(
    conn: &mut Conn,
    events: &[NewAuditEvent<'_>],
) -> Result<(), StoreError> {
    let appends: Vec<crate::audit::chain::Append<'_>> = events
        .iter()
        .map(|e| crate::audit::chain::Append {
            actor: e.actor,
            on_behalf_of: e.on_behalf_of,
            action: e.action,
            subject: e.subject,
            detail: e.detail.to_string(),
            request_id: e.request_id,
            message_id: e.message_id,
        })
        .collect();
    crate::audit::chain::append(conn, now_ms(), &appends).await
}

/// Audit events at or after `since_ms`, oldest first.
pub async fn list_audit(
    conn: &mut Conn,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.id, e.at, e.actor, e.on_behalf_of, e.action, e.subject, e.detail, r.reference, e.message_id \
         FROM audit_events e LEFT JOIN requests r ON r.id = e.request_id \
         WHERE e.at >= $1 ORDER BY e.id LIMIT $2",
    )
    .bind(since_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(audit_from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

// ---------------------------------------------------------------------------------------------
// Outbox.

pub struct NewOutboxItem<'a> {
    pub request_id: Option<i64>,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: Option<&'a str>,
    pub secret: Option<&'a str>,
}

pub async fn enqueue_reply(conn: &mut Conn, o: &NewOutboxItem<'_>) -> Result<i64, StoreError> {
    enqueue_reply_filing(conn, o, None).await
}

/// What becomes of the message a reply answers ([`set_message_outcome`]), written by the
/// statement that queues the reply: the pipeline's last two writes of a message in one round
/// trip instead of two.
pub struct Filing<'a> {
    pub message_id: i64,
    pub outcome: &'a str,
    pub request_id: Option<i64>,
}

/// `sql` preceded by `filing`'s `UPDATE messages`, whose three parameters are numbered from
/// `first`. PostgreSQL: a data-modifying `WITH`, which runs whatever the statement it leads
/// does (also when a capped INSERT inserts nothing). SQLite: two statements in one query
/// string, which sqlx runs in turn on its worker, each with the numbered parameters it names;
/// the UPDATE first, so the rows returned are the INSERT's.
fn with_filing(conn: &Conn, filing: Option<&Filing<'_>>, first: usize, sql: &str) -> String {
    if filing.is_none() {
        return sql.to_owned();
    }
    let update = filing_update(first);
    if super::is_sqlite(conn) {
        format!("{update}; {sql}")
    } else {
        format!("WITH filed AS ({update}) {sql}")
    }
}

/// The `UPDATE` that files a message, its parameters (outcome, request, message) numbered from
/// `first`, bound by [`bind_filing`].
fn filing_update(first: usize) -> String {
    format!(
        "UPDATE messages SET outcome = ${first}, request_id = ${} WHERE id = ${}",
        first + 1,
        first + 2
    )
}

fn bind_filing<'q>(q: AnyQuery<'q>, filing: Option<&Filing<'q>>) -> AnyQuery<'q> {
    match filing {
        Some(f) => q.bind(f.outcome).bind(f.request_id).bind(f.message_id),
        None => q,
    }
}

/// [`enqueue_reply`], and the message it answers filed in the same statement.
pub async fn enqueue_reply_filing(
    conn: &mut Conn,
    o: &NewOutboxItem<'_>,
    filing: Option<&Filing<'_>>,
) -> Result<i64, StoreError> {
    let sql = with_filing(
        conn,
        filing,
        10,
        "INSERT INTO outbox (request_id, to_address, subject, body, message_id, in_reply_to, references_ids, secret, \
         status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9) \
         RETURNING id",
    );
    let q = bind_outbox_item(sqlx::query(AssertSqlSafe(sql)), o, now_ms());
    // Every row fetched: on SQLite a fetch of one row stops at the first statement's end.
    let rows = bind_filing(q, filing).fetch_all(&mut *conn).await?;
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    Ok(row.try_get("id")?)
}

/// The first nine parameters of a queued reply, in `enqueue_reply`'s order.
fn bind_outbox_item<'q>(q: AnyQuery<'q>, o: &NewOutboxItem<'q>, now: i64) -> AnyQuery<'q> {
    q.bind(o.request_id)
        .bind(o.to)
        .bind(o.subject)
        .bind(o.body)
        .bind(o.message_id)
        .bind(o.in_reply_to)
        .bind(o.references)
        .bind(o.secret)
        .bind(now)
}

/// The daily cap on answers to one address, checked by the statement that queues.
pub struct ReplyCap<'a> {
    /// Replies allowed to one address since `since_ms`.
    pub max: i64,
    pub since_ms: i64,
    /// Appended to the body of the last reply the cap allows.
    pub last_note: &'a str,
}

/// Queue a reply unless `cap.max` replies to the same address were queued since
/// `cap.since_ms`, in ONE statement (a count and an insert would be two round trips): the id
/// and the body as queued (with `cap.last_note` when it is the last one allowed), or `None`
/// when the cap is reached and nothing was queued.
pub async fn enqueue_reply_capped(
    conn: &mut Conn,
    o: &NewOutboxItem<'_>,
    cap: &ReplyCap<'_>,
) -> Result<Option<(i64, String)>, StoreError> {
    enqueue_reply_capped_filing(conn, o, cap, None).await
}

/// [`enqueue_reply_capped`], and the message it answers filed in the same statement (filed
/// also when the cap queues nothing).
pub async fn enqueue_reply_capped_filing(
    conn: &mut Conn,
    o: &NewOutboxItem<'_>,
    cap: &ReplyCap<'_>,
    filing: Option<&Filing<'_>>,
) -> Result<Option<(i64, String)>, StoreError> {
    let sql = with_filing(
        conn,
        filing,
        13,
        "INSERT INTO outbox (request_id, to_address, subject, body, message_id, in_reply_to, references_ids, secret, \
         status, attempts, next_attempt_at, created_at) \
         SELECT $1, $2, $3, CASE WHEN c.n + 1 = $10 THEN $4 || $11 ELSE $4 END, $5, $6, $7, $8, 'pending', 0, $9, $9 \
         FROM (SELECT COUNT(*) AS n FROM outbox WHERE to_address = $2 AND created_at >= $12) c \
         WHERE c.n < $10 \
         RETURNING id, body",
    );
    let q = bind_outbox_item(sqlx::query(AssertSqlSafe(sql)), o, now_ms())
        .bind(cap.max)
        .bind(cap.last_note)
        .bind(cap.since_ms);
    let rows = bind_filing(q, filing).fetch_all(&mut *conn).await?;
    rows.first()
        .map(|r| Ok((r.try_get("id")?, r.try_get("body")?)))
        .transpose()
}

/// Hold a queued reply until job `job_id` is done (`outbox.after_job`): a "Done" answer waits
/// for the change it reports. Run it in the transaction that queued both.
pub async fn hold_reply(conn: &mut Conn, outbox_id: i64, job_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET after_job = $2 WHERE id = $1")
        .bind(outbox_id)
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A request's outcome changed after the fact (confirmed, decided by staff); its reason is
/// stored as its code and whole, like a new request's.
pub async fn update_request_outcome(
    conn: &mut Conn,
    request_id: i64,
    outcome: &str,
    reason: Option<&Reason>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE requests SET outcome = $2, reason = $3, reason_json = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(request_id)
    .bind(outcome)
    .bind(reason.map(Reason::code))
    .bind(reason_json(reason)?)
    .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn find_request_by_id(
    conn: &mut Conn,
    id: i64,
) -> Result<Option<RequestRow>, StoreError> {
    let row = sqlx::query(
        "SELECT id, reference, message_id, kind, outcome, reason, reason_json, mailbox, requester, target, fields, created_at, updated_at \
         FROM requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(request_from_row).transpose()
}

/// The raw bytes of a stored message.
pub async fn message_raw(conn: &mut Conn, message_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT raw FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// A stored message's raw bytes, or `None` when retention has blanked them (its
/// `raw_deleted_at` is set): `Err` only for the database. `Ok(None)` too when there is no
/// such message.
pub async fn message_raw_kept(
    conn: &mut Conn,
    message_id: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row = sqlx::query("SELECT raw, raw_deleted_at FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let deleted: Option<i64> = row.try_get("raw_deleted_at")?;
    Ok(match deleted {
        Some(_) => None,
        None => Some(row.try_get("raw")?),
    })
}

// ---------------------------------------------------------------------------------------------
// Confirmation codes.

#[derive(Debug, Clone)]
pub struct Confirmation {
    pub id: i64,
    pub request_id: i64,
    pub account: String,
    pub expires_at: i64,
    pub attempts: i64,
    pub used_at: Option<i64>,
    pub void_at: Option<i64>,
}

fn confirmation_from_row(r: &sqlx::any::AnyRow) -> Result<Confirmation, StoreError> {
    Ok(Confirmation {
        id: r.try_get("id")?,
        request_id: r.try_get("request_id")?,
        account: r.try_get("account")?,
        expires_at: r.try_get("expires_at")?,
        attempts: r.try_get("attempts")?,
        used_at: r.try_get("used_at")?,
        void_at: r.try_get("void_at")?,
    })
}

pub async fn insert_confirmation(
    conn: &mut Conn,
    request_id: i64,
    account: &str,
    code_sha256: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    // A new step issues a new code: earlier unused codes of the request stop working.
    sqlx::query("UPDATE confirmations SET void_at = $2 WHERE request_id = $1 AND used_at IS NULL AND void_at IS NULL")
        .bind(request_id)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO confirmations (request_id, account, code_sha256, expires_at, attempts, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(request_id)
    .bind(account)
    .bind(code_sha256)
    .bind(expires_at)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn find_confirmation_by_code(
    conn: &mut Conn,
    code_sha256: &str,
) -> Result<Option<Confirmation>, StoreError> {
    let row = sqlx::query(
        "SELECT id, request_id, account, expires_at, attempts, used_at, void_at FROM confirmations WHERE code_sha256 = $1",
    )
    .bind(code_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(confirmation_from_row).transpose()
}

/// The confirmation currently open for a request, if any.
pub async fn open_confirmation(
    conn: &mut Conn,
    request_id: i64,
) -> Result<Option<Confirmation>, StoreError> {
    let row = sqlx::query(
        "SELECT id, request_id, account, expires_at, attempts, used_at, void_at FROM confirmations \
         WHERE request_id = $1 AND used_at IS NULL AND void_at IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(request_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(confirmation_from_row).transpose()
}

pub async fn use_confirmation(conn: &mut Conn, id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE confirmations SET used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Count a wrong code; the confirmation is void once `max_attempts` is reached. Returns
/// true when it is now void.
pub async fn fail_confirmation(
    conn: &mut Conn,
    id: i64,
    max_attempts: u32,
) -> Result<bool, StoreError> {
    let attempts: i64 = sqlx::query_scalar(
        "UPDATE confirmations SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let void = attempts >= i64::from(max_attempts);
    if void {
        sqlx::query("UPDATE confirmations SET void_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
    }
    Ok(void)
}

/// A staff decision replaces what the pipeline had recorded.
pub struct RequestDecision<'a> {
    pub kind: &'a str,
    pub outcome: &'a str,
    /// Stored as its code and whole, like a new request's.
    pub reason: Option<&'a Reason>,
    pub mailbox: Option<&'a str>,
    pub requester: Option<&'a str>,
    pub target: Option<&'a str>,
    pub fields_json: &'a str,
}

pub async fn update_request_decision(
    conn: &mut Conn,
    request_id: i64,
    d: &RequestDecision<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE requests SET kind = $2, outcome = $3, reason = $4, reason_json = $5, mailbox = $6, requester = $7, \
         target = $8, fields = $9, updated_at = $10 WHERE id = $1",
    )
    .bind(request_id)
    .bind(d.kind)
    .bind(d.outcome)
    .bind(d.reason.map(Reason::code))
    .bind(reason_json(d.reason)?)
    .bind(d.mailbox)
    .bind(d.requester)
    .bind(d.target)
    .bind(d.fields_json)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    // What the request mentions may have changed with the decision (issue 17).
    super::mentions::index(conn, request_id, true).await
}
