//! What happens to a message delivered over LMTP: the pipeline call the IMAP watcher makes
//! (`pipeline::process`, one transaction), and a verdict for the MTA that is `250` only once
//! that transaction has committed.
//!
//! - committed (any outcome, a duplicate included) → `250 2.0.0`, with the reference and the
//!   outcome, which the MTA writes in its log;
//! - the database cannot be reached, or any other error → `451 4.3.0`: nothing was kept, the
//!   MTA keeps the message and tries again (Postfix: every few minutes, for days).
//!
//! After the commit, as the watcher does: the outbox is woken (the reply was queued in the
//! transaction), the test hook may abort, and the message is filed for people in its outcome
//! folder of the helpdesk's IMAP inbox when there is one ([`crate::imap::append`]).
//!
//! Group commit on SQLite, as the watcher's (`pipeline::Group`): messages that arrive while
//! another delivery is committing wait for it, then share ONE transaction, and each is
//! answered once that transaction has committed. A commit (and its `fsync`) per message was
//! what held a burst of deliveries back: SQLite has one writer. Whoever's turn it is commits
//! everything waiting ([`Delivery::take_turn`]); a group that fails is rolled back and its
//! messages go through one transaction each, so one bad message cannot cost the others their
//! delivery. PostgreSQL keeps a transaction per message (a serialisation failure would undo a
//! whole group).

use super::session::{Deliver, Envelope, Reply};
use crate::config::Config;
use crate::imap::append::{Appender, Job};
use crate::imap::test_hook::AbortAfterCommits;
use crate::outcome::Outcome;
use crate::pipeline::{self, Mode, Processed};
use crate::status::Status;
use crate::store::{Backend, Store};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::{Notify, oneshot};
use tracing::Instrument;

/// At most this many deliveries share one transaction.
const GROUP_MAX: usize = 50;

pub struct Delivery {
    store: Store,
    cfg: Arc<Config>,
    /// Wakes the outbox worker after a commit.
    wake: Arc<Notify>,
    status: Status,
    hook: Arc<AbortAfterCommits>,
    /// `None` without `[imap]`: nothing to file into.
    appender: Option<Appender>,
    /// SQLite: deliveries waiting for the next group commit.
    waiting: Mutex<Vec<Waiting>>,
    /// SQLite: whose turn it is to commit what is waiting.
    turn: tokio::sync::Mutex<()>,
}

/// A delivery waiting for a group commit, and where its answer goes.
struct Waiting {
    recipient: String,
    message: Vec<u8>,
    started: Instant,
    span: tracing::Span,
    answer: oneshot::Sender<Reply>,
}

impl Deliver for Delivery {
    fn deliver(&self, envelope: &Envelope, message: Vec<u8>) -> impl Future<Output = Reply> + Send {
        let recipient = envelope.recipients.first().cloned().unwrap_or_default();
        let span = tracing::info_span!(
            "lmtp",
            to = %recipient,
            size = message.len(),
            reference = tracing::field::Empty
        );
        let grouped = self.store.backend() == Backend::Sqlite;
        async move {
            if grouped {
                self.grouped(recipient, message).await
            } else {
                self.run(&recipient, message, Instant::now()).await
            }
        }
        .instrument(span)
    }
}

