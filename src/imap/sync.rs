//! One sync pass over the watched folder:
//!
//! 1. list `UID FETCH from:* (UID RFC822.SIZE FLAGS)` — only numbers, so a folder with 10,000
//!    waiting costs ~80 kB here, never their bodies;
//! 2. take the list in batches of `batch_size`: fetch the batch's bodies with `BODY.PEEK[]`
//!    (nothing is marked seen), or only `BODY.PEEK[HEADER]` for a message over
//!    `max_message_bytes`, and hand each to the pipeline as it arrives (one message in memory
//!    at a time). On SQLite the messages that arrive back to back share one transaction
//!    (`pipeline::Group`), committed whenever the next message is not there yet, before
//!    anything else waits on the network, and every 50 messages; on PostgreSQL each message
//!    has its own;
//! 3. then move the batch's committed messages, one command per outcome folder;
//! 4. then checkpoint UIDVALIDITY and the next UID.
//!
//! A crash after 2 and before 3 leaves committed messages in the folder: the next session's
//! full scan fetches them again, the pipeline answers Duplicate with the first outcome, and
//! they are only moved. A message the pipeline fails on (database error) stays where it is
//! and is retried by a later full scan; it does not hold up the others (when it fails inside a
//! group, the group's other messages stay too, and that scan gives every message its own
//! transaction, so they are not held up by it again). A database that cannot
//! be reached at all ends the pass instead: the watcher logs it once and retries with backoff.

use super::folders::Folders;
use super::state::{self, Checkpoint};
use super::test_hook::AbortAfterCommits;
use super::{Caps, ImapError, Session, moves, uid_set};
use crate::config::{Config, ImapConfig};
use crate::outcome::Outcome;
use crate::pipeline::{self, Mode, Processed};
use crate::store::Backend;
use crate::store::Store;
use async_imap::types::{Fetch, Flag, UnsolicitedResponse};
use futures::{FutureExt, TryStreamExt};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// After a stop request in the middle of a batch, how long the rest of the batch's FETCH
/// answer may take to drain (so that what was committed can still be moved).
const DRAIN_ON_STOP: Duration = Duration::from_secs(2);

/// At most this many messages share one group commit (`pipeline::Group`).
const GROUP_MAX: usize = 50;

/// One message as the listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub uid: u32,
    pub size: u64,
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pass {
    /// Messages listed (processed, failed or left).
    pub listed: usize,
    /// A stop was requested; the caller should log out.
    pub stopped: bool,
    /// The session is in the middle of a command and cannot be used any more.
    pub abandoned: bool,
}

/// Everything a sync needs, for one session.
pub struct Syncer<'a> {
    pub store: &'a Store,
    pub cfg: &'a Config,
    pub imap: &'a ImapConfig,
    pub folders: &'a Folders,
    pub caps: Caps,
    pub wake: &'a Notify,
    pub shutdown: &'a CancellationToken,
    pub hook: &'a AbortAfterCommits,
    /// Processing latency goes to /metrics.
    pub status: &'a crate::status::Status,
    pub uidvalidity: u32,
    /// Every UID below this was listed in this session (or, at start, the checkpoint).
    pub next_uid: u32,
    /// Something was left behind (pipeline or move failure): a full scan must retry it.
    pub rescan: bool,
    /// A group of messages failed: passes give each message its own transaction until a full
    /// scan has.
    pub(super) solo: bool,
    /// This pass gives each message its own transaction (`solo` when the pass began).
    pub(super) solo_pass: bool,
}

#[derive(Debug, Clone, Copy)]
enum Part {
    Whole,
    Header { size: u64 },
}

