//! `postroom run` with its LMTP listener (issue 18, RFC 2033) behind the real Postfix of the
//! mail stack: the stack routes the test's helpdesk address to the test's postroom
//! (`MailStack::route_to_lmtp`, a `transport_maps` entry) instead of Dovecot, and the request
//! is sent to Postfix over SMTP as a site would send it.
//!
//! What must hold: `250` only after the message's transaction has committed, so Postfix keeps
//! and retries whatever postroom did not take (postroom stopped, the database down, a crash
//! between commit and answer) and nothing is lost or applied twice; the message is filed in
//! the helpdesk's IMAP outcome folder like a watched one; with IMAP on as well, the same
//! message arriving both ways is applied once.

use crate::common::mailstack::MailStack;
use crate::common::testdb::TestDb;
use crate::daemon_db_outage::Cluster;
use crate::daemon_support::{Daemon, Site, contains, eventually, header};
use std::time::Duration;

const PROCESSED: &str = "postroom/processed";
const REJECTED: &str = "postroom/rejected";
const REVIEW: &str = "postroom/review";
const IGNORED: &str = "postroom/ignored";

/// A loopback port nobody listens on now (bound and let go: the daemon binds it next).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A site whose helpdesk address Postfix delivers to `postroom run` over LMTP; IMAP stays
/// configured (the watcher, and the outcome folders LMTP deliveries are filed in).
fn lmtp_site(stack: &MailStack, overrides: &[(&str, &str, &str)]) -> (Site, u16) {
    lmtp_site_on(stack, overrides, TestDb::new)
}

fn lmtp_site_on(
    stack: &MailStack,
    overrides: &[(&str, &str, &str)],
    db: impl FnOnce(&std::path::Path) -> TestDb,
) -> (Site, u16) {
    let port = free_port();
    let listen = format!("\"127.0.0.1:{port}\"");
    let mut settings = vec![("lmtp", "listen", listen.as_str())];
    settings.extend_from_slice(overrides);
    let site = Site::on(stack, &settings, db);
    stack.route_to_lmtp(&site.helpdesk, port);
    (site, port)
}

fn start(site: &Site, env: &[(&str, &str)]) -> Daemon {
    let d = site.start_with(env, false);
    d.wait_log("LMTP listening", Duration::from_secs(10));
    d
}

