//! The closed set of request kinds. The CLI, the daemon, the store and the web page all speak
//! this one enum; its `snake_case` names are part of the command-line contract (`process` JSON).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    NewAccount,
    PasswordReset,
    Unlock,
    AddMember,
    RemoveMember,
    ChangeRole,
    Leaver,
    /// Nothing (or more than one thing) recognisable was asked for.
    Unknown,
}

impl RequestKind {
    /// Every kind a site can ask for (not `Unknown`), in the order the docs list them.
    pub const ALL: [RequestKind; 7] = [
        RequestKind::NewAccount,
        RequestKind::PasswordReset,
        RequestKind::Unlock,
        RequestKind::AddMember,
        RequestKind::RemoveMember,
        RequestKind::ChangeRole,
        RequestKind::Leaver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::NewAccount => "new_account",
            RequestKind::PasswordReset => "password_reset",
            RequestKind::Unlock => "unlock",
            RequestKind::AddMember => "add_member",
            RequestKind::RemoveMember => "remove_member",
            RequestKind::ChangeRole => "change_role",
            RequestKind::Leaver => "leaver",
            RequestKind::Unknown => "unknown",
        }
    }

    /// Words for a person: used in reply subjects and bodies.
    pub fn title(self) -> &'static str {
        match self {
            RequestKind::NewAccount => "New account",
            RequestKind::PasswordReset => "Password reset",
            RequestKind::Unlock => "Unlock account",
            RequestKind::AddMember => "Add member",
            RequestKind::RemoveMember => "Remove member",
            RequestKind::ChangeRole => "Change role",
            RequestKind::Leaver => "Leaver",
            RequestKind::Unknown => "Request",
        }
    }

    /// Kinds that act on one existing account named by an `Account:` field.
    pub fn targets_account(self) -> bool {
        !matches!(self, RequestKind::NewAccount | RequestKind::Unknown)
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        RequestKind::ALL
            .into_iter()
            .chain([RequestKind::Unknown])
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown request kind `{s}`"))
    }
}

/// The role an account holds in a shared mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "member" | "members" => Ok(Role::Member),
            "owner" | "owners" => Ok(Role::Owner),
            other => Err(format!("unknown role `{other}` (expected member or owner)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in RequestKind::ALL.into_iter().chain([RequestKind::Unknown]) {
            assert_eq!(k.as_str().parse::<RequestKind>(), Ok(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(" Owner ".parse::<Role>(), Ok(Role::Owner));
        assert!("boss".parse::<Role>().is_err());
    }
}
