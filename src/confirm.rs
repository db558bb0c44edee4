//! One-time codes that confirm the riskiest changes with the person who asked.
//!
//! A change that hands over control (owners, restoring a disabled account) is held as
//! `awaiting_confirmation` and a code is emailed to the requester's OWN account, not to the
//! shared mailbox: whoever can read or forge the shared mailbox's mail cannot confirm. The
//! requester replies with the code; postroom then decides again on the directory as it is at
//! that moment and applies. Codes are random, stored as SHA-256 only, single use, expire
//! after `[confirmation] ttl`, and a few wrong tries void them.

use crate::action::AuditAction;
use crate::config::Config;
use crate::desk::Mode;
use crate::desk::answer::enqueue;
use crate::desk::code::code_hash;
use crate::desk::processed::Processed;
use crate::desk::settle::{self, Answer, Rewrite, Row, Settle};
use crate::desk::snapshot::load_snapshot;
use crate::desk::stored;
use crate::message::Message;
use crate::outcome::Outcome;
use crate::password;
use crate::policy;
use crate::reason::Reason;
use crate::reply::{self, Notice};
use crate::request::RequestKind;
use crate::request::extract::{Extracted, KindMatch};
use crate::store::journal::{self, Confirmation, NewAuditEvent, RequestRow};
use crate::store::{Conn, StoreError, now_ms};
use serde_json::json;
use std::collections::BTreeMap;

/// The message being processed, as far as a confirmation needs it.
pub(crate) struct Input<'a> {
    pub cfg: &'a Config,
    pub msg: &'a Message,
    pub mode: Mode,
}

/// If the message is a confirmation (or a failed attempt at one), handle it. `None`: it is
/// not about a confirmation, go on as usual.
pub(crate) async fn handle(
    conn: &mut Conn,
    input: &Input<'_>,
    ex: &Extracted,
    message_db_id: i64,
) -> Result<Option<Processed>, StoreError> {
    let from = input.msg.from.as_deref().unwrap_or_default();
    let found = match &ex.confirmation_code {
        Some(code) => journal::find_confirmation_by_code(conn, &code_hash(code)).await?,
        None => None,
    };
    let Some(c) = found else {
        // A wrong code in the thread of a request waiting for this very person counts as a
        // failed try; anything else is not a confirmation.
        if ex.confirmation_code.is_none() {
            return Ok(None);
        }
        let Some(reference) = &ex.thread_reference else {
            return Ok(None);
        };
        let Some(request) = journal::find_request(conn, reference).await? else {
            return Ok(None);
        };
        let Some(open) = journal::open_confirmation(conn, request.id).await? else {
            return Ok(None);
        };
        if open.account != from || request.outcome != Outcome::AwaitingConfirmation {
            return Ok(None);
        }
        let void =
            journal::fail_confirmation(conn, open.id, input.cfg.confirmation.max_attempts).await?;
        let reason = if void {
            (Reason::CodeVoid, AuditAction::ConfirmationCodeVoid)
        } else {
            (Reason::BadCode, AuditAction::ConfirmationBadCode)
        };
        return refuse(conn, input, &request, &open, reason, message_db_id)
            .await
            .map(Some);
    };
    let Some(request) = journal::find_request_by_id(conn, c.request_id).await? else {
        return Ok(None);
    };
    if c.account != from {
        // Someone else holds a valid code: do not tell them anything, do not count it against
        // the real requester. Staff see it in the audit.
        audit(
            conn,
            from,
            &request,
            AuditAction::ConfirmationWrongPerson.as_str(),
            message_db_id,
        )
        .await?;
        let mut p = Processed::new(
            Outcome::Rejected,
            kind_of(&request),
            Some(request.reference.clone()),
            Some(&Reason::WrongConfirmer),
        );
        p.request_id = Some(request.id);
        return Ok(Some(p));
    }
    let refusal = if c.used_at.is_some() || request.outcome != Outcome::AwaitingConfirmation {
        Some((Reason::CodeUsed, AuditAction::ConfirmationCodeUsed))
    } else if c.void_at.is_some() {
        Some((Reason::CodeVoid, AuditAction::ConfirmationCodeVoid))
    } else if c.expires_at < now_ms() {
        Some((Reason::CodeExpired, AuditAction::ConfirmationCodeExpired))
    } else {
        None
    };
    if let Some(reason) = refusal {
        return refuse(conn, input, &request, &c, reason, message_db_id)
            .await
            .map(Some);
    }
    journal::use_confirmation(conn, c.id).await?;
    audit(
        conn,
        from,
        &request,
        AuditAction::ConfirmationAccepted.as_str(),
        message_db_id,
    )
    .await?;
    confirmed(conn, input, &request, &c, message_db_id)
        .await
        .map(Some)
}

