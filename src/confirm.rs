//! One-time codes that confirm the riskiest changes with the person who asked.
//!
//! A change that hands over control (owners, restoring a disabled account) is held as
//! `awaiting_confirmation` and a code is emailed to the requester's OWN account, not to the
//! shared mailbox: whoever can read or forge the shared mailbox's mail cannot confirm. The
//! requester replies with the code; postroom then decides again on the directory as it is at
//! that moment and applies. Codes are random, stored as SHA-256 only, single use, expire
//! after `[confirmation] ttl`, and a few wrong tries void them.

use crate::apply;
use crate::config::Config;
use crate::message;
use crate::outcome::Outcome;
use crate::password;
use crate::pipeline::{self, Input, Processed};
use crate::policy::{self, Decision};
use crate::reason::Reason;
use crate::reply::{self, Notice};
use crate::request::RequestKind;
use crate::request::extract::{self, ExtractContext, Extracted};
use crate::store::journal::{self, Confirmation, NewAuditEvent, RequestRow};
use crate::store::{Conn, StoreError, now_ms};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The alphabet of codes (no 0/O, 1/I): 8 characters, 40 bits.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;

fn new_code() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..CODE_LEN)
        .map(|_| {
            char::from(
                CODE_ALPHABET
                    .get(rng.gen_range(0..CODE_ALPHABET.len()))
                    .copied()
                    .unwrap_or(b'X'),
            )
        })
        .collect()
}

fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().to_ascii_uppercase().as_bytes()))
}

/// Issue a code for a held request and email it to the requester's own account.
pub(crate) async fn issue(
    conn: &mut Conn,
    cfg: &Config,
    d: &Decision,
    requester: &str,
    request_id: i64,
    reference: &str,
) -> Result<(), StoreError> {
    let code = new_code();
    let ttl_ms = i64::try_from(cfg.confirmation.ttl.as_millis()).unwrap_or(i64::MAX);
    journal::insert_confirmation(
        conn,
        request_id,
        requester,
        &code_hash(&code),
        now_ms().saturating_add(ttl_ms),
    )
    .await?;
    let mailbox = d.mailbox.as_deref().unwrap_or("your shared mailbox");
    let what = describe(d);
    let body = format!(
        "{mailbox} has asked the helpdesk, in your name, for this change:\n\n    {what}\n\n\
         Because it hands over control of a shared mailbox or an account, we need you to confirm it.\n\
         To go ahead, reply to this email and keep this line in your reply:\n\n    Code: {code}\n\n\
         (or send an email with the code alone as its subject). The code works once, from your own \
         account only, until {}.\n\n\
         If you did not ask for this, do not reply: nothing will change, and please tell the helpdesk.",
        crate::store::format_ms(now_ms().saturating_add(ttl_ms))
    );
    let title = format!("Confirm: {}", d.kind.title());
    let notice = reply::notice(
        &cfg.helpdesk,
        &Notice {
            to: requester,
            reference,
            title: &title,
            body: &body,
            in_reply_to: None,
            unique: &password::token(12),
        },
    );
    // The code is a secret like a temporary password: blanked from the outbox once sent.
    let mut notice = notice;
    notice.secret = Some(code);
    pipeline::enqueue(conn, cfg, notice, Some(request_id)).await?;
    Ok(())
}

fn describe(d: &Decision) -> String {
    let target = d.target.as_deref().unwrap_or("a new account");
    match d.kind {
        RequestKind::ChangeRole => format!(
            "change the role of {target} to {}",
            d.fields
                .get("role")
                .map(String::as_str)
                .unwrap_or("the role asked for")
        ),
        RequestKind::Leaver => format!(
            "{target} leaves; {} becomes owner in their place",
            d.fields
                .get("replacement")
                .map(String::as_str)
                .unwrap_or("the replacement")
        ),
        RequestKind::Unlock => format!("restore the disabled account {target}"),
        RequestKind::RemoveMember => format!("remove the owner {target} from the mailbox"),
        RequestKind::AddMember => format!("add {target} as an owner"),
        RequestKind::NewAccount => format!(
            "create an account for {} as an owner",
            d.fields
                .get("name")
                .map(String::as_str)
                .unwrap_or("a new person")
        ),
        _ => d.kind.title().to_owned(),
    }
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
        if open.account != from || request.outcome != Outcome::AwaitingConfirmation.as_str() {
            return Ok(None);
        }
        let void =
            journal::fail_confirmation(conn, open.id, input.cfg.confirmation.max_attempts).await?;
        let reason = if void {
            Reason::CodeVoid
        } else {
            Reason::BadCode
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
            "confirmation.wrong_person",
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
    let refusal =
        if c.used_at.is_some() || request.outcome != Outcome::AwaitingConfirmation.as_str() {
            Some(Reason::CodeUsed)
        } else if c.void_at.is_some() {
            Some(Reason::CodeVoid)
        } else if c.expires_at < now_ms() {
            Some(Reason::CodeExpired)
        } else {
            None
        };
    if let Some(reason) = refusal {
        return refuse(conn, input, &request, &c, reason, message_db_id)
            .await
            .map(Some);
    }
    journal::use_confirmation(conn, c.id).await?;
    audit(conn, from, &request, "confirmation.accepted", message_db_id).await?;
    confirmed(conn, input, &request).await.map(Some)
}

fn kind_of(r: &RequestRow) -> RequestKind {
    r.kind.parse().unwrap_or(RequestKind::Unknown)
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
    reason: Reason,
    message_db_id: i64,
) -> Result<Processed, StoreError> {
    audit(
        conn,
        &c.account,
        request,
        &format!("confirmation.{}", reason.code()),
        message_db_id,
    )
    .await?;
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
    let reply = pipeline::enqueue(conn, input.cfg, notice, Some(request.id)).await?;
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
/// and answer the shared mailbox.
async fn confirmed(
    conn: &mut Conn,
    input: &Input<'_>,
    request: &RequestRow,
) -> Result<Processed, StoreError> {
    let cfg = input.cfg;
    let raw = journal::message_raw(conn, request.message_id)
        .await?
        .unwrap_or_default();
    let original = message::parse(&raw);
    let ctx = ExtractContext {
        mailbox: original.from.as_deref(),
        helpdesk: &cfg.helpdesk.address,
        reference_prefix: &cfg.helpdesk.reference_prefix,
    };
    let ex = extract::extract(&original, &ctx);
    let snapshot = pipeline::load_snapshot(conn, &original, &ex).await?;
    let d = policy::decide(&original, &ex, &snapshot, cfg);
    journal::update_request_outcome(
        conn,
        request.id,
        d.outcome.as_str(),
        d.reason.as_ref().map(Reason::code),
    )
    .await?;
    let actor = d.requester.clone().unwrap_or_default();
    let applied = match &d.plan {
        Some(plan) if d.outcome == Outcome::Applied => Some(
            apply::apply(
                conn,
                plan,
                &d,
                apply::Audit {
                    actor: &actor,
                    request_id: request.id,
                    message_db_id: request.message_id,
                    lead: None,
                },
                input.mode,
            )
            .await?,
        ),
        _ => None,
    };
    pipeline::answer(
        conn,
        cfg,
        &d,
        &request.reference,
        request.id,
        &original,
        applied.as_ref(),
    )
    .await
}
