//! Read-only views for the staff web page: the review queue, request search, a request's whole
//! story, the directory at a glance, the audit trail with filters, and the counts behind
//! `/metrics`.
//!
//! Lists page by keyset (`id` before or after a cursor), never by OFFSET, so the hundredth page
//! costs what the first does; the indexes they walk are in `0005_staff.sql`. Optional filters
//! are written `(CAST($1 AS TEXT) IS NULL OR col = $1)` so that each query is one static
//! statement on both backends (the cast tells PostgreSQL the type of a NULL parameter).

use super::journal::{AuditEvent, audit_from_row};
use super::outbox::OutboxStatus;
use super::{Conn, StoreError};
use crate::accounts::AccountStatus;
use crate::outcome::Outcome;
use crate::request::RequestKind;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Where a page of a list starts, relative to the order the list is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The first page.
    Start,
    /// The page after the row with this id (further down the list).
    After(i64),
    /// The page before the row with this id (further up the list).
    Before(i64),
}

/// One page of a list and the cursors to its neighbours (`None`: nothing that way).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Id of the first row shown: ask `Cursor::Before(id)` for the page above.
    pub prev: Option<i64>,
    /// Id of the last row shown: ask `Cursor::After(id)` for the page below.
    pub next: Option<i64>,
}

/// Turn rows fetched one more than `limit` in the direction of travel into a page. `rows` is
/// in fetch order; `backwards` says the fetch ran against the display order.
fn paginate<T>(mut rows: Vec<T>, limit: i64, cursor: Cursor, id: impl Fn(&T) -> i64) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let backwards = matches!(cursor, Cursor::Before(_));
    if backwards {
        rows.reverse();
    }
    let first = rows.first().map(&id);
    let last = rows.last().map(&id);
    // Coming from a page, that page is there to go back to; in the direction of travel there
    // is more only if the extra row came back.
    let (has_prev, has_next) = match cursor {
        Cursor::Start => (false, more),
        Cursor::After(_) => (true, more),
        Cursor::Before(_) => (more, true),
    };
    Page {
        prev: first.filter(|_| has_prev),
        next: last.filter(|_| has_next),
        items: rows,
    }
}

/// Page sizes are clamped so that a query string cannot ask for the whole table.
pub fn clamp_limit(limit: i64) -> i64 {
    limit.clamp(1, 500)
}

// ---------------------------------------------------------------------------------------------
// Requests: the queue and the search.

/// One request in a list, with the subject and sender of its message.
#[derive(Debug, Clone, Serialize)]
pub struct RequestSummary {
    pub id: i64,
    pub reference: String,
    pub kind: RequestKind,
    pub outcome: Outcome,
    /// The reason's code ([`crate::reason::Reason::code`]).
    pub reason: Option<String>,
    pub mailbox: Option<String>,
    pub requester: Option<String>,
    pub target: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    pub subject: String,
    pub from_address: Option<String>,
}

pub(crate) fn summary_from_row(r: &AnyRow) -> Result<RequestSummary, sqlx::Error> {
    Ok(RequestSummary {
        id: r.try_get("id")?,
        reference: r
            .try_get::<Option<String>, _>("reference")?
            .unwrap_or_default(),
        kind: r.try_get("kind")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        mailbox: r.try_get("mailbox")?,
        requester: r.try_get("requester")?,
        target: r.try_get("target")?,
        created_at: r.try_get("created_at")?,
        subject: r.try_get("subject")?,
        from_address: r.try_get("from_address")?,
    })
}

/// How many requests wait for a person.
pub async fn queue_size(conn: &mut Conn) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE outcome = 'needs_review'")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Whose waiting requests the queue shows (issue 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueWho<'a> {
    All,
    /// Claimed by this staff member.
    Mine(&'a str),
    Unclaimed,
}

