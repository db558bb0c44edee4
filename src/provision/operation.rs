//! What a decided change asks of the directory where accounts really live, one operation at a
//! time, named by address (never by postroom's database ids: the target knows none of them).
//!
//! A request's operations travel in one provisioning job (`desk::provision_job`) and are applied
//! in order; each is written so that doing it twice leaves the target as doing it once (a job
//! replayed after a crash converges, never doubles).

use crate::request::Role;
use serde::{Deserialize, Serialize};

/// One change to make at the target.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// A new account with a temporary password that must be changed at first sign-in.
    CreateAccount {
        address: String,
        name: String,
        first: String,
        last: String,
        job_title: Option<String>,
        password: String,
    },
    /// A new temporary password (must be changed), and the account unlocked.
    ResetPassword {
        address: String,
        password: String,
    },
    /// Locked or disabled → active; the password is unchanged.
    Unlock {
        address: String,
    },
    /// A leaver: the account can no longer sign in.
    Disable {
        address: String,
    },
    AddMember {
        mailbox: String,
        account: String,
        role: Role,
    },
    RemoveMember {
        mailbox: String,
        account: String,
    },
    ChangeRole {
        mailbox: String,
        account: String,
        role: Role,
    },
}

impl Operation {
    /// The operation's name, as the `command` connector's JSON and the audit call it.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::CreateAccount { .. } => "create_account",
            Operation::ResetPassword { .. } => "reset_password",
            Operation::Unlock { .. } => "unlock",
            Operation::Disable { .. } => "disable",
            Operation::AddMember { .. } => "add_member",
            Operation::RemoveMember { .. } => "remove_member",
            Operation::ChangeRole { .. } => "change_role",
        }
    }

    /// The account it changes.
    pub fn account(&self) -> &str {
        match self {
            Operation::CreateAccount { address, .. }
            | Operation::ResetPassword { address, .. }
            | Operation::Unlock { address }
            | Operation::Disable { address } => address,
            Operation::AddMember { account, .. }
            | Operation::RemoveMember { account, .. }
            | Operation::ChangeRole { account, .. } => account,
        }
    }

    /// The temporary password it carries, if any: never logged, never audited.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Operation::CreateAccount { password, .. }
            | Operation::ResetPassword { password, .. } => Some(password),
            Operation::Unlock { .. }
            | Operation::Disable { .. }
            | Operation::AddMember { .. }
            | Operation::RemoveMember { .. }
            | Operation::ChangeRole { .. } => None,
        }
    }

    /// The operation with its password replaced, for what is kept once it is done.
    pub fn without_secret(&self) -> Operation {
        let mut op = self.clone();
        match &mut op {
            Operation::CreateAccount { password, .. }
            | Operation::ResetPassword { password, .. } => *password = String::new(),
            Operation::Unlock { .. }
            | Operation::Disable { .. }
            | Operation::AddMember { .. }
            | Operation::RemoveMember { .. }
            | Operation::ChangeRole { .. } => {}
        }
        op
    }

    /// One line for staff and the audit: what, to whom (no secret).
    pub fn describe(&self) -> String {
        match self {
            Operation::CreateAccount { address, name, .. } => {
                format!("create the account {address} for {name}")
            }
            Operation::ResetPassword { address, .. } => {
                format!("set a temporary password on {address} and unlock it")
            }
            Operation::Unlock { address } => format!("unlock {address}"),
            Operation::Disable { address } => format!("disable {address}"),
            Operation::AddMember {
                mailbox,
                account,
                role,
            } => format!("add {account} to {mailbox} as {role}"),
            Operation::RemoveMember { mailbox, account } => {
                format!("remove {account} from {mailbox}")
            }
            Operation::ChangeRole {
                mailbox,
                account,
                role,
            } => format!("make {account} {role} of {mailbox}"),
        }
    }
}

// The payload may sit in the job table and pass through logs of a failing test: the password
// never appears in Debug.
impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Operation({})", self.describe())
    }
}

/// Why the target did not do an operation (done, it answers with what it read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDone {
    /// The target refused it for good (a password policy, no such group…): its words.
    Rejected(String),
    /// Not now (the target is down, busy or slow): try again later.
    RetryLater(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_kept_out_of_debug_and_out_of_what_is_kept() {
        let op = Operation::ResetPassword {
            address: "a@x.org".into(),
            password: "Sekr1t-Pass".into(),
        };
        assert!(!format!("{op:?}").contains("Sekr1t"));
        let kept = serde_json::to_string(&op.without_secret()).unwrap();
        assert!(!kept.contains("Sekr1t"), "{kept}");
        assert_eq!(op.secret(), Some("Sekr1t-Pass"));
        let json = serde_json::to_value(&op).unwrap();
        assert_eq!(json["op"], "reset_password");
    }
}
