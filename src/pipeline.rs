//! The one path every message takes, whoever hands it over (`process`, the IMAP watcher, the
//! staff page): parse → screen → extract → authorise → decide, then ONE transaction that
//! stores the message, the request, the directory change, the audit events and the reply.
//!
//! Everything before the transaction is pure; the transaction itself waits on no network.

use crate::config::Config;
use crate::message::{self, Message};
use crate::outcome::Outcome;
use crate::password;
use crate::policy::{self, Decision, MailboxView, Plan, Snapshot};
use crate::reason::Reason;
use crate::reply::{self, Applied, Reply};
use crate::request::RequestKind;
use crate::request::extract::{self, ExtractContext, Extracted};
use crate::screen;
use crate::store::directory::{self, AccountStatus, NewAccount};
use crate::store::journal::{self, NewAuditEvent, NewMessage, NewOutboxItem, NewRequest};
use crate::store::{Conn, Store, StoreError};
use serde::Serialize;
use serde_json::json;

/// Whether the transaction is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// Run every step, then roll back: nothing is written.
    DryRun,
}

/// The result of processing one message, as `process` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Processed {
    pub outcome: Outcome,
    pub kind: RequestKind,
    pub reference: Option<String>,
    /// Stable reason code (see `reason.rs`), `null` when applied without remark.
    pub reason: Option<String>,
    /// The reason as a sentence for a person.
    pub explanation: Option<String>,
    pub reply: Option<Reply>,
    #[serde(skip)]
    pub request_id: Option<i64>,
    /// For a duplicate: the outcome the message got the first time (the IMAP watcher files it
    /// in that outcome's folder).
    #[serde(skip)]
    pub previous_outcome: Option<Outcome>,
}

/// How many addresses named in one message are looked up: more than a few candidate
/// accounts is ambiguous anyway, and a hostile message must not cost thousands of queries.
const MAX_LOOKUPS: usize = 12;

pub async fn process(store: &Store, cfg: &Config, raw: &[u8], source: &str, mode: Mode) -> Result<Processed, StoreError> {
    run(store, cfg, raw, source, mode, None).await
}

/// A message over the size limit: only its header was downloaded. It is stored (header only)
/// and held for a person, with the reason.
pub async fn process_oversized(
    store: &Store,
    cfg: &Config,
    header: &[u8],
    size: u64,
    limit: u64,
    source: &str,
) -> Result<Processed, StoreError> {
    run(store, cfg, header, source, Mode::Apply, Some(Reason::TooLarge { size, limit })).await
}

async fn run(
    store: &Store,
    cfg: &Config,
    raw: &[u8],
    source: &str,
    mode: Mode,
    hold: Option<Reason>,
) -> Result<Processed, StoreError> {
    let msg = message::parse(raw);
    let mut tx = store.begin().await?;
    let result = process_in(&mut tx, cfg, raw, &msg, source, mode, hold).await;
    match (&result, mode) {
        (Ok(_), Mode::Apply) => tx.commit().await?,
        _ => tx.rollback().await?,
    }
    result
}

