//! Whether a phrase that names a kind is asked, or only talked about.
//!
//! - **Question**: a sentence that asks *about* a change ("does Joe need a new password?", "how
//!   do I reset my password", "is Kim locked out?"). A polite question is a request: one that
//!   starts with could/can/would/will/may (you), "any chance", "is it possible", "I was
//!   wondering if". A sentence ending in `?` that does not start (or end its last part) that way
//!   is a question.
//! - **Negated**: a negation before the phrase in its part of the sentence ("don't take Joe
//!   off", "no need to unlock Sam", "ignore my email about unlocking Joe").
//! - **Hypothetical**: "if"/"unless"/"in case"/"whether" earlier in the sentence ("if the new
//!   password fails we'll be in touch"); "if you could …", "if possible" are only polite.
//! - **In passing**: an action the helpdesk already did ("Joe, who you unlocked last week, says
//!   thanks", "thanks for resetting…").

use crate::request::model::NotAsked;
use crate::request::tokens::Sentence;
use regex::Regex;
use std::sync::LazyLock;

/// Words that open a sentence without changing what it asks.
const OPENERS: [&str; 14] = [
    "hi", "hello", "hey", "dear", "also", "and", "so", "but", "ok", "okay", "oh", "then", "please",
    "pls",
];

/// How a polite request starts.
static POLITE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:could|can|would|will|may|might|cld|pls|please|any chance|is there any chance|is it possible|would it be possible|is there any way|i was wondering|i wonder|we were wondering|wondering if|do you mind|would you mind|could we|can we|are you able|are you able to|would you be able|will you be able|is someone able|is anyone able)\b",
    )
    .expect("static regex")
});

/// How a question about a change starts. Without a `?` only the words that cannot open an
/// imperative count ("Do not remove Joe" is an instruction).
static INTERROGATIVE_UNMARKED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:how|why|what|when|where|which|who|whose|does|is|are|was|were|should|shall|has)\b",
    )
    .expect("static regex")
});

/// A negation that takes back what follows it in the same part of the sentence.
static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:don t|do not|dont|doesn t|does not|didn t|did not|no need|not need|not needed|needn t|need not|never mind|nevermind|ignore|disregard|cancel my|cancel the|hold off|not to|shouldn t|should not|won t need|will not need|won t|will not|wont|no longer need|not necessary|not required|isn t necessary|no longer required|no longer|not yet|rather than|instead of|not)\b")
        .expect("static regex")
});

/// Uncertainty before the phrase: "might be leaving", "may need an account".
static UNSURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:(?:we|she|he|they|i|it|you) (?:may|might)|might|may be|may need|may have|possibly|perhaps|maybe|probably|thinking of|thinking about|considering|planning to|likely to|could be|thinks (?:she|he|they) might)\b")
        .expect("static regex")
});
/// A change already made, named by what follows it: "the password reset you did … worked".
static DONE_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^ (?:\w+ ){0,1}(?:you (?:did|sent|made|set up|gave|organised|arranged|processed)|worked|has worked|went through|was done|has been done|was sorted)\b")
        .expect("static regex")
});

/// A condition that makes what follows hypothetical.
static CONDITION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:if|unless|in case|whether|in the event|should (?:she|he|they|it) (?:need|ever))\b",
    )
    .expect("static regex")
});

/// Polite conditions, removed before [`CONDITION`] is looked for.
static POLITE_CONDITION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:if you (?:could|can|would|wouldn t mind|don t mind|get a (?:chance|minute|moment))|if possible|if that s (?:ok|okay|alright|possible)|if poss|if it s (?:ok|okay|possible)|as soon as|when you (?:can|get a chance))\b")
        .expect("static regex")
});

/// Someone already did it: "you unlocked", "who you reset", "thanks for resetting".
static DONE_BY_YOU: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\b(?:you|u|you ve|you have|you kindly|you already|you just|who|which|already|been|was|were|had) (?:\w+ )?$)|(?:\bthanks? (?:you )?(?:for|so much for) (?:\w+ ){0,2}$)")
        .expect("static regex")
});
/// A modal that makes "you reset" a request again ("could you reset").
static MODAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:could|can|would|will|please|to|pls|kindly|may|must|need|needs)\s+(?:\w+ ){0,2}$",
    )
    .expect("static regex")
});

/// The sentence's words from token `from` up to `to` (normalised), without openers.
fn opening<'s>(s: &'s Sentence<'_>, from: usize) -> &'s str {
    let mut at = s.spans.get(from).map_or(0, |&(start, _)| start);
    loop {
        let rest = s.norm.get(at..).unwrap_or_default().trim_start();
        at = s.norm.len() - rest.len();
        let first = rest.split(' ').next().unwrap_or_default();
        if !first.is_empty() && OPENERS.contains(&first) {
            at += first.len() + 1;
            if at >= s.norm.len() {
                return "";
            }
        } else {
            return rest;
        }
    }
}

