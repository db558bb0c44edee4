//! The staff page for a team (issue 17): who else is on a request (presence, shared through
//! the database), the page a late second decision gets, bulk reject and assign (each request
//! audited on its own, through the same rules), and merging a site's duplicate request.
//! Driven in-process through the router, as a browser would.

use crate::web_support::{Answer, Session, Web, send};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use postroom::store::Store;
use postroom::web::{Status, WebState};

/// The presence heartbeat as the page's script sends it.
async fn beat(w: &Web, reference: &str, state: &str, who: &Session) -> Answer {
    w.submit(
        &format!("/requests/{reference}/presence"),
        &[("state", state)],
        who,
    )
    .await
}

/// Audit events of `action` on request `reference`, as (actor, detail).
fn events(w: &Web, action: &str, reference: &str) -> Vec<(String, serde_json::Value)> {
    w.instance
        .audit()
        .into_iter()
        .filter(|e| e["action"] == action && e["reference"] == reference)
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["detail"].clone(),
            )
        })
        .collect()
}

async fn count(w: &Web, sql: &str, reference: &str) -> i64 {
    let mut c = w.store.read().await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(reference)
        .fetch_one(&mut *c)
        .await
        .unwrap()
}

const REPLIES_OF: &str =
    "SELECT COUNT(*) FROM outbox o JOIN requests r ON r.id = o.request_id WHERE r.reference = $1";