async fn process_in(
    conn: &mut Conn,
    cfg: &Config,
    raw: &[u8],
    msg: &Message,
    source: &str,
    mode: Mode,
    hold: Option<Reason>,
) -> Result<Processed, StoreError> {
    // Seen before (same Message-ID, or the same bytes): change nothing.
    if let Some(seen) = journal::find_seen_message(conn, msg.message_id.as_deref(), &msg.sha256).await? {
        return Ok(Processed {
            outcome: Outcome::Duplicate,
            kind: RequestKind::Unknown,
            reference: seen.reference,
            reason: Some("duplicate".into()),
            explanation: Some(format!(
                "This message was processed before{}: nothing was changed again.",
                seen.outcome.as_ref().map(|o| format!(" (outcome: {o})")).unwrap_or_default()
            )),
            reply: None,
            request_id: None,
            previous_outcome: seen.outcome.as_deref().and_then(|o| o.parse().ok()),
        });
    }

    let message_db_id = journal::insert_message(
        conn,
        &NewMessage {
            message_id: msg.message_id.as_deref(),
            sha256: &msg.sha256,
            raw,
            from_address: msg.from.as_deref(),
            subject: &msg.subject,
            source,
        },
    )
    .await?;

    let helpdesk = &cfg.helpdesk;
    let decision = if let Some(reason) = hold {
        let mut d = Decision::new(Outcome::NeedsReview, RequestKind::Unknown, Some(reason));
        if let Some(from) = &msg.from
            && screen::screen(msg, &helpdesk.address).is_none()
        {
            d.mailbox = directory::find_mailbox(conn, from).await?.map(|m| m.address);
        }
        d
    } else if msg.unparsable {
        Decision::new(Outcome::NeedsReview, RequestKind::Unknown, Some(Reason::Unparsable))
    } else if let Some(why) = screen::screen(msg, &helpdesk.address) {
        Decision::new(Outcome::Ignored, RequestKind::Unknown, Some(Reason::NotARequest(why.describe())))
    } else {
        let ctx = ExtractContext {
            mailbox: msg.from.as_deref(),
            helpdesk: &helpdesk.address,
            reference_prefix: &helpdesk.reference_prefix,
        };
        let ex = extract::extract(msg, &ctx);
        if let Some(done) = attach_to_thread(conn, msg, &ex, message_db_id).await? {
            return Ok(done);
        }
        let snapshot = load_snapshot(conn, msg, &ex).await?;
        policy::decide(msg, &ex, &snapshot, cfg)
    };

    let (request_id, reference) = journal::insert_request(
        conn,
        &NewRequest {
            message_id: message_db_id,
            kind: decision.kind.as_str(),
            outcome: decision.outcome.as_str(),
            reason: decision.reason.as_ref().map(Reason::code),
            mailbox: decision.mailbox.as_deref(),
            requester: decision.requester.as_deref(),
            target: decision.target.as_deref(),
            fields_json: &serde_json::to_string(&decision.fields).unwrap_or_else(|_| "{}".into()),
        },
        &helpdesk.reference_prefix,
    )
    .await?;

    let actor = decision
        .requester
        .clone()
        .or_else(|| msg.from.clone())
        .unwrap_or_else(|| "unknown".into());
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &actor,
            on_behalf_of: decision.mailbox.as_deref(),
            action: &format!("request.{}", decision.outcome),
            subject: decision.target.as_deref(),
            detail: json!({
                "kind": decision.kind,
                "reason": decision.reason.as_ref().map(Reason::code),
                "fields": decision.fields,
                "from": msg.from,
                "sender": msg.sender,
                "message_id": msg.message_id,
                "sha256": msg.sha256,
                "source": source,
            }),
            request_id: Some(request_id),
            message_id: Some(message_db_id),
        },
    )
    .await?;

    let applied = match &decision.plan {
        Some(plan) if decision.outcome == Outcome::Applied => {
            Some(apply(conn, plan, &decision, &actor, request_id, message_db_id, mode).await?)
        }
        _ => None,
    };

    let unique = password::token(12);
    let reply = reply::build(
        helpdesk,
        &reply::ReplyInput {
            decision: &decision,
            reference: &reference,
            original_subject: &msg.subject,
            original_message_id: msg.message_id.as_deref(),
            original_references: &msg.references,
            applied: applied.as_ref(),
            unique: &unique,
        },
    );
    if let Some(r) = &reply {
        journal::enqueue_reply(
            conn,
            &NewOutboxItem {
                request_id: Some(request_id),
                to: &r.to,
                subject: &r.subject,
                body: &r.body,
                message_id: &r.message_id,
                in_reply_to: r.in_reply_to.as_deref(),
                references: r.references.as_deref(),
                secret: r.secret.as_deref(),
            },
        )
        .await?;
    }

    Ok(Processed {
        outcome: decision.outcome,
        kind: decision.kind,
        reference: Some(reference),
        reason: decision.reason.as_ref().map(|r| r.code().to_owned()),
        explanation: decision.reason.as_ref().map(Reason::explain),
        reply,
        request_id: Some(request_id),
        previous_outcome: None,
    })
}

