//! What a person on the helpdesk does with a request postroom could not decide alone: apply it
//! as a kind they choose (through the same rules as the pipeline), reject it with a message,
//! or comment. Used by the staff page; every act is audited with the staff member's name.

use crate::action::AuditAction;
use crate::config::Config;
use crate::desk::Mode;
use crate::desk::answer::enqueue;
use crate::desk::processed::Processed;
use crate::desk::settle::{self, Answer, Rewrite, Row, Settle};
use crate::desk::snapshot::load_snapshot;
use crate::desk::stored;
use crate::outcome::Outcome;
use crate::password;
use crate::reason::Reason;
use crate::reply::{self, Notice};
use crate::request::RequestKind;
use crate::request::extract::{Field, KindMatch};
use crate::store::journal::{self, NewAuditEvent, RequestRow};
use crate::store::{Conn, Store, StoreError};
use serde_json::json;
use std::collections::BTreeMap;

/// Why a staff action was not carried out. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no request {0}")]
    NotFound(String),
    #[error("request {reference} is {outcome}: only requests waiting for review can be decided")]
    NotWaiting { reference: String, outcome: String },
    /// The rules refuse: the sentence says why, as the site would be told.
    #[error("{}", .0.explain())]
    Refused(Reason),
    #[error("{0}")]
    Invalid(String),
    /// Someone else has taken the request and the decision did not say to go on anyway.
    #[error("{0}")]
    Claimed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::store::Conflict for ReviewError {
    fn is_conflict(&self) -> bool {
        match self {
            ReviewError::Store(e) => e.is_retryable(),
            ReviewError::NotFound(_)
            | ReviewError::NotWaiting { .. }
            | ReviewError::Refused(_)
            | ReviewError::Invalid(_)
            | ReviewError::Claimed(_) => false,
        }
    }
}

/// The fields a staff member may set on "apply as", by their names on the form.
pub const FORM_FIELDS: &[(&str, Field)] = &[
    ("account", Field::Account),
    ("role", Field::Role),
    ("name", Field::Name),
    ("first_name", Field::FirstName),
    ("last_name", Field::LastName),
    ("job_title", Field::JobTitle),
    ("replacement", Field::Replacement),
    ("requested_by", Field::RequestedBy),
];

fn actor(staff: &str) -> String {
    format!("staff:{staff}")
}

async fn waiting_request(conn: &mut Conn, reference: &str) -> Result<RequestRow, ReviewError> {
    let request = journal::find_request(conn, reference)
        .await?
        .ok_or_else(|| ReviewError::NotFound(reference.to_owned()))?;
    if request.outcome != Outcome::NeedsReview {
        return Err(ReviewError::NotWaiting {
            reference: request.reference,
            outcome: request.outcome.as_str().to_owned(),
        });
    }
    Ok(request)
}

/// Apply a request waiting for review as `kind` with `fields` (form names, see
/// [`FORM_FIELDS`]; empty values are ignored). The original message still decides who sent it
/// and who asked (unless `requested_by` is given); every rule of the pipeline applies, and a
/// change that hands over control still waits for the requester's code. If the rules refuse,
/// nothing is written and the refusal is returned.
pub async fn apply_as(
    store: &Store,
    cfg: &Config,
    reference: &str,
    kind: RequestKind,
    form: &BTreeMap<String, String>,
    staff: &str,
) -> Result<Processed, ReviewError> {
    if kind == RequestKind::Unknown {
        return Err(ReviewError::Invalid(
            "choose what the request is for".into(),
        ));
    }
    store
        .transaction(|mut tx| async move {
            let result = apply_as_in(&mut tx, cfg, reference, kind, form, staff).await;
            (tx, result)
        })
        .await
}

