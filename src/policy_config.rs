//! The `[policy]` section (who may ask for what) and the `[limits]` section (guards against
//! runaway growth and hostile input): the checked data, the file's raw forms, the defaults and
//! the checks. Beside `policy.rs` rather than in it, because that file reads the whole
//! `Config` and `config` composes these sections: kept apart, the two import each other in no
//! circle (issue 14). The limits are here because `policy` is the lowest room that enforces
//! them (accounts per organisation, members and owners per mailbox); the pipeline enforces the
//! message's shape, and `desk::answer` and `continuity` the daily replies, all above it.
//! Imports only the request kinds and roles and the low key error.

use crate::config_value::{ConfigError, key_err};
use crate::request::{RequestKind, Role};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[policy]` as the file gives it: a role per kind, and the `requester_from_signature` switch
/// (a boolean).
pub(crate) type RawPolicy = BTreeMap<String, toml::Value>;

/// Who may ask for each kind: an owner of the mailbox (the default) or any member.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    required: BTreeMap<RequestKind, Role>,
    /// Whether a closing signature naming exactly one member of the mailbox identifies the
    /// requester when there is no `Sender:` and no `Requested by:` line (off by default:
    /// SECURITY.md, "Who is asking").
    pub requester_from_signature: bool,
}

impl PolicyConfig {
    pub fn required_role(&self, kind: RequestKind) -> Role {
        self.required.get(&kind).copied().unwrap_or(Role::Owner)
    }
}

/// `[policy]`: a role per kind (`password_reset = "member"`), and the
/// `requester_from_signature` switch.
pub(crate) fn check_policy(raw: &RawPolicy) -> Result<PolicyConfig, ConfigError> {
    let mut required = BTreeMap::new();
    let mut requester_from_signature = false;
    for (kind_name, value) in raw {
        let full = format!("policy.{kind_name}");
        if kind_name == "requester_from_signature" {
            requester_from_signature = value
                .as_bool()
                .ok_or_else(|| key_err(&full, "expected true or false"))?;
            continue;
        }
        let role_name = value
            .as_str()
            .ok_or_else(|| key_err(&full, "expected \"owner\" or \"member\""))?;
        let kind: RequestKind = kind_name.parse().map_err(|e: String| key_err(&full, e))?;
        if kind == RequestKind::Unknown {
            return Err(key_err(
                &full,
                "`unknown` is not a request kind that can be applied",
            ));
        }
        let role: Role = role_name.parse().map_err(|e: String| key_err(&full, e))?;
        required.insert(kind, role);
    }
    Ok(PolicyConfig {
        required,
        requester_from_signature,
    })
}

/// Guards against runaway growth and hostile input. `None`: no limit.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_accounts_per_organisation: Option<u32>,
    pub max_members_per_mailbox: Option<u32>,
    pub max_owners_per_mailbox: Option<u32>,
    pub max_replies_per_mailbox_per_day: u32,
    pub max_headers: u32,
    pub max_header_bytes: u32,
    pub max_parts: u32,
    pub max_mime_depth: u32,
    pub max_text_bytes: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    max_accounts_per_organisation: Option<u32>,
    max_members_per_mailbox: Option<u32>,
    max_owners_per_mailbox: Option<u32>,
    max_replies_per_mailbox_per_day: Option<u32>,
    max_headers: Option<u32>,
    max_header_bytes: Option<u32>,
    max_parts: Option<u32>,
    max_mime_depth: Option<u32>,
    max_text_bytes: Option<u32>,
}

/// Nothing in `[limits]` can be wrong but its type, which serde has checked.
pub(crate) fn check_limits(l: RawLimits) -> LimitsConfig {
    LimitsConfig {
        max_accounts_per_organisation: l.max_accounts_per_organisation,
        max_members_per_mailbox: l.max_members_per_mailbox,
        max_owners_per_mailbox: l.max_owners_per_mailbox,
        max_replies_per_mailbox_per_day: l.max_replies_per_mailbox_per_day.unwrap_or(20),
        max_headers: l.max_headers.unwrap_or(500),
        max_header_bytes: l.max_header_bytes.unwrap_or(256 * 1024),
        max_parts: l.max_parts.unwrap_or(100),
        max_mime_depth: l.max_mime_depth.unwrap_or(20),
        max_text_bytes: l.max_text_bytes.unwrap_or(1024 * 1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_per_kind() {
        let text = "password_reset = \"member\"\n";
        // The section alone, as `config` hands it over.
        let raw: RawPolicy = toml::from_str(text).unwrap();
        let policy = check_policy(&raw).unwrap();
        assert_eq!(
            policy.required_role(RequestKind::PasswordReset),
            Role::Member
        );
        assert_eq!(policy.required_role(RequestKind::Unlock), Role::Owner);
    }
}
