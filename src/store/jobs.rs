//! The job queue's table (`jobs`, migration 0100): work a committed decision leaves to be done
//! outside its transaction, one row per job, of a kind named by the code that does it.
//!
//! A job is written with [`enqueue`] in the transaction that decides it, so it exists exactly
//! when the decision does. Workers then use single short statements, never a transaction that
//! waits on the outside world: [`due`] (no lock), [`claim`] (a lease by the database's clock,
//! as the outbox does: see `store::outbox`), and one of [`mark_done`], [`mark_retry`],
//! [`mark_failed`]. A worker that dies leaves its lease to run out; the job is then due again,
//! so an attempt must be safe to repeat (idempotent).
//!
//! On PostgreSQL the claim locks the rows it takes with `FOR UPDATE SKIP LOCKED`, so two
//! workers claiming at once each take different jobs instead of queueing on each other's row
//! locks; on SQLite the statement holds the write lock and claims are serialised anyway.

use super::outbox::{clip, db_now};
use super::{Conn, StoreError, placeholders};
use sqlx::{AssertSqlSafe, Row};
use std::time::Duration;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<JobStatus, StoreError> {
        match s {
            "pending" => Ok(JobStatus::Pending),
            "done" => Ok(JobStatus::Done),
            "failed" => Ok(JobStatus::Failed),
            other => Err(StoreError::Invalid(format!("unknown job status `{other}`"))),
        }
    }
}

/// A job to write, with the decision that makes it.
pub struct NewJob<'a> {
    /// The kind's name (`JobKind::NAME`).
    pub kind: &'a str,
    /// The kind's payload as JSON: names things by address, not by database id.
    pub payload: &'a str,
    pub request_id: Option<i64>,
    /// Jobs with the same serial run in the order they were written (migration 0120).
    pub serial: Option<&'a str>,
}

/// A job as a worker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub request_id: Option<i64>,
    pub status: JobStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub result: Option<String>,
    pub created_at: i64,
    pub retried_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl JobRow {
    /// When the current round of attempts began: the give-up clock runs from here.
    pub fn attempts_since(&self) -> i64 {
        self.retried_at.unwrap_or(self.created_at)
    }
}

const COLUMNS: &str = "id, kind, payload, request_id, status, attempts, next_attempt_at, \
    last_error, result, created_at, retried_at, finished_at";

fn job(r: &sqlx::any::AnyRow) -> Result<JobRow, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(JobRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        payload: r.try_get("payload")?,
        request_id: r.try_get("request_id")?,
        status: JobStatus::parse(&status)?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        result: r.try_get("result")?,
        created_at: r.try_get("created_at")?,
        retried_at: r.try_get("retried_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// Write a job, due at once; its id (a reply can wait for it: `NewOutboxItem::after_job`).
/// Run it inside the transaction that decides the change.
pub async fn enqueue(conn: &mut Conn, j: &NewJob<'_>, now: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, request_id, status, attempts, next_attempt_at, created_at, serial) \
         VALUES ($1, $2, $3, 'pending', 0, $4, $4, $5) RETURNING id",
    )
    .bind(j.kind)
    .bind(j.payload)
    .bind(j.request_id)
    .bind(now)
    .bind(j.serial)
    .fetch_one(&mut *conn)
    .await?)
}

/// A job is not taken while an earlier job of its kind with the same serial is pending.
const IN_ORDER: &str = "(serial IS NULL OR NOT EXISTS (SELECT 1 FROM jobs e WHERE e.kind = jobs.kind \
     AND e.serial = jobs.serial AND e.status = 'pending' AND e.id < jobs.id))";

