//! Message text → what was asked: the asks (kind, person as written, fields), or why nothing
//! is asked; plus the fields, the thread reference and the confirmation code.
//!
//! Reads only the new text of the message: quoted history (`> ` lines, "On … wrote:", Outlook's
//! "From: … Sent: …" block, forwarded parts; in HTML, the reply blocks, see
//! `message::body_text`) and signatures are cut before anything is read.
//!
//! The asks are read by the grammar of the sibling modules (see `docs/understanding.md` for
//! the rules in plain words): [`crate::request::understand`] decides what is read (declared kind,
//! subject, fields, tables, forwards, thanks-replies), [`crate::request::asks`] reads the
//! sentences into one ask per person and kind, with [`crate::request::wording`] (how each kind
//! is asked, action or symptom), [`crate::request::names`] (people named),
//! [`crate::request::intent`] (questions, negations, hypotheticals, mentions in passing) and
//! [`crate::request::signature`] (the closing and its signer).
//!
//! [`Extracted::kind`] summarises the asks: `One(k)` when they share one kind, `Ambiguous` when
//! they have several kinds (each ask still carries its own) or a subject named several kinds it
//! could not split (then no asks), `None` when nothing is asked.
//!
//!
//! The shared parts live beside it: [`crate::request::model`] (what a request reads as),
//! [`crate::request::lines`] (addresses, field lines, subject prefixes) and
//! [`crate::request::block_kind`] (the kind of a whole subject or body).

use crate::message::Message;
use crate::request::disclaimer;
use crate::request::lines::{ADDRESS, strip_subject_prefixes};
use crate::request::understand;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

// What callers name through `extract` (the pipeline, the staff page, the tests).
pub use crate::request::block_kind::detect_kind;
pub(crate) use crate::request::lines::fields;
pub use crate::request::model::{Ask, Extracted, Field, KindMatch, Mention, NotAsked};

/// Addresses that are never the target account of a free-text request.
#[derive(Debug, Clone, Default)]
pub struct ExtractContext<'a> {
    /// The shared mailbox that sent the message (lower-case).
    pub mailbox: Option<&'a str>,
    /// The helpdesk's own address (lower-case).
    pub helpdesk: &'a str,
    /// Prefix of request references, e.g. `HD` for `[HD-000042]`.
    pub reference_prefix: &'a str,
}

/// Read the message. Pure: a function of the message and the context only.
///
/// The confirmation code is read from, in order: a `Code: …` line of the new text; a subject
/// containing `Code: …`; a subject (after `Re:` prefixes) that is the code alone; and, only when
/// the subject carries this desk's thread reference, a standalone code token in the subject.
/// The two unlabelled forms must contain a digit or be written in upper case, so that ordinary
/// 8-letter words ("whatever", "Rejected") are not read as codes; the labelled forms are fully
/// case-insensitive.
pub fn extract(msg: &Message, ctx: &ExtractContext<'_>) -> Extracted {
    let (new_text, history) = split_history(&msg.text);
    let fields = fields(&new_text);
    let thread_reference = thread_reference(&msg.subject, ctx.reference_prefix);
    let confirmation_code = confirmation_code(&msg.subject, &new_text, ctx.reference_prefix);
    let candidate_accounts = candidate_accounts(&new_text, msg, ctx, &fields);
    let understanding = understand::understand(&understand::Input {
        subject: &msg.subject,
        new_text: &new_text,
        history,
        fields: &fields,
        candidates: &candidate_accounts,
        excluded: &excluded_addresses(msg, ctx, &fields),
        site: &site_words(ctx.mailbox),
    });
    Extracted {
        kind: understanding.kind,
        fields,
        candidate_accounts,
        thread_reference,
        confirmation_code,
        new_text,
        asks: understanding.asks,
        not_asked: understanding.not_asked,
        signed_by: understanding.signed_by,
    }
}

