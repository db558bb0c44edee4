//! `postroom run` against the real mail stack (Dovecot + Postfix, tests/mailstack/): requests
//! in, changes applied, messages filed, replies out. Each test has its own helpdesk and shared
//! mailbox users, config and database, so they run in parallel. Without the stack's
//! MAILSTACK_* variables they fail (MailStack::require), they do not skip.

use crate::common::mailstack::MailStack;
use crate::daemon_support::{Site, contains, eventually, header};
use serde_json::Value;
use std::time::{Duration, Instant};

const PROCESSED: &str = "postroom/processed";
const REJECTED: &str = "postroom/rejected";
const REVIEW: &str = "postroom/review";
const IGNORED: &str = "postroom/ignored";

async fn folder_is(stack: &MailStack, user: &str, folder: &str, n: usize, timeout: Duration) {
    let what = format!("{user} {folder} holds {n}");
    eventually(&what, timeout, || async {
        stack.folder_count(user, folder).await == n
    })
    .await;
}

#[tokio::test]
async fn request_through_postfix_is_applied_and_answered_in_its_thread() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start_with(&[], true);

    let (id, raw) = site.unlock_request();
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;

    // The reply lands in the shared mailbox's own INBOX, in the request's thread.
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    let reply = &replies[0];
    assert_eq!(
        header(reply, "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    let subject = header(reply, "Subject").unwrap_or_default();
    assert!(subject.starts_with("[HD-"), "subject {subject:?}");
    assert!(contains(reply, &site.locked), "the reply names the account");

    // Filed once committed; the inbox is empty; the change was made once.
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(10),
    )
    .await;
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
        line["span"]["reference"]
            .as_str()
            .is_some_and(|r| r.starts_with("HD-")),
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
        &[
            ("imap", "max_message_bytes", "20000"),
            ("imap", "poll_interval", "\"1h\""),
        ],
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
    assert_eq!(
        site.audit_count("account.unlocked"),
        1,
        "only the small unlock was applied"
    );
    let log = daemon.stop();
    assert!(log.contains("over max_message_bytes"), "{log}");
}

#[tokio::test]
async fn idle_over_implicit_tls_sees_new_mail_at_once() {
    let stack = MailStack::require();
    // IMAPS with the stack's throw-away CA: TLS under IDLE and its read-timeout switching.
    let port = stack.imaps_port.expect("MAILSTACK_IMAPS_PORT").to_string();
    let ca = format!(
        "\"{}\"",
        stack.tls_ca.clone().expect("MAILSTACK_TLS_CA").display()
    );
    let site = Site::new(
        &stack,
        &[
            ("imap", "tls", "\"tls\""),
            ("imap", "port", &port),
            ("imap", "ca_file", &ca),
            ("imap", "poll_interval", "\"1h\""),
        ],
    );
    let daemon = site.start();
    assert!(daemon.log().contains("idle=true"), "{}", daemon.log());
    assert!(daemon.log().contains("tls=Tls"), "{}", daemon.log());

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
async fn polling_without_idle_over_starttls_finds_new_mail() {
    let stack = MailStack::require();
    let ca = format!(
        "\"{}\"",
        stack.tls_ca.clone().expect("MAILSTACK_TLS_CA").display()
    );
    let site = Site::new(
        &stack,
        &[
            ("imap", "tls", "\"starttls\""),
            ("imap", "ca_file", &ca),
            ("imap", "idle", "false"),
            ("imap", "poll_interval", "\"1s\""),
        ],
    );
    let daemon = site.start();
    assert!(daemon.log().contains("idle=false"), "{}", daemon.log());
    assert!(daemon.log().contains("tls=Starttls"), "{}", daemon.log());

    let (_, raw) = site.unlock_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(15),
    )
    .await;
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
    assert_eq!(
        stack.folder_count(&site.helpdesk, "INBOX").await,
        1,
        "not moved before the crash"
    );
    assert_eq!(
        site.audit_count("account.unlocked"),
        1,
        "committed before the crash"
    );

    let daemon = site.start();
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    daemon.wait_log("outcome=duplicate", Duration::from_secs(5));
    assert_eq!(site.audit_count("account.unlocked"), 1, "not applied twice");

    stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    // Give a second reply every chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.folder_count(&site.mailbox, "INBOX").await,
        1,
        "exactly one reply"
    );
    daemon.stop();
}

