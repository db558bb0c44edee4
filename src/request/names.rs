//! People named in a sentence: a run of capitalised words ("Ravi Gupta", "Mr R Gupta",
//! "Siobhán O'Neil", "Amy Smith-Jones"), up to four words, not a word of the stop list (greetings,
//! sign-offs, days, months, the desk's own words) and not a place or an organisation (a run with
//! "Care", "Home", "House", "Surgery"… is the site, not a person). A run right after "at"/"in"
//! is a place. A possessive `'s` is dropped. Pronouns (he, him, his, she, her, they, them, their)
//! are found separately: the grammar points them at the last person named before them.

use crate::request::tokens::{Sentence, Tok};
use std::collections::HashSet;
use std::sync::LazyLock;

/// The word lists as sets: every capitalised word of every message is looked up.
static STOP_SET: LazyLock<HashSet<&'static str>> = LazyLock::new(|| STOP.iter().copied().collect());
static COMMON_SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON.iter().copied().collect());
static PLACE_SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| PLACE.iter().copied().collect());

/// A person or address mentioned, with the tokens it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Name(String),
    Address(String),
    Pronoun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub who: Who,
    pub start: usize,
    pub end: usize,
}

/// Titles kept as part of a name.
const TITLES: [&str; 8] = ["mr", "mrs", "ms", "miss", "dr", "mx", "prof", "sister"];

/// Capitalised words that are never (part of) a person's name here.
const STOP: &[&str] = &[
    // Greetings, sign-offs, small words that start sentences.
    "hi",
    "hello",
    "hey",
    "dear",
    "morning",
    "afternoon",
    "evening",
    "good",
    "thanks",
    "thank",
    "many",
    "kind",
    "kindest",
    "best",
    "regards",
    "cheers",
    "warm",
    "wishes",
    "sincerely",
    "yours",
    "please",
    "pls",
    "plz",
    "could",
    "can",
    "would",
    "will",
    "may",
    "might",
    "should",
    "shall",
    "we",
    "i",
    "i'm",
    "i've",
    "i'd",
    "i'll",
    "im",
    "me",
    "my",
    "our",
    "us",
    "you",
    "your",
    "she",
    "he",
    "they",
    "her",
    "his",
    "him",
    "them",
    "their",
    "it",
    "its",
    "it's",
    "this",
    "that",
    "these",
    "those",
    "the",
    "a",
    "an",
    "also",
    "and",
    "or",
    "but",
    "so",
    "just",
    "as",
    "if",
    "when",
    "is",
    "are",
    "was",
    "were",
    "has",
    "have",
    "had",
    "do",
    "does",
    "did",
    "not",
    "no",
    "yes",
    "ok",
    "okay",
    "sorry",
    "hope",
    "apologies",
    "there",
    "here",
    "what",
    "who",
    "why",
    "how",
    "where",
    "which",
    "all",
    "any",
    "some",
    "both",
    "each",
    "another",
    "one",
    "two",
    "three",
    "further",
    "following",
    "re",
    "fw",
    "fwd",
    "subject",
    "sent",
    "from",
    "to",
    "cc",
    "date",
    "urgent",
    "important",
    "asap",
    "note",
    "ps",
    "nb",
    "update",
    "request",
    "re:",
    "today",
    "tomorrow",
    "yesterday",
    "tonight",
    "week",
    "weekend",
    "then",
    "now",
    "again",
    "once",
    "after",
    "before",
    "since",
    "until",
    "unfortunately",
    "however",
    "apparently",
    // Days and months.
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "mon",
    "tue",
    "tues",
    "wed",
    "thu",
    "thur",
    "thurs",
    "fri",
    "sat",
    "sun",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    // The desk's own words.
    "new",
    "starter",
    "starters",
    "account",
    "accounts",
    "password",
    "passwords",
    "reset",
    "unlock",
    "unlocked",
    "locked",
    "add",
    "remove",
    "leaver",
    "leavers",
    "leaving",
    "owner",
    "owners",
    "member",
    "members",
    "mailbox",
    "inbox",
    "shared",
    "nhsmail",
    "nhs",
    "email",
    "e-mail",
    "mail",
    "access",
    "role",
    "admin",
    "administrator",
    "helpdesk",
    "help",
    "desk",
    "it",
    "support",
    "service",
    "services",
    "user",
    "users",
    "login",
    "log",
    "staff",
    "team",
    "manager",
    "deputy",
    "registered",
    "carer",
    "carers",
    "nurse",
    "nurses",
    "senior",
    "night",
    "day",
    "lead",
    "leader",
    "assistant",
    "receptionist",
    "coordinator",
    "head",
    "office",
    "outlook",
    "teams",
    "microsoft",
    "windows",
    "gmail",
    "google",
    "name",
    "full",
    "surname",
    "forename",
    "first",
    "last",
    "job",
    "title",
    "address",
    "account:",
    "hr",
    "ict",
    "dept",
    "department",
    "ref",
    "reference",
    "ticket",
    "code",
    "confirm",
    "confirmation",
    "done",
    "attached",
    "hiya",
    "hca",
    "hcas",
    "gp",
    "gps",
    "rgn",
    "rmn",
    "below",
    "above",
    "forwarded",
    "original",
    "message",
];

