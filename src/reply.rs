//! The answer a site gets: subject, headers and a plain-text body that says what was done, or
//! exactly why not and what to do next. Never quotes the original (no backscatter payload).

use crate::helpdesk::HelpdeskConfig;
use crate::outcome::Outcome;
use crate::policy::Decision;
use crate::request::lines::strip_subject_prefixes;
use serde::Serialize;

/// A reply ready for the outbox.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Our own Message-ID (without `<>`), on the helpdesk's domain.
    #[serde(skip)]
    pub message_id: String,
    #[serde(skip)]
    pub in_reply_to: Option<String>,
    /// Space-separated IDs, without `<>` (lettre adds them).
    #[serde(skip)]
    pub references: Option<String>,
    /// Text to blank out of the stored body once sent (a temporary password).
    #[serde(skip)]
    pub secret: Option<String>,
}

/// What applying a plan produced that the reply must tell.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// A sentence per change made.
    pub done: Vec<String>,
    /// A temporary password, shown once.
    pub temporary_password: Option<String>,
}

/// Strip leading `Re:`/`Fwd:` and an earlier `[HD-…]` tag so subjects do not grow.
fn base_subject(original: &str, prefix: &str) -> String {
    let mut s = original.trim();
    loop {
        // The same prefixes the reading of a request strips (one list, in `request::lines`).
        let stripped = strip_subject_prefixes(s);
        if stripped.len() != s.len() {
            s = stripped;
            continue;
        }
        if s.starts_with('[')
            && let Some(end) = s.find(']')
            && s.get(1..end).is_some_and(|tag| tag.starts_with(prefix))
        {
            s = s.get(end + 1..).unwrap_or("").trim_start();
            continue;
        }
        break;
    }
    // No control, bidi or zero-width character from the site's subject reaches ours, and it
    // is clipped: a 200,000-character subject made a 200,022-character reply subject, and
    // RFC 5322 §2.1.1 lines are 998 characters at most (issue 13).
    let kept: String = s.chars().filter(|c| !crate::text::is_unsafe(*c)).collect();
    crate::text::clip(&kept, MAX_SUBJECT_CHARS)
}

/// The most of a site's subject copied into a reply's.
const MAX_SUBJECT_CHARS: usize = 160;

pub struct ReplyInput<'a> {
    pub decision: &'a Decision,
    pub reference: &'a str,
    pub original_subject: &'a str,
    pub original_message_id: Option<&'a str>,
    pub original_references: &'a [String],
    pub applied: Option<&'a Applied>,
    /// A random token for our Message-ID.
    pub unique: &'a str,
}

