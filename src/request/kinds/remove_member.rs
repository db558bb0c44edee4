//! Remove member (`remove_member`): an account taken off the sending shared mailbox.
//!
//! Everything said about this kind sits here, next to the tests of its wording, so that how it
//! is read can be checked and changed in one place (see `request::kinds`): the words it is asked
//! with, what it absorbs, whom its names are looked up among, and how a confirmation email
//! describes it. Its rule and plan are in `policy::decide`, its change in `desk::apply`.

use super::kind::Kind;
use super::kind::MAILBOX;
use super::kind::MAILBOX_WORDS;
use super::kind::Scope;
use super::kind::Strength::{self, Action};
use std::collections::BTreeMap;

/// Words between "take" and "off" that are not a person.
const NOT_A_PERSON: [&str; 14] = [
    "the",
    "a",
    "an",
    "day",
    "days",
    "time",
    "it",
    "this",
    "that",
    "week",
    "shift",
    "some",
    "afternoon",
    "morning",
];

pub(super) struct RemoveMember;

impl Kind for RemoveMember {
    fn name(&self) -> &'static str {
        "remove_member"
    }

    fn title(&self) -> &'static str {
        "Remove member"
    }

    fn targets_account(&self) -> bool {
        true
    }

    fn names_among(&self) -> Scope {
        Scope::Mailbox
    }

    fn block_wording(&self) -> Vec<String> {
        vec![
            r"\bremove (?:a |the )?members?\b".to_string(),
            format!(r"\bremov(?:e|ed|ing|al) (?:\w+ ){{0,5}}from {MAILBOX_WORDS}\b"),
            r"\b(?:remove|revoke|withdraw|take away|cancel) (?:\w+ ){0,4}access\b".to_string(),
            r"\bno longer (?:needs?|requires?) (?:\w+ ){0,3}access\b".to_string(),
        ]
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        vec![
            (Action, r"\bremove (?:a |the )?members?\b".into()),
            (Action, format!(r"\b(?:remov(?:e|ed|ing|al)|take|taking|took) (?:\w+ ){{0,5}}(?:from|off|out of) {MAILBOX}\b")),
            (Action, r"\btake [a-z]+ (?:[a-z]+ )?off\b".into()),
            (Action, r"\b(?:remove|revoke|withdraw|take away|cancel|stop|end) (?:\w+ ){0,4}access\b".into()),
            (Action, r"\bno longer (?:needs?|requires?|should have|has need of) (?:\w+ ){0,3}access\b".into()),
            (Action, r"\b(?:shouldn t|should not|doesn t|does not|don t|do not|mustn t|must not|won t|will not|wont) (?:need|needs|require|requires|have|get|be given|to have|still have) (?:\w+ ){0,2}access\b".into()),
            (Action, r"\baccess (?:\w+ ){0,3}(?:removed|revoked|taken away|taken off|stopped|withdrawn|ended|cancelled|canceled)\b".into()),
        ]
    }

    // "take the day off" is not "take Joe off".
    fn not_this_kind(&self, phrase: &str) -> bool {
        phrase.starts_with("take ")
            && phrase.ends_with(" off")
            && phrase.split(' ').any(|w| NOT_A_PERSON.contains(&w))
    }

    fn bare_verb(&self) -> Option<&'static str> {
        Some("remove")
    }

    /// Asked when the account removed is an owner of the mailbox (`policy::needs_confirmation`).
    fn confirmation(&self, target: &str, _fields: &BTreeMap<String, String>) -> String {
        format!("remove the owner {target} from the mailbox")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{block, sentence};
    use crate::request::RequestKind::*;
    use crate::request::model::KindMatch;

    #[test]
    fn by_subject() {
        for subject in ["Remove member", "Revoke access"] {
            assert_eq!(
                block(subject, ""),
                KindMatch::One(RemoveMember),
                "{subject}"
            );
        }
    }

    #[test]
    fn by_body_wording() {
        for body in [
            "Please remove Amy from the mailbox.",
            "Please revoke Amy's access.",
            "Li no longer needs access.",
        ] {
            assert_eq!(
                block("Request", body),
                KindMatch::One(RemoveMember),
                "{body}"
            );
            assert_eq!(block("", body), KindMatch::One(RemoveMember), "{body}");
        }
    }

    #[test]
    fn in_a_sentence() {
        for text in [
            "Sam shouldn't have access any more",
            "please take Joe off the inbox",
            "please take Joe off",
            "Kim's access should be removed",
            "remove Joe from the Willow Lodge mailbox",
        ] {
            assert_eq!(sentence(text), vec![RemoveMember], "{text}");
        }
    }
}
