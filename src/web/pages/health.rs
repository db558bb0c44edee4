//! `/healthz` and `/metrics`: for load balancers and Prometheus, no session needed.
//!
//! `/healthz` answers 200 when the database answers and IMAP (if this process watches it) is
//! connected or has been down for less than [`IMAP_GRACE`]; 503 otherwise. The body says
//! which part is unwell. `/metrics` is the Prometheus text format: request counts by outcome
//! and the queue size from the database, the outbox backlog, and what [`Status`] collects.

use crate::outcome::Outcome;
use crate::status::{IMAP_GRACE, ImapState, LATENCY_BUCKETS};
use crate::store::outbox::{self, OutboxCounts};
use crate::store::{StoreError, now_ms, views};
use crate::web::WebState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::fmt::Write;
use std::time::Duration;

/// A health check must answer even when the database hangs.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

struct DbFacts {
    outcomes: Vec<(String, i64)>,
    outbox: OutboxCounts,
    oldest_pending: Option<Duration>,
}

async fn db_facts(state: &WebState, with_outcomes: bool) -> Result<DbFacts, String> {
    let work = async {
        let mut conn = state.store.read().await?;
        views::ping(&mut conn).await?;
        let outcomes = if with_outcomes {
            views::outcome_counts(&mut conn).await?
        } else {
            Vec::new()
        };
        let outbox = outbox::counts(&mut conn).await?;
        let oldest_pending = outbox::oldest_pending_age(&mut conn, now_ms()).await?;
        Ok::<_, StoreError>(DbFacts {
            outcomes,
            outbox,
            oldest_pending,
        })
    };
    match tokio::time::timeout(DB_TIMEOUT, work).await {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", DB_TIMEOUT.as_secs())),
    }
}

