//! `/` and `/queue`: requests waiting for a person, oldest first; who has taken which
//! (issue 17), and the views "mine", "unclaimed" and "all"; with `[queue] targets`, in
//! order of time left (`queue_targets.rs`).

use super::{CursorQuery, Layout, Pager, RequestLine};
use crate::deadlines::Standing;
use crate::store::views::QueueWho;
use crate::store::{claims, now_ms};
use crate::web::auth::Staff;
use crate::web::format::age;
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

/// Rows per page: a morning's worth at a glance.
pub const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    /// `mine`, `unclaimed`, or all (absent).
    who: Option<String>,
    #[serde(flatten)]
    cursor: CursorQuery,
}

pub struct QueueRow {
    pub line: RequestLine,
    /// Who has it, and for how long; empty when nobody.
    pub claimed_by: String,
    pub claimed_for: String,
    pub mine: bool,
    /// Against its kind's target (`[queue] targets`): words, and a class for the colour.
    pub time_left: String,
    pub target_class: &'static str,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    layout: Layout,
    rows: Vec<QueueRow>,
    pager: Pager,
    who: String,
    /// `[queue] targets` are set: the queue is in order of time left.
    with_targets: bool,
    /// Enabled staff, for "give the selected to" (bulk, issue 17).
    staff: Vec<String>,
    me: String,
    /// Saved replies the bulk reject offers, each filled in per request: (id, title).
    saved_replies: Vec<(i64, String)>,
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<QueueQuery>,
) -> Result<Response, WebError> {
    let layout = Layout::new(&state, &me, "Review queue", "queue").await?;
    let (who, view) = match q.who.as_deref() {
        Some("mine") => (QueueWho::Mine(&me.name), "mine"),
        Some("unclaimed") => (QueueWho::Unclaimed, "unclaimed"),
        _ => (QueueWho::All, ""),
    };
    let mut conn = state.store.read().await?;
    let now = now_ms();
    let (page, mut standing) = super::queue_targets::page(
        &mut conn,
        &state.cfg.queue,
        q.cursor.cursor(),
        PAGE_SIZE,
        who,
        now,
    )
    .await?;
    let ids: Vec<i64> = page.items.iter().map(|r| r.id).collect();
    let mut held = claims::of_requests(&mut conn, &ids).await?;
    drop(conn);
    let filters = [("who", (!view.is_empty()).then(|| view.to_owned()))];
    let pager = Pager::new("/queue", &filters, &page);
    let rows = page
        .items
        .into_iter()
        .map(|r| {
            let claim = held.remove(&r.id);
            let standing = standing.remove(&r.id);
            QueueRow {
                time_left: standing.map(Standing::text).unwrap_or_default(),
                target_class: standing.map_or("", Standing::class),
                claimed_by: claim.as_ref().map(|c| c.staff.clone()).unwrap_or_default(),
                claimed_for: claim
                    .as_ref()
                    .map(|c| age(c.claimed_at, now))
                    .unwrap_or_default(),
                mine: claim.as_ref().is_some_and(|c| c.staff == me.name),
                line: RequestLine::new(r, now),
            }
        })
        .collect();
    let staff = crate::store::staff::list(&state.store)
        .await?
        .into_iter()
        .filter(|m| !m.disabled)
        .map(|m| m.name)
        .collect();
    Ok(render(&QueuePage {
        layout,
        rows,
        pager,
        who: view.to_owned(),
        with_targets: !state.cfg.queue.targets.is_empty(),
        staff,
        me: me.name.clone(),
        saved_replies: super::saved_replies::choices(&state).await?,
    }))
}
