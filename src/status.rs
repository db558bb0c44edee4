//! [`Status`]: what the daemon's loops report about themselves (IMAP connection, processing
//! latency, token failures), read by the staff page's `/healthz` and `/metrics`.
//!
//! A cheap handle (`Clone` is one `Arc` increment) that the daemon's loops update and the web
//! page reads. Counters are atomics; the IMAP state sits behind a `Mutex` because a state and
//! its error message must change together. Nothing here does I/O or waits, so it may be called
//! from inside any loop.
//!
//! ```no_run
//! # use postroom::status::Status;
//! # use std::time::{Duration, Instant};
//! let status = Status::new();          // one per process, cloned into each loop
//! status.imap_connecting();            // the watcher starts: /healthz now cares about IMAP
//! status.imap_connected();
//! let started = Instant::now();
//! // … process one message …
//! status.message_processed(started.elapsed());
//! status.imap_failed("connection reset by peer"); // the session dropped; reconnecting
//! status.token_failure();              // e.g. an XOAUTH2 token could not be refreshed
//! # let wake = std::sync::Arc::new(tokio::sync::Notify::new());
//! status.set_outbox_wake(wake);        // staff decisions wake the SMTP sender at once
//! ```

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// Upper bounds (seconds) of the processing-latency histogram: from a message that needed no
/// directory change to one that waited on a busy database.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How long IMAP may be down (reconnecting with backoff) before `/healthz` says unhealthy: a
/// server restart or a dropped IDLE should not page anyone.
pub const IMAP_GRACE: Duration = Duration::from_secs(120);

/// Where the IMAP watcher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapState {
    /// No watcher in this process (the web page runs on its own): IMAP is not its concern.
    NotWatched,
    /// Starting or reconnecting.
    Connecting,
    Connected,
    /// The last session failed; the watcher is waiting to reconnect.
    Disconnected,
}

impl ImapState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImapState::NotWatched => "not_watched",
            ImapState::Connecting => "connecting",
            ImapState::Connected => "connected",
            ImapState::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug, Clone)]
struct Imap {
    state: ImapState,
    /// When `state` last changed (Unix ms).
    since_ms: i64,
    /// When IMAP was last connected (Unix ms); 0: never.
    connected_at_ms: i64,
    last_error: Option<String>,
    last_error_at_ms: Option<i64>,
}

#[derive(Debug)]
struct Inner {
    started_at_ms: i64,
    imap: Mutex<Imap>,
    /// Unix ms; 0: none yet.
    last_processed_ms: AtomicI64,
    /// Per bucket of [`LATENCY_BUCKETS`], plus one for slower: not cumulative.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    token_failures: AtomicU64,
    /// Differences the last reconcile found between postroom and the directory target; -1:
    /// none run yet.
    directory_drift: AtomicI64,
    /// The outbox sender's wake-up, when the daemon shares it: a reply queued by a staff
    /// decision then goes out at once instead of at the sender's next idle check.
    outbox_wake: OnceLock<Arc<Notify>>,
}

/// The shared handle. Create one with [`Status::new`], give clones to the daemon's loops and
/// to [`crate::web::serve`].
#[derive(Debug, Clone)]
pub struct Status {
    inner: Arc<Inner>,
}

impl Default for Status {
    fn default() -> Self {
        Status::new()
    }
}

