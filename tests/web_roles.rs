//! Staff roles (issue 13): every route with the roles that may use it, tried with both; the
//! staff management page; the `postroom staff` commands.
//!
//! Runs on SQLite and, under `scripts/test`, on PostgreSQL.

use crate::web_support::{AGENT, ALICE, Session, Web};
use axum::http::StatusCode;
use postroom::store::staff::{self, StaffRole};
use postroom::web::access::Access;
use std::collections::BTreeSet;

/// One route: method, path pattern, a path that exists in [`setup`]'s data, the form a POST
/// sends, and who may use it. THE list: a route added to the router and not here fails
/// [`every_route_is_listed_with_the_roles_that_may_use_it`].
struct Case {
    method: &'static str,
    pattern: &'static str,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    access: Access,
}

const fn case(
    method: &'static str,
    pattern: &'static str,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    access: Access,
) -> Case {
    Case {
        method,
        pattern,
        path,
        form,
        access,
    }
}

const ROUTES: &[Case] = &[
    case("GET", "/login", "/login", &[], Access::Public),
    case("POST", "/login", "/login", &[], Access::Public),
    case("GET", "/healthz", "/healthz", &[], Access::Public),
    case("GET", "/metrics", "/metrics", &[], Access::Public),
    case(
        "GET",
        "/static/style.css",
        "/static/style.css",
        &[],
        Access::Public,
    ),
    case(
        "GET",
        "/static/favicon.svg",
        "/static/favicon.svg",
        &[],
        Access::Public,
    ),
    case(
        "GET",
        "/static/presence.js",
        "/static/presence.js",
        &[],
        Access::Public,
    ),
    case(
        "GET",
        "/static/keys.js",
        "/static/keys.js",
        &[],
        Access::Public,
    ),
    case("GET", "/", "/", &[], Access::Staff),
    case("GET", "/queue", "/queue", &[], Access::Staff),
    case("GET", "/requests", "/requests", &[], Access::Staff),
    case(
        "GET",
        "/requests/{reference}",
        "/requests/HD-000001",
        &[],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/comment",
        "/requests/HD-000001/comment",
        &[("text", "a note")],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/apply",
        "/requests/HD-000001/apply",
        &[
            ("kind", "password_reset"),
            ("account", "tom.smith@nhs.example"),
            ("requested_by", "jane.doe@nhs.example"),
        ],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/reject",
        "/requests/HD-000003/reject",
        &[("message", "No.")],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/claim",
        "/requests/HD-000003/claim",
        &[],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/release",
        "/requests/HD-000003/release",
        &[],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/presence",
        "/requests/HD-000003/presence",
        &[("state", "viewing")],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/merge",
        "/requests/HD-000003/merge",
        &[("into", "HD-000001")],
        Access::Staff,
    ),
    case(
        "POST",
        "/queue/bulk",
        "/queue/bulk",
        &[("ref", "HD-000003"), ("action", "assign"), ("to", "carol")],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/jobs/{id}/done",
        "/requests/HD-000003/jobs/1/done",
        &[],
        Access::Staff,
    ),
    case(
        "POST",
        "/requests/{reference}/jobs/{id}/retry",
        "/requests/HD-000003/jobs/1/retry",
        &[],
        Access::Staff,
    ),
    case("GET", "/messages/{id}", "/messages/1", &[], Access::Staff),
    case("GET", "/directory", "/directory", &[], Access::Staff),
    case(
        "GET",
        "/directory/history",
        "/directory/history?mailbox=rosehill.care%40nhs.example",
        &[],
        Access::Staff,
    ),
    case("GET", "/audit", "/audit", &[], Access::Staff),
    case("GET", "/audit.csv", "/audit.csv", &[], Access::Admin),
    case(
        "GET",
        "/audit/report",
        "/audit/report?mailbox=rosehill.care%40nhs.example",
        &[],
        Access::Staff,
    ),
    case(
        "GET",
        "/audit/report.csv",
        "/audit/report.csv?mailbox=rosehill.care%40nhs.example",
        &[],
        Access::Admin,
    ),
    case(
        "GET",
        "/audit/report.json",
        "/audit/report.json?account=tom.smith%40nhs.example",
        &[],
        Access::Admin,
    ),
    case(
        "POST",
        "/searches",
        "/searches",
        &[("name", "held resets"), ("query", "kind=password_reset")],
        Access::Staff,
    ),
    case(
        "POST",
        "/searches/{id}/delete",
        "/searches/1/delete",
        &[],
        Access::Staff,
    ),
    case("GET", "/replies", "/replies", &[], Access::Admin),
    case(
        "POST",
        "/replies",
        "/replies",
        &[
            ("title", "Not ours"),
            ("body", "Dear {site}, {reference} is not ours."),
        ],
        Access::Admin,
    ),
    case(
        "POST",
        "/replies/{id}",
        "/replies/1",
        &[
            ("title", "Not ours"),
            ("body", "Dear {site}, {reference} is not for us."),
        ],
        Access::Admin,
    ),
    case(
        "POST",
        "/replies/{id}/delete",
        "/replies/1/delete",
        &[],
        Access::Admin,
    ),
    case("GET", "/outbox", "/outbox", &[], Access::Staff),
    case(
        "POST",
        "/outbox/{id}/retry",
        "/outbox/1/retry",
        &[],
        Access::Staff,
    ),
    case("GET", "/staff", "/staff", &[], Access::Admin),
    case(
        "POST",
        "/staff",
        "/staff",
        &[
            ("name", "dave"),
            ("role", "agent"),
            ("password", "dave's long password"),
        ],
        Access::Admin,
    ),
    case(
        "POST",
        "/staff/{name}/disable",
        "/staff/carol/disable",
        &[],
        Access::Admin,
    ),
    case(
        "POST",
        "/staff/{name}/enable",
        "/staff/carol/enable",
        &[],
        Access::Admin,
    ),
    case(
        "POST",
        "/staff/{name}/password",
        "/staff/carol/password",
        &[("password", "carol's new password")],
        Access::Admin,
    ),
    case(
        "POST",
        "/staff/{name}/role",
        "/staff/carol/role",
        &[("role", "admin")],
        Access::Admin,
    ),
    // Last: it ends the session the other cases use.
    case("POST", "/logout", "/logout", &[], Access::Staff),
];

