//! The message as a whole → its asks: which text is read, where the subject counts, what a
//! declared kind or an `Account:` field changes, what a forward may supply, and what a reply
//! that asks nothing is.
//!
//! - The prose read is the new text without its field lines (`Job title: Leaving care lead` is
//!   data) and without its closing (see [`crate::request::signature`]).
//! - A `Request:`/`Type:` line naming a kind exactly decides the kind: one ask per person named
//!   (the `Account:` field first).
//! - Otherwise the prose's sentences are read ([`crate::request::asks`]). The subject counts
//!   only when it is not a reply or a forward (`Re:`, `Fwd:` or a desk reference: those words
//!   were written for an earlier message): when the prose names no kind, a subject naming one
//!   kind is the kind, for each person the prose names; when the prose asks something the
//!   subject's kind absorbs ("Leaver" over "remove her from the mailbox"), the subject's kind
//!   is used.
//! - An `Account:` field is the target when the prose names at most one person.
//! - When the new text points at a forward ("her email is below", "see the forwarded
//!   message"), an ask that names no one, or names the forward's sender by a name found in its
//!   `From:` line, is about the forward's sender address.
//! - When nothing is asked and the kind's words are only in the quoted or forwarded text (or
//!   in a reply's subject), the message is a thanks (`Thanks`) when its new text thanks, else
//!   `QuotedOnly`.

use crate::request::asks::{self, Person, RawAsk};
use crate::request::extract::{
    ADDRESS, Ask, Field, KindMatch, Mention, NotAsked, declared_kind, field_line, kinds_named,
    strip_subject_prefixes,
};
use crate::request::kinds::RequestKind;
use crate::request::signature;
use crate::request::wording::Strength;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

pub struct Input<'a> {
    pub subject: &'a str,
    pub new_text: &'a str,
    pub history: String,
    pub fields: &'a BTreeMap<Field, String>,
    pub candidates: &'a [String],
    pub excluded: &'a [String],
}

pub struct Understanding {
    pub kind: KindMatch,
    pub asks: Vec<Ask>,
    pub not_asked: Option<NotAsked>,
    pub signed_by: Option<String>,
}

/// Words in the new text that point at a forwarded message below it.
static POINTS_BELOW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:below|forwarded|forwarding|trail|see (?:the )?(?:attached|email|message))\b",
    )
    .expect("static regex")
});
/// A forwarded header block's sender line.
static FROM_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?im)^[\s*_>]*(?:from|von)[\s*_]*:(.*)$").expect("static regex"));
/// A new text that thanks.
static THANKS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:thanks|thank you|thankyou|cheers|that worked|that s worked|worked|sorted|all good|perfect|brilliant|great|much appreciated)\b")
        .expect("static regex")
});

/// Whether the subject is a reply or a forward of an earlier message.
fn is_reply(subject: &str) -> bool {
    strip_subject_prefixes(subject).len() != subject.trim().len()
}

fn mention(person: &Person) -> Mention {
    match person {
        Person::Name(n) => Mention::Name(n.clone()),
        Person::Address(a) => Mention::Address(a.clone()),
    }
}

/// The prose: field lines and the closing left out.
fn prose(new_text: &str) -> (String, Option<String>) {
    let lines: Vec<&str> = new_text.lines().collect();
    let (end, signer) = signature::closing(&lines);
    let kept: Vec<&str> = lines
        .iter()
        .take(end)
        .filter(|line| field_line(line).is_none_or(|(key, _)| Field::from_key(&key).is_none()))
        .copied()
        .collect();
    (kept.join("\n"), signer)
}

/// The sender address of the first forwarded or quoted header block, with its line lowered.
fn forwarded_sender(history: &str, excluded: &[String]) -> Option<(String, String)> {
    FROM_LINE.captures_iter(history).find_map(|caps| {
        let line = caps.get(1)?.as_str().to_lowercase();
        let address = ADDRESS.find(&line)?.as_str().to_string();
        (!excluded.contains(&address)).then_some((address, line))
    })
}

