//! The `[audit]` section (the chain's signed checkpoints): the checked data, the file's raw
//! form, the defaults and the check. The section is this room's; `config` reads the file and
//! composes it, and this module imports only the low key error and value readers, never
//! `config` (issue 14).

use crate::config_value::{ConfigError, duration_key, key_err};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The audit chain's signed checkpoints (`[audit]`, src/audit/).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The Ed25519 key that signs checkpoints (`postroom audit keygen FILE` writes one).
    /// Without it, `postroom audit checkpoint` refuses and the daemon makes none.
    pub signing_key_file: Option<PathBuf>,
    /// How often the daemon makes a checkpoint (when the chain has grown since the last).
    pub checkpoint_every: Duration,
    /// Where each checkpoint is emailed (through the outbox): an address outside postroom.
    pub checkpoint_to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    signing_key_file: Option<PathBuf>,
    checkpoint_every: Option<String>,
    checkpoint_to: Option<String>,
}

/// `helpdesk` is the helpdesk's address and `inboxes` the accounts of the watched inboxes:
/// addresses postroom reads, which checkpoints must not go to.
pub(crate) fn check_audit(
    raw: RawAudit,
    helpdesk: &str,
    inboxes: &[&str],
) -> Result<AuditConfig, ConfigError> {
    let checkpoint_every = duration_key(
        "audit.checkpoint_every",
        raw.checkpoint_every,
        Duration::from_secs(3600),
    )?;
    if checkpoint_every < Duration::from_secs(60) {
        return Err(key_err(
            "audit.checkpoint_every",
            "must be at least 1m: each checkpoint is an email",
        ));
    }
    let checkpoint_to = match raw.checkpoint_to {
        None => None,
        Some(to) => {
            let to = to.trim().to_ascii_lowercase();
            let valid = to
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                && !to.chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                return Err(key_err(
                    "audit.checkpoint_to",
                    format!("{to:?} is not an email address"),
                ));
            }
            // Kept outside postroom, and no mail loop: never the helpdesk or a watched inbox.
            if to == helpdesk || inboxes.iter().any(|i| i.eq_ignore_ascii_case(&to)) {
                return Err(key_err(
                    "audit.checkpoint_to",
                    format!(
                        "{to} is an address postroom reads: checkpoints must go to an address outside postroom"
                    ),
                ));
            }
            Some(to)
        }
    };
    if checkpoint_to.is_some() && raw.signing_key_file.is_none() {
        return Err(key_err(
            "audit.checkpoint_to",
            "needs `signing_key_file`: there is no checkpoint to send without a key",
        ));
    }
    Ok(AuditConfig {
        signing_key_file: raw.signing_key_file,
        checkpoint_every,
        checkpoint_to,
    })
}