#[test]
fn every_route_is_listed_with_the_roles_that_may_use_it() {
    let served: BTreeSet<(String, String, String)> = postroom::web::routes()
        .into_iter()
        .map(|(m, p, a)| (m.to_string(), p.to_owned(), format!("{a:?}")))
        .collect();
    let listed: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|c| {
            (
                c.method.to_owned(),
                c.pattern.to_owned(),
                format!("{:?}", c.access),
            )
        })
        .collect();
    let unlisted: Vec<_> = served.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&served).collect();
    assert!(
        unlisted.is_empty() && gone.is_empty(),
        "routes served but not listed here (add them to ROUTES with who may use them): {unlisted:?}\n\
         listed here but not served as listed: {gone:?}"
    );
    assert_eq!(ROUTES.len(), served.len(), "each route listed once");
}

/// Data every route can act on: HD-000001 held, HD-000002 applied (reply 1), HD-000003 held;
/// staff alice (admin), adam (agent), carol (agent).
async fn setup() -> Web {
    let w = Web::new().await;
    assert_eq!(w.process_fixture("unknown_kind.eml"), "HD-000001");
    assert_eq!(w.process_fixture("password_reset_fields.eml"), "HD-000002");
    assert_eq!(w.process_fixture("ambiguous_kind.eml"), "HD-000003");
    staff::add(&w.store, "carol", StaffRole::Agent, "carol's long password")
        .await
        .unwrap();
    w
}

async fn call(w: &Web, c: &Case, session: Option<&Session>) -> crate::web_support::Answer {
    match (c.method, session) {
        ("GET", s) => w.get(c.path, s).await,
        ("POST", Some(s)) => w.submit(c.path, c.form, s).await,
        ("POST", None) => w.post(c.path, c.form, None).await,
        (m, _) => panic!("no such method in the table: {m}"),
    }
}