/// The words of the sending mailbox's own address ("rosehill", "care" of
/// rosehill.care@nhs.example): the site's name, never a person's.
fn site_words(mailbox: Option<&str>) -> Vec<String> {
    let local = mailbox
        .and_then(|m| m.split('@').next())
        .unwrap_or_default();
    local
        .split(['.', '_', '-', '+'])
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

/// The characters of a confirmation code: no `0`/`O` or `1`/`I` to misread.
pub const CODE_ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// The length of a confirmation code.
pub const CODE_LEN: usize = 8;

// ---- Quoted history -------------------------------------------------------------------------

/// First line of a reply attribution: "On Mon, 3 Mar 2025 at 10:00, Jane <jane@x> wrote:"
/// (Gmail, Apple Mail, Thunderbird) or "Am 03.03.2025 um 10:00 schrieb Jane <jane@x>:".
static ATTRIBUTION_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*(?:on|am)\s").expect("static regex"));
/// Last line of a reply attribution (the same line, or the next when the client wrapped it).
static ATTRIBUTION_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:\bwrote|\bschrieb\b.*)\s*:\s*$").expect("static regex"));
/// Outlook's separator above the quoted message (English and German Outlook); Thunderbird
/// writes `-------- Original Message --------`.
static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*-{2,}\s*(?:original message|ursprüngliche nachricht)\s*-{2,}\s*$")
        .expect("static regex")
});
/// Gmail's `---------- Forwarded message ---------`, Thunderbird's `-------- Forwarded Message
/// --------`, Apple Mail's `Begin forwarded message:`.
static FORWARDED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:-{2,}\s*forwarded message\s*-{2,}|begin forwarded message:)\s*$")
        .expect("static regex")
});
/// The first line of an Outlook header block (`From:`, or `**From:**` after HTML conversion).
/// No request field is called `From`, so this never cuts a request.
static HEADER_FROM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^[\s*_]*(?:from|von)[\s*_]*:").expect("static regex"));
/// A later line of that block: Outlook writes `Sent:`, Outlook for Mac and others `Date:`.
static HEADER_SENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[\s*_]*(?:sent|date|gesendet|datum)[\s*_]*:").expect("static regex")
});
/// The rule Outlook on the web draws above its header block.
static RULE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*_{10,}\s*$").expect("static regex"));

/// How many following lines may separate `From:` from `Sent:` (`To:`/`Cc:` can come first).
const HEADER_BLOCK_LINES: usize = 4;

/// The new text of a body: quoted history, forwarded parts and signatures removed.
///
/// Everything from the first cut on is dropped: a signature delimiter (`-- `, RFC 3676 §4.3),
/// a reply attribution ("On … wrote:", also wrapped over two lines; "Am … schrieb …:"), an
/// Outlook header block (`-----Original Message-----`, a `From:` line followed within four
/// non-blank lines by `Sent:`/`Date:`, or an underscore rule followed by `From:`), or a
/// forwarded-message marker. Lines starting with `>` are dropped wherever they are.
pub fn strip_quoted(text: &str) -> String {
    split_history(text).0
}

/// The new text (as [`strip_quoted`]) and the history: everything from the first cut on, and
/// the `>` lines, which are quoted too.
pub fn split_history(text: &str) -> (String, String) {
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| starts_history(&lines, i))
        .unwrap_or(lines.len());
    // A confidentiality notice above the history is neither new text nor history: dropped.
    let notice = lines.get(..end).and_then(disclaimer::start).unwrap_or(end);
    let (kept, quoted): (Vec<&str>, Vec<&str>) = lines
        .iter()
        .take(notice)
        .partition(|line| !line.trim_start().starts_with('>'));
    let mut history = quoted.join("\n");
    for line in lines.iter().skip(end) {
        history.push('\n');
        history.push_str(line);
    }
    (kept.join("\n").trim().to_string(), history)
}

/// Whether line `i` is where quoted history or the signature begins.
fn starts_history(lines: &[&str], i: usize) -> bool {
    let Some(line) = lines.get(i) else {
        return false;
    };
    // The next `n` non-blank lines (HTML conversion leaves blank lines inside header blocks).
    let following = |n| {
        lines
            .iter()
            .skip(i + 1)
            .filter(|l| !l.trim().is_empty())
            .take(n)
    };
    line.trim_end() == "--"
        || ORIGINAL_MESSAGE.is_match(line)
        || FORWARDED.is_match(line)
        || (ATTRIBUTION_START.is_match(line)
            && (ATTRIBUTION_END.is_match(line)
                || lines.get(i + 1).is_some_and(|next| {
                    !ATTRIBUTION_START.is_match(next) && ATTRIBUTION_END.is_match(next)
                })))
        || (HEADER_FROM.is_match(line)
            && following(HEADER_BLOCK_LINES).any(|l| HEADER_SENT.is_match(l)))
        || (RULE.is_match(line) && following(2).any(|l| HEADER_FROM.is_match(l)))
}

/// Addresses in the text that may be the account a free-text request is about.
fn candidate_accounts(
    text: &str,
    msg: &Message,
    ctx: &ExtractContext<'_>,
    fields: &BTreeMap<Field, String>,
) -> Vec<String> {
    let excluded = excluded_addresses(msg, ctx, fields);
    let mut candidates: Vec<String> = Vec::new();
    for address in ADDRESS.find_iter(text) {
        let address = address.as_str().to_lowercase();
        if !excluded.contains(&address) && !candidates.contains(&address) {
            candidates.push(address);
        }
    }
    candidates
}

