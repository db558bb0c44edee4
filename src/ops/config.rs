//! The `[retention]` section (how long data is kept, `ops::retention`): the checked data, the
//! file's raw form, the defaults and the check. The section is this room's; `config` reads the
//! file and composes it, and this module imports only the low key error and value readers,
//! never `config` (issue 14).

use crate::config_value::{ConfigError, duration_key};
use serde::Deserialize;
use std::time::Duration;

/// How long data is kept (`postroom retention`, and daily in `postroom run`).
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Raw message bytes are dropped after this long (the row and audit stay).
    pub raw_messages: Duration,
    /// Disabled accounts are deleted this long after they were disabled.
    pub disabled_accounts: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    raw_messages: Option<String>,
    disabled_accounts: Option<String>,
}

pub(crate) fn check_retention(raw: RawRetention) -> Result<RetentionConfig, ConfigError> {
    Ok(RetentionConfig {
        raw_messages: duration_key(
            "retention.raw_messages",
            raw.raw_messages,
            Duration::from_secs(400 * 86400),
        )?,
        disabled_accounts: duration_key(
            "retention.disabled_accounts",
            raw.disabled_accounts,
            Duration::from_secs(30 * 86400),
        )?,
    })
}
