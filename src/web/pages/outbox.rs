//! `/outbox`: replies waiting, sent and failed (with the server's answer), and a *retry*
//! button on failed ones (`POST /outbox/{id}/retry`, audited as `outbox.retry`).

use super::Layout;
use crate::action::AuditAction;
use crate::store::journal::{self, NewAuditEvent};
use crate::store::outbox::{self, OutboxStatus};
use crate::store::{Conn, StoreError, now_ms};
use crate::web::auth::Staff;
use crate::web::format::{age, query, time, time_opt};
use crate::web::{WebError, WebState, render, see_other};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

pub const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
    page: Option<String>,
    done: Option<String>,
}

pub struct OutboxLine {
    pub id: i64,
    pub reference: Option<String>,
    pub to: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub created: String,
    pub age: String,
    /// Pending: next attempt; sent: when.
    pub when: String,
    pub last_error: String,
    pub sending_now: bool,
    pub can_retry: bool,
}

pub struct Tab {
    pub label: String,
    pub href: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    layout: Layout,
    tabs: Vec<Tab>,
    rows: Vec<OutboxLine>,
    notice: Option<String>,
    prev: Option<String>,
    next: Option<String>,
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<OutboxQuery>,
) -> Result<Response, WebError> {
    let status: Option<OutboxStatus> = q.status.as_deref().and_then(|s| s.parse().ok());
    let page_no: i64 = q
        .page
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut conn = state.store.read().await?;
    let counts = outbox::counts(&mut conn).await?;
    let mut rows = outbox::list(
        &mut conn,
        status,
        PAGE_SIZE + 1,
        (page_no - 1).saturating_mul(PAGE_SIZE),
    )
    .await?;
    drop(conn);
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > PAGE_SIZE;
    rows.truncate(usize::try_from(PAGE_SIZE).unwrap_or(0));

    let status_text = status.map(|s| s.as_str().to_owned());
    let link = |s: Option<&str>, n: i64| {
        let page = (n > 1).then(|| n.to_string());
        format!(
            "/outbox{}",
            query(&[("status", s.map(str::to_owned)), ("page", page)])
        )
    };
    let tab = |label: String, s: Option<OutboxStatus>| Tab {
        label,
        href: link(s.map(OutboxStatus::as_str), 1),
        active: s == status,
    };
    let tabs = vec![
        tab(
            format!("Waiting ({})", counts.pending),
            Some(OutboxStatus::Pending),
        ),
        tab(
            format!("Failed ({})", counts.failed),
            Some(OutboxStatus::Failed),
        ),
        tab(format!("Sent ({})", counts.sent), Some(OutboxStatus::Sent)),
        tab("All".into(), None),
    ];
    let now = now_ms();
    let notice = match q.done.as_deref() {
        Some("retried") => Some("The reply is waiting to be sent again.".to_owned()),
        Some("not_failed") => Some(
            "That reply is no longer failed (sent, or already retried): nothing changed."
                .to_owned(),
        ),
        _ => None,
    };
    Ok(render(&OutboxPage {
        layout: Layout::new(&state, &me, "Outbox", "outbox").await?,
        tabs,
        notice,
        prev: (page_no > 1).then(|| link(status_text.as_deref(), page_no - 1)),
        next: more.then(|| link(status_text.as_deref(), page_no + 1)),
        rows: rows
            .into_iter()
            .map(|o| OutboxLine {
                id: o.id,
                reference: o.reference,
                to: o.to_address,
                subject: o.subject,
                status: o.status.as_str().to_owned(),
                attempts: o.attempts,
                created: time(o.created_at),
                age: age(o.created_at, now),
                when: match o.status {
                    OutboxStatus::Pending if o.next_attempt_at <= now => "due now".to_owned(),
                    // `age` of the moment seen from it: how long until then.
                    OutboxStatus::Pending => format!("next try in {}", age(now, o.next_attempt_at)),
                    OutboxStatus::Sent => format!("sent {}", time_opt(o.sent_at)),
                    OutboxStatus::Failed => "gave up".to_owned(),
                },
                last_error: o.last_error.unwrap_or_default(),
                sending_now: o.claimed_until.is_some_and(|t| t > now),
                can_retry: o.status == OutboxStatus::Failed,
            })
            .collect(),
    }))
}

pub async fn retry(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return WebError::NotFound("There is no such reply.".into()).into_response();
    };
    let result = async {
        let mut tx = state.store.begin().await?;
        let conn: &mut Conn = &mut tx;
        let request_id = outbox::request_of(conn, id).await?;
        let Some(request_id) = request_id else {
            return Err(WebError::NotFound("There is no such reply.".into()));
        };
        let retried = outbox::retry_now(conn, id).await?;
        if retried {
            let actor = format!("staff:{}", me.name);
            journal::insert_audit(
                conn,
                &NewAuditEvent {
                    actor: &actor,
                    on_behalf_of: None,
                    action: AuditAction::OutboxRetry.as_str(),
                    subject: None,
                    detail: json!({ "outbox_id": id }),
                    request_id,
                    message_id: None,
                },
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok::<_, WebError>(retried)
    }
    .await;
    match result {
        Ok(true) => {
            tracing::info!(staff = %me.name, outbox_id = id, "reply retried by staff");
            state.status.wake_outbox();
            see_other("/outbox?status=pending&done=retried")
        }
        Ok(false) => see_other("/outbox?status=failed&done=not_failed"),
        Err(e) => e.into_response(),
    }
}