/// Addresses that are never the account a request is about: the mailbox, the helpdesk, the
/// sender, and the `Requested by:`/`Mailbox:`/`Replacement:` values.
fn excluded_addresses(
    msg: &Message,
    ctx: &ExtractContext<'_>,
    fields: &BTreeMap<Field, String>,
) -> Vec<String> {
    [
        ctx.mailbox,
        Some(ctx.helpdesk),
        msg.from.as_deref(),
        msg.sender.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(|a| a.trim().to_lowercase())
    .chain(
        [Field::RequestedBy, Field::Mailbox, Field::Replacement]
            .iter()
            .filter_map(|f| fields.get(f).cloned()),
    )
    .collect()
}

// ---- Subject: thread reference, confirmation code ---------------------------------------

/// `[PREFIX-000123]`: a reference in a subject (the prefix is compared case-insensitively).
static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\s*([A-Za-z0-9_.-]+)-(\d+)\s*\]").expect("static regex"));

/// The span and value of this desk's reference in the subject.
fn find_reference(subject: &str, prefix: &str) -> Option<(std::ops::Range<usize>, String)> {
    if prefix.is_empty() {
        return None;
    }
    REFERENCE.captures_iter(subject).find_map(|caps| {
        let whole = caps.get(0)?;
        let found = caps.get(1)?.as_str();
        let digits = caps.get(2)?.as_str();
        found
            .eq_ignore_ascii_case(prefix)
            .then(|| (whole.range(), format!("{prefix}-{digits}")))
    })
}

fn thread_reference(subject: &str, prefix: &str) -> Option<String> {
    find_reference(subject, prefix).map(|(_, reference)| reference)
}

/// A code-shaped token in either case: [`CODE_LEN`] characters of [`CODE_ALPHABET`].
fn code_token() -> String {
    format!(
        r"\b[{CODE_ALPHABET}{}]{{{CODE_LEN}}}\b",
        CODE_ALPHABET.to_ascii_lowercase()
    )
}

/// `Code: ABCD2345` on a line of its own (also `Confirmation code:`, `**Code:**`).
static CODE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    let token = code_token();
    Regex::new(&format!(
        r"^\s*[*_]*\s*(?i:(?:confirmation\s+)?code)\s*[*_]*\s*[:\t]\s*[*_]*\s*({token})"
    ))
    .expect("static regex")
});
/// `Code: ABCD2345` anywhere in a subject.
static CODE_IN_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    let token = code_token();
    Regex::new(&format!(r"(?i:\bcode)\s*:\s*({token})")).expect("static regex")
});
/// A code-shaped token (see [`looks_like_code`]).
static CODE_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&code_token()).expect("static regex"));

/// Whether an unlabelled code-shaped token is a code rather than a word: it has a digit, or is
/// written in upper case as we send it. "whatever", "Redacted" or "Rejected" are 8 letters of
/// the alphabet too, and corpus subjects are exactly that.
fn looks_like_code(token: &str) -> bool {
    token.bytes().any(|b| b.is_ascii_digit()) || !token.bytes().any(|b| b.is_ascii_lowercase())
}

