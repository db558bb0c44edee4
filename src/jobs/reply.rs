//! The reply sender: the outbox as one kind of job (see the module above). It sends the
//! replies the pipeline queued over SMTP ([`crate::smtp`] keeps the protocol: the transport,
//! the message, the check), with the queue's retries.
//!
//! One pass ([`send_due`]): read the due rows, check the server once (connect, EHLO,
//! STARTTLS/TLS, AUTH), then claim them a handful at a time, send them over up to
//! [`SENDERS`] connections, and record the results as they come, several per statement (at
//! most [`UNRECORDED_MAX`] sent and not yet recorded, what a crash can send twice). The
//! database is touched only in single short statements between network steps, never in a
//! transaction that waits on the server (see `store::outbox` for the claim that keeps several
//! instances from sending one reply twice).
//!
//! What a failure means (RFC 5321 §4.2.1, first digit of the reply code):
//! - 5yz on MAIL/RCPT/DATA: the server refused *this* message for good → `failed`, with its
//!   answer kept for the staff page; no retry.
//! - 4yz, and anything without a reply code (refused connection, timeout, TLS handshake,
//!   a dropped connection): temporary → retried with the queue's backoff
//!   ([`jobs::after_temporary`]), until `smtp.give_up_after` has passed → `failed`.
//! - A failure while *connecting* (even a 5yz, e.g. 535 on AUTH or 554 in the greeting)
//!   says nothing about the messages: it is treated as temporary for every due row, and the
//!   pass sends nothing more. The same holds once a connection breaks mid-pass: the
//!   remaining rows are rescheduled without hammering a server that is down.

use crate::config::{Config, HelpdeskConfig, SmtpConfig};
use crate::jobs::{self, Attempt, Failure, Next, Schedule, ms, retry_delay};
use crate::oauth::TokenSource;
use crate::smtp::{SENDERS, SmtpError, Transport, build_message, signed_in_transport};
use crate::store::{self, Store, outbox};
use futures::StreamExt;
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Rows taken per pass; the loop comes straight back when more are due.
const PASS_LIMIT: i64 = 50;
/// Rows claimed in one statement (see [`claim_chunk`]).
const CLAIM_CHUNK: usize = 2 * SENDERS;
/// The worker looks at the outbox at least this often, even without a wake-up: only this
/// process's watcher wakes it, so with several instances this is how long a backlog queued by
/// another instance waits for this one's senders to join in (one cheap query each time).
const MAX_IDLE: Duration = Duration::from_secs(5);
/// Replies sent (or being sent) and not yet recorded, at most: what a crash can make go out
/// twice. A sender takes a place before it sends, and the recorder gives it back once the
/// result is written; so senders go on sending while the recorder gathers results, and a
/// recorder that cannot write stops the sending within this many.
pub const UNRECORDED_MAX: usize = 4 * SENDERS;
/// How long the recorder waits for more results after the first before it writes them
/// (unless half of [`UNRECORDED_MAX`] came first): several replies in one statement, one
/// commit of the outbox's pages. Each "sent" record on its own was a commit per reply, about
/// 0.1 ms of SQLite's time each (README, Performance, change 37).
const RECORD_LINGER: Duration = Duration::from_millis(20);
/// Backoff after a database error in the worker loop.
const DB_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DB_RETRY_MAX: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendPass {
    /// Accepted by the server.
    pub sent: u32,
    /// Temporary failure; a later attempt is scheduled.
    pub retried: u32,
    /// Refused for good, or given up after `smtp.give_up_after`.
    pub failed: u32,
    /// Claimed by another sender between reading and claiming.
    pub skipped: u32,
}

impl SendPass {
    fn handled(&self) -> u32 {
        self.sent + self.retried + self.failed
    }
}

/// How long a sender owns a claimed row: the longest a send may take ([`send_bound`]) plus a
/// margin for recording the result (12 × `smtp.timeout` + 5 s in all). After that another
/// sender may take it. The lease runs by the database's clock (`outbox::claim_many`), so no margin
/// for clock differences between instances is needed; it is also how long a reply a killed
/// instance was sending waits before another instance sends it.
fn lease(cfg: &SmtpConfig) -> Duration {
    send_bound(cfg).saturating_add(
        cfg.timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(5)),
    )
}

