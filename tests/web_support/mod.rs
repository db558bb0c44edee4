//! Shared by the staff page tests: a throw-away instance (fixture directory imported, data
//! made by running fixture emails through the real pipeline), a staff member, and a client
//! that drives the router in-process as a browser would: cookies, CSRF tokens from the
//! page, forms.

#![allow(dead_code)]

use crate::support::Instance;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use postroom::config::Config;
use postroom::store::Store;
use postroom::store::staff::{self, StaffRole};
use postroom::web::{self, Status, WebState};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

/// The staff member every test signs in as: an admin, so that every page is hers (the
/// agent's view is [`Web::agent`]).
pub const ALICE: &str = "alice";
pub const ALICE_PASSWORD: &str = "correct horse battery staple";
/// An agent, added by [`Web::agent`].
pub const AGENT: &str = "adam";
pub const AGENT_PASSWORD: &str = "an agent's long password";

pub struct Web {
    pub instance: Instance,
    pub store: Store,
    pub cfg: Arc<Config>,
    pub status: Status,
    pub state: WebState,
    pub app: Router,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The value a `Set-Cookie` gives cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    }

    /// The first hidden `_csrf` value on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field on the page:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

/// A signed-in browser: its session cookie and the CSRF token its pages carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Web {
    /// The fixture directory, alice (agent) as staff, nothing processed yet.
    pub async fn new() -> Web {
        Web::with_config("").await
    }

    /// Like [`Web::new`] with `extra` appended to the config.
    pub async fn with_config(extra: &str) -> Web {
        let instance = Instance::with_directory(extra);
        let cfg = Arc::new(Config::load(&instance.config).unwrap());
        let store = Store::open(&cfg.database).await.unwrap();
        staff::add(&store, ALICE, StaffRole::Admin, ALICE_PASSWORD)
            .await
            .unwrap();
        let status = Status::new();
        let state = WebState::new(store.clone(), cfg.clone(), status.clone());
        let app = web::router(state.clone());
        Web {
            instance,
            store,
            cfg,
            status,
            state,
            app,
        }
    }

    /// Add the agent [`AGENT`] and sign in as them.
    pub async fn agent(&self) -> Session {
        staff::add(&self.store, AGENT, StaffRole::Agent, AGENT_PASSWORD)
            .await
            .unwrap();
        self.sign_in_as(AGENT, AGENT_PASSWORD).await
    }

    /// Run a fixture email through the real pipeline (the `process` command); its reference.
    pub fn process_fixture(&self, name: &str) -> String {
        let v = self.instance.process_fixture(name);
        v["reference"].as_str().unwrap().to_owned()
    }

    /// Run an email given as text through the pipeline; the JSON line `process` printed.
    pub fn process_text(&self, file_name: &str, text: &str) -> serde_json::Value {
        let path: PathBuf = self.instance.dir.path().join(file_name);
        std::fs::write(&path, text.replace('\n', "\r\n")).unwrap();
        let mut out = self.instance.process(&[path.as_path()], false);
        out.remove(0)
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        send(&self.app, req).await
    }

    pub async fn get(&self, path: &str, session: Option<&Session>) -> Answer {
        let mut b = Request::builder().method(Method::GET).uri(path);
        if let Some(s) = session {
            b = b.header(header::COOKIE, format!("postroom_session={}", s.cookie));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// POST a form (already urlencoded pairs) with the session's cookie; the CSRF token is the
    /// caller's business (so tests can leave it out or get it wrong).
    pub async fn post(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        session: Option<&Session>,
    ) -> Answer {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(s) = session {
            b = b.header(header::COOKIE, format!("postroom_session={}", s.cookie));
        }
        let body = serde_urlencoded::to_string(pairs).unwrap();
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// POST a form as the page would: with the session's CSRF token.
    pub async fn submit(&self, path: &str, pairs: &[(&str, &str)], session: &Session) -> Answer {
        let mut all: Vec<(&str, &str)> = vec![("_csrf", session.csrf.as_str())];
        all.extend_from_slice(pairs);
        self.post(path, &all, Some(session)).await
    }

    /// Try to sign in from `ip` as a browser does: open the form, send it back.
    pub async fn try_sign_in(&self, name: &str, password: &str, ip: &str) -> Answer {
        let token = self.login_form().await;
        self.post_login(&token, &token, name, password, ip, &[])
            .await
    }

    /// Open the sign-in form as a new browser: the token its cookie and field carry.
    pub async fn login_form(&self) -> String {
        let form = self.get("/login", None).await;
        assert_eq!(form.status, StatusCode::OK);
        let token = form
            .cookie("postroom_login")
            .expect("the sign-in form sets its cookie");
        assert_eq!(form.csrf(), token);
        token
    }

    /// POST the sign-in form with this cookie and this `_csrf` field, from peer `ip`, with
    /// extra headers.
    pub async fn post_login(
        &self,
        cookie: &str,
        field: &str,
        name: &str,
        password: &str,
        ip: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let token = field;
        let body = serde_urlencoded::to_string([
            ("_csrf", token),
            ("name", name),
            ("password", password),
            ("next", "/"),
        ])
        .unwrap();
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("postroom_login={cookie}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(Body::from(body)).unwrap();
        let addr: SocketAddr = format!("{ip}:50000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        self.send(req).await
    }

    /// Sign in as alice and read the CSRF token from the queue page.
    pub async fn sign_in(&self) -> Session {
        self.sign_in_as(ALICE, ALICE_PASSWORD).await
    }

    pub async fn sign_in_as(&self, name: &str, password: &str) -> Session {
        let res = self.try_sign_in(name, password, "127.0.0.1").await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let cookie = res.cookie("postroom_session").expect("a session cookie");
        let mut session = Session {
            cookie,
            csrf: String::new(),
        };
        let page = self.get("/queue", Some(&session)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        session.csrf = page.csrf();
        session
    }

    /// One value from the database.
    pub async fn scalar_i64(&self, sql: &'static str) -> i64 {
        let mut c = self.store.read().await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut *c).await.unwrap()
    }

    pub async fn outcome(&self, reference: &str) -> String {
        let mut c = self.store.read().await.unwrap();
        sqlx::query_scalar("SELECT outcome FROM requests WHERE reference = $1")
            .bind(reference)
            .fetch_one(&mut *c)
            .await
            .unwrap()
    }
}

/// Send one request through `app`, read the answer whole.
pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// As a browser would, through `app` (any instance): open the sign-in form, send it back
/// from peer `ip` with `headers`. For tests that sign in from many tasks at once.
pub async fn sign_in_through(
    app: Router,
    name: String,
    password: String,
    ip: String,
    headers: Vec<(String, String)>,
) -> Answer {
    let form = send(
        &app,
        Request::builder()
            .uri("/login")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let token = form.cookie("postroom_login").expect("a sign-in cookie");
    let body = serde_urlencoded::to_string([
        ("_csrf", token.as_str()),
        ("name", &name),
        ("password", &password),
    ])
    .unwrap();
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("postroom_login={token}"));
    for (k, v) in &headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let mut req = b.body(Body::from(body)).unwrap();
    let addr: SocketAddr = format!("{ip}:50000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    send(&app, req).await
}

/// Every header a page must carry.
pub fn assert_security_headers(a: &Answer) {
    let h = |name: &str| {
        a.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("missing {name}"))
            .to_owned()
    };
    let csp = h("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert_eq!(h("referrer-policy"), "same-origin");
}