/// A message the pipeline cannot store (here a trigger makes the database refuse exactly that
/// message) stays in the inbox, does not hold up the message behind it, and is processed at a
/// later sync once the database accepts it.
#[tokio::test]
async fn a_database_error_leaves_the_message_in_place_without_blocking_others_and_it_is_retried() {
    use postroom::store::Store;
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start();

    let store = Store::connect(&site.database()).await.unwrap();
    refuse_poison(&store).await;

    let (_, poison) = site.request(
        "Poison",
        "",
        &format!(
            "Account: {}\nRequested by: {}\nPlease unlock.\n",
            site.locked, site.owner
        ),
    );
    let (_, next) = site.review_request();
    stack.append(&site.helpdesk, "INBOX", &poison).await;
    stack.append(&site.helpdesk, "INBOX", &next).await;
    daemon.wait_log("could not process the message", Duration::from_secs(20));
    folder_is(&stack, &site.helpdesk, REVIEW, 1, Duration::from_secs(10)).await;
    assert_eq!(
        stack.folder_count(&site.helpdesk, "INBOX").await,
        1,
        "left in place"
    );
    // Retried at each sync (poll_interval, 1 s here) while it fails: not lost, not spinning.
    std::thread::sleep(Duration::from_secs(3));
    let failures = daemon.count("could not process the message");
    assert!(
        (2..=6).contains(&failures),
        "{failures} attempts in ~3 s:\n{}",
        daemon.log()
    );

    accept_poison_and_see_it_applied(store, &stack, &site).await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(site.audit_count("account.unlocked"), 1);
    daemon.stop();
}

/// Make the database refuse every message with the subject `Poison`: a trigger, through the
/// Store so that the same tests run on both backends (only the trigger's dialect differs).
async fn refuse_poison(store: &postroom::store::Store) {
    use postroom::store::Backend;
    let statements: &[&str] = match store.backend() {
        Backend::Sqlite => &[
            "CREATE TRIGGER test_poison BEFORE INSERT ON messages WHEN NEW.subject = 'Poison' \
             BEGIN SELECT RAISE(ABORT, 'test: this message is refused'); END",
        ],
        Backend::Postgres => &[
            "CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.subject = 'Poison' THEN RAISE EXCEPTION 'test: this message is refused'; \
             END IF; RETURN NEW; END $$",
            "CREATE TRIGGER test_poison BEFORE INSERT ON messages FOR EACH ROW \
             EXECUTE FUNCTION test_poison()",
        ],
    };
    for statement in statements {
        sqlx::query(*statement).execute(store.pool()).await.unwrap();
    }
}

/// Let the database take the refused message again (see [`refuse_poison`]): the next sync
/// processes it, and it is filed as processed.
async fn accept_poison_and_see_it_applied(
    store: postroom::store::Store,
    stack: &MailStack,
    site: &Site,
) {
    use postroom::store::Backend;
    let statement = match store.backend() {
        Backend::Sqlite => "DROP TRIGGER test_poison",
        Backend::Postgres => "DROP TRIGGER test_poison ON messages",
    };
    sqlx::query(statement).execute(store.pool()).await.unwrap();
    store.close().await;
    folder_is(stack, &site.helpdesk, PROCESSED, 1, Duration::from_secs(15)).await;
}

