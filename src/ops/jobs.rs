//! `postroom jobs`: the job queue for an operator — what is pending or failed, and a failed job
//! tried again (a provisioning job the directory refused, once someone has fixed the cause).
//! The staff page's request view offers the same retry.

use crate::action::AuditAction;
use crate::store::jobs::{self, JobRow, JobStatus};
use crate::store::journal::{self, NewAuditEvent};
use crate::store::{Store, StoreError, format_ms, now_ms};
use serde_json::{Value, json};

/// A job as listed: never its payload, which may carry what the trail must not keep.
pub fn describe(j: &JobRow) -> Value {
    json!({
        "id": j.id,
        "kind": j.kind,
        "status": j.status,
        "attempts": j.attempts,
        "request_id": j.request_id,
        "created_at": format_ms(j.created_at),
        "next_attempt_at": (j.status == JobStatus::Pending).then(|| format_ms(j.next_attempt_at)),
        "finished_at": j.finished_at.map(format_ms),
        "last_error": j.last_error,
        "result": j.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
    })
}

pub async fn list(
    store: &Store,
    status: Option<JobStatus>,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    jobs::list(&mut *store.read().await?, status, limit).await
}

/// Try failed job `id` again, now, as `actor` asked (audited): `false` when it is not failed.
pub async fn retry(store: &Store, id: i64, actor: &str) -> Result<bool, StoreError> {
    store
        .transaction(|mut tx| async move {
            let r = async {
                let Some(job) = jobs::find(&mut tx, id).await? else {
                    return Ok(false);
                };
                if !jobs::retry_now(&mut tx, id, now_ms()).await? {
                    return Ok(false);
                }
                journal::insert_audit(
                    &mut tx,
                    &NewAuditEvent {
                        actor,
                        on_behalf_of: None,
                        action: AuditAction::JobRetry.as_str(),
                        subject: None,
                        detail: json!({ "job": id, "kind": job.kind, "last_error": job.last_error }),
                        request_id: job.request_id,
                        message_id: None,
                    },
                )
                .await?;
                Ok(true)
            }
            .await;
            (tx, r)
        })
        .await
}
