//! The words a kind's file is written in: the [`Kind`] trait each kind implements, the
//! closed sets it speaks of ([`RequestKind`], [`Role`], [`Scope`], [`Strength`]) and the phrase
//! fragments several kinds share. It imports nothing of the grammar, so the kinds' files, the
//! grammar that reads through them and `kinds/mod.rs` never import one another in a circle.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Where the names of a request are looked for (`resolve` looks them up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The organisation's accounts.
    Organisation,
    /// The members (and owners) of the sending mailbox.
    Mailbox,
}

/// Everything said about one kind, in the kind's own file. Defaults are for what most kinds
/// lack (absorbing nothing, implying no role); the rest each kind must say.
pub trait Kind: Sync {
    /// The `snake_case` name: the command-line contract, the store, the config keys.
    fn name(&self) -> &'static str;

    /// Words for a person: used in reply subjects and bodies.
    fn title(&self) -> &'static str;

    /// Whether the kind acts on one existing account named by an `Account:` field.
    fn targets_account(&self) -> bool;

    /// Where the people it names are looked for: removing someone from the mailbox or changing
    /// their role there can only be about its members.
    fn names_among(&self) -> Scope;

    /// How a subject or a whole body names the kind (`block_kind`), alternatives of one regex
    /// matched against lower-case words between single spaces.
    fn block_wording(&self) -> Vec<String>;

    /// Kinds this one absorbs when both are named in the same subject or body, because asking
    /// for this one implies the other (`block_kind`, and the subject over the prose).
    fn absorbs_in_block(&self) -> &'static [RequestKind] {
        &[]
    }

    /// How a sentence asks for the kind (`wording`): an action asks, a symptom implies the ask.
    /// Matched against a sentence's normalised copy, in this order.
    fn wording(&self) -> Vec<(Strength, String)>;

    /// A phrase the wording matched that is not this kind after all, seen whole ("let Joe back
    /// into the inbox" is not a new membership).
    fn not_this_kind(&self, _phrase: &str) -> bool {
        false
    }

    /// Whether a role its phrase names ("make Tom an owner", "add Sam as a member") is the role
    /// asked for.
    fn carries_role(&self) -> bool {
        false
    }

    /// The bare verb that asks for it before a person's name ("add Peter Hughes").
    fn bare_verb(&self) -> Option<&'static str> {
        None
    }

    /// Kinds this one absorbs when one person is asked both for (`asks`).
    fn absorbs_for_person(&self) -> &'static [RequestKind] {
        &[]
    }

    /// The change as a confirmation email describes it to the requester: `target` is the
    /// account concerned (or "a new account"), `fields` the fields as read.
    fn confirmation(&self, target: &str, fields: &BTreeMap<String, String>) -> String;
}

/// A field as read, or the words that stand for it when it was not given.
pub(super) fn field_or<'a>(
    fields: &'a BTreeMap<String, String>,
    name: &str,
    otherwise: &'a str,
) -> &'a str {
    fields.get(name).map_or(otherwise, String::as_str)
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    Action,
    Symptom,
}

/// Where a mailbox is named.
pub(crate) const MAILBOX: &str =
    r"(?:[a-z]+ ){0,3}(?:mailbox|mail box|inbox|in box|distribution list|email account|emails)";

/// Where a mailbox is named in "add … to the mailbox" / "remove … from the mailbox".
pub(crate) const MAILBOX_WORDS: &str = r"(?:the |our |this |my |a |shared )*(?:mailbox|mail box|inbox|shared inbox|group|distribution list)";
