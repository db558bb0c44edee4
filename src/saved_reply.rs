//! Saved replies' placeholders (issue 17): `{reference}`, `{site}`, `{requester}`, the fields
//! postroom understood (`{account}`, `{name}`, …). Pure. A body is read once, left to right:
//! a value put in is never read again, so a requester who writes `{reference}` in their name
//! gets exactly that text, not a substitution (no template injection). `{{` and `}}` are
//! literal braces. A placeholder this list does not know is refused when the reply is saved,
//! so a site never reads `{nmae}`.

use std::collections::BTreeMap;

/// Every placeholder, with what it becomes.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("reference", "the request's reference (HD-000042)"),
    ("site", "the shared mailbox that wrote (or the sender)"),
    ("requester", "who asked, as postroom understood it"),
    ("kind", "what the request is for, in words"),
    ("helpdesk", "the helpdesk's name"),
    ("account", "the account the request is about"),
    ("role", "the role asked for"),
    ("name", "the full name given"),
    ("first_name", "the first name given"),
    ("last_name", "the last name given"),
    ("job_title", "the job title given"),
    ("replacement", "the replacement owner given"),
    ("requested_by", "who the email says asked"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Slot(&'a str),
}

/// The body in pieces; the unknown placeholders (and an unclosed `{`) as errors.
fn pieces(body: &str) -> (Vec<Piece<'_>>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let Some(i) = rest.find(['{', '}']) else {
            out.push(Piece::Text(rest));
            break;
        };
        let (text, tail) = rest.split_at(i);
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        if let Some(after) = tail.strip_prefix("{{") {
            out.push(Piece::Brace('{'));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push(Piece::Brace('}'));
            rest = after;
        } else if let Some(after) = tail.strip_prefix('}') {
            out.push(Piece::Brace('}'));
            rest = after;
        } else {
            let open = tail.get(1..).unwrap_or_default();
            match open.find('}') {
                Some(end) if !open[..end].contains('{') && !open[..end].contains('\n') => {
                    let name = open[..end].trim();
                    if PLACEHOLDERS.iter().any(|(p, _)| *p == name) {
                        out.push(Piece::Slot(name));
                    } else {
                        problems.push(format!("{{{name}}} is not a placeholder"));
                        out.push(Piece::Text(&tail[..end + 2]));
                    }
                    rest = &open[end + 1..];
                }
                _ => {
                    problems.push("a { is not closed (write {{ for a brace of its own)".to_owned());
                    out.push(Piece::Brace('{'));
                    rest = open;
                }
            }
        }
    }
    (out, problems)
}

/// What is wrong with a body an admin is saving: unknown placeholders, unclosed braces.
pub fn problems(body: &str) -> Vec<String> {
    let mut once: Vec<String> = Vec::new();
    for p in pieces(body).1 {
        if !once.contains(&p) {
            once.push(p);
        }
    }
    once
}

/// The body with each placeholder replaced by its value (empty when the request has none).
pub fn fill(body: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(body.len());
    for piece in pieces(body).0 {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(c) => out.push(c),
            Piece::Slot(name) => {
                if let Some(v) = values.get(name) {
                    out.push_str(v);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<&'static str, String> {
        [
            ("reference", "HD-000042".to_owned()),
            ("site", "rosehill.care@nhs.example".to_owned()),
            // A value that looks like a placeholder stays text.
            ("name", "Zoë {reference} Ångström".to_owned()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn placeholders_are_filled_once() {
        let body =
            "Dear {site},\nyour request {reference} for {name} ({account}) is done. {{not a slot}}";
        assert!(problems(body).is_empty(), "{:?}", problems(body));
        assert_eq!(
            fill(body, &values()),
            "Dear rosehill.care@nhs.example,\nyour request HD-000042 for Zoë {reference} Ångström () is done. {not a slot}"
        );
        assert_eq!(fill("{ reference }", &values()), "HD-000042");
    }

    #[test]
    fn unknown_placeholders_are_reported() {
        assert_eq!(
            problems("Hello {nmae}, see {reference} and {nmae}"),
            vec!["{nmae} is not a placeholder".to_owned()]
        );
        assert_eq!(problems("a { alone").len(), 1);
        assert!(problems("a } alone, {{ and }}").is_empty());
        // Whatever is wrong is left as written, never dropped.
        assert_eq!(fill("Hi {nmae}", &values()), "Hi {nmae}");
    }
}