/// Whether the sentence is a question about a change rather than a request. `clauses` are the
/// token indices where the sentence's parts start.
pub fn is_question(s: &Sentence<'_>, clauses: &[usize]) -> bool {
    let starts: Vec<&str> = clauses
        .iter()
        .map(|&c| opening(s, c))
        .filter(|o| !o.is_empty())
        .collect();
    let polite = starts.iter().any(|o| POLITE.is_match(o));
    if s.question_mark {
        !polite
    } else {
        starts
            .first()
            .is_some_and(|o| INTERROGATIVE_UNMARKED.is_match(o))
            && !polite
    }
}

/// Why the phrase at `phrase_start..phrase_end` (bytes of `s.norm`) is not asked, if it is not.
/// `clause_start` is the byte where the phrase's part of the sentence begins.
pub fn not_asked(
    s: &Sentence<'_>,
    clause_start: usize,
    phrase_start: usize,
    phrase_end: usize,
    question: bool,
) -> Option<NotAsked> {
    if question {
        return Some(NotAsked::Question);
    }
    let before_in_clause = s.norm.get(clause_start..phrase_start).unwrap_or_default();
    if NEGATION.is_match(before_in_clause) {
        return Some(NotAsked::Negated);
    }
    if UNSURE.is_match(before_in_clause) {
        return Some(NotAsked::Hypothetical);
    }
    let after = s.norm.get(phrase_end..).unwrap_or_default();
    if DONE_AFTER.is_match(after) {
        return Some(NotAsked::InPassing);
    }
    let before = s.norm.get(..phrase_start).unwrap_or_default();
    let before = POLITE_CONDITION.replace_all(before, " ");
    if CONDITION.is_match(&before) {
        return Some(NotAsked::Hypothetical);
    }
    if DONE_BY_YOU.is_match(before_in_clause) && !MODAL.is_match(before_in_clause) {
        let phrase = s.norm.get(phrase_start..).unwrap_or_default();
        let first = phrase.split(' ').next().unwrap_or_default();
        let past = first.ends_with("ed")
            || matches!(
                first,
                "reset" | "set" | "made" | "gave" | "given" | "put" | "took" | "sorted" | "let"
            )
            || first.ends_with("ing");
        if past {
            return Some(NotAsked::InPassing);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tokens::sentences;

    fn question(text: &str) -> bool {
        let s = &sentences(text)[0];
        is_question(s, &[0])
    }

    #[test]
    fn questions_and_polite_requests() {
        for q in [
            "Does Joe need a new password?",
            "how do I reset my password",
            "Is Kim locked out?",
            "Has Joe's password been reset?",
            "Why was Amy's account locked?",
            "Joe needs a new password?",
            "Hi, what do I do if someone is locked out?",
        ] {
            assert!(question(q), "{q}");
        }
        for r in [
            "Could you reset Joe's password?",
            "can you unlock Kim please?",
            "Please could you add Sam to the inbox?",
            "Is it possible to unlock Joe?",
            "Any chance you could reset Ravi's password?",
            "Hi, would you be able to unlock Kim?",
            "Please reset Joe's password",
        ] {
            assert!(!question(r), "{r}");
        }
    }

    fn reason(text: &str, phrase_word: &str) -> Option<NotAsked> {
        let s = &sentences(text)[0];
        let at = s.norm.find(phrase_word).unwrap_or_default();
        not_asked(s, 0, at, at + phrase_word.len(), false)
    }

    #[test]
    fn negations_hypotheticals_and_mentions() {
        assert_eq!(
            reason("don't take Joe off", "take"),
            Some(NotAsked::Negated)
        );
        assert_eq!(
            reason("no need to unlock Sam", "unlock"),
            Some(NotAsked::Negated)
        );
        assert_eq!(
            reason("please ignore my email about unlocking Joe", "unlocking"),
            Some(NotAsked::Negated)
        );
        assert_eq!(
            reason(
                "if the new password fails we'll be in touch",
                "new password"
            ),
            Some(NotAsked::Hypothetical)
        );
        assert_eq!(
            reason("Joe, who you unlocked last week, says thanks", "unlocked"),
            Some(NotAsked::InPassing)
        );
        assert_eq!(
            reason("thanks for resetting Joe's password", "resetting"),
            Some(NotAsked::InPassing)
        );
        assert_eq!(reason("could you reset Joe's password", "reset"), None);
        assert_eq!(
            reason(
                "if you could reset Joe's password that would be great",
                "reset"
            ),
            None
        );
        assert_eq!(reason("if possible please unlock Kim", "unlock"), None);
        assert_eq!(reason("please unlock Kim", "unlock"), None);
    }
}
