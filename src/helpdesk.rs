//! The `[helpdesk]` section: the desk's own address, the name its replies are signed with,
//! and the prefix of its references. Nearly every room reads it (replies, SMTP, checkpoints,
//! reminders, the staff page), and the lowest of them is `reply`, so it is a leaf of its own
//! rather than any one room's: it imports only the low key error and address check, and
//! `config` composes it (issue 14).

use crate::config_value::{ConfigError, key_err, looks_like_address};
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct HelpdeskConfig {
    /// The helpdesk's own address, lower-case: replies come from it, mail from it is ignored.
    pub address: String,
    /// Shown as the display name of replies.
    pub name: String,
    /// `HD` gives references `HD-000001`.
    pub reference_prefix: String,
}

impl HelpdeskConfig {
    /// The domain of the helpdesk address: our Message-IDs live there.
    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHelpdesk {
    address: String,
    name: Option<String>,
    reference_prefix: Option<String>,
}

/// `[helpdesk]`, which every config must have: the address at least.
pub(crate) fn check_helpdesk(raw: Option<RawHelpdesk>) -> Result<HelpdeskConfig, ConfigError> {
    let helpdesk = raw.ok_or_else(|| {
        key_err(
            "helpdesk.address",
            "missing: the helpdesk's own address is required",
        )
    })?;
    let address = helpdesk.address.trim().to_ascii_lowercase();
    if !looks_like_address(&address) {
        return Err(key_err(
            "helpdesk.address",
            format!("`{address}` is not an email address"),
        ));
    }
    let reference_prefix = helpdesk.reference_prefix.unwrap_or_else(|| "HD".to_owned());
    if reference_prefix.is_empty()
        || reference_prefix.len() > 10
        || !reference_prefix.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(key_err(
            "helpdesk.reference_prefix",
            format!("`{reference_prefix}` must be 1 to 10 letters or digits"),
        ));
    }
    Ok(HelpdeskConfig {
        name: helpdesk.name.unwrap_or_else(|| "Helpdesk".to_owned()),
        address,
        reference_prefix,
    })
}
