//! The confidentiality notice many organisations add under every message ("This email and any
//! files sent with it are confidential… if it has reached you by mistake, please tell the sender
//! and delete it"). It asks nothing of the helpdesk, yet it is written in the imperative and
//! names "the sender": read as prose it would become an ask. It is cut off before the message
//! is read, from the paragraph where it starts to the end of the new text.

use regex::Regex;
use std::sync::LazyLock;

/// Wording found in confidentiality and environment notices and nowhere in a request.
static NOTICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \b(?:this|the)\s(?:e-?mail|message|communication)\b[^.]{0,80}\b(?:confidential|privileged|intended\sonly|intended\ssolely|meant\sonly)\b
        | \bintended\s(?:solely\s|only\s)?for\sthe\s(?:sole\s)?(?:use\sof\sthe\s)?(?:addressee|recipient|person|individual|named)
        | \bif\syou\s(?:are\snot\sthe\s(?:intended\s)?(?:recipient|addressee)|have\sreceived\sthis|received\sthis)\b
        | \b(?:reached|sent\sto)\syou\s(?:by\smistake|in\serror)\b
        | \breceived\s(?:this\s)?(?:e-?mail\s|message\s)?(?:in\serror|by\smistake)\b
        | \bdisclaimer\b
        | \bbefore\sprinting\sthis\b
        | \bconsider\sthe\senvironment\b
        | \bscanned\sfor\s(?:viruses|malware)\b
        | \bsecure\se-?mail\sservice\b
        ",
    )
    .expect("static regex")
});

/// A separator line: a run of one punctuation character ("*****", "-----", "_____", "=====").
static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\*{5,}|-{5,}|_{5,}|={5,}|~{5,}|#{5,})\s*$").expect("static regex")
});

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_separator(line: &str) -> bool {
    SEPARATOR.is_match(line)
}

/// The line index where a notice starts (its separator line when it has one), if `lines` holds
/// one after some text of the message's own. A notice in the first paragraph is left alone: a
/// message that is only a notice is then read as it is (and asks nothing a person must not see).
pub fn start(lines: &[&str]) -> Option<usize> {
    let mut seen_text = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines.get(i).copied().unwrap_or_default();
        if is_blank(line) || is_separator(line) {
            i += 1;
            continue;
        }
        // A paragraph: lines up to the next blank or separator line.
        let end = (i..lines.len())
            .find(|&j| lines.get(j).is_none_or(|l| is_blank(l) || is_separator(l)))
            .unwrap_or(lines.len());
        let paragraph = lines.get(i..end).unwrap_or_default().join(" ");
        if seen_text && NOTICE.is_match(&paragraph) {
            // Take the separator lines (and blanks between them) just above it along.
            let mut from = i;
            while from > 0
                && lines
                    .get(from - 1)
                    .is_some_and(|l| is_blank(l) || is_separator(l))
            {
                from -= 1;
            }
            return Some(from);
        }
        seen_text = true;
        i = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(text: &str) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let end = start(&lines).unwrap_or(lines.len());
        lines[..end].join("\n")
    }

    #[test]
    fn notices_are_cut() {
        for (text, want) in [
            (
                "Please reset Joe's password.\n\nJane\n\n****\n*****************\nThis email and any files sent with it are confidential. If it has reached you by mistake, please tell the sender and delete it.\n*****************",
                "Please reset Joe's password.\n\nJane\n\n****",
            ),
            (
                "Unlock Kim please.\nJane\n\nDISCLAIMER: views expressed are the author's own.",
                "Unlock Kim please.\nJane",
            ),
            (
                "Unlock Kim please.\n----------\nIf you are not the intended recipient, notify us.",
                "Unlock Kim please.",
            ),
            (
                "Unlock Kim please.\n\nPlease consider the environment before printing this email.",
                "Unlock Kim please.",
            ),
        ] {
            assert_eq!(kept(text), want, "{text}");
        }
    }

    #[test]
    fn requests_are_kept() {
        for text in [
            // A notice alone, or first, is read as it is.
            "This email is confidential: please reset Joe's password.",
            "Please reset Joe's password, he received a message in the post.\n\nThanks, Jane",
            "Please unlock Kim.\n\nShe was sent a new laptop by mistake last week.",
            "Please remove Tom, he left.\n\n-----\nRosehill Care",
        ] {
            assert_eq!(kept(text), text, "{text}");
        }
    }
}