impl Delivery {
    pub fn new(
        store: Store,
        cfg: Arc<Config>,
        wake: Arc<Notify>,
        status: Status,
        hook: Arc<AbortAfterCommits>,
        appender: Option<Appender>,
    ) -> Delivery {
        Delivery {
            store,
            cfg,
            wake,
            status,
            hook,
            appender,
            waiting: Mutex::new(Vec::new()),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// One message in its own transaction.
    async fn run(&self, recipient: &str, message: Vec<u8>, started: Instant) -> Reply {
        let source = format!("lmtp:{recipient}");
        match pipeline::process(&self.store, &self.cfg, &message, &source, Mode::Apply).await {
            Ok(p) => {
                self.status.message_processed(started.elapsed());
                self.committed(&p, recipient, message);
                verdict(&p)
            }
            Err(e) => not_taken(&e),
        }
    }

    /// Wait in line for a group commit (SQLite); the answer once the group has committed.
    async fn grouped(&self, recipient: String, message: Vec<u8>) -> Reply {
        let (answer, answered) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Waiting {
                recipient,
                message,
                started: Instant::now(),
                span: tracing::Span::current(),
                answer,
            });
        self.take_turn().await;
        // Dropped unanswered only when the delivery that held the turn was itself dropped
        // mid-transaction (its connection closed, or shutdown): nothing of it was committed.
        answered
            .await
            .unwrap_or_else(|_| Reply::new(451, "4.3.0", "not processed, try again later"))
    }

    /// In turn, commit everything waiting, a group at a time. Whoever waited here finds its
    /// own message answered afterwards: taken by an earlier turn, or by this one, which
    /// empties the line.
    async fn take_turn(&self) {
        let _turn = self.turn.lock().await;
        loop {
            let group: Vec<Waiting> = {
                let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                let n = waiting.len().min(GROUP_MAX);
                waiting.drain(..n).collect()
            };
            if group.is_empty() {
                return;
            }
            self.commit_group(group).await;
        }
    }

    /// One transaction for `group`, then each answered; one transaction each when the group
    /// fails.
    async fn commit_group(&self, group: Vec<Waiting>) {
        if group.len() == 1 {
            return self.one_by_one(group).await;
        }
        // DKIM may look keys up on the network: before the group takes the write lock.
        let prepared = futures::future::join_all(
            group
                .iter()
                .map(|w| pipeline::prepare(&self.cfg, &w.message)),
        )
        .await;
        let mut tx = match pipeline::Group::begin(&self.store).await {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(
                    messages = group.len(),
                    "could not begin a group commit: {e}"
                );
                return self.one_by_one(group).await;
            }
        };
        let mut done = Vec::with_capacity(group.len());
        for (w, p) in group.iter().zip(&prepared) {
            let source = format!("lmtp:{}", w.recipient);
            match tx
                .process(&self.cfg, p, &source)
                .instrument(w.span.clone())
                .await
            {
                Ok((next, processed)) => {
                    tx = next;
                    done.push(processed);
                }
                Err(e) => {
                    // Rolled back with everything in it.
                    w.span.in_scope(|| {
                        tracing::warn!(
                            messages = group.len(),
                            "could not process the message in a group: {e}; the group was rolled back and each of its messages is processed alone"
                        )
                    });
                    drop(prepared);
                    return self.one_by_one(group).await;
                }
            }
        }
        if let Err(e) = tx.commit().await {
            tracing::warn!(
                messages = group.len(),
                "could not commit a group of deliveries: {e}; each is processed alone"
            );
            drop(prepared);
            return self.one_by_one(group).await;
        }
        drop(prepared);
        tracing::info!(
            messages = group.len(),
            "{} deliveries committed in one transaction",
            group.len()
        );
        for (w, p) in group.into_iter().zip(done) {
            let reply = w.span.in_scope(|| {
                self.status.message_processed(w.started.elapsed());
                self.committed(&p, &w.recipient, w.message);
                verdict(&p)
            });
            // The session may be gone (its connection closed): the MTA delivers again and
            // the message is a duplicate, answered 250.
            let _ = w.answer.send(reply);
        }
    }

    /// Each in its own transaction, answered as it commits.
    async fn one_by_one(&self, group: Vec<Waiting>) {
        for w in group {
            let reply = self
                .run(&w.recipient, w.message, w.started)
                .instrument(w.span)
                .await;
            let _ = w.answer.send(reply);
        }
    }

    /// After the commit and before the `250`: log, fire the test hook, wake the outbox, and
    /// queue the filing.
    fn committed(&self, p: &Processed, recipient: &str, message: Vec<u8>) {
        if let Some(reference) = &p.reference {
            tracing::Span::current().record("reference", reference.as_str());
        }
        tracing::info!(
            outcome = %p.outcome,
            reason = p.reason.as_deref().unwrap_or(""),
            "processed"
        );
        if p.outcome != Outcome::Duplicate {
            self.hook.after_commit();
            self.wake.notify_one();
        }
        let Some(appender) = &self.appender else {
            return;
        };
        // A duplicate is filed only when its first copy came over LMTP too: that is the MTA
        // delivering again after losing our `250` (a crash between commit and answer), and
        // the first copy may never have been filed. A first copy from the IMAP inbox was
        // moved to its folder by the watcher already.
        let folder_outcome = match p.outcome {
            Outcome::Duplicate => {
                if !p
                    .previous_source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("lmtp:"))
                {
                    return;
                }
                p.previous_outcome.unwrap_or(Outcome::Duplicate)
            }
            o => o,
        };
        appender.file(Job {
            inbox: Appender::inbox_for(&self.cfg, recipient),
            outcome: folder_outcome,
            raw: message,
            label: p
                .reference
                .clone()
                .unwrap_or_else(|| format!("lmtp:{recipient}")),
        });
    }
}

/// The `451` for a message whose transaction did not commit: the MTA keeps it and tries again.
fn not_taken(e: &crate::store::StoreError) -> Reply {
    if e.is_unavailable() {
        tracing::warn!(
            "database unavailable: {e}; answered 451, the MTA keeps the message and tries again"
        );
        Reply::new(451, "4.3.0", "database unavailable, try again later")
    } else {
        tracing::error!(
            "could not process the message: {e}; answered 451, the MTA keeps the message and tries again"
        );
        Reply::new(
            451,
            "4.3.0",
            "could not process the message now, try again later",
        )
    }
}

/// The `250` line: what the MTA logs as the delivery's result.
fn verdict(p: &Processed) -> Reply {
    let text = match (&p.reference, p.outcome) {
        (Some(r), Outcome::Duplicate) => format!("{r} already taken, nothing done again"),
        (None, Outcome::Duplicate) => "already taken, nothing done again".to_owned(),
        (Some(r), o) => format!("{r} {o}"),
        (None, o) => o.to_string(),
    };
    Reply::new(250, "2.0.0", text)
}
