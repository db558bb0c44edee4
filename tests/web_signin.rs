//! Signing in under attack (issue 13): the throttle holds under concurrency and across
//! instances, password checks are bounded, forwarded headers are believed only from trusted
//! proxies, a throttled address pauses rather than locks everyone out, and the sign-in form's
//! token is this server's and this browser's.
//!
//! Runs on SQLite and, under `scripts/test`, on PostgreSQL (a fresh database per test).

use crate::web_support::{ALICE, ALICE_PASSWORD, Answer, Web, sign_in_through};
use axum::http::StatusCode;
use postroom::config::Config;
use postroom::store::Store;
use postroom::web::auth::{
    MAX_CONCURRENT_CHECKS, MAX_FAILURES_IP, MAX_FAILURES_NAME, MAX_FAILURES_NAME_AND_IP, PAUSE_MS,
};
use postroom::web::{self, Status, WebState};
use std::sync::Arc;

/// `n` sign-ins at once, spread over `apps` (instances), each from `ip(i)` as `name(i)`.
async fn burst(
    apps: &[axum::Router],
    n: usize,
    name: impl Fn(usize) -> String,
    password: &str,
    ip: impl Fn(usize) -> String,
    headers: impl Fn(usize) -> Vec<(String, String)>,
) -> Vec<Answer> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(sign_in_through(
                apps[i % apps.len()].clone(),
                name(i),
                password.to_owned(),
                ip(i),
                headers(i),
            ))
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count(answers: &[Answer], status: StatusCode) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