async fn apply_as_in(
    conn: &mut Conn,
    cfg: &Config,
    reference: &str,
    kind: RequestKind,
    form: &BTreeMap<String, String>,
    staff: &str,
) -> Result<Processed, ReviewError> {
    let request = waiting_request(conn, reference).await?;
    let original = stored::message(conn, request.message_id)
        .await?
        .map_err(|stored::Gone| ReviewError::Refused(Reason::MessageGone))?;
    let mut ex = stored::read(cfg, &original);
    ex.kind = KindMatch::One(kind);
    // What the staff member typed replaces what was read; the requester stays as read
    // unless given.
    let requested_by = ex.fields.get(&Field::RequestedBy).cloned();
    ex.fields.clear();
    ex.candidate_accounts.clear();
    if let Some(r) = requested_by {
        ex.fields.insert(Field::RequestedBy, r);
    }
    for (name, field) in FORM_FIELDS {
        if let Some(v) = form.get(*name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            let v = match field {
                Field::Account | Field::Replacement | Field::RequestedBy | Field::Role => {
                    v.to_ascii_lowercase()
                }
                _ => v.to_owned(),
            };
            ex.fields.insert(*field, v);
        }
    }

    let snapshot = load_snapshot(conn, &original, &ex, None).await?;
    let d = settle::decide(&original, &ex, &snapshot, cfg);
    match d.outcome {
        Outcome::Applied | Outcome::AwaitingConfirmation => {}
        Outcome::Rejected | Outcome::NeedsReview | Outcome::Ignored | Outcome::Duplicate => {
            return Err(ReviewError::Refused(
                d.reason.unwrap_or(Reason::UnknownKind),
            ));
        }
    }
    let who = actor(staff);
    let detail = json!({ "kind": d.kind, "fields": d.fields, "decided_by": staff, "requester": d.requester });
    Ok(settle::settle(
        conn,
        cfg,
        Row::Stored {
            request_id: request.id,
            reference: &request.reference,
            message_db_id: request.message_id,
            write: Rewrite::Decision,
        },
        Settle {
            decision: &d,
            original: &original,
            actor: &who,
            event: Some(detail),
            mode: Mode::Apply,
            answer: Answer::Now,
        },
    )
    .await?)
}

/// Reject a request waiting for review, telling the site why in the staff member's words.
pub async fn reject(
    store: &Store,
    cfg: &Config,
    reference: &str,
    message: &str,
    staff: &str,
) -> Result<Processed, ReviewError> {
    let message = message.trim();
    if message.is_empty() {
        return Err(ReviewError::Invalid(
            "write the message the site will receive".into(),
        ));
    }
    store
        .transaction(|mut tx| async move {
            let result = reject_in(&mut tx, cfg, reference, message, staff).await;
            (tx, result)
        })
        .await
}

async fn reject_in(
    conn: &mut Conn,
    cfg: &Config,
    reference: &str,
    message: &str,
    staff: &str,
) -> Result<Processed, ReviewError> {
    let request = waiting_request(conn, reference).await?;
    let refusal = Reason::StaffRejected(message.to_owned());
    journal::update_request_outcome(conn, request.id, Outcome::Rejected.as_str(), Some(&refusal))
        .await?;
    journal::insert_comment(conn, request.id, None, &actor(staff), message).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &actor(staff),
            on_behalf_of: request.mailbox.as_deref(),
            action: AuditAction::RequestRejected.as_str(),
            subject: request.target.as_deref(),
            detail: json!({ "decided_by": staff, "message": message }),
            request_id: Some(request.id),
            message_id: Some(request.message_id),
        },
    )
    .await?;
    let kind = request.kind;
    let mut reply = None;
    // Only a registered mailbox is ever answered.
    if let Some(mailbox) = &request.mailbox {
        // A message blanked by retention still gets its answer, titled by its kind.
        let original = stored::message(conn, request.message_id)
            .await?
            .unwrap_or_default();
        let notice = reply::notice(
            &cfg.helpdesk,
            &Notice {
                to: mailbox,
                reference: &request.reference,
                title: &format!(
                    "Not done: {}",
                    if original.subject.is_empty() {
                        kind.title()
                    } else {
                        &original.subject
                    }
                ),
                body: &format!(
                    "Your request {} has not been done. A person on the helpdesk looked at it and says:\n\n{message}\n\n-- {staff}",
                    request.reference
                ),
                in_reply_to: original.message_id.as_deref(),
                unique: &password::token(12),
            },
        );
        reply = enqueue(conn, cfg, notice, Some(request.id)).await?;
    }
    let mut p = Processed::new(
        Outcome::Rejected,
        kind,
        Some(request.reference.clone()),
        Some(&refusal),
    );
    p.reply = reply;
    p.request_id = Some(request.id);
    Ok(p)
}

/// A staff note on any request (nothing is sent).
pub async fn comment(
    store: &Store,
    reference: &str,
    text: &str,
    staff: &str,
) -> Result<(), ReviewError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ReviewError::Invalid("the comment is empty".into()));
    }
    store
        .transaction(|mut tx| async move {
            let result = comment_in(&mut tx, reference, text, staff).await;
            (tx, result)
        })
        .await
}

