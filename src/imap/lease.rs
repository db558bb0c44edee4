//! One instance per inbox: before a watcher touches its inbox it takes the inbox's lease (a
//! row in `inbox_leases`, see `store::lease`), and keeps renewing it while it works.
//!
//! - **Waiting**: an instance whose inbox is held by another tries again every quarter of
//!   `[database] lease_ttl`, logging who holds it once (not at every try).
//! - **Renewing**: the holder renews every quarter of the TTL. A failed renewal (database
//!   unreachable) is logged and tried again; a renewal that finds the lease in someone else's
//!   hands means it ran out and was taken: stop at once.
//! - **Giving up in time**: a holder that has not renewed for three quarters of the TTL stops
//!   working the inbox (the watcher finishes the message in hand and leaves), a quarter of
//!   the TTL *before* anyone else may take the lease. The deadline is counted on this host's
//!   monotonic clock from the moment the last successful renewal was *sent*, which the
//!   database can only have stamped later, so clock differences between hosts do not matter.
//! - **Taking over**: a holder that died (SIGKILL, power, network) stops renewing; the lease
//!   runs out after at most the TTL, and a waiting instance takes it at its next try: within
//!   TTL + TTL/4 (25 s with the default 20 s).
//! - **Leaving**: on shutdown the holder deletes its lease, so another takes over at once.
//!
//! The lease only decides who *works* an inbox; it is not what keeps a message from being
//! applied twice. That is the pipeline's dedupe (unique Message-ID and SHA-256 of the bytes,
//! in the same transaction as the change), which holds even if two instances ever fetched
//! the same message.

use crate::imap::config::{ImapConfig, LeaseConfig};
use crate::store::{Store, lease};
use rand::Rng;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Who this process is in `inbox_leases.holder`: host name, process id and a random suffix
/// (a restarted process may get the pid of a dead one, in a container even the same host name).
pub fn holder_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let suffix: u32 = rand::thread_rng().r#gen();
        format!("{host}:{}:{suffix:08x}", std::process::id())
    })
}

/// A lease this instance holds.
#[derive(Debug, Clone)]
pub struct Held {
    pub inbox: String,
    pub holder: String,
    /// When the last successful take or renewal was sent.
    pub renewed_sent_at: Instant,
}

/// Wait until this instance holds the lease on `imap`'s inbox. `None`: shut down first.
pub async fn acquire(
    store: &Store,
    imap: &ImapConfig,
    holder: &str,
    cfg: LeaseConfig,
    shutdown: &CancellationToken,
) -> Option<Held> {
    let inbox = imap.inbox_id();
    let mut told_who = false;
    let mut failures: u32 = 0;
    loop {
        if shutdown.is_cancelled() {
            return None;
        }
        let sent = Instant::now();
        let wait = match lease::try_acquire(store, &inbox, holder, cfg.ttl).await {
            Ok(true) => {
                tracing::info!(inbox, holder, ttl = ?cfg.ttl, "took the inbox's lease: this instance works it");
                return Some(Held {
                    inbox,
                    holder: holder.to_owned(),
                    renewed_sent_at: sent,
                });
            }
            Ok(false) => {
                failures = 0;
                if !told_who {
                    told_who = true;
                    let who = lease::find(store, &inbox)
                        .await
                        .ok()
                        .flatten()
                        .map_or_else(|| "another instance".to_owned(), |l| l.holder);
                    tracing::info!(
                        inbox,
                        holder = who,
                        "the inbox is worked by another instance; standing by to take over \
                         (within {:?} if it stops)",
                        cfg.ttl + cfg.renew_every()
                    );
                }
                cfg.renew_every()
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = database_backoff(failures, cfg);
                tracing::warn!(
                    inbox,
                    attempt = failures,
                    "cannot take the inbox's lease: {e}; trying again in {:.1}s",
                    wait.as_secs_f64()
                );
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return None,
        }
    }
}

/// Keep renewing `held` until `work` is cancelled (shutdown, or the watcher is done); cancel
/// `work` itself when the lease is lost or could not be renewed in time. Returns whether the
/// lease was lost (as opposed to the work ending for another reason).
pub async fn keep(store: Store, held: Held, cfg: LeaseConfig, work: CancellationToken) -> bool {
    let inbox = held.inbox.as_str();
    let mut deadline = held.renewed_sent_at + cfg.give_up_after();
    let mut next = held.renewed_sent_at + cfg.renew_every();
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next.min(deadline)) => {}
            _ = work.cancelled() => return false,
        }
        if Instant::now() >= deadline {
            tracing::error!(
                inbox,
                "could not renew the inbox's lease for {:?}: stopping work on it before another instance may \
                 take it over",
                cfg.give_up_after()
            );
            work.cancel();
            return true;
        }
        let sent = Instant::now();
        let renewed = tokio::select! {
            r = tokio::time::timeout_at(deadline, lease::renew(&store, inbox, &held.holder, cfg.ttl)) => r,
            _ = work.cancelled() => return false,
        };
        match renewed {
            Ok(Ok(true)) => {
                if failures > 0 {
                    tracing::info!(inbox, "renewed the inbox's lease again");
                }
                failures = 0;
                deadline = sent + cfg.give_up_after();
                next = sent + cfg.renew_every();
            }
            Ok(Ok(false)) => {
                tracing::error!(
                    inbox,
                    "the inbox's lease ran out and another instance took it: stopping work on it"
                );
                work.cancel();
                return true;
            }
            Ok(Err(e)) => {
                failures = failures.saturating_add(1);
                tracing::warn!(
                    inbox,
                    attempt = failures,
                    "could not renew the inbox's lease: {e}; trying again (this instance stops working \
                     the inbox in {:.1}s unless a renewal succeeds)",
                    deadline
                        .saturating_duration_since(Instant::now())
                        .as_secs_f64()
                );
                next = Instant::now() + cfg.renew_every().min(Duration::from_secs(2));
            }
            // The deadline came while the renewal hung (a database that does not answer):
            // the check at the top of the loop gives up.
            Err(_) => next = deadline,
        }
    }
}

