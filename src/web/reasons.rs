//! A stored reason code back to the sentence the site was given.
//!
//! The requests table keeps only [`Reason::code`]; the sentence needs the reason's details
//! (which account, which mailbox). Most of them are in the request row itself, so the reason
//! is rebuilt from it and [`Reason::explain`] writes the same words the reply used. Where the
//! details were not kept (why a message was screened out, sizes, the list of candidate
//! accounts) a sentence for staff says what the code means; the audit event on the same page
//! carries the rest.

use crate::config::Config;
use crate::reason::Reason;
use crate::request::Role;
use crate::store::journal::RequestRow;
use std::collections::BTreeMap;

/// What staff read for a request's reason: the sentence, and whether it is exactly what the
/// site was told (or a summary written for staff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub code: String,
    pub sentence: String,
    pub as_sent: bool,
}

/// Explain `request`'s reason. `from` is the message's From: address (for a mailbox that is
/// not registered, the request row has no mailbox).
pub fn explain(request: &RequestRow, from: Option<&str>, cfg: &Config) -> Option<Explained> {
    let code = request.reason.as_deref()?;
    let fields: BTreeMap<String, String> =
        serde_json::from_str(&request.fields).unwrap_or_default();
    let field = |k: &str| fields.get(k).cloned();
    let target = request.target.clone().or_else(|| field("account"));
    let requester = request.requester.clone().or_else(|| field("requested_by"));
    let mailbox = request.mailbox.clone();
    let kind = request.kind;
    let role = field("role").and_then(|r| r.parse::<Role>().ok());

    let rebuilt = match code {
        "unparsable" => Some(Reason::Unparsable),
        "loop" => Some(Reason::Loop),
        "no_from" => Some(Reason::NoFrom),
        "requester_missing" => Some(Reason::RequesterMissing),
        "unknown_kind" => Some(Reason::UnknownKind),
        "account_missing" => Some(Reason::AccountMissing),
        "name_missing" => Some(Reason::NameMissing),
        "role_missing" => Some(Reason::RoleMissing),
        "bad_code" => Some(Reason::BadCode),
        "code_expired" => Some(Reason::CodeExpired),
        "code_used" => Some(Reason::CodeUsed),
        "code_void" => Some(Reason::CodeVoid),
        "wrong_confirmer" => Some(Reason::WrongConfirmer),
        "message_gone" => Some(Reason::MessageGone),
        "not_shared_mailbox" => from.map(|f| Reason::NotSharedMailbox(f.to_owned())),
        "requester_unknown" => requester.clone().map(Reason::RequesterNotFound),
        "requester_inactive" => requester.clone().map(Reason::RequesterInactive),
        "requester_not_member" => {
            requester
                .clone()
                .zip(mailbox.clone())
                .map(|(r, m)| Reason::RequesterNotMember {
                    requester: r,
                    mailbox: m,
                })
        }
        "requester_not_owner" => requester.clone().map(|r| Reason::RequesterRoleTooLow {
            requester: r,
            needed: cfg.policy.required_role(kind),
            kind,
        }),
        "other_mailbox" => field("mailbox")
            .zip(mailbox.clone().or_else(|| from.map(str::to_owned)))
            .map(|(named, mailbox)| Reason::OtherMailbox { named, mailbox }),
        "unknown_account" => target.clone().map(Reason::UnknownAccount),
        "target_is_mailbox" => target.clone().map(Reason::TargetIsMailbox),
        "other_organisation" => target
            .clone()
            .map(|account| Reason::OtherOrganisation { account }),
        "bad_role" => field("role").map(Reason::BadRole),
        "account_disabled" => target.clone().map(Reason::AccountDisabled),
        "already_active" => target.clone().map(Reason::AlreadyActive),
        "not_member" => target.clone().map(Reason::NotMember),
        "already_disabled" => target.clone().map(Reason::AlreadyDisabled),
        "already_member" => target
            .clone()
            .zip(role)
            .map(|(account, role)| Reason::AlreadyMember { account, role }),
        "already_role" => target
            .clone()
            .zip(role)
            .map(|(account, role)| Reason::AlreadyRole { account, role }),
        "last_owner" => target
            .clone()
            .zip(mailbox.clone())
            .map(|(account, mailbox)| Reason::LastOwner { account, mailbox }),
        "last_member" => target
            .clone()
            .zip(mailbox.clone())
            .map(|(account, mailbox)| Reason::LastMember { account, mailbox }),
        "replacement_missing" => target
            .clone()
            .map(|account| Reason::ReplacementMissing { account }),
        "bad_replacement" => field("replacement").map(Reason::BadReplacement),
        "confirmation_needed" => requester
            .clone()
            .map(|requester| Reason::ConfirmationNeeded { requester }),
        _ => None,
    };
    if let Some(r) = rebuilt {
        return Some(Explained {
            code: code.to_owned(),
            sentence: r.explain(),
            as_sent: true,
        });
    }
    let summary = match code {
        "not_a_request" => {
            "Screened out as not a request (an auto-reply, bounce, list mail or our own mail); it got no answer."
        }
        "comment_added" => "A reply in the thread of an earlier request: added to it as a comment.",
        "too_large" => "Over the size limit for automatic handling.",
        "unauthenticated" => {
            "The sender could not be proven (the trust evidence failed); nothing was done and no answer was sent. The audit event below shows the evidence."
        }
        "too_complex" => {
            "Too complex to read automatically (a limit on headers, parts, nesting or text was hit)."
        }
        "ambiguous_kind" => "The message seems to ask for more than one thing.",
        "bad_name" => {
            "The name (or job title) could not be used: a formula, too long, or too long for an address."
        }
        "ambiguous_name" => {
            "A person named in the message matches several accounts; the audit event below lists them."
        }
        "unknown_name" => "A person named in the message matches no account of the organisation.",
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
        "ambiguous_account" => {
            "The message names several accounts, so it is not clear which one is meant."
        }
        "account_limit" => "The organisation already has the most accounts allowed.",
        "member_limit" => "The mailbox already has the most members allowed.",
        "owner_limit" => "The mailbox already has the most owners allowed.",
        "staff_rejected" => {
            "Rejected by a person on the helpdesk; their message is in the comments."
        }
        "requester_not_member"
        | "requester_unknown"
        | "requester_inactive"
        | "requester_not_owner" => "The person asking may not make this request for this mailbox.",
        _ => "See the audit events below for the details.",
    };
    Some(Explained {
        code: code.to_owned(),
        sentence: summary.to_owned(),
        as_sent: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(reason: &str, target: Option<&str>, mailbox: Option<&str>, fields: &str) -> RequestRow {
        RequestRow {
            id: 1,
            reference: "HD-000001".into(),
            message_id: 1,
            kind: crate::request::RequestKind::Leaver,
            outcome: crate::outcome::Outcome::Rejected,
            reason: Some(reason.into()),
            mailbox: mailbox.map(str::to_owned),
            requester: Some("jane.doe@nhs.example".into()),
            target: target.map(str::to_owned),
            fields: fields.into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn cfg() -> Config {
        Config::from_toml_with_env(
            "[database]\nurl = \"sqlite::memory:\"\n[helpdesk]\naddress = \"helpdesk@nhs.example\"\n",
            &[],
        )
        .unwrap()
    }

    #[test]
    fn reasons_are_rebuilt_from_the_request_row() {
        let e = explain(
            &row(
                "last_owner",
                Some("jane.doe@nhs.example"),
                Some("rosehill.care@nhs.example"),
                "{}",
            ),
            None,
            &cfg(),
        )
        .unwrap();
        assert!(e.as_sent);
        assert!(
            e.sentence
                .contains("jane.doe@nhs.example is the last owner of rosehill.care@nhs.example")
        );

        let e = explain(
            &row("not_shared_mailbox", None, None, "{}"),
            Some("x@nhs.example"),
            &cfg(),
        )
        .unwrap();
        assert!(
            e.sentence
                .starts_with("x@nhs.example is not a registered shared mailbox")
        );
    }

    #[test]
    fn codes_without_their_details_get_a_summary() {
        let e = explain(&row("ambiguous_account", None, None, "{}"), None, &cfg()).unwrap();
        assert!(!e.as_sent);
        assert!(e.sentence.contains("several accounts"));
        assert!(
            explain(
                &RequestRow {
                    reason: None,
                    ..row("x", None, None, "{}")
                },
                None,
                &cfg()
            )
            .is_none()
        );
    }
}
