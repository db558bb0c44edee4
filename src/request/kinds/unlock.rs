//! Unlock account (`unlock`): an account locked out, or disabled, made usable again.
//!
//! Everything said about this kind sits here, next to the tests of its wording, so that how it
//! is read can be checked and changed in one place (see `request::kinds`): the words it is asked
//! with, what it absorbs, whom its names are looked up among, and how a confirmation email
//! describes it. Its rule and plan are in `policy::decide`, its change in `desk::apply`.

use super::kind::Kind;
use super::kind::Scope;
use super::kind::Strength::{self, Action, Symptom};
use std::collections::BTreeMap;

pub(super) struct Unlock;

impl Kind for Unlock {
    fn name(&self) -> &'static str {
        "unlock"
    }

    fn title(&self) -> &'static str {
        "Unlock account"
    }

    fn targets_account(&self) -> bool {
        true
    }

    fn names_among(&self) -> Scope {
        Scope::Organisation
    }

    fn block_wording(&self) -> Vec<String> {
        vec![
            r"\bunlock(?:ed|ing|s)?\b".to_string(),
            r"\blocked out\b".to_string(),
            r"\baccount (?:is |has been |was |got |gets )?locked\b".to_string(),
            r"\blocked (?:account|user)\b".to_string(),
            r"\brestore (?:\w+ ){0,2}accounts?\b".to_string(),
            r"\bre ?activat(?:e|ed|es|ing|ion)\b".to_string(),
            r"\bre ?enabl(?:e|ed|es|ing)\b".to_string(),
            r"\benable (?:\w+ ){0,2}accounts?\b".to_string(),
        ]
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        vec![
            (Action, r"\bunlock(?:ed|ing|s)?\b".into()),
            (Action, r"\brestore (?:\w+ ){0,2}accounts?\b".into()),
            (Action, r"\bre ?activat(?:e|ed|es|ing|ion)\b".into()),
            (Action, r"\bre ?enabl(?:e|ed|es|ing)\b".into()),
            (Action, r"\benable (?:\w+ ){0,2}accounts?\b".into()),
            (Action, r"\blet (?:\w+ ){0,3}back (?:in|into|on)\b".into()),
            (Action, r"\b(?:turn|turned|switch|switched|put|switching|turning) (?:\w+ )?back on\b".into()),
            (Action, r"\breinstat(?:e|ed|es|ing)\b".into()),
            (Symptom, r"\blocked out\b".into()),
            (Symptom, r"\baccount (?:is |has been |was |got |gets |keeps getting |has got )?(?:locked|blocked)\b".into()),
            (Symptom, r"\blocked (?:account|user)\b".into()),
            (Symptom, r"\b(?:keeps|keep|kept) (?:getting |being )?locked\b".into()),
            (Symptom, r"\b(?:is|was|been|got|gets|getting) locked\b".into()),
        ]
    }

    /// Asked when the account was disabled (not merely locked) (`policy::needs_confirmation`).
    fn confirmation(&self, target: &str, _fields: &BTreeMap<String, String>) -> String {
        format!("restore the disabled account {target}")
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
            "Unlock",
            "Tom is locked out",
            "Restore account",
            "Please re-enable Kim",
            "Reactivate user",
        ] {
            assert_eq!(block(subject, ""), KindMatch::One(Unlock), "{subject}");
        }
    }

    #[test]
    fn by_body_wording() {
        for body in [
            "Kim is locked out of her account.",
            "Her account is locked, could you unlock it?",
            "Please reactivate Kim's account.",
            "Can you enable the account again?",
        ] {
            assert_eq!(block("Request", body), KindMatch::One(Unlock), "{body}");
            assert_eq!(block("", body), KindMatch::One(Unlock), "{body}");
        }
    }

    #[test]
    fn in_a_sentence() {
        for text in [
            "Joe keeps getting locked out",
            "can you let Joe back in",
            "her account has been blocked",
            "can it be turned back on please",
        ] {
            assert_eq!(sentence(text), vec![Unlock], "{text}");
        }
    }
}
