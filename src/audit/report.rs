//! A forensic report (issue 16): every request of a shared mailbox, or about an account, over
//! a period — when it came, from which mailbox and person, with what evidence that the mail
//! was genuine, what was decided and why, what changed, and what was replied — stamped with
//! the audit chain's verification, so that whoever reads it knows whether the trail it was
//! drawn from is intact. As a page, JSON, CSV and text; never a reply's body (a reply may
//! carry a temporary password).

use crate::config::Config;
use crate::store::report::{self as rows, Subject};
use crate::store::{Store, format_ms, now_ms};
use anyhow::Result;
use serde::Serialize;

/// The audit chain as it stood when the report was made.
#[derive(Debug, Clone, Serialize)]
pub struct ChainStamp {
    pub intact: bool,
    pub events: i64,
    pub head: Option<String>,
    /// `audit verify`'s one-line verdict.
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub queued: String,
    pub to: String,
    pub subject: String,
    pub status: String,
    pub sent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub reference: Option<String>,
    pub received: String,
    pub kind: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub mailbox: Option<String>,
    /// The person who asked, and how postroom knew (Sender header, a Requested by line…).
    pub requester: Option<String>,
    pub requester_how: Option<String>,
    pub target: Option<String>,
    /// The message: its Message-ID, envelope From, subject, and where it was read from.
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub sender: Option<String>,
    pub subject: String,
    pub source: String,
    /// Why the mail was taken as genuine (or not): the trust evidence summary.
    pub evidence: Option<String>,
    pub changes: Vec<Change>,
    pub replies: Vec<Reply>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `mailbox` or `account`.
    pub scope: &'static str,
    pub address: String,
    pub from: String,
    pub until: String,
    pub generated: String,
    pub chain: ChainStamp,
    pub requests: Vec<Entry>,
    /// True when the period held more requests than one report lists.
    pub truncated: bool,
}

/// Make the report for `who` over `[from_ms, until_ms)`.
pub async fn make(
    store: &Store,
    cfg: &Config,
    who: Subject<'_>,
    from_ms: i64,
    until_ms: i64,
) -> Result<Report> {
    let (scope, address) = match who {
        Subject::Mailbox(a) => ("mailbox", a),
        Subject::Account(a) => ("account", a),
    };
    let mut conn = store.read().await?;
    let found = rows::requests(&mut conn, who, from_ms, until_ms).await?;
    let truncated = i64::try_from(found.len()).unwrap_or(i64::MAX) >= rows::MAX_REQUESTS;
    let mut requests = Vec::with_capacity(found.len());
    for r in found {
        let events = rows::events(&mut conn, r.id).await?;
        let replies = rows::replies(&mut conn, r.id).await?;
        // The request's own event (`request.*`) carries the decision's detail: the trust
        // evidence, the Sender header and how the requester was identified.
        let detail = events
            .iter()
            .find(|e| e.action.starts_with("request."))
            .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
            .unwrap_or_default();
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        requests.push(Entry {
            reference: r.reference,
            received: format_ms(r.created_at),
            kind: r.kind.as_str().to_owned(),
            outcome: r.outcome.as_str().to_owned(),
            reason: r.reason,
            mailbox: r.mailbox,
            requester: r.requester,
            requester_how: text(&detail["understood"]["requester"]["how"]),
            target: r.target,
            message_id: r.message_id,
            from: r.from_address,
            sender: text(&detail["sender"]),
            subject: r.subject,
            source: r.source,
            evidence: text(&detail["trust"]["summary"]),
            changes: events
                .into_iter()
                .filter(|e| !e.action.starts_with("request."))
                .map(|e| Change {
                    at: format_ms(e.at),
                    actor: e.actor,
                    action: e.action,
                    subject: e.subject,
                })
                .collect(),
            replies: replies
                .into_iter()
                .map(|o| Reply {
                    queued: format_ms(o.created_at),
                    to: o.to,
                    subject: o.subject,
                    status: o.status.as_str().to_owned(),
                    sent: o.sent_at.map(format_ms),
                })
                .collect(),
        });
    }
    drop(conn);
    let check = crate::audit::verify(store, cfg, None).await?;
    Ok(Report {
        scope,
        address: address.to_owned(),
        from: format_ms(from_ms),
        until: format_ms(until_ms),
        generated: format_ms(now_ms()),
        chain: ChainStamp {
            intact: check.intact,
            events: check.events,
            head: check.head,
            verdict: check.message,
        },
        requests,
        truncated,
    })
}

