//! The `[confirmation]` section (which risky changes wait for the requester's one-time code,
//! how long a code lives, how many wrong tries it takes): the checked data, the file's raw
//! form, the defaults and the check. Beside `confirm.rs`, which takes the codes back, rather
//! than in it: that file reads the whole `Config`, and `policy` and `desk::code` read this
//! section too, so a leaf of its own keeps every import of it pointing down (issue 14).
//! Imports only the request kinds and the low key error and value readers.

use crate::config_value::{ConfigError, duration_key, key_err};
use crate::request::RequestKind;
use serde::Deserialize;
use std::time::Duration;

/// Which risky changes are held until the requester confirms with a one-time code.
#[derive(Debug, Clone)]
pub struct ConfirmationConfig {
    pub enabled: bool,
    /// Request kinds whose risky cases need a code (default: all of them).
    pub kinds: Vec<RequestKind>,
    /// How long a code stays valid.
    pub ttl: Duration,
    /// Wrong codes tolerated before the confirmation is void.
    pub max_attempts: u32,
}

impl ConfirmationConfig {
    pub fn applies_to(&self, kind: RequestKind) -> bool {
        self.enabled && self.kinds.contains(&kind)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfirmation {
    enabled: Option<bool>,
    kinds: Option<Vec<String>>,
    ttl: Option<String>,
    max_attempts: Option<u32>,
}

pub(crate) fn check_confirmation(r: RawConfirmation) -> Result<ConfirmationConfig, ConfigError> {
    let kinds = match r.kinds {
        None => RequestKind::ALL.to_vec(),
        Some(list) => list
            .iter()
            .map(|k| match k.parse::<RequestKind>() {
                Ok(RequestKind::Unknown) | Err(_) => Err(key_err(
                    "confirmation.kinds",
                    format!("`{k}` is not a request kind"),
                )),
                Ok(kind) => Ok(kind),
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(ConfirmationConfig {
        enabled: r.enabled.unwrap_or(true),
        kinds,
        ttl: duration_key(
            "confirmation.ttl",
            r.ttl,
            Duration::from_secs(3 * 24 * 3600),
        )?,
        max_attempts: r.max_attempts.unwrap_or(5).max(1),
    })
}