/// A reply in the thread of a known request (`[HD-000042]` in the subject) is a comment on
/// it, not a new request. Returns `None` when the subject names no known request.
async fn attach_to_thread(
    conn: &mut Conn,
    msg: &Message,
    ex: &Extracted,
    message_db_id: i64,
) -> Result<Option<Processed>, StoreError> {
    let Some(reference) = &ex.thread_reference else {
        return Ok(None);
    };
    let Some(request) = journal::find_request(conn, reference).await? else {
        return Ok(None);
    };
    let author = msg.from.clone().unwrap_or_else(|| "unknown".into());
    journal::insert_comment(conn, request.id, Some(message_db_id), &author, &ex.new_text).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &author,
            on_behalf_of: request.mailbox.as_deref(),
            action: "request.comment",
            subject: request.target.as_deref(),
            detail: json!({ "message_id": msg.message_id, "sha256": msg.sha256 }),
            request_id: Some(request.id),
            message_id: Some(message_db_id),
        },
    )
    .await?;
    let reason = Reason::CommentAdded(reference.clone());
    Ok(Some(Processed {
        outcome: Outcome::Ignored,
        kind: request.kind.parse().unwrap_or(RequestKind::Unknown),
        reference: Some(reference.clone()),
        reason: Some(reason.code().to_owned()),
        explanation: Some(reason.explain()),
        reply: None,
        request_id: Some(request.id),
        previous_outcome: None,
    }))
}

/// Read the part of the directory this message can touch.
async fn load_snapshot(conn: &mut Conn, msg: &Message, ex: &Extracted) -> Result<Snapshot, StoreError> {
    let mut snap = Snapshot::default();
    if let Some(from) = &msg.from
        && let Some(mailbox) = directory::find_mailbox(conn, from).await?
    {
        let members = directory::mailbox_members(conn, mailbox.id).await?;
        snap.mailbox = Some(MailboxView { mailbox, members });
    }
    for address in policy::addresses_to_load(msg, ex).into_iter().take(MAX_LOOKUPS) {
        if let Some(account) = directory::find_account(conn, &address).await? {
            let mut views = Vec::new();
            for m in directory::account_memberships(conn, account.id).await? {
                if let Some(mailbox) = directory::find_mailbox(conn, &m.mailbox).await? {
                    let members = directory::mailbox_members(conn, mailbox.id).await?;
                    views.push(MailboxView { mailbox, members });
                }
            }
            snap.account_mailboxes.insert(account.id, views);
            snap.accounts.insert(address, account);
        } else if let Some(mailbox) = directory::find_mailbox(conn, &address).await? {
            snap.mailboxes_named.insert(address, mailbox);
        }
    }
    Ok(snap)
}

