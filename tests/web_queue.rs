//! The staff page for a team on shift (issue 17, items 3, 4 and 6): the queue's targets in
//! working time (shown, sorted, exported to `/metrics`, notified once), saved replies
//! (admins keep them, staff use them in the reject and comment forms, placeholders filled
//! and escaped), saved searches (each member's own) and the search by any account, name or
//! mailbox a request mentions.
//!
//! Runs on SQLite and, under `scripts/test`, on PostgreSQL.

use crate::web_support::{AGENT, Web};
use axum::http::StatusCode;
use postroom::store::Backend;

/// Working time is wall time here (every hour of every day), so that the test means the same
/// whenever it runs; the arithmetic of real hours is `working_time`'s unit tests.
const QUEUE: &str = "\n[queue]\nhours = \"Mon-Sun 00:00-24:00\"\nnotify = \"leads@helpdesk.example\"\n[queue.targets]\nunknown = \"1h\"\npassword_reset = \"1h\"\n";

const H: i64 = 3_600_000;

async fn set(w: &Web, reference: &str, kind: &str, hours_ago: i64) {
    let mut c = w.store.read().await.unwrap();
    sqlx::query("UPDATE requests SET kind = $2, created_at = created_at - $3 WHERE reference = $1")
        .bind(reference)
        .bind(kind)
        .bind(hours_ago * H)
        .execute(&mut *c)
        .await
        .unwrap();
}

/// Three held requests: HD-000001 (no target: a leaver, 5 h old), HD-000002 (unknown, 3 h
/// old: 2 h over its 1 h target), HD-000003 (unknown, fresh).
async fn held_three() -> Web {
    let w = Web::with_config(QUEUE).await;
    assert_eq!(w.process_fixture("unknown_kind.eml"), "HD-000001");
    assert_eq!(w.process_fixture("ambiguous_kind.eml"), "HD-000002");
    let third = w.process_text(
        "third.eml",
        "From: Rosehill Care <rosehill.care@nhs.example>\nTo: helpdesk@nhs.example\nSubject: Something odd\nMessage-ID: <third.web-queue@nhs.example>\nDate: Mon, 03 Mar 2025 10:00:00 +0000\nAuthentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example header.s=s1; spf=pass smtp.mailfrom=nhs.example; dmarc=pass header.from=nhs.example\n\nHello, our printer makes a strange noise, can you help?\n\nThanks\n",
    );
    assert_eq!(third["reference"], "HD-000003", "{third}");
    for r in ["HD-000001", "HD-000002", "HD-000003"] {
        assert_eq!(w.outcome(r).await, "needs_review", "{r}");
    }
    set(&w, "HD-000001", "leaver", 5).await;
    set(&w, "HD-000002", "unknown", 3).await;
    set(&w, "HD-000003", "unknown", 0).await;
    w
}

