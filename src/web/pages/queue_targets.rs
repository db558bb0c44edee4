//! The queue in order of time left (issue 17): with `[queue] targets`, the waiting requests
//! are ordered by the working time left under their kind's target (over target first, no
//! target last), and each row says how it stands. Without targets, the queue is oldest first
//! as before. The page cursor is still a request id: the page after (before) that request in
//! this order; a request decided since is no longer in the list, and then the list starts
//! again from the top.

use crate::deadlines::{self, Standing};
use crate::queue_config::QueueConfig;
use crate::store::targets;
use crate::store::views::{self, Cursor, Page, QueueWho, RequestSummary};
use crate::store::{Conn, StoreError};
use std::collections::HashMap;

/// A page of the queue and how each of its requests stands (empty without targets).
pub async fn page(
    conn: &mut Conn,
    q: &QueueConfig,
    cursor: Cursor,
    limit: i64,
    who: QueueWho<'_>,
    now: i64,
) -> Result<(Page<RequestSummary>, HashMap<i64, Standing>), StoreError> {
    if q.targets.is_empty() {
        return Ok((
            views::queue(conn, cursor, limit, who).await?,
            HashMap::new(),
        ));
    }
    let ordered = deadlines::order(q, targets::waiting(conn, who).await?, now);
    let limit = usize::try_from(views::clamp_limit(limit)).unwrap_or(50);
    let at = |id: i64| ordered.iter().position(|(w, _)| w.id == id);
    let (start, end) = match cursor {
        Cursor::Start => (0, limit),
        Cursor::After(id) => match at(id) {
            Some(i) => (i + 1, i + 1 + limit),
            None => (0, limit),
        },
        Cursor::Before(id) => match at(id) {
            Some(i) => (i.saturating_sub(limit), i),
            None => (0, limit),
        },
    };
    let end = end.min(ordered.len());
    let start = start.min(end);
    let shown = ordered.get(start..end).unwrap_or_default();
    let ids: Vec<i64> = shown.iter().map(|(w, _)| w.id).collect();
    let standing: HashMap<i64, Standing> = shown.iter().map(|(w, s)| (w.id, *s)).collect();
    let items = targets::summaries(conn, &ids).await?;
    Ok((
        Page {
            prev: items.first().map(|r| r.id).filter(|_| start > 0),
            next: items.last().map(|r| r.id).filter(|_| end < ordered.len()),
            items,
        },
        standing,
    ))
}