fn confirmation_code(subject: &str, new_text: &str, prefix: &str) -> Option<String> {
    let subject = strip_subject_prefixes(subject);
    let labelled = new_text
        .lines()
        .find_map(|line| CODE_LINE.captures(line)?.get(1))
        .or_else(|| CODE_IN_SUBJECT.captures(subject)?.get(1))
        .map(|m| m.as_str());
    let alone = || {
        CODE_TOKEN
            .find(subject)
            .filter(|m| m.len() == subject.len() && looks_like_code(m.as_str()))
            .map(|m| m.as_str())
    };
    let code = match labelled.or_else(alone) {
        Some(code) => code.to_string(),
        None => {
            // Blank out the reference itself: a prefix like `HELPDESK` is 8 code characters.
            let (range, _) = find_reference(subject, prefix)?;
            let rest = format!(
                "{} {}",
                subject.get(..range.start).unwrap_or_default(),
                subject.get(range.end..).unwrap_or_default()
            );
            CODE_TOKEN
                .find_iter(&rest)
                .find(|m| looks_like_code(m.as_str()))?
                .as_str()
                .to_string()
        }
    };
    Some(code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;
    use crate::request::RequestKind::*;
    use crate::screen::screen;

    const HELPDESK: &str = "helpdesk@nhs.example";

    fn ctx() -> ExtractContext<'static> {
        ExtractContext {
            mailbox: Some("rosehill.care@nhs.example"),
            helpdesk: HELPDESK,
            reference_prefix: "HD",
        }
    }

    /// A plain-text request from Rosehill Care.
    fn email(subject: &str, body: &str) -> Message {
        let raw = format!(
            "From: Rosehill Care <rosehill.care@nhs.example>\r\nTo: {HELPDESK}\r\n\
             Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        );
        parse(raw.as_bytes())
    }

    fn fixture(name: &str) -> Message {
        let path = format!(
            "{}/tests/fixtures/requests/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    fn kind(subject: &str, body: &str) -> KindMatch {
        detect_kind(subject, body)
    }

    #[test]
    fn the_subject_wins_over_the_body() {
        assert_eq!(
            kind("Password reset", "Amy has left, and please unlock Kim."),
            KindMatch::One(PasswordReset)
        );
    }

    #[test]
    fn several_kinds_in_one_place_are_ambiguous() {
        assert_eq!(
            kind("Password reset and new account", ""),
            KindMatch::Ambiguous(vec![NewAccount, PasswordReset])
        );
        assert_eq!(
            kind(
                "Two things",
                "Please reset the password for tom.smith@nhs.example and add sam.green@nhs.example to the mailbox."
            ),
            KindMatch::Ambiguous(vec![PasswordReset, AddMember])
        );
        assert_eq!(
            kind(
                "",
                "Please add Sam to the mailbox and remove Amy from the mailbox."
            ),
            KindMatch::Ambiguous(vec![AddMember, RemoveMember])
        );
    }

    #[test]
    fn nothing_recognisable() {
        assert_eq!(kind("Question", "Hello, can you help?"), KindMatch::None);
        assert_eq!(kind("", ""), KindMatch::None);
        assert_eq!(kind("Re: Account request", "Thanks!"), KindMatch::None);
    }

    #[test]
    fn a_declared_kind_wins_over_everything() {
        assert_eq!(
            kind(
                "Password reset and new account",
                "Request: unlock\nAccount: kim.lee@nhs.example"
            ),
            KindMatch::One(Unlock)
        );
        assert_eq!(
            kind("", "**Type:** Password reset"),
            KindMatch::One(PasswordReset)
        );
        assert_eq!(
            kind("Leaver", "Request type: remove_member"),
            KindMatch::One(RemoveMember)
        );
        assert_eq!(kind("", "TYPE\tUnlock account"), KindMatch::One(Unlock));
        // A value that is not exactly a kind is read as prose.
        assert_eq!(
            kind("", "Request: please reset the password"),
            KindMatch::One(PasswordReset)
        );
        assert_eq!(kind("", "Request: something else"), KindMatch::None);
    }

    #[test]
    fn field_values_are_not_read_as_wording() {
        assert_eq!(
            kind(
                "",
                "Please create an account for our new carer.\nName: Zoë\nJob title: Leaving care lead\nNew owner: tom.smith@nhs.example"
            ),
            KindMatch::One(NewAccount)
        );
    }

    #[test]
    fn fields_with_every_wording() {
        let text = "Full name: Zoë Ångström\n\
                    Forename:  Zoë \n\
                    Family name: Ångström\n\
                    Position: Senior   Carer\n\
                    ROLE: Owner\n\
                    Staff email: <Zoe.Angstrom@NHS.example>\n\
                    Shared mailbox: mailto:Rosehill.Care@nhs.example\n\
                    Requestor: Jane Doe <JANE.DOE@nhs.example>\n\
                    Replacement owner: [tom.smith@nhs.example](mailto:tom.smith@nhs.example)\n";
        let fields = fields(text);
        let get = |f| fields.get(&f).map(String::as_str);
        assert_eq!(get(Field::Name), Some("Zoë Ångström"));
        assert_eq!(get(Field::FirstName), Some("Zoë"));
        assert_eq!(get(Field::LastName), Some("Ångström"));
        assert_eq!(get(Field::JobTitle), Some("Senior Carer"));
        assert_eq!(get(Field::Role), Some("Owner"));
        assert_eq!(get(Field::Account), Some("zoe.angstrom@nhs.example"));
        assert_eq!(get(Field::Mailbox), Some("rosehill.care@nhs.example"));
        assert_eq!(get(Field::RequestedBy), Some("jane.doe@nhs.example"));
        assert_eq!(get(Field::Replacement), Some("tom.smith@nhs.example"));
    }

    #[test]
    fn field_line_shapes() {
        for line in [
            "Account: tom.smith@nhs.example",
            "account : tom.smith@nhs.example",
            "Account\ttom.smith@nhs.example",
            "Account:\ttom.smith@nhs.example",
            "**Account:** tom.smith@nhs.example",
            "**Account**: tom.smith@nhs.example",
            "*Account:* <mailto:tom.smith@nhs.example>",
            "- Account: tom.smith@nhs.example",
            "  User: TOM.SMITH@nhs.example  ",
            "E-mail address: tom.smith@nhs.example.",
            "Email (work): 'tom.smith@nhs.example'",
            "Username: mailto:tom.smith@nhs.example",
            "Account:\u{a0}tom.smith@nhs.example",
        ] {
            assert_eq!(
                fields(line).get(&Field::Account).map(String::as_str),
                Some("tom.smith@nhs.example"),
                "{line:?}"
            );
        }
        // A user name without a domain is kept (lower-cased) for the policy to judge.
        assert_eq!(
            fields("Username: TSmith")
                .get(&Field::Account)
                .map(String::as_str),
            Some("tsmith")
        );
        // Empty values and unknown keys are not fields; the first occurrence wins.
        let f =
            fields("Account:\nNote: x\nAccount: first@nhs.example\nAccount: second@nhs.example");
        assert_eq!(f.len(), 1);
        assert_eq!(
            f.get(&Field::Account).map(String::as_str),
            Some("first@nhs.example")
        );
        // Prose with a colon is not a field.
        assert!(fields("Hi, please reset the password for: tom").is_empty());
    }

    #[test]
    fn outlook_header_block_is_cut() {
        let text = "Please reset Tom's password.\nAccount: tom.smith@nhs.example\n\n\
                    From: Rosehill Care <rosehill.care@nhs.example>\nSent: 02 March 2025 16:40\n\
                    To: Helpdesk\nSubject: Password reset\n\nAccount: amy.jones@nhs.example\n";
        assert_eq!(
            strip_quoted(text),
            "Please reset Tom's password.\nAccount: tom.smith@nhs.example"
        );
        let markdown = "New text\n**From:** Rosehill Care\n**To:** Helpdesk\n**Sent:** Monday\nold";
        assert_eq!(strip_quoted(markdown), "New text");
        let original = "New text\n-----Original Message-----\nFrom: x\nold";
        assert_eq!(strip_quoted(original), "New text");
        let owa =
            "New text\n\n________________________________\nFrom: Rosehill Care\nSent: Monday\nold";
        assert_eq!(strip_quoted(owa), "New text");
        let german = "Neu\nVon: Rosehill\nGesendet: Montag\nalt";
        assert_eq!(strip_quoted(german), "Neu");
        // A lone "From:" line without a date is not a header block.
        let lone = "From: the Rosehill office\nAccount: tom.smith@nhs.example";
        assert_eq!(strip_quoted(lone), lone);
    }

    #[test]
    fn reply_attribution_is_cut() {
        let one_line = "Thanks!\n\nOn Mon, 3 Mar 2025 at 09:12, Jane <jane.doe@nhs.example> wrote:\n> Account: amy.jones@nhs.example\nmore history";
        assert_eq!(strip_quoted(one_line), "Thanks!");
        let wrapped = "Thanks!\nOn Mon, 3 Mar 2025 at 09:12, Rosehill Care <rosehill.care@nhs.example>\nwrote:\nold";
        assert_eq!(strip_quoted(wrapped), "Thanks!");
        let german = "Danke\nAm 03.03.2025 um 09:12 schrieb Jane Doe <jane.doe@nhs.example>:\nalt";
        assert_eq!(strip_quoted(german), "Danke");
        // Prose starting with "On" is kept.
        let prose = "On Monday Tom starts.\nName: Tom";
        assert_eq!(strip_quoted(prose), prose);
    }

    #[test]
    fn quote_lines_signatures_and_forwards_are_removed() {
        assert_eq!(
            strip_quoted("new\n> old\n  >> older\nalso new"),
            "new\nalso new"
        );
        assert_eq!(
            strip_quoted("Request\n-- \nJane Doe\nAccount: amy.jones@nhs.example"),
            "Request"
        );
        assert_eq!(strip_quoted("Request\n--\nJane"), "Request");
        assert_eq!(
            strip_quoted("Request\n---------- Forwarded message ---------\nFrom: x\nold"),
            "Request"
        );
        assert_eq!(
            strip_quoted("Request\n-------- Forwarded Message --------\nold"),
            "Request"
        );
        assert_eq!(
            strip_quoted("Request\nBegin forwarded message:\n\nold"),
            "Request"
        );
        assert_eq!(strip_quoted("a\r\nb\r\n-- \r\nsig"), "a\nb");
        assert_eq!(strip_quoted(""), "");
    }

    #[test]
    fn candidate_accounts_exclude_known_parties() {
        let mut msg = email(
            "Password reset",
            "Please reset Tom.Smith@nhs.example, and tom.smith@nhs.example again; not \
             rosehill.care@nhs.example, helpdesk@nhs.example or jane.doe@nhs.example.\n\
             Also amy.jones@nhs.example.\n\
             Requested by: raj.patel@nhs.example\n\
             Mailbox: oakview.gp@nhs.example\n\
             Replacement: li.wong@nhs.example\n",
        );
        msg.sender = Some("jane.doe@nhs.example".into());
        let got = extract(&msg, &ctx());
        assert_eq!(
            got.candidate_accounts,
            ["tom.smith@nhs.example", "amy.jones@nhs.example"]
        );
    }

    #[test]
    fn the_code_alphabet_has_no_look_alikes() {
        assert_eq!(CODE_ALPHABET.len(), 32);
        assert!(!CODE_ALPHABET.contains(['0', '1', 'I', 'O']));
    }

    #[test]
    fn thread_reference_in_the_subject() {
        let r = |s| thread_reference(s, "HD");
        assert_eq!(
            r("Re: [HD-000001] Done: Password reset"),
            Some("HD-000001".into())
        );
        assert_eq!(r("Re: [hd-42] x"), Some("HD-42".into()));
        assert_eq!(r("[XY-000001] [HD-000007]"), Some("HD-000007".into()));
        assert_eq!(r("HD-000001 without brackets"), None);
        assert_eq!(r("[HD-] x"), None);
        assert_eq!(
            thread_reference("[POST-HD-000003]", "POST-HD"),
            Some("POST-HD-000003".into())
        );
        assert_eq!(thread_reference("[HD-000001]", ""), None);
    }

    #[test]
    fn confirmation_codes() {
        let code = |subject: &str, body: &str| confirmation_code(subject, body, "HD");
        assert_eq!(code("Re: x", "Code: ABCD2345"), Some("ABCD2345".into()));
        assert_eq!(
            code("", "**Confirmation code:** abcd2345\nthanks"),
            Some("ABCD2345".into())
        );
        assert_eq!(code("", "code:\tHJKM6789 thanks"), Some("HJKM6789".into()));
        assert_eq!(
            code("Re: [HD-000003] Code: wxyz2345", ""),
            Some("WXYZ2345".into())
        );
        assert_eq!(code("Re: RE: abcd2345", ""), Some("ABCD2345".into()));
        assert_eq!(
            code("Re: [HD-000003] Confirmation needed: Leaver PQRS7892", ""),
            Some("PQRS7892".into())
        );
        // With a prefix that is itself 8 code characters, the reference is not the code.
        assert_eq!(
            confirmation_code("Re: [HELPDESK-000003] STUV2345", "", "HELPDESK"),
            Some("STUV2345".into())
        );
        // Not codes: wrong alphabet (0, 1, I, O), wrong length, a lower-case word next to a
        // reference, a token in a subject without our reference.
        assert_eq!(code("", "Code: ABCD1234"), None);
        assert_eq!(code("", "Code: ABCDO234"), None);
        assert_eq!(code("", "Code: ABCD23456"), None);
        assert_eq!(code("Re: [HD-000003] Rejected: Leaver", ""), None);
        assert_eq!(code("Re: Leaver PQRS7892", ""), None);
        assert_eq!(code("Password", ""), None);
        assert_eq!(code("whatever", ""), None);
        assert_eq!(code("Re: Redacted", ""), None);
        assert_eq!(code("Re: ABCDEFGH", ""), Some("ABCDEFGH".into()));
        assert_eq!(
            code("Re: [HD-000003] Leaver wxyz2345", ""),
            Some("WXYZ2345".into())
        );
        assert_eq!(code("", "> Code: ABCD2345"), None);
        assert_eq!(code("", "Code: ABCD2345X"), None);
    }

    #[test]
    fn html_only_outlook_message() {
        let raw = "From: Rosehill Care <rosehill.care@nhs.example>\r\n\
                   Subject: RE: Password reset\r\n\
                   Content-Type: text/html; charset=utf-8\r\n\r\n\
                   <html><body><div>Please reset the password for Tom.</div>\
                   <div><b>Account:</b> tom.smith@nhs.example</div>\
                   <div><b>Requested by:</b> <a href=\"mailto:jane.doe@nhs.example\">jane.doe@nhs.example</a></div>\
                   <hr><div id=\"divRplyFwdMsg\"><b>From:</b> Rosehill Care<br><b>Sent:</b> Monday<br>\
                   <b>Subject:</b> Password reset</div><div>Account: amy.jones@nhs.example</div></body></html>";
        let got = extract(&parse(raw.as_bytes()), &ctx());
        assert_eq!(got.kind, KindMatch::One(PasswordReset));
        assert_eq!(
            got.fields.get(&Field::Account).map(String::as_str),
            Some("tom.smith@nhs.example")
        );
        assert_eq!(
            got.fields.get(&Field::RequestedBy).map(String::as_str),
            Some("jane.doe@nhs.example")
        );
        assert_eq!(got.candidate_accounts, ["tom.smith@nhs.example"]);
        assert!(!got.new_text.contains("amy.jones"), "{}", got.new_text);
    }

    #[test]
    fn encoded_bodies_are_read() {
        let qp = parse(
            b"From: rosehill.care@nhs.example\r\nSubject: Password reset\r\n\
              Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
              Account: tom.smith@nhs.=\r\nexample\r\nName: Zo=C3=AB\r\n",
        );
        let got = extract(&qp, &ctx());
        assert_eq!(
            got.fields.get(&Field::Account).map(String::as_str),
            Some("tom.smith@nhs.example")
        );
        assert_eq!(
            got.fields.get(&Field::Name).map(String::as_str),
            Some("Zoë")
        );
        let b64 = parse(
            b"From: rosehill.care@nhs.example\r\nSubject: Unlock\r\n\
              Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
              QWNjb3VudDoga2ltLmxlZUBuaHMuZXhhbXBsZQ==\r\n",
        );
        let got = extract(&b64, &ctx());
        assert_eq!(got.kind, KindMatch::One(Unlock));
        assert_eq!(
            got.fields.get(&Field::Account).map(String::as_str),
            Some("kim.lee@nhs.example")
        );
        let mut cp1252 = b"From: rosehill.care@nhs.example\r\nSubject: New account\r\n\
              Content-Type: text/plain; charset=windows-1252\r\n\r\nName: Ren"
            .to_vec();
        cp1252.extend_from_slice(b"\xe9e Dubois\r\n");
        let got = extract(&parse(&cp1252), &ctx());
        assert_eq!(
            got.fields.get(&Field::Name).map(String::as_str),
            Some("Renée Dubois")
        );
    }

    /// What the README of `tests/fixtures/requests` promises about each fixture's text.
    #[test]
    fn fixtures_extract_as_documented() {
        struct Want {
            file: &'static str,
            kind: KindMatch,
            account: Option<&'static str>,
            requested_by: Option<&'static str>,
            candidates: &'static [&'static str],
        }
        let want = |file, kind, account, requested_by, candidates| Want {
            file,
            kind,
            account,
            requested_by,
            candidates,
        };
        let jane = Some("jane.doe@nhs.example");
        let tom = Some("tom.smith@nhs.example");
        let amy = Some("amy.jones@nhs.example");
        let cases = [
            want(
                "password_reset_fields.eml",
                KindMatch::One(PasswordReset),
                tom,
                jane,
                &["tom.smith@nhs.example"][..],
            ),
            want(
                "password_reset_free_text.eml",
                KindMatch::One(PasswordReset),
                None,
                jane,
                &["tom.smith@nhs.example"],
            ),
            want(
                "new_account_fields.eml",
                KindMatch::One(NewAccount),
                None,
                jane,
                &[],
            ),
            want(
                "new_account_first_last.eml",
                KindMatch::One(NewAccount),
                None,
                jane,
                &[],
            ),
            want(
                "unlock.eml",
                KindMatch::One(Unlock),
                Some("kim.lee@nhs.example"),
                jane,
                &["kim.lee@nhs.example"],
            ),
            want(
                "add_member.eml",
                KindMatch::One(AddMember),
                Some("sam.green@nhs.example"),
                jane,
                &["sam.green@nhs.example"],
            ),
            want(
                "remove_member.eml",
                KindMatch::One(RemoveMember),
                amy,
                jane,
                &["amy.jones@nhs.example"],
            ),
            want(
                "change_role_to_owner.eml",
                KindMatch::One(ChangeRole),
                tom,
                jane,
                &["tom.smith@nhs.example"],
            ),
            want(
                "leaver.eml",
                KindMatch::One(Leaver),
                amy,
                jane,
                &["amy.jones@nhs.example"],
            ),
            want(
                "on_behalf_sender.eml",
                KindMatch::One(PasswordReset),
                tom,
                None,
                &["tom.smith@nhs.example"],
            ),
            want(
                "outlook_html_only.eml",
                KindMatch::One(PasswordReset),
                tom,
                jane,
                &["tom.smith@nhs.example"],
            ),
            want(
                "quoted_printable.eml",
                KindMatch::One(PasswordReset),
                tom,
                jane,
                &["tom.smith@nhs.example"],
            ),
            want(
                "base64_body.eml",
                KindMatch::One(PasswordReset),
                amy,
                jane,
                &["amy.jones@nhs.example"],
            ),
            want(
                "windows1252.eml",
                KindMatch::One(NewAccount),
                None,
                jane,
                &[],
            ),
            want(
                "forwarded_history.eml",
                KindMatch::One(PasswordReset),
                None,
                jane,
                &["tom.smith@nhs.example"],
            ),
            want(
                "reply_with_quote.eml",
                KindMatch::One(Unlock),
                None,
                jane,
                &["kim.lee@nhs.example"],
            ),
            want(
                "last_owner_demote.eml",
                KindMatch::One(ChangeRole),
                jane,
                jane,
                &[],
            ),
            want(
                "last_owner_leaver.eml",
                KindMatch::One(Leaver),
                jane,
                jane,
                &[],
            ),
            want(
                "other_org_target.eml",
                KindMatch::One(PasswordReset),
                Some("raj.patel@nhs.example"),
                jane,
                &["raj.patel@nhs.example"],
            ),
            want(
                "not_shared_mailbox.eml",
                KindMatch::One(PasswordReset),
                tom,
                jane,
                &["tom.smith@nhs.example"],
            ),
            want(
                "requester_not_owner.eml",
                KindMatch::One(PasswordReset),
                amy,
                tom,
                &["amy.jones@nhs.example"],
            ),
            want(
                "mailbox_field_other.eml",
                KindMatch::One(AddMember),
                Some("sam.green@nhs.example"),
                jane,
                &["sam.green@nhs.example"],
            ),
            // Unsure which of three changes one account needs, and asks which: a question.
            want(
                "ambiguous_kind.eml",
                KindMatch::None,
                None,
                jane,
                &["tom.smith@nhs.example"],
            ),
            // A reset and an add, each for its own person (several asks).
            want(
                "two_asks.eml",
                KindMatch::Ambiguous(vec![PasswordReset, AddMember]),
                None,
                jane,
                &["tom.smith@nhs.example", "sam.green@nhs.example"],
            ),
            want("unknown_kind.eml", KindMatch::None, None, None, &[]),
            want(
                "ambiguous_account.eml",
                KindMatch::One(PasswordReset),
                None,
                jane,
                &["tom.smith@nhs.example", "amy.jones@nhs.example"],
            ),
            want(
                "leaves_one_member.eml",
                KindMatch::One(RemoveMember),
                Some("li.wong@nhs.example"),
                Some("raj.patel@nhs.example"),
                &["li.wong@nhs.example"],
            ),
        ];
        for case in cases {
            let msg = fixture(case.file);
            assert!(
                msg.message_id.is_some() && msg.header("date").is_some(),
                "{}",
                case.file
            );
            assert_eq!(screen(&msg, HELPDESK), None, "{}", case.file);
            let ctx = ExtractContext {
                mailbox: msg.from.as_deref(),
                ..ctx()
            };
            let got = extract(&msg, &ctx);
            let field = |f| got.fields.get(&f).map(String::as_str);
            assert_eq!(got.kind, case.kind, "{}: {}", case.file, got.new_text);
            assert_eq!(field(Field::Account), case.account, "{}", case.file);
            assert_eq!(
                field(Field::RequestedBy),
                case.requested_by,
                "{}",
                case.file
            );
            assert_eq!(
                got.candidate_accounts, case.candidates,
                "{}: {}",
                case.file, got.new_text
            );
            assert_eq!(got.confirmation_code, None, "{}", case.file);
        }
        let thread = extract(&fixture("thread_reply.eml"), &ctx());
        assert_eq!(thread.thread_reference.as_deref(), Some("HD-000001"));
        assert_eq!(thread.new_text, "Thanks, that worked.\n\nJane");
        let zoe = extract(&fixture("new_account_fields.eml"), &ctx());
        assert_eq!(
            zoe.fields.get(&Field::Name).map(String::as_str),
            Some("Zoë Ångström")
        );
        assert_eq!(
            zoe.fields.get(&Field::JobTitle).map(String::as_str),
            Some("Carer")
        );
        assert_eq!(
            zoe.fields.get(&Field::Role).map(String::as_str),
            Some("member")
        );
        let priya = extract(&fixture("new_account_first_last.eml"), &ctx());
        assert_eq!(
            priya.fields.get(&Field::FirstName).map(String::as_str),
            Some("Priya")
        );
        assert_eq!(
            priya.fields.get(&Field::LastName).map(String::as_str),
            Some("Shah")
        );
        let renee = extract(&fixture("windows1252.eml"), &ctx());
        assert_eq!(
            renee.fields.get(&Field::Name).map(String::as_str),
            Some("Renée Dubois")
        );
        assert_eq!(
            renee.fields.get(&Field::JobTitle).map(String::as_str),
            Some("Carer – nights")
        );
        let outlook = fixture("outlook_html_only.eml");
        assert_eq!(
            outlook.message_id.as_deref(),
            Some("DB9PR01MB1234567.outlook-html-only@DB9PR01MB1234.eurprd01.prod.exchangelabs.com")
        );
        assert_eq!(fixture("on_behalf_sender.eml").sender.as_deref(), jane);
        assert_eq!(
            fixture("mailbox_field_other.eml")
                .text
                .lines()
                .find(|l| l.starts_with("Mailbox")),
            Some("Mailbox: oakview.gp@nhs.example")
        );
        assert!(fixture("garbage.eml").unparsable);
    }

    /// Every file of the shared real-world corpus goes through parse, screen and extract.
    #[test]
    fn corpus_never_panics() {
        let roots = [
            format!("{}/../shared/corpus", env!("CARGO_MANIFEST_DIR")),
            "/work/shared/corpus".to_string(),
        ];
        let Some(root) = roots.iter().find(|r| std::path::Path::new(r).is_dir()) else {
            return;
        };
        let mut stack = vec![std::path::PathBuf::from(root)];
        let mut failures = Vec::new();
        let mut seen = 0;
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                let entries = std::fs::read_dir(&path).into_iter().flatten().flatten();
                stack.extend(entries.map(|e| e.path()));
                continue;
            }
            let Ok(raw) = std::fs::read(&path) else {
                continue;
            };
            seen += 1;
            let result = std::panic::catch_unwind(|| {
                let msg = parse(&raw);
                let _ = screen(&msg, HELPDESK);
                let ctx = ExtractContext {
                    mailbox: msg.from.as_deref(),
                    ..ctx()
                };
                extract(&msg, &ctx)
            });
            if result.is_err() {
                failures.push(path.display().to_string());
            }
        }
        assert!(seen > 0);
        assert!(failures.is_empty(), "panicked on: {failures:#?}");
    }
}