async fn comment_in(
    conn: &mut Conn,
    reference: &str,
    text: &str,
    staff: &str,
) -> Result<(), ReviewError> {
    let request = journal::find_request(conn, reference)
        .await?
        .ok_or_else(|| ReviewError::NotFound(reference.to_owned()))?;
    journal::insert_comment(conn, request.id, None, &actor(staff), text).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &actor(staff),
            on_behalf_of: request.mailbox.as_deref(),
            action: AuditAction::RequestComment.as_str(),
            subject: request.target.as_deref(),
            detail: json!({ "comment": text }),
            request_id: Some(request.id),
            message_id: None,
        },
    )
    .await?;
    Ok(())
}

/// Give a waiting request to `to` (the staff member themselves, or a colleague: handing it
/// over), recorded as `request.claimed`. `to` must be an enabled staff member.
pub async fn claim(
    store: &Store,
    reference: &str,
    to: &str,
    staff: &str,
) -> Result<(), ReviewError> {
    let to = to.trim();
    let member = crate::store::staff::find(store, to)
        .await
        .map_err(|e| ReviewError::Invalid(e.to_string()))?;
    let Some(member) = member.filter(|m| !m.disabled) else {
        return Err(ReviewError::Invalid(format!(
            "{to} is not an enabled member of the helpdesk staff"
        )));
    };
    let name = member.name.as_str();
    store
        .transaction(|mut tx| async move {
            let result = claim_in(&mut tx, reference, name, staff).await;
            (tx, result)
        })
        .await
}

async fn claim_in(
    conn: &mut Conn,
    reference: &str,
    to: &str,
    staff: &str,
) -> Result<(), ReviewError> {
    let request = waiting_request(conn, reference).await?;
    let before = crate::store::claims::of_request(conn, request.id).await?;
    crate::store::claims::set(conn, request.id, to, staff, crate::store::now_ms()).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &actor(staff),
            on_behalf_of: request.mailbox.as_deref(),
            action: AuditAction::RequestClaimed.as_str(),
            subject: request.target.as_deref(),
            detail: json!({ "to": to, "from": before.map(|c| c.staff) }),
            request_id: Some(request.id),
            message_id: None,
        },
    )
    .await?;
    Ok(())
}

/// Put a request back in the unclaimed queue, recorded as `request.released`.
pub async fn release(store: &Store, reference: &str, staff: &str) -> Result<(), ReviewError> {
    store
        .transaction(|mut tx| async move {
            let result = release_in(&mut tx, reference, staff).await;
            (tx, result)
        })
        .await
}

async fn release_in(conn: &mut Conn, reference: &str, staff: &str) -> Result<(), ReviewError> {
    let request = journal::find_request(conn, reference)
        .await?
        .ok_or_else(|| ReviewError::NotFound(reference.to_owned()))?;
    let Some(before) = crate::store::claims::of_request(conn, request.id).await? else {
        return Ok(());
    };
    crate::store::claims::release(conn, request.id).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &actor(staff),
            on_behalf_of: request.mailbox.as_deref(),
            action: AuditAction::RequestReleased.as_str(),
            subject: request.target.as_deref(),
            detail: json!({ "from": before.staff }),
            request_id: Some(request.id),
            message_id: None,
        },
    )
    .await?;
    Ok(())
}

/// Who holds a request other than `staff`, if anyone: a decision on it asks for confirmation.
/// A request no longer waiting has nobody's claim to respect: a decision on it is told what
/// happened instead.
pub async fn claimed_by_other(
    store: &Store,
    reference: &str,
    staff: &str,
) -> Result<Option<String>, ReviewError> {
    let mut conn = store.read().await?;
    let Some(request) = journal::find_request(&mut conn, reference)
        .await?
        .filter(|r| r.outcome == Outcome::NeedsReview)
    else {
        return Ok(None);
    };
    Ok(crate::store::claims::of_request(&mut conn, request.id)
        .await?
        .map(|c| c.staff)
        .filter(|s| s != staff))
}

/// What happened to a request that is no longer waiting: "applied by staff:bob at …", for a
/// second person who tried to decide it too.
pub async fn what_happened(store: &Store, reference: &str) -> Result<Option<String>, ReviewError> {
    let mut conn = store.read().await?;
    let Some(request) = journal::find_request(&mut conn, reference).await? else {
        return Ok(None);
    };
    Ok(crate::store::claims::last_decision(&mut conn, request.id)
        .await?
        .map(|d| {
            format!(
                "{reference} was already decided: {} by {} at {} (only requests waiting for review can be decided).",
                d.action.as_str().trim_start_matches("request.").replace('_', " "),
                d.actor.trim_start_matches("staff:"),
                crate::store::format_ms(d.at)
            )
        }))
}
