//! Add member (`add_member`): an existing account added to the sending shared mailbox.
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

pub(super) struct AddMember;

impl Kind for AddMember {
    fn name(&self) -> &'static str {
        "add_member"
    }

    fn title(&self) -> &'static str {
        "Add member"
    }

    fn targets_account(&self) -> bool {
        true
    }

    fn names_among(&self) -> Scope {
        Scope::Organisation
    }

    fn block_wording(&self) -> Vec<String> {
        vec![
            r"\badd (?:a |new )?(?:members?|users?)\b".to_string(),
            format!(r"\badd(?:ed|ing)? (?:\w+ ){{0,5}}(?:to|into|onto|on) {MAILBOX_WORDS}\b"),
            r"\badd (?:\w+ ){0,5}as (?:a |an )?(?:members?|owners?|users?)\b".to_string(),
            r"\b(?:give|grant|provide) (?:\w+ ){0,4}access\b".to_string(),
        ]
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        vec![
            (Action, r"\badd (?:a |new )?(?:members?|users?)\b".into()),
            (Action, format!(r"\b(?:add|added|adding|put|putting) (?:\w+ ){{0,5}}(?:to|into|onto|on|in) {MAILBOX}\b")),
            (Action, r"\badd (?:\w+ ){0,5}as (?:a |an )?(?:members?|owners?|users?|co owners?|joint owners?)\b".into()),
            (Action, r"\b(?:give|grant|provide|set up|sort out|sort) (?:\w+ ){0,4}access\b".into()),
            (Action, r"\b(?:be |been |being )?given access\b".into()),
            (Action, format!(r"\b(?:have|get|need|needs|needed|require|requires|want|wants) (?:\w+ ){{0,2}}access (?:to|into|for|on) {MAILBOX}\b")),
            (Action, format!(r"\blet (?:\w+ ){{0,4}}(?:in to|into|in|see|use|access|read) {MAILBOX}\b")),
            (Action, format!(r"\b(?:able to|so (?:she|he|they) can|so that (?:she|he|they) can) (?:see|use|access|read|get into|view|open|send from)(?: and (?:see|use|access|read|send from|reply from))? {MAILBOX}\b")),
            (Action, r"\badd (?:him|her|them)\b".into()),
        ]
    }

    // "let Joe back into the inbox" is an unlock, not a new membership.
    fn not_this_kind(&self, phrase: &str) -> bool {
        phrase.contains(" back ")
    }

    fn carries_role(&self) -> bool {
        true
    }

    fn bare_verb(&self) -> Option<&'static str> {
        Some("add")
    }

    /// Asked when the account is to be added as an owner (`policy::needs_confirmation`).
    fn confirmation(&self, target: &str, _fields: &BTreeMap<String, String>) -> String {
        format!("add {target} as an owner")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{block, sentence};
    use crate::request::RequestKind::*;
    use crate::request::model::KindMatch;

    #[test]
    fn by_subject() {
        for subject in ["Add member", "Grant access to the mailbox"] {
            assert_eq!(block(subject, ""), KindMatch::One(AddMember), "{subject}");
        }
    }

    #[test]
    fn by_body_wording() {
        for body in [
            "Please add sam.green@nhs.example to the shared mailbox.",
            "Please give Sam access to our inbox.",
            "Please add Sam as a member.",
        ] {
            assert_eq!(block("Request", body), KindMatch::One(AddMember), "{body}");
            assert_eq!(block("", body), KindMatch::One(AddMember), "{body}");
        }
    }

    #[test]
    fn in_a_sentence() {
        for text in [
            "could you let Sam into the shared inbox",
            "could Fatima Ali be given access",
            "please put Kim on the team mailbox",
            "so she can see the inbox",
            "could Ravi Gupta be added to the Rosehill shared mailbox",
            "please add Sam to the practice inbox",
        ] {
            assert_eq!(sentence(text), vec![AddMember], "{text}");
        }
    }
}