/// How long one send (or the probe before a pass) may take in all before it is abandoned:
/// ten steps of `smtp.timeout`, always shorter than [`lease`], so a claim never runs out
/// under a send still in progress. (lettre's async client bounds only the connect.)
fn send_bound(cfg: &SmtpConfig) -> Duration {
    cfg.timeout.saturating_mul(10)
}

/// One pass over the due replies with a fresh transport; see the module comment for what
/// each failure leads to.
pub async fn send_due(
    store: &Store,
    cfg: &SmtpConfig,
    helpdesk: &HelpdeskConfig,
) -> Result<SendPass, SmtpError> {
    let transport = signed_in_transport(cfg, None).await?;
    let result = pass(store, &transport, cfg, helpdesk, None).await;
    transport.shutdown().await;
    result
}

async fn pass(
    store: &Store,
    transport: &Transport,
    cfg: &SmtpConfig,
    helpdesk: &HelpdeskConfig,
    stop: Option<&CancellationToken>,
) -> Result<SendPass, SmtpError> {
    let rows = outbox::due(&mut *store.read().await?, store::now_ms(), PASS_LIMIT).await?;
    if rows.is_empty() {
        return Ok(SendPass::default());
    }

    // Connect (and log in) once before touching any row: a refusal here is about the
    // server or our credentials, not about a message (module comment).
    // Bounded here: a server that accepts and then says nothing would hold the pass for ever.
    let probe = tokio::time::timeout(send_bound(cfg), transport.test_connection()).await;
    let broken: Mutex<Option<String>> = Mutex::new(match probe {
        Ok(Ok(true)) => None,
        Ok(Ok(false)) => Some(format!("SMTP {}:{}: no answer to NOOP", cfg.host, cfg.port)),
        Ok(Err(e)) => Some(format!("SMTP {}:{}: {}", cfg.host, cfg.port, e.describe())),
        Err(_) => Some(format!(
            "SMTP {}:{}: no answer within {:?}",
            cfg.host,
            cfg.port,
            send_bound(cfg)
        )),
    });

    // Senders and the recorder side by side: a sender takes a place among the
    // UNRECORDED_MAX, sends, and hands its result over with the place; the recorder writes
    // the results that gather in one statement and gives their places back. On SQLite every
    // write waits its turn behind the pipeline's transactions (`Store::begin`), so one wait
    // shared by the senders instead of one each is what lets them keep up with a backlog.
    let (results, gathered) = tokio::sync::mpsc::unbounded_channel::<Report>();
    let unrecorded = Arc::new(tokio::sync::Semaphore::new(UNRECORDED_MAX));
    let sender = Sender {
        transport,
        cfg,
        helpdesk,
        stop,
        broken: &broken,
        unrecorded: &unrecorded,
    };
    let sending = send_all(store, &sender, &rows, results);
    let recording = async {
        let recorded = recorder(store, cfg, gathered, RECORD_LINGER).await;
        // Stopped, by an error or with every sender done: a sender about to send finds no
        // place and sends nothing, and no more rows are claimed.
        unrecorded.close();
        recorded
    };
    let ((sent, skipped), recorded) = tokio::join!(sending, recording);
    let mut result = recorded?;
    sent?;
    result.skipped += skipped;
    Ok(result)
}

/// Keep up to [`SENDERS`] sends going, claiming the next handful of rows when the claimed
/// ones run out; each result goes to the recorder. Returns how many rows another sender
/// had claimed first.
async fn send_all(
    store: &Store,
    sender: &Sender<'_>,
    rows: &[outbox::OutboxRow],
    results: tokio::sync::mpsc::UnboundedSender<Report>,
) -> (Result<(), SmtpError>, u32) {
    let mut skipped = 0u32;
    let mut chunks = rows.chunks(CLAIM_CHUNK);
    let mut queue = std::collections::VecDeque::new();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    loop {
        while in_flight.len() < SENDERS {
            if let Some(row) = queue.pop_front() {
                in_flight.push(send_and_report(sender, row, &results));
            } else if sender.unrecorded.is_closed() {
                // The recorder has stopped: nothing more is claimed.
                break;
            } else if let Some(chunk) = chunks.next() {
                match claim_chunk(store, sender.cfg, sender.stop, chunk).await {
                    Ok(claimed) => {
                        let lost = chunk.len().saturating_sub(claimed.len());
                        skipped = skipped.saturating_add(u32::try_from(lost).unwrap_or(u32::MAX));
                        queue.extend(claimed);
                    }
                    Err(e) => {
                        // Let the sends in flight finish and be recorded first.
                        while in_flight.next().await.is_some() {}
                        return (Err(e), skipped);
                    }
                }
            } else {
                break;
            }
        }
        if in_flight.next().await.is_none() {
            return (Ok(()), skipped);
        }
    }
}

