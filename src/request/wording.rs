//! How people ask for each kind (each kind's phrases are in its own file, `request::kinds`),
//! matched against a sentence's normalised copy (see
//! [`crate::request::tokens`]): lower case, one space between words, `can't` as `can t`, every
//! address as one placeholder word.
//!
//! Each phrase is an *action* ("please reset", "unlock", "remove … from the mailbox") or a
//! *symptom* ("keeps getting locked out", "can't remember his password", "keeps getting told the
//! password is wrong"). A symptom alone is read as the ask it implies; when the same person also
//! has an explicit action, the action wins ("Joe keeps getting locked out, please reset it" is
//! a password reset).

use crate::request::kinds::{RequestKind, Role, Strength};
use regex::Regex;
use std::sync::{LazyLock, OnceLock};

/// A phrase found: its kind, strength, byte range in the normalised sentence, and the role it
/// implies (a change of role to owner, "add … as an owner").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phrase {
    pub kind: RequestKind,
    pub strength: Strength,
    pub start: usize,
    pub end: usize,
    pub role: Option<Role>,
}

/// Every kind's phrases ([`Kind::wording`](crate::request::kinds::Kind::wording)), kind by kind
/// in [`RequestKind::ALL`] order.
fn wording() -> Vec<(RequestKind, Strength, String)> {
    RequestKind::ALL
        .into_iter()
        .flat_map(|kind| {
            kind.def()
                .wording()
                .into_iter()
                .map(move |(strength, pattern)| (kind, strength, pattern))
        })
        .collect()
}

/// The normalised text is lower-case words between single spaces: ASCII word boundaries and
/// "a word" as "no space" say the same there, and keep the regex engine on its fast DFA path
/// (Unicode `\b` and `\w` make it fall back to a slow one on the corpus's accented text).
fn fast(pattern: &str) -> String {
    any_word(&pattern.replace(r"\b", r"(?-u:\b)"))
}

/// In text that is words between single spaces, "a word" (`\w+`) is "no space" (`[^ ]+`).
/// Unicode's `\w` is hundreds of ranges, copied once per repetition (`(?:\w+ ){0,5}`), which
/// makes a regex slow to build; `[^ ]` is a handful of states. (The one difference: a word
/// holding a digit `\w` does not count, such as `²` or `½`, counts as a word.)
pub(crate) fn any_word(pattern: &str) -> String {
    pattern.replace(r"\w", "[^ ]")
}

/// Each phrase's own regex, built the first time [`ANY`] finds the phrase in a sentence: most
/// phrases are never met by a given desk's mail, and building every one at the first message
/// was about a fifth of the daemon's start (the set [`ANY`] still reads them all).
struct Wording {
    kind: RequestKind,
    strength: Strength,
    pattern: String,
    regex: OnceLock<Regex>,
}

impl Wording {
    fn regex(&self) -> &Regex {
        self.regex
            .get_or_init(|| Regex::new(&self.pattern).expect("static regex"))
    }
}

static WORDING: LazyLock<Vec<Wording>> = LazyLock::new(|| {
    wording()
        .into_iter()
        .map(|(kind, strength, pattern)| Wording {
            kind,
            strength,
            pattern: fast(&pattern),
            regex: OnceLock::new(),
        })
        .collect()
});

/// All the phrases in one set: one scan of a sentence says which phrases occur in it, and only
/// those are searched for their positions.
static ANY: LazyLock<regex::RegexSet> = LazyLock::new(|| {
    regex::RegexSet::new(WORDING.iter().map(|w| &w.pattern)).expect("static regex")
});

/// The role a phrase implies.
fn role_in(text: &str) -> Option<Role> {
    if text.contains("owner")
        || text.contains("promot")
        || text.contains("look after")
        || text.contains("manage")
        || text.contains("in charge")
    {
        Some(Role::Owner)
    } else if text.contains("member") || text.contains("demot") {
        Some(Role::Member)
    } else {
        None
    }
}

/// Every phrase in a normalised sentence, in order of where it starts. Phrases of one kind
/// that overlap are one phrase.
pub fn phrases(norm: &str) -> Vec<Phrase> {
    let present = ANY.matches(norm);
    if !present.matched_any() {
        return Vec::new();
    }
    let mut out: Vec<Phrase> = Vec::new();
    for w in present.iter().filter_map(|i| WORDING.get(i)) {
        let (kind, strength) = (w.kind, w.strength);
        let def = kind.def();
        for m in w.regex().find_iter(norm) {
            let text = m.as_str();
            if def.not_this_kind(text) {
                continue;
            }
            let role = if def.carries_role() {
                role_in(text)
            } else {
                None
            };
            let phrase = Phrase {
                kind,
                strength,
                start: m.start(),
                end: m.end(),
                role,
            };
            if let Some(same) = out
                .iter_mut()
                .find(|p| p.kind == kind && p.start < m.end() && m.start() < p.end)
            {
                // Keep the earliest start, the widest end, the stronger reading.
                same.start = same.start.min(phrase.start);
                same.end = same.end.max(phrase.end);
                if phrase.strength == Strength::Action {
                    same.strength = Strength::Action;
                }
                same.role = same.role.or(phrase.role);
            } else {
                out.push(phrase);
            }
        }
    }
    out.sort_by_key(|p| p.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestKind::*;

    fn kinds(text: &str) -> Vec<RequestKind> {
        let norm = crate::request::tokens::sentences(text)
            .first()
            .map(|s| s.norm.clone())
            .unwrap_or_default();
        let mut k: Vec<RequestKind> = phrases(&norm).iter().map(|p| p.kind).collect();
        k.dedup();
        k
    }

    #[test]
    fn every_phrase_builds() {
        assert!(!WORDING.is_empty());
        for w in WORDING.iter() {
            assert!(!w.regex().as_str().is_empty(), "{:?}", w.kind);
        }
    }

    #[test]
    fn symptoms_and_actions() {
        let norm = "joe keeps getting locked out please reset his password";
        let p = phrases(norm);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].kind, p[0].strength), (Unlock, Strength::Symptom));
        assert_eq!(
            (p[1].kind, p[1].strength),
            (PasswordReset, Strength::Action)
        );
    }

    #[test]
    fn ordinary_sentences_name_no_kind() {
        for text in [
            "we had a lovely day out",
            "the new password you sent works",
            "take the day off",
            "let me know",
            "she has an email from the council",
        ] {
            assert!(kinds(text).is_empty(), "{text}: {:?}", kinds(text));
        }
    }
}
