//! How people ask for each kind, matched against a sentence's normalised copy (see
//! [`crate::request::tokens`]): lower case, one space between words, `can't` as `can t`, every
//! address as one placeholder word.
//!
//! Each phrase is an *action* ("please reset", "unlock", "remove … from the mailbox") or a
//! *symptom* ("keeps getting locked out", "can't remember his password", "keeps getting told the
//! password is wrong"). A symptom alone is read as the ask it implies; when the same person also
//! has an explicit action, the action wins ("Joe keeps getting locked out, please reset it" is
//! a password reset).

use crate::request::kinds::{RequestKind, Role};
use regex::Regex;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    Action,
    Symptom,
}

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

/// Where a mailbox is named.
const MAILBOX: &str =
    r"(?:[a-z]+ ){0,3}(?:mailbox|mail box|inbox|in box|distribution list|email account|emails)";

/// Job words after "new": a new carer is a new starter.
const JOBS: &str = r"(?:senior |night |day |bank |agency |trainee |student |relief |weekend |part time |full time )?(?:carers?|care assistants?|care workers?|support workers?|healthcare assistants?|hcas?|nurses?|receptionists?|administrators?|admins?|managers?|deputy managers?|cooks?|chefs?|housekeepers?|domestics?|activities coordinators?|team leaders?|apprentices?|volunteers?|recruits?|hires?|gps?|doctors?|pharmacists?|physios?|secretar(?:y|ies))";

/// Words between "take" and "off" that are not a person.
const NOT_A_PERSON: [&str; 14] = [
    "the",
    "a",
    "an",
    "day",
    "days",
    "time",
    "it",
    "this",
    "that",
    "week",
    "shift",
    "some",
    "afternoon",
    "morning",
];

