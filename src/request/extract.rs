//! Message text → what was asked: the kind and its fields.
//!
//! Reads only the new text of the message: quoted history (`> ` lines, "On … wrote:", Outlook's
//! "From: … Sent: …" block, forwarded parts) and signatures are cut before anything is read.
//!
//! # How the kind is chosen
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

use crate::message::Message;
use crate::request::kinds::RequestKind;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

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

/// How the kind was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindMatch {
    /// Exactly one kind recognised (subject first, else body).
    One(RequestKind),
    /// Several kinds named where one was expected: a person must decide.
    Ambiguous(Vec<RequestKind>),
    /// Nothing recognisable.
    None,
}

/// What the text asks for. Field names are normalised (see [`Field`]).
#[derive(Debug, Clone)]
pub struct Extracted {
    pub kind: KindMatch,
    /// `Key: value` fields found in the new text, by normalised key; first occurrence wins.
    pub fields: BTreeMap<Field, String>,
    /// Account addresses in the new text that are not the mailbox, the requester, the helpdesk,
    /// or a `Requested by:`/`Mailbox:`/`Replacement:` value — lower-case, deduplicated, in order.
    pub candidate_accounts: Vec<String>,
    /// A known reference in the subject (e.g. `HD-000042` from `Re: [HD-000042] Done: …`).
    pub thread_reference: Option<String>,
    /// A one-time confirmation code (8 characters from [`CODE_ALPHABET`], upper-cased) found on
    /// a `Code: …` line of the new text, or in the subject (see [`extract`]).
    pub confirmation_code: Option<String>,
    /// The new text that was read (quoted history and signature removed): kept for the audit.
    pub new_text: String,
}

/// The fields postroom understands, whatever the wording of the key.
///
/// Keys are matched case-insensitively, with `-`/`_` read as spaces and anything from `(` on
/// ignored (`E-mail address (staff):` is `email address`). Address fields (`Account`, `Mailbox`,
/// `RequestedBy`, `Replacement`) hold the first address of the value, lower-cased, without
/// `mailto:` or `<…>`; a value without an address is kept lower-cased (a user name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `Name:` / `Full name:` / `Staff name:`
    Name,
    /// `First name:` / `Forename:` / `Given name:`
    FirstName,
    /// `Last name:` / `Surname:` / `Family name:`
    LastName,
    /// `Job title:` / `Title:` / `Position:` / `Job role:`
    JobTitle,
    /// `Role:` / `Mailbox role:` / `New role:` / `Access level:` (member or owner)
    Role,
    /// `Account:` / `User:` / `Email:` / `Username:` / `Email address:` / `Staff email:`
    Account,
    /// `Mailbox:` / `Shared mailbox:`
    Mailbox,
    /// `Requested by:` / `Requester:` / `Requestor:`
    RequestedBy,
    /// `Replacement:` / `Replacement owner:` / `New owner:`
    Replacement,
}

impl Field {
    /// The field a key names (already lower-cased and normalised by [`normalise_key`]).
    fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "name" | "full name" | "staff name" | "name of staff member" | "employee name" => {
                Field::Name
            }
            "first name" | "firstname" | "forename" | "forenames" | "given name" => {
                Field::FirstName
            }
            "last name" | "lastname" | "surname" | "family name" => Field::LastName,
            "job title" | "title" | "position" | "job role" | "job" => Field::JobTitle,
            "role" | "mailbox role" | "new role" | "access level" => Field::Role,
            "account" | "user" | "email" | "e mail" | "username" | "user name" | "email address"
            | "e mail address" | "staff email" | "staff email address" | "user email"
            | "account email" | "user account" | "staff account" => Field::Account,
            "mailbox" | "shared mailbox" | "mail box" | "shared mail box" | "mailbox address"
            | "shared mailbox address" => Field::Mailbox,
            "requested by" | "requester" | "requestor" | "request by" => Field::RequestedBy,
            "replacement" | "replacement owner" | "new owner" | "replacement account" => {
                Field::Replacement
            }
            _ => return None,
        })
    }

    /// Fields whose value is an address.
    fn is_address(self) -> bool {
        matches!(
            self,
            Field::Account | Field::Mailbox | Field::RequestedBy | Field::Replacement
        )
    }
}

