//! `postroom run` against the real mail stack (Dovecot + Postfix, tests/mailstack/): requests
//! in, changes applied, messages filed, replies out. Each test has its own helpdesk and shared
//! mailbox users, config and database, so they run in parallel. Without the stack's
//! MAILSTACK_* variables they fail (MailStack::require), they do not skip.

mod common;
mod daemon_support;

use common::mailstack::MailStack;
use daemon_support::{Site, contains, eventually, header};
use serde_json::Value;
use std::time::{Duration, Instant};

const PROCESSED: &str = "postroom/processed";
const REJECTED: &str = "postroom/rejected";
const REVIEW: &str = "postroom/review";
const IGNORED: &str = "postroom/ignored";

async fn folder_is(stack: &MailStack, user: &str, folder: &str, n: usize, timeout: Duration) {
    let what = format!("{user} {folder} holds {n}");
    eventually(&what, timeout, || async { stack.folder_count(user, folder).await == n }).await;
}

#[tokio::test]
async fn request_through_postfix_is_applied_and_answered_in_its_thread() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start_with(&[], true);

    let (id, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;

    // The reply lands in the shared mailbox's own INBOX, in the request's thread.
    let replies = stack.wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30)).await;
    let reply = &replies[0];
    assert_eq!(header(reply, "In-Reply-To").as_deref(), Some(format!("<{id}>").as_str()));
    let subject = header(reply, "Subject").unwrap_or_default();
    assert!(subject.starts_with("[HD-"), "subject {subject:?}");
    assert!(contains(reply, &site.locked), "the reply names the account");

    // Filed once committed; the inbox is empty; the change was made once.
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, Duration::from_secs(10)).await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(site.audit_count("account.unlocked"), 1);
    // BODY.PEEK: the filed copy is still unread for the people who look at it.
    let filed = stack.fetch_all(&site.helpdesk, PROCESSED).await;
    assert!(contains(&filed[0], &id));

    let log = daemon.stop();
    // One span per message, carrying its UID and (once known) its reference.
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "processed")
        .unwrap_or_else(|| panic!("no JSON `processed` line:\n{log}"));
    assert_eq!(line["span"]["uid"], 1, "{line}");
    assert!(
        line["span"]["reference"].as_str().is_some_and(|r| r.starts_with("HD-")),
        "{line}"
    );
    assert_eq!(line["fields"]["outcome"], "applied", "{line}");
}

#[tokio::test]
async fn every_outcome_is_filed_in_its_folder_and_oversized_mail_is_held_for_review() {
    let stack = MailStack::require();
    // poll_interval 1h: anything handled within seconds was seen through IDLE.
    let site = Site::new(
        &stack,
        &[("imap", "max_message_bytes", "20000"), ("imap", "poll_interval", "\"1h\"")],
    );
    let daemon = site.start();

    let (_, applied) = site.unlock_request();
    let (_, rejected) = site.rejected_request();
    let (_, review) = site.review_request();
    let (_, ignored) = site.ignored_message(0);
    let (oversized_id, _) = site.unlock_request();
    let big_body = format!(
        "Account: {}\nRequested by: {}\n\n{}",
        site.locked,
        site.owner,
        "padding line to make the message larger than max_message_bytes\n".repeat(600)
    );
    let (_, oversized) = site.request(&format!("Huge {oversized_id}"), "", &big_body);
    assert!(oversized.len() > 20_000);
    for raw in [&applied, &rejected, &review, &ignored, &oversized] {
        stack.append(&site.helpdesk, "INBOX", raw).await;
    }

    let t = Duration::from_secs(20);
    folder_is(&stack, &site.helpdesk, "INBOX", 0, t).await;
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, t).await;
    folder_is(&stack, &site.helpdesk, REJECTED, 1, t).await;
    folder_is(&stack, &site.helpdesk, REVIEW, 2, t).await;
    folder_is(&stack, &site.helpdesk, IGNORED, 1, t).await;

    // The oversized one was not applied: held, with its reason, only its header read.
    let audit = site.audit();
    let too_large: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "request.needs_review" && e["detail"]["reason"] == "too_large")
        .collect();
    assert_eq!(too_large.len(), 1, "{audit:#?}");
    assert_eq!(site.audit_count("account.unlocked"), 1, "only the small unlock was applied");
    let log = daemon.stop();
    assert!(log.contains("over max_message_bytes"), "{log}");
}

