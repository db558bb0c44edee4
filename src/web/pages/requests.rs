//! `/requests`: find requests by reference, mailbox, account, kind, outcome and date, or by
//! any account, name or mailbox they mention (issue 17); newest first, a page at a time. A
//! staff member's saved searches are listed above the form (`saved_searches.rs`).

use super::search_query::{SearchQuery, filter_pairs};
use super::{Layout, Pager, RequestLine, kind_label, outcome_label};
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

/// (value, label, selected) for a select.
pub type Choice = (String, String, bool);

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    layout: Layout,
    reference: String,
    mailbox: String,
    account: String,
    mention: String,
    from: String,
    to: String,
    kinds: Vec<Choice>,
    outcomes: Vec<Choice>,
    error: Option<String>,
    count: String,
    rows: Vec<RequestLine>,
    pager: Pager,
    /// The signed-in member's saved searches (issue 17).
    saved: Vec<super::saved_searches::SavedLine>,
    /// This search's query string, for "save this search".
    this_query: String,
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
        mention: opt(&q.mention).and_then(|m| crate::store::mentions::search_term(&m)),
    };
    let mut conn = state.store.read().await?;
    let page = views::search_requests(&mut conn, &filter, q.cursor.cursor(), PAGE_SIZE).await?;
    let count = views::count_requests(&mut conn, &filter, COUNT_CAP + 1).await?;
    let saved = super::saved_searches::lines(&mut conn, &me.name).await?;
    drop(conn);
    let pairs = filter_pairs(&q);
    let this_query = crate::web::format::query(&pairs)
        .trim_start_matches('?')
        .to_owned();
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
            mention: opt(&q.mention).unwrap_or_default(),
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
            saved,
            this_query,
        },
    ))
}
