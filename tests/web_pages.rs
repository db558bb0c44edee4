//! The staff web page, route by route, driven in-process through the router (as a browser
//! would: cookies, CSRF tokens read from the page, forms). Data comes from fixture emails run
//! through the real pipeline.

use crate::web_support::{ALICE_PASSWORD, Session, Web, assert_security_headers};
use axum::http::StatusCode;
use postroom::store::journal;
use postroom::store::outbox;

/// Every page behind the session, with a path that exists once `unknown_kind.eml` (HD-000001)
/// was processed.
const STAFF_PAGES: &[&str] = &[
    "/",
    "/queue",
    "/requests",
    "/requests/HD-000001",
    "/messages/1",
    "/directory",
    "/directory?view=at_risk",
    "/audit",
    "/audit.csv",
    "/outbox",
];

#[tokio::test]
async fn public_routes_answer_without_a_session() {
    let w = Web::new().await;
    let login = w.get("/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login
            .body
            .contains("<form method=\"post\" action=\"/login\"")
    );
    assert_security_headers(&login);
    let cookie = login.set_cookies().join("\n");
    assert!(cookie.contains("postroom_login="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let health = w.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let v: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["database"]["ok"], true);
    assert_eq!(v["imap"]["state"], "not_watched");

    let metrics = w.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for line in [
        "postroom_database_up 1",
        "postroom_review_queue_size 0",
        "postroom_messages{outcome=\"applied\"} 0",
        "postroom_outbox_replies{status=\"pending\"} 0",
        "postroom_imap_connected 0",
        "postroom_processing_seconds_count 0",
        "# TYPE postroom_processing_seconds histogram",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            metrics.body
        );
    }

    let css = w.get("/static/style.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert!(css.body.contains(".badge"));
    assert_eq!(
        w.get("/static/favicon.svg", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        w.get("/static/../Cargo.toml", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn staff_pages_send_strangers_to_sign_in_and_their_forms_change_nothing() {
    let w = Web::new().await;
    let reference = w.process_fixture("unknown_kind.eml");
    assert_eq!(reference, "HD-000001");
    let outbox_before = w.scalar_i64("SELECT COUNT(*) FROM outbox").await;
    let audit_before = w.scalar_i64("SELECT COUNT(*) FROM audit_events").await;
    for path in STAFF_PAGES {
        let a = w.get(path, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            a.location().starts_with("/login"),
            "{path} → {}",
            a.location()
        );
        assert_security_headers(&a);
    }
    // The page asked for is where signing in leads back to.
    let a = w.get("/requests/HD-000001", None).await;
    assert_eq!(a.location(), "/login?next=%2Frequests%2FHD-000001");
    // A forged or stale cookie is no session.
    let fake = Session {
        cookie: "not-a-session".into(),
        csrf: "x".into(),
    };
    assert_eq!(
        w.get("/queue", Some(&fake)).await.status,
        StatusCode::SEE_OTHER
    );

    for (path, form) in [
        (
            "/requests/HD-000001/apply",
            vec![("kind", "unlock"), ("account", "kim.lee@nhs.example")],
        ),
        ("/requests/HD-000001/reject", vec![("message", "no")]),
        ("/requests/HD-000001/comment", vec![("text", "hello")]),
        ("/outbox/1/retry", vec![]),
        ("/logout", vec![]),
    ] {
        let a = w.post(path, &form, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.location(), "/login", "{path}");
    }
    assert_eq!(w.outcome("HD-000001").await, "needs_review");
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM comments").await, 0);
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM outbox").await,
        outbox_before
    );
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM audit_events").await,
        audit_before
    );
}

#[tokio::test]
async fn every_staff_page_renders_for_a_signed_in_member() {
    let w = Web::new().await;
    w.process_fixture("unknown_kind.eml");
    w.process_fixture("password_reset_fields.eml");
    w.process_fixture("leaves_one_member.eml");
    w.process_fixture("unlock.eml");
    let s = w.sign_in().await;
    for path in STAFF_PAGES {
        let a = w.get(path, Some(&s)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert_security_headers(&a);
        assert_eq!(a.headers["cache-control"], "no-store", "{path}");
        if *path != "/audit.csv" {
            assert!(a.body.contains("alice"), "{path} names who is signed in");
            assert!(a.body.contains("action=\"/logout\""), "{path} can sign out");
        }
    }

    let queue = w.get("/queue", Some(&s)).await;
    assert!(queue.body.contains("HD-000001"), "{}", queue.body);
    assert!(queue.body.contains("unknown_kind"));
    assert!(
        !queue.body.contains("HD-000002"),
        "applied requests are not queued"
    );

    let detail = w.get("/requests/HD-000001", Some(&s)).await.body;
    for expected in [
        "Subject",
        "Question",
        "Hello, can you help?",
        "We could not tell what is being asked for.",
        "jane.doe@nhs.example",
        "owner",
        "Apply as",
        "Reject with a message",
        "action=\"/requests/HD-000001/apply\"",
    ] {
        assert!(detail.contains(expected), "missing {expected:?}");
    }

    // A decided request tells its story: no forms, the reply with its temporary password hidden.
    let done = w.get("/requests/HD-000002", Some(&s)).await.body;
    assert!(done.contains("Applied"));
    assert!(!done.contains("Apply as"));
    assert!(done.contains("[temporary password hidden]"), "{done}");
    assert!(done.contains("password.reset"), "its audit events");

    let msg = w.get("/messages/1", Some(&s)).await.body;
    assert!(msg.contains("href=\"/requests/HD-000001\""));

    let dir = w.get("/directory?view=at_risk", Some(&s)).await.body;
    assert!(
        dir.contains("oakview.gp@nhs.example"),
        "one member left: at risk"
    );
    assert!(!dir.contains(">rosehill.care@nhs.example<"), "{dir}");
    let dir = w.get("/directory", Some(&s)).await.body;
    assert!(
        dir.contains("kim.lee@nhs.example"),
        "unlocked: a recent status change"
    );
    assert!(dir.contains("Rosehill Care") && dir.contains("Oakview GP"));

    for (path, status) in [
        ("/requests/HD-999999", StatusCode::NOT_FOUND),
        (
            "/requests/HD-1%0D%0ASet-Cookie:%20x=1",
            StatusCode::NOT_FOUND,
        ),
        ("/messages/999", StatusCode::NOT_FOUND),
        ("/messages/abc", StatusCode::NOT_FOUND),
        ("/no-such-page", StatusCode::NOT_FOUND),
    ] {
        let a = w.get(path, Some(&s)).await;
        assert_eq!(a.status, status, "{path}");
        assert!(a.headers.get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it() {
    let w = Web::new().await;
    let res = w.try_sign_in("Alice", ALICE_PASSWORD, "127.0.0.1").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/");
    let set = res
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("postroom_session="))
        .unwrap();
    assert!(
        set.ends_with("; HttpOnly; SameSite=Strict; Path=/"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag");
    let token = res.cookie("postroom_session").unwrap();
    let stored: String = {
        let mut c = w.store.read().await.unwrap();
        sqlx::query_scalar("SELECT token_sha256 FROM staff_sessions")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    };
    assert_ne!(stored, token, "only a digest of the token is stored");
    assert_eq!(stored.len(), 64);

    let s = w.sign_in().await;
    // Signed in: the sign-in page sends you on.
    assert_eq!(
        w.get("/login?next=/audit", Some(&s)).await.location(),
        "/audit"
    );
    let out = w.submit("/logout", &[], &s).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert!(
        out.set_cookies()
            .iter()
            .any(|c| c.starts_with("postroom_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(
        w.get("/queue", Some(&s)).await.status,
        StatusCode::SEE_OTHER,
        "the session is over"
    );
    let audit = w.instance.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "staff.signed_in" && e["actor"] == "staff:alice")
    );
    assert!(audit.iter().any(|e| e["action"] == "staff.signed_out"));

    // Never sent on to another site.
    let res = w
        .try_sign_in(crate::web_support::ALICE, ALICE_PASSWORD, "127.0.0.1")
        .await;
    assert_eq!(res.location(), "/");
}

#[tokio::test]
async fn behind_a_tls_proxy_the_cookie_is_secure() {
    let w = Web::with_config("[web]\nbehind_tls_proxy = true\n").await;
    let form = w.get("/login", None).await;
    let token = form.cookie("postroom_login").unwrap();
    let body = serde_urlencoded::to_string([
        ("_csrf", token.as_str()),
        ("name", "alice"),
        ("password", ALICE_PASSWORD),
    ])
    .unwrap();
    let req = axum::http::Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("postroom_login={token}"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
        .body(axum::body::Body::from(body))
        .unwrap();
    // From the proxy on this host (only a trusted proxy's forwarded headers count).
    let mut req = req;
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let res = w.send(req).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(
        res.set_cookies()
            .iter()
            .any(|c| c.starts_with("postroom_session=") && c.ends_with("; Secure")),
        "{:?}",
        res.set_cookies()
    );
    // The address the proxy saw is the one recorded.
    let ip: String = {
        let mut c = w.store.read().await.unwrap();
        sqlx::query_scalar("SELECT ip FROM staff_sessions")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    };
    assert_eq!(ip, "198.51.100.7");
}

#[tokio::test]
async fn sign_in_is_throttled_after_five_failures_per_name_and_address() {
    let w = Web::new().await;
    for i in 0..5 {
        let res = w.try_sign_in("alice", "wrong password", "192.0.2.1").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "try {i}");
        assert!(res.body.contains("do not match"));
        assert!(res.cookie("postroom_session").is_none());
    }
    // Now even the right password is refused from there, with a clear message…
    let res = w.try_sign_in("alice", ALICE_PASSWORD, "192.0.2.1").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        res.body.contains("Too many failed sign-ins"),
        "{}",
        res.body
    );
    assert!(res.cookie("postroom_session").is_none());
    // … while the same person elsewhere is not locked out.
    let res = w.try_sign_in("alice", ALICE_PASSWORD, "192.0.2.2").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);

    // An unknown name fails the same way as a wrong password.
    let res = w.try_sign_in("mallory", "whatever", "192.0.2.3").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // The sign-in form's own CSRF token is checked.
    let req = axum::http::Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!(
            "name=alice&password={ALICE_PASSWORD}&_csrf=x"
        )))
        .unwrap();
    let res = w.send(req).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.cookie("postroom_session").is_none());
}

#[tokio::test]
async fn a_post_without_the_right_csrf_token_is_refused_and_changes_nothing() {
    let w = Web::new().await;
    let held = w.process_fixture("unknown_kind.eml");
    w.process_fixture("password_reset_fields.eml");
    {
        let mut c = w.store.read().await.unwrap();
        outbox::mark_failed(&mut c, 1, "550 5.1.1 mailbox unavailable")
            .await
            .unwrap();
    }
    let s = w.sign_in().await;
    let other = w.sign_in().await;
    assert_ne!(s.csrf, other.csrf, "tokens are per session");
    let outbox_before = w.scalar_i64("SELECT COUNT(*) FROM outbox").await;
    let apply = [
        ("kind", "password_reset"),
        ("account", "tom.smith@nhs.example"),
        ("requested_by", "jane.doe@nhs.example"),
    ];
    let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/requests/{held}/apply"), apply.to_vec()),
        (format!("/requests/{held}/reject"), vec![("message", "No.")]),
        (
            format!("/requests/{held}/comment"),
            vec![("text", "A note")],
        ),
        ("/outbox/1/retry".to_owned(), vec![]),
        ("/logout".to_owned(), vec![]),
    ];
    for (path, form) in &cases {
        // Missing.
        let a = w.post(path, form, Some(&s)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path} without a token");
        assert!(a.body.contains("nothing was done"), "{}", a.body);
        // Wrong, and another session's.
        for token in ["0000", other.csrf.as_str(), ""] {
            let mut f = vec![("_csrf", token)];
            f.extend_from_slice(form);
            let a = w.post(path, &f, Some(&s)).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{path} with {token:?}");
        }
    }
    assert_eq!(w.outcome(&held).await, "needs_review");
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM comments").await, 0);
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM outbox").await,
        outbox_before
    );
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM outbox WHERE status = 'failed'")
            .await,
        1
    );
    assert_eq!(
        w.get("/queue", Some(&s)).await.status,
        StatusCode::OK,
        "still signed in"
    );
    // And with the token, it works.
    let a = w
        .submit(
            &format!("/requests/{held}/comment"),
            &[("text", "A note")],
            &s,
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM comments").await, 1);
}

#[tokio::test]
async fn applying_a_held_request_answers_the_site_through_the_outbox() {
    let w = Web::new().await;
    let held = w.process_fixture("unknown_kind.eml");
    let s = w.sign_in().await;

    // The rules still hold: another organisation's account is refused, with the sentence.
    let refused = w
        .submit(
            &format!("/requests/{held}/apply"),
            &[
                ("kind", "password_reset"),
                ("account", "raj.patel@nhs.example"),
                ("requested_by", "jane.doe@nhs.example"),
            ],
            &s,
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("belongs to another organisation"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"raj.patel@nhs.example\""),
        "what was typed stays"
    );
    assert_eq!(w.outcome(&held).await, "needs_review");
    // Choosing no kind is explained too.
    let no_kind = w
        .submit(&format!("/requests/{held}/apply"), &[("kind", "")], &s)
        .await;
    assert_eq!(no_kind.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_kind.body.contains("choose what the request is for"));

    let done = w
        .submit(
            &format!("/requests/{held}/apply"),
            &[
                ("kind", "password_reset"),
                ("account", "Tom.Smith@nhs.example"),
                ("requested_by", "jane.doe@nhs.example"),
                ("role", ""),
            ],
            &s,
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), format!("/requests/{held}?done=decided"));
    assert_eq!(w.outcome(&held).await, "applied");
    let page = w.get(done.location(), Some(&s)).await.body;
    assert!(
        page.contains("Decision recorded: the request is now applied. The reply to rosehill.care@nhs.example is in the outbox (pending)."),
        "{page}"
    );
    assert!(page.contains("[temporary password hidden]"));
    let outbox_page = w.get("/outbox?status=pending", Some(&s)).await.body;
    assert!(outbox_page.contains(&held) && outbox_page.contains("rosehill.care@nhs.example"));
    assert!(
        !w.get("/queue", Some(&s)).await.body.contains(&held),
        "left the queue"
    );

    // Decided once; a second post says so.
    let again = w
        .submit(
            &format!("/requests/{held}/apply"),
            &[("kind", "unlock")],
            &s,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again
            .body
            .contains("only requests waiting for review can be decided")
    );

    let audit = w.instance.audit();
    let reset = audit
        .iter()
        .find(|e| e["action"] == "password.reset")
        .unwrap();
    assert_eq!(reset["actor"], "staff:alice");
}