/// A consistent copy of everything, for one response.
#[derive(Debug, Clone)]
pub struct StatusSnapshot {
    pub started_at_ms: i64,
    pub imap_state: ImapState,
    pub imap_since_ms: i64,
    pub imap_connected_at_ms: Option<i64>,
    pub imap_last_error: Option<String>,
    pub imap_last_error_at_ms: Option<i64>,
    pub last_processed_ms: Option<i64>,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`] (Prometheus `le`), then `+Inf`.
    pub latency_cumulative: Vec<u64>,
    pub latency_sum_seconds: f64,
    pub latency_count: u64,
    pub token_failures: u64,
    /// Differences the last reconcile found (`None`: no reconcile has run).
    pub directory_drift: Option<i64>,
}

impl StatusSnapshot {
    /// False when IMAP is watched and has not been connected for longer than `grace`.
    pub fn imap_healthy(&self, now_ms: i64, grace: Duration) -> bool {
        match self.imap_state {
            ImapState::NotWatched | ImapState::Connected => true,
            ImapState::Connecting | ImapState::Disconnected => {
                let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
                now_ms.saturating_sub(self.imap_since_ms) <= grace_ms
            }
        }
    }
}

impl Status {
    pub fn new() -> Status {
        let now = crate::clock::now_ms();
        Status {
            inner: Arc::new(Inner {
                started_at_ms: now,
                imap: Mutex::new(Imap {
                    state: ImapState::NotWatched,
                    since_ms: now,
                    connected_at_ms: 0,
                    last_error: None,
                    last_error_at_ms: None,
                }),
                last_processed_ms: AtomicI64::new(0),
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                latency_sum_us: AtomicU64::new(0),
                latency_count: AtomicU64::new(0),
                token_failures: AtomicU64::new(0),
                directory_drift: AtomicI64::new(-1),
                outbox_wake: OnceLock::new(),
            }),
        }
    }

    fn set_imap(&self, state: ImapState, error: Option<String>) {
        let now = crate::clock::now_ms();
        // A poisoned lock only means another thread panicked mid-update of plain data.
        let mut imap = self
            .inner
            .imap
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // "Since" is when the watcher stopped being connected: a reconnect attempt after a
        // failure does not restart the grace period.
        let was_down = matches!(imap.state, ImapState::Connecting | ImapState::Disconnected);
        let now_down = matches!(state, ImapState::Connecting | ImapState::Disconnected);
        if !(was_down && now_down) {
            imap.since_ms = now;
        }
        imap.state = state;
        if state == ImapState::Connected {
            imap.connected_at_ms = now;
        }
        if let Some(e) = error {
            imap.last_error = Some(e);
            imap.last_error_at_ms = Some(now);
        }
    }

    /// The watcher is (re)connecting. From the first call on, `/healthz` reports IMAP.
    pub fn imap_connecting(&self) {
        self.set_imap(ImapState::Connecting, None);
    }

    /// The watcher is connected and has selected its folder.
    pub fn imap_connected(&self) {
        self.set_imap(ImapState::Connected, None);
    }

    /// The IMAP session failed with `error` (kept as the last error, shown on `/healthz`);
    /// the watcher will reconnect.
    pub fn imap_failed(&self, error: impl std::fmt::Display) {
        // The text comes from a server: clipped so that a hostile one cannot fill memory.
        let text: String = error.to_string().chars().take(500).collect();
        self.set_imap(ImapState::Disconnected, Some(text));
    }

    /// One message went through the pipeline (any outcome), taking `took` from fetch to
    /// commit.
    pub fn message_processed(&self, took: Duration) {
        let i = &self.inner;
        i.last_processed_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = i.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        i.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        i.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A credential token failed (an XOAUTH2 access token could not be obtained or was
    /// refused). Counted for `/metrics`.
    pub fn token_failure(&self) {
        self.inner.token_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Share the outbox sender's `Notify` (the one `jobs::reply::run_outbox` waits on). Set once;
    /// later calls are ignored.
    /// What the last reconcile found.
    pub fn directory_drift(&self, differences: usize) {
        self.inner.directory_drift.store(
            i64::try_from(differences).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn set_outbox_wake(&self, wake: Arc<Notify>) {
        let _ = self.inner.outbox_wake.set(wake);
    }

    /// A reply was queued or a failed one retried: let the sender look now (no-op without a
    /// daemon in this process).
    pub fn wake_outbox(&self) {
        if let Some(w) = self.inner.outbox_wake.get() {
            w.notify_one();
        }
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let i = &self.inner;
        let imap = i
            .imap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut running = 0u64;
        let latency_cumulative = i
            .buckets
            .iter()
            .map(|b| {
                running = running.saturating_add(b.load(Ordering::Relaxed));
                running
            })
            .collect();
        let last = i.last_processed_ms.load(Ordering::Relaxed);
        StatusSnapshot {
            started_at_ms: i.started_at_ms,
            imap_state: imap.state,
            imap_since_ms: imap.since_ms,
            imap_connected_at_ms: (imap.connected_at_ms > 0).then_some(imap.connected_at_ms),
            imap_last_error: imap.last_error,
            imap_last_error_at_ms: imap.last_error_at_ms,
            last_processed_ms: (last > 0).then_some(last),
            latency_cumulative,
            latency_sum_seconds: i.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            latency_count: i.latency_count.load(Ordering::Relaxed),
            token_failures: i.token_failures.load(Ordering::Relaxed),
            directory_drift: Some(i.directory_drift.load(Ordering::Relaxed)).filter(|n| *n >= 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_cumulative_buckets() {
        let s = Status::new();
        s.message_processed(Duration::from_millis(3));
        s.message_processed(Duration::from_millis(70));
        s.message_processed(Duration::from_secs(60));
        let snap = s.snapshot();
        assert_eq!(snap.latency_count, 3);
        assert_eq!(snap.latency_cumulative.first(), Some(&1)); // ≤ 5 ms
        assert_eq!(snap.latency_cumulative.get(4), Some(&2)); // ≤ 100 ms
        assert_eq!(snap.latency_cumulative.last(), Some(&3)); // +Inf
        assert!((snap.latency_sum_seconds - 60.073).abs() < 1e-6);
        assert!(snap.last_processed_ms.is_some());
    }

    #[test]
    fn imap_is_unhealthy_only_after_the_grace_period() {
        let s = Status::new();
        let now = crate::clock::now_ms();
        assert!(s.snapshot().imap_healthy(now + 10_000_000, IMAP_GRACE));
        s.imap_connecting();
        s.imap_failed("connection refused");
        s.imap_connecting();
        let snap = s.snapshot();
        assert_eq!(snap.imap_state, ImapState::Connecting);
        assert_eq!(snap.imap_last_error.as_deref(), Some("connection refused"));
        assert!(snap.imap_healthy(now, IMAP_GRACE));
        assert!(!snap.imap_healthy(now + 121_000, IMAP_GRACE));
        s.imap_connected();
        assert!(s.snapshot().imap_healthy(now + 121_000, IMAP_GRACE));
    }
}
