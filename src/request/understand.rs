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
use crate::request::block_kind::{declared_kind, kinds_named};
use crate::request::kinds::RequestKind;
use crate::request::kinds::Strength;
use crate::request::lines::{ADDRESS, field_line, strip_subject_prefixes};
use crate::request::model::{Ask, Field, KindMatch, Mention, NotAsked};
use crate::request::signature;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// How much of the quoted history is looked at for a kind's words.
const HISTORY_READ: usize = 4000;

pub struct Input<'a> {
    pub subject: &'a str,
    pub new_text: &'a str,
    pub history: String,
    pub fields: &'a BTreeMap<Field, String>,
    pub candidates: &'a [String],
    pub excluded: &'a [String],
    /// The sending mailbox's own words ("rosehill", "care"): never a person's name.
    pub site: &'a [String],
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

/// The cells of a table line (`\t` or `|` between them), or `None`.
fn cells(line: &str) -> Option<Vec<String>> {
    let sep = if line.contains('\t') {
        '\t'
    } else if line.contains('|') {
        '|'
    } else {
        return None;
    };
    let trimmed = line.trim().trim_matches('|');
    let cells: Vec<String> = trimmed.split(sep).map(|c| c.trim().to_string()).collect();
    (cells.len() >= 2).then_some(cells)
}

/// A table with a header row of field names ("Forename | Surname | Job title") and a row per
/// person: the lines it spans and each row's fields.
/// A row of a column table: its fields.
type Row = BTreeMap<Field, String>;

fn column_table(lines: &[&str]) -> Option<(std::ops::Range<usize>, Vec<Row>)> {
    for (i, line) in lines.iter().enumerate() {
        let Some(header) = cells(line) else { continue };
        let columns: Vec<Option<Field>> = header
            .iter()
            .map(|c| {
                Field::from_key(
                    &c.trim_end_matches(':')
                        .to_lowercase()
                        .replace(['-', '_'], " "),
                )
            })
            .collect();
        let names_a_person = columns.iter().any(|c| {
            matches!(
                c,
                Some(Field::Name | Field::FirstName | Field::LastName | Field::Account)
            )
        });
        if !names_a_person || columns.iter().filter(|c| c.is_some()).count() < 2 {
            continue;
        }
        let mut rows = Vec::new();
        let mut end = i + 1;
        while let Some(row) = lines.get(end).and_then(|l| cells(l)) {
            if row.len() != header.len() || rows.len() >= asks::MAX_ASKS {
                break;
            }
            let mut fields = BTreeMap::new();
            for (column, value) in columns.iter().zip(&row) {
                if let Some(field) = column
                    && !value.is_empty()
                {
                    let value = if *field == Field::Account {
                        value.to_lowercase()
                    } else {
                        value.split_whitespace().collect::<Vec<_>>().join(" ")
                    };
                    fields.insert(*field, value);
                }
            }
            rows.push(fields);
            end += 1;
        }
        if !rows.is_empty() {
            return Some((i..end, rows));
        }
    }
    None
}

/// The prose: field lines, a column table and the closing left out.
fn prose(new_text: &str) -> (String, Option<String>, Vec<Row>) {
    let lines: Vec<&str> = new_text.lines().collect();
    let (end, signer) = signature::closing(&lines);
    let (table, rows) = match column_table(&lines) {
        Some((range, rows)) => (range, rows),
        None => (0..0, Vec::new()),
    };
    let mut kept: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate().take(end) {
        if table.contains(&i) {
            continue;
        }
        match field_line(line) {
            Some((key, _)) if Field::from_key(&key).is_some() => {}
            // A table row's label is not prose ("Urgency | Today"): its value is.
            Some((_, value)) if line.contains('\t') || line.contains('|') => {
                kept.push(value.into_owned());
            }
            _ => kept.push((*line).to_string()),
        }
    }
    (kept.join("\n"), signer, rows)
}

/// The sender address of the first forwarded or quoted header block, with its line lowered.
fn forwarded_sender(history: &str, excluded: &[String]) -> Option<(String, String)> {
    FROM_LINE.captures_iter(history).find_map(|caps| {
        let line = caps.get(1)?.as_str().to_lowercase();
        let address = ADDRESS.find(&line)?.as_str().to_string();
        (!excluded.contains(&address)).then_some((address, line))
    })
}

/// A message asking which change to make, rather than asking for one: "I'm not sure what Tom
/// needs: a reset, an unlock… Which would you suggest?" Every kind it names is an option, not
/// an ask; a person answers it.
static ADVICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:which|what) (?:would|do|should|could) you (?:suggest|recommend|advise)\b|\bnot sure (?:what|which) \w+(?: \w+)? needs?\b|\bwhich (?:one|of (?:these|them|those)) (?:should|do|would) (?:we|i)\b")
        .expect("static regex")
});

