//! Mail that must never be answered or acted on: auto-replies, bounces, lists, our own mail
//! ([RFC 3834](https://www.rfc-editor.org/rfc/rfc3834)).

use crate::message::Message;

/// Why a message is set aside without a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenReason {
    /// `Auto-Submitted` other than `no` (RFC 3834 §5).
    AutoSubmitted(String),
    /// `Precedence: bulk|junk|list`.
    Precedence(String),
    /// `X-Autoreply`, `X-Autorespond` or `X-Autoresponder` (as `Name: value`).
    AutoresponderHeader(String),
    /// A `multipart/report` delivery or disposition report.
    DeliveryReport,
    /// From `MAILER-DAEMON` or `postmaster`.
    DaemonSender(String),
    /// `Return-Path: <>` (null sender: bounces and auto-replies).
    NullReturnPath,
    /// From the helpdesk's own address (a loop).
    OwnAddress,
}

impl ScreenReason {
    /// A sentence for the audit and the staff page.
    pub fn describe(&self) -> String {
        match self {
            ScreenReason::AutoSubmitted(value) => format!("auto-reply (Auto-Submitted: {value})"),
            ScreenReason::Precedence(value) => {
                format!("bulk or list mail (Precedence: {value})")
            }
            ScreenReason::AutoresponderHeader(header) => format!("auto-reply ({header})"),
            ScreenReason::DeliveryReport => {
                "delivery or read report (multipart/report)".to_string()
            }
            ScreenReason::DaemonSender(address) => format!("from a mail system ({address})"),
            ScreenReason::NullReturnPath => {
                "bounce or auto-reply (null sender, Return-Path: <>)".to_string()
            }
            ScreenReason::OwnAddress => "from the helpdesk's own address (mail loop)".to_string(),
        }
    }
}

/// Non-standard headers that autoresponders (Exchange, vacation programs) set on what they
/// send. Their presence alone is the mark: nobody sets them on a hand-written message.
/// `X-Auto-Response-Suppress` is deliberately absent: it asks *others* not to auto-reply and is
/// set by Outlook on ordinary mail.
const AUTORESPONDER_HEADERS: [&str; 3] = ["X-Autoreply", "X-Autorespond", "X-Autoresponder"];

/// Local parts mail systems send bounces from: `postmaster` (RFC 5321 §4.5.1) and the
/// conventional `MAILER-DAEMON`.
const DAEMON_LOCAL_PARTS: [&str; 2] = ["mailer-daemon", "postmaster"];

