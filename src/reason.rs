//! Every reason postroom gives for not doing (or not yet doing) what was asked. Written once,
//! used in the reply, the audit trail, the `process` output and the staff page: each has a
//! stable code and a sentence that tells the site what to do next.

use crate::request::{RequestKind, Role};
use serde::{Deserialize, Serialize};

/// Serialized (as `{"reason": "last_owner", "details": {...}}`) it is stored with the request
/// (`requests.reason_json`, migration 0110), so that the staff page shows the words the site
/// was given. That form is the variants' and fields' names: renaming one leaves the requests
/// stored before unreadable as such (the page then says what their code means).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "details", rename_all = "snake_case")]
pub enum Reason {
    // --- why a message is not a request at all
    /// Screened out (auto-reply, bounce, list, our own mail); the sentence says which rule.
    NotARequest(String),
    /// No header could be read.
    Unparsable,
    /// Over `max_message_bytes`: not downloaded whole.
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// A reply in the thread of an existing request: attached to it.
    CommentAdded(String),

    // --- whether the mail is genuine
    /// The trust evidence failed: never applied, never answered.
    Unauthenticated(String),
    /// Carries our own loop marker, or answers one of our messages without a human reply.
    Loop,
    /// A structural limit (headers, parts, MIME depth, text size) was hit.
    TooComplex(String),

    // --- who is asking
    NoFrom,
    NotSharedMailbox(String),
    RequesterMissing,
    RequesterNotFound(String),
    RequesterInactive(String),
    RequesterNotMember {
        requester: String,
        mailbox: String,
    },
    RequesterRoleTooLow {
        requester: String,
        needed: Role,
        kind: RequestKind,
    },
    OtherMailbox {
        named: String,
        mailbox: String,
    },

    // --- what is asked
    UnknownKind,
    AmbiguousKind(Vec<RequestKind>),
    AccountMissing,
    AmbiguousAccount(Vec<String>),
    UnknownAccount(String),
    TargetIsMailbox(String),
    OtherOrganisation {
        account: String,
    },
    NameMissing,
    /// A name (or job title) that cannot be stored: a spreadsheet formula, too long, or too
    /// long for an address.
    BadName {
        name: String,
        why: String,
    },
    /// A person named in words matches several accounts (issue 12): a person decides.
    AmbiguousName {
        name: String,
        candidates: Vec<String>,
    },
    /// A person named in words matches no account of the organisation.
    UnknownName(String),
    /// A first name alone for a change the site cannot undo (a leaver): a person checks.
    NameTooLoose {
        name: String,
        candidate: String,
    },
    /// A new starter whose name already belongs to an account of the organisation.
    StarterExists {
        name: String,
        accounts: Vec<String>,
    },
    /// The message uses a request's words but asks nothing (a question, a negation, a
    /// hypothetical, a thanks, words only in quoted text): a person reads it.
    NotAsked(String),
    /// A reply in the thread of a reference this desk does not know.
    UnknownThread(String),
    /// More asks in one message than postroom acts on alone.
    TooManyAsks {
        asks: usize,
        max: usize,
    },
    BadRole(String),
    RoleMissing,

    // --- the state of the directory
    AccountDisabled(String),
    AlreadyActive(String),
    AlreadyMember {
        account: String,
        role: Role,
    },
    NotMember(String),
    AlreadyRole {
        account: String,
        role: Role,
    },
    AlreadyDisabled(String),
    LastOwner {
        account: String,
        mailbox: String,
    },
    /// The change would leave a shared mailbox with no member at all: nobody could read it.
    LastMember {
        account: String,
        mailbox: String,
    },
    ReplacementMissing {
        account: String,
    },
    BadReplacement(String),
    AccountLimit {
        organisation: String,
        limit: u32,
    },
    MemberLimit {
        mailbox: String,
        limit: u32,
    },
    OwnerLimit {
        mailbox: String,
        limit: u32,
    },

    // --- confirmation with a one-time code
    ConfirmationNeeded {
        requester: String,
    },
    BadCode,
    CodeExpired,
    CodeUsed,
    CodeVoid,
    WrongConfirmer,