/// Ordinary words that open a sentence or fill an all-capitals one: never a name there
/// ("Poor Gareth", "GIVE NADIA HUSSAIN ACCESS"). Words that are also common first names (Mark,
/// Grace, Will…) are not listed.
const COMMON: &[&str] = &[
    "for",
    "in",
    "on",
    "at",
    "of",
    "with",
    "by",
    "about",
    "into",
    "onto",
    "off",
    "out",
    "up",
    "down",
    "over",
    "give",
    "get",
    "got",
    "make",
    "create",
    "set",
    "let",
    "put",
    "take",
    "left",
    "leave",
    "disable",
    "enable",
    "close",
    "delete",
    "starting",
    "start",
    "starts",
    "started",
    "charge",
    "poor",
    "sad",
    "sadly",
    "unfortunately",
    "quick",
    "quickly",
    "another",
    "other",
    "same",
    "only",
    "still",
    "already",
    "both",
    "every",
    "everyone",
    "someone",
    "anyone",
    "nobody",
    "need",
    "needs",
    "needed",
    "want",
    "wants",
    "send",
    "sending",
    "see",
    "use",
    "using",
    "sort",
    "fix",
    "change",
    "changes",
    "changed",
    "move",
    "moved",
    "keep",
    "keeps",
    "told",
    "wrong",
    "again",
    "soon",
    "asap",
    "now",
    "here",
    "there",
    "able",
    "unable",
    "working",
    "work",
    "works",
    "joined",
    "joining",
    "join",
    "left",
    "gone",
    "going",
    "coming",
    "come",
    "back",
    "home",
    "remember",
    "forgot",
    "forgotten",
    "holiday",
    "sick",
    "leave",
    "notice",
    "last",
    "final",
    "next",
    "this",
    "that",
    "tomorrow",
    "morning",
    "afternoon",
    "evening",
    "action",
    "urgency",
    "urgent",
    "priority",
    "level",
    "details",
    "date",
    "start",
    "end",
    "type",
    "status",
    "new",
    "old",
    "current",
    "previous",
    "mobile",
    "phone",
    "tel",
    "ext",
    "fax",
    "site",
    "location",
];

/// Words that make a run a place or an organisation, not a person.
const PLACE: &[&str] = &[
    "care",
    "home",
    "homes",
    "house",
    "lodge",
    "court",
    "surgery",
    "practice",
    "trust",
    "nhs",
    "ltd",
    "limited",
    "centre",
    "center",
    "services",
    "manor",
    "hall",
    "hospital",
    "ward",
    "unit",
    "group",
    "mailbox",
    "inbox",
    "clinic",
    "road",
    "street",
    "lane",
    "gardens",
    "park",
    "view",
    "council",
    "health",
    "medical",
    "village",
    "close",
    "place",
    "grange",
    "farm",
    "hospice",
    "nursing",
    "residential",
    "hub",
    "pharmacy",
    "partnership",
    "foundation",
    "uk",
    "plc",
];