/// Waiting messages share one transaction on SQLite (group commit). A message the database
/// refuses in the middle of a group rolls the group back, and the next pass gives each message
/// its own transaction: the messages before and after it are filed and answered all the same,
/// and it alone stays in the inbox until the database takes it.
#[tokio::test]
async fn a_message_that_fails_inside_a_group_holds_back_no_other() {
    use postroom::store::{Backend, Store};
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let store = Store::connect(&site.database()).await.unwrap();
    refuse_poison(&store).await;
    let (_, before) = site.review_request();
    let (_, poison) = site.request(
        "Poison",
        "",
        &format!(
            "Account: {}\nRequested by: {}\nPlease unlock.\n",
            site.locked, site.owner
        ),
    );
    let (_, after) = site.review_request();
    for raw in [&before, &poison, &after] {
        stack.append(&site.helpdesk, "INBOX", raw).await;
    }

    let daemon = site.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.folder_count(&site.helpdesk, REVIEW).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the two others are not filed:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stack.folder_count(&site.helpdesk, "INBOX").await,
        1,
        "only the refused message is left:\n{}",
        daemon.log()
    );
    if store.backend() == Backend::Sqlite {
        // The first pass met it inside a group with the message before it.
        let log = daemon.log();
        assert!(
            log.lines()
                .any(|l| l.contains("rolled back with it") && l.contains("others=1")),
            "{log}"
        );
    }
    assert_eq!(site.audit_count("request.needs_review"), 2);

    accept_poison_and_see_it_applied(store, &stack, &site).await;
    assert_eq!(site.audit_count("account.unlocked"), 1);
    assert_eq!(site.audit_count("request.needs_review"), 2, "none twice");
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
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(15),
    )
    .await;
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
    assert!(
        daemon.log().contains("UIDVALIDITY changed"),
        "{}",
        daemon.log()
    );
    folder_is(
        &stack,
        &site.helpdesk,
        "requests",
        0,
        Duration::from_secs(15),
    )
    .await;
    folder_is(&stack, &site.helpdesk, PROCESSED, 2, Duration::from_secs(5)).await;
    folder_is(&stack, &site.helpdesk, REVIEW, 1, Duration::from_secs(5)).await;
    assert_eq!(
        site.audit_count("account.unlocked"),
        1,
        "the old message was not applied again"
    );
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
    assert!(
        daemon.wait_exit(Duration::ZERO).is_none(),
        "exited:\n{}",
        daemon.log()
    );
    let log = daemon.log();
    let failures = daemon.count("refused");
    // Dovecot delays a failed login by ~2 s; with backoff from 1 s that is 2–4 attempts in
    // 6 s. Many more would be a spin.
    assert!(
        (1..=5).contains(&failures),
        "{failures} failures in 6 s:\n{log}"
    );
    assert!(log.contains("reconnecting in"), "{log}");
    assert!(
        !log.contains(&wrong),
        "the password must never be logged:\n{log}"
    );
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
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        daemon.log()
    );
}

#[tokio::test]
async fn run_refuses_a_config_without_smtp_and_check_reports_each_step() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);

    let out = site.cli(&["check"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "✓ IMAP connect",
        "✓ IMAP login",
        "✓ IMAP IDLE",
        "✓ IMAP MOVE",
        "✓ IMAP UIDPLUS",
        "✓ IMAP folder",
        "✓ SMTP",
    ] {
        assert!(report.contains(line), "no {line:?} in:\n{report}");
    }
    assert!(report.contains("INBOX: 0 messages"), "{report}");

    let text = std::fs::read_to_string(&site.config).unwrap();
    // Implicit TLS and STARTTLS with the stack's CA pass; without it the certificate fails.
    let ca = stack.tls_ca.clone().expect("MAILSTACK_TLS_CA");
    let imaps = stack.imaps_port.expect("MAILSTACK_IMAPS_PORT");
    let plain_port = format!("port = {}\ntls = \"none\"", stack.imap_port);
    let variants = [
        (
            "tls.toml",
            format!(
                "port = {imaps}\ntls = \"tls\"\nca_file = \"{}\"",
                ca.display()
            ),
            true,
        ),
        (
            "starttls.toml",
            format!(
                "port = {}\ntls = \"starttls\"\nca_file = \"{}\"",
                stack.imap_port,
                ca.display()
            ),
            true,
        ),
        (
            "untrusted.toml",
            format!("port = {imaps}\ntls = \"tls\""),
            false,
        ),
    ];
    for (name, imap_lines, passes) in variants {
        let path = site.dir.path().join(name);
        std::fs::write(&path, text.replace(&plain_port, &imap_lines)).unwrap();
        let out = site.cli_with(&path, &["check"]);
        let report = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.success(), passes, "{name}:\n{report}");
        if passes {
            assert!(report.contains("✓ IMAP login"), "{name}:\n{report}");
        } else {
            assert!(
                report.contains("✗ IMAP connect") && report.contains("certificate"),
                "{name}:\n{report}"
            );
        }
    }

    // Wrong password: the login line fails, the exit status says so.
    let bad = site.dir.path().join("bad-password.toml");
    std::fs::write(
        &bad,
        text.replace(
            &format!("password = \"{}\"", stack.password),
            "password = \"nope\"",
        ),
    )
    .unwrap();
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
    assert!(
        err.contains("[smtp]") && !err.contains("[imap] and"),
        "{err}"
    );
}

