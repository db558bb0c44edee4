//! Checks the test mail stack itself (tests/mailstack/, tests/common/mailstack.rs):
//! if these fail, every mail integration test would fail for the wrong reason.

use std::time::Duration;

use crate::common::mailstack::MailStack;

fn message(from: &str, to: &str, subject: &str, token: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\n\
         To: {to}\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{token}@selftest.test.example>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         token {token}\r\n"
    )
    .into_bytes()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn mail_sent_through_postfix_arrives_over_imap() {
    let stack = MailStack::require();
    let to = stack.unique_user("selftest-smtp");
    let token = format!("smtp-{}", std::process::id());
    let raw = message("jane.doe@nhs.example", &to, "through postfix", &token);

    stack.send("jane.doe@nhs.example", &[&to], &raw).await;

    let got = stack
        .wait_for(&to, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(got.len(), 1, "exactly one message expected");
    assert!(contains(&got[0], &token), "body lost in transit");
    assert!(
        contains(&got[0], "Return-Path: <jane.doe@nhs.example>"),
        "LMTP delivery adds the envelope sender"
    );
}

#[tokio::test]
async fn postfix_refuses_domains_outside_the_stack() {
    let stack = MailStack::require();
    let raw = message(
        "jane.doe@nhs.example",
        "x@elsewhere.example",
        "no",
        "refused",
    );
    let err = stack
        .try_send("jane.doe@nhs.example", &["x@elsewhere.example"], &raw)
        .await
        .expect_err("mail to another domain must never leave the machine");
    assert!(err.contains("550") || err.contains("permanent"), "{err}");
}

#[tokio::test]
async fn append_creates_folder_and_counts() {
    let stack = MailStack::require();
    let user = stack.unique_user("selftest-append");
    assert_eq!(stack.folder_count(&user, "INBOX").await, 0);
    assert_eq!(stack.folder_count(&user, "Processed").await, 0);
    assert!(stack.fetch_all(&user, "Processed").await.is_empty());

    for i in 0..3 {
        let raw = message(
            "rosehill.care@nhs.example",
            &user,
            "appended",
            &format!("append-{i}"),
        );
        stack.append(&user, "Processed", &raw).await;
    }
    stack
        .append(
            &user,
            "INBOX",
            &message("a@nhs.example", &user, "in", "inbox-0"),
        )
        .await;

    assert_eq!(stack.folder_count(&user, "Processed").await, 3);
    assert_eq!(stack.folder_count(&user, "INBOX").await, 1);
    let got = stack.fetch_all(&user, "Processed").await;
    assert_eq!(got.len(), 3);
    for (i, raw) in got.iter().enumerate() {
        assert!(contains(raw, &format!("append-{i}")), "UID order kept");
    }
    assert!(
        stack
            .folders(&user)
            .await
            .contains(&"Processed".to_string())
    );
}

#[tokio::test]
async fn imap_and_delivery_work_again_after_dovecot_restart() {
    // Exclusive: no other test runs against the stack while Dovecot is down.
    let stack = MailStack::require_exclusive();
    let user = stack.unique_user("selftest-restart");
    stack
        .append(
            &user,
            "INBOX",
            &message("a@nhs.example", &user, "before", "before"),
        )
        .await;

    let mut session = stack.imap_login(&user).await.expect("login");
    session.select("INBOX").await.expect("select");

    stack.stop_dovecot();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", stack.imap_port))
            .await
            .is_err(),
        "IMAP must be down"
    );
    // The open session was cut ("* BYE Server shutting down.", then EOF). Beware:
    // async-imap 0.12 takes EOF before the tagged reply as success: NOOP gives
    // Ok(()) and STATUS Ok(Mailbox::default()) even after a BYE, and SELECT does
    // too on a bare EOF (checked against a fake server). A dead session shows as
    // an error or as a mailbox without UIDVALIDITY (Dovecot always sends it).
    // The session's own imap process may outlive the master by a moment on a loaded machine:
    // it must be dead within a few seconds, not at the first look.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let select = tokio::time::timeout(Duration::from_secs(10), session.select("INBOX")).await;
        let alive = matches!(&select, Ok(Ok(mailbox)) if mailbox.uid_validity.is_some());
        if !alive {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old session must be dead"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Mail sent while Dovecot is down waits in Postfix's queue, retried every second.
    let raw = message("raj.patel@nhs.example", &user, "during", "during-outage");
    stack.send("raj.patel@nhs.example", &[&user], &raw).await;
    stack.start_dovecot();

    let got = stack
        .wait_for(&user, "INBOX", 2, Duration::from_secs(30))
        .await;
    assert!(contains(&got[0], "before"));
    assert!(contains(&got[1], "during-outage"));

    stack.restart_dovecot();
    assert_eq!(stack.folder_count(&user, "INBOX").await, 2);
}

#[tokio::test]
async fn users_added_while_running_can_log_in_at_once() {
    let stack = MailStack::require();
    for _ in 0..3 {
        // Lookups keep Dovecot's once-a-second passwd-file check busy...
        stack.folder_count("helpdesk@nhs.example", "INBOX").await;
        // ... yet a user added now must work immediately.
        let user = stack.unique_user("selftest-adduser");
        let session = stack.imap_login(&user).await;
        assert!(session.is_ok(), "{:?}", session.err());
    }
    // Adding twice is harmless.
    stack.add_user("helpdesk@nhs.example");
    let users = std::fs::read_to_string(stack.users_file()).unwrap();
    assert_eq!(
        users
            .lines()
            .filter(|l| l.starts_with("helpdesk@nhs.example:"))
            .count(),
        1
    );
}

#[tokio::test]
async fn smtp_works_again_after_postfix_restart() {
    let stack = MailStack::require_exclusive();
    let user = stack.unique_user("selftest-postfix");
    stack.stop_postfix();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", stack.smtp_port))
            .await
            .is_err(),
        "SMTP must be down"
    );
    stack.start_postfix();
    let raw = message(
        "jane.doe@nhs.example",
        &user,
        "after",
        "after-postfix-restart",
    );
    stack.send("jane.doe@nhs.example", &[&user], &raw).await;
    let got = stack
        .wait_for(&user, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert!(contains(&got[0], "after-postfix-restart"));
}
