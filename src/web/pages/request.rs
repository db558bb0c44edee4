//! `/requests/{reference}`: one request's whole story — the email, what postroom understood
//! and why it stopped, the mailbox's people, the decision forms (while it waits for review),
//! the replies and their delivery, comments and audit events.
//!
//! The forms post to `…/apply`, `…/reject` and `…/comment`, which call [`crate::review`] (the
//! same rules as the pipeline). Success redirects back here with `?done=…` so a reload does
//! not post twice; a refusal shows the page again with the sentence and what was typed.

use super::message::EmailView;
use super::{Layout, kind_label, outcome_label};
use crate::outcome::Outcome;
use crate::request::RequestKind;
use crate::review::{self, FORM_FIELDS, ReviewError};
use crate::store::directory;
use crate::store::journal::{self, RequestRow};
use crate::store::views;
use crate::web::auth::Staff;
use crate::web::format::{is_reference, time, time_opt};
use crate::web::reasons::{self, Explained};
use crate::web::{WebError, WebState, render_with, see_other};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use std::collections::BTreeMap;

pub struct FieldInput {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    /// A select instead of a text box: (value, label, selected).
    pub options: Vec<(String, String, bool)>,
    /// Suggestions for a text box (a `datalist`): the accounts a name could be, the mailbox's
    /// members.
    pub choices: Vec<String>,
}

pub struct KindOption {
    pub value: &'static str,
    pub title: &'static str,
    pub selected: bool,
}

pub struct ReplyLine {
    pub to: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: String,
    pub created: String,
    pub sent: String,
    pub next_attempt: String,
    pub body: String,
}

pub struct CommentLine {
    pub author: String,
    pub body: String,
    pub created: String,
    /// A later email in the thread (with a link to it), not a staff note.
    pub message_id: Option<i64>,
}

pub struct AuditLine {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

pub struct MemberLine {
    pub account: String,
    pub role: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    layout: Layout,
    reference: String,
    outcome: String,
    outcome_label: String,
    kind: String,
    mailbox: String,
    requester: String,
    target: String,
    received: String,
    updated: String,
    fields: Vec<(String, String)>,
    /// "What postroom understood": each person named and how they were resolved.
    understood: Vec<String>,
    reason: Option<Explained>,
    confirmation: Option<String>,
    email: Option<EmailView>,
    organisation: String,
    members: Vec<MemberLine>,
    mailbox_known: bool,
    waiting: bool,
    notice: Option<String>,
    kinds: Vec<KindOption>,
    apply_fields: Vec<FieldInput>,
    apply_error: Option<String>,
    reject_message: String,
    reject_error: Option<String>,
    comment_text: String,
    comment_error: Option<String>,
    replies: Vec<ReplyLine>,
    /// The request's changes at the directory target (issue 15), with a retry for failed ones.
    jobs: Vec<JobLine>,
    comments: Vec<CommentLine>,
    audit: Vec<AuditLine>,
    /// Who has taken the request (issue 17): name, who gave it, since when.
    claim: Option<ClaimLine>,
    claim_error: Option<String>,
    /// Taken by someone else: a decision asks for confirmation.
    claimed_by_other: bool,
    /// Enabled staff, to hand the request to.
    colleagues: Vec<String>,
    me: String,
    /// Saved replies offered in the reject and comment forms (issue 17): (id, title).
    saved_replies: Vec<(i64, String)>,
    /// Who else has it open or is deciding it, refreshed by `static/presence.js`.
    presence: super::presence::PresenceView,
    presence_every: i64,
    /// No longer waiting: who decided it, how and when.
    decided: Option<String>,
    /// This request was merged into another (issue 17, item 7).
    merged_into: Option<MergeLine>,
    /// Requests merged into this one.
    merged: Vec<MergeLine>,
    /// The same mailbox's other requests, offered to merge into.
    merge_candidates: Vec<(String, String)>,
    merge_into: String,
    merge_error: Option<String>,
}

pub struct MergeLine {
    pub reference: String,
    pub into: String,
    pub message_id: i64,
    pub subject: String,
    pub by: String,
    pub at: String,
}

impl MergeLine {
    fn new(m: crate::store::merges::Merge) -> MergeLine {
        MergeLine {
            reference: m.reference,
            into: m.into_reference,
            message_id: m.message_id,
            subject: m.subject,
            by: m.merged_by,
            at: time(m.merged_at),
        }
    }
}

pub struct JobLine {
    pub id: i64,
    pub kind: String,
    pub status: &'static str,
    pub attempts: i64,
    pub created: String,
    pub finished: String,
    pub last_error: String,
    /// What the target read back, as JSON.
    pub result: String,
    /// `[directory] target = "manual"`, still to do: each operation's steps for a person.
    pub steps: Vec<Vec<String>>,
}

pub struct ClaimLine {
    pub staff: String,
    pub by: String,
    pub since: String,
}

/// What the staff member typed, to show again with an error.
#[derive(Default)]
struct Typed {
    apply: Option<BTreeMap<String, String>>,
    apply_error: Option<String>,
    reject_message: String,
    reject_error: Option<String>,
    comment_text: String,
    comment_error: Option<String>,
    claim_error: Option<String>,
    merge_into: String,
    merge_error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
    /// A saved reply to put in the form `into` (`reject` or `comment`), filled in (issue 17).
    reply: Option<i64>,
    into: Option<String>,
}

fn field_label(name: &str) -> &'static str {
    match name {
        "account" => "Account (the person's own address)",
        "role" => "Role in the mailbox",
        "name" => "Full name",
        "first_name" => "First name",
        "last_name" => "Last name",
        "job_title" => "Job title",
        "replacement" => "Replacement owner (a leaver who owns the mailbox)",
        "requested_by" => "Requested by (a member of the mailbox)",
        _ => "",
    }
}

