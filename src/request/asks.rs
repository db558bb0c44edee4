//! Sentences → asks: which kinds are asked, about whom, one ask per person.
//!
//! A sentence is cut into parts at commas, dashes and the words "and", "also", "then", "plus",
//! "but", "so" — except inside a phrase ("add Ravi and Fatima to the inbox" is one part). A
//! phrase's people are those named in its part; a part that names people but no kind gives
//! them to the nearest part before it that names a kind, else the next one ("new passwords
//! for Ravi and Fatima please", "Ravi and Fatima need new passwords"). A pronoun (he, him, his,
//! she, her, they, them, their) is the last person named before it. A phrase that names no one
//! is about the last person named before it. Names joined by "or" ("Tom or Amy, whichever is
//! on shift") are not split: the ask names no one and a person decides.
//!
//! Then, for each person: an explicit action wins over a symptom of another kind ("Joe keeps
//! getting locked out, please reset his password" is a reset); a leaver absorbs a removal, a
//! reset absorbs an unlock, a new account absorbs an add to the mailbox; the same kind for the
//! same person is one ask. An ask that names no one is dropped when another ask of its kind
//! names someone. Two different people are never one ask.

use crate::request::intent;
use crate::request::kinds::Strength;
use crate::request::kinds::{RequestKind, Role};
use crate::request::model::NotAsked;
use crate::request::names::{self, Found, Who};
use crate::request::tokens::{Sentence, Tok, sentences};
use crate::request::wording;
use regex::Regex;
use std::sync::LazyLock;

/// The most asks read from one message; the rest are not read (the pipeline sends a message
/// with more than its own cap to review).
pub const MAX_ASKS: usize = 50;
/// The most sentences read: a longer text is not a request a person typed.
const MAX_SENTENCES: usize = 400;

/// A person as the grammar found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    Name(String),
    Address(String),
}

/// One ask before the message's fields are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAsk {
    pub kind: RequestKind,
    pub strength: Strength,
    /// Whom it is about (for a new account: the starter).
    pub person: Option<Person>,
    pub role: Option<Role>,
    /// A job title given with a new starter ("a new carer").
    pub job_title: Option<String>,
}

/// What the sentences of a text ask.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub asks: Vec<RawAsk>,
    /// Why the first phrase that was not asked was not (when nothing was asked).
    pub not_asked: Option<NotAsked>,
    /// Whether any kind's words were found at all.
    pub any_phrase: bool,
    /// Everyone named outside greetings, in order (deduplicated).
    pub people: Vec<Person>,
}

/// Words that split a sentence into parts.
const SPLIT_WORDS: [&str; 8] = [
    "and",
    "also",
    "then",
    "plus",
    "but",
    "so",
    "additionally",
    "too",
];
/// Words that greet or sign off: a name right after one is the reader or the writer, not whom
/// the ask is about.
const GREETING_WORDS: [&str; 18] = [
    "hi",
    "hello",
    "hey",
    "hiya",
    "dear",
    "morning",
    "afternoon",
    "evening",
    "thanks",
    "thank",
    "cheers",
    "ta",
    "many",
    "kind",
    "best",
    "regards",
    "wishes",
    "love",
];
/// Sign-off words a comma may separate from the writer's name.
const SIGN_OFF_WORDS: [&str; 9] = [
    "thanks", "thank", "cheers", "ta", "regards", "wishes", "love", "best", "thx",
];
/// Words before a name that make it not a target ("the same access as Sam", "on behalf of").
const NOT_TARGET_BEFORE: [&str; 5] = ["as", "like", "than", "behalf", "cc"];

static NEW_JOB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bnew ((?:senior |night |day |bank |agency |trainee |relief )?(?:carer|care assistant|care worker|support worker|healthcare assistant|nurse|receptionist|administrator|manager|deputy manager|cook|chef|housekeeper|domestic|activities coordinator|team leader|apprentice|gp|doctor|pharmacist|secretary))\b")
        .expect("static regex")
});

