//! What a request reads as: the asks (a kind, a person as written, fields), how the kind was
//! found, why nothing is asked, and the fields postroom understands. Pure data, shared by the
//! grammar's modules and everything downstream of [`crate::request::extract`].

use crate::request::kinds::RequestKind;
use std::collections::BTreeMap;

/// How the kind was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindMatch {
    /// Exactly one kind recognised (subject first, else body).
    One(RequestKind),
    /// Several kinds named where one was expected: a person must decide.
    Ambiguous(Vec<RequestKind>),
    /// Nothing recognisable.
    None,
}

/// What the text asks for. Field names are normalised (see [`Field`]).
#[derive(Debug, Clone)]
pub struct Extracted {
    pub kind: KindMatch,
    /// `Key: value` fields found in the new text, by normalised key; first occurrence wins.
    pub fields: BTreeMap<Field, String>,
    /// Account addresses in the new text that are not the mailbox, the requester, the helpdesk,
    /// or a `Requested by:`/`Mailbox:`/`Replacement:` value — lower-case, deduplicated, in order.
    pub candidate_accounts: Vec<String>,
    /// A known reference in the subject (e.g. `HD-000042` from `Re: [HD-000042] Done: …`).
    pub thread_reference: Option<String>,
    /// A one-time confirmation code (8 characters from [`CODE_ALPHABET`], upper-cased) found on
    /// a `Code: …` line of the new text, or in the subject (see [`extract`]).
    pub confirmation_code: Option<String>,
    /// The new text that was read (quoted history and signature removed): kept for the audit.
    pub new_text: String,
    /// Each thing the message asks for, in the order written (issue 12): one request is made
    /// per ask. Empty when nothing is asked ([`Extracted::not_asked`] may say why) or when the
    /// kind is ambiguous ([`Extracted::kind`]).
    pub asks: Vec<Ask>,
    /// Why a message that uses a kind's words asks for nothing that may be acted on (a
    /// question, a negation, a hypothetical, a thanks): such mail goes to a person or is
    /// ignored, never acted on and never refused.
    pub not_asked: Option<NotAsked>,
    /// The name in the closing signature of the new text ("Kind regards,\nFatima Ali"), when
    /// there is exactly one. Identifies the requester only where `[policy]` allows it.
    pub signed_by: Option<String>,
}

/// One thing a message asks for: a kind and whom it is about, as written. `extract` finds it;
/// the pipeline's `resolve` step turns [`Ask::target`] into an account of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub kind: RequestKind,
    /// The existing account the ask is about, as written: an address or a person's name.
    /// `None` for a new account (the starter's name is in `fields`) or when no one is named.
    pub target: Option<Mention>,
    /// The fields that apply to this ask: the message's `Key: value` fields plus what the
    /// sentence itself gave (a new starter's name, a role, a replacement).
    pub fields: BTreeMap<Field, String>,
}

/// A person or an account as the text names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mention {
    /// An address, lower-case.
    Address(String),
    /// A person's name as written ("Ravi Gupta", "Mr R Gupta"), whitespace collapsed.
    Name(String),
}

impl Mention {
    /// The mention as written, for the reply and the staff page.
    pub fn as_written(&self) -> &str {
        match self {
            Mention::Address(a) | Mention::Name(a) => a,
        }
    }
}

/// Why a message asks for nothing, though it uses a kind's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotAsked {
    /// "Can Joe's password be reset by himself?" — a question about a change, not a request.
    Question,
    /// "ignore my last email, don't take Joe off".
    Negated,
    /// "if the new password fails we'll be in touch".
    Hypothetical,
    /// "Thanks, that worked" above a quoted old request.
    Thanks,
    /// The kind's words appear only in quoted or forwarded text.
    QuotedOnly,
    /// "Joe, who you unlocked last week, says thanks": a change already made, mentioned.
    InPassing,
}

/// The fields postroom understands, whatever the wording of the key.
///
/// Keys are matched case-insensitively, with `-`/`_` read as spaces and anything from `(` on
/// ignored (`E-mail address (staff):` is `email address`). Address fields (`Account`, `Mailbox`,
/// `RequestedBy`, `Replacement`) hold the first address of the value, lower-cased, without
/// `mailto:` or `<…>`; a value without an address is kept lower-cased (a user name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `Name:` / `Full name:` / `Staff name:`
    Name,
    /// `First name:` / `Forename:` / `Given name:`
    FirstName,
    /// `Last name:` / `Surname:` / `Family name:`
    LastName,
    /// `Job title:` / `Title:` / `Position:` / `Job role:`
    JobTitle,
    /// `Role:` / `Mailbox role:` / `New role:` / `Access level:` (member or owner)
    Role,
    /// `Account:` / `User:` / `Email:` / `Username:` / `Email address:` / `Staff email:`
    Account,
    /// `Mailbox:` / `Shared mailbox:`
    Mailbox,
    /// `Requested by:` / `Requester:` / `Requestor:`
    RequestedBy,
    /// `Replacement:` / `Replacement owner:` / `New owner:`
    Replacement,
}

impl Field {
    /// The field a key names (already lower-cased and normalised by [`normalise_key`]).
    pub(crate) fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "name" | "full name" | "staff name" | "name of staff member" | "employee name" => {
                Field::Name
            }
            "first name" | "firstname" | "forename" | "forenames" | "given name" => {
                Field::FirstName
            }
            "last name" | "lastname" | "surname" | "family name" => Field::LastName,
            "job title" | "title" | "position" | "job role" | "job" => Field::JobTitle,
            "role" | "mailbox role" | "new role" | "access level" => Field::Role,
            "account"
            | "user"
            | "email"
            | "e mail"
            | "username"
            | "user name"
            | "email address"
            | "e mail address"
            | "staff email"
            | "staff email address"
            | "user email"
            | "account email"
            | "user account"
            | "staff account" => Field::Account,
            "mailbox"
            | "shared mailbox"
            | "mail box"
            | "shared mail box"
            | "mailbox address"
            | "shared mailbox address" => Field::Mailbox,
            "requested by" | "requester" | "requestor" | "request by" => Field::RequestedBy,
            "replacement" | "replacement owner" | "new owner" | "replacement account" => {
                Field::Replacement
            }
            _ => return None,
        })
    }

    /// Fields whose value is an address.
    pub(crate) fn is_address(self) -> bool {
        matches!(
            self,
            Field::Account | Field::Mailbox | Field::RequestedBy | Field::Replacement
        )
    }
}