#[tokio::test]
async fn both_roles_on_every_route() {
    let w = setup().await;
    let agent = w.agent().await;
    let admin = w.sign_in().await;
    for (who, session, role) in [
        (AGENT, &agent, StaffRole::Agent),
        (ALICE, &admin, StaffRole::Admin),
    ] {
        // Public routes do not look at the session: they are tried by a stranger below.
        for c in ROUTES.iter().filter(|c| c.access != Access::Public) {
            let audit_before = w.scalar_i64("SELECT COUNT(*) FROM audit_events").await;
            let staff_before = staff::list(&w.store).await.unwrap();
            let a = call(&w, c, Some(session)).await;
            let what = format!("{who} ({role}) {} {}", c.method, c.path);
            assert!(!a.status.is_server_error(), "{what}: {}", a.body);
            if c.access.allows(role) {
                assert_ne!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
                if c.path != "/logout" {
                    assert!(
                        !a.location().starts_with("/login"),
                        "{what}: sent to sign in"
                    );
                }
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}");
                assert!(
                    a.body.contains("Only an administrator"),
                    "{what}: {}",
                    a.body
                );
                assert_eq!(
                    w.scalar_i64("SELECT COUNT(*) FROM audit_events").await,
                    audit_before,
                    "{what} changed nothing"
                );
                assert_eq!(staff::list(&w.store).await.unwrap(), staff_before, "{what}");
            }
        }
        // The last case signed them out.
        assert_eq!(
            w.get("/queue", Some(session)).await.status,
            StatusCode::SEE_OTHER
        );
    }
    // What the admin did through the staff routes happened.
    let carol = staff::find(&w.store, "carol").await.unwrap().unwrap();
    assert_eq!((carol.role, carol.disabled), (StaffRole::Admin, false));
    assert!(staff::find(&w.store, "dave").await.unwrap().is_some());
    w.sign_in_as("carol", "carol's new password").await;

    // Strangers: public routes answer, every other one sends them to sign in.
    for c in ROUTES {
        let a = call(&w, c, None).await;
        let what = format!("stranger {} {}", c.method, c.path);
        if c.access == Access::Public {
            assert!(!a.location().starts_with("/login"), "{what}");
            assert!(!a.status.is_server_error(), "{what}");
        } else {
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{what}");
            assert!(a.location().starts_with("/login"), "{what}");
        }
    }
}

#[tokio::test]
async fn an_agent_sees_no_admin_links_and_an_admin_does() {
    let w = setup().await;
    let agent = w.agent().await;
    let admin = w.sign_in().await;
    for path in ["/queue", "/audit"] {
        let a = w.get(path, Some(&agent)).await.body;
        assert!(!a.contains("href=\"/staff\""), "{path}");
        assert!(!a.contains("/audit.csv"), "{path}");
    }
    assert!(
        w.get("/queue", Some(&admin))
            .await
            .body
            .contains("href=\"/staff\"")
    );
    assert!(
        w.get("/audit", Some(&admin))
            .await
            .body
            .contains("/audit.csv")
    );
}

#[tokio::test]
async fn an_admin_manages_staff_on_the_page_and_each_change_is_audited() {
    let w = Web::new().await;
    let admin = w.sign_in().await;
    let page = w.get("/staff", Some(&admin)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("alice") && page.body.contains("(you)"));

    // Add: refused with a reason when the name or password will not do, nothing added.
    for (form, code, says) in [
        (
            [
                ("name", "bob smith"),
                ("role", "agent"),
                ("password", "a long password ok"),
            ],
            StatusCode::BAD_REQUEST,
            "only letters",
        ),
        (
            [("name", "bob"), ("role", "agent"), ("password", "short")],
            StatusCode::BAD_REQUEST,
            "12 characters",
        ),
        (
            [
                ("name", "bob"),
                ("role", "owner"),
                ("password", "a long password ok"),
            ],
            StatusCode::BAD_REQUEST,
            "unknown staff role",
        ),
        (
            [
                ("name", "alice"),
                ("role", "agent"),
                ("password", "a long password ok"),
            ],
            StatusCode::CONFLICT,
            "already exists",
        ),
    ] {
        let a = w.submit("/staff", &form, &admin).await;
        assert_eq!(a.status, code, "{form:?}: {}", a.body);
        assert!(a.body.contains(says), "{says}: {}", a.body);
    }
    assert_eq!(staff::list(&w.store).await.unwrap().len(), 1);
    // Without the CSRF token: refused before anything.
    let a = w
        .post(
            "/staff",
            &[
                ("name", "bob"),
                ("role", "admin"),
                ("password", "a long password ok"),
            ],
            Some(&admin),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let a = w
        .submit(
            "/staff",
            &[
                ("name", "Bob"),
                ("role", "agent"),
                ("password", "bob's first password"),
            ],
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(
        w.get(a.location(), Some(&admin))
            .await
            .body
            .contains("bob was added")
    );
    let bob = w.sign_in_as("bob", "bob's first password").await;
    assert_eq!(
        w.get("/staff", Some(&bob)).await.status,
        StatusCode::FORBIDDEN
    );

    // A new role takes effect on bob's next page, without signing in again.
    let a = w
        .submit("/staff/bob/role", &[("role", "admin")], &admin)
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(w.get("/staff", Some(&bob)).await.status, StatusCode::OK);
    w.submit("/staff/bob/role", &[("role", "agent")], &admin)
        .await;
    assert_eq!(
        w.get("/staff", Some(&bob)).await.status,
        StatusCode::FORBIDDEN
    );

    // A new password ends bob's sessions.
    let a = w
        .submit(
            "/staff/bob/password",
            &[("password", "bob's second password")],
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        w.get("/queue", Some(&bob)).await.status,
        StatusCode::SEE_OTHER
    );
    let a = w
        .submit("/staff/bob/password", &[("password", "short")], &admin)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let bob = w.sign_in_as("bob", "bob's second password").await;

    // Disabling ends bob's sessions at once, and he cannot sign in; enabling lets him.
    let a = w.submit("/staff/bob/disable", &[], &admin).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        w.get("/queue", Some(&bob)).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        w.scalar_i64(
            "SELECT COUNT(*) FROM staff_sessions x JOIN staff s ON s.id = x.staff_id WHERE s.name = 'bob'"
        )
        .await,
        0
    );
    let res = w
        .try_sign_in("bob", "bob's second password", "127.0.0.1")
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        w.get("/staff", Some(&admin))
            .await
            .body
            .contains("disabled")
    );
    w.submit("/staff/bob/enable", &[], &admin).await;
    w.sign_in_as("bob", "bob's second password").await;

    // An admin cannot disable or demote themselves here; an unknown name is not found.
    for (path, form) in [
        ("/staff/alice/disable", vec![]),
        ("/staff/alice/role", vec![("role", "agent")]),
    ] {
        let a = w.submit(path, &form, &admin).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(a.body.contains("your own account"), "{}", a.body);
    }
    let me = staff::find(&w.store, ALICE).await.unwrap().unwrap();
    assert_eq!((me.role, me.disabled), (StaffRole::Admin, false));
    let a = w.submit("/staff/nobody/disable", &[], &admin).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Every change is in the audit trail, by alice, never with a password.
    let audit = w.instance.audit();
    for action in [
        "staff.added",
        "staff.role_set",
        "staff.password_set",
        "staff.disabled",
        "staff.enabled",
    ] {
        assert!(
            audit.iter().any(|e| e["action"] == action
                && e["actor"] == "staff:alice"
                && e["subject"] == "staff:bob"),
            "{action}"
        );
    }
    let all = serde_json::to_string(&audit).unwrap();
    assert!(!all.contains("second password") && !all.contains("first password"));
}