/// Requests waiting for review, oldest first (the order they should be dealt with).
pub async fn queue(
    conn: &mut Conn,
    cursor: Cursor,
    limit: i64,
    who: QueueWho<'_>,
) -> Result<Page<RequestSummary>, StoreError> {
    let limit = clamp_limit(limit);
    // Each direction walks `requests_outcome_id` one way; the claim filter is one of three
    // constant fragments, its staff name bound as $3.
    let claim = match who {
        QueueWho::All => "",
        QueueWho::Mine(_) => {
            " AND EXISTS (SELECT 1 FROM claims c WHERE c.request_id = r.id AND c.staff = $3)"
        }
        QueueWho::Unclaimed => " AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.request_id = r.id)",
    };
    let (op, order, bound) = match cursor {
        Cursor::Start => (">", "ASC", 0),
        Cursor::After(id) => (">", "ASC", id),
        Cursor::Before(id) => ("<", "DESC", id),
    };
    let sql = format!(
        "SELECT r.id, r.reference, r.kind, r.outcome, r.reason, r.mailbox, r.requester, r.target, \
         r.created_at, m.subject, m.from_address FROM requests r JOIN messages m ON m.id = r.message_id \
         WHERE r.outcome = 'needs_review' AND r.id {op} $1{claim} ORDER BY r.id {order} LIMIT $2"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(bound)
        .bind(limit + 1);
    if let QueueWho::Mine(name) = who {
        q = q.bind(name);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let rows = rows
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paginate(rows, limit, cursor, |r| r.id))
}

/// What the request search filters on; `None` (or empty) means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// `HD-000042`, exact.
    pub reference: Option<String>,
    /// The shared mailbox, exact (lower-case).
    pub mailbox: Option<String>,
    /// The requester or the account acted on, exact (lower-case).
    pub account: Option<String>,
    pub kind: Option<String>,
    pub outcome: Option<String>,
    /// Created at or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Created before (Unix ms).
    pub until_ms: Option<i64>,
    /// A term the request mentions (`store::mentions::search_term`): an account, a name, a
    /// mailbox. When given it leads: one lookup in `request_mentions`.
    pub mention: Option<String>,
}

/// The filter a search is led by: the most selective one given walks its index, the others
/// are checked on the rows it finds. SQLite cannot use an index for `($1 IS NULL OR col = $1)`,
/// so each lead is its own static statement with its filter written plainly (the rest stay
/// optional). Without a lead the search walks the primary key newest first, which is quick
/// for filters that many rows pass (a kind, a date range) and at worst one pass over the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestLead {
    Mention,
    Reference,
    Account,
    Mailbox,
    Outcome,
    Kind,
    /// A window of dates no wider than [`WINDOW_LEAD_MAX_MS`], alone or with a kind.
    Window,
    Nothing,
}

/// The widest date window that leads a search (31 days). Walking the requests newest first
/// passes every request newer than the window before reaching it: at national scale a week
/// two months back meant 160,000 rows read for 50 shown (714 ms at p99 on SQLite; issue 18).
/// Led by `requests(created_at)` instead, the window's own rows are read and sorted — a
/// month of a national service's requests at most; a wider window has enough rows that
/// walking newest first finds a page soon.
pub const WINDOW_LEAD_MAX_MS: i64 = 31 * 86_400_000;

impl RequestFilter {
    fn lead(&self) -> RequestLead {
        if self.mention.is_some() {
            RequestLead::Mention
        } else if self.reference.is_some() {
            RequestLead::Reference
        } else if self.account.is_some() {
            RequestLead::Account
        } else if self.mailbox.is_some() {
            RequestLead::Mailbox
        } else if self.outcome.is_some() {
            RequestLead::Outcome
        } else if let (Some(from), Some(until)) = (self.from_ms, self.until_ms)
            && until.saturating_sub(from) <= WINDOW_LEAD_MAX_MS
        {
            RequestLead::Window
        } else if self.kind.is_some() {
            RequestLead::Kind
        } else {
            RequestLead::Nothing
        }
    }
}

/// The optional filters after a lead condition.
macro_rules! request_where {
    ($lead:literal) => {
        concat!(
            $lead,
            " AND (CAST($1 AS TEXT) IS NULL OR r.reference = $1) ",
            "AND (CAST($2 AS TEXT) IS NULL OR r.mailbox = $2) ",
            "AND (CAST($3 AS TEXT) IS NULL OR r.requester = $3 OR r.target = $3) ",
            "AND (CAST($4 AS TEXT) IS NULL OR r.kind = $4) ",
            "AND (CAST($5 AS TEXT) IS NULL OR r.outcome = $5) ",
            "AND (CAST($6 AS BIGINT) IS NULL OR r.created_at >= $6) ",
            "AND (CAST($7 AS BIGINT) IS NULL OR r.created_at < $7)"
        )
    };
}

