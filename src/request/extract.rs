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
//! # [`detect_kind`]: the kind of a subject and body as one block
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

use crate::message::Message;
use crate::request::disclaimer;
use crate::request::kinds::RequestKind;
use crate::request::understand;
use regex::Regex;
use std::borrow::Cow;
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
    /// Each thing the message asks for, in the order written (issue 12): one request is made
    /// per ask. Empty when nothing is asked ([`Extracted::not_asked`] may say why) or when the
    /// kind is ambiguous ([`Extracted::kind`]).
    pub asks: Vec<Ask>,
    /// Why a message that uses a kind's words asks for nothing that may be acted on (a
    /// question, a negation, a hypothetical, a thanks): such mail goes to a person or is
    /// ignored, never acted on and never refused.
    pub not_asked: Option<NotAsked>,
    /// The name in the closing signature of the new text ("Kind regards,\nFatima Ali"), when
    /// there is exactly one. Identifies the requester only where `[policy]` allows it.
    pub signed_by: Option<String>,
}

/// One thing a message asks for: a kind and whom it is about, as written. `extract` finds it;
/// the pipeline's `resolve` step turns [`Ask::target`] into an account of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub kind: RequestKind,
    /// The existing account the ask is about, as written: an address or a person's name.
    /// `None` for a new account (the starter's name is in `fields`) or when no one is named.
    pub target: Option<Mention>,
    /// The fields that apply to this ask: the message's `Key: value` fields plus what the
    /// sentence itself gave (a new starter's name, a role, a replacement).
    pub fields: BTreeMap<Field, String>,
}

/// A person or an account as the text names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mention {
    /// An address, lower-case.
    Address(String),
    /// A person's name as written ("Ravi Gupta", "Mr R Gupta"), whitespace collapsed.
    Name(String),
}

impl Mention {
    /// The mention as written, for the reply and the staff page.
    pub fn as_written(&self) -> &str {
        match self {
            Mention::Address(a) | Mention::Name(a) => a,
        }
    }
}

/// Why a message asks for nothing, though it uses a kind's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotAsked {
    /// "Can Joe's password be reset by himself?" — a question about a change, not a request.
    Question,
    /// "ignore my last email, don't take Joe off".
    Negated,
    /// "if the new password fails we'll be in touch".
    Hypothetical,
    /// "Thanks, that worked" above a quoted old request.
    Thanks,
    /// The kind's words appear only in quoted or forwarded text.
    QuotedOnly,
    /// "Joe, who you unlocked last week, says thanks": a change already made, mentioned.
    InPassing,
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
    pub(crate) fn from_key(key: &str) -> Option<Field> {
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
            "account"
            | "user"
            | "email"
            | "e mail"
            | "username"
            | "user name"
            | "email address"
            | "e mail address"
            | "staff email"
            | "staff email address"
            | "user email"
            | "account email"
            | "user account"
            | "staff account" => Field::Account,
            "mailbox"
            | "shared mailbox"
            | "mail box"
            | "shared mail box"
            | "mailbox address"
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

/// An email address as people type them (not the full RFC 5322 grammar: quoted local parts
/// and IP literals never name an account here). A local part cannot start with `.` or `'`, so
/// `'tom@x'` and `...tom@x` yield `tom@x`.
pub(crate) static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
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

/// Splits a field line into its normalised key and raw value. A table row (`Full name | Joe
/// Bloggs`, `| Account: | x |`, and HTML tables, whose cells are rendered with `|` between
/// them) is read as a field line too.
pub(crate) fn field_line(line: &str) -> Option<(String, Cow<'_, str>)> {
    if line.contains('|') {
        let row = line.trim().trim_matches('|').trim();
        let (key, value) = row.split_once('|')?;
        let key = key.trim().trim_end_matches(':');
        let value = value.trim().trim_end_matches('|').trim();
        let caps = FIELD_LINE
            .captures(&format!("{key}:"))?
            .get(1)?
            .as_str()
            .to_string();
        return Some((normalise_key(&caps), Cow::Owned(value.replace('|', " "))));
    }
    let caps = FIELD_LINE.captures(line)?;
    let key = caps.get(1)?.as_str();
    let value = caps.get(2)?.as_str();
    Some((normalise_key(key), Cow::Borrowed(value)))
}

/// The value of a field, cleaned; `None` when nothing is left.
fn field_value(field: Field, raw: &str) -> Option<String> {
    let value = raw.trim_matches(|c: char| c == '*' || c == '_' || c.is_whitespace());
    let value = if field.is_address() {
        match ADDRESS.find(value) {
            Some(address) => address.as_str().to_lowercase(),
            None => {
                let value = value.to_lowercase();
                let value = value.trim_start_matches('<');
                let value = value.strip_prefix("mailto:").unwrap_or(value);
                value
                    .trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace())
                    .to_string()
            }
        }
    } else {
        value.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    (!value.is_empty()).then_some(value)
}

/// Every known field of the text; the first occurrence of a field wins.
pub(crate) fn fields(text: &str) -> BTreeMap<Field, String> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, raw)) = field_line(line)
            && let Some(field) = Field::from_key(&key)
            && let Some(value) = field_value(field, &raw)
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