#[tokio::test]
async fn reject_with_a_message_and_comment() {
    let w = Web::new().await;
    let held = w.process_fixture("ambiguous_kind.eml");
    let s = w.sign_in().await;
    let empty = w
        .submit(
            &format!("/requests/{held}/reject"),
            &[("message", "  ")],
            &s,
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty
            .body
            .contains("write the message the site will receive")
    );

    let c = w
        .submit(
            &format!("/requests/{held}/comment"),
            &[("text", "Phoned the site.")],
            &s,
        )
        .await;
    assert_eq!(c.status, StatusCode::SEE_OTHER);
    let page = w.get(c.location(), Some(&s)).await.body;
    assert!(page.contains("Your comment is saved.") && page.contains("Phoned the site."));

    let r = w
        .submit(
            &format!("/requests/{held}/reject"),
            &[("message", "Please send one request per email.")],
            &s,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(w.outcome(&held).await, "rejected");
    let page = w.get(r.location(), Some(&s)).await.body;
    assert!(
        page.contains(
            "now rejected. The reply to rosehill.care@nhs.example is in the outbox (pending)."
        ),
        "{page}"
    );
    assert!(page.contains("Please send one request per email."));
    assert!(page.contains("Rejected by a person on the helpdesk"));
}

/// A refused request's page shows the very sentence the site was told, with its details (the
/// reason is stored whole, migration 0110); a request stored before that, with its reason's
/// code alone, shows what the code means, marked as a summary.
#[tokio::test]
async fn a_refusal_shows_the_sentence_the_site_was_told() {
    let w = Web::new().await;
    let reference = w.process_fixture("last_owner_demote.eml");
    assert_eq!(w.outcome(&reference).await, "rejected");
    let s = w.sign_in().await;
    let path = format!("/requests/{reference}");
    let page = w.get(&path, Some(&s)).await.body;
    assert!(
        page.contains(
            "<p class=\"reason-text\">jane.doe@nhs.example is the last owner of rosehill.care@nhs.example; \
             a mailbox must always keep an owner. Make another member an owner first (a role change), \
             then send this request again.</p>"
        ),
        "{page}"
    );
    assert!(!page.contains("A summary for staff"), "{page}");

    // As a request recorded before migration 0110 is stored: the code alone.
    sqlx::query("UPDATE requests SET reason_json = NULL WHERE reference = $1")
        .bind(&reference)
        .execute(w.store.pool())
        .await
        .unwrap();
    let page = w.get(&path, Some(&s)).await.body;
    let summary = postroom::reason::Reason::describe_code("last_owner").unwrap();
    assert!(
        page.contains(&format!("<p class=\"reason-text\">{summary}</p>")),
        "{page}"
    );
    assert!(page.contains("A summary for staff"), "{page}");
}

#[tokio::test]
async fn hostile_email_content_comes_out_escaped() {
    let w = Web::new().await;
    let hostile = "Return-Path: <rosehill.care@nhs.example>
Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example header.s=s1; spf=pass smtp.mailfrom=nhs.example; dmarc=pass header.from=nhs.example
From: \"<script>alert(1)</script>\" <rosehill.care@nhs.example>
To: Helpdesk <helpdesk@nhs.example>
Subject: <script>alert(1)</script> =?utf-8?q?hi=0D=0ABcc:_victim@evil.example=0D=0A=0D=0A<b>x</b>?=
Date: Mon, 03 Mar 2025 12:16:00 +0000
Message-ID: <hostile-1@nhs.example>
X-Evil: \"><img src=x onerror=alert(2)>
MIME-Version: 1.0
Content-Type: text/plain; charset=\"utf-8\"

Hello <script>alert(1)</script>
\"><img src=x onerror=alert(3)></pre><iframe src=//evil.example>
Requested by: jane.doe@nhs.example
";
    let v = w.process_text("hostile.eml", hostile);
    let reference = v["reference"].as_str().unwrap().to_owned();
    assert_eq!(v["outcome"], "needs_review", "{v}");
    let s = w.sign_in().await;
    for path in [
        format!("/requests/{reference}"),
        "/queue".to_owned(),
        "/requests".to_owned(),
        "/messages/1".to_owned(),
        "/audit".to_owned(),
    ] {
        let a = w.get(&path, Some(&s)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        // The scripts a page may carry are its own: the request page's presence notice, and
        // the keys on every page (each once).
        let body = a
            .body
            .replacen("<script src=\"/static/presence.js\" defer></script>", "", 1)
            .replacen("<script src=\"/static/keys.js\" defer></script>", "", 1);
        for raw in ["<script", "<img", "<iframe", "<b>x"] {
            assert!(!body.contains(raw), "{path} carries raw {raw:?}");
        }
        // Nothing from the email reaches a response header.
        for (name, value) in &a.headers {
            let value = value.to_str().unwrap_or("");
            assert!(
                !value.contains("evil") && !value.contains("victim"),
                "{path}: {name}: {value}"
            );
        }
        assert!(a.headers.get("bcc").is_none());
    }
    let page = w
        .get(&format!("/requests/{reference}"), Some(&s))
        .await
        .body;
    // askama escapes as numeric references.
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "shown as text"
    );
    assert!(page.contains("&#60;img src=x onerror=alert(3)&#62;"));
    assert!(
        page.contains("&#34;&#62;&#60;img src=x onerror=alert(2)&#62;"),
        "headers too"
    );
    assert!(
        page.contains("Bcc:"),
        "the decoded subject is shown, as text"
    );
}

#[tokio::test]
async fn requests_search_filters_and_pages() {
    let w = Web::new().await;
    for f in [
        "unknown_kind.eml",
        "password_reset_fields.eml",
        "leaves_one_member.eml",
        "other_org_target.eml",
    ] {
        w.process_fixture(f);
    }
    let s = w.sign_in().await;
    let find = |q: &'static str| {
        let w = &w;
        let s = &s;
        async move { w.get(&format!("/requests?{q}"), Some(s)).await }
    };
    let all = find("").await;
    assert!(all.body.contains("4 requests match."), "{}", all.body);
    let body = find("mailbox=OAKVIEW.GP%40nhs.example").await.body;
    assert!(
        body.contains("1 request matches.") && body.contains("HD-000003"),
        "{body}"
    );
    let body = find("account=raj.patel%40nhs.example").await.body;
    assert!(
        body.contains("2 requests match."),
        "requester or target: {body}"
    );
    let body = find("kind=password_reset&outcome=applied").await.body;
    assert!(body.contains("1 request matches.") && body.contains("HD-000002"));
    let body = find("reference=hd-000004").await.body;
    assert!(body.contains("1 request matches.") && body.contains("HD-000004"));
    let body = find("from=2000-01-01&to=2000-12-31").await.body;
    assert!(body.contains("No request matches."));
    let bad = find("from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("is not a date"));

    // Sixty more, to page through.
    {
        let mut tx = w.store.begin().await.unwrap();
        for i in 0..60 {
            let sha = format!("bulk-{i}");
            let mid = journal::insert_message_if_new(
                &mut tx,
                &journal::NewMessage {
                    message_id: None,
                    sha256: &sha,
                    raw: b"Subject: bulk\r\n\r\nx",
                    from_address: Some("rosehill.care@nhs.example"),
                    subject: "bulk",
                    source: "test",
                },
            )
            .await
            .unwrap()
            .expect("a new message");
            journal::insert_request(
                &mut tx,
                &journal::NewRequest {
                    message_id: mid,
                    kind: "unknown",
                    outcome: "needs_review",
                    reason: Some(&postroom::reason::Reason::UnknownKind),
                    mailbox: Some("rosehill.care@nhs.example"),
                    requester: None,
                    target: None,
                    fields_json: "{}",
                    from_address: Some("rosehill.care@nhs.example"),
                },
                "HD",
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let first = find("outcome=needs_review").await.body;
    assert!(first.contains("61 requests match."));
    assert!(
        first.contains("HD-000064") && !first.contains("HD-000014\""),
        "newest first"
    );
    let next = first
        .split("href=\"")
        .filter_map(|p| p.split('"').next())
        .find(|h| h.contains("after="))
        .expect("a next link")
        .replace("&#38;", "&");
    assert!(
        next.contains("outcome=needs_review"),
        "filters kept: {next}"
    );
    let second = w.get(&next, Some(&s)).await.body;
    assert!(
        second.contains("HD-000014")
            && second.contains("HD-000001")
            && !second.contains("HD-000064"),
        "{next}\n{second}"
    );
    assert!(second.contains("before="), "a way back");

    // The queue pages too, oldest first.
    let q1 = w.get("/queue", Some(&s)).await.body;
    assert!(q1.contains("HD-000001") && !q1.contains("HD-000064"));
    assert!(q1.contains("61 requests wait"));
}

#[tokio::test]
async fn audit_filters_and_exports_csv_with_formulas_defused() {
    let w = Web::new().await;
    let held = w.process_fixture("unknown_kind.eml");
    let s = w.sign_in().await;
    w.submit(
        &format!("/requests/{held}/comment"),
        &[("text", "=HYPERLINK(\"http://evil.example\")")],
        &s,
    )
    .await;
    w.submit(
        &format!("/requests/{held}/apply"),
        &[
            ("kind", "unlock"),
            ("account", "kim.lee@nhs.example"),
            ("requested_by", "jane.doe@nhs.example"),
        ],
        &s,
    )
    .await;
    assert_eq!(w.outcome(&held).await, "applied");

    let page = w.get("/audit?actor=staff%3Aalice", Some(&s)).await.body;
    assert!(
        page.contains("request.comment") && page.contains("account.unlocked"),
        "{page}"
    );
    assert!(!page.contains("<td>import</td>"), "only alice's events");
    assert!(
        page.contains(&format!("href=\"/requests/{held}\"")),
        "entries link to their request"
    );
    assert!(page.contains("href=\"/audit.csv?actor=staff%3Aalice\""));

    let csv = w
        .get(
            "/audit.csv?actor=staff%3Aalice&action=request.comment",
            Some(&s),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let mut rows = csv::Reader::from_reader(csv.body.as_bytes());
    assert_eq!(
        rows.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "id",
            "at",
            "actor",
            "on_behalf_of",
            "action",
            "subject",
            "reference",
            "message_id",
            "detail"
        ]
    );
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{}", csv.body);
    assert_eq!(&rows[0][2], "staff:alice");
    assert_eq!(&rows[0][6], held.as_str());
    assert!(rows[0][8].contains("HYPERLINK"));

    // A cell that starts like a formula gets a quote (a requester is whatever From: said).
    let v = w.process_text(
        "formula.eml",
        "Return-Path: <x@nhs.example>
Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example header.s=s1; spf=pass smtp.mailfrom=nhs.example; dmarc=pass header.from=nhs.example
From: \"=cmd|' /C calc'!A0\" <=cmd@nhs.example>
To: Helpdesk <helpdesk@nhs.example>
Subject: Password reset
Date: Mon, 03 Mar 2025 12:16:00 +0000
Message-ID: <formula@nhs.example>
Content-Type: text/plain

Account: tom.smith@nhs.example
",
    );
    assert!(v["reference"].is_string(), "{v}");
    let all = w.get("/audit.csv", Some(&s)).await.body;
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(all.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    for r in &rows {
        for cell in r.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "formula cell {cell:?} in {r:?}"
            );
        }
    }
    assert!(
        rows.iter().any(|r| r.iter().any(|c| c.starts_with("'="))),
        "the hostile actor was exported, defused: {all}"
    );
    assert!(
        rows.iter().any(|r| &r[4] == "audit.exported"),
        "exports are audited"
    );
}

#[tokio::test]
async fn a_failed_reply_can_be_retried() {
    let w = Web::new().await;
    w.process_fixture("password_reset_fields.eml");
    {
        let mut c = w.store.read().await.unwrap();
        outbox::mark_failed(
            &mut c,
            1,
            "550 5.1.1 <rosehill.care@nhs.example>: Recipient address rejected",
        )
        .await
        .unwrap();
    }
    let s = w.sign_in().await;
    let failed = w.get("/outbox?status=failed", Some(&s)).await.body;
    assert!(failed.contains("Failed (1)"));
    assert!(
        failed
            .contains("550 5.1.1 &#60;rosehill.care@nhs.example&#62;: Recipient address rejected"),
        "{failed}"
    );
    assert!(failed.contains("action=\"/outbox/1/retry\""));
    let r = w.submit("/outbox/1/retry", &[], &s).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            .await,
        1
    );
    let page = w.get(r.location(), Some(&s)).await.body;
    assert!(page.contains("waiting to be sent again") && page.contains("Waiting (1)"));
    // Twice: nothing more to do, and it says so.
    let again = w.submit("/outbox/1/retry", &[], &s).await;
    assert!(again.location().contains("not_failed"));
    assert_eq!(
        w.submit("/outbox/99/retry", &[], &s).await.status,
        StatusCode::NOT_FOUND
    );
    let audit = w.instance.audit();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e["action"] == "outbox.retry")
            .count(),
        1
    );
}