macro_rules! request_search_sql {
    ($lead:literal, $cmp:literal, $order:literal) => {
        request_search_sql!($lead, $cmp, "r.id", $order)
    };
    // `$by`: what the rows are sorted by; `+r.id` (the same order) keeps SQLite from walking
    // the primary key to avoid the sort when the lead's own index is the quicker way in.
    ($lead:literal, $cmp:literal, $by:literal, $order:literal) => {
        concat!(
            "SELECT r.id, r.reference, r.kind, r.outcome, r.reason, r.mailbox, r.requester, r.target, ",
            "r.created_at, m.subject, m.from_address FROM requests r JOIN messages m ON m.id = r.message_id WHERE ",
            request_where!($lead),
            " AND r.id ",
            $cmp,
            " $8 ORDER BY ",
            $by,
            " ",
            $order,
            " LIMIT $9"
        )
    };
}

macro_rules! request_count_sql {
    ($lead:literal) => {
        concat!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM requests r WHERE ",
            request_where!($lead),
            " LIMIT $8) t"
        )
    };
}

/// A search led by a mention (issue 17): the walk is over `request_mentions`'s key (term,
/// request) in request order, the term bound as $10 (after the cursor and the limit).
macro_rules! mention_search_sql {
    ($cmp:literal, $order:literal) => {
        concat!(
            "SELECT r.id, r.reference, r.kind, r.outcome, r.reason, r.mailbox, r.requester, r.target, ",
            "r.created_at, m.subject, m.from_address FROM request_mentions mt ",
            "JOIN requests r ON r.id = mt.request_id JOIN messages m ON m.id = r.message_id WHERE ",
            request_where!("mt.term = $10"),
            " AND mt.request_id ",
            $cmp,
            " $8 ORDER BY mt.request_id ",
            $order,
            " LIMIT $9"
        )
    };
}

/// The search statement for a lead, walking down (newest first) or up.
fn search_sql(lead: RequestLead, down: bool) -> &'static str {
    use RequestLead::*;
    match (lead, down) {
        (Mention, true) => mention_search_sql!("<", "DESC"),
        (Mention, false) => mention_search_sql!(">", "ASC"),
        (Reference, true) => request_search_sql!("r.reference = $1", "<", "DESC"),
        (Reference, false) => request_search_sql!("r.reference = $1", ">", "ASC"),
        (Account, true) => request_search_sql!("(r.requester = $3 OR r.target = $3)", "<", "DESC"),
        (Account, false) => request_search_sql!("(r.requester = $3 OR r.target = $3)", ">", "ASC"),
        (Mailbox, true) => request_search_sql!("r.mailbox = $2", "<", "DESC"),
        (Mailbox, false) => request_search_sql!("r.mailbox = $2", ">", "ASC"),
        (Outcome, true) => request_search_sql!("r.outcome = $5", "<", "DESC"),
        (Outcome, false) => request_search_sql!("r.outcome = $5", ">", "ASC"),
        (Kind, true) => request_search_sql!("r.kind = $4", "<", "DESC"),
        (Kind, false) => request_search_sql!("r.kind = $4", ">", "ASC"),
        (Window, true) => request_search_sql!(
            "r.created_at >= $6 AND r.created_at < $7",
            "<",
            "+r.id",
            "DESC"
        ),
        (Window, false) => request_search_sql!(
            "r.created_at >= $6 AND r.created_at < $7",
            ">",
            "+r.id",
            "ASC"
        ),
        (Nothing, true) => request_search_sql!("1 = 1", "<", "DESC"),
        (Nothing, false) => request_search_sql!("1 = 1", ">", "ASC"),
    }
}

fn count_sql(lead: RequestLead) -> &'static str {
    use RequestLead::*;
    match lead {
        // The term is $9, after the cap.
        Mention => concat!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM request_mentions mt JOIN requests r ON r.id = mt.request_id WHERE ",
            request_where!("mt.term = $9"),
            " LIMIT $8) t"
        ),
        Reference => request_count_sql!("r.reference = $1"),
        Account => request_count_sql!("(r.requester = $3 OR r.target = $3)"),
        Mailbox => request_count_sql!("r.mailbox = $2"),
        Outcome => request_count_sql!("r.outcome = $5"),
        Kind => request_count_sql!("r.kind = $4"),
        Window => request_count_sql!("r.created_at >= $6 AND r.created_at < $7"),
        Nothing => request_count_sql!("1 = 1"),
    }
}

fn bind_request_filter<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    f: &'q RequestFilter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(f.reference.as_deref())
        .bind(f.mailbox.as_deref())
        .bind(f.account.as_deref())
        .bind(f.kind.as_deref())
        .bind(f.outcome.as_deref())
        .bind(f.from_ms)
        .bind(f.until_ms)
}

