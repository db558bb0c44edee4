//! The outbox sender (src/smtp.rs, src/store/outbox.rs) against real servers: the test mail
//! stack (Postfix → Dovecot, tests/mailstack/) and Postfix's `smtp-sink` for refusals.
//! Without the stack's MAILSTACK_* variables these tests fail (MailStack::require).

use crate::common::mailstack::MailStack;
use crate::common::testdb::TestDb;
use postroom::config::{Config, DatabaseConfig, HelpdeskConfig, SmtpConfig, TlsMode};
use postroom::jobs::reply;
use postroom::smtp;
use postroom::store::journal::{self, NewOutboxItem};
use postroom::store::outbox::{self, OutboxStatus};
use postroom::store::{Backend, Store, now_ms};
use sqlx::Row;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const HELPDESK: &str = "helpdesk@nhs.example";

fn init() {
    // What main does; lettre builds its rustls config from the installed provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn helpdesk() -> HelpdeskConfig {
    HelpdeskConfig {
        address: HELPDESK.into(),
        name: "Test Helpdesk".into(),
        reference_prefix: "HD".into(),
    }
}

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: None,
        password: None,
        auth: postroom::config::Auth::Password,
        ca_file: None,
        from: HELPDESK.into(),
        timeout: Duration::from_secs(10),
        retry_initial: Duration::from_millis(200),
        retry_max: Duration::from_secs(2),
        give_up_after: Duration::from_secs(3600),
    }
}

/// The stack's Postfix over required STARTTLS, trusting the stack's throw-away CA (its
/// certificate names 127.0.0.1).
fn stack_smtp(stack: &MailStack) -> SmtpConfig {
    SmtpConfig {
        tls: TlsMode::Starttls,
        ca_file: Some(stack.tls_ca.clone().expect("MAILSTACK_TLS_CA is not set")),
        ..smtp_config(stack.smtp_port)
    }
}

struct Db {
    store: Store,
    // Dropped after the store: a PostgreSQL test database goes last.
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// A fresh database on the backend this run tests (SQLite, or PostgreSQL with
/// `POSTROOM_TEST_BACKEND=postgres`).
async fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new(dir.path());
    let store = Store::open(&DatabaseConfig {
        url: test_db.url.clone(),
        max_connections: 5,
        acquire_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    Db {
        store,
        _db: test_db,
        _dir: dir,
    }
}

fn unique_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "HD-{:06}.{}.{}@nhs.example",
        N.fetch_add(1, Ordering::Relaxed),
        std::process::id(),
        now_ms()
    )
}

struct Queued {
    id: i64,
    message_id: String,
}

