//! TEST HOOKS, read from the environment, for the integration tests only (both log a warning
//! when set; never set them in production).
//!
//! - `POSTROOM_TEST_ABORT_AFTER_COMMITS=N`: the watcher calls `std::process::abort()` right
//!   after the Nth message's transaction has committed and before the message is moved: the
//!   "power cut between commit and move" of `tests/daemon_flow.rs`
//!   (`crash_between_commit_and_move_…`). The LMTP listener shares the count and aborts
//!   after the commit and before its `250` (`tests/daemon_lmtp.rs`).
//! - `POSTROOM_TEST_IMAP_IGNORE_CAPS=MOVE,UIDPLUS,IDLE`: see [`ignore_caps`].
//!
//! Not `[section] key`s of the config on purpose: nobody should find them while configuring.

use std::sync::atomic::{AtomicU64, Ordering};

pub const ENV: &str = "POSTROOM_TEST_ABORT_AFTER_COMMITS";

#[derive(Debug, Default)]
pub struct AbortAfterCommits {
    limit: Option<u64>,
    commits: AtomicU64,
}

impl AbortAfterCommits {
    pub fn from_env() -> AbortAfterCommits {
        let limit = std::env::var(ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n > 0);
        if let Some(n) = limit {
            tracing::warn!(
                "{ENV}={n}: TEST HOOK active, the process aborts after commit number {n}"
            );
        }
        AbortAfterCommits {
            limit,
            commits: AtomicU64::new(0),
        }
    }

    /// Call after each committed (non-duplicate) message, before its move (or its LMTP `250`).
    pub fn after_commit(&self) {
        let Some(limit) = self.limit else { return };
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= limit {
            eprintln!("postroom: {ENV}: aborting after commit {n}, before the move (test hook)");
            std::process::abort();
        }
    }
}

/// TEST HOOK: `POSTROOM_TEST_IMAP_IGNORE_CAPS=MOVE,UIDPLUS,IDLE` makes the watcher act as if
/// the server lacked those capabilities, so the fallbacks (COPY + UID EXPUNGE, copy-and-flag,
/// polling) can be tested against a Dovecot that has them all. Unset in production.
pub const IGNORE_CAPS_ENV: &str = "POSTROOM_TEST_IMAP_IGNORE_CAPS";

pub fn ignore_caps(mut caps: super::Caps) -> super::Caps {
    let Ok(list) = std::env::var(IGNORE_CAPS_ENV) else {
        return caps;
    };
    for name in list.split(',').map(str::trim) {
        match name.to_ascii_uppercase().as_str() {
            "MOVE" => caps.r#move = false,
            "UIDPLUS" => caps.uidplus = false,
            "IDLE" => caps.idle = false,
            _ => continue,
        }
        tracing::warn!(
            "{IGNORE_CAPS_ENV}: TEST HOOK active, acting as if the server lacked {name}"
        );
    }
    caps
}
