//! The job queue: work that a committed decision leaves to be done outside its transaction,
//! against something that may be slow, down or refusing — an SMTP server, a directory.
//!
//! Every job kind shares one life: written in the transaction that decides it; claimed with a
//! lease (by the database's clock) so that several workers or instances never do one job at
//! once and a worker that dies only delays it; tried; on a temporary failure tried again with
//! capped exponential backoff ([`retry_delay`]) until the kind's give-up time has passed
//! ([`after_temporary`]); on a permanent failure, or when given up, kept as `failed` with the
//! error for staff, who can retry it. An attempt must be safe to repeat: a worker killed
//! between doing a job and recording it leaves it due again.
//!
//! Two kinds of storage hold jobs:
//! - the **outbox** (`store::outbox`), the replies to sites: the reply sender ([`reply`]) is
//!   one kind of job, with its own table because a reply's payload is the mail itself and its
//!   sender is tuned for throughput (pooled connections, results recorded in batches);
//! - the **`jobs`** table (`store::jobs`), for every other kind: a [`JobKind`] names itself,
//!   says how to try one payload, and the generic [`worker`] runs it. A reply can wait for a
//!   job (`journal::hold_reply`): the site's "Done" goes out only once the change it reports
//!   is done.
//!
//! Adding a job kind: implement [`JobKind`] (its name, its payload — by address, not by
//! database id — its schedule, and one attempt), [`enqueue`] it in the transaction that decides
//! it, and start [`worker::run`] for it in the daemon. See `docs/architecture.md`.

pub mod reply;
pub mod worker;

use crate::store::jobs::{self, JobRow, NewJob};
use crate::store::{Conn, StoreError, now_ms};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// No retry is scheduled sooner than this, whatever the config says, so a misconfigured `0s`
/// cannot turn a worker into a busy loop against a dead server.
pub const MIN_RETRY: Duration = Duration::from_millis(100);

/// What one try of a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Done,
    /// Not tried: the worker is stopping; the claim is given back.
    Released,
    Failed(Failure),
}

/// Why a try failed, and so what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later (the other side is down, slow, or said "not now").
    Temporary(String),
    /// Give up now (the other side refused this job for good, or it cannot be done as it is).
    Permanent(String),
}

/// How a kind's temporary failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The wait after the first failure; it doubles after each one…
    pub initial: Duration,
    /// …up to this.
    pub max: Duration,
    /// Failing for longer than this (from the job's creation, or from staff's last retry)
    /// gives up.
    pub give_up_after: Duration,
}

/// Delay before attempt `attempts + 1`, `attempts` counting the one that just failed:
/// `initial`, then doubling, capped at `max`, never below [`MIN_RETRY`]. Computed rather than
/// kept in a running loop because the state lives in the job's `attempts` column: a pure
/// function of it survives restarts and is testable. "Equal jitter" (a random point in the
/// upper half) spreads jobs that failed together without ever retrying much sooner than the
/// schedule says.
pub fn retry_delay(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let full = initial
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(max)
        .max(MIN_RETRY);
    let ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(
        rand::thread_rng()
            .gen_range(ms / 2..=ms)
            .max(u64::try_from(MIN_RETRY.as_millis()).unwrap_or(u64::MAX)),
    )
}

/// What follows a temporary failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try again at `at` (Unix ms); `attempts` is the new total.
    Retry {
        attempts: i64,
        at: i64,
        delay: Duration,
    },
    /// Failing for longer than the schedule allows: the error to keep.
    GiveUp(String),
}

/// After a temporary failure of a job tried `attempts` times before, in a round of attempts
/// that began at `since`: try again, or give up.
pub fn after_temporary(
    schedule: &Schedule,
    attempts: i64,
    since: i64,
    now: i64,
    error: &str,
) -> Next {
    let attempts = attempts.saturating_add(1);
    if now >= since.saturating_add(ms(schedule.give_up_after)) {
        return Next::GiveUp(format!(
            "gave up after {attempts} attempts over {}: {error}",
            humantime::format_duration(schedule.give_up_after)
        ));
    }
    let delay = retry_delay(
        u32::try_from(attempts).unwrap_or(u32::MAX),
        schedule.initial,
        schedule.max,
    );
    Next::Retry {
        attempts,
        at: now.saturating_add(ms(delay)),
        delay,
    }
}