/// Words before "to" that make what follows a place.
const MOTION: [&str; 12] = [
    "home",
    "back",
    "moving",
    "moved",
    "move",
    "go",
    "going",
    "went",
    "return",
    "returning",
    "relocating",
    "travelling",
];

const PRONOUNS: [&str; 8] = ["he", "him", "his", "she", "her", "they", "them", "their"];

fn is_capitalised(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// The word without a possessive `'s`/`’s` (and a trailing `'`).
fn without_possessive(word: &str) -> &str {
    let w = word
        .strip_suffix("'s")
        .or_else(|| word.strip_suffix("’s"))
        .or_else(|| word.strip_suffix("'S"))
        .unwrap_or(word);
    w.trim_end_matches(['\'', '’'])
}

/// Whether a word is on the stop list (case-insensitive, possessive dropped).
pub fn is_stop(word: &str) -> bool {
    let lower = without_possessive(word).to_lowercase().replace('’', "'");
    // Contractions (don't, can't, I'll, we're) are never names.
    lower.ends_with("n't")
        || lower.ends_with("'ll")
        || lower.ends_with("'re")
        || lower.ends_with("'ve")
        || lower.ends_with("'m")
        || lower.ends_with("'d")
        || STOP_SET.contains(lower.as_str())
}

fn is_place(word: &str) -> bool {
    PLACE_SET.contains(without_possessive(word).to_lowercase().as_str())
}

/// Whether a word is in upper case throughout (two letters or more).
fn all_caps(word: &str) -> bool {
    word.chars().filter(|c| c.is_alphabetic()).count() > 1 && !word.chars().any(char::is_lowercase)
}

/// The people, addresses and pronouns a sentence mentions, in order.
pub fn mentions(s: &Sentence<'_>) -> Vec<Found> {
    mentions_except(s, &[])
}

/// As [`mentions`], with words that are never a name here (the sending site's own words,
/// "rosehill" of rosehill.care@…).
pub fn mentions_except(s: &Sentence<'_>, site: &[String]) -> Vec<Found> {
    let mut out = Vec::new();
    // In mixed-case text an all-capitals word is an acronym (GP, HCA, PC); in an all-capitals
    // sentence, ordinary words are not names.
    let words_total = s.toks.iter().filter(|t| matches!(t, Tok::Word(_))).count();
    let caps_total = s
        .toks
        .iter()
        .filter(|t| matches!(t, Tok::Word(w) if all_caps(w)))
        .count();
    let shape = Shape {
        shouting: caps_total * 2 > words_total,
        first_word: s.toks.iter().position(|t| matches!(t, Tok::Word(_))),
    };
    let mut i = 0;
    while i < s.toks.len() {
        match s.toks.get(i) {
            Some(Tok::Address(a)) => {
                out.push(Found {
                    who: Who::Address(a.to_lowercase()),
                    start: i,
                    end: i + 1,
                });
                i += 1;
            }
            Some(Tok::Word(w)) => {
                let lower = w.to_lowercase();
                if PRONOUNS.contains(&lower.as_str()) {
                    out.push(Found {
                        who: Who::Pronoun,
                        start: i,
                        end: i + 1,
                    });
                    i += 1;
                    continue;
                }
                let (end, name) = name_run(s, i, site, &shape);
                if end > i {
                    if let Some(name) = name {
                        out.push(Found {
                            who: Who::Name(name),
                            start: i,
                            end,
                        });
                    }
                    i = end;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The run of name words from `start`: where it ends, and the name when it is a person's.
/// What a sentence's shape says about its capitals, computed once per sentence.
struct Shape {
    shouting: bool,
    first_word: Option<usize>,
}

fn name_run(
    s: &Sentence<'_>,
    start: usize,
    site: &[String],
    shape: &Shape,
) -> (usize, Option<String>) {
    let mut words: Vec<&str> = Vec::new();
    let mut i = start;
    let mut place = false;
    let mut has_name_word = false;
    let shouting = shape.shouting;
    let first_word = shape.first_word == Some(start)
        || matches!(
            start.checked_sub(1).and_then(|j| s.toks.get(j)),
            Some(Tok::Punct('\n' | '-' | '•' | '*' | ':'))
        );
    while let Some(Tok::Word(w)) = s.toks.get(i) {
        let lower = w.to_lowercase();
        let bare = without_possessive(&lower).to_string();
        if (all_caps(w) && !shouting)
            || ((shouting || (first_word && i == start)) && COMMON_SET.contains(bare.as_str()))
            || site.contains(&bare)
        {
            break;
        }
        let title = TITLES.contains(&lower.as_str());
        let initial = w.chars().count() == 1 && is_capitalised(w);
        if !is_capitalised(w) || (!title && !initial && is_stop(w)) && !is_place(w) {
            break;
        }
        if is_place(w) {
            place = true;
        } else if !title && !initial {
            has_name_word = true;
        }
        words.push(without_possessive(w));
        i += 1;
        // A possessive ends the name ("Ravi's password"); so does a dot that is not an initial's.
        if without_possessive(w).len() != w.len() {
            break;
        }
        if let Some(Tok::Punct('.')) = s.toks.get(i)
            && (initial || title)
        {
            i += 1;
        }
    }
    if words.is_empty() {
        return (start, None);
    }
    let after_place_word = start
        .checked_sub(1)
        .and_then(|p| match s.toks.get(p) {
            Some(Tok::Word(w)) => Some(w.to_lowercase()),
            _ => None,
        })
        .is_some_and(|w| matches!(w.as_str(), "at" | "in" | "from" | "near" | "visiting"));
    // "going back home to Gdansk", "moving to Leeds": a place.
    let after_motion = start.checked_sub(2).is_some_and(|p| {
        matches!(s.toks.get(p + 1), Some(Tok::Word(to)) if to.eq_ignore_ascii_case("to"))
            && matches!(s.toks.get(p), Some(Tok::Word(w)) if MOTION.contains(&w.to_lowercase().as_str()))
    });
    let after_place_word = after_place_word || after_motion;
    let ok = has_name_word && !place && !after_place_word && words.len() <= 4;
    (i, ok.then(|| words.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tokens::sentences;

    fn names(text: &str) -> Vec<String> {
        sentences(text)
            .iter()
            .flat_map(|s| mentions(s))
            .filter_map(|f| match f.who {
                Who::Name(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn people_in_sentences() {
        for (text, want) in [
            ("Ravi Gupta can't remember his password", vec!["Ravi Gupta"]),
            ("could Fatima Ali be given access", vec!["Fatima Ali"]),
            ("Please unlock Mr R Gupta", vec!["Mr R Gupta"]),
            ("Please unlock Mr. R. Gupta today", vec!["Mr R Gupta"]),
            ("Dr Siobhán O'Neil is locked out", vec!["Dr Siobhán O'Neil"]),
            ("reset Amy Smith-Jones's password", vec!["Amy Smith-Jones"]),
            (
                "new passwords for Ravi and Fatima please",
                vec!["Ravi", "Fatima"],
            ),
            ("Chloë Brontë needs access", vec!["Chloë Brontë"]),
        ] {
            assert_eq!(names(text), want, "{text}");
        }
    }

    #[test]
    fn not_people() {
        for text in [
            "Please add her to the Shared Mailbox",
            "We at Rosehill Care need help",
            "Kind regards",
            "Many Thanks",
            "She needs an NHSmail address by Monday 3 March",
            "The Helpdesk said to email IT Support",
            "Hi, Please Reset The Password",
            "She works at Rosehill",
        ] {
            assert_eq!(names(text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn all_capitals_and_pronouns() {
        assert_eq!(
            names("PLEASE RESET RAVI GUPTA'S PASSWORD"),
            vec!["RAVI GUPTA"]
        );
        let s = &sentences("unlock Joe and add him to the inbox")[0];
        let found = mentions(s);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].who, Who::Pronoun);
    }
}
