//! Filing a message that did not come from the watched folder (LMTP delivery, `src/lmtp/`):
//! `APPEND` it to its outcome folder of the helpdesk's inbox, so that people find it where
//! the watcher would have moved it.
//!
//! One worker keeps one session per inbox open between messages (a login per message would
//! cost more than the message), closes it after a quiet minute, and reconnects when it breaks.
//! Filing comes after the message's transaction has committed, off the delivery's path: a
//! failure is logged and never undoes or delays the delivery (the message is in the database
//! and on the staff page either way).

use super::connect::{self, Tls};
use super::folders::{self, Folders};
use super::{ImapError, Session, bounded};
use crate::config::{Config, ImapConfig};
use crate::oauth::TokenSource;
use crate::outcome::Outcome;
use crate::status::Status;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages waiting to be filed; beyond this (the IMAP server down for a long time while
/// mail keeps coming) a message is not filed, with a line in the log, rather than kept in
/// memory without bound.
const QUEUE: usize = 256;
/// A session unused this long is logged out.
const QUIET: Duration = Duration::from_secs(60);

/// One message to file.
#[derive(Debug)]
pub struct Job {
    /// Index into `Config::imap`.
    pub inbox: usize,
    pub outcome: Outcome,
    pub raw: Vec<u8>,
    /// For the log: the message's reference or source.
    pub label: String,
}

/// The handle deliveries queue filing on.
#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<Job>,
}

impl Appender {
    /// Start the worker. `None` when there is no `[imap]` to file into.
    pub fn start(
        cfg: Arc<Config>,
        status: &Status,
        shutdown: CancellationToken,
    ) -> Result<Option<(Appender, tokio::task::JoinHandle<()>)>, ImapError> {
        if cfg.imap.is_empty() {
            return Ok(None);
        }
        // Its own token sources (XOAUTH2): the watchers' are theirs, and a token fetched twice
        // costs one request to the provider now and then.
        let inboxes = cfg
            .imap
            .iter()
            .map(|imap| {
                Ok(Inbox {
                    tls: Tls::from_config(imap)?,
                    tokens: imap.auth.tokens(Some(status)),
                    imap: imap.clone(),
                })
            })
            .collect::<Result<Vec<_>, ImapError>>()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(work(inboxes, rx, shutdown));
        Ok(Some((Appender { tx }, task)))
    }

    /// Queue a message for filing; never waits.
    pub fn file(&self, job: Job) {
        if let Err(e) = self.tx.try_send(job) {
            let (why, job) = match e {
                mpsc::error::TrySendError::Full(j) => ("too many messages wait to be filed", j),
                mpsc::error::TrySendError::Closed(j) => ("postroom is stopping", j),
            };
            tracing::error!(
                message = %job.label,
                "not filed in the IMAP folder ({why}); the message is processed and on the staff page"
            );
        }
    }

    /// The inbox a message to `recipient` is filed in: the one whose username is that
    /// address, else the first.
    pub fn inbox_for(cfg: &Config, recipient: &str) -> usize {
        cfg.imap
            .iter()
            .position(|i| i.username.eq_ignore_ascii_case(recipient))
            .unwrap_or(0)
    }
}

/// What the worker needs of one inbox to open a session on it.
struct Inbox {
    imap: ImapConfig,
    tls: Tls,
    tokens: Option<TokenSource>,
}

async fn work(inboxes: Vec<Inbox>, mut rx: mpsc::Receiver<Job>, shutdown: CancellationToken) {
    let mut sessions: HashMap<usize, (Session, Folders)> = HashMap::new();
    loop {
        let job = tokio::select! {
            j = rx.recv() => j,
            _ = tokio::time::sleep(QUIET), if !sessions.is_empty() => {
                close_all(&inboxes, &mut sessions).await;
                continue;
            }
            _ = shutdown.cancelled() => {
                // What is already queued is filed (within the daemon's grace), nothing more.
                rx.close();
                rx.recv().await
            }
        };
        let Some(job) = job else { break };
        let Some(inbox) = inboxes.get(job.inbox) else {
            continue;
        };
        file_one(inbox, &mut sessions, &job).await;
    }
    close_all(&inboxes, &mut sessions).await;
}

/// File one message: on the open session, or (when there is none, or it fails) on a new one.
async fn file_one(inbox: &Inbox, sessions: &mut HashMap<usize, (Session, Folders)>, job: &Job) {
    let mut last = None;
    for _attempt in 0..2 {
        let (mut session, folders) = match sessions.remove(&job.inbox) {
            Some(open) => open,
            None => match open(inbox).await {
                Ok(open) => open,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            },
        };
        let folder = folders.for_outcome(job.outcome).to_owned();
        match append(&mut session, &inbox.imap, &folder, &job.raw).await {
            Ok(()) => {
                tracing::debug!(message = %job.label, folder, "filed");
                sessions.insert(job.inbox, (session, folders));
                return;
            }
            // The session may be dead (the server restarted, or logged us out): a new one.
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        tracing::error!(
            message = %job.label,
            inbox = %inbox.imap.inbox_id(),
            "could not file the message in its IMAP folder: {e}; it is processed and on the staff page"
        );
    }
}

async fn open(inbox: &Inbox) -> Result<(Session, Folders), ImapError> {
    let mut session = connect::connect(&inbox.imap, &inbox.tls, inbox.tokens.as_ref()).await?;
    let folders = Folders::discover(&mut session, &inbox.imap).await?;
    Ok((session, folders))
}

/// `APPEND` `raw` to `folder`; a folder that does not exist is created first (the server
/// says `[TRYCREATE]`, RFC 3501 §6.3.11), then the APPEND is tried once more.
pub async fn append(
    session: &mut Session,
    imap: &ImapConfig,
    folder: &str,
    raw: &[u8],
) -> Result<(), ImapError> {
    let what = format!("APPEND {folder}");
    match bounded(
        what.clone(),
        imap.timeout,
        session.append(folder, None, None, raw),
    )
    .await
    {
        Err(e) if e.is_refusal() => {
            folders::create(session, imap, folder).await?;
            bounded(what, imap.timeout, session.append(folder, None, None, raw)).await
        }
        other => other,
    }
}

async fn close_all(inboxes: &[Inbox], sessions: &mut HashMap<usize, (Session, Folders)>) {
    for (index, (session, _)) in sessions.drain() {
        if let Some(inbox) = inboxes.get(index) {
            connect::logout(session, &inbox.imap).await;
        }
    }
}