/// Postfix's log lines about deliveries to `address`.
fn postfix_lines(stack: &MailStack, address: &str) -> Vec<String> {
    let needle = format!("to=<{}>", address.to_ascii_lowercase());
    std::fs::read_to_string(stack.dir.join("postfix.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

async fn postfix_logged(stack: &MailStack, address: &str, what: &str, timeout: Duration) {
    eventually(
        &format!("Postfix logs {what:?} for {address}"),
        timeout,
        || async {
            postfix_lines(stack, address)
                .iter()
                .any(|l| l.contains(what))
        },
    )
    .await;
}

async fn folder_is(stack: &MailStack, user: &str, folder: &str, n: usize, timeout: Duration) {
    let what = format!("{user} {folder} holds {n}");
    eventually(&what, timeout, || async {
        stack.folder_count(user, folder).await == n
    })
    .await;
}

#[tokio::test]
async fn request_through_postfix_over_lmtp_is_applied_answered_and_filed() {
    let stack = MailStack::require();
    let (site, port) = lmtp_site(&stack, &[]);
    let daemon = start(&site, &[]);

    let (id, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;

    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        header(&replies[0], "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    assert!(
        contains(&replies[0], &site.locked),
        "the reply names the account"
    );
    // Filed for people where the watcher would have moved it; never in the INBOX (Postfix
    // gave it to postroom, not to Dovecot).
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(10),
    )
    .await;
    let filed = stack.fetch_all(&site.helpdesk, PROCESSED).await;
    assert!(contains(&filed[0], &id));
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(site.audit_count("account.unlocked"), 1);

    // Postfix delivered it to postroom's port, and logged postroom's answer: the reference.
    postfix_logged(
        &stack,
        &site.helpdesk,
        "status=sent (250 2.0.0 HD-",
        Duration::from_secs(5),
    )
    .await;
    let lines = postfix_lines(&stack, &site.helpdesk);
    assert!(
        lines.iter().any(|l| l.contains(&format!(":{port},"))),
        "{lines:#?}"
    );
    let log = daemon.stop();
    assert!(log.contains("lmtp:"), "{log}");
}

#[tokio::test]
async fn every_outcome_over_lmtp_is_filed_in_its_folder() {
    let stack = MailStack::require();
    let (site, _) = lmtp_site(&stack, &[]);
    let daemon = start(&site, &[]);

    let (_, applied) = site.unlock_request();
    let (_, rejected) = site.rejected_request();
    let (_, review) = site.review_request();
    let (_, ignored) = site.ignored_message(0);
    for raw in [&applied, &rejected, &review, &ignored] {
        stack.send(&site.mailbox, &[&site.helpdesk], raw).await;
    }
    let t = Duration::from_secs(30);
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, t).await;
    folder_is(&stack, &site.helpdesk, REJECTED, 1, t).await;
    folder_is(&stack, &site.helpdesk, REVIEW, 1, t).await;
    folder_is(&stack, &site.helpdesk, IGNORED, 1, t).await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(site.audit_count("account.unlocked"), 1);
    // Postfix logged postroom's answer to each: the outcome (and the reference, if any).
    eventually(
        "four deliveries logged",
        Duration::from_secs(10),
        || async {
            postfix_lines(&stack, &site.helpdesk)
                .iter()
                .filter(|l| l.contains("status=sent (250 2.0.0 "))
                .count()
                == 4
        },
    )
    .await;
    let lines = postfix_lines(&stack, &site.helpdesk);
    for outcome in ["applied)", "rejected)", "needs_review)", "ignored)"] {
        assert!(
            lines.iter().any(|l| l.contains(outcome)),
            "no delivery answered {outcome}: {lines:#?}"
        );
    }
    daemon.stop();
}

#[tokio::test]
async fn postroom_stopped_postfix_keeps_the_mail_and_delivers_it_on_restart() {
    let stack = MailStack::require();
    let (site, _) = lmtp_site(&stack, &[]);
    // Started once (migrations, the watcher's folders), then stopped.
    start(&site, &[]).stop();

    let (id, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;
    // Postfix could not reach postroom: it keeps the message and will try again.
    postfix_logged(
        &stack,
        &site.helpdesk,
        "status=deferred",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(site.audit_count("account.unlocked"), 0);

    let daemon = start(&site, &[]);
    stack.flush();
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        header(&replies[0], "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(site.audit_count("account.unlocked"), 1);
    postfix_logged(
        &stack,
        &site.helpdesk,
        "status=sent (250 2.0.0 HD-",
        Duration::from_secs(5),
    )
    .await;
    daemon.stop();
}

#[tokio::test]
async fn database_down_answers_451_and_postfix_delivers_when_it_is_back() {
    let stack = MailStack::require();
    let cluster = Cluster::start();
    let (site, _) = lmtp_site_on(&stack, &[("database", "acquire_timeout", "\"2s\"")], |_| {
        TestDb::postgres_on(&cluster.url)
    });
    let daemon = start(&site, &[]);
    cluster.stop();

    let (id, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;
    // postroom took the message, could not commit it, and said so with a 4xx: Postfix keeps it.
    postfix_logged(&stack, &site.helpdesk, "451 4.3.0", Duration::from_secs(30)).await;
    let lines = postfix_lines(&stack, &site.helpdesk);
    assert!(
        lines.iter().all(|l| !l.contains("status=bounced")),
        "{lines:#?}"
    );
    assert!(daemon.log().contains("answered 451"), "{}", daemon.log());

    cluster.resume();
    stack.flush();
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(60))
        .await;
    assert_eq!(
        header(&replies[0], "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(site.audit_count("account.unlocked"), 1);
    // Nothing twice: one reply, however many tries.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.folder_count(&site.mailbox, "INBOX").await, 1);
    daemon.stop();
}

#[tokio::test]
async fn the_same_message_by_lmtp_and_by_the_watched_inbox_is_applied_once() {
    let stack = MailStack::require();
    let (site, _) = lmtp_site(&stack, &[]);
    let daemon = start(&site, &[]);

    // LMTP first, then the same bytes appear in the watched INBOX (a copy by another route).
    let (_, first) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &first).await;
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(30),
    )
    .await;
    stack.append(&site.helpdesk, "INBOX", &first).await;
    // The watcher sees a duplicate and files it where the first copy went.
    folder_is(&stack, &site.helpdesk, "INBOX", 0, Duration::from_secs(20)).await;
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        2,
        Duration::from_secs(10),
    )
    .await;

    // The other way round: the watched INBOX first, then Postfix delivers it over LMTP. The
    // LMTP copy is answered 250 (taken) and not filed again (the watcher filed it).
    let (_, second) = site.review_request();
    stack.append(&site.helpdesk, "INBOX", &second).await;
    folder_is(&stack, &site.helpdesk, REVIEW, 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answers = stack.folder_count(&site.mailbox, "INBOX").await;
    assert!(answers >= 1, "the unlock was answered");
    stack.send(&site.mailbox, &[&site.helpdesk], &second).await;
    postfix_logged(
        &stack,
        &site.helpdesk,
        "already taken, nothing done again",
        Duration::from_secs(20),
    )
    .await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.audit_count("account.unlocked"), 1);
    assert_eq!(stack.folder_count(&site.helpdesk, REVIEW).await, 1);
    assert_eq!(stack.folder_count(&site.helpdesk, PROCESSED).await, 2);
    // No answer for the copies.
    assert_eq!(stack.folder_count(&site.mailbox, "INBOX").await, answers);
    daemon.stop();
}

#[tokio::test]
async fn killed_between_commit_and_250_postfix_delivers_again_and_it_is_applied_once() {
    let stack = MailStack::require();
    let (site, _) = lmtp_site(&stack, &[]);
    // The test hook aborts the process right after the first commit, before the `250`:
    // Postfix sees the connection lost and keeps the message.
    let mut daemon = start(&site, &[(postroom::imap::test_hook::ENV, "1")]);
    let (id, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| !s.success()),
        "expected an abort after the commit:\n{}",
        daemon.log()
    );
    postfix_logged(
        &stack,
        &site.helpdesk,
        "status=deferred",
        Duration::from_secs(20),
    )
    .await;

    let daemon = start(&site, &[]);
    stack.flush();
    // Postfix delivers again; postroom knows the message (committed before the crash),
    // answers 250 without doing anything twice, and files it now (it never was).
    postfix_logged(
        &stack,
        &site.helpdesk,
        "already taken, nothing done again",
        Duration::from_secs(30),
    )
    .await;
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(10),
    )
    .await;
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        header(&replies[0], "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.audit_count("account.unlocked"), 1);
    assert_eq!(stack.folder_count(&site.mailbox, "INBOX").await, 1);
    daemon.stop();
}

/// Group commit (SQLite): deliveries that arrive while another is committing wait for it and
/// then share one transaction; each is still answered `250` only after that commit. The test
/// holds SQLite's write lock for two seconds (less than the daemon's five-second busy
/// timeout) while Postfix hands over six requests, so they are all waiting when it lets go.
#[tokio::test]
async fn deliveries_arriving_during_a_commit_share_one_transaction() {
    use sqlx::Connection;
    let stack = MailStack::require();
    let (site, _) = lmtp_site_on(&stack, &[], TestDb::sqlite);
    let daemon = start(&site, &[]);
    let mut lock = sqlx::SqliteConnection::connect(&site.db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..6 {
        let (id, raw) = site.unlock_request();
        stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    drop(lock);

    // Every one answered 250 once it was committed, each replied to, the account unlocked once.
    eventually(
        "six 250s in Postfix's log",
        Duration::from_secs(30),
        || async {
            postfix_lines(&stack, &site.helpdesk)
                .iter()
                .filter(|l| l.contains("status=sent (250 2.0.0"))
                .count()
                == 6
        },
    )
    .await;
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 6, Duration::from_secs(30))
        .await;
    let mut answered: Vec<String> = replies
        .iter()
        .filter_map(|r| header(r, "In-Reply-To"))
        .collect();
    answered.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| format!("<{id}>")).collect();
    expected.sort();
    assert_eq!(answered, expected);
    assert_eq!(site.audit_count("account.unlocked"), 1);
    let log = daemon.stop();
    let grouped: Vec<usize> = log
        .lines()
        .filter(|l| l.contains("deliveries committed in one transaction"))
        .filter_map(|l| {
            let n = l.split("messages=").nth(1)?;
            n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect();
    assert!(
        grouped.iter().any(|n| *n >= 2),
        "no group commit of two or more deliveries: {grouped:?}\n{log}"
    );
}

#[tokio::test]
async fn lmtp_alone_without_imap_applies_and_answers() {
    let stack = MailStack::require();
    let (site, _) = lmtp_site(&stack, &[]);
    // The same config without [imap]: postroom takes mail only from the MTA, and files none.
    let text = std::fs::read_to_string(&site.config).unwrap();
    let without_imap: String = text
        .split("\n\n")
        .filter(|section| !section.trim_start().starts_with("[imap]"))
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(!without_imap.contains("[imap]") && without_imap.contains("[lmtp]"));
    std::fs::write(&site.config, without_imap).unwrap();
    let daemon = site.spawn(&[], false);
    daemon.wait_log("LMTP listening", Duration::from_secs(20));

    let (id, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        header(&replies[0], "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    assert_eq!(site.audit_count("account.unlocked"), 1);
    postfix_logged(
        &stack,
        &site.helpdesk,
        "status=sent (250 2.0.0 HD-",
        Duration::from_secs(5),
    )
    .await;
    // Nothing reached the helpdesk's mailbox: not its INBOX, no outcome folder.
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(stack.folder_count(&site.helpdesk, PROCESSED).await, 0);
    let log = daemon.stop();
    assert!(log.contains("imap=off lmtp=127.0.0.1:"), "{log}");
    assert!(!log.contains("IMAP session ready"), "{log}");
}
