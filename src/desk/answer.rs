//! Answering the site: the reply to a decided request, queued under the daily cap of answers
//! per address. Every path answers through here, so every path answers alike.

use crate::action::AuditAction;
use crate::config::Config;
use crate::desk::processed::{Processed, Understood};
use crate::message::Message;
use crate::password;
use crate::policy::Decision;
use crate::reply::{self, Reply};
use crate::store::journal::{self, Filing, NewAuditEvent, NewOutboxItem};
use crate::store::{Conn, StoreError, now_ms};
use serde_json::json;

/// Answer a decided request: build the reply to its mailbox (when it gets one), queue it
/// under the daily cap, and report what was done. Shared by the pipeline, confirmations and
/// staff decisions, so every path answers alike.
pub(crate) async fn answer(
    conn: &mut Conn,
    cfg: &Config,
    d: &Decision,
    reference: &str,
    request_id: i64,
    original: &Message,
    applied: Option<&reply::Applied>,
) -> Result<Processed, StoreError> {
    let reply = match build_reply(cfg, d, reference, original, applied) {
        Some(r) => enqueue(conn, cfg, r, Some(request_id)).await?,
        None => None,
    };
    let mut p = processed_for(d, reference, request_id);
    p.reply = reply;
    Ok(p)
}

pub(crate) fn build_reply(
    cfg: &Config,
    d: &Decision,
    reference: &str,
    original: &Message,
    applied: Option<&reply::Applied>,
) -> Option<Reply> {
    reply::build(
        &cfg.helpdesk,
        &reply::ReplyInput {
            decision: d,
            reference,
            original_subject: &original.subject,
            original_message_id: original.message_id.as_deref(),
            original_references: &original.references,
            applied,
            unique: &password::token(12),
        },
    )
}

pub(crate) fn processed_for(d: &Decision, reference: &str, request_id: i64) -> Processed {
    let mut p = Processed::new(
        d.outcome,
        d.kind,
        Some(reference.to_owned()),
        d.reason.as_ref(),
    );
    p.request_id = Some(request_id);
    p.understood = Some(Understood::of(d));
    p
}

/// Queue a reply, under the daily cap of answers per address: the last one allowed says so,
/// and later ones are not sent (the requests are still processed and visible to staff).
pub(crate) async fn enqueue(
    conn: &mut Conn,
    cfg: &Config,
    r: Reply,
    request_id: Option<i64>,
) -> Result<Option<Reply>, StoreError> {
    Ok(enqueue_id(conn, cfg, r, request_id).await?.map(|(_, r)| r))
}

/// [`enqueue`], with the queued reply's outbox id (to hold it for a job).
pub(crate) async fn enqueue_id(
    conn: &mut Conn,
    cfg: &Config,
    r: Reply,
    request_id: Option<i64>,
) -> Result<Option<(i64, Reply)>, StoreError> {
    enqueue_filing(conn, cfg, r, request_id, None).await
}

/// [`enqueue_id`], and the message the reply answers filed by the same statement (the
/// pipeline's last write of a message; one round trip less).
pub(crate) async fn enqueue_filing(
    conn: &mut Conn,
    cfg: &Config,
    mut r: Reply,
    request_id: Option<i64>,
    filing: Option<&Filing<'_>>,
) -> Result<Option<(i64, Reply)>, StoreError> {
    // A reply carrying a secret — a temporary password, a confirmation code — is its only
    // copy: suppressing it would leave a password nobody knows (issue 13). The cap is against
    // loops, and such a reply answers one authenticated, decided request: it is always queued
    // (and counts towards the day's answers like any other).
    let item = NewOutboxItem {
        request_id,
        to: &r.to,
        subject: &r.subject,
        body: &r.body,
        message_id: &r.message_id,
        in_reply_to: r.in_reply_to.as_deref(),
        references: r.references.as_deref(),
        secret: r.secret.as_deref(),
    };
    if r.secret.is_some() {
        let id = journal::enqueue_reply_filing(conn, &item, filing).await?;
        return Ok(Some((id, r)));
    }
    let cap = i64::from(cfg.limits.max_replies_per_mailbox_per_day);
    let last_note = format!(
        "\nThis is the last automatic answer to {} today ({cap} a day at most). Requests sent later today are still handled, but not answered by email until tomorrow.\n",
        r.to
    );
    let queued = journal::enqueue_reply_capped_filing(
        conn,
        &item,
        &journal::ReplyCap {
            max: cap,
            since_ms: now_ms() - 24 * 3600 * 1000,
            last_note: &last_note,
        },
        filing,
    )
    .await?;
    match queued {
        Some((id, body)) => {
            r.body = body;
            Ok(Some((id, r)))
        }
        None => {
            journal::insert_audit(
                conn,
                &NewAuditEvent {
                    actor: "postroom",
                    on_behalf_of: None,
                    action: AuditAction::ReplySuppressed.as_str(),
                    subject: Some(&r.to),
                    detail: json!({ "subject": r.subject, "cap_per_day": cap }),
                    request_id,
                    message_id: None,
                },
            )
            .await?;
            Ok(None)
        }
    }
}
