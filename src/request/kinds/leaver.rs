//! Leaver (`leaver`): someone who has left: their account disabled and their memberships removed.
//!
//! Everything said about this kind sits here, next to the tests of its wording, so that how it
//! is read can be checked and changed in one place (see `request::kinds`): the words it is asked
//! with, what it absorbs, whom its names are looked up among, and how a confirmation email
//! describes it. Its rule and plan are in `policy::decide`, its change in `desk::apply`.

use super::kind::Scope;
use super::kind::Strength::{self, Action};
use super::kind::{Kind, RequestKind, field_or};
use std::collections::BTreeMap;

pub(super) struct Leaver;

impl Kind for Leaver {
    fn name(&self) -> &'static str {
        "leaver"
    }

    fn title(&self) -> &'static str {
        "Leaver"
    }

    fn targets_account(&self) -> bool {
        true
    }

    fn names_among(&self) -> Scope {
        Scope::Organisation
    }

    fn block_wording(&self) -> Vec<String> {
        vec![
            r"\bleavers?\b".to_string(),
            r"\bleaving\b".to_string(),
            r"\b(?:has|have|had) left\b".to_string(),
            r"\bleft (?:the |our )?(?:organisation|organization|company|practice|surgery|trust|team|service|business|home)\b".to_string(),
            r"\bno longer (?:works?|working|employed|with us)\b".to_string(),
            r"\baccount (?:closure|closed|deletion)\b".to_string(),
            r"\b(?:close|delete|deactivate|disable) (?:\w+ ){0,2}accounts?\b".to_string(),
            r"\bdeactivat(?:e|ed|es|ing|ion)\b".to_string(),
        ]
    }

    /// A leaver loses their memberships ("Amy has left, please remove her from the mailbox").
    fn absorbs_in_block(&self) -> &'static [RequestKind] {
        &[RequestKind::RemoveMember]
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        vec![
            (Action, r"\bleavers?\b".into()),
            (Action, r"\bleaving\b".into()),
            (Action, r"\b(?:has|have|had) left\b".into()),
            (Action, r"\bleft (?:the |our |this )?(?:organisation|organization|company|practice|surgery|trust|team|service|business|home|job|employment|post|role)\b".into()),
            (Action, r"\bno longer (?:works?|working|employed|with us|employed by us|part of the team)\b".into()),
            (Action, r"\b(?:doesn t|does not) work (?:here|for us|with us) any ?(?:more|longer)\b".into()),
            (Action, r"\baccount (?:closure|closed|deletion)\b".into()),
            (Action, r"\b(?:close|delete|deactivate|disable|shut down|terminate) (?:\w+ ){0,2}accounts?\b".into()),
            (Action, r"\bdeactivat(?:e|ed|es|ing|ion)\b".into()),
            (Action, r"\bhanded in (?:\w+ ){0,2}notice\b".into()),
            (Action, r"\b(?:last|final) (?:working )?day (?:is|was|will be|with us|here)\b".into()),
            (Action, r"\b(?:finishes|finishing|finished) (?:with us|her employment|his employment|their employment|employment|working here)\b".into()),
            (Action, r"\bresign(?:ed|s|ing|ation)\b".into()),
            (Action, r"\bretir(?:ed|es|ing|ement)\b".into()),
            (Action, r"\b(?:dismissed|contract (?:has )?ended|employment (?:has )?ended)\b".into()),
        ]
    }

    /// A leaver loses their memberships.
    fn absorbs_for_person(&self) -> &'static [RequestKind] {
        &[RequestKind::RemoveMember]
    }

    /// Asked when a replacement becomes owner in the leaver's place (`policy::needs_confirmation`).
    fn confirmation(&self, target: &str, fields: &BTreeMap<String, String>) -> String {
        format!(
            "{target} leaves; {} becomes owner in their place",
            field_or(fields, "replacement", "the replacement")
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
            "Leaver",
            "Leaver: Amy Jones",
            "Amy has left",
            "Staff leaving",
            "Account closure",
            "AW: WG: Leaver",
        ] {
            assert_eq!(block(subject, ""), KindMatch::One(Leaver), "{subject}");
        }
    }

    #[test]
    fn by_body_wording() {
        for body in [
            "Amy has left the organisation.",
            "Amy left the practice on Friday.",
            "Amy no longer works here.",
            "Please close Amy's account.",
        ] {
            assert_eq!(block("Request", body), KindMatch::One(Leaver), "{body}");
            assert_eq!(block("", body), KindMatch::One(Leaver), "{body}");
        }
    }

    #[test]
    fn in_a_sentence() {
        for text in [
            "Amy has handed in her notice and finishes today",
            "Amy resigned last month",
            "Her last day is Friday",
        ] {
            assert_eq!(sentence(text), vec![Leaver], "{text}");
        }
    }

    /// A leaver is removed from the mailbox as part of leaving.
    #[test]
    fn absorbs_remove_member() {
        assert_eq!(
            block("", "Amy has left; please remove her from the mailbox."),
            KindMatch::One(Leaver)
        );
        assert_eq!(block("Leaver - remove member", ""), KindMatch::One(Leaver));
    }
}