/// What every send of one pass shares.
struct Sender<'a> {
    transport: &'a Transport,
    cfg: &'a SmtpConfig,
    helpdesk: &'a HelpdeskConfig,
    stop: Option<&'a CancellationToken>,
    /// Set once the connection is known to be gone: the remaining rows are rescheduled
    /// instead of tried.
    broken: &'a Mutex<Option<String>>,
    /// Places for results not yet recorded ([`UNRECORDED_MAX`]).
    unrecorded: &'a Arc<tokio::sync::Semaphore>,
}

/// A sender's result, with the place it holds until the recorder has written it.
type Report = (
    outbox::OutboxRow,
    Attempt,
    tokio::sync::OwnedSemaphorePermit,
);

async fn send_and_report(
    sender: &Sender<'_>,
    row: outbox::OutboxRow,
    results: &tokio::sync::mpsc::UnboundedSender<Report>,
) {
    // No place: the recorder has stopped, on an error the pass returns. The row stays
    // claimed and unsent, and is sent when its claim runs out.
    let Ok(place) = sender.unrecorded.clone().acquire_owned().await else {
        return;
    };
    let attempt = attempt(sender, &row).await;
    // Refused only once the recorder has stopped; the place goes with the report.
    let _ = results.send((row, attempt, place));
}