#[tokio::test]
async fn health_and_metrics_follow_the_daemon_status() {
    let w = Web::new().await;
    w.process_fixture("unknown_kind.eml");
    w.process_fixture("password_reset_fields.eml");
    w.status.imap_connecting();
    w.status.imap_failed("connection refused");
    let h = w.get("/healthz", None).await;
    assert_eq!(
        h.status,
        StatusCode::OK,
        "within the grace period: {}",
        h.body
    );
    let v: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(v["imap"]["state"], "disconnected");
    assert_eq!(v["imap"]["last_error"], "connection refused");
    assert_eq!(
        v["outbox"]["pending"], 2,
        "the acknowledgement and the answer"
    );

    w.status.imap_connected();
    w.status
        .message_processed(std::time::Duration::from_millis(30));
    w.status.token_failure();
    let m = w.get("/metrics", None).await.body;
    for line in [
        "postroom_imap_connected 1",
        "postroom_imap_watched 1",
        "postroom_review_queue_size 1",
        "postroom_messages{outcome=\"needs_review\"} 1",
        "postroom_messages{outcome=\"applied\"} 1",
        "postroom_outbox_replies{status=\"pending\"} 2",
        "postroom_processing_seconds_bucket{le=\"0.025\"} 0",
        "postroom_processing_seconds_bucket{le=\"0.05\"} 1",
        "postroom_processing_seconds_bucket{le=\"+Inf\"} 1",
        "postroom_processing_seconds_count 1",
        "postroom_token_failures_total 1",
    ] {
        assert!(m.lines().any(|l| l == line), "missing `{line}`:\n{m}");
    }

    // A database that does not answer: unhealthy, and the scrape says so.
    w.store.close().await;
    let h = w.get("/healthz", None).await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(v["database"]["ok"], false);
    let m = w.get("/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.body.contains("postroom_database_up 0"));
}

#[tokio::test]
async fn staff_accounts_are_validated_and_disabling_ends_sessions() {
    use postroom::store::staff::{self, StaffError, StaffRole};
    let w = Web::new().await;
    assert!(matches!(
        staff::add(&w.store, "alice", StaffRole::Admin, "another long password").await,
        Err(StaffError::Exists(_))
    ));
    assert!(matches!(
        staff::add(&w.store, "bob", StaffRole::Admin, "short").await,
        Err(StaffError::Invalid(_))
    ));
    assert!(matches!(
        staff::add(
            &w.store,
            "bob smith",
            StaffRole::Admin,
            "a long enough password"
        )
        .await,
        Err(StaffError::Invalid(_))
    ));
    let bob = staff::add(&w.store, "Bob", StaffRole::Admin, "a long enough password")
        .await
        .unwrap();
    assert_eq!((bob.name.as_str(), bob.role), ("bob", StaffRole::Admin));
    assert_eq!("admin".parse::<StaffRole>(), Ok(StaffRole::Admin));

    let s = w.sign_in_as("bob", "a long enough password").await;
    assert!(w.get("/queue", Some(&s)).await.body.contains("admin"));
    staff::set_disabled(&w.store, "bob", true).await.unwrap();
    assert_eq!(
        w.get("/queue", Some(&s)).await.status,
        StatusCode::SEE_OTHER
    );
    let res = w
        .try_sign_in("bob", "a long enough password", "127.0.0.1")
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    staff::set_disabled(&w.store, "bob", false).await.unwrap();
    staff::set_password(&w.store, "bob", "a brand new password")
        .await
        .unwrap();
    let s = w.sign_in_as("bob", "a brand new password").await;
    assert_eq!(w.get("/queue", Some(&s)).await.status, StatusCode::OK);
    let names: Vec<String> = staff::list(&w.store)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(
        w.instance
            .audit()
            .iter()
            .any(|e| e["action"] == "staff.added" && e["subject"] == "staff:bob")
    );
}

/// Issue 12: a request held because a name matched two accounts shows what was understood
/// (the name, the candidates) and its *apply as* form starts from it: the kind chosen, the
/// name as written in the account box, and the candidates and the mailbox's members offered.
#[tokio::test]
async fn a_held_name_prefills_the_apply_form_with_its_candidates() {
    let w = Web::new().await;
    let more = w.instance.dir.path().join("more.csv");
    std::fs::write(
        &more,
        "organisation,mailbox,account,name,role,status\n\
         Rosehill Care,,thomas.smith@nhs.example,Tom Smith,,active\n",
    )
    .unwrap();
    w.instance
        .ok(&["directory", "import", more.to_str().unwrap()]);
    let v = w.process_text(
        "ambiguous-name.eml",
        "Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example; dmarc=pass header.from=nhs.example\n\
         From: Rosehill Care <rosehill.care@nhs.example>\n\
         To: helpdesk@nhs.example\n\
         Subject: Password reset\n\
         Message-ID: <ambiguous-name.web@nhs.example>\n\
         Content-Type: text/plain; charset=utf-8\n\n\
         Please reset the password.\n\nAccount: Tom Smith\nRequested by: jane.doe@nhs.example\n",
    );
    assert_eq!(v["reason"], "ambiguous_name", "{v}");
    let reference = v["reference"].as_str().unwrap();
    let s = w.sign_in().await;
    let page = w.get(&format!("/requests/{reference}"), Some(&s)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("People named"), "{body}");
    assert!(
        body.contains(
            "several accounts have that name (thomas.smith@nhs.example, tom.smith@nhs.example)"
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"<option value="password_reset" selected>"#),
        "{body}"
    );
    assert!(body.contains(r#"value="tom smith""#), "{body}");
    assert!(body.contains(r#"list="c-account""#), "{body}");
    for candidate in [
        "thomas.smith@nhs.example",
        "tom.smith@nhs.example",
        "jane.doe@nhs.example",
    ] {
        assert!(
            body.contains(&format!(r#"<option value="{candidate}">"#)),
            "{candidate}: {body}"
        );
    }
}

/// Issue 13: after a staff decision the page said which reply went out by taking the latest
/// one, so a decision whose answer the daily cap suppressed pointed at the earlier "Received"
/// acknowledgement. It now names the decision's own reply, or says there was none.
#[tokio::test]
async fn the_decision_notice_names_the_decisions_own_reply_or_none() {
    let w = Web::with_config("[limits]\nmax_replies_per_mailbox_per_day = 1\n").await;
    // Held and acknowledged: the site's one answer for today.
    let held = w.process_fixture("unknown_kind.eml");
    let s = w.sign_in().await;
    let r = w
        .submit(
            &format!("/requests/{held}/reject"),
            &[("message", "Please say what you need.")],
            &s,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = w.get(r.location(), Some(&s)).await.body;
    assert!(
        page.contains("No reply was queued for this decision"),
        "{page}"
    );
    assert!(
        !page.contains("The reply to rosehill.care@nhs.example is in the outbox"),
        "{page}"
    );
}

/// Continuity on the directory page (issue 16): the mailboxes the last pass found at risk, why,
/// since when and how many reminders each had; a disabled account's scheduled deletion.
#[tokio::test]
async fn the_directory_page_shows_continuity_reminders_and_scheduled_deletions() {
    let w = Web::new().await;
    let more = w.instance.dir.path().join("more.csv");
    std::fs::write(
        &more,
        "organisation,mailbox,account,name,role,status\n\
         Oakview GP,oakview.gp@nhs.example,li.wong@nhs.example,Li Wong,member,disabled\n",
    )
    .unwrap();
    w.instance
        .ok(&["directory", "import", more.to_str().unwrap()]);
    let s = w.sign_in().await;
    let before = w.get("/directory", Some(&s)).await.body;
    assert!(before.contains("No mailbox is being reminded"), "{before}");

    let pass: serde_json::Value =
        serde_json::from_str(w.instance.ok(&["continuity", "remind"]).trim()).unwrap();
    assert!(
        pass["reminded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "oakview.gp@nhs.example"),
        "{pass}"
    );
    let page = w.get("/directory", Some(&s)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    let at = body.find("Continuity reminders").unwrap();
    let section = &body[at..body[at..].find("</section>").map_or(body.len(), |e| at + e)];
    assert!(section.contains("oakview.gp@nhs.example"), "{section}");
    assert!(section.contains("too few active members"), "{section}");
    assert!(
        section.contains("<td class=\"num\">1</td>"),
        "one reminder: {section}"
    );
    assert!(!section.contains("rosehill.care@nhs.example"), "{section}");
    assert!(
        body.contains("scheduled for deletion on"),
        "Li Wong was disabled: {body}"
    );
}

/// The forensic report on the page (issue 16): a mailbox's requests with their evidence, what
/// changed and what was replied, the chain's verdict on top; the CSV and JSON downloads, each
/// recorded in the audit trail; a bad period is a clear 400.
#[tokio::test]
async fn the_forensic_report_page_and_its_downloads() {
    let w = Web::new().await;
    let reference = w.process_fixture("password_reset_fields.eml");
    let s = w.sign_in().await;
    let page = w
        .get(
            "/audit/report?mailbox=rosehill.care%40nhs.example",
            Some(&s),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("Audit trail: audit chain intact"), "{body}");
    assert!(
        body.contains(&format!("href=\"/requests/{reference}\"")),
        "{body}"
    );
    assert!(
        body.contains("password.reset") && body.contains("dkim=pass"),
        "{body}"
    );
    assert!(
        body.contains("href=\"/audit/report.csv?mailbox=rosehill.care%40nhs.example\""),
        "{body}"
    );
    assert!(!body.contains("Temporary password"), "never a reply's body");

    let csv = w
        .get(
            "/audit/report.csv?mailbox=rosehill.care%40nhs.example",
            Some(&s),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("postroom-report-rosehill.care_nhs.example.csv")
    );
    assert!(
        csv.body.starts_with("reference,received,kind"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains(&reference));
    let json = w
        .get(
            "/audit/report.json?account=tom.smith%40nhs.example",
            Some(&s),
        )
        .await;
    assert_eq!(json.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(v["requests"][0]["reference"], reference.as_str());
    let exported: Vec<serde_json::Value> = w
        .instance
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "report.exported")
        .collect();
    assert_eq!(exported.len(), 2, "{exported:?}");
    assert_eq!(exported[0]["actor"], "staff:alice");

    let bad = w
        .get(
            "/audit/report?mailbox=rosehill.care%40nhs.example&from=2026-03-02&to=2026-03-01",
            Some(&s),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// A mailbox's history on the page (issue 16): each membership with from/until and the request
/// that changed it; with a day, who could read the mailbox then; an unknown mailbox is said so.
#[tokio::test]
async fn a_mailboxs_history_names_the_request_behind_each_change() {
    let w = Web::new().await;
    let added = w.process_fixture("add_member.eml");
    let removed = w.process_fixture("remove_member.eml");
    let s = w.sign_in().await;
    let page = w
        .get(
            "/directory/history?mailbox=rosehill.care%40nhs.example",
            Some(&s),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    let row = |account: &str| {
        let at = body
            .find(&format!("<td>{account}</td>"))
            .unwrap_or_else(|| panic!("{account}: {body}"));
        body[at..at + body[at..].find("</tr>").unwrap()].to_owned()
    };
    let sam = row("sam.green@nhs.example");
    assert!(
        sam.contains(&format!("href=\"/requests/{added}\"")),
        "{sam}"
    );
    assert!(sam.contains("still a member"), "{sam}");
    let amy = row("amy.jones@nhs.example");
    assert!(amy.contains("before the trail"), "imported: {amy}");
    assert!(
        amy.contains(&format!("href=\"/requests/{removed}\"")),
        "{amy}"
    );

    // On a day long ago: nobody the trail knows of had joined, the imported ones had.
    let then = w
        .get(
            "/directory/history?mailbox=rosehill.care%40nhs.example&at=2020-01-01",
            Some(&s),
        )
        .await
        .body;
    assert!(
        then.contains("Who could read rosehill.care@nhs.example on 2020-01-01"),
        "{then}"
    );
    assert!(!then.contains("<td>sam.green@nhs.example</td>"), "{then}");
    assert!(then.contains("<td>amy.jones@nhs.example</td>"), "{then}");

    let unknown = w
        .get("/directory/history?mailbox=nobody%40nhs.example", Some(&s))
        .await
        .body;
    assert!(
        unknown.contains("is not a registered shared mailbox"),
        "{unknown}"
    );
    let bad = w
        .get(
            "/directory/history?mailbox=rosehill.care%40nhs.example&at=yesterday",
            Some(&s),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Claims (issue 17): a waiting request is taken, shown in the queue as whose it is and in
/// the views "mine" and "unclaimed"; handed to a colleague; released; each step audited. A
/// colleague deciding a request someone else has taken is asked to confirm first, and
/// nothing changes until they do; a second decision on a decided request says who decided
/// it and how.
#[tokio::test]
async fn claims_collisions_and_who_decided() {
    let w = Web::new().await;
    let first = w.process_fixture("unknown_kind.eml");
    let second = w.process_fixture("ambiguous_account.eml");
    let alice = w.sign_in().await;
    let adam = w.agent().await;

    // Alice takes the first.
    let r = w
        .submit(&format!("/requests/{first}/claim"), &[], &alice)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let queue = w.get("/queue", Some(&adam)).await.body;
    let row = |body: &str, reference: &str| {
        let at = body
            .find(&format!(">{reference}</a>"))
            .unwrap_or_else(|| panic!("{reference} not listed: {body}"));
        body[at..at + body[at..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row(&queue, &first).contains("alice"), "{queue}");
    assert!(row(&queue, &second).contains("nobody"), "{queue}");
    let mine = w.get("/queue?who=mine", Some(&alice)).await.body;
    assert!(
        mine.contains(&first) && !mine.contains(&format!(">{second}<")),
        "{mine}"
    );
    let unclaimed = w.get("/queue?who=unclaimed", Some(&alice)).await.body;
    assert!(
        !unclaimed.contains(&format!(">{first}<")) && unclaimed.contains(&second),
        "{unclaimed}"
    );

    // Adam tries to decide Alice's request: asked to confirm, nothing done.
    let apply = [
        ("kind", "unlock"),
        ("account", "kim.lee@nhs.example"),
        ("requested_by", "jane.doe@nhs.example"),
    ];
    let r = w
        .submit(&format!("/requests/{first}/apply"), &apply, &adam)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body.contains("alice has taken this request"),
        "{}",
        r.body
    );
    assert_eq!(w.outcome(&first).await, "needs_review");
    let r = w
        .submit(
            &format!("/requests/{first}/reject"),
            &[("message", "No.")],
            &adam,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(w.outcome(&first).await, "needs_review");

    // Confirmed: done.
    let mut confirmed = apply.to_vec();
    confirmed.push(("confirm_claim", "yes"));
    let r = w
        .submit(&format!("/requests/{first}/apply"), &confirmed, &adam)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(w.outcome(&first).await, "applied");

    // Alice, a moment late, is told who decided it and how.
    let r = w
        .submit(
            &format!("/requests/{first}/reject"),
            &[("message", "No."), ("confirm_claim", "yes")],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body
            .contains(&format!("{first} was already decided: applied by adam at")),
        "{}",
        r.body
    );

    // Hand the second to Adam, then he releases it.
    let r = w
        .submit(
            &format!("/requests/{second}/claim"),
            &[("to", "adam")],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = w
        .get(&format!("/requests/{second}"), Some(&adam))
        .await
        .body;
    assert!(
        page.contains("<strong>You</strong> have taken this request"),
        "{page}"
    );
    assert!(page.contains("handed over by alice"), "{page}");
    let r = w
        .submit(
            &format!("/requests/{second}/claim"),
            &[("to", "nobody-here")],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = w
        .submit(&format!("/requests/{second}/release"), &[], &adam)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let unclaimed = w.get("/queue?who=unclaimed", Some(&alice)).await.body;
    assert!(unclaimed.contains(&second), "{unclaimed}");

    let actions: Vec<String> = w
        .instance
        .audit()
        .into_iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .filter(|a| a == "request.claimed" || a == "request.released")
        .collect();
    assert_eq!(
        actions,
        ["request.claimed", "request.claimed", "request.released"]
    );
}
