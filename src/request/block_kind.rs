//! The kind of a whole block of text — a subject, a body — as one: [`detect_kind`], and
//! [`kinds_named`] that the sentence grammar also uses.
//!
//! Kept for callers that want one kind for a whole text (it is not what `extract` uses):
//!
//! 1. A field line `Request: <kind>` or `Type: <kind>` (also `Request type:`, `Type of request:`)
//!    whose value names a kind exactly (`password_reset`, `password reset`, or the kind's title
//!    such as `Unlock account`) wins over everything else; the first such line counts.
//! 2. Otherwise the subject (without `Re:`/`Fwd:`/`FW:`/`AW:`… prefixes) is read. If it names
//!    any kind, the body is not consulted: one kind gives [`KindMatch::One`], several give
//!    [`KindMatch::Ambiguous`].
//! 3. Otherwise the same is done with the new text of the body, leaving out its field lines
//!    (`Job title: Leaving care lead` or `New owner: …` are data, not what is asked).
//!
//! In the place read, some kinds absorb another because one request implies the other (each
//! kind's file says which, `Kind::absorbs_in_block`); anything else named together is ambiguous
//! and goes to a person:
//! - `leaver` absorbs `remove_member`: a leaver loses their memberships ("Amy has left, please
//!   remove her from the mailbox").
//! - `password_reset` absorbs `unlock`: "reset the password, she is locked out" asks for a reset,
//!   and the reset is the larger change.
//! - `new_account` absorbs `add_member`: a new account is created in the sender's mailbox ("new
//!   starter, please create an account and add her to the mailbox").
//!
//! Wording is matched on a normalised copy of the text (lower case, punctuation as spaces,
//! addresses replaced by one placeholder word), so `re-enable`, `Re-Enable` and `re enable`
//! are the same and "add tom.smith@nhs.example to the mailbox" is five words.

use crate::request::kinds::RequestKind;
use crate::request::lines::{ADDRESS, field_line, normalise_key, strip_subject_prefixes};
use crate::request::model::{Field, KindMatch};
use crate::request::wording::any_word;
use regex::Regex;
use std::sync::LazyLock;

/// The word every address becomes before kinds are matched.
const ADDRESS_WORD: &str = " someaddress ";

/// The wording of each kind ([`Kind::block_wording`](crate::request::kinds::Kind::block_wording)), matched
/// against [`normalise_for_kinds`] text, in [`RequestKind::ALL`] order: the order ambiguous
/// kinds are reported in.
static KIND_WORDING: LazyLock<Vec<(RequestKind, Regex)>> = LazyLock::new(|| {
    RequestKind::ALL
        .into_iter()
        .map(|kind| {
            // Words of letters and digits between single spaces (`normalise_for_kinds`): built
            // with Unicode's `\w`, these regexes were a third of the daemon's start.
            let pattern = any_word(&kind.def().block_wording().join("|"));
            (kind, Regex::new(&pattern).expect("static regex"))
        })
        .collect()
});

/// Lower case, addresses as one word, every run of non-alphanumerics as one space.
fn normalise_for_kinds(text: &str) -> String {
    let text = ADDRESS.replace_all(text, ADDRESS_WORD);
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    // "make sure she is a member" is not "make … a member".
    format!(" {} ", words.join(" ")).replace(" make sure ", " ensure ")
}

/// The kinds a text names, after absorption, in [`RequestKind::ALL`] order.
pub(crate) fn kinds_named(text: &str) -> Vec<RequestKind> {
    let text = normalise_for_kinds(text);
    let named: Vec<RequestKind> = KIND_WORDING
        .iter()
        .filter(|(_, wording)| wording.is_match(&text))
        .map(|(kind, _)| *kind)
        .collect();
    named
        .iter()
        .copied()
        .filter(|kind| {
            !named
                .iter()
                .any(|by| by.def().absorbs_in_block().contains(kind))
        })
        .collect()
}

