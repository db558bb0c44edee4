//! `/requests`: find requests by reference, mailbox, account, kind, outcome and date; newest
//! first, a page at a time.

use super::{CursorQuery, Layout, Pager, RequestLine, kind_label, outcome_label};
use crate::outcome::Outcome;
use crate::request::RequestKind;
use crate::store::now_ms;
use crate::store::views::{self, RequestFilter};
use crate::web::auth::Staff;
use crate::web::format::{day_ms, opt, opt_lower};
use crate::web::{WebError, WebState, render_with};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

pub const PAGE_SIZE: i64 = 50;
/// Matches are counted up to here; past it the page says "more than".
pub const COUNT_CAP: i64 = 10_000;

const OUTCOMES: [Outcome; 6] = [
    Outcome::NeedsReview,
    Outcome::AwaitingConfirmation,
    Outcome::Applied,
    Outcome::Rejected,
    Outcome::Ignored,
    Outcome::Duplicate,
];

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    reference: Option<String>,
    mailbox: Option<String>,
    account: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(flatten)]
    cursor: CursorQuery,
}

/// (value, label, selected) for a select.
pub type Choice = (String, String, bool);

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    layout: Layout,
    reference: String,
    mailbox: String,
    account: String,
    from: String,
    to: String,
    kinds: Vec<Choice>,
    outcomes: Vec<Choice>,
    error: Option<String>,
    count: String,
    rows: Vec<RequestLine>,
    pager: Pager,
}

fn choices(values: &[(&str, String)], chosen: &Option<String>) -> Vec<Choice> {
    let chosen = chosen.as_deref().unwrap_or("");
    std::iter::once((String::new(), "Any".to_owned(), chosen.is_empty()))
        .chain(
            values
                .iter()
                .map(|(v, l)| ((*v).to_owned(), l.clone(), *v == chosen)),
        )
        .collect()
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, WebError> {
    let kind = opt(&q.kind).filter(|k| k.parse::<RequestKind>().is_ok());
    let outcome = opt(&q.outcome).filter(|o| o.parse::<Outcome>().is_ok());
    let dates = day_ms(&q.from, false).and_then(|f| day_ms(&q.to, true).map(|t| (f, t)));
    let (error, (from_ms, until_ms)) = match dates {
        Ok(d) => (None, d),
        Err(e) => (Some(e), (None, None)),
    };
    let filter = RequestFilter {
        reference: opt(&q.reference).map(|r| r.to_ascii_uppercase()),
        mailbox: opt_lower(&q.mailbox),
        account: opt_lower(&q.account),
        kind: kind.clone(),
        outcome: outcome.clone(),
        from_ms,
        until_ms,
    };
    let mut conn = state.store.read().await?;
    let page = views::search_requests(&mut conn, &filter, q.cursor.cursor(), PAGE_SIZE).await?;
    let count = views::count_requests(&mut conn, &filter, COUNT_CAP + 1).await?;
    drop(conn);
    let pairs = [
        ("reference", filter.reference.clone()),
        ("mailbox", filter.mailbox.clone()),
        ("account", filter.account.clone()),
        ("kind", kind.clone()),
        ("outcome", outcome.clone()),
        ("from", opt(&q.from)),
        ("to", opt(&q.to)),
    ];
    let pager = Pager::new("/requests", &pairs, &page);
    let now = now_ms();
    let count = match count {
        0 => "No request matches.".to_owned(),
        1 => "1 request matches.".to_owned(),
        n if n > COUNT_CAP => format!("More than {COUNT_CAP} requests match."),
        n => format!("{n} requests match."),
    };
    let kind_values: Vec<(&str, String)> = RequestKind::ALL
        .iter()
        .chain([RequestKind::Unknown].iter())
        .map(|k| (k.as_str(), kind_label(*k)))
        .collect();
    let outcome_values: Vec<(&str, String)> = OUTCOMES
        .iter()
        .map(|o| (o.as_str(), outcome_label(*o)))
        .collect();
    let code = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render_with(
        code,
        &RequestsPage {
            layout: Layout::new(&state, &me, "Requests", "requests").await?,
            reference: filter.reference.clone().unwrap_or_default(),
            mailbox: filter.mailbox.clone().unwrap_or_default(),
            account: filter.account.clone().unwrap_or_default(),
            from: opt(&q.from).unwrap_or_default(),
            to: opt(&q.to).unwrap_or_default(),
            kinds: choices(&kind_values, &kind),
            outcomes: choices(&outcome_values, &outcome),
            error,
            count,
            rows: page
                .items
                .into_iter()
                .map(|r| RequestLine::new(r, now))
                .collect(),
            pager,
        },
    ))
}