pub fn understand(input: &Input<'_>) -> Understanding {
    let (prose, signed_by, rows) = prose(input.new_text);
    if ADVICE.is_match(&prose) {
        return understood(Vec::new(), Some(NotAsked::Question), signed_by);
    }
    let mut reading = asks::read(&prose, input.excluded, input.site);
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
        // The start of the history is enough to tell a reply to a request (and bounds the work).
        let history = input
            .history
            .get(..input.history.len().min(HISTORY_READ))
            .or_else(|| {
                let end = (0..=HISTORY_READ.min(input.history.len()))
                    .rev()
                    .find(|&i| input.history.is_char_boundary(i))?;
                input.history.get(..end)
            })
            .unwrap_or_default();
        let in_history = !kinds_named(history).is_empty();
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
            if by.def().absorbs_in_block().contains(&ask.kind) {
                ask.kind = *by;
            }
        }
    }
    // A table of people under one kind: one ask per row.
    if !rows.is_empty() {
        let mut kinds: Vec<RequestKind> = reading.asks.iter().map(|a| a.kind).collect();
        kinds.dedup();
        if let [kind] = kinds.as_slice() {
            let kind = *kind;
            let mut table_asks = Vec::new();
            for row in &rows {
                let mut fields = input.fields.clone();
                fields.extend(row.clone());
                let target = if kind == RequestKind::NewAccount {
                    None
                } else {
                    row.get(&Field::Account)
                        .map(|a| Mention::Address(a.clone()))
                        .or_else(|| row.get(&Field::Name).map(|n| Mention::Name(n.clone())))
                        .or_else(
                            || match (row.get(&Field::FirstName), row.get(&Field::LastName)) {
                                (Some(f), Some(l)) => Some(Mention::Name(format!("{f} {l}"))),
                                _ => None,
                            },
                        )
                };
                table_asks.push(Ask {
                    kind,
                    target,
                    fields,
                });
            }
            return understood(table_asks, None, signed_by);
        }
    }
    let not_asked = if reading.asks.is_empty() {
        not_asked.or(reading.not_asked)
    } else {
        None
    };

    // The Account: field is the target when the prose names at most one person.
    // …else a `Name:` field (or `First name:` and `Last name:`) names the person.
    let name_field = input.fields.get(&Field::Name).cloned().or_else(|| {
        match (
            input.fields.get(&Field::FirstName),
            input.fields.get(&Field::LastName),
        ) {
            (Some(first), Some(last)) => Some(format!("{first} {last}")),
            _ => None,
        }
    });
    let account_field = input
        .fields
        .get(&Field::Account)
        .map(|v| {
            if v.contains('@') {
                Mention::Address(v.clone())
            } else {
                Mention::Name(v.clone())
            }
        })
        .or_else(|| name_field.map(Mention::Name));
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
            && raw.kind.def().carries_role()
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

    understood(asks, not_asked, signed_by)
}