#[tokio::test]
async fn idle_sees_new_mail_at_once() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[("imap", "poll_interval", "\"1h\"")]);
    let daemon = site.start();
    assert!(daemon.log().contains("idle=true"), "{}", daemon.log());

    let (_, raw) = site.ignored_message(0);
    let appended = Instant::now();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    daemon.wait_log("processed", Duration::from_secs(10));
    let latency = appended.elapsed();
    eprintln!("IDLE: APPEND → processed in {latency:?}");
    // Well under a second on an idle machine; generous here for loaded CI runners.
    assert!(latency < Duration::from_secs(3), "took {latency:?}");
    folder_is(&stack, &site.helpdesk, IGNORED, 1, Duration::from_secs(10)).await;
    daemon.stop();
}

#[tokio::test]
async fn polling_without_idle_finds_new_mail() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[("imap", "idle", "false"), ("imap", "poll_interval", "\"1s\"")]);
    let daemon = site.start();
    assert!(daemon.log().contains("idle=false"), "{}", daemon.log());

    let (_, raw) = site.unlock_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, Duration::from_secs(15)).await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(site.audit_count("account.unlocked"), 1);
    let log = daemon.stop();
    assert!(!log.contains("IDLE"), "no IDLE when idle = false:\n{log}");
}

/// The test hook aborts the process right after the commit, before the move: the message is
/// still in the inbox, the change is made. After a restart the pipeline recognises it
/// (Duplicate), it is only moved, and exactly one reply goes out.
#[tokio::test]
async fn crash_between_commit_and_move_applies_once_moves_and_answers_once() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let mut crashing = site.spawn(&[("POSTROOM_TEST_ABORT_AFTER_COMMITS", "1")], false);
    crashing.wait_log("IMAP session ready", Duration::from_secs(20));

    let (_, raw) = site.unlock_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    let status = crashing
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the test hook did not abort:\n{}", crashing.log()));
    assert!(!status.success(), "aborted, not exited: {status}");
    assert!(crashing.log().contains("test hook"), "{}", crashing.log());
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 1, "not moved before the crash");
    assert_eq!(site.audit_count("account.unlocked"), 1, "committed before the crash");

    let daemon = site.start();
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, Duration::from_secs(15)).await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    daemon.wait_log("outcome=duplicate", Duration::from_secs(5));
    assert_eq!(site.audit_count("account.unlocked"), 1, "not applied twice");

    stack.wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30)).await;
    // Give a second reply every chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.folder_count(&site.mailbox, "INBOX").await, 1, "exactly one reply");
    daemon.stop();
}

/// A message the pipeline cannot store (the database is locked by someone else) stays in the
/// inbox, does not stop the watcher, and is processed once the database is free again.
#[tokio::test]
async fn a_database_error_leaves_the_message_in_place_and_it_is_retried() {
    use sqlx::Connection;
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start();

    let db = site.dir.path().join("postroom.db");
    let mut lock = sqlx::sqlite::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new().filename(&db),
    )
    .await
    .unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut lock).await.unwrap();

    let (_, raw) = site.unlock_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    daemon.wait_log("could not process the message", Duration::from_secs(30));
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 1, "left in place");

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    drop(lock);
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, Duration::from_secs(30)).await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(site.audit_count("account.unlocked"), 1);
    daemon.stop();
}

