//! The closed set of request kinds. The CLI, the daemon, the store and the web page all speak
//! this one enum; its `snake_case` names are part of the command-line contract (`process` JSON).
//!
//! Everything said about one kind sits in that kind's own file, next to its tests: its name and
//! title, how it is worded in a subject or a body ([`Kind::block_wording`]) and in a sentence
//! ([`Kind::wording`]), what it absorbs, whom its names are looked up among, and the sentence
//! a confirmation email describes it with. The grammar (`block_kind`, `wording`, `asks`,
//! `understand`) only holds the machinery that reads those, so reading how people ask for a
//! kind means reading one file. What the rules do with a kind stays in the two exhaustive
//! matches it needs: `policy::decide` (its rule and plan) and `desk::apply` (its change).
//!
//! # How to add a kind
//!
//! Five places, tried with a dummy kind (issue 14):
//!
//! 1. Its file here (`new_kind.rs`): a unit struct implementing [`Kind`], with its wording
//!    and its tests; and `mod new_kind;` below.
//! 2. Its variant in [`RequestKind`] and in [`RequestKind::ALL`], in the place the docs list it
//!    (the order of `ALL` is the order ambiguous kinds are reported in). Nothing forces this
//!    one: a kind left out of `ALL` compiles, but is never read from an email nor parsed.
//! 3. Its arm in [`RequestKind::def`]: the compiler asks for it.
//! 4. Its arm in `policy::decide` (who may ask, what is checked, the plan): the compiler asks.
//! 5. Its `Plan` variant, whose arms the compiler then asks for in `policy::needs_confirmation`
//!    (when it hands over control) and `desk::apply::apply` (the change).
//!
//! Nothing else: the wording, absorption, name scope, title and confirmation sentence are read
//! through [`RequestKind::def`] everywhere, and no match over `RequestKind` has a `_ =>` arm that
//! would hide the kind. Then add fixtures and corpus messages for it, and its line in
//! `docs/understanding.md`.

mod add_member;
mod change_role;
mod leaver;
mod new_account;
mod password_reset;
mod remove_member;
mod unknown;
mod unlock;

mod kind;

// What a kind file speaks in; named here too, where callers look for the kinds.
pub use kind::{Kind, RequestKind, Role, Scope, Strength};
use std::fmt;
use std::str::FromStr;

impl RequestKind {
    /// Every kind a site can ask for (not `Unknown`), in the order the docs list them.
    pub const ALL: [RequestKind; 7] = [
        RequestKind::NewAccount,
        RequestKind::PasswordReset,
        RequestKind::Unlock,
        RequestKind::AddMember,
        RequestKind::RemoveMember,
        RequestKind::ChangeRole,
        RequestKind::Leaver,
    ];

    /// Everything said about the kind (see [`Kind`]).
    pub fn def(self) -> &'static dyn Kind {
        match self {
            RequestKind::NewAccount => &new_account::NewAccount,
            RequestKind::PasswordReset => &password_reset::PasswordReset,
            RequestKind::Unlock => &unlock::Unlock,
            RequestKind::AddMember => &add_member::AddMember,
            RequestKind::RemoveMember => &remove_member::RemoveMember,
            RequestKind::ChangeRole => &change_role::ChangeRole,
            RequestKind::Leaver => &leaver::Leaver,
            RequestKind::Unknown => &unknown::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.def().name()
    }

    /// Words for a person: used in reply subjects and bodies.
    pub fn title(self) -> &'static str {
        self.def().title()
    }

    /// Kinds that act on one existing account named by an `Account:` field.
    pub fn targets_account(self) -> bool {
        self.def().targets_account()
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        RequestKind::ALL
            .into_iter()
            .chain([RequestKind::Unknown])
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown request kind `{s}`"))
    }
}

/// What the kinds' own tests share: the two readings their wording is tested through.
#[cfg(test)]
mod testing {
    use super::RequestKind;
    use crate::request::model::KindMatch;

    /// The kind of a whole subject and body (`block_kind`).
    pub(super) fn block(subject: &str, body: &str) -> KindMatch {
        crate::request::block_kind::detect_kind(subject, body)
    }

    /// The kinds the first sentence of a text asks for (`wording`), each once in a row.
    pub(super) fn sentence(text: &str) -> Vec<RequestKind> {
        let norm = crate::request::tokens::sentences(text)
            .first()
            .map(|s| s.norm.clone())
            .unwrap_or_default();
        let mut k: Vec<RequestKind> = crate::request::wording::phrases(&norm)
            .iter()
            .map(|p| p.kind)
            .collect();
        k.dedup();
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in RequestKind::ALL.into_iter().chain([RequestKind::Unknown]) {
            assert_eq!(k.as_str().parse::<RequestKind>(), Ok(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(" Owner ".parse::<Role>(), Ok(Role::Owner));
        assert!("boss".parse::<Role>().is_err());
    }
}
