//! `postroom status`: the facts `/healthz` gives, for a terminal — inbox connection (as each
//! instance last reported it), last message processed, queue sizes, outbox backlog, oldest
//! waiting request.

use crate::store::health::{self, InstanceHealth};
use crate::store::outbox;
use crate::store::status;
use crate::store::{Store, StoreError, format_ms, now_ms};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub instances: Vec<InstanceHealth>,
    pub last_message_at: Option<String>,
    pub needs_review: i64,
    pub awaiting_confirmation: i64,
    pub oldest_waiting_request: Option<String>,
    pub oldest_waiting_since: Option<String>,
    pub outbox_pending: i64,
    pub outbox_failed: i64,
    pub outbox_sent: i64,
}

pub async fn report(store: &Store) -> Result<StatusReport, StoreError> {
    let mut conn = store.read().await?;
    let instances = health::list(&mut conn).await?;
    let last = status::last_message_at(&mut conn).await?;
    let needs_review = status::count_requests_with_outcome(&mut conn, "needs_review").await?;
    let awaiting_confirmation =
        status::count_requests_with_outcome(&mut conn, "awaiting_confirmation").await?;
    let oldest = status::oldest_waiting(&mut conn).await?;
    let counts = outbox::counts(&mut conn).await?;
    Ok(StatusReport {
        instances,
        last_message_at: last.map(format_ms),
        needs_review,
        awaiting_confirmation,
        oldest_waiting_request: oldest.as_ref().map(|(r, _)| r.clone()),
        oldest_waiting_since: oldest.map(|(_, t)| format_ms(t)),
        outbox_pending: counts.pending,
        outbox_failed: counts.failed,
        outbox_sent: counts.sent,
    })
}

/// The report as lines for a person.
pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    let now = now_ms();
    if r.instances.is_empty() {
        out.push_str("inbox:            no instance of `postroom run` has reported yet\n");
    }
    for i in &r.instances {
        let age = (now - i.updated_at) / 1000;
        let stale = if age > 60 {
            format!(" (last report {age}s ago: not running?)")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "inbox:            {} on {}{stale}{}\n",
            i.imap_state,
            i.instance,
            i.imap_error
                .as_deref()
                .map(|e| format!(" — last error: {e}"))
                .unwrap_or_default()
        ));
        if i.token_failures > 0 {
            out.push_str(&format!(
                "sign-in tokens:   {} failures since start\n",
                i.token_failures
            ));
        }
    }
    out.push_str(&format!(
        "last message:     {}\n",
        r.last_message_at.as_deref().unwrap_or("none yet")
    ));
    out.push_str(&format!(
        "queue:            {} waiting for review, {} waiting for confirmation\n",
        r.needs_review, r.awaiting_confirmation
    ));
    if let (Some(reference), Some(since)) = (&r.oldest_waiting_request, &r.oldest_waiting_since) {
        out.push_str(&format!("oldest waiting:   {reference} since {since}\n"));
    }
    out.push_str(&format!(
        "outbox:           {} pending, {} failed, {} sent\n",
        r.outbox_pending, r.outbox_failed, r.outbox_sent
    ));
    out
}
