//! The closing of a message: "Many thanks,\nFatima", "Kind regards\nFatima Ali\nDeputy
//! Manager", "Thanks, Jane", or a name alone on the last line. What follows the closing is not
//! read for asks (a job title or a phone number asks nothing), and the name in it is the signer
//! when there is exactly one.

use crate::request::names::{Who, mentions};
use crate::request::tokens::sentences;
use regex::Regex;
use std::sync::LazyLock;

/// A closing line: the sign-off words, then at most a name.
static CLOSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:many |kind |kindest |best |warm |warmest |with |with many |thanks and |thanks again and )?(?:thanks|thank you|thankyou|thanks again|thank you again|regards|wishes|cheers|sincerely|ta|thx|rgds|best|all the best|speak soon|yours sincerely|yours faithfully|yours)(?: (?:so much|very much|in advance|for your help|for your time))?\s*[,.!-]*\s*(.*)$")
        .expect("static regex")
});

/// How many non-blank lines may follow a closing (name, job title, site, phone).
const TAIL_LINES: usize = 6;

/// The one person's name on a line, if the line is only that name.
fn name_alone(line: &str) -> Option<String> {
    let line = line.trim().trim_end_matches([',', '.']);
    if line.is_empty() || line.split_whitespace().count() > 4 {
        return None;
    }
    let s = sentences(line);
    let [one] = s.as_slice() else { return None };
    let found = mentions(one);
    let [f] = found.as_slice() else { return None };
    match &f.who {
        Who::Name(n) if f.start == 0 && f.end == one.toks.len() => Some(n.clone()),
        _ => None,
    }
}

/// Where the closing starts (a line index of `lines`) and the signer's name.
pub fn closing(lines: &[&str]) -> (usize, Option<String>) {
    let non_blank: Vec<usize> = (0..lines.len())
        .filter(|&i| lines.get(i).is_some_and(|l| !l.trim().is_empty()))
        .collect();
    let tail = non_blank.len().saturating_sub(TAIL_LINES + 1);
    for &i in non_blank.get(tail..).unwrap_or_default() {
        let Some(line) = lines.get(i) else { continue };
        let Some(caps) = CLOSING.captures(line) else {
            continue;
        };
        let rest = caps.get(1).map_or("", |m| m.as_str()).trim();
        let signer = if rest.is_empty() {
            non_blank
                .iter()
                .find(|&&j| j > i)
                .and_then(|&j| lines.get(j))
                .and_then(|l| name_alone(l))
        } else {
            match name_alone(rest) {
                Some(n) => Some(n),
                None => continue, // "Thanks, could you also…" is not a closing.
            }
        };
        return (i, signer);
    }
    // No sign-off words: a name alone on the last line.
    if let Some(&last) = non_blank.last()
        && non_blank.len() > 1
        && let Some(name) = lines.get(last).and_then(|l| name_alone(l))
    {
        return (last, Some(name));
    }
    (lines.len(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(text: &str) -> Option<String> {
        let lines: Vec<&str> = text.lines().collect();
        closing(&lines).1
    }

    #[test]
    fn signatures() {
        for (text, want) in [
            ("Please unlock Joe.\n\nMany thanks,\nFatima", Some("Fatima")),
            (
                "Please unlock Joe.\n\nKind regards\nFatima Ali\nDeputy Manager\nRosehill Care",
                Some("Fatima Ali"),
            ),
            ("Please unlock Joe.\nThanks, Jane", Some("Jane")),
            ("Please unlock Joe.\n\nJane", Some("Jane")),
            ("Please unlock Joe.\n\nThanks\nJane and Tom", None),
            ("Please unlock Joe.\n\nThanks", None),
            ("Please unlock Joe.\n\nRegards\nRosehill Care", None),
            ("Thanks, could you also unlock Kim?", None),
        ] {
            assert_eq!(signer(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn the_closing_is_not_read() {
        let lines: Vec<&str> = "Please unlock Joe.\n\nThanks,\nFatima".lines().collect();
        assert_eq!(closing(&lines).0, 2);
        let lines: Vec<&str> = "Thanks, could you unlock Kim?".lines().collect();
        assert_eq!(closing(&lines).0, 1);
    }
}