/// A new UIDVALIDITY (the folder was deleted and recreated) means every UID is new: the folder
/// is rescanned, and the pipeline's dedupe keeps a message seen before from being applied again.
#[tokio::test]
async fn a_new_uidvalidity_rescans_and_dedupe_prevents_reapplying() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[("imap", "folder", "\"requests\"")]);
    let (_, unlock) = site.unlock_request();
    stack.append(&site.helpdesk, "requests", &unlock).await;

    let daemon = site.start();
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, Duration::from_secs(15)).await;
    daemon.stop();

    {
        let mut s = stack.imap_login(&site.helpdesk).await.unwrap();
        s.delete("requests").await.unwrap();
        // Dovecot hands out UIDVALIDITY from the clock: make sure the new one differs.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        s.create("requests").await.unwrap();
        let _ = s.logout().await;
    }
    let (_, review) = site.review_request();
    stack.append(&site.helpdesk, "requests", &unlock).await;
    stack.append(&site.helpdesk, "requests", &review).await;

    let daemon = site.start();
    assert!(daemon.log().contains("UIDVALIDITY changed"), "{}", daemon.log());
    folder_is(&stack, &site.helpdesk, "requests", 0, Duration::from_secs(15)).await;
    folder_is(&stack, &site.helpdesk, PROCESSED, 2, Duration::from_secs(5)).await;
    folder_is(&stack, &site.helpdesk, REVIEW, 1, Duration::from_secs(5)).await;
    assert_eq!(site.audit_count("account.unlocked"), 1, "the old message was not applied again");
    daemon.stop();
}

#[tokio::test]
async fn refused_login_is_retried_with_backoff_without_exiting_or_leaking_the_password() {
    let stack = MailStack::require();
    let wrong = format!("wrong-pw-{}", std::process::id());
    let site = Site::new(&stack, &[("imap", "password", &format!("\"{wrong}\""))]);
    let daemon = site.spawn(&[], false);
    std::thread::sleep(Duration::from_secs(6));
    let mut daemon = daemon;
    assert!(daemon.wait_exit(Duration::ZERO).is_none(), "exited:\n{}", daemon.log());
    let log = daemon.log();
    let failures = daemon.count("refused");
    // Dovecot delays a failed login by ~2 s; with backoff from 1 s that is 2–4 attempts in
    // 6 s. Many more would be a spin.
    assert!((1..=5).contains(&failures), "{failures} failures in 6 s:\n{log}");
    assert!(log.contains("reconnecting in"), "{log}");
    assert!(!log.contains(&wrong), "the password must never be logged:\n{log}");
    daemon.stop();
}

#[tokio::test]
async fn sigint_and_sigterm_stop_within_seconds_with_status_0() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start();
    let started = Instant::now();
    daemon.stop();
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut daemon = site.start();
    daemon.signal("INT");
    let status = daemon.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", daemon.log());
}

#[tokio::test]
async fn run_refuses_a_config_without_smtp_and_check_reports_each_step() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);

    let out = site.cli(&["check"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in ["✓ IMAP connect", "✓ IMAP login", "✓ IMAP IDLE", "✓ IMAP MOVE", "✓ IMAP UIDPLUS", "✓ IMAP folder", "✓ SMTP"] {
        assert!(report.contains(line), "no {line:?} in:\n{report}");
    }
    assert!(report.contains("INBOX: 0 messages"), "{report}");

    // Wrong password: the login line fails, the exit status says so.
    let text = std::fs::read_to_string(&site.config).unwrap();
    let bad = site.dir.path().join("bad-password.toml");
    std::fs::write(&bad, text.replace(&format!("password = \"{}\"", stack.password), "password = \"nope\"")).unwrap();
    let out = site.cli_with(&bad, &["check"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("✗ IMAP login"), "{report}");

    // No [smtp]: `run` names the missing section and exits non-zero at once.
    let no_smtp = site.dir.path().join("no-smtp.toml");
    let without: String = text.split("[smtp]").next().unwrap_or_default().to_string();
    std::fs::write(&no_smtp, without).unwrap();
    let out = site.cli_with(&no_smtp, &["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("[smtp]") && !err.contains("[imap] and"), "{err}");
}
