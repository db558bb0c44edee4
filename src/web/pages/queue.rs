//! `/` and `/queue`: requests waiting for a person, oldest first.

use super::{CursorQuery, Layout, Pager, RequestLine};
use crate::store::now_ms;
use crate::store::views;
use crate::web::auth::Staff;
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;

/// Rows per page: a morning's worth at a glance.
pub const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    layout: Layout,
    rows: Vec<RequestLine>,
    pager: Pager,
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<CursorQuery>,
) -> Result<Response, WebError> {
    let layout = Layout::new(&state, &me, "Review queue", "queue").await?;
    let mut conn = state.store.read().await?;
    let page = views::queue(&mut conn, q.cursor(), PAGE_SIZE).await?;
    let pager = Pager::new("/queue", &[], &page);
    let now = now_ms();
    let rows = page
        .items
        .into_iter()
        .map(|r| RequestLine::new(r, now))
        .collect();
    Ok(render(&QueuePage {
        layout,
        rows,
        pager,
    }))
}