/// Requests matching `filter`, newest first.
pub async fn search_requests(
    conn: &mut Conn,
    filter: &RequestFilter,
    cursor: Cursor,
    limit: i64,
) -> Result<Page<RequestSummary>, StoreError> {
    let limit = clamp_limit(limit);
    // Newest first: "down" the page is towards smaller ids.
    let (down, bound) = match cursor {
        Cursor::Start => (true, i64::MAX),
        Cursor::After(id) => (true, id),
        Cursor::Before(id) => (false, id),
    };
    let lead = filter.lead();
    let mut q = bind_request_filter(sqlx::query(search_sql(lead, down)), filter)
        .bind(bound)
        .bind(limit + 1);
    if lead == RequestLead::Mention {
        q = q.bind(filter.mention.as_deref());
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let rows = rows
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paginate(rows, limit, cursor, |r| r.id))
}

/// How many requests match, counting no further than `cap` (a count of everything would
/// read every row; "10,000 or more" is as useful to a person).
pub async fn count_requests(
    conn: &mut Conn,
    filter: &RequestFilter,
    cap: i64,
) -> Result<i64, StoreError> {
    let lead = filter.lead();
    let mut q = bind_request_filter(sqlx::query(count_sql(lead)), filter).bind(cap);
    if lead == RequestLead::Mention {
        q = q.bind(filter.mention.as_deref());
    }
    let row = q.fetch_one(&mut *conn).await?;
    Ok(row.try_get("n")?)
}

// ---------------------------------------------------------------------------------------------
// One request's story.

/// A stored message as the page shows it: the raw bytes are parsed by the caller.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredMessage {
    pub id: i64,
    pub message_id: Option<String>,
    pub sha256: String,
    pub raw: Vec<u8>,
    pub size: i64,
    pub from_address: Option<String>,
    pub subject: String,
    pub source: String,
    pub received_at: i64,
}

pub async fn message(conn: &mut Conn, id: i64) -> Result<Option<StoredMessage>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, message_id, sha256, raw, size, from_address, subject, source, received_at \
         FROM messages WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The references of the requests a message produced (a message makes one request, or none
/// when it was a comment on an earlier one).
pub async fn requests_of_message(
    conn: &mut Conn,
    message_id: i64,
) -> Result<Vec<String>, StoreError> {
    let refs: Vec<Option<String>> =
        sqlx::query_scalar("SELECT reference FROM requests WHERE message_id = $1 ORDER BY id")
            .bind(message_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(refs.into_iter().flatten().collect())
}

/// What to show in place of a secret in a reply that still carries it.
pub const SECRET_MASK: &str = "[temporary password hidden]";

/// A reply to the site, as the request page shows it. The body never carries the secret: a
/// reply not yet sent still holds the temporary password, which no person should read here.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub id: i64,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub next_attempt_at: i64,
}

pub async fn replies_of_request(
    conn: &mut Conn,
    request_id: i64,
) -> Result<Vec<Reply>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, to_address, subject, body, secret, status, attempts, last_error, created_at, sent_at, \
         next_attempt_at FROM outbox WHERE request_id = $1 ORDER BY id",
    )
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let body: String = r.try_get("body")?;
            let secret: Option<String> = r.try_get("secret")?;
            let body = match secret.as_deref() {
                Some(s) if !s.is_empty() => body.replace(s, SECRET_MASK),
                _ => body,
            };
            Ok(Reply {
                id: r.try_get("id")?,
                to_address: r.try_get("to_address")?,
                subject: r.try_get("subject")?,
                body,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                sent_at: r.try_get("sent_at")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Comment {
    pub id: i64,
    pub author: String,
    pub body: String,
    pub created_at: i64,
    /// Set when the comment is a later email in the request's thread.
    pub message_id: Option<i64>,
}

pub async fn comments_of_request(
    conn: &mut Conn,
    request_id: i64,
) -> Result<Vec<Comment>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, author, body, created_at, message_id FROM comments WHERE request_id = $1 ORDER BY id",
    )
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Every audit event of one request, oldest first.
pub async fn audit_of_request(
    conn: &mut Conn,
    request_id: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.id, e.at, e.actor, e.on_behalf_of, e.action, e.subject, e.detail, r.reference, e.message_id \
         FROM audit_events e LEFT JOIN requests r ON r.id = e.request_id WHERE e.request_id = $1 ORDER BY e.id",
    )
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(audit_from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

// ---------------------------------------------------------------------------------------------
// The audit trail.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `staff:alice`, an account address, `postroom`, `import`, exact.
    pub actor: Option<String>,
    /// `request.applied`, `password.reset`, …, exact.
    pub action: Option<String>,
    /// The account or mailbox acted on, exact.
    pub subject: Option<String>,
    /// At or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Before (Unix ms).
    pub until_ms: Option<i64>,
}

/// Like [`RequestLead`]: the most selective audit filter given walks its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuditLead {
    Subject,
    Actor,
    Action,
    Nothing,
}

