//! Settling a decided request: the one tail every decision takes, whoever made it.
//!
//! 1. **record** the decision on the request (a new row for a new message, or the stored
//!    request updated when staff or a confirmation decide it again);
//! 2. **apply** the change with the request's own audit event and the change's events in one
//!    statement, or write the request's event alone when nothing is applied;
//! 3. **issue a code** when the change waits for the requester's confirmation;
//! 4. **answer** the site, now or (for a message with several asks) for the caller to combine.
//!
//! Runs inside the caller's transaction: nothing of it is visible until the caller commits.

use crate::action::AuditAction;
use crate::config::Config;
use crate::desk::Mode;
use crate::desk::answer;
use crate::desk::apply;
use crate::desk::code;
use crate::desk::processed::Processed;
use crate::desk::provision_job::{Provision, ProvisionJob};
use crate::jobs;
use crate::message::Message;
use crate::outcome::Outcome;
use crate::policy::{self, Decision, Snapshot};
use crate::provision::Operation;
use crate::reason::Reason;
use crate::request::extract::Extracted;
use crate::store::journal::{self, NewAuditEvent, NewRequest, RequestDecision};
use crate::store::{Conn, StoreError};

/// Decide under the rules, then the confirmation rule: a change that hands over control
/// waits for the requester's code instead of being applied.
pub fn decide(msg: &Message, ex: &Extracted, snapshot: &Snapshot, cfg: &Config) -> Decision {
    let d = policy::decide(msg, ex, snapshot, cfg);
    if policy::needs_confirmation(&d, snapshot, cfg) {
        let requester = d.requester.clone().unwrap_or_default();
        return Decision {
            outcome: Outcome::AwaitingConfirmation,
            reason: Some(Reason::ConfirmationNeeded { requester }),
            warnings: Vec::new(),
            ..d
        };
    }
    d
}

/// Where the decided request's row is.
pub(crate) enum Row<'a> {
    /// A request of the message being processed: inserted, and given its reference.
    New { message_db_id: i64, prefix: &'a str },
    /// A stored request decided again.
    Stored {
        request_id: i64,
        reference: &'a str,
        message_db_id: i64,
        /// What of the decision is written over the stored one.
        write: Rewrite,
    },
}

/// What a second decision writes over a stored request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// Everything (staff chose the kind and the fields).
    Decision,
    /// The outcome and its reason (the request is what it was; its code was confirmed).
    Outcome,
}

/// Whether the answer is queued at once, or returned to be combined with the answers to the
/// message's other requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Now,
    Later,
}

/// Who decided, and what their request event says.
pub(crate) struct Settle<'a> {
    pub decision: &'a Decision,
    /// The email the request came in (its subject and Message-ID thread the answer).
    pub original: &'a Message,
    pub actor: &'a str,
    /// The detail of the request's own event (`request.applied`, `request.rejected`…);
    /// `None` when the caller has recorded why already (an accepted confirmation).
    pub event: Option<serde_json::Value>,
    pub mode: Mode,
    pub answer: Answer,
}