impl Syncer<'_> {
    /// List from `from_uid` (1 for a full scan) and process what is there, batch by batch.
    pub async fn pass(&mut self, session: &mut Session, from_uid: u32) -> Result<Pass, ImapError> {
        // After a failed group, every pass is solo until a full scan (which retries what the
        // group left behind) has been one.
        self.solo_pass = self.solo;
        if from_uid <= 1 {
            self.solo = false;
        }
        let listing = list(session, from_uid).await?;
        let mut pass = Pass {
            listed: listing.len(),
            ..Pass::default()
        };
        if listing.is_empty() {
            return Ok(pass);
        }
        tracing::debug!(from_uid, listed = listing.len(), "sync pass");
        let batch_size = usize::try_from(self.imap.batch_size).unwrap_or(50).max(1);
        for batch in listing.chunks(batch_size) {
            if self.shutdown.is_cancelled() {
                pass.stopped = true;
                break;
            }
            let done = self.batch(session, batch).await?;
            if let Some(last) = done.last_handled {
                self.advance(last).await;
            }
            if done.abandoned {
                pass.abandoned = true;
                pass.stopped = true;
                break;
            }
            if done.stopped {
                pass.stopped = true;
                break;
            }
        }
        Ok(pass)
    }

    /// Move the checkpoint past `uid` and save it. A failed save is only logged: the next
    /// session's full scan does not depend on it.
    async fn advance(&mut self, uid: u32) {
        let next = uid.saturating_add(1);
        if next <= self.next_uid {
            return;
        }
        self.next_uid = next;
        let checkpoint = Checkpoint {
            uidvalidity: self.uidvalidity,
            next_uid: next,
        };
        if let Err(e) = state::save(
            self.store,
            &self.imap.username,
            &self.folders.watched,
            checkpoint,
        )
        .await
        {
            tracing::warn!("could not save the IMAP checkpoint (next UID {next}): {e}");
        }
    }

    async fn batch(
        &mut self,
        session: &mut Session,
        batch: &[Listed],
    ) -> Result<BatchDone, ImapError> {
        let limit = self.imap.max_message_bytes;
        let whole: Vec<u32> = batch
            .iter()
            .filter(|m| m.size <= limit)
            .map(|m| m.uid)
            .collect();
        let large: BTreeMap<u32, u64> = batch
            .iter()
            .filter(|m| m.size > limit)
            .map(|m| (m.uid, m.size))
            .collect();

        let mut done = BatchDone::default();
        let mut filed: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        if !whole.is_empty() {
            self.fetch_and_process(session, &whole, &BTreeMap::new(), &mut filed, &mut done)
                .await?;
        }
        if !large.is_empty() && !done.stopped {
            let uids: Vec<u32> = large.keys().copied().collect();
            self.fetch_and_process(session, &uids, &large, &mut filed, &mut done)
                .await?;
        }
        if done.abandoned {
            // Mid-answer: no further command can be sent on this connection. What was
            // committed and not moved is found again (as Duplicate) by the next full scan.
            return Ok(done);
        }
        for (folder, uids) in filed {
            match moves::move_uids(session, self.imap, self.caps, &uids, &folder).await {
                Ok(()) => tracing::debug!(folder, uids = %uid_set(&uids), "moved"),
                Err(e) if e.is_refusal() => {
                    tracing::error!(
                        folder,
                        uids = %uid_set(&uids),
                        "could not move processed messages: {e}; they stay in {} and are moved at the next full scan",
                        self.folders.watched
                    );
                    self.rescan = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Fetch `uids` (whole, or only the header for those in `large`) and process each message
    /// as it arrives; record where the committed ones go.
    async fn fetch_and_process(
        &mut self,
        session: &mut Session,
        uids: &[u32],
        large: &BTreeMap<u32, u64>,
        filed: &mut BTreeMap<String, Vec<u32>>,
        done: &mut BatchDone,
    ) -> Result<(), ImapError> {
        let set = uid_set(uids);
        let query = if large.is_empty() {
            "(UID BODY.PEEK[])"
        } else {
            "(UID BODY.PEEK[HEADER])"
        };
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let mut answered: HashSet<u32> = HashSet::new();
        let what = format!("UID FETCH {set} {query}");
        // Each read of the answer is bounded by the stream's read timeout; the answer as a
        // whole may rightly take long (a batch of large messages on a slow link).
        let mut stream =
            session
                .uid_fetch(&set, query)
                .await
                .map_err(|error| ImapError::Command {
                    what: what.clone(),
                    error,
                })?;
        // Group commit (SQLite, whole messages): see `pipeline::Group`. Committed before
        // every wait on the server, at most `GROUP_MAX` messages at a time.
        let grouping =
            large.is_empty() && self.store.backend() == Backend::Sqlite && !self.solo_pass;
        let mut group: Option<(pipeline::Group, Vec<Pending>)> = None;
        loop {
            let next = match stream.try_next().now_or_never() {
                Some(next) => next,
                None => {
                    // Nothing ready: commit what is in hand before waiting on the network.
                    self.commit_group(group.take(), filed).await?;
                    stream.try_next().await
                }
            };
            let fetch = match next {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(error) => {
                    self.commit_group(group.take(), filed).await?;
                    return Err(ImapError::Command { what, error });
                }
            };
            // Unsolicited FETCHes (flag changes by another client) come in the same answer.
            let Some(uid) = fetch.uid.filter(|u| wanted.contains(u)) else {
                continue;
            };
            if !answered.insert(uid) {
                continue;
            }
            if self.shutdown.is_cancelled() {
                self.commit_group(group.take(), filed).await?;
                done.stopped = true;
                // Let the rest of the answer arrive (bounded) so the connection stays usable
                // for moving what was already committed.
                let drained = tokio::time::timeout(DRAIN_ON_STOP, async {
                    while stream.try_next().await?.is_some() {}
                    Ok::<(), async_imap::error::Error>(())
                })
                .await;
                if !matches!(drained, Ok(Ok(()))) {
                    done.abandoned = true;
                }
                return Ok(());
            }
            let part = match large.get(&uid) {
                Some(&size) => Part::Header { size },
                None => Part::Whole,
            };
            done.last_handled = Some(done.last_handled.map_or(uid, |l: u32| l.max(uid)));
            if grouping && let Some(raw) = fetch.body() {
                self.process_grouped(uid, raw, &mut group, filed).await?;
                if group.as_ref().is_some_and(|(g, _)| g.len() >= GROUP_MAX) {
                    self.commit_group(group.take(), filed).await?;
                }
                continue;
            }
            // A database that cannot be reached ends the pass (and the session) here: every
            // later message would fail the same way, each with its own error line.
            if let Some(folder) = self.process(uid, &fetch, part).await? {
                filed.entry(folder).or_default().push(uid);
            } else {
                self.rescan = true;
            }
        }
        self.commit_group(group.take(), filed).await?;
        for uid in uids.iter().filter(|u| !answered.contains(u)) {
            // Expunged by another client between the listing and the fetch: nothing to do.
            tracing::debug!(uid, "listed but not fetched (gone meanwhile)");
            done.last_handled = Some(done.last_handled.map_or(*uid, |l: u32| l.max(*uid)));
        }
        Ok(())
    }

    /// Run one message through the pipeline. Returns the folder to file it in once its
    /// transaction has committed, or `None` when it must stay (and be retried); an error when
    /// the database is unavailable (the message stays too, and the session ends).
    async fn process(
        &self,
        uid: u32,
        fetch: &Fetch,
        part: Part,
    ) -> Result<Option<String>, ImapError> {
        let span = tracing::info_span!("message", uid, reference = tracing::field::Empty);
        async {
            let source = format!("imap:{}/{}/{}", self.imap.username, self.folders.watched, uid);
            let started = std::time::Instant::now();
            let result = match part {
                Part::Whole => {
                    let Some(raw) = fetch.body() else {
                        tracing::warn!("the server sent no body for this message; it stays and is retried later");
                        return Ok(None);
                    };
                    pipeline::process(self.store, self.cfg, raw, &source, Mode::Apply).await
                }
                Part::Header { size } => {
                    let Some(header) = fetch.header() else {
                        tracing::warn!("the server sent no header for this message; it stays and is retried later");
                        return Ok(None);
                    };
                    tracing::info!(size, limit = self.imap.max_message_bytes, "over max_message_bytes: only its header was fetched");
                    pipeline::process_oversized(self.store, self.cfg, header, size, self.imap.max_message_bytes, &source)
                        .await
                }
            };
            match result {
                Ok(p) => {
                    self.status.message_processed(started.elapsed());
                    Ok(Some(self.committed(&p)))
                }
                // Logged once by the watcher, with its retry delay.
                Err(e) if e.is_unavailable() => Err(ImapError::Store(e)),
                Err(e) => {
                    tracing::error!(
                        "could not process the message: {e}; it stays in {} and is retried at the next sync",
                        self.folders.watched
                    );
                    Ok(None)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One whole message into the open group (begun here if none is open). A message that
    /// fails stays in the folder for a later scan; a database that cannot be reached ends the
    /// pass, and the group's messages stay too (nothing of them was committed).
    async fn process_grouped(
        &mut self,
        uid: u32,
        raw: &[u8],
        group: &mut Option<(pipeline::Group, Vec<Pending>)>,
        filed: &mut BTreeMap<String, Vec<u32>>,
    ) -> Result<(), ImapError> {
        let started = std::time::Instant::now();
        let source = format!(
            "imap:{}/{}/{}",
            self.imap.username, self.folders.watched, uid
        );
        let span = tracing::info_span!("message", uid, reference = tracing::field::Empty);
        // DKIM may look keys up on the network: never with the group's write lock held.
        let prepared = {
            let mut prepare = std::pin::pin!(pipeline::prepare(self.cfg, raw));
            match futures::poll!(&mut prepare) {
                std::task::Poll::Ready(p) => p,
                std::task::Poll::Pending => {
                    self.commit_group(group.take(), filed).await?;
                    prepare.await
                }
            }
        };
        let (g, mut pending) = match group.take() {
            Some(open) => open,
            None => (
                pipeline::Group::begin(self.store)
                    .await
                    .map_err(ImapError::Store)?,
                Vec::new(),
            ),
        };
        match g
            .process(self.cfg, &prepared, &source)
            .instrument(span.clone())
            .await
        {
            Ok((g, p)) => {
                pending.push(Pending {
                    uid,
                    processed: p,
                    started,
                    span,
                });
                *group = Some((g, pending));
            }
            Err(e) if e.is_unavailable() => return Err(ImapError::Store(e)),
            Err(e) => {
                span.in_scope(|| {
                    tracing::error!(
                        others = pending.len(),
                        "could not process the message: {e}; it and the others of its group (rolled back with it) stay in {} and are retried at the next sync, one transaction each",
                        self.folders.watched
                    )
                });
                self.retry_one_by_one();
            }
        }
        Ok(())
    }

    /// A group was lost: a full scan retries its messages, each in its own transaction, so a
    /// message that breaks a group cannot hold the others back for ever.
    fn retry_one_by_one(&mut self) {
        self.rescan = true;
        self.solo = true;
    }

    /// Commit an open group, then do for each of its messages what follows a commit. A
    /// commit that fails leaves all of them in the folder for a later scan.
    async fn commit_group(
        &mut self,
        group: Option<(pipeline::Group, Vec<Pending>)>,
        filed: &mut BTreeMap<String, Vec<u32>>,
    ) -> Result<(), ImapError> {
        let Some((g, pending)) = group else {
            return Ok(());
        };
        match g.commit().await {
            Ok(()) => tracing::debug!(messages = pending.len(), "group committed"),
            Err(e) if e.is_unavailable() => return Err(ImapError::Store(e)),
            Err(e) => {
                tracing::error!(
                    messages = pending.len(),
                    "could not commit a group of messages: {e}; they stay in {} and are retried at the next sync",
                    self.folders.watched
                );
                self.retry_one_by_one();
                return Ok(());
            }
        }
        for p in pending {
            let _entered = p.span.enter();
            self.status.message_processed(p.started.elapsed());
            let folder = self.committed(&p.processed);
            filed.entry(folder).or_default().push(p.uid);
        }
        Ok(())
    }

    /// After the commit: log, fire the test hook, wake the outbox, choose the folder.
    fn committed(&self, p: &Processed) -> String {
        if let Some(reference) = &p.reference {
            tracing::Span::current().record("reference", reference.as_str());
        }
        // A duplicate goes where its first copy went (a crash between commit and move
        // brings it back here).
        let outcome = match p.outcome {
            Outcome::Duplicate => p.previous_outcome.unwrap_or(Outcome::Duplicate),
            o => o,
        };
        let folder = self.folders.for_outcome(outcome).to_owned();
        tracing::info!(
            outcome = %p.outcome,
            reason = p.reason.as_deref().unwrap_or(""),
            folder,
            "processed"
        );
        if p.outcome != Outcome::Duplicate {
            self.hook.after_commit();
            self.wake.notify_one();
        }
        folder
    }
}

/// A message processed in an open group, waiting for the group's commit.
struct Pending {
    uid: u32,
    processed: Processed,
    started: std::time::Instant,
    span: tracing::Span,
}

#[derive(Debug, Default)]
struct BatchDone {
    /// The highest UID dealt with (processed, failed, or gone).
    last_handled: Option<u32>,
    stopped: bool,
    abandoned: bool,
}

/// `UID FETCH from:* (UID RFC822.SIZE FLAGS)`, in UID order, without messages flagged
/// `\Deleted` (about to be expunged by whoever flagged them, or our own copy-fallback leftovers).
///
/// `from:*` always includes the highest message even when its UID is below `from`
/// (RFC 3501 §6.4.8, a known trap): such answers are dropped here. Only UIDs and sizes are
/// kept, so memory stays small however many messages wait.
pub async fn list(session: &mut Session, from_uid: u32) -> Result<Vec<Listed>, ImapError> {
    let from = from_uid.max(1);
    let what = format!("UID FETCH {from}:* (UID RFC822.SIZE FLAGS)");
    let mut stream = session
        .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE FLAGS)")
        .await
        .map_err(|error| ImapError::Command {
            what: what.clone(),
            error,
        })?;
    let mut found: BTreeMap<u32, Listed> = BTreeMap::new();
    loop {
        let fetch = match stream.try_next().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(error) => return Err(ImapError::Command { what, error }),
        };
        // Answers without a size are unsolicited flag updates, not ours.
        let (Some(uid), Some(size)) = (fetch.uid, fetch.size) else {
            continue;
        };
        if uid < from || fetch.flags().any(|f| matches!(f, Flag::Deleted)) {
            continue;
        }
        found.insert(
            uid,
            Listed {
                uid,
                size: u64::from(size),
            },
        );
    }
    Ok(found.into_values().collect())
}

/// Empty the unsolicited-response channel and say whether new mail was announced.
///
/// async-imap queues untagged EXISTS/EXPUNGE/… in a bounded channel that silently drops when
/// full (field notes), so a lost EXISTS is possible after a large batch of moves: callers
/// therefore also list once more before going idle, and treat this only as a hint.
pub fn drain_news(session: &mut Session) -> bool {
    let mut news = false;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        if matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        ) {
            news = true;
        }
    }
    news
}