pub async fn healthz(State(state): State<WebState>) -> Response {
    let now = now_ms();
    let db = db_facts(&state, false).await;
    let snap = state.status.snapshot();
    let imap_ok = snap.imap_healthy(now, IMAP_GRACE);
    let healthy = db.is_ok() && imap_ok;
    let time = |ms: Option<i64>| ms.map(crate::store::format_ms);
    // Only from a database that answered: a hanging one already cost its timeout.
    let audit = match &db {
        Ok(_) => audit_facts(&state).await,
        Err(_) => serde_json::Value::Null,
    };
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "database": match &db {
            Ok(_) => json!({ "ok": true }),
            Err(e) => {
                tracing::warn!(error = %e, "health check: database");
                json!({ "ok": false, "error": "the database did not answer; see the log" })
            }
        },
        "imap": {
            "ok": imap_ok,
            "state": snap.imap_state.as_str(),
            "since": time(Some(snap.imap_since_ms)),
            "connected_at": time(snap.imap_connected_at_ms),
            "last_error": snap.imap_last_error,
            "last_error_at": time(snap.imap_last_error_at_ms),
        },
        "last_message_processed_at": time(snap.last_processed_ms),
        "outbox": db.as_ref().ok().map(|f| json!({
            "pending": f.outbox.pending,
            "failed": f.outbox.failed,
            "oldest_pending_seconds": f.oldest_pending.map(|d| d.as_secs()),
        })),
        "audit": audit,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The audit chain's head and its last signed checkpoint (for a monitor to copy elsewhere);
/// `null` when the database does not answer. Not part of the health verdict.
async fn audit_facts(state: &WebState) -> serde_json::Value {
    let work = async {
        let mut conn = state.store.read().await?;
        let (events, head) = crate::audit::chain::head(&mut conn).await?;
        let last = crate::audit::checkpoint::latest(&mut conn).await?;
        Ok::<_, StoreError>(json!({
            "events": events,
            "head": head,
            "last_checkpoint": last,
        }))
    };
    match tokio::time::timeout(DB_TIMEOUT, work).await {
        Ok(Ok(v)) => v,
        _ => serde_json::Value::Null,
    }
}

/// One metric family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(State(state): State<WebState>) -> Response {
    let db = db_facts(&state, true).await;
    let snap = state.status.snapshot();
    let mut out = String::new();

    family(
        &mut out,
        "postroom_database_up",
        "gauge",
        "1 when the database answered this scrape.",
    );
    let _ = writeln!(out, "postroom_database_up {}", u8::from(db.is_ok()));

    if let Ok(f) = &db {
        family(
            &mut out,
            "postroom_messages",
            "gauge",
            "Requests recorded, by outcome (from the database, all time).",
        );
        let known = [
            Outcome::Applied,
            Outcome::Rejected,
            Outcome::NeedsReview,
            Outcome::AwaitingConfirmation,
            Outcome::Ignored,
            Outcome::Duplicate,
        ];
        let count = |o: &str| f.outcomes.iter().find(|(k, _)| k == o).map(|(_, n)| *n);
        for o in known {
            let _ = writeln!(
                out,
                "postroom_messages{{outcome=\"{}\"}} {}",
                o.as_str(),
                count(o.as_str()).unwrap_or(0)
            );
        }
        for (o, n) in f
            .outcomes
            .iter()
            .filter(|(o, _)| !known.iter().any(|k| k.as_str() == o))
        {
            let _ = writeln!(out, "postroom_messages{{outcome=\"{}\"}} {n}", label(o));
        }

        family(
            &mut out,
            "postroom_review_queue_size",
            "gauge",
            "Requests waiting for a person on the helpdesk.",
        );
        let _ = writeln!(
            out,
            "postroom_review_queue_size {}",
            count(Outcome::NeedsReview.as_str()).unwrap_or(0)
        );

        family(
            &mut out,
            "postroom_outbox_replies",
            "gauge",
            "Replies in the outbox, by status.",
        );
        for (status, n) in [
            ("pending", f.outbox.pending),
            ("failed", f.outbox.failed),
            ("sent", f.outbox.sent),
        ] {
            let _ = writeln!(out, "postroom_outbox_replies{{status=\"{status}\"}} {n}");
        }
        family(
            &mut out,
            "postroom_outbox_oldest_pending_seconds",
            "gauge",
            "How long the oldest waiting reply has waited (0 when none waits).",
        );
        let _ = writeln!(
            out,
            "postroom_outbox_oldest_pending_seconds {}",
            f.oldest_pending.map(|d| d.as_secs()).unwrap_or(0)
        );
    }

    over_target(&state, &mut out).await;
    if let Ok(mut conn) = state.store.read().await
        && let Ok(counts) = crate::store::jobs::counts(&mut conn).await
    {
        family(
            &mut out,
            "postroom_jobs",
            "gauge",
            "Jobs (directory provisioning), by kind and state: pending ones wait on the target, failed ones on staff.",
        );
        for (kind, status, n) in counts {
            let _ = writeln!(
                out,
                "postroom_jobs{{kind=\"{}\",status=\"{}\"}} {n}",
                label(&kind),
                label(&status)
            );
        }
    }
    if let Some(drift) = snap.directory_drift {
        family(
            &mut out,
            "postroom_directory_drift",
            "gauge",
            "Differences the last reconcile found between postroom's directory and the target.",
        );
        let _ = writeln!(out, "postroom_directory_drift {drift}");
    }

    family(
        &mut out,
        "postroom_imap_watched",
        "gauge",
        "1 when this process runs the IMAP watcher.",
    );
    let _ = writeln!(
        out,
        "postroom_imap_watched {}",
        u8::from(snap.imap_state != ImapState::NotWatched)
    );
    family(
        &mut out,
        "postroom_imap_connected",
        "gauge",
        "1 when the IMAP watcher is connected.",
    );
    let _ = writeln!(
        out,
        "postroom_imap_connected {}",
        u8::from(snap.imap_state == ImapState::Connected)
    );

    family(
        &mut out,
        "postroom_processing_seconds",
        "histogram",
        "Time from fetching a message to committing its outcome.",
    );
    for (le, n) in LATENCY_BUCKETS.iter().zip(&snap.latency_cumulative) {
        let _ = writeln!(out, "postroom_processing_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "postroom_processing_seconds_bucket{{le=\"+Inf\"}} {}",
        snap.latency_count
    );
    let _ = writeln!(
        out,
        "postroom_processing_seconds_sum {}",
        snap.latency_sum_seconds
    );
    let _ = writeln!(
        out,
        "postroom_processing_seconds_count {}",
        snap.latency_count
    );

    family(
        &mut out,
        "postroom_last_message_processed_timestamp_seconds",
        "gauge",
        "When the last message was processed (Unix time; 0: none since start).",
    );
    let _ = writeln!(
        out,
        "postroom_last_message_processed_timestamp_seconds {}",
        snap.last_processed_ms.unwrap_or(0) / 1000
    );
    family(
        &mut out,
        "postroom_token_failures_total",
        "counter",
        "Credential tokens that could not be obtained or were refused, since start.",
    );
    let _ = writeln!(out, "postroom_token_failures_total {}", snap.token_failures);
    // The staff page's sign-in (issue 13): a rise in refusals is someone guessing or flooding.
    let checks = &state.checks;
    family(
        &mut out,
        "postroom_signin_checks_total",
        "counter",
        "Staff sign-in passwords checked by this process, since start.",
    );
    let _ = writeln!(out, "postroom_signin_checks_total {}", checks.checked());
    family(
        &mut out,
        "postroom_signin_refused_total",
        "counter",
        "Staff sign-in tries refused unchecked, since start: throttled (too many failures) or busy (too many checks at once).",
    );
    let _ = writeln!(
        out,
        "postroom_signin_refused_total{{why=\"throttled\"}} {}",
        checks.throttled()
    );
    let _ = writeln!(
        out,
        "postroom_signin_refused_total{{why=\"busy\"}} {}",
        checks.busy()
    );
    family(
        &mut out,
        "postroom_start_time_seconds",
        "gauge",
        "When this process started (Unix time).",
    );
    let _ = writeln!(
        out,
        "postroom_start_time_seconds {}",
        snap.started_at_ms / 1000
    );

    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

/// `postroom_requests_over_target{kind}`: waiting requests past their kind's `[queue]
/// targets` (issue 17), one line per kind with a target. Nothing without targets.
async fn over_target(state: &WebState, out: &mut String) {
    let q = &state.cfg.queue;
    if q.targets.is_empty() {
        return;
    }
    let Ok(mut conn) = state.store.read().await else {
        return;
    };
    let waiting =
        match crate::store::targets::waiting(&mut conn, crate::store::views::QueueWho::All).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("metrics: the waiting requests could not be read: {e}");
                return;
            }
        };
    drop(conn);
    family(
        out,
        "postroom_requests_over_target",
        "gauge",
        "Requests waiting for a person longer than their kind's target ([queue] targets, in working time).",
    );
    for (kind, n) in crate::deadlines::over_target(q, &waiting, now_ms()) {
        let _ = writeln!(
            out,
            "postroom_requests_over_target{{kind=\"{}\"}} {n}",
            kind.as_str()
        );
    }
}