fn wording() -> Vec<(RequestKind, Strength, String)> {
    use RequestKind::*;
    use Strength::*;
    vec![
        // ---- new_account
        (NewAccount, Action, r"\bnew (?:staff |nhs |email |e mail |user |nhsmail )?(?:accounts?|starters?|users?|joiners?|employees?|colleagues?|members? of (?:staff|the team)|staff members?|team members?)\b".into()),
        (NewAccount, Action, r"\b(?:create|creating|set up|setup|open|make|setting up|sort out|issue) (?:a |an )?(?:new )?(?:user |staff |email |e mail |nhsmail |nhs mail |nhs |login |log in )*(?:accounts?|address|login|log in|logon)\b".into()),
        (NewAccount, Action, r"\baccount (?:creation|request|set up|setup) for (?:a |our )?new\b".into()),
        (NewAccount, Action, format!(r"\b(?:a |an |our |the |two |another )?new {JOBS}\b")),
        (NewAccount, Action, r"\b(?:have|get|need|needs|needed|require|requires|given|be given|issued|want|wants) (?:her |him |them |she |he |they )?(?:an? |her own |his own |their own |some )?(?:new )?(?:nhsmail |nhs mail |nhs |email |e mail |user |staff |system |computer |login |log in )*(?:accounts?|address|email|login|log in|logon|nhsmail)\b".into()),
        (NewAccount, Action, r"\b(?:joining|joined|joins|starting|started|starts|start) (?:\w+ ){0,3}(?:needs?|will need|requires?) (?:an? )?(?:\w+ )?(?:accounts?|address|login)\b".into()),
        // ---- password_reset
        (PasswordReset, Action, r"\bpasswords? (?:reset|resets|resetting|re setting|change|changed please|changing)\b".into()),
        (PasswordReset, Action, r"\bresets? (?:\w+ ){0,4}passwords?\b".into()),
        (PasswordReset, Action, r"\bchange (?:\w+ ){0,3}passwords?\b".into()),
        (PasswordReset, Action, r"\b(?:a |some |two |three )?new passwords? (?:for|please|needed|required|pls)\b".into()),
        (PasswordReset, Action, r"\b(?:need|needs|needed|require|requires|want|wants|get|have) (?:a )?new passwords?\b".into()),
        (PasswordReset, Action, r"\b(?:send|issue|give|set|generate|provide) (?:\w+ ){0,3}(?:a )?(?:new |temporary |temp |fresh )passwords?\b".into()),
        (PasswordReset, Action, r"\breset (?:it|this|that|them|him|her|me|(?:his|her|their|my|the) (?:account|login|log in|logon|details))\b".into()),
        (PasswordReset, Action, r"\bsort (?:out )?(?:\w+ ){0,2}passwords?\b".into()),
        (PasswordReset, Action, r"\bpasswords? (?:needs?|need to be|to be) (?:reset|changed|resetting|changing)\b".into()),
        (PasswordReset, Symptom, r"\bforgot(?:ten)? (?:\w+ ){0,2}passwords?\b".into()),
        (PasswordReset, Symptom, r"\bpasswords? (?:is |has |was )?(?:forgotten|expired|has expired)\b".into()),
        (PasswordReset, Symptom, r"\b(?:can t|cannot|can not|doesn t|does not|don t|couldn t) (?:remember|recall) (?:\w+ ){0,2}passwords?\b".into()),
        (PasswordReset, Symptom, r"\bpasswords? (?:is |was |keeps being |keeps coming up |keeps coming back )?(?:wrong|incorrect|invalid|not working|not recognised|not recognized|rejected)\b".into()),
        (PasswordReset, Symptom, r"\bpasswords? (?:doesn t|does not|isn t|is not|won t|will not|wont) (?:work|working|accepted|being accepted|recognised|recognized)\b".into()),
        (PasswordReset, Symptom, r"\b(?:told|says|saying|said|tells her|tells him|tells them) (?:that )?(?:\w+ ){0,2}passwords? (?:is|was|are) (?:wrong|incorrect|invalid)\b".into()),
        (PasswordReset, Symptom, r"\b(?:wrong|incorrect|invalid) passwords?\b".into()),
        // ---- unlock
        (Unlock, Action, r"\bunlock(?:ed|ing|s)?\b".into()),
        (Unlock, Action, r"\brestore (?:\w+ ){0,2}accounts?\b".into()),
        (Unlock, Action, r"\bre ?activat(?:e|ed|es|ing|ion)\b".into()),
        (Unlock, Action, r"\bre ?enabl(?:e|ed|es|ing)\b".into()),
        (Unlock, Action, r"\benable (?:\w+ ){0,2}accounts?\b".into()),
        (Unlock, Action, r"\blet (?:\w+ ){0,3}back (?:in|into|on)\b".into()),
        (Unlock, Action, r"\b(?:turn|turned|switch|switched|put|switching|turning) (?:\w+ )?back on\b".into()),
        (Unlock, Action, r"\breinstat(?:e|ed|es|ing)\b".into()),
        (Unlock, Symptom, r"\blocked out\b".into()),
        (Unlock, Symptom, r"\baccount (?:is |has been |was |got |gets |keeps getting |has got )?(?:locked|blocked)\b".into()),
        (Unlock, Symptom, r"\blocked (?:account|user)\b".into()),
        (Unlock, Symptom, r"\b(?:keeps|keep|kept) (?:getting |being )?locked\b".into()),
        (Unlock, Symptom, r"\b(?:is|was|been|got|gets|getting) locked\b".into()),
        // ---- add_member
        (AddMember, Action, r"\badd (?:a |new )?(?:members?|users?)\b".into()),
        (AddMember, Action, format!(r"\b(?:add|added|adding|put|putting) (?:\w+ ){{0,5}}(?:to|into|onto|on|in) {MAILBOX}\b")),
        (AddMember, Action, r"\badd (?:\w+ ){0,5}as (?:a |an )?(?:members?|owners?|users?|co owners?|joint owners?)\b".into()),
        (AddMember, Action, r"\b(?:give|grant|provide|set up|sort out|sort) (?:\w+ ){0,4}access\b".into()),
        (AddMember, Action, r"\b(?:be |been |being )?given access\b".into()),
        (AddMember, Action, format!(r"\b(?:have|get|need|needs|needed|require|requires|want|wants) (?:\w+ ){{0,2}}access (?:to|into|for|on) {MAILBOX}\b")),
        (AddMember, Action, format!(r"\blet (?:\w+ ){{0,4}}(?:in to|into|in|see|use|access|read) {MAILBOX}\b")),
        (AddMember, Action, format!(r"\b(?:able to|so (?:she|he|they) can|so that (?:she|he|they) can) (?:see|use|access|read|get into|view|open|send from)(?: and (?:see|use|access|read|send from|reply from))? {MAILBOX}\b")),
        (AddMember, Action, r"\badd (?:him|her|them)\b".into()),
        // ---- remove_member
        (RemoveMember, Action, r"\bremove (?:a |the )?members?\b".into()),
        (RemoveMember, Action, format!(r"\b(?:remov(?:e|ed|ing|al)|take|taking|took) (?:\w+ ){{0,5}}(?:from|off|out of) {MAILBOX}\b")),
        (RemoveMember, Action, r"\btake [a-z]+ (?:[a-z]+ )?off\b".into()),
        (RemoveMember, Action, r"\b(?:remove|revoke|withdraw|take away|cancel|stop|end) (?:\w+ ){0,4}access\b".into()),
        (RemoveMember, Action, r"\bno longer (?:needs?|requires?|should have|has need of) (?:\w+ ){0,3}access\b".into()),
        (RemoveMember, Action, r"\b(?:shouldn t|should not|doesn t|does not|don t|do not|mustn t|must not|won t|will not|wont) (?:need|needs|require|requires|have|get|be given|to have|still have) (?:\w+ ){0,2}access\b".into()),
        (RemoveMember, Action, r"\baccess (?:\w+ ){0,3}(?:removed|revoked|taken away|taken off|stopped|withdrawn|ended|cancelled|canceled)\b".into()),
        // ---- change_role
        (ChangeRole, Action, r"\bchange (?:of )?roles?\b".into()),
        (ChangeRole, Action, r"\broles? change\b".into()),
        (ChangeRole, Action, r"\bchange (?:\w+ ){0,4}roles?\b".into()),
        (ChangeRole, Action, r"\bmake (?:\w+ ){0,5}(?:an |a |the |joint |co |another |second )?(?:owners?|members?|co owners?)\b".into()),
        (ChangeRole, Action, r"\b(?:promot|demot)(?:e|ed|es|ing|ion)\b".into()),
        (ChangeRole, Action, r"\b(?:change|set|switch|move) (?:\w+ ){0,5}to (?:an |a )?(?:owners?|members?)\b".into()),
        (ChangeRole, Action, r"\bownership\b".into()),
        (ChangeRole, Action, r"\b(?:be |been )?made (?:an |a |the |joint |co |another )?(?:owners?|co owners?)\b".into()),
        (ChangeRole, Action, format!(r"\b(?:look after|looks after|manage|manages|run|runs|administer|be in charge of) {MAILBOX} (?:as well as|with|alongside|too|as well|jointly)\b")),
        (ChangeRole, Action, r"\bowner (?:rights|access|permissions|privileges|role)\b".into()),
        (ChangeRole, Action, r"\b(?:take|takes|taking) over (?:as )?(?:the )?(?:mailbox )?owner\b".into()),
        // ---- leaver
        (Leaver, Action, r"\bleavers?\b".into()),
        (Leaver, Action, r"\bleaving\b".into()),
        (Leaver, Action, r"\b(?:has|have|had) left\b".into()),
        (Leaver, Action, r"\bleft (?:the |our |this )?(?:organisation|organization|company|practice|surgery|trust|team|service|business|home|job|employment|post|role)\b".into()),
        (Leaver, Action, r"\bno longer (?:works?|working|employed|with us|employed by us|part of the team)\b".into()),
        (Leaver, Action, r"\b(?:doesn t|does not) work (?:here|for us|with us) any ?(?:more|longer)\b".into()),
        (Leaver, Action, r"\baccount (?:closure|closed|deletion)\b".into()),
        (Leaver, Action, r"\b(?:close|delete|deactivate|disable|shut down|terminate) (?:\w+ ){0,2}accounts?\b".into()),
        (Leaver, Action, r"\bdeactivat(?:e|ed|es|ing|ion)\b".into()),
        (Leaver, Action, r"\bhanded in (?:\w+ ){0,2}notice\b".into()),
        (Leaver, Action, r"\b(?:last|final) (?:working )?day (?:is|was|will be|with us|here)\b".into()),
        (Leaver, Action, r"\b(?:finishes|finishing|finished) (?:with us|her employment|his employment|their employment|employment|working here)\b".into()),
        (Leaver, Action, r"\bresign(?:ed|s|ing|ation)\b".into()),
        (Leaver, Action, r"\bretir(?:ed|es|ing|ement)\b".into()),
        (Leaver, Action, r"\b(?:dismissed|contract (?:has )?ended|employment (?:has )?ended)\b".into()),
    ]
}