async fn enqueue(
    store: &Store,
    to: &str,
    subject: &str,
    body: &str,
    secret: Option<&str>,
) -> Queued {
    let message_id = unique_id();
    let mut tx = store.begin().await.unwrap();
    let id = journal::enqueue_reply(
        &mut tx,
        &NewOutboxItem {
            request_id: None,
            to,
            subject,
            body,
            message_id: &message_id,
            in_reply_to: Some("req-1@rosehill.nhs.example"),
            references: Some("root-0@rosehill.nhs.example req-1@rosehill.nhs.example"),
            secret,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Queued { id, message_id }
}

#[derive(Debug)]
struct Stored {
    status: String,
    body: String,
    secret: Option<String>,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    sent_at: Option<i64>,
    claimed_until: Option<i64>,
}

async fn stored(store: &Store, id: i64) -> Stored {
    let r = sqlx::query(
        "SELECT status, body, secret, attempts, next_attempt_at, last_error, sent_at, claimed_until \
         FROM outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    Stored {
        status: r.get(0),
        body: r.get(1),
        secret: r.get(2),
        attempts: r.get(3),
        next_attempt_at: r.get(4),
        last_error: r.get(5),
        sent_at: r.get(6),
        claimed_until: r.get(7),
    }
}

/// Every value of header `name` in a raw message, unfolded.
fn header(raw: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push_str(line);
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    lines
        .iter()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
        .collect()
}

fn one_header(raw: &[u8], name: &str) -> String {
    let values = header(raw, name);
    assert_eq!(
        values.len(),
        1,
        "{name}: {values:?} in\n{}",
        String::from_utf8_lossy(raw)
    );
    values.into_iter().next().unwrap_or_default()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Postfix's throw-away SMTP server, answering as told; killed on drop.
struct SmtpSink {
    child: Child,
    port: u16,
}

impl SmtpSink {
    fn start(args: &[&str]) -> SmtpSink {
        let port = closed_port();
        let mut cmd = Command::new("/usr/sbin/smtp-sink");
        // smtp-sink refuses to run as root without a user to switch to.
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        if root {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(args)
            .arg(format!("127.0.0.1:{port}"))
            .arg("10")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start /usr/sbin/smtp-sink (postfix package): {e}"));
        let mut sink = SmtpSink { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("smtp-sink exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sink
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Until every row's `next_attempt_at` has passed.
async fn wait_until_due(store: &Store, ids: &[i64]) {
    let mut at = 0;
    for id in ids {
        at = at.max(stored(store, *id).await.next_attempt_at);
    }
    let wait = at.saturating_sub(now_ms()) + 20;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn reply_is_delivered_with_threading_and_auto_reply_headers_and_secret_blanked() {
    init();
    let stack = MailStack::require();
    let db = db().await;
    let to = stack.unique_user("outbox-deliver");
    let secret = "Tmp-7hq2-Wx9p";
    let body = format!(
        "Hello,\n\nThe password of jane.doe@nhs.example was reset.\nTemporary password: {secret}\n\nHelpdesk\n"
    );
    let q = enqueue(
        &db.store,
        &to,
        "Re: password reset [HD-000001]",
        &body,
        Some(secret),
    )
    .await;

    let pass = reply::send_due(&db.store, &stack_smtp(&stack), &helpdesk())
        .await
        .unwrap();
    assert_eq!(
        pass,
        reply::SendPass {
            sent: 1,
            ..Default::default()
        }
    );

    let got = stack
        .wait_for(&to, "INBOX", 1, Duration::from_secs(30))
        .await;
    assert_eq!(got.len(), 1);
    let raw = &got[0];
    assert_eq!(one_header(raw, "Message-ID"), format!("<{}>", q.message_id));
    assert_eq!(
        one_header(raw, "In-Reply-To"),
        "<req-1@rosehill.nhs.example>"
    );
    assert_eq!(
        one_header(raw, "References"),
        "<root-0@rosehill.nhs.example> <req-1@rosehill.nhs.example>"
    );
    assert_eq!(one_header(raw, "Auto-Submitted"), "auto-replied");
    assert_eq!(one_header(raw, "X-Auto-Response-Suppress"), "All");
    assert_eq!(one_header(raw, "X-Postroom-Loop"), HELPDESK);
    assert_eq!(
        one_header(raw, "From"),
        format!("\"Test Helpdesk\" <{HELPDESK}>")
    );
    assert_eq!(one_header(raw, "Subject"), "Re: password reset [HD-000001]");
    assert!(one_header(raw, "Content-Type").starts_with("text/plain; charset=utf-8"));
    assert!(!one_header(raw, "Date").is_empty());
    // The envelope sender is smtp.from (Postfix records it as Return-Path).
    assert_eq!(one_header(raw, "Return-Path"), format!("<{HELPDESK}>"));
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    let text = parsed.body_text(0).unwrap();
    // (The transfer adds a line end or two at the very end.)
    assert_eq!(
        text.replace("\r\n", "\n").trim_end(),
        body.trim_end(),
        "the mail shows the password once"
    );

    let row = stored(&db.store, q.id).await;
    assert_eq!(row.status, "sent");
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_some());
    assert_eq!(row.claimed_until, None);
    assert_eq!(row.secret, None, "secret forgotten");
    assert!(
        !row.body.contains(secret),
        "secret kept in the stored body: {}",
        row.body
    );
    assert!(
        row.body
            .contains("Temporary password: [shown once, not kept]"),
        "{}",
        row.body
    );

    // Nothing is sent twice.
    let again = reply::send_due(&db.store, &stack_smtp(&stack), &helpdesk())
        .await
        .unwrap();
    assert_eq!(again, reply::SendPass::default());
    let mut conn = db.store.read().await.unwrap();
    let counts = outbox::counts(&mut conn).await.unwrap();
    assert_eq!((counts.pending, counts.sent, counts.failed), (0, 1, 0));
    assert_eq!(
        outbox::oldest_pending_age(&mut conn, now_ms())
            .await
            .unwrap(),
        None
    );
    let listed = outbox::list(&mut conn, Some(OutboxStatus::Sent), 10, 0)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].message_id, q.message_id);
    assert!(
        outbox::list(&mut conn, Some(OutboxStatus::Pending), 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn smtp_down_keeps_replies_pending_then_delivers_each_once() {
    init();
    let stack = MailStack::require();
    let db = db().await;
    let to = stack.unique_user("outbox-down");
    let a = enqueue(&db.store, &to, "first", "one\n", None).await;
    let b = enqueue(&db.store, &to, "second", "two\n", None).await;

    // Nothing listens: both stay pending, with the error and a retry time.
    let down = smtp_config(closed_port());
    let before = now_ms();
    let pass = reply::send_due(&db.store, &down, &helpdesk())
        .await
        .unwrap();
    assert_eq!(
        pass,
        reply::SendPass {
            retried: 2,
            ..Default::default()
        }
    );
    for q in [&a, &b] {
        let row = stored(&db.store, q.id).await;
        assert_eq!(row.status, "pending");
        assert_eq!(row.attempts, 1);
        assert_eq!(row.claimed_until, None);
        let error = row.last_error.unwrap_or_default();
        assert!(error.to_lowercase().contains("refused"), "{error}");
        // retry_initial 200 ms with jitter: between 100 and 200 ms later.
        assert!(
            row.next_attempt_at >= before + 100,
            "{}",
            row.next_attempt_at - before
        );
        assert!(row.next_attempt_at <= now_ms() + 200);
    }
    let mut conn = db.store.read().await.unwrap();
    assert_eq!(outbox::counts(&mut conn).await.unwrap().pending, 2);
    assert!(
        outbox::oldest_pending_age(&mut conn, now_ms())
            .await
            .unwrap()
            .is_some()
    );
    drop(conn);

    // Not yet due: a pass right away touches nothing.
    let early = reply::send_due(&db.store, &down, &helpdesk())
        .await
        .unwrap();
    assert_eq!(early, reply::SendPass::default());

    // Still down at the second attempt: the backoff grows (200 ms doubled, jittered).
    wait_until_due(&db.store, &[a.id, b.id]).await;
    let t = now_ms();
    reply::send_due(&db.store, &down, &helpdesk())
        .await
        .unwrap();
    for q in [&a, &b] {
        let row = stored(&db.store, q.id).await;
        assert_eq!(row.attempts, 2);
        assert!(
            row.next_attempt_at >= t + 200,
            "{}",
            row.next_attempt_at - t
        );
    }

    // Back up: each delivered exactly once.
    wait_until_due(&db.store, &[a.id, b.id]).await;
    let up = stack_smtp(&stack);
    let pass = reply::send_due(&db.store, &up, &helpdesk()).await.unwrap();
    assert_eq!(
        pass,
        reply::SendPass {
            sent: 2,
            ..Default::default()
        }
    );
    assert_eq!(stored(&db.store, a.id).await.status, "sent");
    assert_eq!(stored(&db.store, b.id).await.status, "sent");
    assert_eq!(
        reply::send_due(&db.store, &up, &helpdesk()).await.unwrap(),
        reply::SendPass::default()
    );

    let got = stack
        .wait_for(&to, "INBOX", 2, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stack.folder_count(&to, "INBOX").await,
        2,
        "a reply was delivered twice"
    );
    let ids: Vec<String> = got.iter().map(|m| one_header(m, "Message-ID")).collect();
    assert!(ids.contains(&format!("<{}>", a.message_id)));
    assert!(ids.contains(&format!("<{}>", b.message_id)));
}

#[tokio::test]
async fn permanent_refusal_fails_with_the_servers_answer_and_is_not_retried() {
    init();
    let _stack = MailStack::require();
    let sink = SmtpSink::start(&[
        "-f",
        "rcpt",
        "-B",
        "550 5.1.1 Recipient address rejected: postroom test says no",
    ]);
    let db = db().await;
    let q = enqueue(
        &db.store,
        "nobody@test.example",
        "refused",
        "body\n",
        Some("pw"),
    )
    .await;
    let cfg = smtp_config(sink.port);

    let pass = reply::send_due(&db.store, &cfg, &helpdesk()).await.unwrap();
    assert_eq!(
        pass,
        reply::SendPass {
            failed: 1,
            ..Default::default()
        }
    );
    let row = stored(&db.store, q.id).await;
    assert_eq!(row.status, "failed");
    assert_eq!(row.attempts, 1);
    let error = row.last_error.unwrap_or_default();
    assert!(error.starts_with("550"), "{error}");
    assert!(
        error.contains("Recipient address rejected: postroom test says no"),
        "{error}"
    );
    assert_eq!(row.secret.as_deref(), Some("pw"), "kept for a staff retry");

    // No retry, however often the worker looks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reply::send_due(&db.store, &cfg, &helpdesk()).await.unwrap(),
        reply::SendPass::default()
    );
    assert_eq!(stored(&db.store, q.id).await.status, "failed");
    let mut conn = db.store.read().await.unwrap();
    let failed = outbox::list(&mut conn, Some(OutboxStatus::Failed), 10, 0)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("550")
    );

    // Staff "retry": pending and due again, a fresh round; refused again here.
    assert!(outbox::retry_now(&mut conn, q.id).await.unwrap());
    assert!(
        !outbox::retry_now(&mut conn, q.id).await.unwrap(),
        "only failed rows"
    );
    drop(conn);
    let row = stored(&db.store, q.id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    let pass = reply::send_due(&db.store, &cfg, &helpdesk()).await.unwrap();
    assert_eq!(pass.failed, 1);
}

#[tokio::test]
async fn temporary_refusal_schedules_a_retry_then_gives_up() {
    init();
    let _stack = MailStack::require();
    let sink = SmtpSink::start(&[
        "-r",
        "rcpt",
        "-b",
        "451 4.3.0 postroom test: try again later",
    ]);
    let db = db().await;
    let q = enqueue(&db.store, "someone@test.example", "later", "body\n", None).await;
    let mut cfg = smtp_config(sink.port);

    let before = now_ms();
    let pass = reply::send_due(&db.store, &cfg, &helpdesk()).await.unwrap();
    assert_eq!(
        pass,
        reply::SendPass {
            retried: 1,
            ..Default::default()
        }
    );
    let row = stored(&db.store, q.id).await;
    assert_eq!(row.status, "pending");
    assert_eq!(row.attempts, 1);
    assert!(
        row.next_attempt_at > before,
        "retry scheduled in the future"
    );
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.starts_with("451") && error.contains("try again later"),
        "{error}"
    );

    // Past smtp.give_up_after, a temporary failure ends it.
    wait_until_due(&db.store, &[q.id]).await;
    cfg.give_up_after = Duration::from_millis(1);
    let pass = reply::send_due(&db.store, &cfg, &helpdesk()).await.unwrap();
    assert_eq!(
        pass,
        reply::SendPass {
            failed: 1,
            ..Default::default()
        }
    );
    let row = stored(&db.store, q.id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 2));
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.starts_with("gave up after 2 attempts") && error.contains("451"),
        "{error}"
    );
}

#[tokio::test]
async fn crlf_in_subject_does_not_inject_a_header() {
    init();
    let stack = MailStack::require();
    let db = db().await;
    let to = stack.unique_user("outbox-inject");
    enqueue(&db.store, &to, "Hello\r\nBcc: evil@x", "body\n", None).await;

    let pass = reply::send_due(&db.store, &stack_smtp(&stack), &helpdesk())
        .await
        .unwrap();
    assert_eq!(pass.sent, 1);
    let got = stack
        .wait_for(&to, "INBOX", 1, Duration::from_secs(30))
        .await;
    let raw = &got[0];
    assert!(
        header(raw, "Bcc").is_empty(),
        "{}",
        String::from_utf8_lossy(raw)
    );
    assert_eq!(one_header(raw, "Subject"), "Hello Bcc: evil@x");
    assert_eq!(one_header(raw, "To"), to);
}

#[tokio::test]
async fn check_reports_what_worked_or_why_not() {
    init();
    let stack = MailStack::require();
    let ok = smtp::check(&stack_smtp(&stack)).await.unwrap();
    assert!(ok.contains("STARTTLS ok"), "{ok}");

    let refused = smtp::check(&smtp_config(closed_port())).await.unwrap_err();
    assert!(refused.to_lowercase().contains("refused"), "{refused}");

    // STARTTLS with only the web PKI roots: the stack's private CA is not trusted.
    let untrusted = SmtpConfig {
        ca_file: None,
        ..stack_smtp(&stack)
    };
    let err = smtp::check(&untrusted).await.unwrap_err();
    assert!(err.contains("TLS failed"), "{err}");
}

#[tokio::test]
async fn worker_sends_when_woken_and_stops_on_shutdown() {
    init();
    let stack = MailStack::require();
    let db = db().await;
    let to = stack.unique_user("outbox-worker");
    // Through the config file's own checks, as the daemon gets it.
    let toml = format!(
        "[helpdesk]\naddress = \"{HELPDESK}\"\nname = \"Test Helpdesk\"\n\n[smtp]\nhost = \"127.0.0.1\"\n\
         port = {}\ntls = \"starttls\"\nca_file = \"{}\"\nretry_initial = \"200ms\"\n",
        stack.smtp_port,
        stack
            .tls_ca
            .clone()
            .expect("MAILSTACK_TLS_CA is not set")
            .display()
    );
    let cfg = Arc::new(Config::from_toml_with_env(&toml, &[]).unwrap());
    let wake = Arc::new(tokio::sync::Notify::new());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(reply::run_outbox(
        db.store.clone(),
        cfg,
        wake.clone(),
        shutdown.clone(),
    ));

    // Let the worker go idle (nothing queued: it sleeps up to 5 s), then queue and wake it:
    // sent well before it would have looked again by itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let q = enqueue(&db.store, &to, "woken", "body\n", None).await;
    wake.notify_one();
    let deadline = Instant::now() + Duration::from_secs(3);
    while stored(&db.store, q.id).await.status != "sent" {
        assert!(
            Instant::now() < deadline,
            "worker did not send after wake-up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack
        .wait_for(&to, "INBOX", 1, Duration::from_secs(30))
        .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("worker did not stop on shutdown")
        .unwrap();
}

/// `tls = "tls"`: TLS from the first byte (the stack's Postfix on its SMTPS port), over the
/// connections postroom opens itself; several replies share the pooled connections.
#[tokio::test]
async fn replies_go_out_over_implicit_tls() {
    init();
    let stack = MailStack::require();
    let db = db().await;
    let smtps = SmtpConfig {
        tls: TlsMode::Tls,
        ca_file: Some(stack.tls_ca.clone().expect("MAILSTACK_TLS_CA is not set")),
        ..smtp_config(stack.smtps_port.expect("MAILSTACK_SMTPS_PORT is not set"))
    };
    let ok = smtp::check(&smtps).await.unwrap();
    assert!(ok.contains("implicit TLS ok"), "{ok}");

    let to = stack.unique_user("outbox-smtps");
    let mut ids = Vec::new();
    for i in 1..=6 {
        let q = enqueue(
            &db.store,
            &to,
            &format!("Re: reset [HD-00000{i}]"),
            "Done.\n",
            None,
        )
        .await;
        ids.push(format!("<{}>", q.message_id));
    }
    let pass = reply::send_due(&db.store, &smtps, &helpdesk())
        .await
        .unwrap();
    assert_eq!(
        pass,
        reply::SendPass {
            sent: 6,
            ..Default::default()
        }
    );
    let got = stack
        .wait_for(&to, "INBOX", 6, Duration::from_secs(30))
        .await;
    let mut got_ids: Vec<String> = got
        .iter()
        .map(|raw| one_header(raw, "Message-ID"))
        .collect();
    got_ids.sort();
    ids.sort();
    assert_eq!(got_ids, ids);

    // The same port with a client expecting plain text first: the server's TLS hello is not
    // a greeting, and nothing is sent.
    let plain = SmtpConfig {
        tls: TlsMode::None,
        timeout: Duration::from_secs(2),
        ..smtps.clone()
    };
    assert!(smtp::check(&plain).await.is_err());
}

/// A database that refuses the "sent" records (a trigger here) stops the sending: of 40 due
/// replies, no more go out than `reply::UNRECORDED_MAX`, the most a crash can send twice. Each
/// stays pending, to be sent when its claim runs out.
#[tokio::test]
async fn a_database_that_refuses_the_records_stops_the_sending() {
    init();
    let _stack = MailStack::require();
    let dumps = tempfile::tempdir().unwrap();
    // smtp-sink writes as `nobody` when run as root.
    std::fs::set_permissions(
        dumps.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let sink = SmtpSink::start(&["-d", &format!("{}/%H%M%S.", dumps.path().display())]);
    let db = db().await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            enqueue(
                &db.store,
                "site@test.example",
                &format!("r{i}"),
                "body\n",
                None,
            )
            .await
            .id,
        );
    }
    let refuse: &[&'static str] = match db.store.backend() {
        Backend::Sqlite => &[
            "CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON outbox \
             WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER refuse_sent BEFORE UPDATE ON outbox FOR EACH ROW \
             WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse_sent()",
        ],
    };
    {
        let mut conn = db.store.write().await.unwrap();
        for sql in refuse {
            sqlx::query(*sql).execute(&mut *conn).await.unwrap();
        }
    }

    let pass = reply::send_due(&db.store, &smtp_config(sink.port), &helpdesk()).await;
    let error = pass.expect_err("the records were refused").to_string();
    assert!(error.contains("refused by the test"), "{error}");
    let delivered = std::fs::read_dir(dumps.path()).unwrap().count();
    assert!(
        (1..=reply::UNRECORDED_MAX).contains(&delivered),
        "{delivered} replies went out with none recorded"
    );
    for id in ids {
        assert_eq!(stored(&db.store, id).await.status, "pending");
    }
}