/// Read the message. Pure: a function of the message and the context only.
///
/// The confirmation code is read from, in order: a `Code: …` line of the new text; a subject
/// containing `Code: …`; a subject (after `Re:` prefixes) that is the code alone; and, only when
/// the subject carries this desk's thread reference, a standalone code token in the subject.
/// That last form must be written in upper case as we send it, so that ordinary 8-letter words
/// of a subject ("Rejected", "Standard") are not read as codes.
pub fn extract(msg: &Message, ctx: &ExtractContext<'_>) -> Extracted {
    let new_text = strip_quoted(&msg.text);
    let fields = fields(&new_text);
    let thread_reference = thread_reference(&msg.subject, ctx.reference_prefix);
    let confirmation_code = confirmation_code(&msg.subject, &new_text, ctx.reference_prefix);
    let candidate_accounts = candidate_accounts(&new_text, msg, ctx, &fields);
    Extracted {
        kind: detect_kind(&msg.subject, &new_text),
        fields,
        candidate_accounts,
        thread_reference,
        confirmation_code,
        new_text,
    }
}

/// The characters of a confirmation code: no `0`/`O` or `1`/`I` to misread.
pub const CODE_ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// The length of a confirmation code.
pub const CODE_LEN: usize = 8;

/// An email address as people type them (not the full RFC 5322 grammar: quoted local parts
/// and IP literals never name an account here). A local part cannot start with `.` or `'`, so
/// `'tom@x'` and `...tom@x` yield `tom@x`.
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[A-Za-z0-9_%+-][A-Za-z0-9._%+'-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+",
    )
    .expect("static regex")
});

// ---- Quoted history -------------------------------------------------------------------------

/// First line of a reply attribution: "On Mon, 3 Mar 2025 at 10:00, Jane <jane@x> wrote:"
/// (Gmail, Apple Mail, Thunderbird) or "Am 03.03.2025 um 10:00 schrieb Jane <jane@x>:".
static ATTRIBUTION_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*(?:on|am)\s").expect("static regex"));
/// Last line of a reply attribution (the same line, or the next when the client wrapped it).
static ATTRIBUTION_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\bwrote|\bschrieb\b.*)\s*:\s*$").expect("static regex")
});
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
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| starts_history(&lines, i))
        .unwrap_or(lines.len());
    let kept: Vec<&str> = lines
        .iter()
        .take(end)
        .filter(|line| !line.trim_start().starts_with('>'))
        .copied()
        .collect();
    kept.join("\n").trim().to_string()
}

/// Whether line `i` is where quoted history or the signature begins.
fn starts_history(lines: &[&str], i: usize) -> bool {
    let Some(line) = lines.get(i) else {
        return false;
    };
    let mut following = lines
        .iter()
        .skip(i + 1)
        .filter(|l| !l.trim().is_empty())
        .take(HEADER_BLOCK_LINES);
    line.trim_end() == "--"
        || ORIGINAL_MESSAGE.is_match(line)
        || FORWARDED.is_match(line)
        || (ATTRIBUTION_START.is_match(line)
            && (ATTRIBUTION_END.is_match(line)
                || lines.get(i + 1).is_some_and(|next| {
                    !ATTRIBUTION_START.is_match(next) && ATTRIBUTION_END.is_match(next)
                })))
        || (HEADER_FROM.is_match(line) && following.any(|l| HEADER_SENT.is_match(l)))
        || (RULE.is_match(line) && following.take(2).any(|l| HEADER_FROM.is_match(l)))
}

// ---- Fields ---------------------------------------------------------------------------------

/// `Key: value`, `Key : value`, `Key<TAB>value`, `**Key:** value`, `- Key: value`.
static FIELD_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:[-•*]\s+)?[*_]*\s*(\p{L}[\p{L}\p{N} \x{a0}()/'.-]{0,39}?)\s*[*_]*\s*(?::|\t)\s*(.*)$",
    )
    .expect("static regex")
});