/// A duration in whole milliseconds, as the queue stores times.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A kind of job in the `jobs` table: what it is called, what it carries, how it is retried,
/// and how it is tried once.
pub trait JobKind: Send + Sync + 'static {
    /// The name stored with each job (`jobs.kind`); never change it once jobs exist.
    const NAME: &'static str;
    /// What one job carries. Name things by address, not by database id.
    type Payload: Serialize + DeserializeOwned + Send + Sync;

    fn schedule(&self) -> Schedule;

    /// How long a worker owns a claimed job: longer than any one attempt may take.
    fn lease(&self) -> Duration;

    /// Do the job once: what was done, as the target read it back (kept with the job), or why
    /// not. Must be safe to repeat.
    fn attempt(
        &self,
        payload: &Self::Payload,
    ) -> impl std::future::Future<Output = Result<serde_json::Value, Failure>> + Send;

    /// What of a done job's payload is kept: `Some` rewrites it (a secret the job carried to
    /// the target is not kept once it is there), `None` keeps it as it is.
    fn kept(&self, _payload: &Self::Payload) -> Option<Self::Payload> {
        None
    }

    /// What else follows a job being done, in the transaction that records it: e.g. a request
    /// sent to staff when an earlier try failed is applied after all.
    fn done(
        &self,
        _conn: &mut Conn,
        _job: &JobRow,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Called once a done job is recorded (committed): e.g. wake the sender of a reply that
    /// waited for it.
    fn recorded_done(&self) {}

    /// What else follows a job failing for good (refused, or given up), in the transaction that
    /// records it: e.g. the request it was for goes to staff.
    fn failed(
        &self,
        _conn: &mut Conn,
        _job: &JobRow,
        _error: &str,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Write a job of kind `K`, in the caller's transaction (the one that decides it): its id.
pub async fn enqueue<K: JobKind>(
    conn: &mut Conn,
    payload: &K::Payload,
    request_id: Option<i64>,
) -> Result<i64, StoreError> {
    enqueue_in_order::<K>(conn, payload, request_id, None).await
}

/// [`enqueue`], run only after every earlier job of `K` with the same `serial` is done or
/// failed (for provisioning: the account the change is about, so two changes to one account
/// reach the directory in the order they were decided, even across a crash and its replay).
pub async fn enqueue_in_order<K: JobKind>(
    conn: &mut Conn,
    payload: &K::Payload,
    request_id: Option<i64>,
    serial: Option<&str>,
) -> Result<i64, StoreError> {
    let payload = serde_json::to_string(payload)
        .map_err(|e| StoreError::Invalid(format!("a {} job's payload: {e}", K::NAME)))?;
    jobs::enqueue(
        conn,
        &NewJob {
            kind: K::NAME,
            payload: &payload,
            request_id,
            serial,
        },
        now_ms(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_with_jitter_and_is_capped() {
        let initial = Duration::from_secs(30);
        let max = Duration::from_secs(600);
        for _ in 0..50 {
            let d1 = retry_delay(1, initial, max);
            assert!(d1 >= Duration::from_secs(15) && d1 <= initial, "{d1:?}");
            let d3 = retry_delay(3, initial, max);
            assert!(
                d3 >= Duration::from_secs(60) && d3 <= Duration::from_secs(120),
                "{d3:?}"
            );
            let d40 = retry_delay(40, initial, max);
            assert!(d40 >= max / 2 && d40 <= max, "{d40:?}");
            assert!(retry_delay(1, Duration::ZERO, max) >= MIN_RETRY);
        }
    }

    #[test]
    fn temporary_failures_are_retried_until_the_give_up_time() {
        let s = Schedule {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        match after_temporary(&s, 0, 1_000, 2_000, "down") {
            Next::Retry { attempts, at, .. } => {
                assert_eq!(attempts, 1);
                assert!((2_500..=3_000).contains(&at), "{at}");
            }
            other => panic!("{other:?}"),
        }
        match after_temporary(&s, 7, 1_000, 1_000 + 3_600_000, "down") {
            Next::GiveUp(e) => assert!(
                e.starts_with("gave up after 8 attempts over 1h: down"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
