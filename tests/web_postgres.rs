//! The staff page on PostgreSQL: every page and action once, so that each statement of
//! `store::views` and `store::staff` is known to run on both backends.
//!
//! Runs when `POSTROOM_TEST_POSTGRES_URL` (or `DATABASE_URL`) names a PostgreSQL server the
//! test may create a database on; it makes a fresh database, and drops it at the end.
//! Skipped (with a message) otherwise.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use postroom::config::Config;
use postroom::pipeline::{self, Mode};
use postroom::store::Store;
use postroom::store::staff::{self, StaffRole};
use postroom::web::{self, Status, WebState};
use std::sync::Arc;
use tower::ServiceExt;

fn server_url() -> Option<String> {
    ["POSTROOM_TEST_POSTGRES_URL", "DATABASE_URL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// `url` with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn get(app: &axum::Router, path: &str, cookie: &str) -> (StatusCode, String) {
    let req = Request::get(path)
        .header(header::COOKIE, format!("postroom_session={cookie}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_page_runs_on_postgres() {
    let Some(server) = server_url() else {
        eprintln!(
            "*** SKIPPED web_postgres: set POSTROOM_TEST_POSTGRES_URL=postgres://… to run the staff page on PostgreSQL ***"
        );
        return;
    };
    let db = format!("postroom_web_{}", std::process::id());
    let admin = Store::connect(
        &Config::from_toml_with_env(
            &format!(
                "[database]\nurl = \"{server}\"\n[helpdesk]\naddress = \"helpdesk@nhs.example\"\n"
            ),
            &[],
        )
        .unwrap()
        .database,
    )
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(admin.pool())
        .await
        .unwrap();

    let url = with_database(&server, &db);
    let cfg = Arc::new(
        Config::from_toml_with_env(
            &format!(
                "[database]\nurl = \"{url}\"\n[helpdesk]\naddress = \"{}\"\nname = \"PG Desk\"\nreference_prefix = \"HD\"\n{}",
                crate::support::HELPDESK,
                crate::support::TRUST
            ),
            &[],
        )
        .unwrap(),
    );
    let result = async move {
        let store = Store::open(&cfg.database).await.unwrap();
        let csv = std::fs::read(crate::support::fixtures().join("directory.csv")).unwrap();
        postroom::directory_csv::import(&store, csv.as_slice(), "directory.csv")
            .await
            .unwrap();
        for f in [
            "unknown_kind.eml",
            "password_reset_fields.eml",
            "leaves_one_member.eml",
        ] {
            let raw = std::fs::read(crate::support::fixture(f)).unwrap();
            pipeline::process(&store, &cfg, &raw, f, Mode::Apply)
                .await
                .unwrap();
        }
        staff::add(
            &store,
            "alice",
            StaffRole::Admin,
            "correct horse battery staple",
        )
        .await
        .unwrap();
        let alice = staff::verify_login(&store, "alice", "correct horse battery staple")
            .await
            .unwrap()
            .expect("alice signs in");
        let f = staff::recent_failures(&store, "alice", "127.0.0.1", 0)
            .await
            .unwrap();
        assert_eq!(f.name_and_ip, 0);
        staff::record_failure(&store, "alice", "127.0.0.1", 0)
            .await
            .unwrap();
        staff::clear_failures(&store, "alice", "127.0.0.1")
            .await
            .unwrap();
        // The throttle's reservation and the signing key (issue 13).
        let limits = postroom::web::auth::THROTTLE;
        let staff::Reservation::Granted { id } =
            staff::reserve_try(&store, "alice", "127.0.0.1", true, limits)
                .await
                .unwrap()
        else {
            panic!("a first try is granted");
        };
        staff::withdraw_try(&store, id).await.unwrap();
        let staff::Reservation::Granted { id } =
            staff::reserve_try(&store, "alice", "browser:x", false, limits)
                .await
                .unwrap()
        else {
            panic!("a first try is granted");
        };
        staff::try_succeeded(&store, id, "alice", "browser:x")
            .await
            .unwrap();
        let key = staff::web_key(&store, "login").await.unwrap();
        assert_eq!(staff::web_key(&store, "login").await.unwrap(), key);
        staff::set_role_by(&store, "cli", "alice", StaffRole::Admin)
            .await
            .unwrap();
        assert!(staff::find(&store, "alice").await.unwrap().is_some());
        let cookie = staff::create_session(&store, alice.id, 3_600_000, "127.0.0.1")
            .await
            .unwrap();
        let app = web::router(WebState::new(store.clone(), cfg.clone(), Status::new()));
        for path in [
            "/queue",
            "/queue?after=0",
            "/queue?before=99",
            "/requests",
            "/requests?reference=HD-000001",
            "/requests?account=jane.doe%40nhs.example&before=1",
            "/requests?mailbox=oakview.gp%40nhs.example",
            "/requests?outcome=applied&from=2000-01-01&to=2999-12-31",
            "/requests?kind=unknown",
            "/requests/HD-000001",
            "/requests/HD-000002",
            "/messages/1",
            "/directory",
            "/directory?view=at_risk",
            "/audit",
            "/audit?actor=staff%3Aalice&action=x&subject=y&from=2000-01-01",
            "/audit?subject=tom.smith%40nhs.example",
            "/audit.csv",
            "/staff",
            "/outbox",
            "/outbox?status=failed",
            "/healthz",
            "/metrics",
        ] {
            let (status, body) = get(&app, path, &cookie).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        let (_, dir) = get(&app, "/directory?view=at_risk", &cookie).await;
        assert!(dir.contains("oakview.gp@nhs.example"));
        let (_, m) = get(&app, "/metrics", &cookie).await;
        assert!(m.contains("postroom_database_up 1") && m.contains("postroom_review_queue_size 1"));

        // A decision through the page, with the page's CSRF token.
        let (_, page) = get(&app, "/requests/HD-000001", &cookie).await;
        let marker = "name=\"_csrf\" value=\"";
        let start = page.find(marker).unwrap() + marker.len();
        let csrf = &page[start..start + 64];
        let form = serde_urlencoded::to_string([
            ("_csrf", csrf),
            ("kind", "password_reset"),
            ("account", "tom.smith@nhs.example"),
            ("requested_by", "jane.doe@nhs.example"),
        ])
        .unwrap();
        let req = Request::post("/requests/HD-000001/apply")
            .header(header::COOKIE, format!("postroom_session={cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let (_, csv) = get(&app, "/audit.csv", &cookie).await;
        assert!(
            csv.contains("password.reset") && csv.contains("staff:alice"),
            "{csv}"
        );
        let req = Request::post("/outbox/1/retry")
            .header(header::COOKIE, format!("postroom_session={cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("_csrf={csrf}")))
            .unwrap();
        assert_eq!(
            app.clone().oneshot(req).await.unwrap().status(),
            StatusCode::SEE_OTHER
        );
        staff::end_session(&store, &cookie).await.unwrap();
        staff::set_password(&store, "alice", "another long password")
            .await
            .unwrap();
        staff::set_disabled(&store, "alice", true).await.unwrap();
        assert_eq!(staff::list(&store).await.unwrap().len(), 1);
        store.close().await;
    };
    // Drop the database whatever happened, then report.
    let outcome = tokio::spawn(result).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(admin.pool())
    .await;
    admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