/// The understanding of these asks: `kind` is the one kind they share, or all their kinds.
fn understood(
    asks: Vec<Ask>,
    not_asked: Option<NotAsked>,
    signed_by: Option<String>,
) -> Understanding {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;
    use crate::request::extract::{ExtractContext, Extracted, extract};

    fn read(subject: &str, content_type: &str, body: &str) -> Extracted {
        let raw = format!(
            "From: Rosehill Care <rosehill.care@nhs.example>\r\nTo: helpdesk@nhs.example\r\n\
             Subject: {subject}\r\nContent-Type: {content_type}; charset=utf-8\r\n\r\n{body}"
        );
        let ctx = ExtractContext {
            mailbox: Some("rosehill.care@nhs.example"),
            helpdesk: "helpdesk@nhs.example",
            reference_prefix: "HD",
        };
        extract(&parse(raw.as_bytes()), &ctx)
    }

    fn plain(subject: &str, body: &str) -> Extracted {
        read(subject, "text/plain", body)
    }

    fn targets(ex: &Extracted) -> Vec<(RequestKind, Option<Mention>)> {
        ex.asks.iter().map(|a| (a.kind, a.target.clone())).collect()
    }

    #[test]
    fn a_forward_supplies_the_target_the_new_text_points_at() {
        let ex = plain(
            "Fwd: can't log in",
            "Dev's email is below - could you unlock him?\n\nThanks\nFatima\n\n\
             ---------- Forwarded message ---------\nFrom: Dev Shah <dev.shah@nhs.example>\n\
             Date: Mon, 3 Mar 2025\nSubject: can't log in\n\nI'm locked out, please unlock me\n",
        );
        assert_eq!(
            targets(&ex),
            vec![(
                RequestKind::Unlock,
                Some(Mention::Address("dev.shah@nhs.example".into()))
            )]
        );
        assert_eq!(ex.signed_by.as_deref(), Some("Fatima"));
    }

    #[test]
    fn quoted_requests_are_never_asks() {
        let ex = plain(
            "Re: [HD-000001] Done: Password reset",
            "Thanks, that worked!\n\nOn Mon, 3 Mar 2025 at 09:05, Helpdesk <helpdesk@nhs.example> wrote:\n\
             > Please reset the password for Joe Bloggs\n",
        );
        assert!(ex.asks.is_empty());
        assert_eq!(ex.not_asked, Some(NotAsked::Thanks));
        assert_eq!(ex.kind, KindMatch::None);
        let ex = plain(
            "Fwd: Unlock",
            "FYI\n\n---------- Forwarded message ---------\nFrom: Jane <jane.doe@nhs.example>\n\
             Date: Mon, 3 Mar 2025\n\nPlease unlock Kim Lee\n",
        );
        assert!(ex.asks.is_empty());
        assert_eq!(ex.not_asked, Some(NotAsked::QuotedOnly));
    }

    #[test]
    fn html_reply_blocks_are_cut_before_reading() {
        for html in [
            "<div>Thanks, all sorted!</div><div id=\"divRplyFwdMsg\"><b>From:</b> Rosehill</div><div>Please unlock Kim Lee</div>",
            "<div>Thanks, all sorted!</div><hr id=\"x_divRplyFwdMsg\"><div>Please unlock Kim Lee</div>",
            "<div>Thanks, all sorted!</div><div class=\"gmail_quote\"><div>Please unlock Kim Lee</div></div>",
            "<div>Thanks, all sorted!</div><blockquote type=\"cite\"><div>Please unlock Kim Lee</div></blockquote>",
        ] {
            let ex = read("Re: Unlock", "text/html", html);
            assert!(ex.asks.is_empty(), "{html}: {:?}", ex.asks);
            assert_eq!(ex.new_text, "Thanks, all sorted!", "{html}");
            assert_eq!(ex.not_asked, Some(NotAsked::Thanks), "{html}");
        }
    }

    #[test]
    fn starters_from_tables_and_fields() {
        let ex = read(
            "New starter",
            "text/html",
            "<p>Please create an account:</p><table><tr><td>Full name</td><td>Joe Bloggs</td></tr>\
             <tr><td>Job title</td><td>Carer</td></tr></table>",
        );
        assert_eq!(ex.asks.len(), 1, "{:?}", ex.asks);
        assert_eq!(
            ex.asks[0].fields.get(&Field::Name).map(String::as_str),
            Some("Joe Bloggs")
        );
        assert_eq!(
            ex.asks[0].fields.get(&Field::JobTitle).map(String::as_str),
            Some("Carer")
        );
        let ex = plain(
            "New starter",
            "New account please\nFull name | Hannah Moss\n",
        );
        assert_eq!(
            ex.asks[0].fields.get(&Field::Name).map(String::as_str),
            Some("Hannah Moss")
        );
        let ex = plain(
            "New starters",
            "Please create accounts for:\nForename\tSurname\tJob title\nLily\tChapman\tCarer\nMarcus\tReed\tNurse\n",
        );
        assert_eq!(ex.asks.len(), 2, "{:?}", ex.asks);
        assert_eq!(
            ex.asks[1].fields.get(&Field::FirstName).map(String::as_str),
            Some("Marcus")
        );
        assert_eq!(
            ex.asks[1].fields.get(&Field::LastName).map(String::as_str),
            Some("Reed")
        );
        let ex = plain(
            "Hello",
            "A new carer, Hannah Moss, starts next week - can she have an account?\n\nKind regards\nFatima Ali\nDeputy Manager",
        );
        assert_eq!(ex.asks.len(), 1);
        assert_eq!(ex.asks[0].kind, RequestKind::NewAccount);
        assert_eq!(
            ex.asks[0].fields.get(&Field::Name).map(String::as_str),
            Some("Hannah Moss")
        );
        assert_eq!(ex.signed_by.as_deref(), Some("Fatima Ali"));
    }

    #[test]
    fn fields_naming_people() {
        let ex = plain(
            "Password reset",
            "Account: Ravi Gupta\nRequested by: Fatima Ali\n",
        );
        assert_eq!(
            targets(&ex),
            // Address fields are lower-cased; resolution folds case.
            vec![(
                RequestKind::PasswordReset,
                Some(Mention::Name("ravi gupta".into()))
            )]
        );
        assert_eq!(
            ex.fields.get(&Field::RequestedBy).map(String::as_str),
            Some("fatima ali")
        );
        let ex = plain("Unlock", "Please unlock\naccount: ravi gupta\n");
        assert_eq!(
            targets(&ex),
            vec![(
                RequestKind::Unlock,
                Some(Mention::Name("ravi gupta".into()))
            )]
        );
        // The subject gives the kind, the body the person.
        let ex = plain("Password reset", "For Ravi Gupta please.\n\nThanks\nJane");
        assert_eq!(
            targets(&ex),
            vec![(
                RequestKind::PasswordReset,
                Some(Mention::Name("Ravi Gupta".into()))
            )]
        );
        // Several kinds: `kind` lists them, the asks carry each.
        let ex = plain(
            "Two things",
            "Please unlock Joe Bloggs and add him to the inbox.",
        );
        assert_eq!(
            ex.kind,
            KindMatch::Ambiguous(vec![RequestKind::Unlock, RequestKind::AddMember])
        );
        assert_eq!(ex.asks.len(), 2);
    }
}