/// Without MOVE (test hook: Dovecot has it), messages are filed with UID COPY + \Deleted +
/// UID EXPUNGE of their own UID: a message another client flagged \Deleted is not expunged
/// with them. Without UIDPLUS as well, the copy is flagged and left, and not processed twice.
#[tokio::test]
async fn without_move_the_fallbacks_file_by_uid_and_never_expunge_others() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);

    // Another client's message, flagged \Deleted but not expunged.
    let (others_id, others) = site.ignored_message(0);
    {
        let mut s = stack.imap_login(&site.helpdesk).await.unwrap();
        s.append("INBOX", Some(r"(\Deleted)"), None, &others)
            .await
            .unwrap();
        let _ = s.logout().await;
    }

    let d = site.start_with(&[("POSTROOM_TEST_IMAP_IGNORE_CAPS", "MOVE")], false);
    let (_, raw) = site.unlock_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(15),
    )
    .await;
    // The copy shows in the folder before the expunge of the original (UID EXPUNGE follows the
    // COPY): wait for it rather than look once.
    eventually(
        "only the other client's message is left in the inbox",
        Duration::from_secs(15),
        || async { stack.folder_count(&site.helpdesk, "INBOX").await == 1 },
    )
    .await;
    let inbox = stack.fetch_all(&site.helpdesk, "INBOX").await;
    assert_eq!(inbox.len(), 1, "only the other client's message is left");
    assert!(contains(&inbox[0], &others_id));
    let log = d.stop();
    assert!(log.contains("move=false"), "{log}");

    // Neither MOVE nor UIDPLUS (and no IDLE: polling).
    let d = site.start_with(
        &[("POSTROOM_TEST_IMAP_IGNORE_CAPS", "MOVE,UIDPLUS,IDLE")],
        false,
    );
    let (_, raw) = site.review_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    folder_is(&stack, &site.helpdesk, REVIEW, 1, Duration::from_secs(15)).await;
    // Copied and flagged, not expunged: two messages flagged \Deleted now wait in the inbox,
    // and the polls that follow do not process or copy the flagged one again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 2);
    assert_eq!(stack.folder_count(&site.helpdesk, REVIEW).await, 1);
    let log = d.stop();
    assert_eq!(log.matches("processed outcome=").count(), 1, "{log}");
    assert!(log.contains("idle=false"), "{log}");
}