#[tokio::test]
async fn presence_shows_who_else_is_on_a_request_across_instances_and_expires() {
    let w = Web::new().await;
    let first = w.process_fixture("unknown_kind.eml");
    let alice = w.sign_in().await;
    let adam = w.agent().await;

    // Alice opens the request on this instance; Adam, on another instance over the same
    // database (its own pool and router), sees her there.
    let page = w.get(&format!("/requests/{first}"), Some(&alice)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"presence\""), "{}", page.body);
    assert!(
        page.body
            .contains("<script src=\"/static/presence.js\" defer></script>"),
        "{}",
        page.body
    );
    let other_store = Store::open(&w.cfg.database).await.unwrap();
    let other = postroom::web::router(WebState::new(other_store, w.cfg.clone(), Status::new()));
    let adams_page = send(
        &other,
        Request::builder()
            .uri(format!("/requests/{first}"))
            .header(header::COOKIE, format!("postroom_session={}", adam.cookie))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        adams_page
            .body
            .contains("<strong>alice</strong> has this request open"),
        "{}",
        adams_page.body
    );

    // Adam types into a decision form: Alice's next heartbeat says he is deciding it.
    let r = beat(&w, &first, "deciding", &adam).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        !r.body.contains("<html"),
        "a fragment, not a page: {}",
        r.body
    );
    let r = beat(&w, &first, "viewing", &alice).await;
    assert!(
        r.body
            .contains("<strong>adam</strong> is deciding this request now"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<strong>alice</strong>"), "{}", r.body);
    assert_eq!(w.scalar_i64("SELECT COUNT(*) FROM presence").await, 2);

    // A record lasts only until its expiry: Adam's tab closed long ago.
    {
        let mut c = w.store.write().await.unwrap();
        sqlx::query("UPDATE presence SET expires_at = 1 WHERE staff = 'adam'")
            .execute(&mut *c)
            .await
            .unwrap();
    }
    let r = beat(&w, &first, "viewing", &alice).await;
    assert!(!r.body.contains("adam"), "{}", r.body);

    // Alice takes it: Adam's notice says so without a reload.
    w.submit(&format!("/requests/{first}/claim"), &[], &alice)
        .await;
    let r = beat(&w, &first, "viewing", &adam).await;
    assert!(
        r.body
            .contains("<strong>alice</strong> has taken this request"),
        "{}",
        r.body
    );

    // A state the page never sends, and a heartbeat without the CSRF token, are refused.
    let r = beat(&w, &first, "sleeping", &adam).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = w
        .post(
            &format!("/requests/{first}/presence"),
            &[("state", "viewing")],
            Some(&adam),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = beat(&w, "HD-999999", "viewing", &adam).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The script is served with the page's own origin allowed to run it, nothing inline.
    let js = w.get("/static/presence.js", None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("data-url"), "{}", js.body);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

#[tokio::test]
async fn a_late_second_decision_gets_the_page_saying_who_decided_what_and_when() {
    let w = Web::new().await;
    let first = w.process_fixture("unknown_kind.eml");
    let alice = w.sign_in().await;
    let adam = w.agent().await;
    // Both have the page open.
    w.get(&format!("/requests/{first}"), Some(&alice)).await;
    w.get(&format!("/requests/{first}"), Some(&adam)).await;

    let r = w
        .submit(
            &format!("/requests/{first}/reject"),
            &[("message", "Please tell us who the account is for.")],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Adam's notice changes under him, then his own decision comes back as the page.
    let r = beat(&w, &first, "deciding", &adam).await;
    assert!(
        r.body
            .contains(&format!("{first} has been decided: rejected by alice at")),
        "{}",
        r.body
    );
    for (path, form) in [
        (
            "apply",
            vec![
                ("kind", "unlock"),
                ("account", "kim.lee@nhs.example"),
                ("requested_by", "jane.doe@nhs.example"),
            ],
        ),
        ("reject", vec![("message", "No.")]),
        ("claim", vec![]),
        ("merge", vec![("into", "HD-000001")]),
    ] {
        let r = w
            .submit(&format!("/requests/{first}/{path}"), &form, &adam)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.body);
        assert!(r.body.contains("<html"), "{path}: not a page: {}", r.body);
        assert!(
            r.body.contains(&format!(
                "{first} was already decided: rejected by alice at"
            )),
            "{path}: {}",
            r.body
        );
    }
    // Nothing of Adam's was done; the site got one answer.
    assert_eq!(w.outcome(&first).await, "rejected");
    assert!(events(&w, "request.rejected", &first).len() == 1);
    // A decided page says who decided it, for anyone opening it later.
    let page = w.get(&format!("/requests/{first}"), Some(&adam)).await.body;
    assert!(
        page.contains(&format!("{first} has been decided: rejected by alice at")),
        "{page}"
    );
    assert!(!page.contains("id=\"presence\""), "{page}");
}

#[tokio::test]
async fn bulk_reject_and_assign_go_through_each_requests_own_rules_and_audit() {
    let w = Web::new().await;
    let one = w.process_fixture("unknown_kind.eml");
    let applied = w.process_fixture("password_reset_fields.eml");
    let two = w.process_fixture("ambiguous_kind.eml");
    let three = w.process_fixture("ambiguous_account.eml");
    assert_eq!(w.outcome(&applied).await, "applied");
    let alice = w.sign_in().await;
    let adam = w.agent().await;
    w.submit(&format!("/requests/{two}/claim"), &[], &adam)
        .await;

    // The queue is one form: a checkbox per request, reject and assign below.
    let queue = w.get("/queue", Some(&alice)).await.body;
    assert!(
        queue.contains("<form method=\"post\" action=\"/queue/bulk\""),
        "{queue}"
    );
    assert!(
        queue.contains(&format!("name=\"ref\" value=\"{one}\"")),
        "{queue}"
    );

    let replies_before = w.scalar_i64("SELECT COUNT(*) FROM outbox").await;
    let message = "Please send each request again naming the account.";
    // Without the CSRF token: nothing at all.
    let r = w
        .post(
            "/queue/bulk",
            &[("ref", &one), ("action", "reject"), ("message", message)],
            Some(&alice),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.outcome(&one).await, "needs_review");

    let r = w
        .submit(
            "/queue/bulk",
            &[
                ("ref", &one),
                ("ref", &two),
                ("ref", &applied),
                ("ref", &one),
                ("action", "reject"),
                ("message", message),
            ],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Rejected 1 of 3"), "{}", r.body);
    assert!(
        r.body.contains("left to adam, who has taken it"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(&format!(
            "{applied} was already decided: applied by jane.doe@nhs.example at"
        )),
        "{}",
        r.body
    );
    assert_eq!(w.outcome(&one).await, "rejected");
    assert_eq!(w.outcome(&two).await, "needs_review");
    assert_eq!(w.outcome(&three).await, "needs_review");
    // Audited and answered one by one, as its own page would have.
    let rejected = events(&w, "request.rejected", &one);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, "staff:alice");
    assert_eq!(rejected[0].1["message"], message);
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM outbox").await,
        replies_before + 1
    );

    // Decide anyway: Adam's request is rejected too.
    let r = w
        .submit(
            "/queue/bulk",
            &[
                ("ref", &two),
                ("action", "reject"),
                ("message", message),
                ("confirm_claim", "yes"),
            ],
            &alice,
        )
        .await;
    assert!(r.body.contains("Rejected 1 of 1"), "{}", r.body);
    assert_eq!(w.outcome(&two).await, "rejected");

    // Assign: an agent gives two requests to alice; each hand-over audited on its own.
    let four = w.process_text(
        "again.eml",
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/requests/unknown_kind.eml"),
        )
        .unwrap()
        .replace("unknown-kind.fixture@", "unknown-kind-again.fixture@")
        .replace("Hello, can you help?", "Hello again, can anyone help?"),
    )["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w
        .submit(
            "/queue/bulk",
            &[
                ("ref", &three),
                ("ref", &four),
                ("action", "assign"),
                ("to", "alice"),
            ],
            &adam,
        )
        .await;
    assert!(r.body.contains("Gave 2 of 2 to alice"), "{}", r.body);
    let mine = w.get("/queue?who=mine", Some(&alice)).await.body;
    assert!(
        mine.contains(&format!(">{three}<")) && mine.contains(&format!(">{four}<")),
        "{mine}"
    );
    for r in [&three, &four] {
        let claimed = events(&w, "request.claimed", r);
        assert_eq!(claimed.len(), 1, "{r}");
        assert_eq!(claimed[0].0, "staff:adam");
        assert_eq!(claimed[0].1["to"], "alice");
    }

    // Bad forms change nothing and say why.
    for (form, why) in [
        (
            vec![("action", "reject"), ("message", message)],
            "Tick at least one request",
        ),
        (
            vec![("ref", three.as_str()), ("action", "reject")],
            "Write the message",
        ),
        (
            vec![
                ("ref", three.as_str()),
                ("action", "assign"),
                ("to", "nobody"),
            ],
            "",
        ),
        (
            vec![("ref", "'; DROP"), ("action", "reject")],
            "is not a request reference",
        ),
    ] {
        let r = w.submit("/queue/bulk", &form, &alice).await;
        if why.is_empty() {
            assert!(r.body.contains("Gave 0 of 1"), "{}", r.body);
            assert!(
                r.body.contains("nobody is not an enabled member"),
                "{}",
                r.body
            );
        } else {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{form:?}");
            assert!(r.body.contains(why), "{}", r.body);
        }
    }
    assert_eq!(w.outcome(&three).await, "needs_review");
}

#[tokio::test]
async fn a_sites_duplicate_is_merged_into_its_first_request() {
    let w = Web::new().await;
    let first = w.process_fixture("ambiguous_account.eml");
    let second = w.process_fixture("unknown_kind.eml");
    let elsewhere = w.process_fixture("leaves_one_member.eml");
    let alice = w.sign_in().await;
    let adam = w.agent().await;
    let replies_of_second = count(&w, REPLIES_OF, &second).await;

    // The merge form offers the same site's other requests.
    let page = w
        .get(&format!("/requests/{second}"), Some(&alice))
        .await
        .body;
    assert!(
        page.contains(&format!("<option value=\"{first}\">")),
        "{page}"
    );
    assert!(
        !page.contains(&format!("<option value=\"{elsewhere}\">")),
        "{page}"
    );

    // Refused: itself, another site's request, one that does not exist.
    for (into, why) in [
        (second.as_str(), "cannot be merged into itself"),
        (
            elsewhere.as_str(),
            "did not come from the same shared mailbox",
        ),
        ("HD-999999", "there is no request HD-999999"),
    ] {
        let r = w
            .submit(
                &format!("/requests/{second}/merge"),
                &[("into", into)],
                &alice,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{into}");
        assert!(r.body.contains(why), "{into}: {}", r.body);
    }
    // Taken by Adam: Alice is asked to confirm first.
    w.submit(&format!("/requests/{second}/claim"), &[], &adam)
        .await;
    let r = w
        .submit(
            &format!("/requests/{second}/merge"),
            &[("into", &first)],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("adam has taken this request"), "{}", r.body);
    assert_eq!(w.outcome(&second).await, "needs_review");

    let r = w
        .submit(
            &format!("/requests/{second}/merge"),
            &[("into", &first.to_lowercase()), ("confirm_claim", "yes")],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("/requests/{second}?done=merged"));

    // The second is a duplicate with the reason naming the first, out of the queue, unclaimed,
    // and gets no reply of its own.
    assert_eq!(w.outcome(&second).await, "duplicate");
    assert_eq!(
        count(
            &w,
            "SELECT COUNT(*) FROM requests WHERE reference = $1 AND reason = 'merged'",
            &second
        )
        .await,
        1
    );
    assert_eq!(count(&w, REPLIES_OF, &second).await, replies_of_second);
    assert_eq!(
        count(&w, "SELECT COUNT(*) FROM claims c JOIN requests r ON r.id = c.request_id WHERE r.reference = $1", &second).await,
        0
    );
    let queue = w.get("/queue", Some(&alice)).await.body;
    assert!(!queue.contains(&format!(">{second}<")), "{queue}");
    let merged = events(&w, "request.merged", &second);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].0, "staff:alice");
    assert_eq!(merged[0].1["into"], first.as_str());

    // Each page links the other; the first shows the second's email.
    let page = w
        .get(&format!("/requests/{second}"), Some(&adam))
        .await
        .body;
    assert!(
        page.contains(&format!(
            "Merged into <a href=\"/requests/{first}\">{first}</a> by alice"
        )),
        "{page}"
    );
    assert!(page.contains("merged by alice at"), "{page}");
    let page = w.get(&format!("/requests/{first}"), Some(&adam)).await.body;
    let at = page.find("Also asked in").expect("the merged list");
    let list = &page[at..];
    assert!(
        list.contains(&format!("href=\"/requests/{second}\"")),
        "{list}"
    );
    let message_id = count(
        &w,
        "SELECT message_id FROM requests WHERE reference = $1",
        &second,
    )
    .await;
    assert!(
        list.contains(&format!("href=\"/messages/{message_id}\">Question<")),
        "{list}"
    );

    // Merged once: again is refused with what happened; merging into it points on.
    let r = w
        .submit(
            &format!("/requests/{second}/merge"),
            &[("into", &first)],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body
            .contains(&format!("{second} was already decided: merged by alice at")),
        "{}",
        r.body
    );
    let third = w.process_text(
        "third.eml",
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/requests/unknown_kind.eml"),
        )
        .unwrap()
        .replace("unknown-kind.fixture@", "unknown-kind-third.fixture@")
        .replace("Hello, can you help?", "Hello, anyone there?"),
    )["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w
        .submit(
            &format!("/requests/{third}/merge"),
            &[("into", &second)],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body
            .contains(&format!("{second} was itself merged into {first}")),
        "{}",
        r.body
    );

    // The first is decided as usual: the one answer to the site.
    let before = count(&w, REPLIES_OF, &first).await;
    let r = w
        .submit(
            &format!("/requests/{first}/reject"),
            &[("message", "Please name the account.")],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(count(&w, REPLIES_OF, &first).await, before + 1);
    assert_eq!(count(&w, REPLIES_OF, &second).await, replies_of_second);
    let _ = Method::GET;
}

/// Bulk reject with a saved reply: each site reads the reply filled in with its own request's
/// values (its reference here), not one text for all; a message and a saved reply together, or
/// neither, is refused and changes nothing.
#[tokio::test]
async fn a_bulk_reject_fills_a_saved_reply_in_for_each_request() {
    let w = Web::new().await;
    let one = w.process_fixture("unknown_kind.eml");
    let two = w.process_fixture("ambiguous_kind.eml");
    let alice = w.sign_in().await;
    let made = w
        .submit(
            "/replies",
            &[
                ("title", "Send again"),
                ("body", "Please send {reference} again, naming the account."),
            ],
            &alice,
        )
        .await;
    assert!(made.status.is_redirection(), "{}", made.body);
    let id = w
        .scalar_i64("SELECT id FROM saved_replies WHERE title = 'Send again'")
        .await
        .to_string();
    let queue = w.get("/queue", Some(&alice)).await.body;
    assert!(
        queue.contains(&format!("<option value=\"{id}\">Send again</option>")),
        "the bulk form offers the saved reply: {queue}"
    );

    for bad in [
        vec![("message", "Typed too."), ("reply", id.as_str())],
        vec![("message", ""), ("reply", "")],
    ] {
        let mut form = vec![("ref", one.as_str()), ("action", "reject")];
        form.extend(bad);
        let r = w.submit("/queue/bulk", &form, &alice).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    assert_eq!(w.outcome(&one).await, "needs_review");

    let r = w
        .submit(
            "/queue/bulk",
            &[
                ("ref", one.as_str()),
                ("ref", two.as_str()),
                ("action", "reject"),
                ("message", ""),
                ("reply", id.as_str()),
            ],
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Rejected 2 of 2"), "{}", r.body);
    for reference in [&one, &two] {
        assert_eq!(w.outcome(reference).await, "rejected");
        let mut conn = w.store.read().await.unwrap();
        let body: String = sqlx::query_scalar(
            "SELECT o.body FROM outbox o JOIN requests r ON r.id = o.request_id \
             WHERE r.reference = $1 ORDER BY o.id DESC LIMIT 1",
        )
        .bind(reference.as_str())
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert!(
            body.contains(&format!(
                "Please send {reference} again, naming the account."
            )),
            "{body}"
        );
    }
}
