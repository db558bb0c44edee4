//! Change role (`change_role`): a member of the mailbox made an owner, or an owner a member.
//!
//! Everything said about this kind sits here, next to the tests of its wording, so that how it
//! is read can be checked and changed in one place (see `request::kinds`): the words it is asked
//! with, what it absorbs, whom its names are looked up among, and how a confirmation email
//! describes it. Its rule and plan are in `policy::decide`, its change in `desk::apply`.

use super::kind::MAILBOX;
use super::kind::Scope;
use super::kind::Strength::{self, Action};
use super::kind::{Kind, field_or};
use std::collections::BTreeMap;

pub(super) struct ChangeRole;

impl Kind for ChangeRole {
    fn name(&self) -> &'static str {
        "change_role"
    }

    fn title(&self) -> &'static str {
        "Change role"
    }

    fn targets_account(&self) -> bool {
        true
    }

    fn names_among(&self) -> Scope {
        Scope::Mailbox
    }

    fn block_wording(&self) -> Vec<String> {
        vec![
            r"\bchange (?:of )?roles?\b".to_string(),
            r"\broles? change\b".to_string(),
            r"\bchange (?:\w+ ){0,4}roles?\b".to_string(),
            r"\bmake (?:\w+ ){0,5}(?:an |a |the |joint |co )?(?:owners?|members?)\b".to_string(),
            r"\b(?:promot|demot)(?:e|ed|es|ing|ion)\b".to_string(),
            r"\b(?:change|set|switch|move) (?:\w+ ){0,5}to (?:an |a )?(?:owners?|members?)\b"
                .to_string(),
            r"\bownership\b".to_string(),
        ]
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        vec![
            (Action, r"\bchange (?:of )?roles?\b".into()),
            (Action, r"\broles? change\b".into()),
            (Action, r"\bchange (?:\w+ ){0,4}roles?\b".into()),
            (Action, r"\bmake (?:\w+ ){0,5}(?:an |a |the |joint |co |another |second )?(?:owners?|members?|co owners?)\b".into()),
            (Action, r"\b(?:promot|demot)(?:e|ed|es|ing|ion)\b".into()),
            (Action, r"\b(?:change|set|switch|move) (?:\w+ ){0,5}to (?:an |a )?(?:owners?|members?)\b".into()),
            (Action, r"\bownership\b".into()),
            (Action, r"\b(?:be |been )?made (?:an |a |the |joint |co |another )?(?:owners?|co owners?)\b".into()),
            (Action, format!(r"\b(?:look after|looks after|manage|manages|run|runs|administer|be in charge of) {MAILBOX} (?:as well as|with|alongside|too|as well|jointly)\b")),
            (Action, r"\bowner (?:rights|access|permissions|privileges|role)\b".into()),
            (Action, r"\b(?:take|takes|taking) over (?:as )?(?:the )?(?:mailbox )?owner\b".into()),
        ]
    }

    fn carries_role(&self) -> bool {
        true
    }

    /// Always asked: a role change hands over (or takes back) control of the mailbox
    /// (`policy::needs_confirmation`).
    fn confirmation(&self, target: &str, fields: &BTreeMap<String, String>) -> String {
        format!(
            "change the role of {target} to {}",
            field_or(fields, "role", "the role asked for")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{block, sentence};
    use crate::request::RequestKind::*;
    use crate::request::Role;
    use crate::request::model::KindMatch;
    use crate::request::wording::phrases;

    #[test]
    fn by_subject() {
        for subject in [
            "Change role",
            "Make Tom an owner",
            "Promote Tom",
            "Demote Jane",
        ] {
            assert_eq!(block(subject, ""), KindMatch::One(ChangeRole), "{subject}");
        }
    }

    #[test]
    fn by_body_wording() {
        for body in [
            "Please make Tom an owner of the mailbox.",
            "Please change Jane to member.",
            "Please change my role.",
        ] {
            assert_eq!(block("Request", body), KindMatch::One(ChangeRole), "{body}");
            assert_eq!(block("", body), KindMatch::One(ChangeRole), "{body}");
        }
    }

    #[test]
    fn in_a_sentence() {
        for text in [
            "can Joe look after the mailbox as well as me",
            "Tom needs owner rights",
            "please demote Jane",
        ] {
            assert_eq!(sentence(text), vec![ChangeRole], "{text}");
        }
    }

    /// "make sure … a member" is not a role change.
    #[test]
    fn make_sure_is_not_make() {
        assert_eq!(
            block(
                "",
                "Please add Sam to the mailbox and make sure she is a member."
            ),
            KindMatch::One(AddMember)
        );
    }

    #[test]
    fn roles_implied() {
        let p = phrases("please make tom an owner");
        assert_eq!(p[0].role, Some(Role::Owner));
        let p = phrases("please demote jane");
        assert_eq!(p[0].role, Some(Role::Member));
    }
}
