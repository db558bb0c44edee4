//! The watchers: one per configured inbox (`[imap]`, or each `[[imap]]` entry), each running
//! one IMAP session after another for as long as postroom runs — while this instance holds
//! the inbox's lease ([`super::lease`]: with several instances on one database, each inbox is
//! worked by one of them at a time; the others stand by).
//!
//! A session: connect and log in → capabilities → outcome folders → SELECT → compare
//! UIDVALIDITY with the checkpoint → full scan of the folder (so that messages left by a crash,
//! a failed move or a database error are found) → then, until stopped: catch up from the next
//! UID, wait (IDLE or poll), repeat.
//!
//! Any network or protocol error ends the session; the loop logs one line and reconnects after
//! a capped, jittered exponential delay. It never exits on its own and never spins. A database
//! that cannot be reached ends the session the same way (the message in hand stays in the
//! inbox, its transaction never committed), so an outage costs one line per attempt, not one
//! per waiting message.

use super::backoff::Backoff;
use super::connect::{self, Tls};
use super::folders::Folders;
use super::idle::{self, Wake};
use super::lease;
use super::state::{self, Checkpoint};
use super::sync::{self, Syncer};
use super::test_hook::AbortAfterCommits;
use super::{Caps, ImapError, bounded};
use crate::config::{Config, ImapConfig};
use crate::status::Status;
use crate::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A session that lasted this long counts as healthy: the next failure starts the backoff
/// from one second again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Run one watcher per inbox until `shutdown` is cancelled. Fails only at start, on a config
/// it cannot use (no `[imap]` section, an unreadable `ca_file`); after that, every failure is
/// retried.
pub async fn run(
    store: Store,
    cfg: Arc<Config>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    status: Status,
    // One count for the whole process (the LMTP listener shares it): the test hook means
    // "the Nth commit of this process".
    hook: Arc<AbortAfterCommits>,
) -> Result<(), ImapError> {
    if cfg.imap.is_empty() {
        return Err(ImapError::Config("no [imap] section in the config".into()));
    }
    let mut watchers = Vec::new();
    for imap in &cfg.imap {
        watchers.push(Watcher {
            tls: Tls::from_config(imap)?,
            tokens: imap.auth.tokens(Some(&status)),
            imap: imap.clone(),
            store: store.clone(),
            cfg: cfg.clone(),
            wake: wake.clone(),
            shutdown: shutdown.clone(),
            hook: hook.clone(),
            status: status.clone(),
        });
    }
    let tasks: Vec<_> = watchers
        .into_iter()
        .map(|w| {
            // Every line a watcher logs names its inbox.
            let span = tracing::info_span!("inbox", inbox = %w.imap.inbox_id());
            tokio::spawn(w.run_leased().instrument(span))
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await {
            return Err(ImapError::Protocol(format!(
                "an inbox watcher crashed: {e}"
            )));
        }
    }
    Ok(())
}

struct Watcher {
    store: Store,
    cfg: Arc<Config>,
    imap: ImapConfig,
    tls: Tls,
    /// XOAUTH2: the token cache this inbox's sessions share (`None` with a password).
    tokens: Option<crate::oauth::TokenSource>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    hook: Arc<AbortAfterCommits>,
    /// What /healthz and /metrics show: connected or not, and why.
    status: Status,
}

impl Watcher {
    /// Take the inbox's lease (waiting while another instance holds it), work the inbox while
    /// it is held, and wait for it again when it is lost; until shutdown.
    async fn run_leased(self) {
        let holder = lease::holder_id();
        loop {
            let Some(held) = lease::acquire(
                &self.store,
                &self.imap,
                holder,
                self.cfg.lease,
                &self.shutdown,
            )
            .await
            else {
                return;
            };
            // Cancelled on shutdown (a child of it) and by the keeper when the lease is lost.
            let work = self.shutdown.child_token();
            let keeper = tokio::spawn(
                lease::keep(
                    self.store.clone(),
                    held.clone(),
                    self.cfg.lease,
                    work.clone(),
                )
                .in_current_span(),
            );
            self.run(&work).await;
            work.cancel();
            let _ = keeper.await;
            if self.shutdown.is_cancelled() {
                lease::release(&self.store, &held).await;
                return;
            }
            // The lease was lost: stand by like any other instance.
        }
    }

    /// Sessions one after another until `stop` is cancelled.
    async fn run(&self, stop: &CancellationToken) {
        let mut backoff = Backoff::new(self.imap.reconnect_max);
        loop {
            if stop.is_cancelled() {
                return;
            }
            let started = Instant::now();
            self.status.imap_connecting();
            // `session` watches the token itself: it finishes the message in hand, then logs out.
            let result = self.session(stop).await;
            match result {
                Ok(()) => return,
                Err(e) => {
                    if stop.is_cancelled() {
                        return;
                    }
                    if started.elapsed() >= HEALTHY_AFTER {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    let what = match &e {
                        ImapError::Store(_) => "database",
                        _ => "IMAP",
                    };
                    self.status.imap_failed(format!("{what}: {e}"));
                    tracing::warn!(
                        host = %self.imap.host,
                        user = %self.imap.username,
                        attempt = backoff.failures(),
                        "{what}: {e}; reconnecting in {:.1}s",
                        delay.as_secs_f64()
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    /// One session, until stopped (`Ok`) or broken (`Err`).
    async fn session(&self, stop: &CancellationToken) -> Result<(), ImapError> {
        let imap = &self.imap;
        let mut session = tokio::select! {
            s = connect::connect(imap, &self.tls, self.tokens.as_ref()) => s?,
            _ = stop.cancelled() => return Ok(()),
        };
        self.status.imap_connected();
        let caps = super::test_hook::ignore_caps(Caps::query(&mut session, imap.timeout).await?);
        if !caps.r#move && !caps.uidplus {
            tracing::warn!(
                "the server offers neither MOVE nor UIDPLUS: processed messages are copied to their folder and \
                 flagged \\Deleted in {}, and never expunged by postroom",
                imap.folder
            );
        }
        let use_idle = imap.idle && caps.idle;
        if imap.idle && !caps.idle {
            tracing::warn!(
                "the server does not offer IDLE: polling every {:?}",
                imap.poll_interval
            );
        }

        let folders = Folders::discover(&mut session, imap).await?;
        folders.ensure(&mut session, imap).await?;
        let mailbox = bounded(
            format!("SELECT {}", folders.watched),
            imap.timeout,
            session.select(&folders.watched),
        )
        .await?;
        let uidvalidity = mailbox.uid_validity.unwrap_or(0);
        let saved = state::load(&self.store, &imap.username, &folders.watched).await?;
        match saved {
            Some(c) if c.uidvalidity == uidvalidity => {}
            Some(c) => tracing::warn!(
                folder = %folders.watched,
                "UIDVALIDITY changed ({} → {uidvalidity}): the folder was recreated or restored; rescanning it \
                 (messages seen before are recognised and not applied again)",
                c.uidvalidity
            ),
            None => tracing::info!(folder = %folders.watched, "first run on this folder"),
        }
        tracing::info!(
            host = %imap.host,
            user = %imap.username,
            folder = %folders.watched,
            tls = ?imap.tls,
            messages = mailbox.exists,
            uidvalidity,
            checkpoint_next_uid = saved.filter(|c| c.uidvalidity == uidvalidity).map(|c| c.next_uid),
            idle = use_idle,
            r#move = caps.r#move,
            uidplus = caps.uidplus,
            "IMAP session ready"
        );

        let mut syncer = Syncer {
            status: &self.status,
            store: &self.store,
            cfg: &self.cfg,
            imap,
            folders: &folders,
            caps,
            wake: &self.wake,
            shutdown: stop,
            hook: &self.hook,
            uidvalidity,
            // New mail always gets a UID at or above the checkpoint, so incremental passes may
            // start there; the full scan below still starts at 1.
            next_uid: saved
                .filter(|c| c.uidvalidity == uidvalidity)
                .map_or(1, |c| c.next_uid.max(1)),
            rescan: false,
            solo: false,
            solo_pass: false,
        };
        if saved.is_none_or(|c| c.uidvalidity != uidvalidity) {
            let start = Checkpoint {
                uidvalidity,
                next_uid: 1,
            };
            if let Err(e) = state::save(&self.store, &imap.username, &folders.watched, start).await
            {
                tracing::warn!("could not save the IMAP checkpoint: {e}");
            }
        }

        // Full scan at session start, whatever the checkpoint says: messages left by a crash
        // between commit and move, a failed move or a database error sit below it.
        let mut from = 1;
        loop {
            let pass = syncer.pass(&mut session, from).await?;
            if pass.abandoned {
                return Ok(());
            }
            if pass.stopped {
                connect::logout(session, imap).await;
                return Ok(());
            }
            let news = sync::drain_news(&mut session);
            if pass.listed > 0 || news {
                // Catch up until a pass finds nothing: the pass after a batch of moves cannot
                // trust the (possibly overflowed) unsolicited channel.
                from = syncer.next_uid;
                continue;
            }

            let wait = if syncer.rescan {
                imap.poll_interval.min(imap.idle_timeout)
            } else if use_idle {
                imap.idle_timeout
            } else {
                imap.poll_interval
            };
            let wake = if use_idle {
                let (s, wake) = idle::idle(session, imap, wait, stop).await?;
                session = s;
                wake
            } else {
                idle::poll(wait, stop).await
            };
            match wake {
                Wake::Shutdown => {
                    connect::logout(session, imap).await;
                    return Ok(());
                }
                Wake::News | Wake::Timeout => {
                    if syncer.rescan {
                        syncer.rescan = false;
                        from = 1;
                    } else {
                        from = syncer.next_uid;
                    }
                }
            }
        }
    }
}
