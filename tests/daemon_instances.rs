//! Several `postroom run` processes against one PostgreSQL database and one Dovecot inbox
//! (issue 6): 2,000 requests queued in the inbox, worked by 1, 2 and 3 instances in turn.
//! Each time every request is applied exactly once and every reply is delivered exactly once
//! (counted in the shared mailboxes that receive them); with three, the instance holding the
//! inbox's lease is SIGKILLed a third of the way through and another takes over and finishes.
//! Prints requests per second for each round (`--nocapture` to see them; README quotes them).
//!
//! Needs the mail stack and `POSTROOM_TEST_PG_URL` (scripts/test provides both).
//! `POSTROOM_TEST_INSTANCES_REQUESTS=N` changes the 2,000 (to try things quickly).

use crate::common::mailstack::MailStack;
use crate::common::testdb::TestDb;
use crate::daemon_support::{Daemon, Site, header};
use postroom::jobs::reply::UNRECORDED_MAX;
use postroom::store::{Store, lease};
use sqlx::Row;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Short enough to see a takeover in the test; the default (20 s) is in the README.
const LEASE_TTL: Duration = Duration::from_secs(6);

fn requests() -> usize {
    std::env::var("POSTROOM_TEST_INSTANCES_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

struct Figures {
    instances: usize,
    requests: usize,
    /// From the start of the instances until every request was filed.
    processed: Duration,
    /// … until every reply was accepted by the SMTP server.
    answered: Duration,
    takeover: Option<Duration>,
    duplicate_replies: usize,
}

/// The shared mailboxes that send the requests and receive the replies. A realistic shape
/// matters: each request loads its mailbox's members, so one mailbox with all 2,000 accounts
/// would measure that instead of the instances.
const MAILBOXES: usize = 20;

/// A site on a fresh PostgreSQL database with [`MAILBOXES`] shared mailboxes, each with an
/// owner and its share of `n` locked members, and one unlock request per member waiting in
/// the helpdesk's inbox. Returns the site, the shared mailboxes and the requests' Message-IDs.
async fn site_with_backlog(stack: &MailStack, n: usize) -> (Site, Vec<String>, Vec<String>) {
    let ttl = format!("\"{}s\"", LEASE_TTL.as_secs());
    let site = Site::on(
        stack,
        &[
            // 100 answers a day to each shared mailbox, over the default cap of 20.
            ("limits", "max_replies_per_mailbox_per_day", "100000"),
            ("imap", "batch_size", "100"),
            ("database", "lease_ttl", &ttl),
            // A killed instance's claimed reply waits out 12 × this (+5 s) before another
            // instance sends it.
            ("smtp", "timeout", "\"3s\""),
        ],
        |_| TestDb::postgres(),
    );
    let mailboxes = stack.unique_users("region", MAILBOXES);
    let owner = |k: usize| format!("owner-{k}-{}@test.example", site.token());
    let member = |i: usize| format!("locked-{i}-{}@test.example", site.token());
    let mut csv = String::from("organisation,mailbox,account,name,role,status\n");
    for (k, mb) in mailboxes.iter().enumerate() {
        csv.push_str(&format!(
            "{},{mb},{},Owner {k},owner,active\n",
            site.organisation(),
            owner(k)
        ));
    }
    for i in 0..n {
        csv.push_str(&format!(
            "{},{},{},Kim {i},member,locked\n",
            site.organisation(),
            mailboxes[i % MAILBOXES],
            member(i)
        ));
    }
    let file = site.dir.path().join("backlog.csv");
    std::fs::write(&file, csv).unwrap();
    let out = site.cli(&["directory", "import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Straight into the inbox over one IMAP session (the helper logs in per message).
    let mut ids = Vec::with_capacity(n);
    let mut s = stack.imap_login(&site.helpdesk).await.unwrap();
    for i in 0..n {
        let k = i % MAILBOXES;
        let (id, raw) = site.request_from(
            &mailboxes[k],
            "Locked out",
            "",
            &format!(
                "Please unlock Kim's account.\n\nAccount: {}\nRequested by: {}\n",
                member(i),
                owner(k)
            ),
        );
        s.append("INBOX", None, None, &raw).await.unwrap();
        ids.push(id);
    }
    let _ = s.logout().await;
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, n);
    (site, mailboxes, ids)
}

fn pid_of(holder: &str) -> Option<u32> {
    holder.split(':').nth(1)?.parse().ok()
}

async fn holder(store: &Store) -> Option<String> {
    lease::list(store)
        .await
        .ok()?
        .into_iter()
        .find(|l| l.expires_in_ms > 0)
        .map(|l| l.holder)
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn round(stack: &MailStack, instances: usize, kill_holder: bool) -> Figures {
    let n = requests();
    let (site, mailboxes, ids) = site_with_backlog(stack, n).await;
    let store = Store::connect(&site.database()).await.unwrap();

    let started = Instant::now();
    let mut daemons: Vec<Option<Daemon>> = (0..instances)
        .map(|_| Some(site.spawn(&[], false)))
        .collect();
    for d in daemons.iter().flatten() {
        d.wait_log("postroom running", Duration::from_secs(30));
    }

    let mut killed: Option<(String, Instant)> = None;
    let mut takeover = None;
    let deadline = started + Duration::from_secs(600);
    let mut processed = None;
    loop {
        let filed = stack
            .folder_count(&site.helpdesk, "postroom/processed")
            .await;
        if filed >= n && processed.is_none() {
            processed = Some(started.elapsed());
        }
        // Stored, not filed: messages are moved a batch at a time.
        let stored = count(&store, "SELECT COUNT(*) FROM messages").await;
        if kill_holder && killed.is_none() && stored >= n as i64 / 3 {
            let h = holder(&store).await.expect("someone holds the inbox");
            let pid = pid_of(&h).unwrap();
            let victim = daemons
                .iter_mut()
                .find(|d| d.as_ref().is_some_and(|d| d.pid() == pid))
                .expect("the holder is one of ours");
            let d = victim.take().unwrap();
            d.signal("KILL");
            eprintln!("SIGKILL to the inbox holder {h} after {stored} of {n} requests");
            killed = Some((h, Instant::now()));
            drop(d);
        }
        if let Some((old, at)) = &killed
            && takeover.is_none()
            && holder(&store).await.is_some_and(|h| &h != old)
        {
            takeover = Some(at.elapsed());
        }
        // Done once all are filed and, in the killing round, someone has taken over.
        if processed.is_some() && (killed.is_none() || takeover.is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {filed} of {n} filed after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let processed = processed.unwrap_or_default();

    // Answered: every reply accepted by the SMTP server (delivery to the mailboxes is
    // Postfix's business, checked below).
    let replies = loop {
        let sent = count(&store, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await;
        if sent >= n as i64 {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {sent} of {n} replies sent after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut delivered = Vec::new();
    for mb in &mailboxes {
        delivered.extend(
            stack
                .wait_for(mb, "INBOX", n / MAILBOXES, Duration::from_secs(120))
                .await,
        );
    }
    // Anything sent twice would arrive within moments.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut total = 0;
    for mb in &mailboxes {
        total += stack.folder_count(mb, "INBOX").await;
    }

    // Every request applied exactly once …
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM messages").await,
        n as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM requests WHERE outcome = 'applied'"
        )
        .await,
        n as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'account.unlocked'"
        )
        .await,
        n as i64
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
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await,
        n as i64
    );

    // … and every reply delivered once: one per request, each in its request's thread.
    let answered: HashSet<String> = delivered
        .iter()
        .filter_map(|m| header(m, "In-Reply-To"))
        .collect();
    let expected: HashSet<String> = ids.iter().map(|id| format!("<{id}>")).collect();
    assert_eq!(answered, expected, "a request without its reply");
    let message_ids: HashSet<String> = delivered
        .iter()
        .filter_map(|m| header(m, "Message-ID"))
        .collect();
    assert_eq!(message_ids.len(), n);
    let duplicate_replies = total - n;
    if kill_holder {
        // SMTP is at-least-once (RFC 5321 §4.5.4.1): a reply whose final "." had left the
        // killed instance (the kernel still flushes the socket) but whose 250 it never
        // recorded is sent again by another instance once its claim runs out, with the same
        // Message-ID. At most the replies it had sent and not yet recorded: since the senders
        // stopped waiting for their records (README, change 37), that is
        // `reply::UNRECORDED_MAX` (16), not the 4 connections' one each this bound once was.
        assert!(
            duplicate_replies <= UNRECORDED_MAX,
            "{duplicate_replies} replies sent twice"
        );
    } else {
        assert_eq!(duplicate_replies, 0, "replies sent twice");
    }

    // One instance worked the inbox at a time: one lease taken per round, plus the takeover.
    let mut logs = String::new();
    for d in daemons.iter().flatten() {
        logs.push_str(&d.log());
    }
    let taken = logs.matches("took the inbox's lease").count();
    if kill_holder {
        assert!(takeover.is_some(), "nobody took over");
        assert!(
            takeover.unwrap() <= LEASE_TTL + LEASE_TTL / 4 + Duration::from_secs(3),
            "took over after {:?}",
            takeover.unwrap()
        );
        // The survivors' logs: the takeover (and not a second holder beside the first).
        assert_eq!(taken, 1, "{logs}");
    } else {
        assert_eq!(taken, 1, "{logs}");
        assert_eq!(
            logs.matches("standing by to take over").count(),
            instances - 1
        );
    }
    for d in daemons.into_iter().flatten() {
        d.stop();
    }
    store.close().await;
    Figures {
        instances,
        requests: n,
        processed,
        answered: replies,
        takeover,
        duplicate_replies,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_two_and_three_instances_share_one_inbox_and_survive_losing_its_holder() {
    let stack = MailStack::require();
    let mut figures = Vec::new();
    for (instances, kill) in [(1, false), (2, false), (3, true)] {
        let f = round(&stack, instances, kill).await;
        figures.push(f);
    }
    eprintln!("\ninstances  requests  filed/s  answered/s  takeover  replies sent twice");
    for f in &figures {
        eprintln!(
            "{:>9}  {:>8}  {:>7.1}  {:>10.1}  {:>8}  {}",
            f.instances,
            f.requests,
            f.requests as f64 / f.processed.as_secs_f64(),
            f.requests as f64 / f.answered.as_secs_f64(),
            f.takeover
                .map_or_else(|| "-".to_owned(), |t| format!("{:.1}s", t.as_secs_f64())),
            f.duplicate_replies
        );
    }
}
