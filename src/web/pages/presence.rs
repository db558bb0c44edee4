//! "Who else is on this request" (issue 17, item 2): the notice at the top of a waiting
//! request's page, and `POST /requests/{reference}/presence`, the heartbeat the page's small
//! script (`static/presence.js`) sends every few seconds, answered with the notice's HTML.
//!
//! Opening the page records the staff member as viewing it; the script records them as
//! deciding once they type into a decision form. Each record lasts [`TTL_MS`] after its last
//! heartbeat (a page without JavaScript counts as open for that long after it was loaded).
//! The notice also says who has taken the request and, once someone has decided it, who did
//! what and when — so a colleague still looking at it learns before they submit.

use crate::outcome::Outcome;
use crate::store::claims;
use crate::store::journal::{self, RequestRow};
use crate::store::presence::{self, PresenceState};
use crate::store::{Conn, Store, StoreError, format_ms, now_ms};
use crate::web::auth::Staff;
use crate::web::format::is_reference;
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

/// How long a page view or heartbeat counts as "open".
pub const TTL_MS: i64 = 45_000;
/// How often the page's script sends its heartbeat (and refreshes the notice).
pub const EVERY_MS: i64 = 10_000;

pub struct OtherLine {
    pub staff: String,
    pub deciding: bool,
}

/// The notice, as the page and the heartbeat show it.
pub struct PresenceView {
    pub reference: String,
    pub others: Vec<OtherLine>,
    /// Taken by someone else: their name.
    pub claimed_by: Option<String>,
    /// No longer waiting: who decided it, how and when.
    pub decided: Option<String>,
}

impl PresenceView {
    /// What `me` is told about `request` now.
    pub async fn load(
        conn: &mut Conn,
        request: &RequestRow,
        me: &str,
        now: i64,
    ) -> Result<PresenceView, StoreError> {
        let decided = if request.outcome == Outcome::NeedsReview {
            None
        } else {
            Some(decided_sentence(conn, request).await?)
        };
        let others = presence::others(conn, request.id, me, now)
            .await?
            .into_iter()
            .map(|p| OtherLine {
                deciding: p.state == PresenceState::Deciding,
                staff: p.staff,
            })
            .collect();
        let claimed_by = claims::of_request(conn, request.id)
            .await?
            .map(|c| c.staff)
            .filter(|s| s != me);
        Ok(PresenceView {
            reference: request.reference.clone(),
            others,
            claimed_by,
            decided,
        })
    }
}

/// "HD-000001 has been decided: applied by alice at …" (or what it is now, when no decision
/// event names who).
pub async fn decided_sentence(conn: &mut Conn, request: &RequestRow) -> Result<String, StoreError> {
    Ok(match claims::last_decision(conn, request.id).await? {
        Some(d) => format!(
            "{} has been decided: {} by {} at {}.",
            request.reference,
            d.action
                .as_str()
                .trim_start_matches("request.")
                .replace('_', " "),
            d.actor.trim_start_matches("staff:"),
            format_ms(d.at)
        ),
        None => format!(
            "{} is no longer waiting for review (it is {}).",
            request.reference,
            request.outcome.as_str().replace('_', " ")
        ),
    })
}

/// Record `me` on the request; a failure is logged, never shown: the page works without it.
pub async fn record(store: &Store, request_id: i64, me: &str, state: PresenceState) {
    let now = now_ms();
    let result = store
        .transaction(|mut tx| async move {
            let r = presence::touch(&mut tx, request_id, me, state, now, TTL_MS).await;
            (tx, r)
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record who has a request open");
    }
}

#[derive(Template)]
#[template(path = "_presence.html")]
struct Fragment {
    presence: PresenceView,
}

#[derive(Debug, Deserialize)]
pub struct BeatForm {
    #[serde(default)]
    state: Option<String>,
}

/// The heartbeat: record the staff member (viewing or deciding) and answer with the notice.
pub async fn beat(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
    Form(form): Form<BeatForm>,
) -> Response {
    match beat_inner(&state, &me, &reference, form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn beat_inner(
    state: &WebState,
    me: &Staff,
    reference: &str,
    form: BeatForm,
) -> Result<Response, WebError> {
    let not_found = || WebError::NotFound(format!("There is no request {reference}."));
    if !is_reference(reference) {
        return Err(not_found());
    }
    let doing = match form.state.as_deref().unwrap_or("viewing").parse() {
        Ok(s) => s,
        Err(e) => return Err(WebError::BadRequest(e)),
    };
    let mut conn = state.store.read().await?;
    let request = journal::find_request(&mut conn, reference)
        .await?
        .ok_or_else(not_found)?;
    drop(conn);
    if request.outcome == Outcome::NeedsReview {
        record(&state.store, request.id, &me.name, doing).await;
    }
    let mut conn = state.store.read().await?;
    let presence = PresenceView::load(&mut conn, &request, &me.name, now_ms()).await?;
    Ok(render(&Fragment { presence }))
}
