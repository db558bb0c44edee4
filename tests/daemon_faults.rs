//! `postroom run` when the mail servers fail under it: Dovecot stopped and restarted, Postfix
//! down while a reply waits. These tests stop servers, so they take the mail stack exclusively
//! (MailStack::require_exclusive) and run one at a time.

use crate::common::mailstack::MailStack;
use crate::daemon_support::{Site, eventually, header};
use std::time::Duration;

#[tokio::test]
async fn dovecot_restart_mid_run_reconnects_and_processes_mail_sent_afterwards() {
    let stack = MailStack::require_exclusive();
    let site = Site::new(&stack, &[]);
    let mut daemon = site.start();

    // Down for a few seconds: the IDLE connection is cut and reconnects fail meanwhile.
    stack.stop_dovecot();
    daemon.wait_log("reconnecting in", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    stack.start_dovecot();
    assert!(
        daemon.wait_exit(Duration::ZERO).is_none(),
        "exited:\n{}",
        daemon.log()
    );

    let (_, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;
    eventually(
        "the request is filed after the restart",
        Duration::from_secs(30),
        || async {
            stack
                .folder_count(&site.helpdesk, "postroom/processed")
                .await
                == 1
        },
    )
    .await;
    assert_eq!(site.audit_count("account.unlocked"), 1);
    stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;

    let log = daemon.stop();
    assert!(
        log.matches("IMAP session ready").count() >= 2,
        "reconnected:\n{log}"
    );
    // One line per failure, not a flood (3 s down with backoff from 1 s).
    let failures = log
        .lines()
        .filter(|l| l.contains("reconnecting in"))
        .count();
    assert!(
        (1..=6).contains(&failures),
        "{failures} reconnect lines:\n{log}"
    );
}

#[tokio::test]
async fn reply_waits_while_postfix_is_down_and_is_sent_once_when_it_is_back() {
    let stack = MailStack::require_exclusive();
    let site = Site::new(&stack, &[]);
    let daemon = site.start();

    stack.stop_postfix();
    // APPEND needs only Dovecot.
    let (id, raw) = site.unlock_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    eventually("the request is filed", Duration::from_secs(15), || async {
        stack
            .folder_count(&site.helpdesk, "postroom/processed")
            .await
            == 1
    })
    .await;
    // The reply is refused at least once while Postfix is down.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stack.folder_count(&site.mailbox, "INBOX").await, 0);

    stack.start_postfix();
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        header(&replies[0], "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        stack.folder_count(&site.mailbox, "INBOX").await,
        1,
        "sent exactly once"
    );
    daemon.stop();
}