// ---- Subject: prefixes, thread reference, confirmation code ---------------------------------

/// Reply and forward prefixes in the languages our sites' clients use (`Re:`, `Fwd:`, `FW:`,
/// German `AW:`/`WG:`, Nordic `SV:`, Dutch `Antw:`, French `TR:`, Spanish `RV:`, Portuguese
/// `Enc:`), repeated, with Outlook's counters (`Re[2]:`).
static SUBJECT_PREFIXES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:(?:re|fwd?|aw|wg|sv|antw|tr|rv|enc)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+")
        .expect("static regex")
});

pub(crate) fn strip_subject_prefixes(subject: &str) -> &str {
    let rest = SUBJECT_PREFIXES.find(subject).map_or(subject, |prefix| {
        subject.get(prefix.end()..).unwrap_or_default()
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;
    use crate::screen::screen;
    use RequestKind::*;

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
    fn each_kind_by_subject() {
        for (subject, want) in [
            ("New account", NewAccount),
            ("New starter: Priya Shah", NewAccount),
            ("new user", NewAccount),
            ("Create account please", NewAccount),
            ("Account request for new staff", NewAccount),
            ("Password reset", PasswordReset),
            ("Reset password for Tom", PasswordReset),
            ("Forgotten password", PasswordReset),
            ("RE: FW: password-reset", PasswordReset),
            ("Unlock", Unlock),
            ("Tom is locked out", Unlock),
            ("Restore account", Unlock),
            ("Please re-enable Kim", Unlock),
            ("Reactivate user", Unlock),
            ("Add member", AddMember),
            ("Grant access to the mailbox", AddMember),
            ("Remove member", RemoveMember),
            ("Revoke access", RemoveMember),
            ("Change role", ChangeRole),
            ("Make Tom an owner", ChangeRole),
            ("Promote Tom", ChangeRole),
            ("Demote Jane", ChangeRole),
            ("Leaver", Leaver),
            ("Leaver: Amy Jones", Leaver),
            ("Amy has left", Leaver),
            ("Staff leaving", Leaver),
            ("Account closure", Leaver),
            ("AW: WG: Leaver", Leaver),
            ("Re: [HD-000001] Done: Password reset", PasswordReset),
        ] {
            assert_eq!(kind(subject, ""), KindMatch::One(want), "{subject}");
        }
    }

    #[test]
    fn each_kind_by_body_wording() {
        for (body, want) in [
            ("We have a new starter on Monday, Priya.", NewAccount),
            (
                "Could you set up an account for our new colleague?",
                NewAccount,
            ),
            (
                "Hi, please reset the password for tom.smith@nhs.example. Thanks, Jane",
                PasswordReset,
            ),
            ("Tom has forgotten his password.", PasswordReset),
            ("Please change Amy's password.", PasswordReset),
            ("Kim is locked out of her account.", Unlock),
            ("Her account is locked, could you unlock it?", Unlock),
            ("Please reactivate Kim's account.", Unlock),
            ("Can you enable the account again?", Unlock),
            (
                "Please add sam.green@nhs.example to the shared mailbox.",
                AddMember,
            ),
            ("Please give Sam access to our inbox.", AddMember),
            ("Please add Sam as a member.", AddMember),
            ("Please remove Amy from the mailbox.", RemoveMember),
            ("Please revoke Amy's access.", RemoveMember),
            ("Li no longer needs access.", RemoveMember),
            ("Please make Tom an owner of the mailbox.", ChangeRole),
            ("Please change Jane to member.", ChangeRole),
            ("Please change my role.", ChangeRole),
            ("Amy has left the organisation.", Leaver),
            ("Amy left the practice on Friday.", Leaver),
            ("Amy no longer works here.", Leaver),
            ("Please close Amy's account.", Leaver),
        ] {
            assert_eq!(kind("Request", body), KindMatch::One(want), "{body}");
            assert_eq!(kind("", body), KindMatch::One(want), "{body}");
        }
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
    fn absorbing_kinds() {
        // A leaver is removed from the mailbox as part of leaving.
        assert_eq!(
            kind("", "Amy has left; please remove her from the mailbox."),
            KindMatch::One(Leaver)
        );
        assert_eq!(kind("Leaver - remove member", ""), KindMatch::One(Leaver));
        // A reset also answers "locked out".
        assert_eq!(
            kind("Password reset - locked out", ""),
            KindMatch::One(PasswordReset)
        );
        assert_eq!(
            kind("", "Tom is locked out, please reset his password."),
            KindMatch::One(PasswordReset)
        );
        // A new account is created in the sending mailbox.
        assert_eq!(
            kind(
                "",
                "New starter: please create an account and add her to the mailbox."
            ),
            KindMatch::One(NewAccount)
        );
        // "make sure … a member" is not a role change.
        assert_eq!(
            kind(
                "",
                "Please add Sam to the mailbox and make sure she is a member."
            ),
            KindMatch::One(AddMember)
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
