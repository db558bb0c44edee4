//! The requests page's search, as a query string: what the page reads, what its links and
//! pager carry, and what a saved search keeps (`saved_searches.rs`). Its own module so that the
//! page and the saved searches both use it without using each other.

use super::CursorQuery;
use crate::outcome::Outcome;
use crate::request::RequestKind;
use crate::web::format::{opt, opt_lower};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    pub(crate) reference: Option<String>,
    pub(crate) mailbox: Option<String>,
    pub(crate) account: Option<String>,
    /// Any account, name or mailbox the request mentions.
    pub(crate) mention: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) outcome: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    #[serde(flatten)]
    pub(crate) cursor: CursorQuery,
}

/// The search's filters as query pairs, as the page reads them (no cursor): what its links,
/// its pager and a saved search keep.
pub(crate) fn filter_pairs(q: &SearchQuery) -> Vec<(&'static str, Option<String>)> {
    let kind = opt(&q.kind).filter(|k| k.parse::<RequestKind>().is_ok());
    let outcome = opt(&q.outcome).filter(|o| o.parse::<Outcome>().is_ok());
    vec![
        (
            "reference",
            opt(&q.reference).map(|r| r.to_ascii_uppercase()),
        ),
        ("mailbox", opt_lower(&q.mailbox)),
        ("account", opt_lower(&q.account)),
        ("mention", opt(&q.mention)),
        ("kind", kind),
        ("outcome", outcome),
        ("from", opt(&q.from)),
        ("to", opt(&q.to)),
    ]
}

/// A query string reduced to the search's own filters, in their order (`None`: it does not
/// read as a query string). What a saved search stores.
pub fn canonical_query(raw: &str) -> Option<String> {
    let q: SearchQuery = serde_urlencoded::from_str(raw.trim_start_matches('?')).ok()?;
    Some(
        crate::web::format::query(&filter_pairs(&q))
            .trim_start_matches('?')
            .to_owned(),
    )
}
