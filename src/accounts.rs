//! The directory as the rules see it: accounts and their state, shared mailboxes, and who is a
//! member or owner of what. Plain data: `store::directory` reads and writes it, `policy`
//! decides on it, and neither needs the other's types.

use crate::request::Role;
use serde::Serialize;
use std::str::FromStr;

/// An account's state. Requests may only come from `Active` accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Locked,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Locked => "locked",
            AccountStatus::Disabled => "disabled",
        }
    }
}

impl FromStr for AccountStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" | "" => Ok(AccountStatus::Active),
            "locked" => Ok(AccountStatus::Locked),
            "disabled" => Ok(AccountStatus::Disabled),
            other => Err(format!(
                "unknown status `{other}` (expected active, locked or disabled)"
            )),
        }
    }
}

impl std::fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: i64,
    pub organisation_id: i64,
    pub organisation: String,
    pub address: String,
}

/// A mailbox with how many members (of any role) and owners it has, as kept on its row: what
/// the rules need of a mailbox besides the roles of the accounts a message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSummary {
    pub mailbox: Mailbox,
    pub members: i64,
    pub owners: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub organisation_id: i64,
    pub organisation: String,
    pub address: String,
    pub name: String,
    pub status: AccountStatus,
}

/// One account's place in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub mailbox_id: i64,
    pub mailbox: String,
    pub account_id: i64,
    pub account: String,
    pub account_status: AccountStatus,
    pub role: Role,
}
