//! The worker of one job kind in the `jobs` table: claim a due job, try it once, record what
//! came of it — with an audit event for every attempt — and sleep until more is due.
//!
//! Each job is claimed on its own just before it is tried (a lease by the database's clock,
//! `store::jobs::claim`), so several workers, in one process or many, share the queue without
//! doing a job twice at once, and a worker that dies strands one job until its lease runs out.
//! Each attempt is bounded well inside the lease: a job is never taken by a second worker while
//! the first may still be at it.

use super::{Attempt, Failure, JobKind, Next, after_temporary, ms, retry_delay};
use crate::action::AuditAction;
use crate::store::jobs::{self, JobRow};
use crate::store::journal::{self, NewAuditEvent};
use crate::store::{Store, StoreError, now_ms};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Jobs read per pass; the loop comes straight back when more are due.
const PASS_LIMIT: i64 = 50;
/// A worker looks at its queue at least this often without a wake-up (jobs queued by another
/// instance wake nobody here).
const MAX_IDLE: Duration = Duration::from_secs(5);
/// Backoff after a database error in the worker loop.
const DB_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DB_RETRY_MAX: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobPass {
    pub done: u32,
    /// Temporary failure; a later attempt is scheduled.
    pub retried: u32,
    /// Refused for good, or given up.
    pub failed: u32,
    /// Not tried: another worker held it, or this one is stopping.
    pub skipped: u32,
}

/// How long one attempt may take: three quarters of the lease, so that the result is
/// recorded before the lease runs out and another worker may take the job.
fn attempt_bound(lease: Duration) -> Duration {
    lease.saturating_sub(lease / 4)
}

/// One pass over the due jobs of kind `K`, oldest first.
pub async fn pass<K: JobKind>(
    store: &Store,
    kind: &K,
    stop: Option<&CancellationToken>,
) -> Result<JobPass, StoreError> {
    let due = jobs::due(&mut *store.read().await?, K::NAME, now_ms(), PASS_LIMIT).await?;
    let mut done = JobPass::default();
    for job in due {
        if stop.is_some_and(CancellationToken::is_cancelled) {
            done.skipped += 1;
            continue;
        }
        // On its own, not in `Store::begin()` (see `store::jobs::claim`).
        let claimed = jobs::claim(
            &mut *store.write().await?,
            &[job.id],
            now_ms(),
            kind.lease(),
        )
        .await?;
        if claimed.is_empty() {
            done.skipped += 1;
            continue;
        }
        let (attempt, result, payload) = attempt(kind, &job).await;
        if attempt == Attempt::Done {
            crash_after_attempt();
        }
        let kept = payload.as_ref().and_then(|p| kind.kept(p));
        record(store, kind, &job, attempt, result, kept, &mut done).await?;
    }
    Ok(done)
}

/// TEST HOOK for the integration tests only (never set it in production): with
/// `POSTROOM_TEST_ABORT_AFTER_JOB_ATTEMPTS=N` the process aborts right after its Nth attempt
/// that succeeded, before recording it — the "killed between the directory write and its
/// record" of `tests/provision_ldap.rs`. Not a config key on purpose.
pub const ABORT_ENV: &str = "POSTROOM_TEST_ABORT_AFTER_JOB_ATTEMPTS";

fn crash_after_attempt() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DONE: AtomicU64 = AtomicU64::new(0);
    let Some(limit) = std::env::var(ABORT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
    else {
        return;
    };
    let n = DONE.fetch_add(1, Ordering::SeqCst).saturating_add(1);
    tracing::warn!("{ABORT_ENV}={limit}: TEST HOOK, successful attempt {n}");
    if n >= limit {
        eprintln!("postroom: {ABORT_ENV}: aborting after job attempt {n}, before recording it");
        std::process::abort();
    }
}

/// Try a claimed job once, bounded in time: what came of it, the result, and the payload as
/// read.
async fn attempt<K: JobKind>(
    kind: &K,
    job: &JobRow,
) -> (Attempt, Option<serde_json::Value>, Option<K::Payload>) {
    let payload: K::Payload = match serde_json::from_str(&job.payload) {
        Ok(p) => p,
        Err(e) => {
            let error = format!("the payload does not read as a {} job: {e}", K::NAME);
            return (Attempt::Failed(Failure::Permanent(error)), None, None);
        }
    };
    let bound = attempt_bound(kind.lease());
    let (attempt, result) = match tokio::time::timeout(bound, kind.attempt(&payload)).await {
        Ok(Ok(result)) => (Attempt::Done, Some(result)),
        Ok(Err(failure)) => (Attempt::Failed(failure), None),
        // Whether it was done is unknown: tried again (attempts are safe to repeat).
        Err(_) => (
            Attempt::Failed(Failure::Temporary(format!(
                "no result within {}",
                humantime::format_duration(bound)
            ))),
            None,
        ),
    };
    (attempt, result, Some(payload))
}

/// What an attempt leaves in the `jobs` row.
enum Mark {
    Done(serde_json::Value),
    Retry {
        attempts: i64,
        at: i64,
        error: String,
        delay: Duration,
    },
    Failed(String),
}

