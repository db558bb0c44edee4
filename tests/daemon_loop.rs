//! A mail loop between postroom and an out-of-office responder, driven through the real Postfix
//! and Dovecot (issue 4): the responder answers every message its shared mailbox receives —
//! once politely (with `Auto-Submitted`), once like the worst responders (no marker at all,
//! only `In-Reply-To` and a "Re:" subject) — and postroom must answer neither: one request,
//! one reply, however many rounds.

use crate::common::mailstack::MailStack;
use crate::daemon_support::{Site, header};
use std::time::Duration;

/// An out-of-office answer to `reply`, as the shared mailbox's responder would send it.
fn out_of_office(site: &Site, reply: &[u8], n: usize, polite: bool) -> Vec<u8> {
    let their_id = header(reply, "Message-ID").unwrap_or_default();
    let subject = header(reply, "Subject").unwrap_or_default();
    let marker = if polite {
        "Auto-Submitted: auto-replied\r\n"
    } else {
        ""
    };
    format!(
        "Authentication-Results: {auth}; dkim=pass header.d=test.example; dmarc=pass header.from=test.example\r\n\
         From: {mb}\r\nTo: {hd}\r\nSubject: Re: {subject}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <ooo-{n}-{pid}@test.example>\r\nIn-Reply-To: {their_id}\r\nReferences: {their_id}\r\n{marker}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         I am out of the office until Monday and will read your message then.\r\n",
        auth = crate::daemon_support::AUTHSERV,
        mb = site.mailbox,
        hd = site.helpdesk,
        pid = std::process::id(),
    )
    .into_bytes()
}

#[tokio::test]
async fn an_out_of_office_responder_never_starts_a_loop() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start();

    let (_, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(replies.len(), 1);

    // Three rounds of the responder answering whatever is newest in its inbox: a polite
    // responder, then a rude one, then the rude one answering again.
    for (round, polite) in [(1, true), (2, false), (3, false)] {
        let latest = stack.fetch_all(&site.mailbox, "INBOX").await.pop().unwrap();
        stack
            .send(
                &site.mailbox,
                &[&site.helpdesk],
                &out_of_office(&site, &latest, round, polite),
            )
            .await;
    }
    // postroom has handled all four messages (filed out of its inbox)…
    crate::daemon_support::eventually("all messages filed", Duration::from_secs(30), || async {
        stack.folder_count(&site.helpdesk, "INBOX").await == 0
            && site
                .audit()
                .iter()
                .filter(|e| {
                    e["action"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("request."))
                })
                .count()
                >= 4
    })
    .await;
    // …and sent nothing more: give a stray reply time to arrive before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let inbox = stack.fetch_all(&site.mailbox, "INBOX").await;
    assert_eq!(inbox.len(), 1, "postroom answered an out-of-office message");
    assert!(
        stack
            .fetch_all(&site.mailbox, "INBOX")
            .await
            .iter()
            .all(|m| header(m, "Auto-Submitted").as_deref() == Some("auto-replied"))
    );
    let audit = site.audit();
    let ignored: Vec<_> = audit
        .iter()
        .filter(|e| e["action"] == "request.ignored" || e["action"] == "request.comment")
        .collect();
    assert_eq!(
        ignored.len(),
        3,
        "each out-of-office message is set aside: {audit:?}"
    );
    assert_eq!(site.audit_count("account.unlocked"), 1);
    daemon.stop();
}
