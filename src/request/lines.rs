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

/// `Key: value`, `Key : value`, `Key<TAB>value`, `**Key:** value`, `- Key: value`. The key
/// is at most [`MAX_KEY_CHARS`], checked after the match: written into the pattern as
/// `{0,39}?`, the repetition copied its Unicode class 39 times, which made this the dearest
/// regex to build (a fifth of the daemon's start) and, since the backtracker clears a bit per
/// state and byte before each search, the dearest to run per line. The lazy `*?` tries the
/// same keys in the same order (shortest first), so a key over the limit is a line the
/// bounded pattern did not match either.
static FIELD_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:[-•*]\s+)?[*_]*\s*(\p{L}[\p{L}\p{N} \x{a0}()/'.-]*?)\s*[*_]*\s*(?::|\t)\s*(.*)$",
    )
    .expect("static regex")
});

/// The longest key a field line has, in characters.
const MAX_KEY_CHARS: usize = 40;

/// [`FIELD_LINE`]'s key and value in `line`, the key no longer than [`MAX_KEY_CHARS`]. Only a
/// line with a colon or a tab can be one, and most lines of a message have neither: they
/// are not searched.
fn key_and_value(line: &str) -> Option<(&str, &str)> {
    if !line.contains([':', '\t']) {
        return None;
    }
    let caps = FIELD_LINE.captures(line)?;
    let key = caps.get(1)?.as_str();
    if key.chars().count() > MAX_KEY_CHARS {
        return None;
    }
    Some((key, caps.get(2)?.as_str()))
}

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
        let cell = format!("{key}:");
        let (key, _) = key_and_value(&cell)?;
        return Some((normalise_key(key), Cow::Owned(value.replace('|', " "))));
    }
    let (key, value) = key_and_value(line)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_lines_as_people_write_them() {
        for (line, key, value) in [
            ("Account: kim@care.example", "account", "kim@care.example"),
            ("Account : kim", "account", "kim"),
            ("Account\tkim", "account", "kim"),
            // The value is raw here: `field_value` trims the emphasis.
            (
                "**Full name:** Zoë Ångström",
                "full name",
                "** Zoë Ångström",
            ),
            (
                "- Email address : zoe@care.example",
                "email address",
                "zoe@care.example",
            ),
            ("• Prénom: Zoë", "prénom", "Zoë"),
            (
                "| Account: | kim@care.example |",
                "account",
                "kim@care.example",
            ),
            ("Full name | Kim Locked", "full name", "Kim Locked"),
        ] {
            let (k, v) = field_line(line).unwrap_or_else(|| panic!("{line:?} is a field line"));
            assert_eq!((k.as_str(), v.as_ref()), (key, value), "{line:?}");
        }
        for line in [
            "Kim is locked out, please unlock her account",
            "",
            "   ",
            "12: not a key",
            ": no key",
        ] {
            assert_eq!(field_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn a_key_is_at_most_forty_characters() {
        let forty = format!("K{}", "é".repeat(39));
        assert_eq!(forty.chars().count(), 40);
        assert!(field_line(&format!("{forty}: x")).is_some());
        assert_eq!(field_line(&format!("{forty}e: x")), None);
        assert_eq!(field_line(&format!("| {forty}e | x |")), None);
    }

    /// The pattern as it was, its key bounded in the regex itself.
    static BOUNDED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^\s*(?:[-•*]\s+)?[*_]*\s*(\p{L}[\p{L}\p{N} \x{a0}()/'.-]{0,39}?)\s*[*_]*\s*(?::|\t)\s*(.*)$",
        )
        .expect("static regex")
    });

    /// What the generated lines are made of: letters, digits, spaces and every mark the
    /// pattern names.
    const CHARS: &[char] = &[
        'a', 'Z', 'é', 'Ж', '7', ' ', ':', '\t', '*', '_', '-', '•', '.', '(', ')', '/', '\'',
        '\u{a0}', '@', '|',
    ];

    /// What a key may hold after its first letter.
    const KEY_CHARS: &[char] = &[
        'a', 'Z', 'é', 'Ж', '7', ' ', '\u{a0}', '(', ')', '/', '\'', '.', '-',
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The key checked after the match reads every line as the bounded pattern did: the
        /// same lines, the same key and value.
        #[test]
        fn the_key_limit_reads_as_the_bounded_pattern(
            line in prop_oneof![
                // Anything made of what a field line is made of.
                proptest::collection::vec(proptest::sample::select(CHARS), 0..70)
                    .prop_map(|cs| cs.into_iter().collect::<String>()),
                // A key of about the limit's length, written as people do.
                (
                    proptest::sample::select(&["", " ", "- ", "• ", "**", "* "][..]),
                    proptest::sample::select(&['K', 'é', 'Ж']),
                    proptest::collection::vec(proptest::sample::select(KEY_CHARS), 30..48),
                    proptest::sample::select(&["", " ", "**", " **"][..]),
                    proptest::sample::select(&[":", "\t", " :", ""][..]),
                    proptest::collection::vec(proptest::sample::select(CHARS), 0..12),
                )
                    .prop_map(|(lead, first, key, close, sep, value)| {
                        let key: String = key.into_iter().collect();
                        let value: String = value.into_iter().collect();
                        format!("{lead}{first}{key}{close}{sep}{value}")
                    }),
            ]
        ) {
            let bounded = BOUNDED.captures(&line).map(|c| {
                (c.get(1).map(|m| m.as_str()), c.get(2).map(|m| m.as_str()))
            });
            let now = key_and_value(&line).map(|(k, v)| (Some(k), Some(v)));
            prop_assert_eq!(now, bounded, "{:?}", line);
        }
    }
}