impl AuditFilter {
    fn lead(&self) -> AuditLead {
        if self.subject.is_some() {
            AuditLead::Subject
        } else if self.actor.is_some() {
            AuditLead::Actor
        } else if self.action.is_some() {
            AuditLead::Action
        } else {
            AuditLead::Nothing
        }
    }
}

macro_rules! audit_sql {
    ($lead:literal, $cmp:literal, $order:literal) => {
        concat!(
            "SELECT e.id, e.at, e.actor, e.on_behalf_of, e.action, e.subject, e.detail, r.reference, e.message_id ",
            "FROM audit_events e LEFT JOIN requests r ON r.id = e.request_id WHERE ",
            $lead,
            " AND (CAST($1 AS TEXT) IS NULL OR e.actor = $1) ",
            "AND (CAST($2 AS TEXT) IS NULL OR e.action = $2) ",
            "AND (CAST($3 AS TEXT) IS NULL OR e.subject = $3) ",
            "AND (CAST($4 AS BIGINT) IS NULL OR e.at >= $4) ",
            "AND (CAST($5 AS BIGINT) IS NULL OR e.at < $5) ",
            "AND e.id ",
            $cmp,
            " $6 ORDER BY e.id ",
            $order,
            " LIMIT $7"
        )
    };
}

fn audit_sql(lead: AuditLead, down: bool) -> &'static str {
    use AuditLead::*;
    match (lead, down) {
        (Subject, true) => audit_sql!("e.subject = $3", "<", "DESC"),
        (Subject, false) => audit_sql!("e.subject = $3", ">", "ASC"),
        (Actor, true) => audit_sql!("e.actor = $1", "<", "DESC"),
        (Actor, false) => audit_sql!("e.actor = $1", ">", "ASC"),
        (Action, true) => audit_sql!("e.action = $2", "<", "DESC"),
        (Action, false) => audit_sql!("e.action = $2", ">", "ASC"),
        (Nothing, true) => audit_sql!("1 = 1", "<", "DESC"),
        (Nothing, false) => audit_sql!("1 = 1", ">", "ASC"),
    }
}

