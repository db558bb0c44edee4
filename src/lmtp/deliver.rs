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

use super::session::{Deliver, Envelope, Reply};
use crate::config::Config;
use crate::imap::append::{Appender, Job};
use crate::imap::test_hook::AbortAfterCommits;
use crate::outcome::Outcome;
use crate::pipeline::{self, Mode, Processed};
use crate::status::Status;
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::Instrument;

pub struct Delivery {
    pub store: Store,
    pub cfg: Arc<Config>,
    /// Wakes the outbox worker after a commit.
    pub wake: Arc<Notify>,
    pub status: Status,
    pub hook: Arc<AbortAfterCommits>,
    /// `None` without `[imap]`: nothing to file into.
    pub appender: Option<Appender>,
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
        async move { self.run(&recipient, message).await }.instrument(span)
    }
}

impl Delivery {
    async fn run(&self, recipient: &str, message: Vec<u8>) -> Reply {
        let source = format!("lmtp:{recipient}");
        let started = std::time::Instant::now();
        match pipeline::process(&self.store, &self.cfg, &message, &source, Mode::Apply).await {
            Ok(p) => {
                self.status.message_processed(started.elapsed());
                self.committed(&p, recipient, message);
                verdict(&p)
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    "database unavailable: {e}; answered 451, the MTA keeps the message and tries again"
                );
                Reply::new(451, "4.3.0", "database unavailable, try again later")
            }
            Err(e) => {
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