/// Build the reply, or `None` when this decision must not be answered.
pub fn build(helpdesk: &HelpdeskConfig, input: &ReplyInput<'_>) -> Option<Reply> {
    let d = input.decision;
    if !d.answers() {
        return None;
    }
    let to = d.mailbox.clone()?;
    let base = base_subject(input.original_subject, &helpdesk.reference_prefix);
    let base = if base.is_empty() {
        d.kind.title().to_owned()
    } else {
        base
    };
    let subject = format!("[{}] {}: {}", input.reference, d.outcome.title(), base);

    let mut body = String::from("Hello,\n\n");
    match d.outcome {
        Outcome::Applied => {
            body.push_str(&format!(
                "Your request {} ({}) has been done.\n\n",
                input.reference,
                d.kind.title().to_lowercase()
            ));
            if let Some(applied) = input.applied {
                for line in &applied.done {
                    body.push_str(&format!("- {line}\n"));
                }
                if let Some(pw) = &applied.temporary_password {
                    body.push_str(&format!(
                        "\nTemporary password: {pw}\n\
                         It must be changed at the next sign-in. It is shown only in this email and is not kept by the helpdesk: please pass it on to the person directly and delete this email.\n"
                    ));
                }
            }
            for w in &d.warnings {
                body.push_str(&format!("\nPlease note: {w}\n"));
            }
        }
        Outcome::Rejected => {
            body.push_str(&format!(
                "Your request {} has not been done.\n\n",
                input.reference
            ));
            if let Some(r) = &d.reason {
                body.push_str(&format!("Why: {}\n", r.explain()));
            }
        }
        Outcome::AwaitingConfirmation => {
            body.push_str(&format!(
                "Your request {} ({}) is waiting for confirmation.\n\n",
                input.reference,
                d.kind.title().to_lowercase()
            ));
            if let Some(r) = &d.reason {
                body.push_str(&format!("{}\nNothing changes until then.\n", r.explain()));
            }
        }
        Outcome::NeedsReview => {
            body.push_str(&format!(
                "We have received your request and given it the reference {}. A person on the helpdesk will look at it and reply.\n",
                input.reference
            ));
            if let Some(r) = &d.reason {
                body.push_str(&format!("\n{}\n", r.explain()));
            }
        }
        _ => {}
    }
    if let Some(req) = &d.requester {
        body.push_str(&format!("\nRequested by {req} from {to}.\n"));
    }
    body.push_str(&format!(
        "\nIf you reply, keep [{}] in the subject so that your answer joins this request.\n\n-- \n{} (automatic reply from {})\n",
        input.reference, helpdesk.name, helpdesk.address
    ));

    let mut references: Vec<String> = input.original_references.to_vec();
    if let Some(id) = input.original_message_id
        && !references.iter().any(|r| r == id)
    {
        references.push(id.to_owned());
    }
    Some(Reply {
        to,
        subject,
        body,
        message_id: format!("{}.{}@{}", input.reference, input.unique, helpdesk.domain()),
        in_reply_to: input.original_message_id.map(str::to_owned),
        references: (!references.is_empty()).then(|| references.join(" ")),
        secret: input.applied.and_then(|a| a.temporary_password.clone()),
    })
}

/// One request's reply, before the replies of one message are put together.
pub struct Part {
    pub reference: String,
    pub outcome: Outcome,
    pub kind: crate::request::RequestKind,
    pub reply: Reply,
    /// "What we understood" lines for this request (names resolved, requester found by name);
    /// empty when everything was named by address.
    pub understood: Vec<String>,
}

/// Where the closing lines of a reply body start: the thread note, else the signature.
fn closing(body: &str) -> usize {
    body.find("\nIf you reply, keep [")
        .or_else(|| body.find("\n-- \n"))
        .unwrap_or(body.len())
}

fn understood_block(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut block = String::from("\nWhat we understood:\n");
    for l in lines {
        block.push_str(&format!("- {l}\n"));
    }
    block
}

