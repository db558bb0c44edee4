//! `/directory/history?mailbox=…[&at=DAY]`: who has been a member or owner of a shared
//! mailbox, from when and by which request, to when and by which — rebuilt from the audit
//! trail (src/audit/as_of.rs); with a day, only those who could read it at some moment of it
//! ("who could read this mailbox on 3 March?").

use super::Layout;
use crate::audit::as_of::{self, Interval};
use crate::web::auth::Staff;
use crate::web::format::{day_ms, opt};
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    mailbox: Option<String>,
    at: Option<String>,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    layout: Layout,
    mailbox: String,
    at: String,
    found: bool,
    intervals: Vec<Interval>,
    imports_after: i64,
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, WebError> {
    let mailbox = opt(&q.mailbox)
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let day = (
        day_ms(&q.at, false).map_err(WebError::BadRequest)?,
        day_ms(&q.at, true).map_err(WebError::BadRequest)?,
    );
    let mut conn = state.store.read().await?;
    let found = !mailbox.is_empty()
        && crate::store::directory::find_mailbox(&mut conn, &mailbox)
            .await?
            .is_some();
    let (intervals, imports_after) = match (found, day) {
        (false, _) => (Vec::new(), 0),
        (true, (Some(start), Some(end))) => {
            let a = as_of::memberships(&mut conn, start, end - 1, Some(&mailbox)).await?;
            (a.memberships, a.imports_after)
        }
        (true, _) => (as_of::history(&mut conn, Some(&mailbox)).await?, 0),
    };
    drop(conn);
    Ok(render(&HistoryPage {
        layout: Layout::new(&state, &me, "Mailbox history", "directory").await?,
        at: opt(&q.at).unwrap_or_default(),
        found,
        mailbox,
        intervals,
        imports_after,
    }))
}