/// Record an attempt and its audit event in one transaction (run again on a conflict: two
/// workers recording at once both extend the one audit chain).
async fn record<K: JobKind>(
    store: &Store,
    kind: &K,
    job: &JobRow,
    attempt: Attempt,
    result: Option<serde_json::Value>,
    kept: Option<K::Payload>,
    pass: &mut JobPass,
) -> Result<(), StoreError> {
    let kept = match kept.map(|p| serde_json::to_string(&p)).transpose() {
        Ok(k) => k,
        Err(e) => {
            return Err(StoreError::Invalid(format!(
                "a {} job's payload: {e}",
                K::NAME
            )));
        }
    };
    let now = now_ms();
    let mark = match attempt {
        Attempt::Done => Mark::Done(result.unwrap_or(serde_json::Value::Null)),
        Attempt::Released => {
            jobs::release(&mut *store.write().await?, &[job.id]).await?;
            pass.skipped += 1;
            return Ok(());
        }
        Attempt::Failed(Failure::Permanent(error)) => Mark::Failed(error),
        Attempt::Failed(Failure::Temporary(error)) => match after_temporary(
            &kind.schedule(),
            job.attempts,
            job.attempts_since(),
            now,
            &error,
        ) {
            Next::GiveUp(error) => Mark::Failed(error),
            Next::Retry {
                attempts,
                at,
                delay,
            } => Mark::Retry {
                attempts,
                at,
                error,
                delay,
            },
        },
    };
    // The payload is not copied into the audit: a kind may carry what the trail must not keep.
    let (action, mut detail) = match &mark {
        Mark::Done(result) => (AuditAction::JobDone.as_str(), json!({ "result": result })),
        Mark::Retry { error, delay, .. } => (
            AuditAction::JobRetried.as_str(),
            json!({ "error": error, "retry_in_ms": ms(*delay) }),
        ),
        Mark::Failed(error) => (AuditAction::JobFailed.as_str(), json!({ "error": error })),
    };
    if let Some(map) = detail.as_object_mut() {
        map.insert("kind".into(), json!(K::NAME));
        map.insert("job".into(), json!(job.id));
        map.insert("attempt".into(), json!(job.attempts.saturating_add(1)));
    }
    let (mark, detail, kept) = (&mark, &detail, &kept);
    store
        .transaction(|mut tx| async move {
            let written = async {
                match mark {
                    Mark::Done(result) => {
                        jobs::mark_done(&mut tx, job.id, &result.to_string(), now).await?;
                        if let Some(payload) = kept {
                            jobs::set_payload(&mut tx, job.id, payload).await?;
                        }
                        kind.done(&mut tx, job).await?;
                    }
                    Mark::Retry {
                        attempts,
                        at,
                        error,
                        ..
                    } => jobs::mark_retry(&mut tx, job.id, *attempts, *at, error).await?,
                    Mark::Failed(error) => {
                        jobs::mark_failed(&mut tx, job.id, error, now).await?;
                        kind.failed(&mut tx, job, error).await?;
                    }
                }
                journal::insert_audit(
                    &mut tx,
                    &NewAuditEvent {
                        actor: "postroom",
                        on_behalf_of: None,
                        action,
                        subject: None,
                        detail: detail.clone(),
                        request_id: job.request_id,
                        message_id: None,
                    },
                )
                .await
            }
            .await;
            (tx, written)
        })
        .await?;
    match mark {
        Mark::Done(_) => {
            kind.recorded_done();
            pass.done += 1;
            tracing::info!(job = job.id, kind = K::NAME, "job done");
        }
        Mark::Retry { .. } => {
            pass.retried += 1;
            tracing::warn!(job = job.id, kind = K::NAME, "job not done; will retry");
        }
        Mark::Failed(_) => {
            pass.failed += 1;
            tracing::warn!(job = job.id, kind = K::NAME, "job failed; kept for staff");
        }
    }
    Ok(())
}

/// Run kind `K`'s worker until `shutdown`: a pass, then sleep until woken (`wake`), until the
/// next job falls due (at most [`MAX_IDLE`]), or until shutdown. A database error is logged
/// and retried with backoff.
pub async fn run<K: JobKind>(
    store: Store,
    kind: K,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut errors: u32 = 0;
    while !shutdown.is_cancelled() {
        let wait = match pass(&store, &kind, Some(&shutdown)).await {
            Ok(p) if p.done + p.retried + p.failed > 0 => {
                errors = 0;
                Duration::ZERO
            }
            Ok(_) => {
                errors = 0;
                until_next_due::<K>(&store).await
            }
            Err(e) => {
                errors = errors.saturating_add(1);
                let wait = retry_delay(errors, DB_RETRY_INITIAL, DB_RETRY_MAX);
                tracing::error!(kind = K::NAME, error = %e, retry_in_ms = ms(wait), "job pass failed");
                wait
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long until the next pending job of `K` falls due, at most [`MAX_IDLE`].
async fn until_next_due<K: JobKind>(store: &Store) -> Duration {
    let next = match store.read().await {
        Ok(mut conn) => jobs::next_due_at(&mut conn, K::NAME).await.ok().flatten(),
        Err(_) => None,
    };
    next.map_or(MAX_IDLE, |at| {
        Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0)).min(MAX_IDLE)
    })
}