/// Pending jobs of `kind` whose time has come, that no worker holds, and that no earlier job
/// of the same serial holds back; oldest first.
pub async fn due(
    conn: &mut Conn,
    kind: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    let db_now = db_now(conn);
    let sql = format!(
        "SELECT {COLUMNS} FROM jobs WHERE status = 'pending' AND kind = $1 AND next_attempt_at <= $2 \
         AND (claimed_until IS NULL OR claimed_until <= {db_now}) AND {IN_ORDER} \
         ORDER BY created_at, id LIMIT $3"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(kind)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(job).collect()
}

/// Take the lease on due jobs for `lease`, in one statement: the ids actually claimed (the
/// others are held by another worker, or no longer pending and due). Run it on its own, not
/// inside `Store::begin()`: under SERIALIZABLE a race is an error instead of "not claimed".
pub async fn claim(
    conn: &mut Conn,
    ids: &[i64],
    now: i64,
    lease: Duration,
) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let postgres = !conn.backend_name().eq_ignore_ascii_case("sqlite");
    let db_now = db_now(conn);
    // PostgreSQL: rows another worker is claiming are skipped, not waited for.
    let lock = if postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE jobs SET claimed_until = {db_now} + $2 WHERE id IN (\
           SELECT id FROM jobs WHERE id IN ({}) AND status = 'pending' AND next_attempt_at <= $1 \
           AND (claimed_until IS NULL OR claimed_until <= {db_now}) AND {IN_ORDER}{lock}\
         ) RETURNING id",
        placeholders(3, ids.len())
    );
    let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
        .bind(now)
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(&mut *conn).await?)
}

/// Done: what the attempt read back is kept (`result`, JSON), and replies waiting for the job
/// become due.
pub async fn mark_done(conn: &mut Conn, id: i64, result: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = 'done', attempts = attempts + 1, result = $2, finished_at = $3, \
         claimed_until = NULL, last_error = NULL WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(result)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A temporary failure: tried again at `next_attempt_at`. `attempts` is the new total.
pub async fn mark_retry(
    conn: &mut Conn,
    id: i64,
    attempts: i64,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET attempts = $2, next_attempt_at = $3, last_error = $4, claimed_until = NULL \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(attempts)
    .bind(next_attempt_at)
    .bind(clip(error))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Given up (a permanent refusal, or failing for longer than the kind allows): kept, with
/// the error, for staff to read and retry.
pub async fn mark_failed(
    conn: &mut Conn,
    id: i64,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = 'failed', attempts = attempts + 1, last_error = $2, finished_at = $3, \
         claimed_until = NULL WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(clip(error))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rewrite a job's payload (what a done job keeps: `JobKind::kept`).
pub async fn set_payload(conn: &mut Conn, id: i64, payload: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE jobs SET payload = $2 WHERE id = $1")
        .bind(id)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Give claimed jobs back untried (the worker is stopping): due again at once.
pub async fn release(conn: &mut Conn, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs SET claimed_until = NULL WHERE id IN ({}) AND status = 'pending'",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Staff retry a failed job: pending again, due now, a fresh round of attempts. `false` when
/// the job is not failed.
pub async fn retry_now(conn: &mut Conn, id: i64, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'pending', attempts = 0, next_attempt_at = $2, retried_at = $2, \
         finished_at = NULL, claimed_until = NULL WHERE id = $1 AND status = 'failed'",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One job.
pub async fn find(conn: &mut Conn, id: i64) -> Result<Option<JobRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(job).transpose()
}

/// Jobs in `status` (every status when `None`), newest first, at most `limit`.
pub async fn list(
    conn: &mut Conn,
    status: Option<JobStatus>,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM jobs WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
         ORDER BY id DESC LIMIT $2"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(status.map(JobStatus::as_str))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(job).collect()
}

/// How many jobs there are, by kind and state (for `/metrics`).
pub async fn counts(conn: &mut Conn) -> Result<Vec<(String, String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status ORDER BY kind, status",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("kind")?, r.try_get("status")?, r.try_get("n")?)))
        .collect()
}

/// The jobs of a request, oldest first.
pub async fn of_request(conn: &mut Conn, request_id: i64) -> Result<Vec<JobRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE request_id = $1 ORDER BY id");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(request_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(job).collect()
}

/// When the next pending job of `kind` falls due (for a worker's sleep), if any.
/// Jobs another worker holds, or that an earlier job of their serial holds back, are left out:
/// waiting for those is waiting for a wake-up or the idle check, not a spin.
pub async fn next_due_at(conn: &mut Conn, kind: &str) -> Result<Option<i64>, StoreError> {
    let db_now = db_now(conn);
    let sql = format!(
        "SELECT MIN(next_attempt_at) FROM jobs WHERE status = 'pending' AND kind = $1 \
         AND (claimed_until IS NULL OR claimed_until <= {db_now}) AND {IN_ORDER}"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(kind)
        .fetch_one(&mut *conn)
        .await?)
}