/// Hand the lease back on shutdown (bounded: a database that is down must not hold up the
/// exit; the lease then simply runs out).
pub async fn release(store: &Store, held: &Held) {
    match tokio::time::timeout(
        Duration::from_secs(2),
        lease::release(store, &held.inbox, &held.holder),
    )
    .await
    {
        Ok(Ok(())) => tracing::info!(inbox = held.inbox, "released the inbox's lease"),
        Ok(Err(e)) => tracing::warn!(
            inbox = held.inbox,
            "could not release the inbox's lease ({e}); it runs out by itself"
        ),
        Err(_) => tracing::warn!(
            inbox = held.inbox,
            "releasing the inbox's lease timed out; it runs out by itself"
        ),
    }
}

/// Retry delay after a database error while waiting for a lease: from one renewal interval,
/// doubling, capped at half a minute (how long an inbox may wait after the database is back).
fn database_backoff(failures: u32, cfg: LeaseConfig) -> Duration {
    cfg.renew_every()
        .saturating_mul(1u32 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseConfig;

    fn lease_cfg(ms: u64) -> LeaseConfig {
        LeaseConfig {
            ttl: Duration::from_millis(ms),
        }
    }

    #[test]
    fn holder_ids_name_the_host_and_process() {
        let id = holder_id();
        assert!(id.contains(&format!(":{}:", std::process::id())), "{id}");
        assert_eq!(id, holder_id(), "one per process");
    }

    #[test]
    fn database_backoff_grows_and_is_capped() {
        let cfg = lease_cfg(20_000);
        assert_eq!(database_backoff(1, cfg), Duration::from_secs(5));
        assert_eq!(database_backoff(2, cfg), Duration::from_secs(10));
        assert_eq!(database_backoff(30, cfg), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_holder_that_cannot_renew_stops_before_the_lease_runs_out() {
        let store = Store::open(&DatabaseConfig {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(1),
        })
        .await
        .unwrap();
        let cfg = lease_cfg(800);
        let held = Held {
            inbox: "hd@x/INBOX".into(),
            holder: "a".into(),
            renewed_sent_at: Instant::now(),
        };
        assert!(
            lease::try_acquire(&store, &held.inbox, "a", cfg.ttl)
                .await
                .unwrap()
        );
        // Renewals succeed: the work goes on.
        let work = CancellationToken::new();
        let keeper = tokio::spawn(keep(store.clone(), held.clone(), cfg, work.clone()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!work.is_cancelled());
        // The database goes away: the work is stopped after give_up_after (600 ms), which is
        // before the lease could run out (800 ms after the last renewal).
        store.close().await;
        let closed = Instant::now();
        assert!(keeper.await.unwrap(), "lost");
        assert!(work.is_cancelled());
        assert!(
            closed.elapsed() <= cfg.give_up_after(),
            "{:?}",
            closed.elapsed()
        );
    }
}
