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
//! In the place read, some kinds absorb another because one request implies the other; anything
//! else named together is ambiguous and goes to a person:
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
use regex::Regex;
use std::sync::LazyLock;

/// Kinds that absorb another when both are named in the same place (see the module docs).
const ABSORBS: [(RequestKind, RequestKind); 3] = [
    (RequestKind::Leaver, RequestKind::RemoveMember),
    (RequestKind::PasswordReset, RequestKind::Unlock),
    (RequestKind::NewAccount, RequestKind::AddMember),
];

/// The word every address becomes before kinds are matched.
const ADDRESS_WORD: &str = " someaddress ";

/// Where a mailbox is named in "add … to the mailbox" / "remove … from the mailbox".
const MAILBOX_WORDS: &str = r"(?:the |our |this |my |a |shared )*(?:mailbox|mail box|inbox|shared inbox|group|distribution list)";

/// The wording of each kind, matched against [`normalise_for_kinds`] text.
static KIND_WORDING: LazyLock<Vec<(RequestKind, Regex)>> = LazyLock::new(|| {
    let wording = [
        (
            RequestKind::NewAccount,
            vec![
                r"\bnew (?:staff |nhs |email |e mail |user )?(?:accounts?|starters?|users?|joiners?|employees?|colleagues?|members? of staff|staff members?)\b".to_string(),
                r"\b(?:create|creating|set up|setup|open|make) (?:a |an )?(?:new )?(?:user |staff |email |e mail )?accounts?\b".to_string(),
                r"\baccount (?:creation|request|set up|setup) for (?:a |our )?new\b".to_string(),
            ],
        ),
        (
            RequestKind::PasswordReset,
            vec![
                r"\bpasswords? (?:reset|resets|change|expired|has expired|forgotten)\b".to_string(),
                r"\bresets? (?:\w+ ){0,4}passwords?\b".to_string(),
                r"\bforgot(?:ten)? (?:\w+ ){0,2}passwords?\b".to_string(),
                r"\bchange (?:\w+ ){0,3}passwords?\b".to_string(),
            ],
        ),
        (
            RequestKind::Unlock,
            vec![
                r"\bunlock(?:ed|ing|s)?\b".to_string(),
                r"\blocked out\b".to_string(),
                r"\baccount (?:is |has been |was |got |gets )?locked\b".to_string(),
                r"\blocked (?:account|user)\b".to_string(),
                r"\brestore (?:\w+ ){0,2}accounts?\b".to_string(),
                r"\bre ?activat(?:e|ed|es|ing|ion)\b".to_string(),
                r"\bre ?enabl(?:e|ed|es|ing)\b".to_string(),
                r"\benable (?:\w+ ){0,2}accounts?\b".to_string(),
            ],
        ),
        (
            RequestKind::AddMember,
            vec![
                r"\badd (?:a |new )?(?:members?|users?)\b".to_string(),
                format!(r"\badd(?:ed|ing)? (?:\w+ ){{0,5}}(?:to|into|onto|on) {MAILBOX_WORDS}\b"),
                r"\badd (?:\w+ ){0,5}as (?:a |an )?(?:members?|owners?|users?)\b".to_string(),
                r"\b(?:give|grant|provide) (?:\w+ ){0,4}access\b".to_string(),
            ],
        ),
        (
            RequestKind::RemoveMember,
            vec![
                r"\bremove (?:a |the )?members?\b".to_string(),
                format!(r"\bremov(?:e|ed|ing|al) (?:\w+ ){{0,5}}from {MAILBOX_WORDS}\b"),
                r"\b(?:remove|revoke|withdraw|take away|cancel) (?:\w+ ){0,4}access\b".to_string(),
                r"\bno longer (?:needs?|requires?) (?:\w+ ){0,3}access\b".to_string(),
            ],
        ),
        (
            RequestKind::ChangeRole,
            vec![
                r"\bchange (?:of )?roles?\b".to_string(),
                r"\broles? change\b".to_string(),
                r"\bchange (?:\w+ ){0,4}roles?\b".to_string(),
                r"\bmake (?:\w+ ){0,5}(?:an |a |the |joint |co )?(?:owners?|members?)\b".to_string(),
                r"\b(?:promot|demot)(?:e|ed|es|ing|ion)\b".to_string(),
                r"\b(?:change|set|switch|move) (?:\w+ ){0,5}to (?:an |a )?(?:owners?|members?)\b".to_string(),
                r"\bownership\b".to_string(),
            ],
        ),
        (
            RequestKind::Leaver,
            vec![
                r"\bleavers?\b".to_string(),
                r"\bleaving\b".to_string(),
                r"\b(?:has|have|had) left\b".to_string(),
                r"\bleft (?:the |our )?(?:organisation|organization|company|practice|surgery|trust|team|service|business|home)\b".to_string(),
                r"\bno longer (?:works?|working|employed|with us)\b".to_string(),
                r"\baccount (?:closure|closed|deletion)\b".to_string(),
                r"\b(?:close|delete|deactivate|disable) (?:\w+ ){0,2}accounts?\b".to_string(),
                r"\bdeactivat(?:e|ed|es|ing|ion)\b".to_string(),
            ],
        ),
    ];
    wording
        .into_iter()
        .map(|(kind, patterns)| {
            let regex = Regex::new(&patterns.join("|")).expect("static regex");
            (kind, regex)
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
            !ABSORBS
                .iter()
                .any(|(by, absorbed)| absorbed == kind && named.contains(by))
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