/// `[[imap]]`: one daemon, two inboxes (a regional helpdesk each), each watched with its own
/// folders, checkpoint and lease.
#[tokio::test]
async fn two_inboxes_in_one_config_are_each_watched_with_their_own_folders() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let south = stack.unique_user("hd-south");
    let locked2 = format!("locked2-{}@test.example", site.token());
    let csv = site.dir.path().join("south.csv");
    std::fs::write(
        &csv,
        format!(
            "organisation,mailbox,account,name,role,status\n{},{},{locked2},Lee Locked,member,locked\n",
            site.organisation(),
            site.mailbox
        ),
    )
    .unwrap();
    assert!(
        site.cli(&["directory", "import", csv.to_str().unwrap()])
            .status
            .success()
    );

    // The site's [imap] table becomes the first [[imap]] entry; the second is another account
    // watching another folder, with its own processed folder.
    let text = std::fs::read_to_string(&site.config).unwrap();
    let start = text.find("[imap]\n").unwrap();
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |i| start + i + 1);
    let north_keys = &text[start + "[imap]\n".len()..end];
    let south_keys = north_keys.replace(&site.helpdesk, &south)
        + "folder = \"Requests\"\nprocessed = \"Requests/done\"\n";
    let two = format!(
        "{}[[imap]]\n{north_keys}\n[[imap]]\n{south_keys}\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&site.config, two).unwrap();

    let daemon = site.spawn(&[], false);
    daemon.wait_log("IMAP session ready", Duration::from_secs(20));
    let (_, north_request) = site.unlock_request();
    let (_, south_request) = site.request(
        "Locked out",
        "",
        &format!("Account: {locked2}\nRequested by: {}\n", site.owner),
    );
    stack.append(&site.helpdesk, "INBOX", &north_request).await;
    stack.append(&south, "Requests", &south_request).await;

    let t = Duration::from_secs(20);
    folder_is(&stack, &site.helpdesk, PROCESSED, 1, t).await;
    folder_is(&stack, &south, "Requests/done", 1, t).await;
    folder_is(&stack, &south, "Requests", 0, t).await;
    assert_eq!(site.audit_count("account.unlocked"), 2);
    stack
        .wait_for(&site.mailbox, "INBOX", 2, Duration::from_secs(30))
        .await;

    // A checkpoint per inbox, a lease per inbox.
    let store = postroom::store::Store::connect(&site.database())
        .await
        .unwrap();
    let south_checkpoint = postroom::imap::state::load(&store, &south, "Requests")
        .await
        .unwrap();
    assert!(south_checkpoint.is_some_and(|c| c.next_uid > 1));
    assert!(
        postroom::imap::state::load(&store, &site.helpdesk, "INBOX")
            .await
            .unwrap()
            .is_some()
    );
    let leases = postroom::store::lease::list(&store).await.unwrap();
    assert_eq!(leases.len(), 2, "{leases:?}");
    store.close().await;
    let log = daemon.stop();
    assert_eq!(log.matches("took the inbox's lease").count(), 2, "{log}");
    assert_eq!(log.matches("IMAP session ready").count(), 2, "{log}");
    // Both leases were handed back on the way out.
    assert_eq!(
        log.matches("released the inbox's lease").count(),
        2,
        "{log}"
    );
}

