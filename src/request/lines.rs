//! The text primitives every reader of a request shares: an address as people type it, a
//! `Key: value` line (also a table row), the known fields of a text, and the reply and forward
//! prefixes of a subject.

use crate::request::model::Field;
use regex::Regex;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// An email address as people type them (not the full RFC 5322 grammar: quoted local parts
/// and IP literals never name an account here). A local part cannot start with `.` or `'`, so
/// `'tom@x'` and `...tom@x` yield `tom@x`.
pub(crate) static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[A-Za-z0-9_%+-][A-Za-z0-9._%+'-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+",
    )
    .expect("static regex")
});

/// `Key: value`, `Key : value`, `Key<TAB>value`, `**Key:** value`, `- Key: value`.
static FIELD_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:[-•*]\s+)?[*_]*\s*(\p{L}[\p{L}\p{N} \x{a0}()/'.-]{0,39}?)\s*[*_]*\s*(?::|\t)\s*(.*)$",
    )
    .expect("static regex")
});

/// A key as the tables match it: lower case, `-`/`_` as spaces, single spaces, without a
/// trailing parenthesis (`Email (staff)`).
pub(crate) fn normalise_key(key: &str) -> String {
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