fn kind_match(kinds: Vec<RequestKind>) -> KindMatch {
    match kinds.as_slice() {
        [] => KindMatch::None,
        [kind] => KindMatch::One(*kind),
        _ => KindMatch::Ambiguous(kinds),
    }
}

/// Keys of the line that declares the kind outright.
const KIND_KEYS: [&str; 4] = ["request", "type", "request type", "type of request"];

/// The kind a `Request:`/`Type:` line names exactly: `password_reset`, `password reset` or
/// the title `Password reset`.
pub(crate) fn declared_kind(body: &str) -> Option<RequestKind> {
    body.lines().find_map(|line| {
        let (key, value) = field_line(line)?;
        if !KIND_KEYS.contains(&key.as_str()) {
            return None;
        }
        let value = normalise_key(value.trim_matches(|c: char| c == '*' || c == '_'));
        RequestKind::ALL.into_iter().find(|kind| {
            value == kind.as_str().replace('_', " ") || value == kind.title().to_lowercase()
        })
    })
}

/// Detect the kind from the subject, else the body (the new text). See the module docs for the
/// rules.
pub fn detect_kind(subject: &str, body: &str) -> KindMatch {
    if let Some(kind) = declared_kind(body) {
        return KindMatch::One(kind);
    }
    let in_subject = kinds_named(strip_subject_prefixes(subject));
    if !in_subject.is_empty() {
        return kind_match(in_subject);
    }
    // Field values are data: a job title "Leaving care lead" or a "New owner:" key asks nothing.
    let prose: Vec<&str> = body
        .lines()
        .filter(|line| field_line(line).is_none_or(|(key, _)| Field::from_key(&key).is_none()))
        .collect();
    kind_match(kinds_named(&prose.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Words the kinds' wording is made of, names (accented ones too), digits and the address
    /// word: what normalised text holds.
    const WORDS: &[&str] = &[
        "reset",
        "password",
        "passwords",
        "forgot",
        "change",
        "add",
        "added",
        "adding",
        "to",
        "into",
        "the",
        "a",
        "an",
        "as",
        "mailbox",
        "shared",
        "inbox",
        "email",
        "account",
        "accounts",
        "remove",
        "removed",
        "from",
        "unlock",
        "locked",
        "out",
        "make",
        "owner",
        "owners",
        "member",
        "members",
        "give",
        "grant",
        "access",
        "role",
        "close",
        "delete",
        "disable",
        "new",
        "needs",
        "starting",
        "joined",
        "left",
        "leaving",
        "handed",
        "in",
        "his",
        "her",
        "notice",
        "please",
        "can",
        "you",
        "joe",
        "zoë",
        "ångström",
        "müller",
        "2nd",
        "x9",
        "someaddress",
        "let",
        "see",
        "use",
        "set",
        "up",
        "for",
        "is",
        "was",
    ];

    /// The kinds' regexes as they were, with Unicode's `\w`, in [`KIND_WORDING`]'s order.
    static UNICODE_WORDING: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        RequestKind::ALL
            .into_iter()
            .map(|kind| Regex::new(&kind.def().block_wording().join("|")).expect("static regex"))
            .collect()
    });

    proptest! {
        /// With `[^ ]` for `\w`, every kind's regex matches normalised text exactly where the
        /// `\w` form did.
        #[test]
        fn a_word_as_no_space_matches_as_unicode_words_did(
            words in proptest::collection::vec(proptest::sample::select(WORDS), 0..14)
        ) {
            let text = normalise_for_kinds(&words.join(" "));
            for ((kind, now), unicode) in KIND_WORDING.iter().zip(UNICODE_WORDING.iter()) {
                prop_assert_eq!(now.is_match(&text), unicode.is_match(&text), "{:?} in {:?}", kind, text);
            }
        }
    }

    #[test]
    fn the_kinds_regexes_have_no_unicode_word_class() {
        for (kind, regex) in KIND_WORDING.iter() {
            assert!(!regex.as_str().contains(r"\w"), "{kind:?}");
        }
    }
}
