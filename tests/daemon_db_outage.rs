//! `postroom run` when PostgreSQL goes away under it (issue 6): the database is stopped while
//! requests are being processed and more arrive, then started again. Nothing is lost, nothing
//! is applied or answered twice, nothing is half-applied, the log gets a line per failed
//! attempt (not per waiting message), and the process never exits. A daemon started while the
//! database is down waits for it.
//!
//! The test runs a PostgreSQL cluster of its own (tests/pgstack/pgstack.sh), since it stops
//! it: the shared one of scripts/test stays up for the other tests. Needs root (the cluster
//! runs as `postgres`) and the mail stack.

use crate::common::mailstack::MailStack;
use crate::common::testdb::TestDb;
use crate::daemon_support::{Site, eventually, header};
use postroom::store::Store;
use sqlx::Row;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const REQUESTS: usize = 60;

/// A private PostgreSQL cluster, destroyed on drop (tests/daemon_lmtp.rs stops one too).
pub(crate) struct Cluster {
    dir: PathBuf,
    pub(crate) url: String,
}

fn pgstack(command: &str, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pgstack/pgstack.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(command)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "pgstack.sh {command} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    pub(crate) fn start() -> Cluster {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "postroom-outage-pg-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            postroom::store::now_ms()
        ));
        pgstack("start", &dir);
        let env = std::fs::read_to_string(dir.join("env")).unwrap();
        let url = env
            .lines()
            .find_map(|l| l.strip_prefix("export POSTROOM_TEST_PG_URL="))
            .unwrap()
            .to_owned();
        Cluster { dir, url }
    }
    pub(crate) fn stop(&self) {
        pgstack("stop", &self.dir);
    }
    pub(crate) fn resume(&self) {
        pgstack("start", &self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pgstack/pgstack.sh"))
            .arg("destroy")
            .arg(&self.dir)
            .output();
    }
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// The site with `REQUESTS` locked members, and an unlock request for member `i`.
fn backlog(site: &Site) -> impl Fn(usize) -> (String, Vec<u8>) + '_ {
    let mut csv = String::from("organisation,mailbox,account,name,role,status\n");
    for i in 0..REQUESTS {
        csv.push_str(&format!(
            "{},{},locked-{i}-{}@test.example,Kim {i},member,locked\n",
            site.organisation(),
            site.mailbox,
            site.token()
        ));
    }
    let file = site.dir.path().join("backlog.csv");
    std::fs::write(&file, csv).unwrap();
    let out = site.cli(&["directory", "import", file.to_str().unwrap()]);
    assert!(out.status.success());
    move |i| {
        site.request(
            "Locked out",
            "",
            &format!(
                "Please unlock Kim's account.\n\nAccount: locked-{i}-{}@test.example\nRequested by: {}\n",
                site.token(),
                site.owner
            ),
        )
    }
}

#[tokio::test]
async fn postgres_stopped_mid_run_and_started_again_loses_and_doubles_nothing() {
    let stack = MailStack::require();
    let cluster = Cluster::start();
    let site = Site::on(
        &stack,
        &[
            ("limits", "max_replies_per_mailbox_per_day", "1000"),
            // Each attempt during the outage waits at most this long for a connection.
            ("database", "acquire_timeout", "\"2s\""),
            ("imap", "batch_size", "5"),
        ],
        |_| TestDb::postgres_on(&cluster.url),
    );
    let request = backlog(&site);
    let mut ids = Vec::new();
    let queue = |from: usize, to: usize, ids: &mut Vec<String>| {
        let raws: Vec<Vec<u8>> = (from..to)
            .map(|i| {
                let (id, raw) = request(i);
                ids.push(id);
                raw
            })
            .collect();
        raws
    };

    let mut daemon = site.start();
    // A first third arrives and is being worked on when the database goes away.
    for raw in queue(0, REQUESTS / 3, &mut ids) {
        stack.append(&site.helpdesk, "INBOX", &raw).await;
    }
    eventually("some are processed", Duration::from_secs(30), || async {
        stack
            .folder_count(&site.helpdesk, "postroom/processed")
            .await
            >= 5
    })
    .await;
    let outage = Instant::now();
    cluster.stop();
    let before = daemon.log().lines().count();

    // The second third arrives during the outage.
    for raw in queue(REQUESTS / 3, 2 * REQUESTS / 3, &mut ids) {
        stack.append(&site.helpdesk, "INBOX", &raw).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        daemon.wait_exit(Duration::ZERO).is_none(),
        "postroom exited during the outage:\n{}",
        daemon.log()
    );
    let during: Vec<String> = daemon
        .log()
        .lines()
        .skip(before)
        .map(str::to_owned)
        .collect();
    let down = outage.elapsed();
    cluster.resume();

    // The last third after the database is back.
    for raw in queue(2 * REQUESTS / 3, REQUESTS, &mut ids) {
        stack.append(&site.helpdesk, "INBOX", &raw).await;
    }
    eventually(
        "every request is filed after the outage",
        Duration::from_secs(90),
        || async {
            stack
                .folder_count(&site.helpdesk, "postroom/processed")
                .await
                == REQUESTS
        },
    )
    .await;
    let replies = stack
        .wait_for(&site.mailbox, "INBOX", REQUESTS, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Nothing lost, nothing twice, nothing half-applied.
    let store = Store::connect(&site.database()).await.unwrap();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM messages").await,
        REQUESTS as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM requests WHERE outcome = 'applied'"
        )
        .await,
        REQUESTS as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'account.unlocked'"
        )
        .await,
        REQUESTS as i64
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await,
        REQUESTS as i64
    );
    // Only the site's own locked member (no request names it) is still locked.
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM accounts WHERE status = 'locked'"
        )
        .await,
        1
    );
    store.close().await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(
        stack.folder_count(&site.mailbox, "INBOX").await,
        REQUESTS,
        "replies sent twice"
    );
    let answered: HashSet<String> = replies
        .iter()
        .filter_map(|m| header(m, "In-Reply-To"))
        .collect();
    assert_eq!(answered.len(), REQUESTS);

    // The outage cost a line per failed attempt, with backoff: no line per message, no flood.
    let failures = during
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count();
    eprintln!(
        "{failures} warning/error lines during {:.0} s without the database:\n{}",
        down.as_secs_f64(),
        during
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .map(|l| l.get(..l.len().min(220)).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !during
            .iter()
            .any(|l| l.contains("could not process the message")),
        "an outage is not a message's fault"
    );
    assert!((1..=40).contains(&failures), "{failures} lines");
    daemon.stop();
}

#[tokio::test]
async fn run_started_while_postgres_is_down_waits_for_it() {
    let stack = MailStack::require();
    let cluster = Cluster::start();
    let site = Site::on(&stack, &[("database", "acquire_timeout", "\"2s\"")], |_| {
        TestDb::postgres_on(&cluster.url)
    });
    cluster.stop();

    let mut daemon = site.spawn(&[], false);
    daemon.wait_log("database unavailable at start", Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        daemon.wait_exit(Duration::ZERO).is_none(),
        "exited:\n{}",
        daemon.log()
    );
    cluster.resume();
    daemon.wait_log("IMAP session ready", Duration::from_secs(60));

    let (_, raw) = site.unlock_request();
    stack.append(&site.helpdesk, "INBOX", &raw).await;
    stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    let log = daemon.stop();
    let waits = log.matches("database unavailable at start").count();
    assert!((1..=6).contains(&waits), "{waits} lines:\n{log}");
}
