//! The provisioning job: one request's operations at the target, as a kind of the job queue.
//!
//! Done: the reply held for it goes out (`outbox.after_job`), and the temporary password is
//! blanked from the stored payload (the reply is its only copy, as everywhere in postroom).
//! Refused for good, or still failing after `[directory] retry_for`: the request goes to the
//! staff queue with reason `target_refused`, and the site gets a "a person is handling it"
//! answer in the request's thread; the held "Done" reply stays held, and goes out if staff
//! retry the job and it is done then.

use crate::action::AuditAction;
use crate::config::Config;
use crate::desk::{answer, stored};
use crate::jobs::{Failure, JobKind, Schedule};
use crate::outcome::Outcome;
use crate::policy::Decision;
use crate::provision::{Connector, NotDone, Operation, Target};
use crate::reason::Reason;
use crate::store::jobs::JobRow;
use crate::store::journal::{self, NewAuditEvent};
use crate::store::{Conn, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What one provisioning job carries: the request it is for, by reference and mailbox, and
/// the operations, by address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionJob {
    pub reference: String,
    pub mailbox: String,
    pub operations: Vec<Operation>,
}

pub struct Provision {
    connector: Connector,
    cfg: Arc<Config>,
    /// The reply sender's wake-up: a done job releases the reply held for it.
    replies: Option<Arc<Notify>>,
}

impl Provision {
    pub fn new(connector: Connector, cfg: Arc<Config>, replies: Option<Arc<Notify>>) -> Provision {
        Provision {
            connector,
            cfg,
            replies,
        }
    }
}

impl JobKind for Provision {
    const NAME: &'static str = "provision";
    type Payload = ProvisionJob;

    fn schedule(&self) -> Schedule {
        Schedule {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
            give_up_after: self.cfg.directory.retry_for,
        }
    }

    fn lease(&self) -> Duration {
        // Several operations, each with a connection or a program bounded by `timeout`.
        let each = match &self.cfg.directory.target {
            Target::Ldap(l) => l.timeout,
            Target::Command(c) => c.timeout,
            Target::None | Target::Manual => Duration::from_secs(10),
        };
        each.saturating_mul(16).max(Duration::from_secs(20))
    }

    async fn attempt(&self, job: &ProvisionJob) -> Result<serde_json::Value, Failure> {
        match self
            .connector
            .apply(&job.reference, &job.mailbox, &job.operations)
            .await
        {
            Ok(done) => Ok(json!(done)),
            Err(NotDone::Rejected(why)) => Err(Failure::Permanent(why)),
            Err(NotDone::RetryLater(why)) => Err(Failure::Temporary(why)),
        }
    }

    fn recorded_done(&self) {
        if let Some(w) = &self.replies {
            w.notify_one();
        }
    }

    fn kept(&self, job: &ProvisionJob) -> Option<ProvisionJob> {
        job.operations
            .iter()
            .any(|op| op.secret().is_some())
            .then(|| ProvisionJob {
                operations: job
                    .operations
                    .iter()
                    .map(Operation::without_secret)
                    .collect(),
                ..job.clone()
            })
    }

    async fn done(&self, conn: &mut Conn, job: &JobRow) -> Result<(), StoreError> {
        applied_after_all(conn, job).await
    }

    async fn failed(&self, conn: &mut Conn, job: &JobRow, error: &str) -> Result<(), StoreError> {
        let Some(request_id) = job.request_id else {
            return Ok(());
        };
        let Some(request) = journal::find_request_by_id(conn, request_id).await? else {
            return Ok(());
        };
        let reason = Reason::TargetRefused(error.to_owned());
        journal::update_request_outcome(
            conn,
            request_id,
            Outcome::NeedsReview.as_str(),
            Some(&reason),
        )
        .await?;
        journal::insert_audit(
            conn,
            &NewAuditEvent {
                actor: "postroom",
                on_behalf_of: request.mailbox.as_deref(),
                action: AuditAction::of_outcome(Outcome::NeedsReview).as_str(),
                subject: request.target.as_deref(),
                detail: json!({ "reason": reason.code(), "job": job.id, "target_said": error }),
                request_id: Some(request_id),
                message_id: Some(request.message_id),
            },
        )
        .await?;
        // The site hears that a person has it, in the request's thread.
        let original = stored::message(conn, request.message_id)
            .await?
            .unwrap_or_default();
        let mut d = Decision::new(Outcome::NeedsReview, request.kind, Some(reason));
        d.mailbox = request.mailbox.clone();
        d.requester = request.requester.clone();
        d.target = request.target.clone();
        if let Some(reply) = answer::build_reply(&self.cfg, &d, &request.reference, &original, None)
        {
            answer::enqueue(conn, &self.cfg, reply, Some(request_id)).await?;
        }
        Ok(())
    }
}

/// A job done after a refusal sent its request to staff (staff retried it, or did it by hand):
/// the request is applied after all, and its held "done" reply goes out.
pub(crate) async fn applied_after_all(conn: &mut Conn, job: &JobRow) -> Result<(), StoreError> {
    let Some(request_id) = job.request_id else {
        return Ok(());
    };
    let Some(request) = journal::find_request_by_id(conn, request_id).await? else {
        return Ok(());
    };
    let refused = Reason::TargetRefused(String::new());
    if request.outcome != Outcome::NeedsReview || request.reason.as_deref() != Some(refused.code())
    {
        return Ok(());
    }
    journal::update_request_outcome(conn, request_id, Outcome::Applied.as_str(), None).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: "postroom",
            on_behalf_of: request.mailbox.as_deref(),
            action: AuditAction::of_outcome(Outcome::Applied).as_str(),
            subject: request.target.as_deref(),
            detail: json!({ "job": job.id, "after": refused.code() }),
            request_id: Some(request_id),
            message_id: Some(request.message_id),
        },
    )
    .await
}

/// A manual job's steps done by a person (`[directory] target = "manual"`), in one
/// transaction: the job done (audited as theirs), its passwords blanked, the request applied
/// if a refusal had sent it to staff. `false` when the job is not pending.
pub async fn done_by_hand(
    store: &crate::store::Store,
    id: i64,
    actor: &str,
) -> Result<bool, StoreError> {
    store
        .transaction(|mut tx| async move {
            let r = async {
                let Some(job) = crate::store::jobs::find(&mut tx, id).await? else {
                    return Ok(false);
                };
                if job.status != crate::store::jobs::JobStatus::Pending
                    || job.kind != <Provision as JobKind>::NAME
                {
                    return Ok(false);
                }
                let result = json!({ "by_hand": actor });
                crate::store::jobs::mark_done(
                    &mut tx,
                    id,
                    &result.to_string(),
                    crate::store::now_ms(),
                )
                .await?;
                if let Ok(payload) = serde_json::from_str::<ProvisionJob>(&job.payload) {
                    let kept = ProvisionJob {
                        operations: payload
                            .operations
                            .iter()
                            .map(Operation::without_secret)
                            .collect(),
                        ..payload
                    };
                    if let Ok(text) = serde_json::to_string(&kept) {
                        crate::store::jobs::set_payload(&mut tx, id, &text).await?;
                    }
                }
                journal::insert_audit(
                    &mut tx,
                    &NewAuditEvent {
                        actor,
                        on_behalf_of: None,
                        action: AuditAction::JobDone.as_str(),
                        subject: None,
                        detail: json!({ "kind": job.kind, "job": id, "result": result }),
                        request_id: job.request_id,
                        message_id: None,
                    },
                )
                .await?;
                applied_after_all(&mut tx, &job).await?;
                Ok(true)
            }
            .await;
            (tx, r)
        })
        .await
}
