//! `/directory`: organisations, their shared mailboxes with member and owner counts, the
//! mailboxes at risk (`?view=at_risk`), and accounts whose status changed recently.

use super::Layout;
use crate::accounts::AccountStatus;
use crate::store::now_ms;
use crate::store::views;
use crate::web::auth::Staff;
use crate::web::format::{query, time, time_opt};
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

pub const PAGE_SIZE: i64 = 100;
/// "Recently" for status changes.
pub const RECENT_DAYS: i64 = views::RECENT_STATUS_DAYS;

#[derive(Debug, Default, Deserialize)]
pub struct DirectoryQuery {
    view: Option<String>,
    page: Option<String>,
}

pub struct MailboxLine {
    pub address: String,
    pub organisation: String,
    pub members: i64,
    pub owners: i64,
    pub inactive: i64,
    pub at_risk: bool,
    pub risk: String,
}

pub struct ChangeLine {
    pub address: String,
    pub name: String,
    pub organisation: String,
    pub status: String,
    pub changed: String,
    /// A disabled account is deleted by retention after `[retention] disabled_accounts`.
    pub deletion: Option<String>,
}

/// A mailbox the last continuity pass found at risk, with its reminders.
pub struct ReminderLine {
    pub mailbox: String,
    pub risks: String,
    pub since: String,
    pub sent: i64,
    pub last: String,
}

/// How many open continuity episodes the page lists.
pub const REMINDERS_SHOWN: i64 = 100;

#[derive(Template)]
#[template(path = "directory.html")]
struct DirectoryPage {
    layout: Layout,
    at_risk_only: bool,
    organisations: Vec<views::OrganisationSummary>,
    mailboxes: Vec<MailboxLine>,
    changes: Vec<ChangeLine>,
    reminders: Vec<ReminderLine>,
    reminders_total: i64,
    reminders_on: bool,
    remind_every: String,
    recent_days: i64,
    /// The directory target (`[directory] target`), and what the last reconcile found.
    target: &'static str,
    drift: Option<i64>,
    prev: Option<String>,
    next: Option<String>,
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<DirectoryQuery>,
) -> Result<Response, WebError> {
    let at_risk_only = q.view.as_deref() == Some("at_risk");
    let page_no: i64 = q
        .page
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut conn = state.store.read().await?;
    let organisations = views::organisations(&mut conn).await?;
    let mut mailboxes = views::mailboxes(
        &mut conn,
        at_risk_only,
        PAGE_SIZE + 1,
        (page_no - 1).saturating_mul(PAGE_SIZE),
    )
    .await?;
    let since = now_ms() - RECENT_DAYS * 86_400_000;
    let changes = views::recent_status_changes(&mut conn, since, 100).await?;
    let (episodes, reminders_total) =
        crate::store::continuity::open_episodes(&mut conn, REMINDERS_SHOWN).await?;
    drop(conn);
    let keep_disabled =
        i64::try_from(state.cfg.retention.disabled_accounts.as_millis()).unwrap_or(i64::MAX);

    let more = i64::try_from(mailboxes.len()).unwrap_or(i64::MAX) > PAGE_SIZE;
    mailboxes.truncate(usize::try_from(PAGE_SIZE).unwrap_or(0));
    let view = at_risk_only.then(|| "at_risk".to_owned());
    let link = |n: i64| {
        format!(
            "/directory{}",
            query(&[("view", view.clone()), ("page", Some(n.to_string()))])
        )
    };
    let prev = (page_no > 1).then(|| link(page_no - 1));
    let next = more.then(|| link(page_no + 1));
    Ok(render(&DirectoryPage {
        layout: Layout::new(&state, &me, "Directory", "directory").await?,
        at_risk_only,
        organisations,
        mailboxes: mailboxes
            .into_iter()
            .map(|m| {
                let risk = match (m.owners, m.members + m.owners) {
                    (0, 0) => "nobody active",
                    (0, _) => "no active owner",
                    (_, n) if n < 2 => "only one active person",
                    _ => "",
                };
                MailboxLine {
                    at_risk: m.at_risk(),
                    risk: risk.to_owned(),
                    address: m.address,
                    organisation: m.organisation,
                    members: m.members,
                    owners: m.owners,
                    inactive: m.inactive,
                }
            })
            .collect(),
        changes: changes
            .into_iter()
            .map(|c| ChangeLine {
                address: c.address,
                name: c.name,
                organisation: c.organisation,
                deletion: (c.status == AccountStatus::Disabled)
                    .then(|| time(c.changed_at.saturating_add(keep_disabled))),
                status: c.status.as_str().to_owned(),
                changed: time(c.changed_at),
            })
            .collect(),
        reminders: episodes
            .into_iter()
            .map(|(mailbox, e)| ReminderLine {
                mailbox,
                risks: e
                    .risks
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(crate::continuity::Risk::label)
                    .collect::<Vec<_>>()
                    .join("; "),
                since: time(e.since),
                sent: e.sent_count,
                last: time_opt(e.last_sent_at),
            })
            .collect(),
        reminders_total,
        reminders_on: state.cfg.continuity.reminders,
        remind_every: humantime::format_duration(state.cfg.continuity.remind_every).to_string(),
        recent_days: RECENT_DAYS,
        target: state.cfg.directory.target.name(),
        drift: state.status.snapshot().directory_drift,
        prev,
        next,
    }))
}