#[test]
fn staff_commands_list_disable_enable_set_a_password_and_change_a_role() {
    let i = crate::support::Instance::new("");
    let add = |name: &str, role: &str| {
        let out = i
            .cmd()
            .args(["staff", "add", name, "--role", role])
            .write_stdin("a long first password\n")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    add("alice", "admin");
    add("bob", "agent");
    let list = i.ok(&["staff", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("alice") && lines[0].contains("admin") && lines[0].contains("active")
    );
    assert!(lines[1].starts_with("bob") && lines[1].contains("agent"));

    assert!(i.ok(&["staff", "disable", "bob"]).contains("disabled bob"));
    let json = i.ok(&["staff", "list", "--json"]);
    let bob: serde_json::Value = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        (bob["name"].as_str(), bob["disabled"].as_bool()),
        (Some("bob"), Some(true))
    );
    i.ok(&["staff", "enable", "bob"]);
    assert!(
        i.ok(&["staff", "role", "bob", "admin"])
            .contains("bob is now admin")
    );

    let out = i
        .cmd()
        .args(["staff", "password", "bob"])
        .write_stdin("bob's new long password\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = i
        .cmd()
        .args(["staff", "password", "bob"])
        .write_stdin("short\n")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 characters"));
    for args in [
        &["staff", "disable", "nobody"][..],
        &["staff", "password", "nobody"],
        &["staff", "role", "bob", "owner"],
    ] {
        let out = i.cmd().args(args).write_stdin("x\n").output().unwrap();
        assert!(!out.status.success(), "{args:?}");
    }
    let json = i.ok(&["staff", "list", "--json"]);
    let bob: serde_json::Value = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        (bob["role"].as_str(), bob["disabled"].as_bool()),
        (Some("admin"), Some(false))
    );

    // The password works, and every change is audited as the command line's.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = postroom::store::Store::open(&i.database()).await.unwrap();
        assert!(
            staff::verify_login(&store, "bob", "bob's new long password")
                .await
                .unwrap()
                .is_some()
        );
        store.close().await;
    });
    let audit = i.ok(&["audit"]);
    for action in [
        "staff.disabled",
        "staff.enabled",
        "staff.role_set",
        "staff.password_set",
    ] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(action) && l.contains("\"actor\":\"cli\"")),
            "{action}: {audit}"
        );
    }
    assert!(!audit.contains("new long password"));
}
