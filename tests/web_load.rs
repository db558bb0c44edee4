//! How the staff pages hold up with 100,000 requests (and as many audit events and replies).
//! Ignored by default (it fills a database first); run it with
//!
//! ```sh
//! cargo test --release --test web_load -- --ignored --nocapture
//! ```
//!
//! It prints the median time of each page (the query plans behind them are pinned by the unit
//! tests in `src/store/views.rs`), and fails
//! if a page takes longer than [`BUDGET`] (generous, so that a slow CI machine passes while a
//! lost index, which costs seconds, does not).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use postroom::config::Config;
use postroom::store::Store;
use postroom::store::staff::{self, StaffRole};
use postroom::web::{self, Status, WebState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const REQUESTS: i64 = 100_000;
const BUDGET: Duration = Duration::from_millis(1500);

/// 100,000 requests over a year, 500 mailboxes, 5,000 requesters; about 2% wait for review.
/// Written with one recursive statement per table (SQLite), in seconds.
const FILL: &[&str] = &[
    "INSERT INTO organisations (id, name, created_at) \
     WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) \
     SELECT n, 'Organisation ' || n, 0 FROM s",
    "INSERT INTO mailboxes (id, organisation_id, address, created_at) \
     WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 500) \
     SELECT n, 1 + n % 100, 'site' || n || '@nhs.example', 0 FROM s",
    "INSERT INTO accounts (id, organisation_id, address, name, status, status_changed_at, created_at) \
     WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5000) \
     SELECT n, 1 + n % 100, 'person' || n || '@nhs.example', 'Person ' || n, \
       CASE WHEN n % 50 = 0 THEN 'locked' ELSE 'active' END, $1 - n * 60000, 0 FROM s",
    // Every account changed status after it was created, so the directory page's list of
    // recent changes is full: its log (migration 0190) as the trigger would have written it.
    "INSERT INTO account_status_changes (account_id, changed_at) \
     SELECT id, status_changed_at FROM accounts ORDER BY status_changed_at, id",
    "INSERT INTO memberships (mailbox_id, account_id, role, created_at) \
     SELECT 1 + id % 500, id, CASE WHEN id % 10 = 0 THEN 'owner' ELSE 'member' END, 0 FROM accounts",
    "INSERT INTO messages (id, message_id, sha256, raw, size, from_address, subject, source, received_at) \
     WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000) \
     SELECT n, 'm' || n || '@nhs.example', 'sha' || n, \
       CAST('From: site' || (n % 500) || '@nhs.example' || char(13,10) || 'Subject: Request ' || n || char(13,10) || char(13,10) || 'Please reset the password.' AS BLOB), \
       80, 'site' || (n % 500) || '@nhs.example', 'Request ' || n, 'bench', $1 - (100000 - n) * 315000 FROM s",
    "INSERT INTO requests (id, reference, message_id, kind, outcome, reason, mailbox, requester, target, fields, created_at, updated_at) \
     SELECT id, 'HD-' || substr('000000' || id, -6, 6), id, \
       CASE id % 8 WHEN 0 THEN 'password_reset' WHEN 1 THEN 'new_account' WHEN 2 THEN 'unlock' WHEN 3 THEN 'add_member' \
         WHEN 4 THEN 'remove_member' WHEN 5 THEN 'change_role' WHEN 6 THEN 'leaver' ELSE 'unknown' END, \
       CASE WHEN id % 50 = 7 THEN 'needs_review' WHEN id % 1000 = 3 THEN 'awaiting_confirmation' \
         WHEN id % 10 = 1 THEN 'rejected' WHEN id % 20 = 2 THEN 'ignored' ELSE 'applied' END, \
       CASE WHEN id % 50 = 7 THEN 'unknown_kind' WHEN id % 10 = 1 THEN 'not_member' ELSE NULL END, \
       from_address, 'person' || (id % 5000) || '@nhs.example', 'person' || ((id * 7) % 5000) || '@nhs.example', \
       '{}', received_at, received_at FROM messages",
    "INSERT INTO audit_events (at, actor, on_behalf_of, action, subject, detail, request_id, message_id) \
     SELECT created_at, requester, mailbox, 'request.' || outcome, target, '{\"kind\":\"' || kind || '\"}', id, message_id FROM requests",
    "INSERT INTO outbox (request_id, to_address, subject, body, message_id, status, attempts, next_attempt_at, last_error, created_at, sent_at) \
     SELECT id, mailbox, '[' || reference || '] Done', 'Hello', 'out' || id || '@helpdesk', \
       CASE WHEN id % 997 = 0 THEN 'failed' WHEN id > 99900 THEN 'pending' ELSE 'sent' END, 1, created_at, \
       CASE WHEN id % 997 = 0 THEN '550 5.1.1 no such user' ELSE NULL END, created_at, created_at FROM requests WHERE mailbox IS NOT NULL",
    // What each request mentions (store::mentions writes it with every request it records).
    "INSERT OR IGNORE INTO request_mentions (term, request_id)      SELECT mailbox, id FROM requests UNION SELECT requester, id FROM requests UNION SELECT target, id FROM requests",
    "INSERT OR IGNORE INTO request_mentions (term, request_id)      SELECT 'person ' || (id % 5000), id FROM requests",
];

async fn fill(store: &Store, now: i64) {
    let mut tx = store.begin().await.unwrap();
    for sql in FILL {
        let mut q = sqlx::query(*sql);
        if sql.contains("$1") {
            q = q.bind(now);
        }
        q.execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fills 100,000 requests; run with --ignored --nocapture"]
async fn pages_stay_fast_with_100k_requests() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("load.db");
    let cfg = Config::from_toml_with_env(
        &format!(
            "[database]\nurl = \"sqlite://{}\"\n[helpdesk]\naddress = \"helpdesk@nhs.example\"\nname = \"Load Test\"\n\
             [queue]\nhours = \"Mon-Fri 08:00-18:00\"\nholidays = [\"2026-12-25\"]\n[queue.targets]\nunknown = \"4h\"\npassword_reset = \"1h\"\n",
            db.display()
        ),
        &[],
    )
    .unwrap();
    let store = Store::open(&cfg.database).await.unwrap();
    let now = postroom::store::now_ms();
    let started = Instant::now();
    fill(&store, now).await;
    println!(
        "filled {REQUESTS} requests in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    staff::add(&store, "bench", StaffRole::Admin, "a long bench password")
        .await
        .unwrap();
    let app = web::router(WebState::new(store.clone(), Arc::new(cfg), Status::new()));
    let member = staff::verify_login(&store, "bench", "a long bench password")
        .await
        .unwrap()
        .unwrap();
    let token = staff::create_session(&store, member.id, 3_600_000, "127.0.0.1")
        .await
        .unwrap();

    let pages = [
        ("queue, first page", "/queue".to_owned()),
        // In order of time left under [queue] targets (about 2,000 waiting, over a year).
        ("queue, page 20", "/queue?after=47007".to_owned()),
        ("search, no filter", "/requests".to_owned()),
        ("search, deep page", "/requests?after=500".to_owned()),
        (
            "search by reference",
            "/requests?reference=HD-054321".to_owned(),
        ),
        (
            "search by mailbox",
            "/requests?mailbox=site7%40nhs.example".to_owned(),
        ),
        (
            "search by account",
            "/requests?account=person42%40nhs.example".to_owned(),
        ),
        (
            "search by mention (name)",
            "/requests?mention=Person+42".to_owned(),
        ),
        (
            "search by mention + outcome",
            "/requests?mention=site7%40nhs.example&outcome=rejected".to_owned(),
        ),
        (
            "search by kind + outcome",
            "/requests?kind=leaver&outcome=rejected".to_owned(),
        ),
        (
            "search, rare outcome",
            "/requests?outcome=awaiting_confirmation".to_owned(),
        ),
        (
            "search by date range",
            "/requests?from=2000-01-01&to=2000-01-31".to_owned(),
        ),
        ("request story", "/requests/HD-054321".to_owned()),
        ("audit, first page", "/audit".to_owned()),
        (
            "audit by actor",
            "/audit?actor=person42%40nhs.example".to_owned(),
        ),
        ("directory", "/directory".to_owned()),
        ("directory, at risk", "/directory?view=at_risk".to_owned()),
        ("outbox, failed", "/outbox?status=failed".to_owned()),
        ("outbox, all", "/outbox".to_owned()),
        ("metrics", "/metrics".to_owned()),
        ("healthz", "/healthz".to_owned()),
        ("audit CSV, all 100k", "/audit.csv".to_owned()),
    ];
    println!("{:<28} {:>10} {:>10}", "page", "median ms", "max ms");
    let mut slow = Vec::new();
    for (what, path) in &pages {
        let runs = if path.contains(".csv") { 2 } else { 7 };
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let req = Request::get(path.as_str())
                .header(header::COOKIE, format!("postroom_session={token}"))
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let res = app.clone().oneshot(req).await.unwrap();
            let status = res.status();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            times.push(t.elapsed());
            assert_eq!(status, StatusCode::OK, "{path}");
            size = body.len();
        }
        times.sort();
        let median = times[times.len() / 2];
        let max = times[times.len() - 1];
        println!(
            "{what:<28} {:>10.1} {:>10.1}   ({size} bytes)",
            median.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
        if median > BUDGET && !path.contains(".csv") {
            slow.push(format!("{what}: {median:?}"));
        }
    }
    assert!(slow.is_empty(), "over {BUDGET:?}: {slow:?}");
}
