//! What processing a message or deciding a request produced, as `process` prints it, the
//! audit keeps it and the staff page shows it: the outcome, the reference, the reason, the
//! reply, and what was understood.

use crate::outcome::Outcome;
use crate::policy::Decision;
use crate::reason::Reason;
use crate::reply::Reply;
use crate::request::RequestKind;
use serde::Serialize;

/// The result of processing one message, as `process` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Processed {
    pub outcome: Outcome,
    pub kind: RequestKind,
    pub reference: Option<String>,
    /// Stable reason code (see `reason.rs`), `null` when applied without remark.
    pub reason: Option<String>,
    /// The reason as a sentence for a person.
    pub explanation: Option<String>,
    /// The answer to the site's mailbox, if one is sent.
    pub reply: Option<Reply>,
    #[serde(skip)]
    pub request_id: Option<i64>,
    /// For a duplicate: the outcome the message got the first time (the IMAP watcher files it
    /// in that outcome's folder).
    #[serde(skip)]
    pub previous_outcome: Option<Outcome>,
    /// For a duplicate: where its first copy came from (`imap:…`, `lmtp:…`); the LMTP
    /// listener files a redelivery only when the first copy came over LMTP too.
    #[serde(skip)]
    pub previous_source: Option<String>,
    /// What postroom understood the request to be (issue 12): `null` when the message was not
    /// read as a request (a duplicate, a comment, mail that was screened out).
    pub understood: Option<Understood>,
    /// Its answer was queued on its own (it waits for the request's provisioning job), not
    /// combined with the answers to the message's other requests.
    #[serde(skip)]
    pub answered_alone: bool,
    /// What the change is at the directory target (`[directory]`), one line each, without
    /// secrets: what `replay --dry-run` shows a rule change would do there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

/// What was understood from a request: the kind, each target with how it was found, the
/// requester and how, and the fields. In `process` JSON, the reply, the audit and the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Understood {
    pub kind: RequestKind,
    pub targets: Vec<Resolution>,
    pub requester: Option<Resolution>,
    pub fields: std::collections::BTreeMap<String, String>,
}

/// One person named by a request and the account it was resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Resolution {
    /// As the message wrote it (an address, a name).
    pub as_written: String,
    /// The account it was resolved to; `None` when it resolved to none.
    pub account: Option<String>,
    /// How, in words for a person ("named by address", "the only account of the
    /// organisation with that name").
    pub how: String,
    /// When it resolved to no one account: the accounts it could be (offered to staff).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub candidates: Vec<String>,
}

impl Understood {
    /// Lines for the reply: each person named in words and the account found, and a
    /// requester found by name or signature. Addresses speak for themselves.
    pub fn lines(&self) -> Vec<String> {
        let line = |r: &Resolution, role: &str| match &r.account {
            Some(account) if *account != r.as_written => {
                Some(format!("{role}{} → {account}: {}", r.as_written, r.how))
            }
            Some(_) => None,
            None => Some(format!("{role}{}: {}", r.as_written, r.how)),
        };
        let mut lines: Vec<String> = self.targets.iter().filter_map(|t| line(t, "")).collect();
        if let Some(r) = &self.requester
            && r.how != "named by address"
        {
            match &r.account {
                Some(account) => lines.push(format!("Asked by {account}: {}", r.how)),
                None => lines.extend(line(r, "Asked by ")),
            }
        }
        lines
    }

    /// What a decision records of the request (addresses only, until names resolve).
    pub fn of(d: &Decision) -> Understood {
        let by_address = |a: &String| Resolution {
            as_written: a.clone(),
            account: Some(a.clone()),
            how: "named by address".into(),
            candidates: Vec::new(),
        };
        Understood {
            kind: d.kind,
            targets: d.target.iter().map(by_address).collect(),
            requester: d.requester.as_ref().map(by_address),
            fields: d.fields.clone(),
        }
    }
}

impl Processed {
    pub(crate) fn new(
        outcome: Outcome,
        kind: RequestKind,
        reference: Option<String>,
        reason: Option<&Reason>,
    ) -> Processed {
        Processed {
            outcome,
            kind,
            reference,
            reason: reason.map(|r| r.code().to_owned()),
            explanation: reason.map(Reason::explain),
            reply: None,
            request_id: None,
            previous_outcome: None,
            previous_source: None,
            understood: None,
            answered_alone: false,
            operations: Vec::new(),
        }
    }
}