#[tokio::test]
async fn the_queue_is_sorted_by_time_left_and_says_it_in_words() {
    let w = held_three().await;
    let s = w.sign_in().await;
    let page = w.get("/queue", Some(&s)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let at = |r: &str| {
        page.body
            .find(&format!(">{r}</a>"))
            .unwrap_or_else(|| panic!("{r} missing"))
    };
    // Least time left first, no target last: not the oldest-first order.
    assert!(at("HD-000002") < at("HD-000003"), "{}", page.body);
    assert!(at("HD-000003") < at("HD-000001"), "{}", page.body);
    assert!(page.body.contains("<th>Target</th>"));
    assert!(
        page.body
            .contains("class=\"nowrap target target-over\">over target by 2h</td>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("target-ok\">59m left</td>")
            || page.body.contains("target-ok\">1h left</td>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("target-none\">no target</td>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("the least time left under its target comes first")
    );

    let metrics = w.get("/metrics", None).await;
    for line in [
        "postroom_requests_over_target{kind=\"unknown\"} 1",
        "postroom_requests_over_target{kind=\"password_reset\"} 0",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            metrics.body
        );
    }
    assert!(
        !metrics.body.contains("kind=\"leaver\""),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn without_targets_the_queue_is_oldest_first_and_metrics_say_nothing_of_targets() {
    let w = Web::new().await;
    w.process_fixture("unknown_kind.eml");
    let s = w.sign_in().await;
    let page = w.get("/queue", Some(&s)).await;
    assert!(!page.body.contains("<th>Target</th>"), "{}", page.body);
    assert!(
        page.body.contains("the oldest come first") || page.body.contains("the oldest comes first")
    );
    let metrics = w.get("/metrics", None).await;
    assert!(!metrics.body.contains("postroom_requests_over_target"));
}

#[tokio::test]
async fn a_request_over_its_target_is_notified_once_through_the_outbox() {
    let w = held_three().await;
    let outbox = || async {
        w.scalar_i64("SELECT COUNT(*) FROM outbox WHERE to_address = 'leads@helpdesk.example'")
            .await
    };
    assert_eq!(outbox().await, 0);
    let first = postroom::deadlines::notify_overdue(&w.store, &w.cfg)
        .await
        .unwrap();
    assert_eq!(first, vec!["HD-000002".to_owned()]);
    // A second pass (or a second instance) sends nothing more.
    let again = postroom::deadlines::notify_overdue(&w.store, &w.cfg)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(outbox().await, 1);
    let mut c = w.store.read().await.unwrap();
    let (subject, body, request_id): (String, String, Option<i64>) = sqlx::query_as(
        "SELECT subject, body, request_id FROM outbox WHERE to_address = 'leads@helpdesk.example'",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert!(subject.starts_with("[HD-000002] over target"), "{subject}");
    assert!(body.contains("/requests/HD-000002"), "{body}");
    // Not the site's reply: it is not shown or counted as one.
    assert_eq!(request_id, None);
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events e JOIN requests r ON r.id = e.request_id \
         WHERE e.action = 'request.over_target' AND r.reference = 'HD-000002' AND e.subject = 'leads@helpdesk.example'",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    drop(c);
    // Once HD-000003 passes its target too, it alone is notified.
    set(&w, "HD-000003", "unknown", 2).await;
    let later = postroom::deadlines::notify_overdue(&w.store, &w.cfg)
        .await
        .unwrap();
    assert_eq!(later, vec!["HD-000003".to_owned()]);
    assert_eq!(outbox().await, 2);
}

#[tokio::test]
async fn saved_replies_are_kept_by_admins_and_filled_in_the_forms_escaped() {
    let w = Web::new().await;
    assert_eq!(w.process_fixture("unknown_kind.eml"), "HD-000001");
    let admin = w.sign_in().await;
    let agent = w.agent().await;

    // An unknown placeholder is refused, named, and what was typed comes back escaped.
    let bad = w
        .submit(
            "/replies",
            &[
                ("title", "Typo <i>"),
                ("body", "Dear {nmae}, <script>x</script>"),
            ],
            &admin,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(
        bad.body.contains("{nmae} is not a placeholder"),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("&#60;script&#62;x&#60;/script&#62;"),
        "{}",
        bad.body
    );
    assert!(!bad.body.contains("<script>x"), "{}", bad.body);
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM saved_replies").await, 0);

    // Agents neither see nor change them.
    assert_eq!(
        w.get("/replies", Some(&agent)).await.status,
        StatusCode::FORBIDDEN
    );
    let refused = w
        .submit("/replies", &[("title", "Mine"), ("body", "Hello")], &agent)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM saved_replies").await, 0);

    let ok = w
        .submit(
            "/replies",
            &[
                ("title", "Not a request <b>"),
                (
                    "body",
                    "Dear {site},\n{reference} is not something we do <b>here</b>. {{braces}}",
                ),
            ],
            &admin,
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let list = w.get("/replies", Some(&admin)).await;
    assert!(
        list.body.contains("Not a request &#60;b&#62;"),
        "{}",
        list.body
    );
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'saved_reply.added' AND actor = 'staff:alice'")
            .await,
        1
    );

    // Offered on the request page, to an agent too; using one fills the form server-side.
    let page = w.get("/requests/HD-000001", Some(&agent)).await;
    assert!(page.body.contains("name=\"reply\""), "{}", page.body);
    assert!(
        page.body.contains("Not a request &#60;b&#62;</option>"),
        "{}",
        page.body
    );
    for (into, textarea) in [("reject", "reject-message"), ("comment", "comment-text")] {
        let used = w
            .get(
                &format!("/requests/HD-000001?reply=1&into={into}"),
                Some(&agent),
            )
            .await;
        assert_eq!(used.status, StatusCode::OK);
        let start = used.body.find(&format!("id=\"{textarea}\"")).unwrap();
        let area = &used.body[start..];
        let text = &area[area.find('>').unwrap() + 1..area.find("</textarea>").unwrap()];
        assert_eq!(
            text,
            "Dear rosehill.care@nhs.example,\nHD-000001 is not something we do &#60;b&#62;here&#60;/b&#62;. {braces}",
            "{into}"
        );
    }

    // Changed and deleted by an admin, each audited.
    let changed = w
        .submit(
            "/replies/1",
            &[("title", "Not ours"), ("body", "{reference}: not ours")],
            &admin,
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    let gone = w.submit("/replies/1/delete", &[], &admin).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM saved_replies").await, 0);
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action IN ('saved_reply.changed', 'saved_reply.deleted')")
            .await,
        2
    );
    // Without CSRF nothing happens.
    let forged = w
        .post("/replies", &[("title", "x"), ("body", "y")], Some(&admin))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM saved_replies").await, 0);
}

#[tokio::test]
async fn saved_searches_belong_to_their_member() {
    let w = Web::new().await;
    w.process_fixture("unknown_kind.eml");
    let alice = w.sign_in().await;
    let adam = w.agent().await;
    assert_eq!(AGENT, "adam");
    let saved = w
        .submit(
            "/searches",
            &[
                ("name", "Held <now>"),
                ("query", "outcome=needs_review&after=5&evil=1"),
            ],
            &alice,
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    // Only the search's own filters are kept.
    assert_eq!(saved.location(), "/requests?outcome=needs_review");
    let mine = w.get("/requests", Some(&alice)).await;
    assert!(
        mine.body
            .contains("<a href=\"/requests?outcome=needs_review\">Held &#60;now&#62;</a>"),
        "{}",
        mine.body
    );
    let theirs = w.get("/requests", Some(&adam)).await;
    assert!(
        !theirs.body.contains("Held &#60;now&#62;"),
        "{}",
        theirs.body
    );
    // Adam cannot delete Alice's.
    let id = w.scalar_i64("SELECT id FROM saved_searches").await;
    let path = format!("/searches/{id}/delete");
    assert_eq!(
        w.submit(&path, &[], &adam).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM saved_searches").await, 1);
    assert_eq!(
        w.submit(&path, &[], &alice).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM saved_searches").await, 0);
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action IN ('search.saved', 'search.deleted') AND actor = 'staff:alice'")
            .await,
        2
    );
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE actor = 'staff:adam' AND action LIKE 'search.%'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_request_is_found_by_any_account_name_or_mailbox_it_mentions() {
    let w = Web::new().await;
    let zoe = w.process_fixture("new_account_fields.eml");
    let other = w.process_fixture("unknown_kind.eml");
    let s = w.sign_in().await;
    let find = |q: &'static str| {
        let w = &w;
        let s = s.clone();
        async move {
            w.get(&format!("/requests?mention={q}"), Some(&s))
                .await
                .body
        }
    };
    for q in [
        "angstrom",
        "Zo%C3%AB+%C3%85ngstr%C3%B6m",
        "ZOE+ANGSTROM",
        "jane.doe%40nhs.example",
    ] {
        let body = find(q).await;
        assert!(body.contains(&format!(">{zoe}</a>")), "{q}: {body}");
        assert!(!body.contains(&format!(">{other}</a>")), "{q}: {body}");
    }
    // The sender mailbox: both requests came from it.
    let body = find("Rosehill.Care%40nhs.example").await;
    assert!(
        body.contains(&format!(">{zoe}</a>")) && body.contains(&format!(">{other}</a>")),
        "{body}"
    );
    assert!(body.contains("2 requests match."), "{body}");
    let body = find("nobody").await;
    assert!(body.contains("No request matches."), "{body}");
    // With another filter, both apply.
    let body = w
        .get(
            "/requests?mention=rosehill.care%40nhs.example&outcome=needs_review",
            Some(&s),
        )
        .await
        .body;
    let zoe_held = w.outcome(&zoe).await == "needs_review";
    assert_eq!(body.contains(&format!(">{zoe}</a>")), zoe_held, "{body}");
    assert!(body.contains(&format!(">{other}</a>")), "{body}");
}

/// The mention lookup walks its index at 100,000 rows on both backends (EXPLAIN).
#[tokio::test]
async fn the_mention_lookup_uses_its_index_at_scale() {
    let w = Web::new().await;
    w.process_fixture("unknown_kind.eml");
    let mut c = w.store.read().await.unwrap();
    let backend = w.store.backend();
    let fill = match backend {
        Backend::Sqlite => {
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000) \
             INSERT INTO request_mentions (term, request_id) SELECT 'term' || n, 1 FROM g"
        }
        Backend::Postgres => {
            "INSERT INTO request_mentions (term, request_id) SELECT 'term' || n, 1 FROM generate_series(1, 100000) n"
        }
    };
    sqlx::query(fill).execute(&mut *c).await.unwrap();
    sqlx::query("ANALYZE").execute(&mut *c).await.unwrap();
    let lookup = "SELECT mt.request_id FROM request_mentions mt JOIN requests r ON r.id = mt.request_id \
                  WHERE mt.term = 'term500' AND mt.request_id < 9000000 ORDER BY mt.request_id DESC LIMIT 51";
    let plan: Vec<String> = match backend {
        Backend::Sqlite => {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {lookup}")))
                    .fetch_all(&mut *c)
                    .await
                    .unwrap();
            rows.into_iter().map(|r| r.3).collect()
        }
        Backend::Postgres => sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {lookup}")))
            .fetch_all(&mut *c)
            .await
            .unwrap(),
    };
    let plan = plan.join("\n");
    let index = match backend {
        Backend::Sqlite => "sqlite_autoindex_request_mentions_1",
        Backend::Postgres => "request_mentions_pkey",
    };
    assert!(plan.contains(index), "{plan}");
    assert!(
        !plan.contains("SCAN mt") && !plan.contains("Seq Scan on request_mentions"),
        "{plan}"
    );
}

/// Requests recorded before migration 0142 are indexed by the next start (`Store::migrate`).
#[tokio::test]
async fn requests_older_than_the_mentions_are_indexed_at_start() {
    let w = Web::new().await;
    let zoe = w.process_fixture("new_account_fields.eml");
    let mut c = w.store.read().await.unwrap();
    // As a database migrated from before 0142 holds it: no terms, the request pending.
    sqlx::query("DELETE FROM request_mentions")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO request_mentions_pending (request_id) SELECT id FROM requests")
        .execute(&mut *c)
        .await
        .unwrap();
    drop(c);
    let s = w.sign_in().await;
    let before = w.get("/requests?mention=angstrom", Some(&s)).await.body;
    assert!(before.contains("No request matches."), "{before}");
    w.store.migrate().await.unwrap();
    let after = w.get("/requests?mention=angstrom", Some(&s)).await.body;
    assert!(after.contains(&format!(">{zoe}</a>")), "{after}");
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM request_mentions_pending")
            .await,
        0
    );
}