fn title_case(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

/// A name that is the person of an address in the text ("Kim" and kim.lee@…) is that address.
fn settle(name: &str, addresses: &[String]) -> Person {
    let words: Vec<String> = name
        .split_whitespace()
        .filter(|w| w.chars().count() > 1)
        .map(str::to_lowercase)
        .collect();
    let found = addresses.iter().find(|a| {
        let local = a.split('@').next().unwrap_or_default();
        let parts: Vec<&str> = local.split(['.', '_', '-', '+']).collect();
        !words.is_empty() && words.iter().all(|w| parts.contains(&w.as_str()))
    });
    match found {
        Some(a) => Person::Address(a.clone()),
        None => Person::Name(name.to_string()),
    }
}

/// Whether the word before token `start` (punctuation skipped) greets or signs off: "Hi Sam",
/// "Thanks, Bernadette" name the reader or the writer.
fn after_greeting(s: &Sentence<'_>, start: usize) -> bool {
    let Some(prev) = start.checked_sub(1) else {
        return false;
    };
    if is_word(s, prev, &GREETING_WORDS) {
        return true;
    }
    // "Thanks, Bernadette": a sign-off, then a comma, then the name.
    matches!(s.toks.get(prev), Some(Tok::Punct(',')))
        && prev
            .checked_sub(1)
            .is_some_and(|w| is_word(s, w, &SIGN_OFF_WORDS))
}

fn is_word(s: &Sentence<'_>, i: usize, words: &[&str]) -> bool {
    match s.toks.get(i) {
        Some(Tok::Word(w)) => words.iter().any(|x| w.eq_ignore_ascii_case(x)),
        _ => false,
    }
}

/// Reads the prose. `excluded` are addresses that are never a target (the mailbox, the
/// helpdesk, the requester…).
pub fn read(prose: &str, excluded: &[String], site: &[String]) -> Reading {
    let mut reading = Reading::default();
    let all = sentences(prose);
    let all = all.get(..all.len().min(MAX_SENTENCES)).unwrap_or_default();
    let addresses: Vec<String> = all
        .iter()
        .flat_map(|s| s.toks.iter())
        .filter_map(|t| match t {
            Tok::Address(a) => Some(a.to_lowercase()),
            _ => None,
        })
        .filter(|a| !excluded.contains(a))
        .collect();
    let mut last_person: Option<Person> = None;
    for s in all {
        if reading.asks.len() >= MAX_ASKS {
            break;
        }
        read_sentence(
            s,
            excluded,
            site,
            &addresses,
            &mut last_person,
            &mut reading,
        );
    }
    reading.asks = settle_asks(reading.asks);
    reading.asks.truncate(MAX_ASKS);
    if !reading.asks.is_empty() {
        reading.not_asked = None;
    }
    reading
}

fn read_sentence(
    s: &Sentence<'_>,
    excluded: &[String],
    site: &[String],
    addresses: &[String],
    last_person: &mut Option<Person>,
    reading: &mut Reading,
) {
    let found = names::mentions_except(s, site);
    let mut phrases = wording::phrases(&s.norm);
    // "add Peter Hughes", "remove Joe Bloggs": the bare verb before a person's name.
    for f in &found {
        let (Who::Name(_), Some(verb)) = (&f.who, f.start.checked_sub(1)) else {
            continue;
        };
        let Some(kind) = RequestKind::ALL
            .into_iter()
            .find(|k| k.def().bare_verb().is_some_and(|v| is_word(s, verb, &[v])))
        else {
            continue;
        };
        let (Some(&(start, _)), Some(&(_, end))) = (s.spans.get(verb), s.spans.get(f.end - 1))
        else {
            continue;
        };
        if !phrases
            .iter()
            .any(|p| p.kind == kind && p.start <= start && start < p.end)
        {
            phrases.push(wording::Phrase {
                kind,
                strength: Strength::Action,
                start,
                end,
                role: None,
            });
        }
    }
    phrases.sort_by_key(|p| p.start);
    // Parts: boundaries outside phrases.
    let inside = |i: usize| {
        let (start, _) = s.spans.get(i).copied().unwrap_or_default();
        phrases.iter().any(|p| p.start < start && start < p.end)
    };
    let mut part_of = Vec::with_capacity(s.toks.len());
    let mut part_starts = vec![0usize];
    for (i, tok) in s.toks.iter().enumerate() {
        let boundary = match tok {
            Tok::Punct(c) => {
                matches!(c, ',' | '—' | '–' | '-' | '(' | ')' | ':' | '&' | '\n') && !inside(i)
            }
            Tok::Word(_) => is_word(s, i, &SPLIT_WORDS) && !inside(i),
            Tok::Address(_) => false,
        };
        if boundary && i > 0 {
            part_starts.push(i);
        }
        part_of.push(part_starts.len() - 1);
    }
    let parts = part_starts.len();
    // Mentions, with pronouns pointed at the last person before them.
    let mut people: Vec<(usize, Person)> = Vec::new();
    let mut ors = vec![false; parts];
    for (i, _) in s.toks.iter().enumerate() {
        if is_word(s, i, &["or", "either", "whichever"])
            && let Some(p) = part_of.get(i)
            && let Some(slot) = ors.get_mut(*p)
        {
            *slot = true;
        }
    }
    let mut before_phrase: Vec<(usize, Option<Person>)> = Vec::new();
    let name_ends: Vec<usize> = found
        .iter()
        .filter(|f| matches!(f.who, Who::Name(_)))
        .map(|f| f.end)
        .collect();
    for Found { who, start, .. } in found {
        // "Hannah Moss - Receptionist": a word after a dash after a name is a job, not a person.
        if matches!(who, Who::Name(ref n) if !n.contains(' '))
            && start.checked_sub(1).is_some_and(|d| {
                matches!(s.toks.get(d), Some(Tok::Punct('-' | '–'))) && name_ends.contains(&d)
            })
        {
            continue;
        }
        let person = match who {
            Who::Address(a) if excluded.contains(&a) => continue,
            Who::Address(a) => Person::Address(a),
            Who::Name(n) => {
                if after_greeting(s, start)
                    || start
                        .checked_sub(1)
                        .is_some_and(|p| is_word(s, p, &NOT_TARGET_BEFORE))
                {
                    continue;
                }
                settle(&n, addresses)
            }
            Who::Pronoun => match last_person.clone() {
                Some(p) => p,
                None => continue,
            },
        };
        if !reading.people.contains(&person) {
            reading.people.push(person.clone());
        }
        *last_person = Some(person.clone());
        people.push((start, person));
        before_phrase.push((start, last_person.clone()));
    }
    if phrases.is_empty() {
        return;
    }
    reading.any_phrase = true;
    let phrase_part = |start: usize| part_of.get(s.tok_at(start)).copied().unwrap_or(0);
    let kind_parts: Vec<usize> = phrases.iter().map(|p| phrase_part(p.start)).collect();
    // The part whose people a part gives to.
    let owner = |part: usize| -> Option<usize> {
        if kind_parts.contains(&part) {
            return Some(part);
        }
        kind_parts
            .iter()
            .copied()
            .filter(|&k| k < part)
            .max()
            .or_else(|| kind_parts.iter().copied().filter(|&k| k > part).min())
    };
    let question = intent::is_question(s, &part_starts);
    for p in &phrases {
        let part = phrase_part(p.start);
        let part_start = part_starts
            .get(part)
            .and_then(|&t| s.spans.get(t))
            .map_or(0, |&(b, _)| b);
        if let Some(why) = intent::not_asked(s, part_start, p.start, p.end, question) {
            reading.not_asked.get_or_insert(why);
            continue;
        }
        let mut targets: Vec<Person> = Vec::new();
        let mut or = ors.get(part).copied().unwrap_or(false);
        for (tok, person) in &people {
            let from = part_of.get(*tok).copied().unwrap_or(0);
            if owner(from) == Some(part) {
                or |= ors.get(from).copied().unwrap_or(false);
                if !targets.contains(person) {
                    targets.push(person.clone());
                }
            }
        }
        if targets.len() > 1 && or {
            targets.clear();
        } else if targets.is_empty() {
            // The last person named before the phrase.
            let at = s.tok_at(p.start);
            let earlier = before_phrase
                .iter()
                .rev()
                .find(|(tok, _)| *tok < at)
                .and_then(|(_, person)| person.clone());
            let earlier = earlier.or_else(|| {
                if before_phrase.is_empty() {
                    last_person.clone()
                } else {
                    None
                }
            });
            targets.extend(earlier);
        }
        let job_title = (p.kind == RequestKind::NewAccount)
            .then(|| {
                let part_text = s.norm.get(part_start..).unwrap_or_default();
                NEW_JOB
                    .captures(part_text)
                    .and_then(|c| c.get(1))
                    .map(|m| title_case(m.as_str()))
            })
            .flatten();
        let person_list: Vec<Option<Person>> = if targets.is_empty() {
            vec![None]
        } else {
            targets.into_iter().map(Some).collect()
        };
        for person in person_list {
            reading.asks.push(RawAsk {
                kind: p.kind,
                strength: p.strength,
                person,
                role: p.role,
                job_title: job_title.clone(),
            });
        }
    }
}

/// Per person: actions over symptoms, absorption, one ask per kind; no-one asks dropped when
/// another ask of the kind names someone.
fn settle_asks(raw: Vec<RawAsk>) -> Vec<RawAsk> {
    let has = |person: &Option<Person>, pred: &dyn Fn(&RawAsk) -> bool| {
        raw.iter().any(|a| &a.person == person && pred(a))
    };
    let mut out: Vec<RawAsk> = Vec::new();
    for ask in &raw {
        let p = &ask.person;
        if ask.strength == Strength::Symptom
            && has(p, &|o| o.strength == Strength::Action && o.kind != ask.kind)
        {
            continue;
        }
        // What a kind absorbs for one person is in its file (`Kind::absorbs_for_person`). A
        // reset does not absorb an explicit unlock: "unlock Priya and reset her password" asks
        // both; "locked out" beside a reset is a symptom, dropped by the action rule.
        if has(p, &|o| {
            o.kind.def().absorbs_for_person().contains(&ask.kind)
        }) {
            // A new starter's role ("make her an owner") goes with the new account.
            if let Some(role) = ask.role
                && let Some(new) = out
                    .iter_mut()
                    .find(|o| o.kind == RequestKind::NewAccount && o.person == *p)
            {
                new.role = new.role.or(Some(role));
            }
            continue;
        }
        if p.is_none() && raw.iter().any(|o| o.kind == ask.kind && o.person.is_some()) {
            continue;
        }
        if let Some(same) = out
            .iter_mut()
            .find(|o| o.kind == ask.kind && o.person == ask.person)
        {
            same.role = same.role.or(ask.role);
            same.job_title = same.job_title.take().or(ask.job_title.clone());
            continue;
        }
        out.push(ask.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestKind::*;

    fn name(n: &str) -> Option<Person> {
        Some(Person::Name(n.into()))
    }
    fn addr(a: &str) -> Option<Person> {
        Some(Person::Address(a.into()))
    }

    fn asks(text: &str) -> Vec<(RequestKind, Option<Person>)> {
        read(
            text,
            &["rosehill.care@nhs.example".to_string()],
            &["rosehill".to_string()],
        )
        .asks
        .into_iter()
        .map(|a| (a.kind, a.person))
        .collect()
    }

    fn why(text: &str) -> Option<NotAsked> {
        let r = read(text, &[], &[]);
        assert!(r.asks.is_empty(), "{text}: {:?}", r.asks);
        r.not_asked
    }

    #[test]
    fn one_person_one_kind() {
        for (text, kind, who) in [
            (
                "Ravi Gupta can't remember his password, could you sort it?",
                PasswordReset,
                "Ravi Gupta",
            ),
            (
                "Could Fatima Ali be given access to the shared inbox",
                AddMember,
                "Fatima Ali",
            ),
            ("Please unlock Mr R Gupta.", Unlock, "Mr R Gupta"),
            (
                "Sam Green shouldn't have access any more.",
                RemoveMember,
                "Sam Green",
            ),
            (
                "Amy Jones has handed in her notice and finishes today.",
                Leaver,
                "Amy Jones",
            ),
            (
                "Can Tom Smith look after the mailbox as well as me?",
                ChangeRole,
                "Tom Smith",
            ),
            (
                "Kim Lee keeps getting told the password is wrong.",
                PasswordReset,
                "Kim Lee",
            ),
            (
                "Could you let Priya into the shared inbox please",
                AddMember,
                "Priya",
            ),
            (
                "Siobhán O'Neil is locked out again",
                Unlock,
                "Siobhán O'Neil",
            ),
            (
                "please take Joe Bloggs off the inbox",
                RemoveMember,
                "Joe Bloggs",
            ),
            ("Hi Sam, please unlock Joe", Unlock, "Joe"),
            ("Ravi is locked out. Please unlock him.", Unlock, "Ravi"),
            (
                "Please make Tom Smith an owner of the mailbox",
                ChangeRole,
                "Tom Smith",
            ),
            (
                "PLEASE RESET RAVI GUPTA'S PASSWORD",
                PasswordReset,
                "RAVI GUPTA",
            ),
        ] {
            assert_eq!(asks(text), vec![(kind, name(who))], "{text}");
        }
    }

    #[test]
    fn addresses_and_names_of_addresses() {
        assert_eq!(
            asks("Kim is locked out, please unlock her account: kim.lee@nhs.example"),
            vec![(Unlock, addr("kim.lee@nhs.example"))]
        );
        assert_eq!(
            asks("please reset the password for tom.smith@nhs.example"),
            vec![(PasswordReset, addr("tom.smith@nhs.example"))]
        );
        // The sending mailbox is never the target.
        assert_eq!(
            asks("Please add Sam to the inbox (rosehill.care@nhs.example)"),
            vec![(AddMember, name("Sam"))]
        );
    }

    #[test]
    fn several_asks() {
        assert_eq!(
            asks("new passwords for Ravi and Fatima please"),
            vec![
                (PasswordReset, name("Ravi")),
                (PasswordReset, name("Fatima"))
            ]
        );
        assert_eq!(
            asks("Ravi and Fatima both need new passwords"),
            vec![
                (PasswordReset, name("Ravi")),
                (PasswordReset, name("Fatima"))
            ]
        );
        assert_eq!(
            asks("unlock Joe and add him to the inbox"),
            vec![(Unlock, name("Joe")), (AddMember, name("Joe"))]
        );
        assert_eq!(
            asks("Please add Ravi Gupta and Fatima Ali to the shared mailbox."),
            vec![
                (AddMember, name("Ravi Gupta")),
                (AddMember, name("Fatima Ali"))
            ]
        );
        assert_eq!(
            asks(
                "Please reset the password for tom.smith@nhs.example and add sam.green@nhs.example to the mailbox."
            ),
            vec![
                (PasswordReset, addr("tom.smith@nhs.example")),
                (AddMember, addr("sam.green@nhs.example"))
            ]
        );
        assert_eq!(
            asks(
                "Two changes to the shared mailbox please:\n- add Peter Hughes\n- remove Joe Bloggs"
            ),
            vec![
                (AddMember, name("Peter Hughes")),
                (RemoveMember, name("Joe Bloggs"))
            ]
        );
        assert_eq!(
            asks("Amy has left. Please also unlock Kim."),
            vec![(Leaver, name("Amy")), (Unlock, name("Kim"))]
        );
        assert_eq!(
            asks("Please unlock:\n- Joe Bloggs\n- Kim Lee\n- Priya Shah"),
            vec![
                (Unlock, name("Joe Bloggs")),
                (Unlock, name("Kim Lee")),
                (Unlock, name("Priya Shah"))
            ]
        );
    }

    #[test]
    fn a_list_under_a_colon() {
        assert_eq!(
            asks(
                "Could you create accounts for:\n\nHannah Moss - Receptionist\nOliver Bennett - Phlebotomist"
            ),
            vec![
                (NewAccount, name("Hannah Moss")),
                (NewAccount, name("Oliver Bennett"))
            ]
        );
    }

    #[test]
    fn the_explicit_action_wins() {
        assert_eq!(
            asks("Joe keeps getting locked out, please reset his password"),
            vec![(PasswordReset, name("Joe"))]
        );
        assert_eq!(
            asks("Joe keeps getting locked out. Please reset it."),
            vec![(PasswordReset, name("Joe"))]
        );
        assert_eq!(
            asks("Please unlock Priya Sharma and reset her password too"),
            vec![
                (Unlock, name("Priya Sharma")),
                (PasswordReset, name("Priya Sharma"))
            ]
        );
        assert_eq!(
            asks("Amy has left, please remove her from the mailbox"),
            vec![(Leaver, name("Amy"))]
        );
        assert_eq!(
            asks("Sam doesn't need access to the mailbox anymore"),
            vec![(RemoveMember, name("Sam"))]
        );
        assert_eq!(
            asks("Don't remove Joe, just reset his password"),
            vec![(PasswordReset, name("Joe"))]
        );
    }

    #[test]
    fn names_joined_by_or_are_not_split() {
        assert_eq!(
            asks(
                "please reset the password for tom.smith@nhs.example or amy.jones@nhs.example, whichever of them is on shift"
            ),
            vec![(PasswordReset, None)]
        );
    }

    #[test]
    fn new_starters() {
        let r = read(
            "A new carer, Hannah Moss, starts next week — can she have an account?",
            &[],
            &[],
        );
        assert_eq!(r.asks.len(), 1, "{:?}", r.asks);
        assert_eq!(r.asks[0].kind, NewAccount);
        assert_eq!(r.asks[0].person, name("Hannah Moss"));
        assert_eq!(r.asks[0].job_title.as_deref(), Some("Carer"));
        let r = read(
            "We have a new starter by the name of Joe Bloggs, please set him up an account",
            &[],
            &[],
        );
        assert_eq!(r.asks.len(), 1, "{:?}", r.asks);
        assert_eq!(r.asks[0].person, name("Joe Bloggs"));
        let r = read("Priya Shah needs an NHSmail address", &[], &[]);
        assert_eq!(
            (r.asks[0].kind, r.asks[0].person.clone()),
            (NewAccount, name("Priya Shah"))
        );
    }

    #[test]
    fn never_acts_on_what_was_not_asked() {
        assert_eq!(
            why("Does Joe need a new password?"),
            Some(NotAsked::Question)
        );
        assert_eq!(why("How do I reset my password?"), Some(NotAsked::Question));
        assert_eq!(why("Is Kim still locked out?"), Some(NotAsked::Question));
        assert_eq!(
            why("Ignore my last email, don't take Joe off."),
            Some(NotAsked::Negated)
        );
        assert_eq!(why("No need to unlock Sam now."), Some(NotAsked::Negated));
        assert_eq!(
            why("If Kim gets locked out again we'll ask you to unlock her."),
            Some(NotAsked::Hypothetical)
        );
        assert_eq!(why("If the new password fails we'll be in touch."), None);
        assert_eq!(
            why("Joe, who you unlocked last week, says thanks."),
            Some(NotAsked::InPassing)
        );
        assert_eq!(why("Thanks, that worked!"), None);
    }

    #[test]
    fn polite_questions_are_requests() {
        assert_eq!(
            asks("Could you reset Joe's password?"),
            vec![(PasswordReset, name("Joe"))]
        );
        assert_eq!(
            asks("Hi, is it possible to unlock Kim Lee?"),
            vec![(Unlock, name("Kim Lee"))]
        );
        assert_eq!(
            asks("If you could add Sam to the inbox that would be great"),
            vec![(AddMember, name("Sam"))]
        );
    }

    #[test]
    fn hostile_input_is_bounded() {
        let many: String = (0..3000).map(|i| format!("Person{i} Smith, ")).collect();
        let r = read(&format!("Please unlock {many}"), &[], &[]);
        assert!(r.asks.len() <= MAX_ASKS);
        let long = "a".repeat(200_000);
        assert!(read(&long, &[], &[]).asks.is_empty());
    }
}