fn kind_of(r: &RequestRow) -> RequestKind {
    r.kind
}

async fn audit(
    conn: &mut Conn,
    actor: &str,
    request: &RequestRow,
    action: &str,
    message_db_id: i64,
) -> Result<(), StoreError> {
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor,
            on_behalf_of: request.mailbox.as_deref(),
            action,
            subject: request.target.as_deref(),
            detail: json!({ "reference": request.reference }),
            request_id: Some(request.id),
            message_id: Some(message_db_id),
        },
    )
    .await
}

/// Tell the requester (at their own, authenticated, account) why the code did not work.
async fn refuse(
    conn: &mut Conn,
    input: &Input<'_>,
    request: &RequestRow,
    c: &Confirmation,
    (reason, action): (Reason, AuditAction),
    message_db_id: i64,
) -> Result<Processed, StoreError> {
    audit(conn, &c.account, request, action.as_str(), message_db_id).await?;
    let notice = reply::notice(
        &input.cfg.helpdesk,
        &Notice {
            to: &c.account,
            reference: &request.reference,
            title: "Not confirmed",
            body: &format!("{}\nNothing was changed.", reason.explain()),
            in_reply_to: input.msg.message_id.as_deref(),
            unique: &password::token(12),
        },
    );
    let reply = enqueue(conn, input.cfg, notice, Some(request.id)).await?;
    let mut p = Processed::new(
        Outcome::Rejected,
        kind_of(request),
        Some(request.reference.clone()),
        Some(&reason),
    );
    p.reply = reply;
    p.request_id = Some(request.id);
    Ok(p)
}

/// The code is right: decide again on the original message and today's directory, apply,
/// and answer the shared mailbox. The acceptance is audited already (`confirmation.accepted`).
async fn confirmed(
    conn: &mut Conn,
    input: &Input<'_>,
    request: &RequestRow,
    c: &Confirmation,
    message_db_id: i64,
) -> Result<Processed, StoreError> {
    let cfg = input.cfg;
    let original = match stored::message(conn, request.message_id).await? {
        Ok(original) => original,
        Err(stored::Gone) => {
            // Nothing left to decide from: the request is closed with the reason, and the
            // requester told why nothing changed.
            journal::update_request_outcome(
                conn,
                request.id,
                Outcome::Rejected.as_str(),
                Some(&Reason::MessageGone),
            )
            .await?;
            return refuse(
                conn,
                input,
                request,
                c,
                (Reason::MessageGone, AuditAction::ConfirmationMessageGone),
                message_db_id,
            )
            .await;
        }
    };
    // Decided again on what was decided when it came in — its kind and its fields, with the
    // accounts that names were resolved to then — against the directory as it is now. (Read
    // afresh, a target named in words would be no account at all.)
    let mut ex = stored::read(cfg, &original);
    let decided: BTreeMap<String, String> =
        serde_json::from_str(&request.fields).unwrap_or_default();
    ex.kind = KindMatch::One(kind_of(request));
    ex.fields = policy::fields_named(&decided);
    ex.candidate_accounts.clear();
    let snapshot = load_snapshot(conn, &original, &ex, None).await?;
    let d = policy::decide(&original, &ex, &snapshot, cfg);
    let actor = d.requester.clone().unwrap_or_default();
    settle::settle(
        conn,
        cfg,
        Row::Stored {
            request_id: request.id,
            reference: &request.reference,
            message_db_id: request.message_id,
            write: Rewrite::Outcome,
        },
        Settle {
            decision: &d,
            original: &original,
            actor: &actor,
            event: None,
            mode: input.mode,
            answer: Answer::Now,
        },
    )
    .await
}