pub fn understand(input: &Input<'_>) -> Understanding {
    let (prose, signed_by) = prose(input.new_text);
    let mut reading = asks::read(&prose, input.excluded);
    let subject = strip_subject_prefixes(input.subject);
    let reply = is_reply(input.subject);
    let mut not_asked = None;

    if let Some(kind) = declared_kind(input.new_text) {
        // The declared kind, for each person named.
        let people = if reading.people.is_empty() {
            vec![None]
        } else {
            reading.people.iter().cloned().map(Some).collect()
        };
        reading.asks = people
            .into_iter()
            .map(|person| RawAsk {
                kind,
                strength: Strength::Action,
                person,
                role: None,
                job_title: None,
            })
            .collect();
    } else if !reading.any_phrase {
        let in_history = !kinds_named(&input.history).is_empty();
        let in_subject = kinds_named(subject);
        if (reply && !in_subject.is_empty()) || in_history {
            not_asked = Some(if THANKS.is_match(&prose) {
                NotAsked::Thanks
            } else {
                NotAsked::QuotedOnly
            });
        } else if let [kind] = in_subject.as_slice() {
            let people = if reading.people.is_empty() {
                vec![None]
            } else {
                reading.people.iter().cloned().map(Some).collect()
            };
            reading.asks = people
                .into_iter()
                .take(asks::MAX_ASKS)
                .map(|person| RawAsk {
                    kind: *kind,
                    strength: Strength::Action,
                    person,
                    role: None,
                    job_title: None,
                })
                .collect();
        } else if in_subject.len() > 1 {
            return Understanding {
                kind: KindMatch::Ambiguous(in_subject),
                asks: Vec::new(),
                not_asked: None,
                signed_by,
            };
        }
    } else if !reply && let [by] = kinds_named(subject).as_slice() {
        // The subject's kind absorbs what the prose asks ("Leaver" over "remove her").
        for ask in &mut reading.asks {
            let absorbed = matches!(
                (*by, ask.kind),
                (RequestKind::Leaver, RequestKind::RemoveMember)
                    | (RequestKind::PasswordReset, RequestKind::Unlock)
                    | (RequestKind::NewAccount, RequestKind::AddMember)
            );
            if absorbed {
                ask.kind = *by;
            }
        }
    }
    let not_asked = if reading.asks.is_empty() {
        not_asked.or(reading.not_asked)
    } else {
        None
    };

    // The Account: field is the target when the prose names at most one person.
    let account_field = input.fields.get(&Field::Account).map(|v| {
        if v.contains('@') {
            Mention::Address(v.clone())
        } else {
            Mention::Name(v.clone())
        }
    });
    let distinct_people = {
        let mut p: Vec<&Person> = reading
            .asks
            .iter()
            .filter_map(|a| a.person.as_ref())
            .collect();
        p.dedup();
        p.len()
    };
    let forward = POINTS_BELOW
        .is_match(input.new_text)
        .then(|| forwarded_sender(&input.history, input.excluded))
        .flatten();

    let mut asks: Vec<Ask> = Vec::new();
    for raw in reading.asks {
        let mut fields = input.fields.clone();
        let mut target = raw.person.as_ref().map(mention);
        if raw.kind == RequestKind::NewAccount {
            // The starter's name is a field, not a target.
            if let Some(Mention::Name(name)) = target.take()
                && !fields.contains_key(&Field::Name)
                && !fields.contains_key(&Field::FirstName)
                && !fields.contains_key(&Field::LastName)
            {
                fields.insert(Field::Name, name);
            }
            if let Some(title) = raw.job_title {
                fields.entry(Field::JobTitle).or_insert(title);
            }
        } else {
            if distinct_people <= 1
                && let Some(field) = &account_field
            {
                target = Some(field.clone());
            }
            if target.is_none()
                && distinct_people == 0
                && let [one] = input.candidates
            {
                target = Some(Mention::Address(one.clone()));
            }
            if let Some((address, line)) = &forward {
                let from_forward = match &target {
                    None => true,
                    Some(Mention::Name(n)) => n
                        .split_whitespace()
                        .filter(|w| w.chars().count() > 1)
                        .all(|w| line.contains(&w.to_lowercase())),
                    Some(Mention::Address(_)) => false,
                };
                if from_forward {
                    target = Some(Mention::Address(address.clone()));
                }
            }
        }
        if let Some(role) = raw.role
            && matches!(raw.kind, RequestKind::ChangeRole | RequestKind::AddMember)
        {
            fields
                .entry(Field::Role)
                .or_insert_with(|| role.as_str().to_string());
        }
        let ask = Ask {
            kind: raw.kind,
            target,
            fields,
        };
        if !asks.contains(&ask) {
            asks.push(ask);
        }
    }

    let mut kinds: Vec<RequestKind> = asks.iter().map(|a| a.kind).collect();
    kinds.sort();
    kinds.dedup();
    let kind = match kinds.as_slice() {
        [] => KindMatch::None,
        [one] => KindMatch::One(*one),
        _ => KindMatch::Ambiguous(kinds),
    };
    Understanding {
        kind,
        asks,
        not_asked,
        signed_by,
    }
}