/// The columns of the CSV form, one row per request.
pub const CSV_HEADER: [&str; 19] = [
    "reference",
    "received",
    "kind",
    "outcome",
    "reason",
    "mailbox",
    "requester",
    "requester_how",
    "target",
    "message_id",
    "from",
    "sender",
    "subject",
    "source",
    "evidence",
    "changes",
    "replies",
    "chain_intact",
    "chain_verdict",
];

/// CSV, every cell defused ([`crate::text::csv_cell`]) and every row stamped with the chain's
/// verdict (a row copied out alone still says how the trail stood).
pub fn to_csv(r: &Report) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for e in &r.requests {
        let changes: Vec<String> = e
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} by {}",
                    c.at,
                    c.action,
                    c.subject.as_deref().unwrap_or(""),
                    c.actor
                )
            })
            .collect();
        let replies: Vec<String> = e
            .replies
            .iter()
            .map(|o| {
                format!(
                    "{} to {}: {} ({}{})",
                    o.queued,
                    o.to,
                    o.subject,
                    o.status,
                    o.sent
                        .as_deref()
                        .map(|s| format!(" {s}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let cells = [
            opt(&e.reference),
            e.received.clone(),
            e.kind.clone(),
            e.outcome.clone(),
            opt(&e.reason),
            opt(&e.mailbox),
            opt(&e.requester),
            opt(&e.requester_how),
            opt(&e.target),
            opt(&e.message_id),
            opt(&e.from),
            opt(&e.sender),
            e.subject.clone(),
            e.source.clone(),
            opt(&e.evidence),
            changes.join("; "),
            replies.join("; "),
            r.chain.intact.to_string(),
            r.chain.verdict.clone(),
        ];
        w.write_record(cells.iter().map(|c| crate::text::csv_cell(c).into_owned()))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// For a person at a terminal.
pub fn to_text(r: &Report) -> String {
    let mut out = format!(
        "Forensic report: {} {}, {} to {} (generated {})\nAudit trail: {}\n",
        r.scope, r.address, r.from, r.until, r.generated, r.chain.verdict
    );
    if r.requests.is_empty() {
        out.push_str("\nNo request in this period.\n");
    }
    for e in &r.requests {
        out.push_str(&format!(
            "\n{} {} — {} {}{}\n",
            e.reference.as_deref().unwrap_or("(no reference)"),
            e.received,
            e.kind,
            e.outcome,
            e.reason
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "  from {} (sender {}), Message-ID {}, read from {}\n  subject: {}\n",
            e.from.as_deref().unwrap_or("?"),
            e.sender.as_deref().unwrap_or("none"),
            e.message_id.as_deref().unwrap_or("none"),
            e.source,
            crate::text::clip(&crate::text::clean(&e.subject), 160)
        ));
        out.push_str(&format!(
            "  evidence: {}\n  asked by: {}{}\n  about: {}\n",
            e.evidence.as_deref().unwrap_or("none recorded"),
            e.requester.as_deref().unwrap_or("nobody identified"),
            e.requester_how
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default(),
            e.target.as_deref().unwrap_or("-")
        ));
        for c in &e.changes {
            out.push_str(&format!(
                "  changed: {} {} {} by {}\n",
                c.at,
                c.action,
                c.subject.as_deref().unwrap_or(""),
                c.actor
            ));
        }
        for o in &e.replies {
            out.push_str(&format!(
                "  replied: {} to {}: {} ({})\n",
                o.queued, o.to, o.subject, o.status
            ));
        }
    }
    if r.truncated {
        out.push_str(&format!(
            "\nOnly the first {} requests are listed: ask for a shorter period.\n",
            rows::MAX_REQUESTS
        ));
    }
    out
}
