//! `/audit/report`: the forensic report of a shared mailbox or an account over a period
//! (src/audit/report.rs), stamped with the audit chain's verification; `/audit/report.csv`
//! and `/audit/report.json` download it (admins only: a bulk copy of personal data), and
//! each download is itself recorded in the audit trail.

use super::Layout;
use crate::action::AuditAction;
use crate::audit::report::{self, Report};
use crate::store::journal::{self, NewAuditEvent};
use crate::store::now_ms;
use crate::store::report::Subject;
use crate::web::auth::Staff;
use crate::web::format::{day_ms, opt, query};
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The period shown when none is given.
const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    mailbox: Option<String>,
    account: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl ReportQuery {
    fn address(&self) -> Option<(bool, String)> {
        opt(&self.mailbox)
            .map(|m| (true, m.trim().to_ascii_lowercase()))
            .or_else(|| opt(&self.account).map(|a| (false, a.trim().to_ascii_lowercase())))
    }

    fn period(&self) -> Result<(i64, i64), String> {
        let from = day_ms(&self.from, false)?.unwrap_or(now_ms() - DEFAULT_DAYS * 86_400_000);
        let until = day_ms(&self.to, true)?.unwrap_or(now_ms() + 1);
        if until <= from {
            return Err("the end of the period must be after its start".into());
        }
        Ok((from, until))
    }

    fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("mailbox", opt(&self.mailbox)),
            ("account", opt(&self.account)),
            ("from", opt(&self.from)),
            ("to", opt(&self.to)),
        ]
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    layout: Layout,
    mailbox: String,
    account: String,
    from: String,
    to: String,
    report: Option<Report>,
    downloads: String,
    admin: bool,
}

async fn build(state: &WebState, q: &ReportQuery) -> Result<Option<Report>, WebError> {
    let Some((is_mailbox, address)) = q.address() else {
        return Ok(None);
    };
    let (from, until) = q.period().map_err(WebError::BadRequest)?;
    let who = if is_mailbox {
        Subject::Mailbox(&address)
    } else {
        Subject::Account(&address)
    };
    report::make(&state.store, &state.cfg, who, from, until)
        .await
        .map(Some)
        .map_err(|e| WebError::Internal(format!("{e:#}")))
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let report = build(&state, &q).await?;
    Ok(render(&ReportPage {
        layout: Layout::new(&state, &me, "Forensic report", "audit").await?,
        mailbox: opt(&q.mailbox).unwrap_or_default(),
        account: opt(&q.account).unwrap_or_default(),
        from: opt(&q.from).unwrap_or_default(),
        to: opt(&q.to).unwrap_or_default(),
        report,
        downloads: query(&q.pairs()),
        admin: me.role == crate::store::staff::StaffRole::Admin,
    }))
}

/// Who took a copy of a report is itself part of the trail.
async fn record(state: &WebState, me: &Staff, r: &Report, format: &str) -> Result<(), WebError> {
    let mut conn = state.store.read().await?;
    let actor = format!("staff:{}", me.name);
    journal::insert_audit(
        &mut conn,
        &NewAuditEvent {
            actor: &actor,
            on_behalf_of: None,
            action: AuditAction::ReportExported.as_str(),
            subject: Some(&r.address),
            detail: serde_json::json!({
                "scope": r.scope, "from": r.from, "until": r.until, "format": format,
                "requests": r.requests.len(), "chain_intact": r.chain.intact,
            }),
            request_id: None,
            message_id: None,
        },
    )
    .await?;
    Ok(())
}

fn download(body: String, content_type: &'static str, name: &str) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// A file name from the address: letters, digits, `.`, `-`, `_` only.
fn file_name(r: &Report, ext: &str) -> String {
    let safe: String = r
        .address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("postroom-report-{safe}.{ext}")
}

async fn required(state: &WebState, q: &ReportQuery) -> Result<Report, WebError> {
    build(state, q)
        .await?
        .ok_or_else(|| WebError::BadRequest("give a mailbox or an account".into()))
}

pub async fn csv(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let r = required(&state, &q).await?;
    record(&state, &me, &r, "csv").await?;
    let body = report::to_csv(&r).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(download(
        body,
        "text/csv; charset=utf-8",
        &file_name(&r, "csv"),
    ))
}

pub async fn json(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let r = required(&state, &q).await?;
    record(&state, &me, &r, "json").await?;
    let body = serde_json::to_string(&r).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(download(body, "application/json", &file_name(&r, "json")))
}