/// A second instance on the same database: its own pool, its own bound on checks.
async fn second_instance(w: &Web) -> axum::Router {
    let cfg = Arc::new(Config::load(&w.instance.config).unwrap());
    let store = Store::open(&cfg.database).await.unwrap();
    web::router(WebState::new(store, cfg, Status::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_sign_ins_for_one_name_check_at_most_the_limit() {
    let w = Web::new().await;
    let apps = [w.app.clone(), second_instance(&w).await];
    let answers = burst(
        &apps,
        100,
        |_| ALICE.to_owned(),
        "not the password",
        |_| "192.0.2.10".to_owned(),
        |_| vec![],
    )
    .await;
    let checked = count(&answers, StatusCode::UNAUTHORIZED);
    let throttled = count(&answers, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(checked + throttled, 100, "only 401 and 429");
    assert!(
        (1..=MAX_FAILURES_NAME_AND_IP as usize).contains(&checked),
        "{checked} passwords were checked against a limit of {MAX_FAILURES_NAME_AND_IP}"
    );
    assert!(
        answers
            .iter()
            .all(|a| a.cookie("postroom_session").is_none())
    );
    // Exactly the checked tries are counted as failures.
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM staff_login_failures")
            .await,
        checked as i64
    );
    // And the right password from there is refused for the window.
    let res = w.try_sign_in(ALICE, ALICE_PASSWORD, "192.0.2.10").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers.contains_key("retry-after"));
    // None of those 429s was for a busy server: they are the throttle's.
    assert_eq!(w.state.checks.busy(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_sign_ins_from_one_address_check_at_most_the_limit() {
    let w = Web::new().await;
    let apps = [w.app.clone(), second_instance(&w).await];
    let started = std::time::Instant::now();
    let answers = burst(
        &apps,
        60,
        |i| format!("sprayed{i}"),
        "a guess",
        |_| "192.0.2.11".to_owned(),
        |_| vec![],
    )
    .await;
    let checked = count(&answers, StatusCode::UNAUTHORIZED);
    assert_eq!(checked + count(&answers, StatusCode::TOO_MANY_REQUESTS), 60);
    // Past the limit the address gets one try per pause: at most one more per pause that the
    // burst lasted.
    let pauses = started.elapsed().as_millis() as usize / PAUSE_MS as usize;
    assert!(
        checked <= MAX_FAILURES_IP as usize + 1 + pauses,
        "{checked} checked from one address (limit {MAX_FAILURES_IP}, burst {:?})",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_sign_ins_never_hashes_more_than_the_bound_at_once() {
    let w = Web::new().await;
    // Every try from its own address for its own name: the throttle lets all of them through,
    // so only the bound on checks stands between them and the memory.
    let n = 120;
    let answers = burst(
        std::slice::from_ref(&w.app),
        n,
        |i| format!("user{i}"),
        "a guess",
        |i| format!("10.9.{}.{}", i / 200, i % 200 + 1),
        |_| vec![],
    )
    .await;
    let checks = &w.state.checks;
    assert!(
        checks.peak() >= 1 && checks.peak() <= MAX_CONCURRENT_CHECKS,
        "peak {} checks at once (bound {MAX_CONCURRENT_CHECKS})",
        checks.peak()
    );
    let busy = count(&answers, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED) + busy, n);
    assert_eq!(busy as u64, checks.busy(), "every 429 here is 'busy'");
    for a in answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
    {
        assert!(a.body.contains("busy"), "{}", a.body);
    }
    // A try that was never checked is not a failure.
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM staff_login_failures")
            .await,
        (n - busy) as i64
    );
    // The scrape tells the operator.
    let m = w.get("/metrics", None).await.body;
    for line in [
        format!("postroom_signin_checks_total {}", n - busy),
        format!("postroom_signin_refused_total{{why=\"busy\"}} {busy}"),
        "postroom_signin_refused_total{why=\"throttled\"} 0".to_owned(),
    ] {
        assert!(m.lines().any(|l| l == line), "missing `{line}`:\n{m}");
    }
    // Afterwards, signing in works.
    w.sign_in().await;
}

#[tokio::test]
async fn forged_x_forwarded_for_does_not_escape_the_per_address_limit() {
    // Behind a TLS proxy on this host (trusted: loopback by default), the port also reachable
    // directly from 198.51.100.20, which forges a new X-Forwarded-For on every try.
    let w = Web::with_config("[web]\nbehind_tls_proxy = true\n").await;
    for i in 0..MAX_FAILURES_IP {
        let forged = format!("203.0.113.{}", i + 1);
        let token = w.login_form().await;
        let res = w
            .post_login(
                &token,
                &token,
                &format!("name{i}"),
                "a guess",
                "198.51.100.20",
                &[
                    ("x-forwarded-for", forged.as_str()),
                    ("x-forwarded-proto", "https"),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "try {i}");
        assert!(
            res.set_cookies().iter().all(|c| !c.contains("Secure")),
            "a stranger's X-Forwarded-Proto is not believed either"
        );
    }
    let token = w.login_form().await;
    let res = w
        .post_login(
            &token,
            &token,
            "one-more",
            "a guess",
            "198.51.100.20",
            &[("x-forwarded-for", "203.0.113.250")],
        )
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    // Every failure was counted against the peer, none against the forged addresses.
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM staff_login_failures WHERE ip = '198.51.100.20'")
            .await,
        MAX_FAILURES_IP
    );
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM staff_login_failures WHERE ip LIKE '203.0.113.%'")
            .await,
        0
    );

    // Through the trusted proxy, the address it names is the client's: the right-most entry
    // that is not itself a trusted proxy.
    let token = w.login_form().await;
    let res = w
        .post_login(
            &token,
            &token,
            ALICE,
            ALICE_PASSWORD,
            "127.0.0.1",
            &[
                ("x-forwarded-for", "10.0.0.1, 198.51.100.77, 127.0.0.1"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(res.set_cookies().iter().any(|c| c.ends_with("; Secure")));
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM staff_sessions WHERE ip = '198.51.100.77'")
            .await,
        1
    );
}

#[tokio::test]
async fn only_the_configured_trusted_proxies_are_believed() {
    let w = Web::with_config("[web]\ntrusted_proxies = [\"10.1.2.3\", \"fd00::/8\"]\n").await;
    assert!(!w.cfg.web.behind_tls_proxy);
    for (peer, recorded) in [
        ("10.1.2.3", "192.0.2.99"),
        ("[fd00::5]", "192.0.2.99"),
        ("127.0.0.1", "127.0.0.1"),
        ("10.1.2.4", "10.1.2.4"),
    ] {
        let token = w.login_form().await;
        let res = w
            .post_login(
                &token,
                &token,
                ALICE,
                ALICE_PASSWORD,
                peer,
                &[("x-forwarded-for", "192.0.2.99")],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{peer}: {}", res.body);
        let mut c = w.store.read().await.unwrap();
        let ip: String = sqlx::query_scalar("SELECT ip FROM staff_sessions")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        drop(c);
        assert_eq!(ip, recorded, "peer {peer}");
        sqlx::query("DELETE FROM staff_sessions")
            .execute(w.store.pool())
            .await
            .unwrap();
    }
    // A bad entry is refused by name.
    let err = Config::from_toml_with_env(
        "[database]\nurl = \"sqlite::memory:\"\n[helpdesk]\naddress = \"h@x.example\"\n[web]\ntrusted_proxies = [\"proxy.local\"]\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("web.trusted_proxies") && err.contains("proxy.local"),
        "{err}"
    );
}

#[tokio::test]
async fn a_throttled_address_lets_a_correct_password_in_after_a_pause() {
    let w = Web::new().await;
    // Someone behind the same address (a proxy without trusted_proxies, an office NAT)
    // sprays wrong passwords over many names.
    for i in 0..MAX_FAILURES_IP {
        let res = w
            .try_sign_in(&format!("guess{i}"), "a guess", "192.0.2.30")
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    // Alice, at the same address, with the right password: a pause, not a 15-minute lockout.
    let res = w.try_sign_in(ALICE, ALICE_PASSWORD, "192.0.2.30").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert!(res.body.contains("second"), "{}", res.body);
    let wait: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        wait >= 1 && wait <= (PAUSE_MS as u64).div_ceil(1000),
        "{wait}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(PAUSE_MS as u64 + 100)).await;
    let res = w.try_sign_in(ALICE, ALICE_PASSWORD, "192.0.2.30").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    // The sprayer, still there, gets one try per pause.
    let res = w.try_sign_in("guess99", "a guess", "192.0.2.30").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = w.try_sign_in("guess98", "a guess", "192.0.2.30").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    // Elsewhere nobody noticed.
    let res = w.try_sign_in(ALICE, ALICE_PASSWORD, "192.0.2.31").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_sign_in_token_works_only_with_the_browser_it_was_minted_for() {
    let w = Web::new().await;
    let a = w.login_form().await;
    let b = w.login_form().await;
    assert_ne!(a, b);
    let refused = |res: &Answer| {
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
        assert!(res.cookie("postroom_session").is_none());
        assert!(
            res.body.contains("sign-in form is out of date"),
            "{}",
            res.body
        );
    };
    // A's form with B's cookie, and the other way round.
    refused(
        &w.post_login(&b, &a, ALICE, ALICE_PASSWORD, "127.0.0.1", &[])
            .await,
    );
    refused(
        &w.post_login(&a, &b, ALICE, ALICE_PASSWORD, "127.0.0.1", &[])
            .await,
    );
    // Pairs an attacker made up: the same value in cookie and field, but not signed here.
    let (rest, _) = a.rsplit_once('.').unwrap();
    for made_up in [
        "attacker-chosen".to_owned(),
        format!("{rest}.{}", "0".repeat(64)),
        format!("evil.{}.{}", i64::MAX, "ab".repeat(32)),
    ] {
        refused(
            &w.post_login(&made_up, &made_up, ALICE, ALICE_PASSWORD, "127.0.0.1", &[])
                .await,
        );
    }
    // A token another server (another database, another key) minted.
    let other = Web::new().await;
    let foreign = other.login_form().await;
    refused(
        &w.post_login(&foreign, &foreign, ALICE, ALICE_PASSWORD, "127.0.0.1", &[])
            .await,
    );
    // Refused tries are not counted as failed passwords.
    assert_eq!(
        w.scalar_i64("SELECT COUNT(*) FROM staff_login_failures")
            .await,
        0
    );
    // Its own browser's token works, and survives a restart (the key is in the database).
    let again = web::router(WebState::new(w.store.clone(), w.cfg.clone(), Status::new()));
    let res = crate::web_support::send(
        &again,
        axum::http::Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("postroom_login={a}"))
            .body(axum::body::Body::from(
                serde_urlencoded::to_string([
                    ("_csrf", a.as_str()),
                    ("name", ALICE),
                    ("password", ALICE_PASSWORD),
                ])
                .unwrap(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
}

#[tokio::test]
async fn a_browser_that_signed_in_before_is_not_locked_out_by_other_peoples_failures() {
    let w = Web::new().await;
    let office = "192.0.2.40";
    let first = w.try_sign_in(ALICE, ALICE_PASSWORD, office).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let known = first
        .cookie("postroom_known")
        .expect("a known-browser cookie");
    let set = first
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("postroom_known="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("Path=/login"),
        "{set}"
    );
    let with = |cookie: &str| vec![("cookie".to_owned(), format!("postroom_known={cookie}"))];
    let try_with = |name: &'static str, password: &'static str, cookie: String| {
        let app = w.app.clone();
        let headers = with(&cookie);
        async move { sign_in_through(app, name.into(), password.into(), office.into(), headers).await }
    };

    // Others elsewhere fill alice's name limit; someone behind the same address sprays other
    // names until the address pauses, then guesses alice's password until the pair locks.
    // (The refusals checked below come right after, without a password check in between, so
    // the 3-second pauses are still running.)
    for i in 0..MAX_FAILURES_NAME - MAX_FAILURES_NAME_AND_IP {
        let res = w
            .try_sign_in(ALICE, "a guess", &format!("198.51.100.{}", i / 5 + 1))
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    for i in 0..MAX_FAILURES_IP - MAX_FAILURES_NAME_AND_IP {
        let res = w.try_sign_in(&format!("other{i}"), "a guess", office).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    for _ in 0..MAX_FAILURES_NAME_AND_IP {
        let res = w.try_sign_in(ALICE, "a guess", office).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = w.try_sign_in(ALICE, ALICE_PASSWORD, "203.0.113.1").await;
    assert_eq!(
        res.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the name is paused"
    );
    // A browser that never signed in is refused…
    let res = w.try_sign_in(ALICE, ALICE_PASSWORD, office).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    // … and so is a made-up "known browser", or alice's browser for another name…
    // (Another first letter of the browser id: the signature no longer matches.)
    let other = if known.starts_with('x') { 'y' } else { 'x' };
    let made_up = format!("{other}{}", &known[1..]);
    let res = try_with(ALICE, ALICE_PASSWORD, made_up).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    let res = try_with("other1", "a guess", known.clone()).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    // … while alice's own browser signs her in, and stays known (same browser id).
    let res = try_with(ALICE, ALICE_PASSWORD, known.clone()).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let renewed = res.cookie("postroom_known").unwrap();
    assert_eq!(renewed.split('.').next(), known.split('.').next());

    // A known browser has a limit of its own: five wrong passwords lock it too.
    for i in 0..MAX_FAILURES_NAME_AND_IP {
        let res = try_with(ALICE, "a guess", renewed.clone()).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    let res = try_with(ALICE, ALICE_PASSWORD, renewed.clone()).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
}