/// The one reply to a message's requests: a request's own reply (with what was understood)
/// when it made one, else one reply listing each request's outcome under its reference. The
/// temporary passwords of several requests are gathered in one block at the end, so that the
/// outbox blanks them all once the reply is sent (the block is the reply's secret).
pub fn combine(helpdesk: &HelpdeskConfig, mut parts: Vec<Part>) -> Option<Reply> {
    if parts.len() <= 1 {
        let part = parts.pop()?;
        let mut reply = part.reply;
        let at = closing(&reply.body);
        reply
            .body
            .insert_str(at, &understood_block(&part.understood));
        return Some(reply);
    }
    let first = parts.first()?;
    let to = first.reply.to.clone();
    let message_id = first.reply.message_id.clone();
    let in_reply_to = first.reply.in_reply_to.clone();
    let references = first.reply.references.clone();
    let reference = first.reference.clone();
    let subject = format!(
        "[{reference}] {} requests: {}",
        parts.len(),
        parts
            .iter()
            .map(|p| format!("{} {}", p.kind.title(), p.outcome.title().to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let subject: String = subject.chars().take(200).collect();
    let mut body = format!(
        "Hello,\n\nYour email asked for {} things. Each has its own reference:\n",
        parts.len()
    );
    for p in &parts {
        body.push_str(&format!(
            "\n- [{}] {}: {}\n",
            p.reference,
            p.kind.title(),
            p.outcome.title()
        ));
    }
    let mut passwords = Vec::new();
    for p in &parts {
        body.push_str(&format!(
            "\n===== [{}] {} =====\n",
            p.reference,
            p.kind.title()
        ));
        let own = &p.reply.body;
        let start = own.find("Hello,\n\n").map_or(0, |i| i + "Hello,\n\n".len());
        let mut text = own.get(start..closing(own)).unwrap_or_default().to_owned();
        if let Some(secret) = &p.reply.secret {
            text = text.replace(secret.as_str(), "(given at the end of this email)");
            passwords.push(format!("[{}]: {secret}", p.reference));
        }
        body.push_str(text.trim_end());
        body.push('\n');
        body.push_str(&understood_block(&p.understood));
    }
    let secret = if passwords.is_empty() {
        None
    } else {
        let block = format!("Temporary passwords:\n{}\n", passwords.join("\n"));
        body.push_str(&format!(
            "\n{block}Each must be changed at the next sign-in. They are shown only in this email and are not kept by the helpdesk: please pass each on to the person directly and delete this email.\n"
        ));
        Some(block)
    };
    body.push_str(&format!(
        "\nIf you reply about one of them, keep its reference (such as [{reference}]) in the subject.\n\n-- \n{} (automatic reply from {})\n",
        helpdesk.name, helpdesk.address
    ));
    Some(Reply {
        to,
        subject,
        body,
        message_id,
        in_reply_to,
        references,
        secret,
    })
}

/// Whether a Message-ID is one postroom made (`HD-000042.<token>@<helpdesk domain>`). Sites
/// often share the helpdesk's domain, so the domain alone proves nothing.
pub fn is_our_message_id(helpdesk: &HelpdeskConfig, id: &str) -> bool {
    let Some((local, domain)) = id.trim().trim_matches(['<', '>']).rsplit_once('@') else {
        return false;
    };
    let Some((reference, token)) = local.split_once('.') else {
        return false;
    };
    let Some(number) = reference
        .strip_prefix(helpdesk.reference_prefix.as_str())
        .and_then(|r| r.strip_prefix('-'))
    else {
        return false;
    };
    domain.eq_ignore_ascii_case(helpdesk.domain())
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
        && !token.is_empty()
        && token.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A message to one person's own account (a confirmation code, or why a code did not work).
pub struct Notice<'a> {
    pub to: &'a str,
    pub reference: &'a str,
    /// Subject after the reference tag, e.g. `Confirm: Change role`.
    pub title: &'a str,
    pub body: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub unique: &'a str,
}

pub fn notice(helpdesk: &HelpdeskConfig, n: &Notice<'_>) -> Reply {
    let title: String = n
        .title
        .chars()
        .filter(|c| !crate::text::is_unsafe(*c))
        .collect();
    let title = crate::text::clip(&title, MAX_SUBJECT_CHARS);
    Reply {
        to: n.to.to_owned(),
        subject: format!("[{}] {title}", n.reference),
        body: format!(
            "Hello,\n\n{}\n\n-- \n{} (automatic message from {})\n",
            n.body.trim_end(),
            helpdesk.name,
            helpdesk.address
        ),
        message_id: format!("{}.{}@{}", n.reference, n.unique, helpdesk.domain()),
        in_reply_to: n.in_reply_to.map(str::to_owned),
        references: n.in_reply_to.map(str::to_owned),
        secret: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_ids_are_recognised() {
        let h = HelpdeskConfig {
            address: "helpdesk@nhs.example".into(),
            name: "H".into(),
            reference_prefix: "HD".into(),
        };
        assert!(is_our_message_id(&h, "HD-000042.Ab3xYz@nhs.example"));
        assert!(is_our_message_id(&h, "<HD-000042.Ab3xYz@NHS.example>"));
        assert!(!is_our_message_id(&h, "CAFE1234.5678@nhs.example"));
        assert!(!is_our_message_id(&h, "HD-000042.Ab3xYz@evil.example"));
        assert!(!is_our_message_id(&h, "HD-x.y@nhs.example"));
    }

    #[test]
    fn subjects_do_not_grow() {
        assert_eq!(
            base_subject("Re: [HD-000001] Done: Password reset", "HD"),
            "Done: Password reset"
        );
        assert_eq!(base_subject("FW: RE: New starter", "HD"), "New starter");
        assert_eq!(base_subject("[Other] x", "HD"), "[Other] x");
        assert_eq!(
            base_subject("Injected\r\nBcc: x@y", "HD"),
            "InjectedBcc: x@y"
        );
    }
}
