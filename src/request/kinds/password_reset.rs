//! Password reset (`password_reset`): a new temporary password for an existing account.
//!
//! Everything said about this kind sits here, next to the tests of its wording, so that how it
//! is read can be checked and changed in one place (see `request::kinds`): the words it is asked
//! with, what it absorbs, whom its names are looked up among, and how a confirmation email
//! describes it. Its rule and plan are in `policy::decide`, its change in `desk::apply`.

use super::kind::Scope;
use super::kind::Strength::{self, Action, Symptom};
use super::kind::{Kind, RequestKind};
use std::collections::BTreeMap;

pub(super) struct PasswordReset;

impl Kind for PasswordReset {
    fn name(&self) -> &'static str {
        "password_reset"
    }

    fn title(&self) -> &'static str {
        "Password reset"
    }

    fn targets_account(&self) -> bool {
        true
    }

    fn names_among(&self) -> Scope {
        Scope::Organisation
    }

    fn block_wording(&self) -> Vec<String> {
        vec![
            r"\bpasswords? (?:reset|resets|change|expired|has expired|forgotten)\b".to_string(),
            r"\bresets? (?:\w+ ){0,4}passwords?\b".to_string(),
            r"\bforgot(?:ten)? (?:\w+ ){0,2}passwords?\b".to_string(),
            r"\bchange (?:\w+ ){0,3}passwords?\b".to_string(),
        ]
    }

    /// "Reset the password, she is locked out" asks for a reset, and the reset is the
    /// larger change. (For one person in a sentence a reset does not absorb an explicit unlock:
    /// "unlock Priya and reset her password" asks both.)
    fn absorbs_in_block(&self) -> &'static [RequestKind] {
        &[RequestKind::Unlock]
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        vec![
            (Action, r"\bpasswords? (?:reset|resets|resetting|re setting|change|changed please|changing)\b".into()),
            (Action, r"\bresets? (?:\w+ ){0,4}passwords?\b".into()),
            (Action, r"\bchange (?:\w+ ){0,3}passwords?\b".into()),
            (Action, r"\b(?:a |some |two |three )?new passwords? (?:for|please|needed|required|pls)\b".into()),
            (Action, r"\b(?:need|needs|needed|require|requires|want|wants|get|have) (?:a )?new passwords?\b".into()),
            (Action, r"\b(?:send|issue|give|set|generate|provide) (?:\w+ ){0,3}(?:a )?(?:new |temporary |temp |fresh )passwords?\b".into()),
            (Action, r"\breset (?:it|this|that|them|him|her|me|(?:his|her|their|my|the) (?:account|login|log in|logon|details))\b".into()),
            (Action, r"\bsort (?:out )?(?:\w+ ){0,2}passwords?\b".into()),
            (Action, r"\bpasswords? (?:needs?|need to be|to be) (?:reset|changed|resetting|changing)\b".into()),
            (Symptom, r"\bforgot(?:ten)? (?:\w+ ){0,2}passwords?\b".into()),
            (Symptom, r"\bpasswords? (?:is |has |was )?(?:forgotten|expired|has expired)\b".into()),
            (Symptom, r"\b(?:can t|cannot|can not|doesn t|does not|don t|couldn t) (?:remember|recall) (?:\w+ ){0,2}passwords?\b".into()),
            (Symptom, r"\bpasswords? (?:is |was |keeps being |keeps coming up |keeps coming back )?(?:wrong|incorrect|invalid|not working|not recognised|not recognized|rejected)\b".into()),
            (Symptom, r"\bpasswords? (?:doesn t|does not|isn t|is not|won t|will not|wont) (?:work|working|accepted|being accepted|recognised|recognized)\b".into()),
            (Symptom, r"\b(?:told|says|saying|said|tells her|tells him|tells them) (?:that )?(?:\w+ ){0,2}passwords? (?:is|was|are) (?:wrong|incorrect|invalid)\b".into()),
            (Symptom, r"\b(?:wrong|incorrect|invalid) passwords?\b".into()),
        ]
    }

    /// Never asked: a reset hands over no control (`policy::needs_confirmation`).
    fn confirmation(&self, _target: &str, _fields: &BTreeMap<String, String>) -> String {
        self.title().to_owned()
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
            "Password reset",
            "Reset password for Tom",
            "Forgotten password",
            "RE: FW: password-reset",
            "Re: [HD-000001] Done: Password reset",
        ] {
            assert_eq!(
                block(subject, ""),
                KindMatch::One(PasswordReset),
                "{subject}"
            );
        }
    }

    #[test]
    fn by_body_wording() {
        for body in [
            "Hi, please reset the password for tom.smith@nhs.example. Thanks, Jane",
            "Tom has forgotten his password.",
            "Please change Amy's password.",
        ] {
            assert_eq!(
                block("Request", body),
                KindMatch::One(PasswordReset),
                "{body}"
            );
            assert_eq!(block("", body), KindMatch::One(PasswordReset), "{body}");
        }
    }

    #[test]
    fn in_a_sentence() {
        for text in [
            "Joe keeps getting told the password is wrong",
            "Ravi can't remember his password, could you sort it",
            "new passwords for Ravi and Fatima please",
            "the password isn't being accepted",
        ] {
            assert_eq!(sentence(text), vec![PasswordReset], "{text}");
        }
    }

    /// A reset also answers "locked out".
    #[test]
    fn absorbs_unlock() {
        assert_eq!(
            block("Password reset - locked out", ""),
            KindMatch::One(PasswordReset)
        );
        assert_eq!(
            block("", "Tom is locked out, please reset his password."),
            KindMatch::One(PasswordReset)
        );
    }
}