/// Replies claimed in one statement (at most [`CLAIM_CHUNK`]). Claimed a few at a time
/// rather than the whole pass: a sender that dies strands only the handful it held, until
/// their lease runs out.
async fn claim_chunk(
    store: &Store,
    cfg: &SmtpConfig,
    stop: Option<&CancellationToken>,
    chunk: &[outbox::OutboxRow],
) -> Result<Vec<outbox::OutboxRow>, SmtpError> {
    if stop.is_some_and(CancellationToken::is_cancelled) {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = chunk.iter().map(|r| r.id).collect();
    // A single statement on its own, not `Store::begin()` (see store::outbox).
    let claimed = outbox::claim_many(
        &mut *store.write().await?,
        &ids,
        store::now_ms(),
        lease(cfg),
    )
    .await?;
    Ok(chunk
        .iter()
        .filter(|r| claimed.contains(&r.id))
        .cloned()
        .collect())
}

/// Send one claimed reply.
async fn attempt(sender: &Sender<'_>, row: &outbox::OutboxRow) -> Attempt {
    let Sender {
        transport,
        cfg,
        helpdesk,
        stop,
        broken,
        unrecorded: _,
    } = *sender;
    if stop.is_some_and(CancellationToken::is_cancelled) {
        return Attempt::Released;
    }
    let known_broken = broken
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(error) = known_broken {
        return Attempt::Failed(Failure::Temporary(error));
    }
    let message = match build_message(row, cfg, helpdesk) {
        Ok(message) => message,
        Err(error) => return Attempt::Failed(Failure::Permanent(error)),
    };
    match tokio::time::timeout(send_bound(cfg), transport.send(&message)).await {
        Ok(Ok(())) => Attempt::Done,
        // Given up before the claim runs out, so no other sender can take the row while
        // this attempt might still be going on. Whether the server took the message is
        // unknown: it is retried (at-least-once, as after a crash).
        Err(_) => {
            let text = format!(
                "SMTP {}:{}: no answer within {:?}",
                cfg.host,
                cfg.port,
                send_bound(cfg)
            );
            *broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(text.clone());
            Attempt::Failed(Failure::Temporary(text))
        }
        Ok(Err(e)) => {
            let text = e.describe();
            if e.is_permanent() || e.is_refused_locally() {
                // Refused for good, or lettre refusing this message locally (e.g. a
                // non-ASCII address and no SMTPUTF8): the same next time.
                Attempt::Failed(Failure::Permanent(text))
            } else if e.is_transient() {
                Attempt::Failed(Failure::Temporary(text))
            } else {
                // No reply code about this message: the connection is gone (network, TLS,
                // timeout, or setting up a new one failed). Later rows are rescheduled, not
                // tried.
                let text = format!("SMTP {}:{}: {text}", cfg.host, cfg.port);
                *broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(text.clone());
                Attempt::Failed(Failure::Temporary(text))
            }
        }
    }
}

/// Results written by one statement, at most: half of [`UNRECORDED_MAX`], so that the other
/// half keeps the senders going while the recorder writes.
const BATCH_MAX: usize = UNRECORDED_MAX / 2;

/// Write the senders' results as they come, several at a time ([`gather`]).
async fn recorder(
    store: &Store,
    cfg: &SmtpConfig,
    mut gathered: tokio::sync::mpsc::UnboundedReceiver<Report>,
    linger: Duration,
) -> Result<SendPass, SmtpError> {
    let mut result = SendPass::default();
    while let Some(first) = gathered.recv().await {
        let batch = gather(first, &mut gathered, linger).await;
        let mut sent = Vec::new();
        let mut released = Vec::new();
        let mut failed = Vec::new();
        let mut places = Vec::with_capacity(batch.len());
        for (row, attempt, place) in batch {
            places.push(place);
            match attempt {
                Attempt::Done => sent.push(row),
                Attempt::Released => released.push(row.id),
                Attempt::Failed(failure) => failed.push((row, failure)),
            }
        }
        if !sent.is_empty() {
            record_sent(store, &sent, &mut result).await?;
        }
        if !released.is_empty() {
            outbox::release(&mut *store.write().await?, &released).await?;
        }
        for (row, failure) in failed {
            record_failure(store, &row, failure, cfg, &mut result).await?;
        }
        // Written: the places are free for the next sends.
        drop(places);
    }
    Ok(result)
}

/// The first result and those that come within `linger` after it, up to [`BATCH_MAX`]; fewer
/// when every sender is done.
async fn gather(
    first: Report,
    gathered: &mut tokio::sync::mpsc::UnboundedReceiver<Report>,
    linger: Duration,
) -> Vec<Report> {
    let mut batch = vec![first];
    let until = tokio::time::Instant::now() + linger;
    while batch.len() < BATCH_MAX {
        match tokio::time::timeout_at(until, gathered.recv()).await {
            Ok(Some(more)) => batch.push(more),
            // Every sender done, or waited long enough.
            Ok(None) | Err(_) => break,
        }
    }
    batch
}

/// Record replies the server accepted, however long the database takes to come back: if
/// this were given up, the claims would run out and another pass would send the replies a
/// second time. A failure that is not an outage (a bug, a constraint) is returned at once.
async fn record_sent(
    store: &Store,
    rows: &[outbox::OutboxRow],
    result: &mut SendPass,
) -> Result<(), SmtpError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut failures: u32 = 0;
    loop {
        let done = async {
            outbox::mark_sent_many(&mut *store.write().await?, &ids, store::now_ms()).await
        }
        .await;
        match done {
            Ok(()) => break,
            Err(e) if e.is_unavailable() => {
                failures = failures.saturating_add(1);
                // Short waits: once the database is back, the record must land before the
                // claims run out and another instance takes the rows.
                let wait = Duration::from_millis(500 << failures.min(3));
                tracing::warn!(
                    outbox_ids = ?ids,
                    attempt = failures,
                    "replies sent, but the database is unavailable to record them: {e}; trying again in {:.1}s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Log lines name the row and the request, never the body: it may hold a password.
    for row in rows {
        let reference = row.reference.as_deref().unwrap_or("-");
        tracing::info!(outbox_id = row.id, reference, "reply sent");
    }
    result.sent += u32::try_from(rows.len()).unwrap_or(u32::MAX);
    Ok(())
}

/// A reply not sent: scheduled again, or marked failed.
async fn record_failure(
    store: &Store,
    row: &outbox::OutboxRow,
    failure: Failure,
    cfg: &SmtpConfig,
    result: &mut SendPass,
) -> Result<(), SmtpError> {
    let now = store::now_ms();
    let mut conn = store.write().await?;
    let reference = row.reference.as_deref().unwrap_or("-");
    // Log lines name the row and the request, never the body: it may hold a password.
    match failure {
        Failure::Permanent(error) => {
            tracing::warn!(outbox_id = row.id, reference, %error, "reply refused for good; marked failed");
            outbox::mark_failed(&mut conn, row.id, &error).await?;
            result.failed += 1;
        }
        Failure::Temporary(error) => {
            match jobs::after_temporary(
                &schedule(cfg),
                row.attempts,
                row.attempts_since(),
                now,
                &error,
            ) {
                Next::GiveUp(error) => {
                    tracing::warn!(outbox_id = row.id, reference, %error, "reply not sent; marked failed");
                    outbox::mark_failed(&mut conn, row.id, &error).await?;
                    result.failed += 1;
                }
                Next::Retry {
                    attempts,
                    at,
                    delay,
                } => {
                    tracing::warn!(
                        outbox_id = row.id,
                        reference,
                        attempts,
                        retry_in_ms = ms(delay),
                        %error,
                        "reply not sent; will retry"
                    );
                    outbox::mark_retry(&mut conn, row.id, attempts, at, &error).await?;
                    result.retried += 1;
                }
            }
        }
    }
    Ok(())
}

/// The reply kind's retry schedule, from `[smtp]`.
fn schedule(cfg: &SmtpConfig) -> Schedule {
    Schedule {
        initial: cfg.retry_initial,
        max: cfg.retry_max,
        give_up_after: cfg.give_up_after,
    }
}

/// The outbox worker: a pass, then sleep until woken (`wake.notify_one()` after a reply is
/// queued), until the next reply falls due (at most `MAX_IDLE`, 5 s), or until shutdown. A
/// database or setup error is logged and retried with backoff; it returns only on shutdown
/// (finishing the reply in hand first).
pub async fn run_outbox(
    store: Store,
    cfg: Arc<Config>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    run_outbox_counted(store, cfg, wake, shutdown, None).await
}

/// [`run_outbox`], with XOAUTH2 token failures counted on the daemon's `status`.
pub async fn run_outbox_counted(
    store: Store,
    cfg: Arc<Config>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    status: Option<crate::status::Status>,
) {
    let Some(smtp) = cfg.smtp.as_ref() else {
        tracing::warn!("no [smtp] section in the config: replies stay in the outbox unsent");
        shutdown.cancelled().await;
        return;
    };
    // Built once: pooled transports are rebuilt when their token goes stale, the cache stays.
    let tokens = smtp.auth.tokens(status.as_ref());
    let mut transport: Option<Transport> = None;
    let mut errors: u32 = 0;
    while !shutdown.is_cancelled() {
        let pass = worker_pass(
            &store,
            &mut transport,
            smtp,
            tokens.as_ref(),
            &cfg.helpdesk,
            &shutdown,
        );
        let wait = match pass.await {
            Ok(wait) => {
                errors = 0;
                wait
            }
            Err(e) => {
                errors = errors.saturating_add(1);
                let wait = retry_delay(errors, DB_RETRY_INITIAL, DB_RETRY_MAX);
                tracing::error!(error = %e, retry_in_ms = ms(wait), "outbox pass failed");
                wait
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(t) = transport {
        t.shutdown().await;
    }
}

/// One pass of the worker, reusing its transport (and so its pooled connection); returns
/// how long to sleep.
async fn worker_pass(
    store: &Store,
    transport: &mut Option<Transport>,
    smtp: &SmtpConfig,
    tokens: Option<&TokenSource>,
    helpdesk: &HelpdeskConfig,
    shutdown: &CancellationToken,
) -> Result<Duration, SmtpError> {
    // XOAUTH2: pooled connections sign in with the token the transport was built with; once
    // that token is stale, new connections need a transport with a fresh one.
    if let Some(source) = tokens
        && source.is_stale()
        && let Some(old) = transport.take()
    {
        old.shutdown().await;
    }
    let t = match transport {
        Some(t) => t,
        None => transport.insert(self::signed_in_transport(smtp, tokens).await?),
    };
    let done = pass(store, t, smtp, helpdesk, Some(shutdown)).await?;
    if done.handled() + done.skipped > 0 {
        tracing::debug!(?done, "outbox pass");
    }
    let next = outbox::next_due_at(&mut *store.read().await?).await?;
    let wait = match next {
        Some(at) => {
            Duration::from_millis(u64::try_from(at.saturating_sub(store::now_ms())).unwrap_or(0))
        }
        None => MAX_IDLE,
    };
    // Never spin: when a pass achieved nothing, wait a moment even if something looks due.
    let floor = if done.handled() == 0 {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    Ok(wait.clamp(floor, MAX_IDLE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::tests::smtp;
    use crate::store::journal::{NewOutboxItem, enqueue_reply};
    use crate::store::outbox::OutboxStatus;
    use std::collections::BTreeSet;

    /// A store with `n` replies queued, and their rows as a pass reads them.
    async fn queued(n: usize) -> (Store, Vec<outbox::OutboxRow>) {
        let store = Store::in_memory().await;
        let mut tx = store.begin().await.unwrap();
        for i in 0..n {
            enqueue_reply(
                &mut tx,
                &NewOutboxItem {
                    request_id: None,
                    to: "site@nhs.example",
                    subject: "s",
                    body: "b",
                    message_id: &format!("r{i}@nhs.example"),
                    in_reply_to: None,
                    references: None,
                    secret: None,
                },
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let rows = outbox::due(&mut store.read().await.unwrap(), store::now_ms(), 100)
            .await
            .unwrap();
        assert_eq!(rows.len(), n);
        (store, rows)
    }

    /// Results that come one after another within the linger are written by one statement
    /// (one `sent_at`), and every place is given back.
    #[tokio::test]
    async fn results_within_the_linger_are_recorded_together() {
        let (store, rows) = queued(5).await;
        let places = Arc::new(tokio::sync::Semaphore::new(UNRECORDED_MAX));
        let (results, gathered) = tokio::sync::mpsc::unbounded_channel::<Report>();
        let feed = async {
            for row in rows {
                let place = places.clone().acquire_owned().await.unwrap();
                results.send((row, Attempt::Done, place)).unwrap();
                // Apart by more than a millisecond: results written as they came would get
                // different `sent_at`s.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            drop(results);
        };
        let cfg = smtp();
        let (_, recorded) = tokio::join!(
            feed,
            recorder(&store, &cfg, gathered, Duration::from_secs(5))
        );
        assert_eq!(recorded.unwrap().sent, 5);
        let sent = outbox::list(
            &mut store.read().await.unwrap(),
            Some(OutboxStatus::Sent),
            100,
            0,
        )
        .await
        .unwrap();
        assert_eq!(sent.len(), 5);
        let stamps: BTreeSet<Option<i64>> = sent.iter().map(|r| r.sent_at).collect();
        assert_eq!(stamps.len(), 1, "{stamps:?}");
        assert_eq!(places.available_permits(), UNRECORDED_MAX);
    }

    /// Results all there at once: at most half the places' worth per statement, the rest in
    /// the next, so that the senders have places while the recorder writes.
    #[tokio::test]
    async fn a_batch_is_at_most_half_the_places() {
        let (_store, rows) = queued(BATCH_MAX + 1).await;
        let places = Arc::new(tokio::sync::Semaphore::new(UNRECORDED_MAX));
        let (results, mut gathered) = tokio::sync::mpsc::unbounded_channel::<Report>();
        for row in rows {
            let place = places.clone().acquire_owned().await.unwrap();
            results.send((row, Attempt::Done, place)).unwrap();
        }
        drop(results);
        let linger = Duration::from_secs(5);
        let first = gathered.recv().await.unwrap();
        assert_eq!(gather(first, &mut gathered, linger).await.len(), BATCH_MAX);
        let next = gathered.recv().await.unwrap();
        // The senders are done: the last one is written at once, not after the linger.
        let started = std::time::Instant::now();
        assert_eq!(gather(next, &mut gathered, linger).await.len(), 1);
        assert!(started.elapsed() < linger);
    }
}
