//! New account (`new_account`): an account for someone who joins, created in the sending
//! mailbox's organisation and added to the mailbox.
//!
//! Everything said about this kind sits here, next to the tests of its wording, so that how it
//! is read can be checked and changed in one place (see `request::kinds`): the words it is asked
//! with, what it absorbs, whom its names are looked up among, and how a confirmation email
//! describes it. Its rule and plan are in `policy::decide`, its change in `desk::apply`.

use super::kind::Scope;
use super::kind::Strength::{self, Action};
use super::kind::{Kind, RequestKind, field_or};
use std::collections::BTreeMap;

/// Job words after "new": a new carer is a new starter.
const JOBS: &str = r"(?:senior |night |day |bank |agency |trainee |student |relief |weekend |part time |full time )?(?:carers?|care assistants?|care workers?|support workers?|healthcare assistants?|hcas?|nurses?|receptionists?|administrators?|admins?|managers?|deputy managers?|cooks?|chefs?|housekeepers?|domestics?|activities coordinators?|team leaders?|apprentices?|volunteers?|recruits?|hires?|gps?|doctors?|pharmacists?|physios?|secretar(?:y|ies))";

pub(super) struct NewAccount;

impl Kind for NewAccount {
    fn name(&self) -> &'static str {
        "new_account"
    }

    fn title(&self) -> &'static str {
        "New account"
    }

    fn targets_account(&self) -> bool {
        false
    }

    fn names_among(&self) -> Scope {
        Scope::Organisation
    }

    fn block_wording(&self) -> Vec<String> {
        vec![
            r"\bnew (?:staff |nhs |email |e mail |user )?(?:accounts?|starters?|users?|joiners?|employees?|colleagues?|members? of staff|staff members?)\b".to_string(),
            r"\b(?:create|creating|set up|setup|open|make) (?:a |an )?(?:new )?(?:user |staff |email |e mail )?accounts?\b".to_string(),
            r"\baccount (?:creation|request|set up|setup) for (?:a |our )?new\b".to_string(),
        ]
    }

    /// A new account is created in the sender's mailbox ("new starter, please create an
    /// account and add her to the mailbox").
    fn absorbs_in_block(&self) -> &'static [RequestKind] {
        &[RequestKind::AddMember]
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        vec![
            (Action, r"\bnew (?:staff |nhs |email |e mail |user |nhsmail )?(?:accounts?|starters?|users?|joiners?|employees?|colleagues?|members? of (?:staff|the team)|staff members?|team members?)\b".into()),
            (Action, r"\b(?:create|creating|set up|setup|open|make|setting up|sort out|issue) (?:a |an )?(?:new )?(?:user |staff |email |e mail |nhsmail |nhs mail |nhs |login |log in )*(?:accounts?|address|login|log in|logon)\b".into()),
            (Action, r"\baccount (?:creation|request|set up|setup) for (?:a |our )?new\b".into()),
            (Action, format!(r"\b(?:a |an |our |the |two |another )?new {JOBS}\b")),
            (Action, r"\b(?:have|get|need|needs|needed|require|requires|given|be given|issued|want|wants) (?:her |him |them |she |he |they )?(?:an? |her own |his own |their own |some )?(?:new )?(?:nhsmail |nhs mail |nhs |email |e mail |user |staff |system |computer |login |log in )*(?:accounts?|address|email|login|log in|logon|nhsmail)\b".into()),
            (Action, r"\b(?:joining|joined|joins|starting|started|starts|start) (?:\w+ ){0,3}(?:needs?|will need|requires?) (?:an? )?(?:\w+ )?(?:accounts?|address|login)\b".into()),
        ]
    }

    /// Her membership and her role ("make her an owner") go with the new account.
    fn absorbs_for_person(&self) -> &'static [RequestKind] {
        &[RequestKind::AddMember, RequestKind::ChangeRole]
    }

    /// Asked when the new account is to be an owner of the mailbox (`policy::needs_confirmation`).
    fn confirmation(&self, _target: &str, fields: &BTreeMap<String, String>) -> String {
        format!(
            "create an account for {} as an owner",
            field_or(fields, "name", "a new person")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{block, sentence};
    use crate::request::RequestKind::*;
    use crate::request::model::KindMatch;

    #[test]
    fn by_subject() {
        for subject in [
            "New account",
            "New starter: Priya Shah",
            "new user",
            "Create account please",
            "Account request for new staff",
        ] {
            assert_eq!(block(subject, ""), KindMatch::One(NewAccount), "{subject}");
        }
    }

    #[test]
    fn by_body_wording() {
        for body in [
            "We have a new starter on Monday, Priya.",
            "Could you set up an account for our new colleague?",
        ] {
            assert_eq!(block("Request", body), KindMatch::One(NewAccount), "{body}");
            assert_eq!(block("", body), KindMatch::One(NewAccount), "{body}");
        }
    }

    #[test]
    fn in_a_sentence() {
        for text in [
            "Hannah needs an NHSmail address",
            "a new carer, Hannah Moss, starts next week",
            "can she have an account",
            "please set up an email for our new nurse",
        ] {
            assert_eq!(sentence(text), vec![NewAccount], "{text}");
        }
    }

    /// A new account is created in the sending mailbox.
    #[test]
    fn absorbs_add_member() {
        assert_eq!(
            block(
                "",
                "New starter: please create an account and add her to the mailbox."
            ),
            KindMatch::One(NewAccount)
        );
    }
}