/// The normalised text is lower-case words between single spaces: ASCII word boundaries and
/// "a word" as "no space" say the same there, and keep the regex engine on its fast DFA path
/// (Unicode `\b` and `\w` make it fall back to a slow one on the corpus's accented text).
fn fast(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)").replace(r"\w", "[^ ]")
}

static WORDING: LazyLock<Vec<(RequestKind, Strength, Regex)>> = LazyLock::new(|| {
    wording()
        .into_iter()
        .map(|(kind, strength, pattern)| (kind, strength, fast(&pattern)))
        .map(|(kind, strength, pattern)| {
            (kind, strength, Regex::new(&pattern).expect("static regex"))
        })
        .collect()
});

/// All the phrases in one set: one scan of a sentence says which phrases occur in it, and only
/// those are searched for their positions.
static ANY: LazyLock<regex::RegexSet> = LazyLock::new(|| {
    let all: Vec<String> = wording().into_iter().map(|(_, _, p)| fast(&p)).collect();
    regex::RegexSet::new(&all).expect("static regex")
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
    for (kind, strength, regex) in present.iter().filter_map(|i| WORDING.get(i)) {
        for m in regex.find_iter(norm) {
            let text = m.as_str();
            // "let Joe back into the inbox" is an unlock, not a new membership.
            if *kind == RequestKind::AddMember && text.contains(" back ") {
                continue;
            }
            // "take the day off" is not "take Joe off".
            if *kind == RequestKind::RemoveMember
                && text.starts_with("take ")
                && text.ends_with(" off")
                && text.split(' ').any(|w| NOT_A_PERSON.contains(&w))
            {
                continue;
            }
            let role = match kind {
                RequestKind::ChangeRole | RequestKind::AddMember => role_in(text),
                _ => None,
            };
            let phrase = Phrase {
                kind: *kind,
                strength: *strength,
                start: m.start(),
                end: m.end(),
                role,
            };
            if let Some(same) = out
                .iter_mut()
                .find(|p| p.kind == *kind && p.start < m.end() && m.start() < p.end)
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
    fn kinds_from_how_people_ask() {
        for (text, want) in [
            ("could you let Sam into the shared inbox", AddMember),
            ("Sam shouldn't have access any more", RemoveMember),
            ("Amy has handed in her notice and finishes today", Leaver),
            ("can Joe look after the mailbox as well as me", ChangeRole),
            ("Hannah needs an NHSmail address", NewAccount),
            (
                "Joe keeps getting told the password is wrong",
                PasswordReset,
            ),
            (
                "Ravi can't remember his password, could you sort it",
                PasswordReset,
            ),
            ("new passwords for Ravi and Fatima please", PasswordReset),
            ("a new carer, Hannah Moss, starts next week", NewAccount),
            ("can she have an account", NewAccount),
            ("could Fatima Ali be given access", AddMember),
            ("please take Joe off the inbox", RemoveMember),
            ("please take Joe off", RemoveMember),
            ("Joe keeps getting locked out", Unlock),
            ("can you let Joe back in", Unlock),
            ("please set up an email for our new nurse", NewAccount),
            ("Amy resigned last month", Leaver),
            ("Her last day is Friday", Leaver),
            ("Tom needs owner rights", ChangeRole),
            ("please put Kim on the team mailbox", AddMember),
            ("Kim's access should be removed", RemoveMember),
            ("the password isn't being accepted", PasswordReset),
            ("please demote Jane", ChangeRole),
            ("so she can see the inbox", AddMember),
            ("her account has been blocked", Unlock),
            ("can it be turned back on please", Unlock),
            (
                "could Ravi Gupta be added to the Rosehill shared mailbox",
                AddMember,
            ),
            ("please add Sam to the practice inbox", AddMember),
            ("remove Joe from the Willow Lodge mailbox", RemoveMember),
        ] {
            assert_eq!(kinds(text), vec![want], "{text}");
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
    fn roles_implied() {
        let p = phrases("please make tom an owner");
        assert_eq!(p[0].role, Some(Role::Owner));
        let p = phrases("please demote jane");
        assert_eq!(p[0].role, Some(Role::Member));
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
