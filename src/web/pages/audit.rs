//! `/audit`: the audit trail with filters (actor, action, subject, dates), newest first; and
//! `/audit.csv`: the same selection as CSV, oldest first, streamed a chunk at a time so that a
//! year of events does not sit in memory.
//!
//! CSV cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab
//! or carriage return) get a leading `'`: actors, subjects and details come from emails.

use super::{CursorQuery, Layout, Pager};
use crate::action::AuditAction;
use crate::store::journal::{self, AuditEvent, NewAuditEvent};
use crate::store::views::{self, AuditFilter};
use crate::store::{Store, StoreError};
use crate::web::auth::Staff;
use crate::web::format::{day_ms, opt};
use crate::web::{WebError, WebState, render_with};
use askama::Template;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::borrow::Cow;

pub const PAGE_SIZE: i64 = 100;
/// Events per database round trip of the CSV export.
const CSV_CHUNK: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(flatten)]
    cursor: CursorQuery,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, String> {
        Ok(AuditFilter {
            actor: opt(&self.actor),
            action: opt(&self.action),
            subject: opt(&self.subject),
            from_ms: day_ms(&self.from, false)?,
            until_ms: day_ms(&self.to, true)?,
        })
    }

    fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("actor", opt(&self.actor)),
            ("action", opt(&self.action)),
            ("subject", opt(&self.subject)),
            ("from", opt(&self.from)),
            ("to", opt(&self.to)),
        ]
    }
}

pub struct AuditLine {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub on_behalf_of: String,
    pub action: String,
    pub subject: String,
    pub reference: Option<String>,
    pub message_id: Option<i64>,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    actor: String,
    action: String,
    subject: String,
    from: String,
    to: String,
    actions: Vec<String>,
    error: Option<String>,
    rows: Vec<AuditLine>,
    pager: Pager,
    csv_href: String,
}

fn at_text(e: &AuditEvent) -> String {
    e.at.replace('T', " ").replace('Z', " UTC")
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let (filter, error) = match q.filter() {
        Ok(f) => (f, None),
        Err(e) => (AuditFilter::default(), Some(e)),
    };
    let mut conn = state.store.read().await?;
    let page = views::audit(&mut conn, &filter, q.cursor.cursor(), PAGE_SIZE).await?;
    // The closed set of actions, whether or not one has happened yet.
    let actions = AuditAction::ALL
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    drop(conn);
    let pairs = q.pairs();
    let pager = Pager::new("/audit", &pairs, &page);
    let code = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render_with(
        code,
        &AuditPage {
            layout: Layout::new(&state, &me, "Audit trail", "audit").await?,
            actor: filter.actor.clone().unwrap_or_default(),
            action: filter.action.clone().unwrap_or_default(),
            subject: filter.subject.clone().unwrap_or_default(),
            from: opt(&q.from).unwrap_or_default(),
            to: opt(&q.to).unwrap_or_default(),
            actions,
            error,
            rows: page
                .items
                .into_iter()
                .map(|e| AuditLine {
                    id: e.id,
                    at: at_text(&e),
                    detail: serde_json::to_string_pretty(&e.detail).unwrap_or_default(),
                    actor: e.actor,
                    on_behalf_of: e.on_behalf_of.unwrap_or_default(),
                    action: e.action,
                    subject: e.subject.unwrap_or_default(),
                    reference: e.reference,
                    message_id: e.message_id,
                })
                .collect(),
            pager,
            csv_href: format!("/audit.csv{}", crate::web::format::query(&pairs)),
        },
    ))
}

/// A cell a spreadsheet will not run as a formula (one definition for every CSV postroom
/// writes: [`crate::text::csv_cell`]).
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    crate::text::csv_cell(s)
}

pub const CSV_HEADER: [&str; 9] = [
    "id",
    "at",
    "actor",
    "on_behalf_of",
    "action",
    "subject",
    "reference",
    "message_id",
    "detail",
];

fn csv_rows(events: &[AuditEvent], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        w.write_record(CSV_HEADER)?;
    }
    for e in events {
        let id = e.id.to_string();
        let message_id = e.message_id.map(|m| m.to_string()).unwrap_or_default();
        let detail = e.detail.to_string();
        let cells = [
            csv_cell(&id),
            csv_cell(&e.at),
            csv_cell(&e.actor),
            csv_cell(e.on_behalf_of.as_deref().unwrap_or("")),
            csv_cell(&e.action),
            csv_cell(e.subject.as_deref().unwrap_or("")),
            csv_cell(e.reference.as_deref().unwrap_or("")),
            csv_cell(&message_id),
            csv_cell(&detail),
        ];
        w.write_record(cells.iter().map(|c| c.as_bytes()))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Where the export has got to.
struct Export {
    store: Store,
    filter: AuditFilter,
    after_id: i64,
    header: bool,
    done: bool,
}

async fn next_chunk(mut x: Export) -> Option<(Result<Bytes, std::io::Error>, Export)> {
    if x.done {
        return None;
    }
    let fetched: Result<Vec<AuditEvent>, StoreError> = async {
        let mut conn = x.store.read().await?;
        views::audit_chunk(&mut conn, &x.filter, x.after_id, CSV_CHUNK).await
    }
    .await;
    let events = match fetched {
        Ok(e) => e,
        Err(e) => {
            // Failing the stream aborts the download: an export cut short must not look whole.
            tracing::error!(error = %e, "audit export failed");
            x.done = true;
            return Some((Err(std::io::Error::other(e.to_string())), x));
        }
    };
    x.done = i64::try_from(events.len()).unwrap_or(i64::MAX) < CSV_CHUNK;
    if let Some(last) = events.last() {
        x.after_id = last.id;
    }
    let bytes = csv_rows(&events, x.header).map_err(|e| std::io::Error::other(e.to_string()));
    x.header = false;
    Some((bytes.map(Bytes::from), x))
}

pub async fn csv(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return WebError::BadRequest(e).into_response(),
    };
    tracing::info!(staff = %me.name, ?filter, "audit exported as CSV");
    // Who took a copy of the trail is itself part of the trail.
    let recorded = async {
        let mut conn = state.store.read().await?;
        let actor = format!("staff:{}", me.name);
        journal::insert_audit(
            &mut conn,
            &NewAuditEvent {
                actor: &actor,
                on_behalf_of: None,
                action: AuditAction::AuditExported.as_str(),
                subject: None,
                detail: serde_json::json!({
                    "actor": filter.actor, "action": filter.action, "subject": filter.subject,
                    "from_ms": filter.from_ms, "until_ms": filter.until_ms,
                }),
                request_id: None,
                message_id: None,
            },
        )
        .await
    };
    if let Err(e) = recorded.await {
        return WebError::from(e).into_response();
    }
    let start = Export {
        store: state.store.clone(),
        filter,
        after_id: 0,
        header: true,
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(start, next_chunk));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"postroom-audit.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\t=1"), "'\t=1");
        assert_eq!(csv_cell("staff:alice"), "staff:alice");
        assert_eq!(csv_cell(""), "");
    }
}
