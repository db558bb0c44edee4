//! `POST /queue/bulk`: several queue entries at once (issue 17, item 5) — reject them all with
//! one message (typed, or a saved reply filled in for each), or give them all to one staff
//! member. One form on the queue page (a checkbox
//! per row), no script needed.
//!
//! Each request goes through exactly what its own page would do, one after the other: the
//! same [`crate::review`] call (the same rules, its own transaction and its own audit event
//! and reply), and the same "taken by someone else" check — a request a colleague has taken
//! is left to them unless the form says "also those taken by others". The session and its
//! CSRF token were checked once for the form, as for any POST. The answer lists what
//! happened to each.

use super::Layout;
use crate::review::{self, ReviewError};
use crate::web::auth::Staff;
use crate::web::format::is_reference;
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};

/// At most this many requests in one step (two pages of the queue).
pub const MAX: usize = 100;

pub struct BulkLine {
    pub reference: String,
    pub done: bool,
    pub what: String,
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    layout: Layout,
    heading: String,
    lines: Vec<BulkLine>,
}

enum Act {
    Reject(Message),
    Assign(String),
}

/// What the sites read: typed once for all, or a saved reply filled in for each request (its
/// own site, requester, reference and fields: `saved_replies::filled`).
enum Message {
    Typed(String),
    Saved(i64),
}

pub async fn bulk(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    match bulk_inner(&state, &me, pairs).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn bulk_inner(
    state: &WebState,
    me: &Staff,
    pairs: Vec<(String, String)>,
) -> Result<Response, WebError> {
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let mut references: Vec<String> = Vec::new();
    for (k, v) in &pairs {
        let v = v.trim();
        if k == "ref" && !references.iter().any(|r| r == v) {
            if !is_reference(v) {
                return Err(WebError::BadRequest(format!(
                    "{v:?} is not a request reference."
                )));
            }
            references.push(v.to_owned());
        }
    }
    if references.is_empty() {
        return Err(WebError::BadRequest(
            "Tick at least one request in the queue first.".into(),
        ));
    }
    if references.len() > MAX {
        return Err(WebError::BadRequest(format!(
            "At most {MAX} requests can be changed in one step."
        )));
    }
    let act = match value("action").as_str() {
        "reject" => {
            let message = value("message");
            let saved = value("reply");
            match (message.is_empty(), saved.is_empty()) {
                (true, true) => {
                    return Err(WebError::BadRequest(
                        "Write the message the sites will receive, or choose a saved reply, before rejecting.".into(),
                    ));
                }
                (false, false) => {
                    return Err(WebError::BadRequest(
                        "Write a message or choose a saved reply, not both.".into(),
                    ));
                }
                (false, true) => Act::Reject(Message::Typed(message)),
                (true, false) => match saved.parse::<i64>() {
                    Ok(id) => Act::Reject(Message::Saved(id)),
                    Err(_) => {
                        return Err(WebError::BadRequest(format!(
                            "{saved:?} is not a saved reply."
                        )));
                    }
                },
            }
        }
        "assign" => {
            let to = value("to");
            if to.is_empty() {
                return Err(WebError::BadRequest(
                    "Choose whom to give the requests to.".into(),
                ));
            }
            Act::Assign(to)
        }
        _ => {
            return Err(WebError::BadRequest(
                "Choose what to do with the selected requests.".into(),
            ));
        }
    };
    let anyway = value("confirm_claim") == "yes";

    let mut lines = Vec::with_capacity(references.len());
    for reference in references {
        let outcome = one(state, me, &reference, &act, anyway).await;
        let (done, what) = match outcome {
            Ok(what) => (true, what),
            Err(e) => (false, sentence(state, &reference, e).await),
        };
        lines.push(BulkLine {
            reference,
            done,
            what,
        });
    }
    if matches!(act, Act::Reject(_)) {
        state.status.wake_outbox();
    }
    let n = lines.iter().filter(|l| l.done).count();
    let heading = match &act {
        Act::Reject(_) => format!("Rejected {n} of {}", lines.len()),
        Act::Assign(to) => format!("Gave {n} of {} to {to}", lines.len()),
    };
    tracing::info!(staff = %me.name, done = n, of = lines.len(), "bulk action by staff");
    let layout = Layout::new(state, me, heading.clone(), "queue").await?;
    Ok(render(&BulkPage {
        layout,
        heading,
        lines,
    }))
}

/// One request, as its own page would do it; what was done, in words.
async fn one(
    state: &WebState,
    me: &Staff,
    reference: &str,
    act: &Act,
    anyway: bool,
) -> Result<String, ReviewError> {
    match act {
        Act::Reject(message) => {
            if !anyway
                && let Some(other) =
                    review::claimed_by_other(&state.store, reference, &me.name).await?
            {
                return Err(ReviewError::Claimed(format!(
                    "left to {other}, who has taken it (tick \u{201c}also those taken by others\u{201d} to decide it anyway)"
                )));
            }
            let text = match message {
                Message::Typed(t) => t.clone(),
                Message::Saved(id) => super::saved_replies::filled(state, reference, *id)
                    .await
                    .map_err(|e| ReviewError::Invalid(format!("the saved reply: {e}")))?
                    .ok_or_else(|| {
                        ReviewError::Invalid("that saved reply no longer exists".into())
                    })?,
            };
            review::reject(&state.store, &state.cfg, reference, &text, &me.name).await?;
            Ok("rejected; the reply is in the outbox".into())
        }
        Act::Assign(to) => {
            review::claim(&state.store, reference, to, &me.name).await?;
            Ok(if *to == me.name {
                "taken by you".into()
            } else {
                format!("given to {to}")
            })
        }
    }
}

/// Why one request was not done, in words; a database failure is logged, not shown.
async fn sentence(state: &WebState, reference: &str, e: ReviewError) -> String {
    match e {
        ReviewError::NotWaiting { .. } => review::what_happened(&state.store, reference)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| e.to_string()),
        ReviewError::Store(e) => {
            tracing::error!(error = %e, reference, "bulk action failed on one request");
            "not done: the database failed (the reason is in postroom's log)".into()
        }
        e @ (ReviewError::NotFound(_)
        | ReviewError::Refused(_)
        | ReviewError::Invalid(_)
        | ReviewError::Claimed(_)) => e.to_string(),
    }
}