/// Make the change, with an audit event for each part of it.
async fn apply(
    conn: &mut Conn,
    plan: &Plan,
    d: &Decision,
    actor: &str,
    request_id: i64,
    message_db_id: i64,
    mode: Mode,
) -> Result<Applied, StoreError> {
    let mut out = Applied::default();
    let mut events: Vec<(&'static str, String, serde_json::Value)> = Vec::new();
    let target = d.target.clone().unwrap_or_default();
    let mailbox = d.mailbox.clone().unwrap_or_default();

    match plan {
        Plan::NewAccount {
            organisation_id,
            mailbox_id,
            domain,
            first,
            last,
            name,
            job_title,
            role,
        } => {
            let address = allocate_address(conn, first, last, domain).await?;
            let (pw, hash) = new_password(mode).await?;
            let account_id = directory::insert_account(
                conn,
                &NewAccount {
                    organisation_id: *organisation_id,
                    address: &address,
                    name,
                    job_title: job_title.as_deref(),
                    status: AccountStatus::Active,
                    password_hash: Some(&hash),
                    must_change: true,
                },
            )
            .await?;
            directory::upsert_membership(conn, *mailbox_id, account_id, *role).await?;
            out.done.push(format!("Created the account {address} for {name}."));
            out.done.push(format!("Added {address} to {mailbox} as {role}."));
            out.temporary_password = Some(pw);
            events.push(("account.created", address.clone(), json!({ "name": name, "job_title": job_title })));
            events.push(("membership.added", address, json!({ "mailbox": mailbox, "role": role })));
        }
        Plan::PasswordReset { account_id } => {
            let (pw, hash) = new_password(mode).await?;
            directory::set_temporary_password(conn, *account_id, &hash).await?;
            out.done.push(format!("Reset the password of {target}; the account is unlocked."));
            out.temporary_password = Some(pw);
            events.push(("password.reset", target.clone(), json!({ "must_change": true })));
        }
        Plan::Unlock { account_id, from } => {
            directory::set_status(conn, *account_id, AccountStatus::Active).await?;
            out.done.push(format!("{target} was {from} and is now active. The password is unchanged."));
            events.push(("account.unlocked", target.clone(), json!({ "from": from })));
        }
        Plan::AddMember {
            mailbox_id,
            account_id,
            role,
        } => {
            directory::upsert_membership(conn, *mailbox_id, *account_id, *role).await?;
            out.done.push(format!("Added {target} to {mailbox} as {role}."));
            events.push(("membership.added", target.clone(), json!({ "mailbox": mailbox, "role": role })));
        }
        Plan::RemoveMember { mailbox_id, account_id } => {
            directory::remove_membership(conn, *mailbox_id, *account_id).await?;
            out.done.push(format!("Removed {target} from {mailbox}."));
            events.push(("membership.removed", target.clone(), json!({ "mailbox": mailbox })));
        }
        Plan::ChangeRole {
            mailbox_id,
            account_id,
            from,
            to,
        } => {
            directory::upsert_membership(conn, *mailbox_id, *account_id, *to).await?;
            out.done.push(format!("{target} is now {to} of {mailbox} (was {from})."));
            events.push((
                "membership.role_changed",
                target.clone(),
                json!({ "mailbox": mailbox, "from": from, "to": to }),
            ));
        }
        Plan::Leaver {
            account_id,
            mailbox_ids,
        } => {
            let memberships = directory::account_memberships(conn, *account_id).await?;
            for m in memberships.iter().filter(|m| mailbox_ids.contains(&m.mailbox_id)) {
                directory::remove_membership(conn, m.mailbox_id, *account_id).await?;
                out.done.push(format!("Removed {target} from {}.", m.mailbox));
                events.push(("membership.removed", target.clone(), json!({ "mailbox": m.mailbox })));
            }
            directory::set_status(conn, *account_id, AccountStatus::Disabled).await?;
            out.done.push(format!("Disabled the account {target}."));
            events.push(("account.disabled", target.clone(), json!({ "leaver": true })));
        }
    }

    for (action, subject, detail) in events {
        journal::insert_audit(
            conn,
            &NewAuditEvent {
                actor,
                on_behalf_of: Some(&mailbox),
                action,
                subject: Some(&subject),
                detail,
                request_id: Some(request_id),
                message_id: Some(message_db_id),
            },
        )
        .await?;
    }
    Ok(out)
}

/// `first.last@domain`, then `first.last2@domain`… when taken.
async fn allocate_address(conn: &mut Conn, first: &str, last: &str, domain: &str) -> Result<String, StoreError> {
    let base = format!("{}.{}", policy::address_part(first), policy::address_part(last));
    for n in 1..=10_000u32 {
        let candidate = if n == 1 {
            format!("{base}@{domain}")
        } else {
            format!("{base}{n}@{domain}")
        };
        if !directory::address_taken(conn, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(StoreError::Invalid(format!("no free address for {base}@{domain}")))
}

/// A temporary password and its Argon2 hash. A dry run makes neither.
async fn new_password(mode: Mode) -> Result<(String, String), StoreError> {
    if mode == Mode::DryRun {
        return Ok(("(generated when applied)".into(), String::new()));
    }
    let pw = password::temporary();
    let for_hash = pw.clone();
    // Argon2 is deliberately slow: keep it off the async worker threads.
    let hash = tokio::task::spawn_blocking(move || password::hash(&for_hash))
        .await
        .map_err(|e| StoreError::Invalid(format!("password hashing task failed: {e}")))?
        .map_err(StoreError::Invalid)?;
    Ok((pw, hash))
}