async fn audit_query(
    conn: &mut Conn,
    sql: &'static str,
    f: &AuditFilter,
    bound: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = sqlx::query(sql)
        .bind(f.actor.as_deref())
        .bind(f.action.as_deref())
        .bind(f.subject.as_deref())
        .bind(f.from_ms)
        .bind(f.until_ms)
        .bind(bound)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(audit_from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

/// Audit events matching `filter`, newest first.
pub async fn audit(
    conn: &mut Conn,
    filter: &AuditFilter,
    cursor: Cursor,
    limit: i64,
) -> Result<Page<AuditEvent>, StoreError> {
    let limit = clamp_limit(limit);
    let (down, bound) = match cursor {
        Cursor::Start => (true, i64::MAX),
        Cursor::After(id) => (true, id),
        Cursor::Before(id) => (false, id),
    };
    let sql = audit_sql(filter.lead(), down);
    let rows = audit_query(conn, sql, filter, bound, limit + 1).await?;
    Ok(paginate(rows, limit, cursor, |e| e.id))
}

/// For the CSV export: up to `limit` events matching `filter` with an id above `after_id`,
/// oldest first. Call again with the last id until it returns fewer than `limit`.
pub async fn audit_chunk(
    conn: &mut Conn,
    filter: &AuditFilter,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let sql = audit_sql(filter.lead(), false);
    audit_query(conn, sql, filter, after_id, clamp_limit(limit)).await
}

// ---------------------------------------------------------------------------------------------
// The directory at a glance.

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrganisationSummary {
    pub id: i64,
    pub name: String,
    pub mailboxes: i64,
    pub accounts: i64,
    pub active_accounts: i64,
}

/// Every organisation with its counts, kept on the organisation by migration 0161's triggers:
/// counting them here read every account's index entry on each view (150 ms with 1.5 million
/// accounts; issue 18).
const ORGANISATIONS_SQL: &str = "SELECT id, name, mailbox_count AS mailboxes, \
    account_count AS accounts, active_account_count AS active_accounts \
  FROM organisations ORDER BY name";

pub async fn organisations(conn: &mut Conn) -> Result<Vec<OrganisationSummary>, StoreError> {
    Ok(sqlx::query_as(ORGANISATIONS_SQL)
        .fetch_all(&mut *conn)
        .await?)
}

/// A shared mailbox with how many people hold it, counting only active accounts (a locked or
/// disabled owner cannot hand over or ask for anything).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MailboxSummary {
    pub id: i64,
    pub address: String,
    pub organisation: String,
    /// Active accounts with the role `member`.
    pub members: i64,
    /// Active accounts with the role `owner`.
    pub owners: i64,
    /// Memberships of accounts that are locked or disabled.
    pub inactive: i64,
}

impl MailboxSummary {
    /// Fewer than two active people, or no active owner: one absence or one leaver away from
    /// nobody being able to ask for anything. The column `mailboxes.at_risk` (migration 0180),
    /// which the partial index `mailboxes_at_risk` and `MAILBOX_AT_RISK_SQL` name, writes the
    /// same test in SQL: change both together.
    pub fn at_risk(&self) -> bool {
        self.members + self.owners < 2 || self.owners == 0
    }
}

/// A page of mailboxes in organisation and address order, with the counts the database keeps
/// on each mailbox (migration 0160's triggers), so a view reads its page's rows and no
/// membership (issue 18). `CROSS JOIN` keeps SQLite's planner walking organisations by name
/// and each one's mailboxes by address, stopping at the page's end, rather than sorting every
/// mailbox; to PostgreSQL it is a plain join.
const MAILBOX_PAGE_SQL: &str = "SELECT m.id, m.address, o.name AS organisation, \
    m.members_active AS members, m.owners_active AS owners, \
    m.members_inactive + m.owners_inactive AS inactive \
  FROM organisations o CROSS JOIN mailboxes m WHERE m.organisation_id = o.id \
  ORDER BY o.name, m.address LIMIT $1 OFFSET $2";

/// The mailboxes at risk ([`MailboxSummary::at_risk`]), the same walk over the partial index
/// `mailboxes_at_risk`, which holds only those: its WHERE (`at_risk`, a generated column) is
/// repeated here word for word (both planners match a partial index's condition by its text).
const MAILBOX_AT_RISK_SQL: &str = "SELECT m.id, m.address, o.name AS organisation, \
    m.members_active AS members, m.owners_active AS owners, \
    m.members_inactive + m.owners_inactive AS inactive \
  FROM organisations o CROSS JOIN mailboxes m WHERE m.organisation_id = o.id \
    AND at_risk \
  ORDER BY o.name, m.address LIMIT $1 OFFSET $2";

/// Mailboxes by organisation and address; `at_risk_only` keeps those [`MailboxSummary::at_risk`].
pub async fn mailboxes(
    conn: &mut Conn,
    at_risk_only: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<MailboxSummary>, StoreError> {
    let sql = if at_risk_only {
        MAILBOX_AT_RISK_SQL
    } else {
        MAILBOX_PAGE_SQL
    };
    Ok(sqlx::query_as(sql)
        .bind(clamp_limit(limit))
        .bind(offset.max(0))
        .fetch_all(&mut *conn)
        .await?)
}

/// How far back the directory page lists status changes, in days; retention prunes the log
/// it reads (`account_status_changes`, migration 0190) beyond that.
pub const RECENT_STATUS_DAYS: i64 = 30;

/// An account whose status changed after it was created.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StatusChange {
    pub address: String,
    pub name: String,
    pub organisation: String,
    pub status: AccountStatus,
    /// Unix ms.
    pub changed_at: i64,
}

pub async fn recent_status_changes(
    conn: &mut Conn,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<StatusChange>, StoreError> {
    // Walks the log of changes (migration 0190) from the newest and keeps each account's
    // latest: the one whose time is the account's `status_changed_at`. An account is named
    // twice only if its time went back to one it had before (a clock set back); the second
    // is dropped here.
    let rows: Vec<StatusChange> = sqlx::query_as(
        "SELECT a.address, a.name, o.name AS organisation, a.status, a.status_changed_at AS changed_at \
         FROM account_status_changes l \
         JOIN accounts a ON a.id = l.account_id AND a.status_changed_at = l.changed_at \
         JOIN organisations o ON o.id = a.organisation_id \
         WHERE l.changed_at >= $1 AND a.status_changed_at > a.created_at \
         ORDER BY l.changed_at DESC, l.id DESC LIMIT $2",
    )
    .bind(since_ms)
    .bind(clamp_limit(limit))
    .fetch_all(&mut *conn)
    .await?;
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .filter(|c| seen.insert(c.address.clone()))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Counts for `/metrics`.

/// Requests by outcome, all time, by the text stored: a count shows every value there is,
/// one this build does not know included (`/metrics` labels it as it is).
pub async fn outcome_counts(conn: &mut Conn) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT outcome, COUNT(*) AS n FROM requests GROUP BY outcome ORDER BY outcome",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("outcome")?, r.try_get("n")?)))
        .collect()
}

/// A cheap round trip that proves the database answers.
pub async fn ping(conn: &mut Conn) -> Result<(), StoreError> {
    let _: i64 = sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn store() -> Store {
        Store::in_memory().await
    }

    use crate::store::sqlite_plan as plan;

    /// A search led by its date window finds what the walk newest first finds, page by page
    /// both ways, whatever order the dates are in (a request's id and time usually rise
    /// together, but nothing relies on it).
    #[tokio::test]
    async fn a_date_window_finds_the_same_requests_as_a_walk() {
        let store = store().await;
        let day = 86_400_000i64;
        let mut c = store.write().await.unwrap();
        // Request i is on day (i * 7) % 40: out of id order.
        for i in 1..=40i64 {
            sqlx::query(
                "INSERT INTO messages (id, sha256, size, raw, subject, source, received_at) \
                 VALUES ($1, $2, 1, $3, 's', 'test', 0)",
            )
            .bind(i)
            .bind(format!("{i:064}"))
            .bind(vec![b'x'])
            .execute(&mut *c)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO requests (id, reference, message_id, kind, outcome, fields, created_at, updated_at) \
                 VALUES ($1, $2, $1, $3, 'applied', '{}', $4, $4)",
            )
            .bind(i)
            .bind(format!("HD-{i:06}"))
            .bind(if i % 3 == 0 { "unlock" } else { "password_reset" })
            .bind(((i * 7) % 40) * day)
            .execute(&mut *c)
            .await
            .unwrap();
        }
        // Every page of a search, newest first, then back up from the last page.
        async fn walk(c: &mut Conn, f: &RequestFilter) -> (Vec<i64>, Vec<i64>) {
            let (mut down, mut cursor) = (Vec::new(), Cursor::Start);
            loop {
                let p = search_requests(c, f, cursor, 3).await.unwrap();
                down.extend(p.items.iter().map(|r| r.id));
                match p.next {
                    Some(id) => cursor = Cursor::After(id),
                    None => break,
                }
            }
            let mut up = Vec::new();
            let mut cursor = down.last().map(|id| Cursor::Before(*id));
            while let Some(cur) = cursor {
                let p = search_requests(c, f, cur, 3).await.unwrap();
                up.splice(0..0, p.items.iter().map(|r| r.id));
                cursor = p.prev.map(Cursor::Before);
            }
            (down, up)
        }
        for (from, until, kind) in [
            (10, 17, None),
            (0, 31, None),
            (5, 6, Some("unlock")),
            (33, 40, Some("password_reset")),
            (50, 60, None),
        ] {
            let f = RequestFilter {
                from_ms: Some(from * day),
                until_ms: Some(until * day),
                kind: kind.map(str::to_owned),
                ..RequestFilter::default()
            };
            assert_eq!(f.lead(), RequestLead::Window);
            let expected: Vec<i64> = (1..=40i64)
                .rev()
                .filter(|i| {
                    let d = (i * 7) % 40;
                    d >= from && d < until && kind.is_none_or(|k| (k == "unlock") == (i % 3 == 0))
                })
                .collect();
            let (down, up) = walk(&mut c, &f).await;
            assert_eq!(down, expected, "{from}..{until} {kind:?}");
            // The last page walked back up: every row but those of the last page.
            let last = expected.len().saturating_sub(1);
            assert_eq!(up, expected[..last], "up {from}..{until}");
            let n = count_requests(&mut c, &f, 1000).await.unwrap();
            assert_eq!(n, i64::try_from(expected.len()).unwrap());
        }
        // Wider than a month: the walk newest first leads.
        let wide = RequestFilter {
            from_ms: Some(0),
            until_ms: Some(WINDOW_LEAD_MAX_MS + 1),
            ..RequestFilter::default()
        };
        assert_eq!(wide.lead(), RequestLead::Nothing);
    }

    /// Each lead walks its index (on a database never ANALYZEd, as in production), so a
    /// search stays an index lookup however many requests there are.
    #[tokio::test]
    async fn every_lead_uses_its_index() {
        use RequestLead::*;
        let store = store().await;
        for (lead, index) in [
            (Mention, "sqlite_autoindex_request_mentions_1"),
            (Reference, "sqlite_autoindex_requests_1"),
            (Account, "requests_requester"),
            (Mailbox, "requests_mailbox"),
            (Outcome, "requests_outcome_id"),
            (Kind, "requests_kind_id"),
            (Window, "requests_created"),
            (Nothing, "INTEGER PRIMARY KEY"),
        ] {
            let mention = usize::from(lead == Mention);
            for down in [true, false] {
                let p = plan(&store, search_sql(lead, down), 5 + mention, 4).await;
                assert!(p.contains(index), "{lead:?} (down: {down}): {p}");
                assert!(!p.contains("SCAN r"), "{lead:?} scans: {p}");
                assert!(!p.contains("SCAN mt"), "{lead:?} scans: {p}");
            }
            let p = plan(&store, count_sql(lead), 5 + mention, 3).await;
            if lead != Nothing {
                assert!(p.contains(index), "count {lead:?}: {p}");
            }
        }
        for (lead, index) in [
            (AuditLead::Subject, "audit_events_subject"),
            (AuditLead::Actor, "audit_events_actor"),
            (AuditLead::Action, "audit_events_action"),
            (AuditLead::Nothing, "INTEGER PRIMARY KEY"),
        ] {
            let p = plan(&store, audit_sql(lead, true), 3, 4).await;
            assert!(p.contains(index), "audit {lead:?}: {p}");
        }
        let p = plan(
            &store,
            "SELECT e.id FROM audit_events e WHERE e.request_id = $1 ORDER BY e.id",
            0,
            1,
        )
        .await;
        assert!(p.contains("audit_events_request"), "{p}");
    }

    /// The directory page at national scale (issue 18): a page of mailboxes walks the
    /// organisations by name and their mailboxes by address (no sort of every mailbox), and
    /// an organisation's account counts read an index alone.
    #[tokio::test]
    async fn the_directory_page_reads_a_page_not_the_directory() {
        let store = store().await;
        let p = plan(&store, MAILBOX_PAGE_SQL, 0, 2).await;
        assert!(p.contains("mailboxes_organisation_address"), "{p}");
        assert!(!p.contains("SCAN m"), "{p}");
        assert!(!p.contains("memberships"), "{p}");
        // The at-risk view walks only the mailboxes at risk, in page order (no sort).
        let p = plan(&store, MAILBOX_AT_RISK_SQL, 0, 2).await;
        assert!(p.contains("USING INDEX mailboxes_at_risk"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        assert!(!p.contains("memberships"), "{p}");
        // The organisations' counts are read, not counted (migration 0161).
        let p = plan(&store, ORGANISATIONS_SQL, 0, 0).await;
        assert!(!p.contains("accounts"), "{p}");
        assert!(!p.contains("mailboxes"), "{p}");
    }

    #[test]
    fn pages_know_their_neighbours() {
        // Fetched one more than the limit: there is a next page.
        let p = paginate(vec![1, 2, 3], 2, Cursor::Start, |x| *x);
        assert_eq!((p.items, p.prev, p.next), (vec![1, 2], None, Some(2)));
        // Going back from 5: fetched 4, 3, 2 (one extra) → shows 3, 4, with more above.
        let p = paginate(vec![4, 3, 2], 2, Cursor::Before(5), |x| *x);
        assert_eq!((p.items, p.prev, p.next), (vec![3, 4], Some(3), Some(4)));
        // The last page forward.
        let p = paginate(vec![7], 2, Cursor::After(6), |x| *x);
        assert_eq!((p.items, p.prev, p.next), (vec![7], Some(7), None));
        let p = paginate(Vec::<i64>::new(), 2, Cursor::Start, |x| *x);
        assert_eq!((p.prev, p.next), (None, None));
    }
}
