//! The `[continuity]` section (mailboxes at risk, `continuity.rs`): the checked data, the
//! file's raw form, the defaults and the check. Beside `continuity.rs` rather than in it,
//! because that file reads the whole `Config` and `config` composes this section: kept apart,
//! the two import each other in no circle (issue 14). Imports only the low key error and
//! value readers.

use crate::config_value::{ConfigError, duration_key, key_err};
use serde::Deserialize;
use std::time::Duration;

/// When a shared mailbox is at risk of being lost, and how often its site is reminded
/// (`[continuity]`, src/continuity.rs).
#[derive(Debug, Clone)]
pub struct ContinuityConfig {
    /// Whether `postroom run` emails at-risk mailboxes (the list is kept either way).
    pub reminders: bool,
    /// At most one reminder per mailbox this often, until it is fixed.
    pub remind_every: Duration,
    /// Fewer active members than this is a risk (0: never).
    pub min_members: u32,
    /// No request from the mailbox for this many days is a risk (0: never).
    pub inactive_days: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContinuity {
    reminders: Option<bool>,
    remind_every: Option<String>,
    min_members: Option<u32>,
    inactive_days: Option<u32>,
}

pub(crate) fn check_continuity(raw: RawContinuity) -> Result<ContinuityConfig, ConfigError> {
    let remind_every = duration_key(
        "continuity.remind_every",
        raw.remind_every,
        Duration::from_secs(7 * 86400),
    )?;
    if remind_every < Duration::from_secs(3600) {
        return Err(key_err(
            "continuity.remind_every",
            "must be at least 1h: each reminder is an email to a site",
        ));
    }
    Ok(ContinuityConfig {
        reminders: raw.reminders.unwrap_or(true),
        remind_every,
        min_members: raw.min_members.unwrap_or(2),
        inactive_days: raw.inactive_days.unwrap_or(0),
    })
}