/// Issue 12 through the daemon: people named in words, two asks in one email. "Kim Locked" and
/// "Mel Member" resolve to the site's accounts; each ask becomes a request of its own, both
/// applied in the message's one transaction, answered by ONE reply in the thread that lists both
/// references; the message is filed once.
#[tokio::test]
async fn two_asks_naming_people_are_two_requests_answered_in_one_reply() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start_with(&[], true);

    let (id, raw) = site.request(
        "Two things please",
        "",
        &format!(
            "Hi,\n\nKim Locked is locked out, could you unlock her account? And please reset the password for Mel Member.\n\nRequested by: {}\n\nOlive\n",
            site.owner
        ),
    );
    stack.send(&site.mailbox, &[&site.helpdesk], &raw).await;

    let replies = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    folder_is(
        &stack,
        &site.helpdesk,
        PROCESSED,
        1,
        Duration::from_secs(10),
    )
    .await;
    // Still one reply a moment later: the two requests were answered together.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.folder_count(&site.mailbox, "INBOX").await, 1);
    let reply = &replies[0];
    assert_eq!(
        header(reply, "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    assert!(contains(reply, &site.locked), "names the unlocked account");
    assert!(contains(reply, &site.member), "names the reset account");
    // The body is encoded (it has a "→"): read it as a client would.
    let text = postroom::message::parse(reply).text;
    assert!(
        text.contains(&format!("→ {}", site.locked)) && text.contains("What we understood"),
        "says how the name was read: {text}"
    );
    assert_eq!(site.audit_count("request.applied"), 2);
    assert_eq!(site.audit_count("account.unlocked"), 1);
    let references: Vec<String> = site
        .audit()
        .iter()
        .filter(|e| e["action"] == "request.applied")
        .filter_map(|e| e["reference"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(references.len(), 2, "{references:?}");
    assert_ne!(references[0], references[1]);
    for r in &references {
        assert!(contains(reply, r), "the reply lists {r}");
    }
    daemon.stop();
}

/// Issue 12 through the daemon: mail that does not ask is never acted on and never refused. A
/// thank-you over a quoted old request is filed as ignored (no answer); a name that matches no
/// one, a question about a change, and a reply in a thread the desk does not know are held for
/// a person, each with its reason; nothing in the directory changes.
#[tokio::test]
async fn what_was_not_asked_is_held_or_ignored_through_the_daemon() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    let daemon = site.start_with(&[], true);
    let requested_by = format!("\n\nRequested by: {}\n", site.owner);
    let (_, thanks) = site.request(
        "Re: Locked out",
        "",
        &format!(
            "Thanks, that worked!\n\nOn Mon, 3 Mar 2025 at 10:00, Olive <{}> wrote:\n> Kim is locked out, please unlock {}\n",
            site.owner, site.locked
        ),
    );
    let (_, nobody) = site.request(
        "Password reset",
        "",
        &format!("Please reset the password for Zara Nobody.{requested_by}"),
    );
    let (_, question) = site.request(
        "Question",
        "",
        &format!("Does Mel Member need a new password after the holiday?{requested_by}"),
    );
    let (_, thread) = site.request(
        "Re: [HD-099999] Done: Unlock account",
        "",
        &format!("Please unlock {} again.{requested_by}", site.locked),
    );
    for raw in [&thanks, &nobody, &question, &thread] {
        stack.append(&site.helpdesk, "INBOX", raw).await;
    }
    let t = Duration::from_secs(30);
    folder_is(&stack, &site.helpdesk, "INBOX", 0, t).await;
    folder_is(&stack, &site.helpdesk, IGNORED, 1, t).await;
    folder_is(&stack, &site.helpdesk, REVIEW, 3, t).await;
    assert_eq!(stack.folder_count(&site.helpdesk, PROCESSED).await, 0);
    assert_eq!(stack.folder_count(&site.helpdesk, REJECTED).await, 0);
    let reasons: Vec<String> = site
        .audit()
        .iter()
        .filter(|e| e["action"] == "request.needs_review")
        .filter_map(|e| e["detail"]["reason"].as_str().map(str::to_owned))
        .collect();
    for reason in ["unknown_name", "not_asked", "unknown_thread"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
    assert_eq!(site.audit_count("account.unlocked"), 0);
    assert_eq!(site.audit_count("password.reset"), 0);
    daemon.stop();
}

/// Issue 12 through the daemon, the points the two tests above leave: a name two accounts of the
/// organisation share is held with both candidates; more asks than the cap are held whole; a
/// new starter whose name an account already has is held; the requester is found by name on a
/// `Requested by:` line and, with `[policy] requester_from_signature` on, from the one member
/// who signs; a confidentiality notice under the message ("please tell the sender and delete
/// it") asks nothing; a new starter named in a sentence gets an account; a forward supplies
/// the person the new text points at ("Mel's email is below").
#[tokio::test]
async fn names_caps_starters_signatures_and_notices_through_the_daemon() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[("policy", "requester_from_signature", "true")]);
    // A second Otto Outsider in the organisation; an owner and a member with everyday names
    // (the site's own are "Olive Owner" and "Mel Member", whose surnames are words).
    let namesake = format!("otto2-{}@test.example", site.token());
    let priya = format!("priya-{}@test.example", site.token());
    let ravi = format!("ravi-{}@test.example", site.token());
    let csv = site.dir.path().join("namesake.csv");
    std::fs::write(
        &csv,
        format!(
            "organisation,mailbox,account,name,role,status\n\
             {o},,{namesake},Otto Outsider,,active\n\
             {o},{mb},{priya},Priya Shah,owner,active\n\
             {o},{mb},{ravi},Ravi Gupta,member,active\n",
            o = site.organisation(),
            mb = site.mailbox
        ),
    )
    .unwrap();
    let out = site.cli(&["directory", "import", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = site.start_with(&[], true);

    let requested_by = format!("\n\nRequested by: {}\n", site.owner);
    let (_, ambiguous) = site.request(
        "Password reset",
        "",
        &format!("Please reset the password for Otto Outsider.{requested_by}"),
    );
    let many: Vec<String> = (1..=25)
        .map(|n| format!("user{n}-{}@test.example", site.token()))
        .collect();
    let (_, capped) = site.request(
        "Password resets",
        "",
        &format!(
            "Please reset the passwords for these accounts:\n{}{requested_by}",
            many.join("\n")
        ),
    );
    let (_, starter) = site.request(
        "New starter",
        "",
        &format!("A new carer, Otto Outsider, starts on Monday. Could he have an account please?{requested_by}"),
    );
    // Applied: the requester by name, then by signature (no Sender, no Requested by line).
    let (_, by_name) = site.request(
        "Locked out",
        "",
        "Kim Locked is locked out, please unlock her.\n\nRequested by: Olive Owner\n",
    );
    let (_, signed) = site.request(
        "Password",
        "",
        "Ravi Gupta can't remember his password, could you sort it?\n\nMany thanks,\nPriya Shah\n",
    );
    let (_, noticed) = site.request(
        "Unlock",
        "",
        &format!(
            "Please reset the password for {}.{requested_by}\n*****************\nThis email and any files sent with it are confidential. If it has reached you by mistake, please tell the sender and then delete it; do not act on what it says.\n*****************\n",
            site.member
        ),
    );
    // A new starter named in a sentence; a forward that supplies the target the new text
    // points at ("her email is below").
    let (_, hannah) = site.request(
        "New carer",
        "",
        &format!("Hi, a new carer, Hannah Moss, starts next week - can she have an account please?{requested_by}"),
    );
    let (_, forward) = site.request(
        "Fwd: can't log in",
        "",
        &format!(
            "Mel's email is below - could you reset her password please?{requested_by}\n\
             ---------- Forwarded message ---------\n\
             From: Mel <{m}>\n\
             Date: Wed, 25 Nov 2026 at 09:12\n\
             Subject: can't log in\n\
             To: Test Care <{mb}>\n\n\
             My password doesn't work any more.\n",
            m = site.member,
            mb = site.mailbox
        ),
    );
    for raw in [
        &ambiguous, &capped, &starter, &by_name, &signed, &noticed, &hannah, &forward,
    ] {
        stack.append(&site.helpdesk, "INBOX", raw).await;
    }
    let t = Duration::from_secs(30);
    folder_is(&stack, &site.helpdesk, "INBOX", 0, t).await;
    let audit = site.audit();
    let decided: Vec<String> = audit
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("request."))
        })
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["action"], e["detail"]["kind"], e["detail"]["reason"], e["detail"]
            )
        })
        .collect();
    eventually(&format!("3 held, 5 applied: {decided:#?}"), t, || async {
        stack.folder_count(&site.helpdesk, REVIEW).await == 3
            && stack.folder_count(&site.helpdesk, PROCESSED).await == 5
    })
    .await;
    assert_eq!(
        stack.folder_count(&site.helpdesk, REJECTED).await,
        0,
        "{decided:#?}"
    );

    let held: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "request.needs_review")
        .collect();
    let reason_of = |code: &str| {
        held.iter()
            .find(|e| e["detail"]["reason"] == code)
            .unwrap_or_else(|| panic!("no {code} among {held:#?}"))
    };
    let both = reason_of("ambiguous_name").to_string();
    assert!(
        both.contains(&site.outsider) && both.contains(&namesake),
        "{both}"
    );
    reason_of("too_many_asks");
    let starter = reason_of("starter_exists").to_string();
    assert!(starter.contains(&site.outsider), "{starter}");

    // Applied: the unlock by a named requester, the reset by a signed one, the reset under a
    // notice; each once, on the right account, and nothing for "the sender".
    let applied: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "request.applied")
        .collect();
    assert_eq!(applied.len(), 5, "{applied:#?}");
    let unlocked: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "account.unlocked")
        .collect();
    assert_eq!(unlocked.len(), 1, "{unlocked:#?}");
    assert!(
        unlocked
            .iter()
            .all(|e| e["subject"] == site.locked.as_str()),
        "{unlocked:#?}"
    );
    let resets: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "password.reset")
        .collect();
    assert_eq!(resets.len(), 3, "{resets:#?}");
    assert_eq!(
        resets
            .iter()
            .filter(|e| e["subject"] == site.member.as_str())
            .count(),
        2,
        "the notice's and the forward's: {resets:#?}"
    );
    let created: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "account.created")
        .collect();
    assert_eq!(created.len(), 1, "{created:#?}");
    assert!(
        created[0].to_string().contains("Hannah Moss"),
        "{created:#?}"
    );
    assert!(
        resets.iter().any(|e| e["subject"] == ravi.as_str())
            && resets.iter().any(|e| e["subject"] == site.member.as_str()),
        "{resets:#?}"
    );
    let how: Vec<String> = applied
        .iter()
        .filter_map(|e| e["detail"]["understood"]["requester"]["how"].as_str())
        .map(str::to_owned)
        .collect();
    assert!(
        how.iter()
            .any(|h| h.starts_with("named on the Requested by line"))
            && how.iter().any(|h| h.starts_with("signed the email")),
        "{how:?}"
    );
    daemon.stop();
}