/// Returns why the message must be ignored, or `None` when it may be a request.
pub fn screen(msg: &Message, helpdesk_address: &str) -> Option<ScreenReason> {
    let helpdesk = helpdesk_address.trim();
    if let Some(from) = &msg.from
        && !helpdesk.is_empty()
        && from.eq_ignore_ascii_case(helpdesk)
    {
        return Some(ScreenReason::OwnAddress);
    }
    // RFC 3834 §5.1: any value but `no` (optionally with parameters) marks automatic mail.
    if let Some(value) = msg.header("auto-submitted") {
        let keyword = value.split(';').next().unwrap_or_default().trim();
        if !keyword.eq_ignore_ascii_case("no") {
            return Some(ScreenReason::AutoSubmitted(value.to_string()));
        }
    }
    for name in AUTORESPONDER_HEADERS {
        if let Some(value) = msg.header(name) {
            return Some(ScreenReason::AutoresponderHeader(format!(
                "{name}: {value}"
            )));
        }
    }
    // `Precedence` was never standardised (RFC 2076 §3.9 lists it) but is how lists, bulk
    // senders and many autoresponders mark their mail.
    if let Some(value) = msg.header("precedence") {
        let value = value.trim();
        if ["bulk", "junk", "list"]
            .iter()
            .any(|p| value.eq_ignore_ascii_case(p))
        {
            return Some(ScreenReason::Precedence(value.to_string()));
        }
    }
    // RFC 6522: delivery status notifications (RFC 3464) and read receipts (RFC 8098).
    if msg.content_type.eq_ignore_ascii_case("multipart/report") {
        return Some(ScreenReason::DeliveryReport);
    }
    if let Some(from) = &msg.from {
        let local = from
            .rsplit_once('@')
            .map_or(from.as_str(), |(local, _)| local);
        if DAEMON_LOCAL_PARTS
            .iter()
            .any(|d| local.eq_ignore_ascii_case(d))
        {
            return Some(ScreenReason::DaemonSender(from.clone()));
        }
    }
    // The null reverse-path marks bounces (RFC 5321 §4.5.5) and auto-replies, and RFC 3834 §2
    // forbids answering it.
    if msg.return_path.as_deref() == Some("") {
        return Some(ScreenReason::NullReturnPath);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;

    const HELPDESK: &str = "helpdesk@nhs.example";

    /// A request from a shared mailbox with `extra` headers added.
    fn with_headers(extra: &str) -> Message {
        let raw = format!(
            "Return-Path: <rosehill.care@nhs.example>\r\nFrom: Rosehill Care <rosehill.care@nhs.example>\r\n\
             To: helpdesk@nhs.example\r\nSubject: Password reset\r\n{extra}\r\nAccount: tom.smith@nhs.example\r\n"
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

    #[test]
    fn an_ordinary_request_passes() {
        assert_eq!(screen(&with_headers(""), HELPDESK), None);
        // Outlook sets this on ordinary mail: it is a request not to auto-reply, not a mark.
        assert_eq!(
            screen(&with_headers("X-Auto-Response-Suppress: All\r\n"), HELPDESK),
            None
        );
        assert_eq!(
            screen(&with_headers("Precedence: first-class\r\n"), HELPDESK),
            None
        );
    }

    #[test]
    fn auto_submitted_other_than_no() {
        for (header, want) in [
            ("Auto-Submitted: auto-replied", Some("auto-replied")),
            ("Auto-Submitted: auto-generated", Some("auto-generated")),
            (
                "Auto-Submitted: auto-replied; owner-email=x@y",
                Some("auto-replied; owner-email=x@y"),
            ),
            ("auto-submitted: Auto-Notified", Some("Auto-Notified")),
            ("Auto-Submitted: no", None),
            ("Auto-Submitted: NO ; comment", None),
        ] {
            let got = screen(&with_headers(&format!("{header}\r\n")), HELPDESK);
            assert_eq!(
                got,
                want.map(|v| ScreenReason::AutoSubmitted(v.to_string())),
                "{header}"
            );
        }
    }

    #[test]
    fn autoresponder_headers() {
        for name in ["X-Autoreply", "X-Autorespond", "x-autoresponder"] {
            let got = screen(&with_headers(&format!("{name}: yes\r\n")), HELPDESK);
            assert!(
                matches!(got, Some(ScreenReason::AutoresponderHeader(ref h)) if h.ends_with(": yes")),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn precedence_bulk_junk_list() {
        for value in ["bulk", "junk", "List"] {
            assert_eq!(
                screen(&with_headers(&format!("Precedence: {value}\r\n")), HELPDESK),
                Some(ScreenReason::Precedence(value.to_string()))
            );
        }
    }

    #[test]
    fn daemons_null_sender_reports_and_loops() {
        let from = |addr: &str| parse(format!("From: {addr}\r\nSubject: x\r\n\r\nbody").as_bytes());
        assert_eq!(
            screen(&from("MAILER-DAEMON@mx.example"), HELPDESK),
            Some(ScreenReason::DaemonSender(
                "mailer-daemon@mx.example".into()
            ))
        );
        assert_eq!(
            screen(&from("Postmaster <POSTMASTER@nhs.example>"), HELPDESK),
            Some(ScreenReason::DaemonSender("postmaster@nhs.example".into()))
        );
        assert_eq!(screen(&from("postmaster.team@nhs.example"), HELPDESK), None);
        assert_eq!(
            screen(&from("Helpdesk <HelpDesk@NHS.example>"), HELPDESK),
            Some(ScreenReason::OwnAddress)
        );
        assert_eq!(
            screen(&with_headers("Return-Path: <>\r\n"), HELPDESK),
            None,
            "the first Return-Path (the delivering MTA's) counts"
        );
        let null = parse(b"Return-Path: <>\r\nFrom: rosehill.care@nhs.example\r\n\r\nx");
        assert_eq!(screen(&null, HELPDESK), Some(ScreenReason::NullReturnPath));
        // An empty helpdesk address never matches a message without From.
        assert_eq!(screen(&parse(b"Subject: x\r\n\r\ny"), ""), None);
    }

    #[test]
    fn fixtures_are_screened_as_documented() {
        assert_eq!(
            screen(&fixture("auto_reply.eml"), HELPDESK),
            Some(ScreenReason::AutoSubmitted("auto-replied".into()))
        );
        assert_eq!(
            screen(&fixture("out_of_office_xautoreply.eml"), HELPDESK),
            Some(ScreenReason::AutoresponderHeader("X-Autoreply: yes".into()))
        );
        assert_eq!(
            screen(&fixture("bounce_multipart_report.eml"), HELPDESK),
            Some(ScreenReason::DeliveryReport)
        );
        assert_eq!(
            screen(&fixture("precedence_bulk.eml"), HELPDESK),
            Some(ScreenReason::Precedence("bulk".into()))
        );
        for name in [
            "password_reset_fields.eml",
            "outlook_html_only.eml",
            "on_behalf_sender.eml",
            "thread_reply.eml",
            "not_shared_mailbox.eml",
        ] {
            assert_eq!(screen(&fixture(name), HELPDESK), None, "{name}");
        }
    }

    #[test]
    fn descriptions_name_the_evidence() {
        assert_eq!(
            ScreenReason::AutoSubmitted("auto-replied".into()).describe(),
            "auto-reply (Auto-Submitted: auto-replied)"
        );
        assert_eq!(
            ScreenReason::Precedence("bulk".into()).describe(),
            "bulk or list mail (Precedence: bulk)"
        );
        assert_eq!(
            ScreenReason::AutoresponderHeader("X-Autoreply: yes".into()).describe(),
            "auto-reply (X-Autoreply: yes)"
        );
        assert!(
            ScreenReason::DeliveryReport
                .describe()
                .contains("multipart/report")
        );
        assert!(
            ScreenReason::DaemonSender("postmaster@x".into())
                .describe()
                .contains("postmaster@x")
        );
        assert!(ScreenReason::NullReturnPath.describe().contains("<>"));
        assert!(ScreenReason::OwnAddress.describe().contains("loop"));
    }
}