/// Record, apply or audit, issue a code, answer: see the module docs.
pub(crate) async fn settle(
    conn: &mut Conn,
    cfg: &Config,
    row: Row<'_>,
    s: Settle<'_>,
) -> Result<Processed, StoreError> {
    let d = s.decision;
    let (request_id, reference, message_db_id) =
        record(conn, row, d, s.original.from.as_deref()).await?;
    let event = s.event.map(|detail| NewAuditEvent {
        actor: s.actor,
        on_behalf_of: d.mailbox.as_deref(),
        action: AuditAction::of_outcome(d.outcome).as_str(),
        subject: d.target.as_deref(),
        detail,
        request_id: Some(request_id),
        message_id: Some(message_db_id),
    });
    // An applied request's event is written with the change's own events (one statement).
    let made = match &d.plan {
        Some(plan) if d.outcome == Outcome::Applied => Some(
            apply::apply(
                conn,
                plan,
                d,
                apply::Audit {
                    actor: s.actor,
                    request_id,
                    message_db_id,
                    lead: event,
                },
                s.mode,
            )
            .await?,
        ),
        _ => {
            if let Some(event) = &event {
                journal::insert_audit(conn, event).await?;
            }
            None
        }
    };
    // With a directory to provision, the change goes there as a job written now, and the
    // site's "Done" waits for it (issue 15). A dry run writes nothing anyway.
    let job = match &made {
        Some(m) if !m.operations.is_empty() && cfg.directory.provisions() => Some(
            jobs::enqueue_in_order::<Provision>(
                conn,
                &ProvisionJob {
                    reference: reference.clone(),
                    mailbox: d.mailbox.clone().unwrap_or_default(),
                    operations: m.operations.clone(),
                },
                Some(request_id),
                // Changes to one account reach the directory in the order they were decided.
                m.operations.first().map(Operation::account),
            )
            .await?,
        ),
        _ => None,
    };
    let operations: Vec<String> = match (&made, job) {
        (Some(m), Some(_)) => m.operations.iter().map(|op| op.describe()).collect(),
        _ => Vec::new(),
    };
    let applied = made.map(|m| m.applied);
    if d.outcome == Outcome::AwaitingConfirmation
        && let Some(requester) = &d.requester
    {
        code::issue(conn, cfg, d, requester, request_id, &reference).await?;
    }
    if let Some(job_id) = job {
        // Answered on its own, whatever the caller asked: its answer waits for its own job,
        // and the answers to a message's other requests need not wait with it.
        let mut p = answer::processed_for(d, &reference, request_id);
        if let Some(reply) = answer::build_reply(cfg, d, &reference, s.original, applied.as_ref())
            && let Some((outbox_id, reply)) =
                answer::enqueue_id(conn, cfg, reply, Some(request_id)).await?
        {
            journal::hold_reply(conn, outbox_id, job_id).await?;
            p.reply = Some(reply);
        }
        p.answered_alone = true;
        p.operations = operations;
        return Ok(p);
    }
    match s.answer {
        Answer::Now => {
            answer::answer(
                conn,
                cfg,
                d,
                &reference,
                request_id,
                s.original,
                applied.as_ref(),
            )
            .await
        }
        Answer::Later => {
            let mut p = answer::processed_for(d, &reference, request_id);
            p.reply = answer::build_reply(cfg, d, &reference, s.original, applied.as_ref());
            Ok(p)
        }
    }
}

/// Write the decision on its request: the request's id, reference and message.
async fn record(
    conn: &mut Conn,
    row: Row<'_>,
    d: &Decision,
    from_address: Option<&str>,
) -> Result<(i64, String, i64), StoreError> {
    let fields_json = serde_json::to_string(&d.fields).unwrap_or_else(|_| "{}".into());
    match row {
        Row::New {
            message_db_id,
            prefix,
        } => {
            let (id, reference) = journal::insert_request(
                conn,
                &NewRequest {
                    message_id: message_db_id,
                    kind: d.kind.as_str(),
                    outcome: d.outcome.as_str(),
                    reason: d.reason.as_ref(),
                    mailbox: d.mailbox.as_deref(),
                    requester: d.requester.as_deref(),
                    target: d.target.as_deref(),
                    fields_json: &fields_json,
                    from_address,
                },
                prefix,
            )
            .await?;
            Ok((id, reference, message_db_id))
        }
        Row::Stored {
            request_id,
            reference,
            message_db_id,
            write,
        } => {
            match write {
                Rewrite::Decision => {
                    journal::update_request_decision(
                        conn,
                        request_id,
                        &RequestDecision {
                            kind: d.kind.as_str(),
                            outcome: d.outcome.as_str(),
                            reason: d.reason.as_ref(),
                            mailbox: d.mailbox.as_deref(),
                            requester: d.requester.as_deref(),
                            target: d.target.as_deref(),
                            fields_json: &fields_json,
                        },
                    )
                    .await?
                }
                Rewrite::Outcome => {
                    journal::update_request_outcome(
                        conn,
                        request_id,
                        d.outcome.as_str(),
                        d.reason.as_ref(),
                    )
                    .await?
                }
            }
            Ok((request_id, reference.to_owned(), message_db_id))
        }
    }
}