/// Each thread's name and CPUs as the kernel keeps them (`Cpus_allowed_list`, e.g. `0-1` or
/// `1`).
fn threads_of(pid: u32) -> Vec<(String, String)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .to_owned()
        };
        threads.push((field("Name:"), field("Cpus_allowed_list:")));
    }
    threads
}

fn cpus_of_threads(pid: u32) -> Vec<String> {
    threads_of(pid).into_iter().map(|(_, cpus)| cpus).collect()
}

#[tokio::test]
async fn run_keeps_its_threads_on_one_cpu_unless_told_otherwise() {
    let stack = MailStack::require();
    let ours = cpus_of_threads(std::process::id())
        .into_iter()
        .next()
        .unwrap();
    let site = Site::new(&stack, &[]);

    // The default: every thread (tokio's, SQLite's connections', the main one) on one CPU,
    // the one the log names.
    let daemon = site.start();
    let lists = cpus_of_threads(daemon.pid());
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("threads kept on CPU"))
        .unwrap_or_else(|| panic!("no CPU line in:\n{log}"));
    let cpu = line
        .split("threads kept on CPU ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    // The main thread and tokio's worker; on SQLite each connection's thread as well.
    assert!(
        lists.len() >= 2,
        "the daemon runs several threads: {lists:?}"
    );
    // All but one, on SQLite when this test may use more than that CPU: the connection
    // SQLite's log is checkpointed on runs on the others, so that its copying never takes the
    // requests' CPU (src/store/wal.rs). It is opened in the checkpointer's first second.
    let one_elsewhere =
        crate::common::testdb::backend() == crate::common::testdb::Backend::Sqlite && ours != cpu;
    let mut threads = threads_of(daemon.pid());
    let deadline = Instant::now() + Duration::from_secs(10);
    while one_elsewhere && threads.iter().all(|(_, l)| l == cpu) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        threads = threads_of(daemon.pid());
    }
    let elsewhere: Vec<_> = threads.iter().filter(|(_, l)| l != cpu).collect();
    if one_elsewhere {
        assert_eq!(elsewhere.len(), 1, "{cpu}: {threads:?}");
        let (name, cpus) = elsewhere[0];
        assert!(name.starts_with("sqlx-sqlite"), "{threads:?}");
        // Only the other CPUs: neither the requests' one nor all of them.
        assert!(*cpus != ours, "{cpu} of {ours}: {threads:?}");
    } else {
        assert!(elsewhere.is_empty(), "{cpu}: {threads:?}");
    }
    daemon.stop();

    // "any" (here through the environment): the kernel places them, on what this test may use.
    let daemon = site.start_with(&[("POSTROOM_RUNTIME_CPU", "any")], false);
    let lists = cpus_of_threads(daemon.pid());
    assert!(lists.iter().all(|l| *l == ours), "{ours}: {lists:?}");
    assert!(daemon.log().contains("threads placed by the kernel"));
    daemon.stop();

    // A CPU the process may not use stops the start, naming the key.
    let bad = Site::new(&stack, &[("runtime", "cpu", "1000")]);
    let out = bad.cli(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("runtime.cpu") && stderr.contains("CPU 1000"),
        "{stderr}"
    );
}