    // --- a request decided again
    /// The stored email was blanked by retention (`[retention] raw_messages`): there is
    /// nothing left to decide from.
    MessageGone,
    /// The directory where accounts live refused the change (issue 15): staff have the
    /// target's words in the job's audit event; the site is told a person is on it.
    TargetRefused(String),
    /// A person on the helpdesk said no, in these words (the site is told them).
    StaffRejected(String),
    /// Staff merged this request into an earlier one of the same site (issue 17): the answer
    /// comes in that request's thread, under its reference.
    Merged(String),

    // --- a message seen before
    /// The same Message-ID or the same bytes came again; `outcome` is what the first copy got.
    Duplicate {
        outcome: Option<String>,
    },
}

impl Reason {
    /// Stable code for scripts, the `process` output and filters on the staff page.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NotARequest(_) => "not_a_request",
            Reason::Unparsable => "unparsable",
            Reason::CommentAdded(_) => "comment_added",
            Reason::TooLarge { .. } => "too_large",
            Reason::Unauthenticated(_) => "unauthenticated",
            Reason::Loop => "loop",
            Reason::TooComplex(_) => "too_complex",
            Reason::NoFrom => "no_from",
            Reason::NotSharedMailbox(_) => "not_shared_mailbox",
            Reason::RequesterMissing => "requester_missing",
            Reason::RequesterNotFound(_) => "requester_unknown",
            Reason::RequesterInactive(_) => "requester_inactive",
            Reason::RequesterNotMember { .. } => "requester_not_member",
            Reason::RequesterRoleTooLow { .. } => "requester_not_owner",
            Reason::OtherMailbox { .. } => "other_mailbox",
            Reason::UnknownKind => "unknown_kind",
            Reason::AmbiguousKind(_) => "ambiguous_kind",
            Reason::AccountMissing => "account_missing",
            Reason::AmbiguousAccount(_) => "ambiguous_account",
            Reason::UnknownAccount(_) => "unknown_account",
            Reason::TargetIsMailbox(_) => "target_is_mailbox",
            Reason::OtherOrganisation { .. } => "other_organisation",
            Reason::NameMissing => "name_missing",
            Reason::BadName { .. } => "bad_name",
            Reason::AmbiguousName { .. } => "ambiguous_name",
            Reason::UnknownName(_) => "unknown_name",
            Reason::NameTooLoose { .. } => "name_too_loose",
            Reason::StarterExists { .. } => "starter_exists",
            Reason::NotAsked(_) => "not_asked",
            Reason::UnknownThread(_) => "unknown_thread",
            Reason::TooManyAsks { .. } => "too_many_asks",
            Reason::BadRole(_) => "bad_role",
            Reason::RoleMissing => "role_missing",
            Reason::AccountDisabled(_) => "account_disabled",
            Reason::AlreadyActive(_) => "already_active",
            Reason::AlreadyMember { .. } => "already_member",
            Reason::NotMember(_) => "not_member",
            Reason::AlreadyRole { .. } => "already_role",
            Reason::AlreadyDisabled(_) => "already_disabled",
            Reason::LastOwner { .. } => "last_owner",
            Reason::LastMember { .. } => "last_member",
            Reason::ReplacementMissing { .. } => "replacement_missing",
            Reason::BadReplacement(_) => "bad_replacement",
            Reason::AccountLimit { .. } => "account_limit",
            Reason::MemberLimit { .. } => "member_limit",
            Reason::OwnerLimit { .. } => "owner_limit",
            Reason::ConfirmationNeeded { .. } => "confirmation_needed",
            Reason::BadCode => "bad_code",
            Reason::CodeExpired => "code_expired",
            Reason::CodeUsed => "code_used",
            Reason::CodeVoid => "code_void",
            Reason::WrongConfirmer => "wrong_confirmer",
            Reason::MessageGone => "message_gone",
            Reason::TargetRefused(_) => "target_refused",
            Reason::StaffRejected(_) => "staff_rejected",
            Reason::Merged(_) => "merged",
            Reason::Duplicate { .. } => "duplicate",
        }
    }

    /// What a stored code means, in a sentence for staff: for requests recorded before the
    /// whole reason was kept with them (migration 0110), whose details are gone. `None` for a
    /// code this build does not know.
    pub fn describe_code(code: &str) -> Option<&'static str> {
        Some(match code {
            "not_a_request" => {
                "Screened out as not a request (an auto-reply, bounce, list mail or our own mail); it got no answer."
            }
            "unparsable" => "The message could not be read as an email.",
            "comment_added" => {
                "A reply in the thread of an earlier request: added to it as a comment."
            }
            "too_large" => "Over the size limit for automatic handling.",
            "unauthenticated" => {
                "The sender could not be proven (the trust evidence failed); nothing was done and no answer was sent. The audit event below shows the evidence."
            }
            "loop" => {
                "A reply to one of our own automatic messages: not answered, so that no mail loop starts."
            }
            "too_complex" => {
                "Too complex to read automatically (a limit on headers, parts, nesting or text was hit)."
            }
            "no_from" => "The message has no readable From: address.",
            "not_shared_mailbox" => "The sender is not a registered shared mailbox.",
            "requester_missing" => "The message does not say who is asking.",
            "requester_unknown" => "The person named as asking has no account.",
            "requester_inactive" => "The person asking does not have an active account.",
            "requester_not_member" => "The person asking is not a member of the shared mailbox.",
            "requester_not_owner" => {
                "The person asking does not hold the role in the shared mailbox that this kind of request needs."
            }
            "other_mailbox" => {
                "The request names another shared mailbox than the one it was sent from."
            }
            "unknown_kind" => "It is not clear what is being asked for.",
            "ambiguous_kind" => "The message seems to ask for more than one thing.",
            "account_missing" => "It is not clear which account the request is about.",
            "ambiguous_account" => {
                "The message names several accounts, so it is not clear which one is meant."
            }
            "unknown_account" => "The account named does not exist.",
            "target_is_mailbox" => "The account named is a shared mailbox, not a person's account.",
            "other_organisation" => "The account named belongs to another organisation.",
            "name_missing" => "A new account was asked for without the person's name.",
            "bad_name" => {
                "The name (or job title) could not be used: a formula, too long, or too long for an address."
            }
            "ambiguous_name" => {
                "A person named in the message matches several accounts; the audit event below lists them."
            }
            "unknown_name" => {
                "A person named in the message matches no account of the organisation."
            }
            "name_too_loose" => {
                "A first name alone, for a change the site cannot undo: check who is meant."
            }
            "starter_exists" => {
                "The new starter's name already belongs to an account of the organisation: check whether it is the same person."
            }
            "not_asked" => {
                "The message uses a request's words but asks for nothing (a question, a negation, a hypothetical, a thanks, or words only in quoted text)."
            }
            "unknown_thread" => "A reply in the thread of a reference this desk does not know.",
            "too_many_asks" => "More asks in one message than postroom acts on alone.",
            "bad_role" => "The role asked for is neither member nor owner.",
            "role_missing" => "The request does not say which role (member or owner).",
            "account_disabled" => "The account is disabled.",
            "already_active" => "The account is already active: nothing to do.",
            "already_member" => "The account is already in the mailbox: nothing to do.",
            "not_member" => "The account is not a member of the mailbox.",
            "already_role" => "The account already has that role in the mailbox: nothing to do.",
            "already_disabled" => "The account is already disabled: nothing to do.",
            "last_owner" => {
                "The account is the last owner of the mailbox: another member must be made an owner first."
            }
            "last_member" => "The change would leave the mailbox with no member at all.",
            "replacement_missing" => {
                "The leaver owns a shared mailbox and no replacement owner was named."
            }
            "bad_replacement" => {
                "The replacement owner named is not an active account of the organisation other than the leaver."
            }
            "account_limit" => "The organisation already has the most accounts allowed.",
            "member_limit" => "The mailbox already has the most members allowed.",
            "owner_limit" => "The mailbox already has the most owners allowed.",
            "confirmation_needed" => {
                "The change hands over control: the requester was sent a one-time code to confirm it."
            }
            "bad_code" => "A wrong confirmation code was sent.",
            "code_expired" => "The confirmation code had expired.",
            "code_used" => "The confirmation code had been used already.",
            "code_void" => "Too many wrong codes were tried: the confirmation is void.",
            "wrong_confirmer" => {
                "The confirmation came from someone other than the person who made the request."
            }
            "message_gone" => {
                "The email was no longer kept (retention), so the request could not be acted on."
            }
            "target_refused" => {
                "The directory where the accounts live refused the change; its answer is in the job's audit event and on this page."
            }
            "staff_rejected" => {
                "Rejected by a person on the helpdesk; their message is in the comments."
            }
            "merged" => {
                "Merged by staff into an earlier request of the same site, which carries the answer."
            }
            "duplicate" => "The same message was processed before: nothing changed again.",
            // A code is a string here, not a `Reason`: one written by another version.
            _ => return None,
        })
    }

    /// What happened and what to do next, for a person.
    pub fn explain(&self) -> String {
        match self {
            Reason::NotARequest(why) => format!("This message is not a request ({why}); it gets no answer."),
            Reason::Unparsable => "The message could not be read as an email; a person on the helpdesk will look at it.".into(),
            Reason::CommentAdded(r) => format!("Added to request {r} as a comment."),
            Reason::TooLarge { size, limit } => format!(
                "The message is {size} bytes, over the limit of {limit} bytes for automatic handling; a person on the helpdesk will look at it. Large attachments are not needed for account requests."
            ),
            Reason::Unauthenticated(why) => format!(
                "We could not prove that this message comes from its sender ({why}); it was not acted on and gets no answer. A person on the helpdesk can see it."
            ),
            Reason::Loop => "This message answers one of our own automatic replies; it is not answered again, so that no mail loop starts.".into(),
            Reason::TooComplex(what) => format!(
                "The message is too complex to read automatically ({what}); a person on the helpdesk will look at it."
            ),
            Reason::NoFrom => "The message has no readable From: address, so we cannot tell which shared mailbox sent it.".into(),
            Reason::NotSharedMailbox(a) => format!(
                "{a} is not a registered shared mailbox. Requests must be sent from your site's shared mailbox."
            ),
            Reason::RequesterMissing => "We could not tell who is asking. Send the request again from the shared mailbox with a line \"Requested by: your.name@…\" (your own account address).".into(),
            Reason::RequesterNotFound(a) => format!(
                "{a}, named as the person asking, has no account with us. The request must be made by a member of the shared mailbox, named with \"Requested by: your.name@…\"."
            ),
            Reason::RequesterInactive(a) => format!(
                "{a}, the person asking, does not have an active account, so cannot make requests. Another owner of the mailbox can."
            ),
            Reason::RequesterNotMember { requester, mailbox } => format!(
                "{requester} is not a member of {mailbox}, so cannot make requests for it. Ask one of its owners to send the request."
            ),
            Reason::RequesterRoleTooLow { requester, needed, kind } => format!(
                "{requester} is not an {needed} of the mailbox; a request of this kind ({}) must come from an {needed}. Ask one of the mailbox's owners to send it.",
                kind.title().to_lowercase()
            ),
            Reason::OtherMailbox { named, mailbox } => format!(
                "The request names the mailbox {named}, but was sent from {mailbox}. A shared mailbox can only change its own membership: send the request from {named}."
            ),
            Reason::UnknownKind => "We could not tell what is being asked for. A person on the helpdesk will read it; next time, a subject such as \"Password reset\" or \"New starter\" lets us act at once.".into(),
            Reason::AmbiguousKind(kinds) => format!(
                "The message seems to ask for more than one thing ({}). A person on the helpdesk will read it; please send one request per email.",
                kinds.iter().map(|k| k.title().to_lowercase()).collect::<Vec<_>>().join(", ")
            ),
            Reason::AccountMissing => "We could not tell which account this is about. A person on the helpdesk will read it; next time, add a line \"Account: name@…\".".into(),
            Reason::AmbiguousAccount(list) => format!(
                "The message names several accounts ({}). A person on the helpdesk will read it; next time, add a line \"Account: name@…\" naming one account.",
                list.join(", ")
            ),
            Reason::UnknownAccount(a) => format!(
                "We have no account {a}. A person on the helpdesk will check it; please check the spelling of the address."
            ),
            Reason::TargetIsMailbox(a) => format!("{a} is a shared mailbox, not a personal account; name the person's own account."),
            Reason::OtherOrganisation { account } => format!(
                "{account} belongs to another organisation; a shared mailbox can only ask for changes to its own organisation's accounts."
            ),
            Reason::NameMissing => "A new account needs the person's name: add a line \"Name: First Last\" (or \"First name:\" and \"Last name:\") and send the request again.".into(),
            Reason::BadName { name, why } => format!(
                "We cannot make an account named \"{name}\": {why}. Please send the person's name as it should appear, in letters."
            ),
            Reason::AmbiguousName { name, candidates } => format!(
                "\"{name}\" could be any of {}. A person on the helpdesk will check which one is meant; next time, give the person's email address.",
                candidates.join(", ")
            ),
            Reason::UnknownName(name) => format!(
                "We found no account named \"{name}\" in your organisation. A person on the helpdesk will check it; please check the spelling, or give the person's email address."
            ),
            Reason::NameTooLoose { name, candidate } => format!(
                "\"{name}\" is a first name only, and this change cannot easily be undone. A person on the helpdesk will check that {candidate} is meant."
            ),
            Reason::StarterExists { name, accounts } => format!(
                "Your organisation already has an account named \"{name}\" ({}). A person on the helpdesk will check whether this is the same person before making a second account.",
                accounts.join(", ")
            ),
            Reason::NotAsked(why) => format!(
                "We did not read this message as asking for a change ({why}), so nothing was done. A person on the helpdesk will read it."
            ),
            Reason::UnknownThread(reference) => format!(
                "This answers {reference}, which we cannot find, so it was not treated as a new request. A person on the helpdesk will read it."
            ),
            Reason::TooManyAsks { asks, max } => format!(
                "The message asks for {asks} changes; we act on at most {max} from one email. A person on the helpdesk will handle them."
            ),
            Reason::BadRole(r) => format!("\"{r}\" is not a role we know: use \"Role: member\" or \"Role: owner\"."),
            Reason::RoleMissing => "Say which role the account should have: add a line \"Role: owner\" or \"Role: member\".".into(),
            Reason::AccountDisabled(a) => format!(
                "{a} is disabled. Ask for it to be restored first (subject \"Unlock account\"), then for a password reset if needed."
            ),
            Reason::AlreadyActive(a) => format!("{a} is already active: nothing was changed."),
            Reason::AlreadyMember { account, role } => format!(
                "{account} is already an {role} of this mailbox: nothing was changed. To change the role, ask for a role change."
            ),
            Reason::NotMember(a) => format!("{a} is not a member of this mailbox: nothing was changed."),
            Reason::AlreadyRole { account, role } => format!("{account} is already an {role} of this mailbox: nothing was changed."),
            Reason::AlreadyDisabled(a) => format!("{a} is already disabled: nothing was changed."),
            Reason::LastOwner { account, mailbox } => format!(
                "{account} is the last owner of {mailbox}; a mailbox must always keep an owner. Make another member an owner first (a role change), then send this request again."
            ),
            Reason::LastMember { account, mailbox } => format!(
                "{account} is the only member of {mailbox}: without them nobody could read the mailbox, and mail to it would go unseen. Ask for a colleague to be added first (for example \"Please add <name> to {mailbox}\"), then send this request again."
            ),
            Reason::ReplacementMissing { account } => format!(
                "{account} is an owner. An owner who leaves must hand over: add a line \"Replacement: name@…\" naming the account that becomes owner in their place, and send the request again."
            ),
            Reason::BadReplacement(a) => format!(
                "{a}, named as the replacement owner, must be an active account of your organisation other than the person leaving."
            ),
            Reason::AccountLimit { organisation, limit } => format!(
                "{organisation} already has {limit} accounts, the most allowed. Ask for a leaver to be disabled first, or contact the helpdesk to raise the limit."
            ),
            Reason::MemberLimit { mailbox, limit } => format!("{mailbox} already has {limit} members, the most allowed."),
            Reason::OwnerLimit { mailbox, limit } => format!("{mailbox} already has {limit} owners, the most allowed."),
            Reason::ConfirmationNeeded { requester } => format!(
                "This change hands over control, so {requester} must confirm it: we have emailed a one-time code to {requester}'s own address. Reply to that email with the code to go ahead."
            ),
            Reason::BadCode => "That confirmation code is not right. Reply to the confirmation email with the code exactly as it was sent.".into(),
            Reason::CodeExpired => "That confirmation code has expired. Send the request again to get a new code.".into(),
            Reason::CodeUsed => "That confirmation code has already been used; nothing more was changed.".into(),
            Reason::CodeVoid => "Too many wrong codes were tried, so this confirmation is void. Send the request again to get a new code.".into(),
            Reason::WrongConfirmer => "Only the person who made the request can confirm it, from their own account.".into(),
            Reason::StaffRejected(message) => message.clone(),
            Reason::Merged(into) => format!(
                "This asks for the same as {into}, so the two were merged: the answer comes in {into}'s thread."
            ),
            Reason::Duplicate { outcome } => format!(
                "This message was processed before{}: nothing was changed again.",
                outcome
                    .as_ref()
                    .map(|o| format!(" (outcome: {o})"))
                    .unwrap_or_default()
            ),
            Reason::TargetRefused(_) => "The change was accepted, but the directory where the accounts live did not take it; a person on the helpdesk is handling it and will answer. Nothing needs to be sent again.".into(),
            Reason::MessageGone => "The email of this request is no longer kept (it was deleted under the retention policy), so it cannot be acted on now. Please send the request again.".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_says_what_to_do() {
        let r = Reason::LastOwner {
            account: "jane.doe@nhs.example".into(),
            mailbox: "rosehill.care@nhs.example".into(),
        };
        assert_eq!(r.code(), "last_owner");
        assert!(r.explain().contains("Make another member an owner first"));
    }

    /// One of each variant. Adding a variant fails to compile in `listed` until it is added
    /// here too.
    fn one_of_each() -> Vec<Reason> {
        let s = || "x@nhs.example".to_owned();
        let all = vec![
            Reason::NotARequest(s()),
            Reason::Unparsable,
            Reason::TooLarge { size: 2, limit: 1 },
            Reason::CommentAdded(s()),
            Reason::Unauthenticated(s()),
            Reason::Loop,
            Reason::TooComplex(s()),
            Reason::NoFrom,
            Reason::NotSharedMailbox(s()),
            Reason::RequesterMissing,
            Reason::RequesterNotFound(s()),
            Reason::RequesterInactive(s()),
            Reason::RequesterNotMember {
                requester: s(),
                mailbox: s(),
            },
            Reason::RequesterRoleTooLow {
                requester: s(),
                needed: Role::Owner,
                kind: RequestKind::Leaver,
            },
            Reason::OtherMailbox {
                named: s(),
                mailbox: s(),
            },
            Reason::UnknownKind,
            Reason::AmbiguousKind(vec![RequestKind::Leaver, RequestKind::Unlock]),
            Reason::AccountMissing,
            Reason::AmbiguousAccount(vec![s(), s()]),
            Reason::UnknownAccount(s()),
            Reason::TargetIsMailbox(s()),
            Reason::OtherOrganisation { account: s() },
            Reason::NameMissing,
            Reason::BadName {
                name: s(),
                why: s(),
            },
            Reason::AmbiguousName {
                name: s(),
                candidates: vec![s()],
            },
            Reason::UnknownName(s()),
            Reason::NameTooLoose {
                name: s(),
                candidate: s(),
            },
            Reason::StarterExists {
                name: s(),
                accounts: vec![s()],
            },
            Reason::NotAsked(s()),
            Reason::UnknownThread(s()),
            Reason::TooManyAsks { asks: 21, max: 20 },
            Reason::BadRole(s()),
            Reason::RoleMissing,
            Reason::AccountDisabled(s()),
            Reason::AlreadyActive(s()),
            Reason::AlreadyMember {
                account: s(),
                role: Role::Member,
            },
            Reason::NotMember(s()),
            Reason::AlreadyRole {
                account: s(),
                role: Role::Owner,
            },
            Reason::AlreadyDisabled(s()),
            Reason::LastOwner {
                account: s(),
                mailbox: s(),
            },
            Reason::LastMember {
                account: s(),
                mailbox: s(),
            },
            Reason::ReplacementMissing { account: s() },
            Reason::BadReplacement(s()),
            Reason::AccountLimit {
                organisation: s(),
                limit: 3,
            },
            Reason::MemberLimit {
                mailbox: s(),
                limit: 3,
            },
            Reason::OwnerLimit {
                mailbox: s(),
                limit: 3,
            },
            Reason::ConfirmationNeeded { requester: s() },
            Reason::BadCode,
            Reason::CodeExpired,
            Reason::CodeUsed,
            Reason::CodeVoid,
            Reason::WrongConfirmer,
            Reason::MessageGone,
            Reason::TargetRefused(s()),
            Reason::StaffRejected(s()),
            Reason::Merged(s()),
            Reason::Duplicate {
                outcome: Some("applied".into()),
            },
        ];
        for r in &all {
            listed(r);
        }
        all
    }

    fn listed(r: &Reason) {
        match r {
            Reason::NotARequest(_)
            | Reason::Unparsable
            | Reason::TooLarge { .. }
            | Reason::CommentAdded(_)
            | Reason::Unauthenticated(_)
            | Reason::Loop
            | Reason::TooComplex(_)
            | Reason::NoFrom
            | Reason::NotSharedMailbox(_)
            | Reason::RequesterMissing
            | Reason::RequesterNotFound(_)
            | Reason::RequesterInactive(_)
            | Reason::RequesterNotMember { .. }
            | Reason::RequesterRoleTooLow { .. }
            | Reason::OtherMailbox { .. }
            | Reason::UnknownKind
            | Reason::AmbiguousKind(_)
            | Reason::AccountMissing
            | Reason::AmbiguousAccount(_)
            | Reason::UnknownAccount(_)
            | Reason::TargetIsMailbox(_)
            | Reason::OtherOrganisation { .. }
            | Reason::NameMissing
            | Reason::BadName { .. }
            | Reason::AmbiguousName { .. }
            | Reason::UnknownName(_)
            | Reason::NameTooLoose { .. }
            | Reason::StarterExists { .. }
            | Reason::NotAsked(_)
            | Reason::UnknownThread(_)
            | Reason::TooManyAsks { .. }
            | Reason::BadRole(_)
            | Reason::RoleMissing
            | Reason::AccountDisabled(_)
            | Reason::AlreadyActive(_)
            | Reason::AlreadyMember { .. }
            | Reason::NotMember(_)
            | Reason::AlreadyRole { .. }
            | Reason::AlreadyDisabled(_)
            | Reason::LastOwner { .. }
            | Reason::LastMember { .. }
            | Reason::ReplacementMissing { .. }
            | Reason::BadReplacement(_)
            | Reason::AccountLimit { .. }
            | Reason::MemberLimit { .. }
            | Reason::OwnerLimit { .. }
            | Reason::ConfirmationNeeded { .. }
            | Reason::BadCode
            | Reason::CodeExpired
            | Reason::CodeUsed
            | Reason::CodeVoid
            | Reason::WrongConfirmer
            | Reason::MessageGone
            | Reason::TargetRefused(_)
            | Reason::StaffRejected(_)
            | Reason::Merged(_)
            | Reason::Duplicate { .. } => {}
        }
    }

    #[test]
    fn every_reason_is_stored_whole_and_every_code_is_described() {
        let all = one_of_each();
        let codes: std::collections::HashSet<&str> = all.iter().map(Reason::code).collect();
        assert_eq!(codes.len(), all.len(), "one variant per code");
        for r in &all {
            let stored = serde_json::to_string(r).unwrap();
            let back: Reason = serde_json::from_str(&stored).unwrap();
            assert_eq!(&back, r, "{stored}");
            assert_eq!(back.explain(), r.explain());
            assert!(Reason::describe_code(r.code()).is_some(), "{}", r.code());
        }
        let stored = serde_json::to_string(&Reason::LastOwner {
            account: "a@nhs.example".into(),
            mailbox: "m@nhs.example".into(),
        })
        .unwrap();
        assert_eq!(
            stored,
            r#"{"reason":"last_owner","details":{"account":"a@nhs.example","mailbox":"m@nhs.example"}}"#
        );
        assert_eq!(Reason::describe_code("no_such_code"), None);
    }
}
