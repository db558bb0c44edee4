//! One module per page. What they share: the layout around every staff page, the pager,
//! and the way a request is shown in a list.

pub mod audit;
pub mod bulk;
pub mod directory;
pub mod health;
pub mod history;
pub mod merge;
pub mod message;
pub mod outbox;
pub mod presence;
pub mod queue;
pub mod queue_targets;
pub mod report;
pub mod request;
pub mod requests;
pub mod saved_replies;
pub mod saved_searches;
pub mod search_query;
pub mod staff;

use super::auth::Staff;
use super::format::{self, age, time};
use super::{WebError, WebState};
use crate::outcome::Outcome;
use crate::request::RequestKind;
use crate::store::views::{self, Cursor, Page, RequestSummary};
use serde::Deserialize;

/// The frame of every staff page: title, navigation, who is signed in, the sign-out form.
pub struct Layout {
    pub title: String,
    /// Which navigation entry is highlighted: `queue`, `requests`, `directory`, `audit`,
    /// `outbox`, `staff`.
    pub active: &'static str,
    pub staff: String,
    pub role: &'static str,
    /// Admin-only links (staff, CSV export) are shown to admins only; the routes check anyway.
    pub is_admin: bool,
    pub csrf: String,
    pub queue_size: i64,
    pub helpdesk: String,
}

impl Layout {
    pub async fn new(
        state: &WebState,
        me: &Staff,
        title: impl Into<String>,
        active: &'static str,
    ) -> Result<Layout, WebError> {
        let mut conn = state.store.read().await?;
        Ok(Layout {
            title: title.into(),
            active,
            staff: me.name.clone(),
            role: me.role.as_str(),
            is_admin: crate::web::access::Access::Admin.allows(me.role),
            csrf: me.csrf.clone(),
            queue_size: views::queue_size(&mut conn).await?,
            helpdesk: state.cfg.helpdesk.name.clone(),
        })
    }
}

/// `?after=ID` / `?before=ID` of a paged list.
#[derive(Debug, Default, Deserialize)]
pub struct CursorQuery {
    pub after: Option<String>,
    pub before: Option<String>,
}

impl CursorQuery {
    pub fn cursor(&self) -> Cursor {
        let id = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
        match (id(&self.after), id(&self.before)) {
            (Some(a), _) => Cursor::After(a),
            (None, Some(b)) => Cursor::Before(b),
            (None, None) => Cursor::Start,
        }
    }
}

/// Links to the neighbouring pages, keeping the list's filters.
pub struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `filters` are the query pairs that select the list (without the cursor).
    pub fn new<T>(path: &str, filters: &[(&str, Option<String>)], page: &Page<T>) -> Pager {
        let link = |key: &'static str, id: i64| {
            let mut pairs: Vec<(&str, Option<String>)> = filters.to_vec();
            pairs.push((key, Some(id.to_string())));
            format!("{path}{}", format::query(&pairs))
        };
        Pager {
            prev: page.prev.map(|id| link("before", id)),
            next: page.next.map(|id| link("after", id)),
        }
    }
}

/// Words for an outcome (`needs_review` → `Needs review`).
pub fn outcome_label(outcome: Outcome) -> String {
    match outcome {
        Outcome::NeedsReview => "Needs review".into(),
        Outcome::AwaitingConfirmation => "Awaiting confirmation".into(),
        Outcome::Applied | Outcome::Rejected | Outcome::Ignored | Outcome::Duplicate => {
            let mut c = outcome.as_str().chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

/// Words for a kind; the unknown kind is shown as such, not as "Request".
pub fn kind_label(kind: RequestKind) -> String {
    if kind == RequestKind::Unknown {
        return "Not recognised".into();
    }
    kind.title().to_owned()
}

/// A request as a row of a list.
pub struct RequestLine {
    pub reference: String,
    pub outcome: String,
    pub outcome_label: String,
    pub kind: String,
    pub reason: String,
    pub mailbox: String,
    pub requester: String,
    pub target: String,
    pub subject: String,
    pub from: String,
    pub received: String,
    pub age: String,
}

impl RequestLine {
    pub fn new(r: RequestSummary, now: i64) -> RequestLine {
        RequestLine {
            outcome_label: outcome_label(r.outcome),
            kind: kind_label(r.kind),
            reason: r.reason.unwrap_or_default(),
            mailbox: r.mailbox.unwrap_or_default(),
            requester: r.requester.unwrap_or_default(),
            target: r.target.unwrap_or_default(),
            subject: if r.subject.trim().is_empty() {
                "(no subject)".into()
            } else {
                r.subject
            },
            from: r.from_address.unwrap_or_default(),
            received: time(r.created_at),
            age: age(r.created_at, now),
            reference: r.reference,
            outcome: r.outcome.as_str().to_owned(),
        }
    }
}