async fn build(
    state: &WebState,
    me: &Staff,
    reference: &str,
    done: Option<&str>,
    typed: Typed,
) -> Result<RequestPage, WebError> {
    let not_found = || WebError::NotFound(format!("There is no request {reference}."));
    if !is_reference(reference) {
        return Err(not_found());
    }
    let mut conn = state.store.read().await?;
    let request: RequestRow = journal::find_request(&mut conn, reference)
        .await?
        .ok_or_else(not_found)?;
    if request.outcome == Outcome::NeedsReview {
        drop(conn);
        super::presence::record(
            &state.store,
            request.id,
            &me.name,
            crate::store::presence::PresenceState::Viewing,
        )
        .await;
        conn = state.store.read().await?;
    }
    let presence =
        super::presence::PresenceView::load(&mut conn, &request, &me.name, crate::store::now_ms())
            .await?;
    let decided = presence.decided.clone();
    let merged_into = crate::store::merges::of_request(&mut conn, request.id)
        .await?
        .map(MergeLine::new);
    let merged = crate::store::merges::into_request(&mut conn, request.id)
        .await?
        .into_iter()
        .map(MergeLine::new)
        .collect();
    let merge_candidates = match (&request.mailbox, request.outcome) {
        (Some(m), Outcome::NeedsReview) => {
            crate::store::merges::candidates(&mut conn, m, request.id, 20).await?
        }
        _ => Vec::new(),
    };
    let stored = views::message(&mut conn, request.message_id).await?;
    let email = stored.as_ref().map(EmailView::new);
    let replies = views::replies_of_request(&mut conn, request.id).await?;
    let jobs = crate::store::jobs::of_request(&mut conn, request.id).await?;
    let comments = views::comments_of_request(&mut conn, request.id).await?;
    let audit = views::audit_of_request(&mut conn, request.id).await?;
    let confirmation = journal::open_confirmation(&mut conn, request.id).await?;
    let claim = crate::store::claims::of_request(&mut conn, request.id).await?;
    let mailbox = match &request.mailbox {
        Some(m) => directory::find_mailbox(&mut conn, m).await?,
        None => None,
    };
    let members = match &mailbox {
        Some(m) => directory::mailbox_members(&mut conn, m.id).await?,
        None => Vec::new(),
    };
    drop(conn);

    let fields: BTreeMap<String, String> =
        serde_json::from_str(&request.fields).unwrap_or_default();
    // What the pipeline understood, as its audit event recorded it (issue 12).
    let understood: Option<crate::pipeline::Understood> = audit
        .iter()
        .find_map(|e| e.detail.get("understood"))
        .and_then(|u| serde_json::from_value(u.clone()).ok());
    let understood_lines = understood
        .as_ref()
        .map(|u| {
            let mut lines: Vec<String> = u
                .targets
                .iter()
                .map(|t| match (&t.account, t.candidates.is_empty()) {
                    (Some(a), _) if *a == t.as_written => format!("{a}: {}", t.how),
                    (Some(a), _) => format!("{} → {a}: {}", t.as_written, t.how),
                    (None, true) => format!("{}: {}", t.as_written, t.how),
                    (None, false) => {
                        format!("{}: {} ({})", t.as_written, t.how, t.candidates.join(", "))
                    }
                })
                .collect();
            if let Some(r) = &u.requester {
                lines.push(format!(
                    "Asked by {}: {}",
                    r.account.as_deref().unwrap_or(&r.as_written),
                    r.how
                ));
            }
            lines
        })
        .unwrap_or_default();
    let member_addresses: Vec<String> = members.iter().map(|m| m.account.clone()).collect();
    let mut account_choices: Vec<String> = understood
        .iter()
        .flat_map(|u| u.targets.iter().flat_map(|t| t.candidates.iter().cloned()))
        .collect();
    for a in &member_addresses {
        if !account_choices.contains(a) {
            account_choices.push(a.clone());
        }
    }
    let waiting = request.outcome == Outcome::NeedsReview;
    let stored_kind = request.kind;

    // The apply form starts from what postroom read; after a refusal, from what was typed.
    let typed_apply = typed.apply.as_ref();
    let value = |name: &str| -> String {
        if let Some(t) = typed_apply {
            return t.get(name).cloned().unwrap_or_default();
        }
        let read = fields.get(name).cloned();
        match name {
            "account" => read.or_else(|| request.target.clone()),
            "requested_by" => read.or_else(|| request.requester.clone()),
            _ => read,
        }
        .unwrap_or_default()
    };
    let chosen_kind = typed_apply
        .and_then(|t| t.get("kind"))
        .map(String::as_str)
        .unwrap_or(stored_kind.as_str())
        .to_owned();
    let kinds = RequestKind::ALL
        .iter()
        .map(|k| KindOption {
            value: k.as_str(),
            title: k.title(),
            selected: k.as_str() == chosen_kind,
        })
        .collect();
    let apply_fields = FORM_FIELDS
        .iter()
        .map(|(name, _)| {
            let v = value(name);
            let options = if *name == "role" {
                ["", "member", "owner"]
                    .iter()
                    .map(|o| {
                        let label = if o.is_empty() {
                            "(as the request says)"
                        } else {
                            o
                        };
                        ((*o).to_owned(), label.to_owned(), v.eq_ignore_ascii_case(o))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let choices = match *name {
                "account" => account_choices.clone(),
                "requested_by" | "replacement" => member_addresses.clone(),
                _ => Vec::new(),
            };
            FieldInput {
                name,
                label: field_label(name),
                value: v,
                options,
                choices,
            }
        })
        .collect();

    let now = crate::store::now_ms();
    let confirmation = confirmation.map(|c| {
        let state = if c.expires_at <= now {
            "it has expired".to_owned()
        } else {
            format!("it expires {}", time(c.expires_at))
        };
        format!(
            "A one-time code was sent to {} ({state}; {} wrong tries so far).",
            c.account, c.attempts
        )
    });

    let notice = done.and_then(|d| notice_text(d, &request, &replies));
    Ok(RequestPage {
        // A request still waiting belongs to the queue; a decided one to the search.
        layout: Layout::new(
            state,
            me,
            request.reference.clone(),
            if waiting { "queue" } else { "requests" },
        )
        .await?,
        reason: reasons::explain(&request),
        outcome_label: outcome_label(request.outcome),
        kind: kind_label(request.kind),
        mailbox: request.mailbox.clone().unwrap_or_default(),
        requester: request.requester.clone().unwrap_or_default(),
        target: request.target.clone().unwrap_or_default(),
        received: time(request.created_at),
        updated: time(request.updated_at),
        fields: fields.into_iter().collect(),
        understood: understood_lines,
        confirmation,
        email,
        organisation: mailbox
            .as_ref()
            .map(|m| m.organisation.clone())
            .unwrap_or_default(),
        mailbox_known: mailbox.is_some(),
        members: members
            .into_iter()
            .map(|m| MemberLine {
                account: m.account,
                role: m.role.as_str().to_owned(),
                status: m.account_status.as_str().to_owned(),
            })
            .collect(),
        waiting,
        notice,
        kinds,
        apply_fields,
        apply_error: typed.apply_error,
        reject_message: typed.reject_message,
        reject_error: typed.reject_error,
        comment_text: typed.comment_text,
        comment_error: typed.comment_error,
        replies: replies
            .into_iter()
            .map(|r| ReplyLine {
                to: r.to_address,
                subject: r.subject,
                status: r.status.as_str().to_owned(),
                attempts: r.attempts,
                last_error: r.last_error.unwrap_or_default(),
                created: time(r.created_at),
                sent: time_opt(r.sent_at),
                next_attempt: time(r.next_attempt_at),
                body: r.body,
            })
            .collect(),
        jobs: jobs
            .into_iter()
            .map(|j| JobLine {
                steps: manual_steps(&state.cfg, &j),
                id: j.id,
                kind: j.kind,
                status: j.status.as_str(),
                attempts: j.attempts,
                created: time(j.created_at),
                finished: time_opt(j.finished_at),
                last_error: j.last_error.unwrap_or_default(),
                result: j
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_default(),
            })
            .collect(),
        comments: comments
            .into_iter()
            .map(|c| CommentLine {
                author: c.author,
                body: c.body,
                created: time(c.created_at),
                message_id: c.message_id,
            })
            .collect(),
        audit: audit
            .into_iter()
            .map(|e| AuditLine {
                at: e.at.replace('T', " ").replace('Z', " UTC"),
                actor: e.actor,
                action: e.action,
                subject: e.subject.unwrap_or_default(),
                detail: serde_json::to_string_pretty(&e.detail).unwrap_or_default(),
            })
            .collect(),
        claimed_by_other: claim.as_ref().is_some_and(|c| c.staff != me.name),
        claim_error: typed.claim_error,
        claim: claim.map(|c| ClaimLine {
            staff: c.staff,
            by: c.claimed_by,
            since: time(c.claimed_at),
        }),
        colleagues: crate::store::staff::list(&state.store)
            .await
            .map_err(|e| WebError::Internal(e.to_string()))?
            .into_iter()
            .filter(|m| !m.disabled && m.name != me.name)
            .map(|m| m.name)
            .collect(),
        me: me.name.clone(),
        saved_replies: super::saved_replies::choices(state).await?,
        presence,
        presence_every: super::presence::EVERY_MS,
        decided,
        merged_into,
        merged,
        merge_candidates,
        merge_into: typed.merge_into,
        merge_error: typed.merge_error,
        outcome: request.outcome.as_str().to_owned(),
        reference: request.reference,
    })
}

/// The line shown after a decision: what the request is now and where its answer is.
fn notice_text(done: &str, request: &RequestRow, replies: &[views::Reply]) -> Option<String> {
    match done {
        "comment" => Some("Your comment is saved.".into()),
        "merged" => Some(
            "Merged: this request is now a duplicate and gets no reply of its own; the site's answer comes with the request it was merged into."
                .into(),
        ),
        "decided" => {
            let outcome = outcome_label(request.outcome).to_lowercase();
            // The decision's own reply: one queued when (or after) the request was last
            // decided, never the earlier "Received" acknowledgement (issue 13).
            let reply = match replies
                .iter()
                .rev()
                .find(|r| r.created_at >= request.updated_at)
            {
                Some(r) => format!(
                    " The reply to {} is in the outbox ({}). Its subject: \u{201c}{}\u{201d}.",
                    r.to_address, r.status, r.subject
                ),
                None => " No reply was queued for this decision (the site's answers for today may have reached the daily cap: see the audit events).".into(),
            };
            Some(format!(
                "Decision recorded: the request is now {outcome}.{reply}"
            ))
        }
        _ => None,
    }
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let mut typed = Typed::default();
    if let Some(id) = q.reply {
        let text = super::saved_replies::filled(&state, &reference, id)
            .await?
            .unwrap_or_default();
        match q.into.as_deref() {
            Some("comment") => typed.comment_text = text,
            _ => typed.reject_message = text,
        }
    }
    let page = build(&state, &me, &reference, q.done.as_deref(), typed).await?;
    Ok(render_with(StatusCode::OK, &page))
}

/// Show the page again with what was typed and why it was not done.
async fn again(
    state: &WebState,
    me: &Staff,
    reference: &str,
    code: StatusCode,
    typed: Typed,
) -> Response {
    match build(state, me, reference, None, typed).await {
        Ok(page) => render_with(code, &page),
        Err(e) => e.into_response(),
    }
}

/// How a review error is shown: the sentence and the HTTP status, or a page error.
fn review_failure(e: ReviewError) -> Result<(StatusCode, String), WebError> {
    match e {
        ReviewError::NotFound(r) => Err(WebError::NotFound(format!("There is no request {r}."))),
        ReviewError::Store(e) => Err(WebError::from(e)),
        e @ (ReviewError::NotWaiting { .. } | ReviewError::Claimed(_)) => {
            Ok((StatusCode::CONFLICT, e.to_string()))
        }
        e @ (ReviewError::Refused(_) | ReviewError::Invalid(_)) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
        }
    }
}

/// A request someone else has taken is decided only when the form says so (issue 17): the
/// refusal (`ReviewError::Claimed`, with the sentence to show) when it does not.
pub(super) async fn claim_gate(
    state: &WebState,
    me: &Staff,
    reference: &str,
    confirmed: bool,
) -> Result<(), ReviewError> {
    if confirmed {
        return Ok(());
    }
    match review::claimed_by_other(&state.store, reference, &me.name).await? {
        None => Ok(()),
        Some(other) => Err(ReviewError::Claimed(format!(
            "{other} has taken this request. Tick \u{201c}Decide anyway\u{201d} to decide it yourself, or leave it to them."
        ))),
    }
}

/// A decision that failed: for a request already decided, say who decided it and how.
pub(super) async fn failure_sentence(
    state: &WebState,
    reference: &str,
    e: ReviewError,
) -> Result<(StatusCode, String), WebError> {
    if matches!(e, ReviewError::NotWaiting { .. })
        && let Ok(Some(what)) = review::what_happened(&state.store, reference).await
    {
        return Ok((StatusCode::CONFLICT, what));
    }
    review_failure(e)
}

pub async fn apply(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !is_reference(&reference) {
        return WebError::NotFound(format!("There is no request {reference}.")).into_response();
    }
    let kind_text = form.get("kind").map(|k| k.trim()).unwrap_or_default();
    let confirmed = form.get("confirm_claim").is_some_and(|v| v == "yes");
    let result = match claim_gate(&state, &me, &reference, confirmed).await {
        Err(e) => Err(e),
        Ok(()) => match kind_text.parse::<RequestKind>() {
            Ok(kind) if !kind_text.is_empty() => {
                review::apply_as(&state.store, &state.cfg, &reference, kind, &form, &me.name).await
            }
            _ => Err(ReviewError::Invalid(
                "choose what the request is for".into(),
            )),
        },
    };
    match result {
        Ok(done) => {
            tracing::info!(staff = %me.name, reference = %reference, outcome = %done.outcome, "applied by staff");
            state.status.wake_outbox();
            see_other(&format!("/requests/{reference}?done=decided"))
        }
        Err(e) => match failure_sentence(&state, &reference, e).await {
            Ok((code, sentence)) => {
                let typed = Typed {
                    apply: Some(form),
                    apply_error: Some(sentence),
                    ..Typed::default()
                };
                again(&state, &me, &reference, code, typed).await
            }
            Err(e) => e.into_response(),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct RejectForm {
    #[serde(default)]
    message: String,
    #[serde(default)]
    confirm_claim: Option<String>,
}

pub async fn reject(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
    Form(form): Form<RejectForm>,
) -> Response {
    if !is_reference(&reference) {
        return WebError::NotFound(format!("There is no request {reference}.")).into_response();
    }
    let confirmed = form.confirm_claim.as_deref() == Some("yes");
    let result = match claim_gate(&state, &me, &reference, confirmed).await {
        Err(e) => Err(e),
        Ok(()) => {
            review::reject(
                &state.store,
                &state.cfg,
                &reference,
                &form.message,
                &me.name,
            )
            .await
        }
    };
    match result {
        Ok(_) => {
            tracing::info!(staff = %me.name, reference = %reference, "rejected by staff");
            state.status.wake_outbox();
            see_other(&format!("/requests/{reference}?done=decided"))
        }
        Err(e) => match failure_sentence(&state, &reference, e).await {
            Ok((code, sentence)) => {
                let typed = Typed {
                    reject_message: form.message,
                    reject_error: Some(sentence),
                    ..Typed::default()
                };
                again(&state, &me, &reference, code, typed).await
            }
            Err(e) => e.into_response(),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    text: String,
}

pub async fn comment(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
    Form(form): Form<CommentForm>,
) -> Response {
    if !is_reference(&reference) {
        return WebError::NotFound(format!("There is no request {reference}.")).into_response();
    }
    match review::comment(&state.store, &reference, &form.text, &me.name).await {
        Ok(()) => see_other(&format!("/requests/{reference}?done=comment#comments")),
        Err(e) => match review_failure(e) {
            Ok((code, sentence)) => {
                let typed = Typed {
                    comment_text: form.text,
                    comment_error: Some(sentence),
                    ..Typed::default()
                };
                again(&state, &me, &reference, code, typed).await
            }
            Err(e) => e.into_response(),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct ClaimForm {
    /// Whom to give it to; absent or empty: the staff member themselves.
    #[serde(default)]
    to: Option<String>,
}

/// Take a waiting request, or hand it to a colleague (issue 17).
pub async fn claim(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
    Form(form): Form<ClaimForm>,
) -> Response {
    if !is_reference(&reference) {
        return WebError::NotFound(format!("There is no request {reference}.")).into_response();
    }
    let to = form
        .to
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&me.name)
        .to_owned();
    match review::claim(&state.store, &reference, &to, &me.name).await {
        Ok(()) => see_other(&format!("/requests/{reference}#claim")),
        Err(e) => match failure_sentence(&state, &reference, e).await {
            Ok((code, sentence)) => {
                let typed = Typed {
                    claim_error: Some(sentence),
                    ..Typed::default()
                };
                again(&state, &me, &reference, code, typed).await
            }
            Err(e) => e.into_response(),
        },
    }
}

/// A merge that was refused: the page again, with the sentence and what was typed.
pub(super) async fn merge_refused(
    state: &WebState,
    me: &Staff,
    reference: &str,
    code: StatusCode,
    into: String,
    sentence: String,
) -> Response {
    let typed = Typed {
        merge_into: into,
        merge_error: Some(sentence),
        ..Typed::default()
    };
    again(state, me, reference, code, typed).await
}

/// Put a request back among the unclaimed.
pub async fn release(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
) -> Response {
    if !is_reference(&reference) {
        return WebError::NotFound(format!("There is no request {reference}.")).into_response();
    }
    match review::release(&state.store, &reference, &me.name).await {
        Ok(()) => see_other(&format!("/requests/{reference}#claim")),
        Err(e) => match failure_sentence(&state, &reference, e).await {
            Ok((code, sentence)) => {
                let typed = Typed {
                    claim_error: Some(sentence),
                    ..Typed::default()
                };
                again(&state, &me, &reference, code, typed).await
            }
            Err(e) => e.into_response(),
        },
    }
}

/// Try a failed job of the request again (issue 15): a provisioning job the directory refused,
/// once someone has fixed the cause. Audited (`job.retry`).
pub async fn retry_job(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path((reference, id)): Path<(String, i64)>,
) -> Response {
    if let Err(e) = job_of_request(&state, &reference, id).await {
        return e.into_response();
    }
    let actor = format!("staff:{}", me.name);
    match crate::ops::jobs::retry(&state.store, id, &actor).await {
        Ok(true) => see_other(&format!("/requests/{reference}#jobs")),
        Ok(false) => (
            StatusCode::CONFLICT,
            "This job is not failed: it is done, or already being tried.",
        )
            .into_response(),
        Err(e) => WebError::from(e).into_response(),
    }
}

/// A pending provisioning job's steps, when a person makes the changes (`target = "manual"`).
fn manual_steps(cfg: &crate::config::Config, j: &crate::store::jobs::JobRow) -> Vec<Vec<String>> {
    let manual = matches!(cfg.directory.target, crate::provision::Target::Manual);
    if !manual || j.status != crate::store::jobs::JobStatus::Pending {
        return Vec::new();
    }
    serde_json::from_str::<crate::desk::provision_job::ProvisionJob>(&j.payload)
        .map(|p| {
            p.operations
                .iter()
                .map(crate::provision::manual::steps)
                .collect()
        })
        .unwrap_or_default()
}

/// A person has made a manual job's changes (`[directory] target = "manual"`): the job is done
/// (audited as theirs), and the site's held reply goes out.
pub async fn job_done(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path((reference, id)): Path<(String, i64)>,
) -> Response {
    if let Err(e) = job_of_request(&state, &reference, id).await {
        return e.into_response();
    }
    if !matches!(state.cfg.directory.target, crate::provision::Target::Manual) {
        return (
            StatusCode::CONFLICT,
            "Changes are made by the directory target, not by hand.",
        )
            .into_response();
    }
    let actor = format!("staff:{}", me.name);
    match crate::desk::provision_job::done_by_hand(&state.store, id, &actor).await {
        Ok(true) => {
            state.status.wake_outbox();
            see_other(&format!("/requests/{reference}#jobs"))
        }
        Ok(false) => (
            StatusCode::CONFLICT,
            "This job is not waiting for a person.",
        )
            .into_response(),
        Err(e) => WebError::from(e).into_response(),
    }
}

/// Job `id` is one of request `reference`'s: a job is acted on only from its own request's page.
async fn job_of_request(state: &WebState, reference: &str, id: i64) -> Result<(), WebError> {
    let not_found = || WebError::NotFound(format!("There is no such job of request {reference}."));
    if !is_reference(reference) {
        return Err(not_found());
    }
    let mut conn = state.store.read().await?;
    let request = journal::find_request(&mut conn, reference).await?;
    let job = crate::store::jobs::find(&mut conn, id).await?;
    match (request, job) {
        (Some(r), Some(j)) if j.request_id == Some(r.id) => Ok(()),
        _ => Err(not_found()),
    }
}