/// A key as the tables match it: lower case, `-`/`_` as spaces, single spaces, without a
/// trailing parenthesis (`Email (staff)`).
fn normalise_key(key: &str) -> String {
    let key = key.split('(').next().unwrap_or_default();
    key.to_lowercase()
        .replace(['-', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits a field line into its normalised key and raw value.
fn field_line(line: &str) -> Option<(String, &str)> {
    let caps = FIELD_LINE.captures(line)?;
    let key = caps.get(1)?.as_str();
    let value = caps.get(2)?.as_str();
    Some((normalise_key(key), value))
}

/// The value of a field, cleaned; `None` when nothing is left.
fn field_value(field: Field, raw: &str) -> Option<String> {
    let value = raw.trim_matches(|c: char| c == '*' || c == '_' || c.is_whitespace());
    let value = if field.is_address() {
        match ADDRESS.find(value) {
            Some(address) => address.as_str().to_lowercase(),
            None => {
                let value = value.trim_start_matches("mailto:").trim_start_matches("MAILTO:");
                value
                    .trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace())
                    .to_lowercase()
            }
        }
    } else {
        value.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    (!value.is_empty()).then_some(value)
}

/// Every known field of the text; the first occurrence of a field wins.
fn fields(text: &str) -> BTreeMap<Field, String> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, raw)) = field_line(line)
            && let Some(field) = Field::from_key(&key)
            && let Some(value) = field_value(field, raw)
        {
            fields.entry(field).or_insert(value);
        }
    }
    fields
}

/// Addresses in the text that may be the account a free-text request is about.
fn candidate_accounts(
    text: &str,
    msg: &Message,
    ctx: &ExtractContext<'_>,
    fields: &BTreeMap<Field, String>,
) -> Vec<String> {
    let excluded: Vec<String> = [
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
    .collect();
    let mut candidates: Vec<String> = Vec::new();
    for address in ADDRESS.find_iter(text) {
        let address = address.as_str().to_lowercase();
        if !excluded.contains(&address) && !candidates.contains(&address) {
            candidates.push(address);
        }
    }
    candidates
}

// ---- Subject: prefixes, thread reference, confirmation code ---------------------------------

/// Reply and forward prefixes in the languages our sites' clients use (`Re:`, `Fwd:`, `FW:`,
/// German `AW:`/`WG:`, Nordic `SV:`, Dutch `Antw:`, French `TR:`, Spanish `RV:`, Portuguese
/// `Enc:`), repeated, with Outlook's counters (`Re[2]:`).
static SUBJECT_PREFIXES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:(?:re|fwd?|aw|wg|sv|antw|tr|rv|enc)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+")
        .expect("static regex")
});

fn strip_subject_prefixes(subject: &str) -> &str {
    let rest = SUBJECT_PREFIXES
        .find(subject)
        .map_or(subject, |prefix| subject.get(prefix.end()..).unwrap_or_default());
    rest.trim()
}

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

/// `Code: ABCD2345` on a line of its own (also `Confirmation code:`, `**Code:**`).
static CODE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*[*_]*\s*(?i:(?:confirmation\s+)?code)\s*[*_]*\s*[:\t]\s*[*_]*\s*([A-HJ-NP-Za-hj-np-z2-9]{8})\b",
    )
    .expect("static regex")
});
/// `Code: ABCD2345` anywhere in a subject.
static CODE_IN_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\bcode)\s*:\s*([A-HJ-NP-Za-hj-np-z2-9]{8})\b").expect("static regex")
});
/// A subject that is only a code.
static CODE_ALONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-HJ-NP-Za-hj-np-z2-9]{8}$").expect("static regex"));
/// A standalone code token written as we send it (upper case).
static CODE_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-HJ-NP-Z2-9]{8}\b").expect("static regex"));

fn confirmation_code(subject: &str, new_text: &str, prefix: &str) -> Option<String> {
    let subject = strip_subject_prefixes(subject);
    let code = new_text
        .lines()
        .find_map(|line| CODE_LINE.captures(line)?.get(1))
        .or_else(|| CODE_IN_SUBJECT.captures(subject)?.get(1))
        .or_else(|| CODE_ALONE.find(subject))
        .map(|m| m.as_str().to_string())
        .or_else(|| {
            // Blank out the reference itself: a prefix like `HELPDESK` is 8 code characters.
            let (range, _) = find_reference(subject, prefix)?;
            let rest = format!(
                "{} {}",
                subject.get(..range.start).unwrap_or_default(),
                subject.get(range.end..).unwrap_or_default()
            );
            CODE_TOKEN.find(&rest).map(|m| m.as_str().to_string())
        })?;
    Some(code.to_ascii_uppercase())
}

// ---- Kind -----------------------------------------------------------------------------------

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
fn kinds_named(text: &str) -> Vec<RequestKind> {
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
fn declared_kind(body: &str) -> Option<RequestKind> {
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
        .filter(|line| {
            field_line(line).is_none_or(|(key, _)| Field::from_key(&key).is_none())
        })
        .collect();
    kind_match(kinds_named(&prose.join("\n")))
}
