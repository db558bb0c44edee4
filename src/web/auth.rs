//! Staff sign-in and sessions.
//!
//! - A session is a random token in the cookie `postroom_session` (`HttpOnly; SameSite=Strict;
//!   Path=/`, plus `Secure` when served through a TLS proxy); the database keeps its SHA-256.
//!   It lasts `web.session_ttl` from sign-in and ends at sign-out, or at once when the staff
//!   member is disabled or given a new password.
//! - [`guard`] sits in front of every staff page: no live session → the sign-in page; a POST
//!   without the session's CSRF token → 403 before the handler runs. Which role a route needs
//!   is checked next, by [`super::access`].
//! - Sign-in is throttled (issue 13), in the database so that every instance shares it, and
//!   each try is counted *before* its password is checked ([`staff::reserve_try`]), so tries
//!   sent at once cannot all pass one count:
//!   - [`MAX_FAILURES_NAME_AND_IP`] failures for one name from one address within
//!     [`FAILURE_WINDOW_MS`]: that name is refused from there for the rest of the window;
//!   - [`MAX_FAILURES_IP`] from one address (any names), or [`MAX_FAILURES_NAME`] for one name
//!     (any addresses): one try per [`PAUSE_MS`] from there / for it — a pause, not a lockout,
//!     so a correct password still gets in after it;
//!   - a browser that signed in as that name before (a signed cookie, [`KNOWN_COOKIE`]) is
//!     counted on its own: [`MAX_FAILURES_NAME_AND_IP`] failures for the name from *that
//!     browser*, whatever other people's failures from its address or for its name.
//! - At most [`MAX_CONCURRENT_CHECKS`] passwords are checked at once (each Argon2 check takes
//!   ~19 MiB): a try that cannot start within [`CHECK_WAIT`] is answered 429, so memory stays
//!   bounded whatever arrives ([`PasswordChecks`]).
//! - The client's address is the peer's, or — only when the peer is one of
//!   `[web] trusted_proxies` — the one `X-Forwarded-For` names ([`Client`]).

use super::format::safe_next;
use super::{WebError, WebState, csrf, render_with, see_other};
use crate::action::AuditAction;
use crate::store::journal::{self, NewAuditEvent};
use crate::store::staff::{self, Reservation, StaffRole, ThrottleLimits};
use askama::Template;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

pub const SESSION_COOKIE: &str = "postroom_session";
/// The sign-in form's signed token ([`csrf::LoginToken`]; there is no session yet).
pub const LOGIN_COOKIE: &str = "postroom_login";
/// A browser someone signed in from ([`csrf::KnownBrowser`]).
pub const KNOWN_COOKIE: &str = "postroom_known";

pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const MAX_FAILURES_NAME_AND_IP: i64 = 5;
pub const MAX_FAILURES_IP: i64 = 20;
pub const MAX_FAILURES_NAME: i64 = 50;
/// Over the per-address or per-name limit: one try per this long.
pub const PAUSE_MS: i64 = 3000;

pub const THROTTLE: ThrottleLimits = ThrottleLimits {
    window_ms: FAILURE_WINDOW_MS,
    max_name_and_ip: MAX_FAILURES_NAME_AND_IP,
    max_ip: MAX_FAILURES_IP,
    max_name: MAX_FAILURES_NAME,
    pause_ms: PAUSE_MS,
};

/// Password checks (Argon2, ~19 MiB each) running at once in this process, at most.
pub const MAX_CONCURRENT_CHECKS: usize = 4;
/// How long a try waits for a check to be free before it is answered 429.
pub const CHECK_WAIT: Duration = Duration::from_secs(2);

/// Forms are a few fields; anything larger is not ours.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The bound on concurrent password hashing (issue 13: 50 tries at once took the server from
/// 27 MB to 1 GB). Every Argon2 the page runs — signing in, and an admin setting a password —
/// goes through [`PasswordChecks::run`].
#[derive(Debug)]
pub struct PasswordChecks {
    permits: Semaphore,
    running: AtomicUsize,
    peak: AtomicUsize,
    checked: AtomicU64,
    busy: AtomicU64,
    throttled: AtomicU64,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        PasswordChecks {
            permits: Semaphore::new(MAX_CONCURRENT_CHECKS),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            checked: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }
}

impl PasswordChecks {
    /// Run `check` once a permit is free; `None` (and nothing run) when none frees up within
    /// [`CHECK_WAIT`].
    pub async fn run<T>(&self, check: impl Future<Output = T>) -> Option<T> {
        let Ok(Ok(_permit)) = tokio::time::timeout(CHECK_WAIT, self.permits.acquire()).await else {
            self.busy.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let out = check.await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.checked.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    /// Passwords checked (hashes run), since start.
    pub fn checked(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    /// Sign-in tries the throttle refused (locked or paused) before any check, since start.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    fn note_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Tries answered "busy" because no check was free in time.
    pub fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }
}

/// The signed-in staff member, put in the request by [`guard`] for the handlers.
#[derive(Debug, Clone)]
pub struct Staff {
    pub name: String,
    pub role: StaffRole,
    /// The token every form on the page must send back.
    pub csrf: String,
}

/// The value of cookie `name`, from any `Cookie:` header.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
    secure: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    // Built only from our own tokens and constants; a failure would be a bug, and the
    // fallback simply sets nothing useful.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// Who is asking: the client's address, and whether the browser reached us over HTTPS.
///
/// `X-Forwarded-For` and `X-Forwarded-Proto` are believed only when the peer is one of
/// `[web] trusted_proxies`; from anyone else they are whatever the client chose to write
/// (issue 13: a forged address per try escaped the per-address limit). The address is then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: String,
    pub https: bool,
}

impl Client {
    pub fn of(state: &WebState, parts: &Parts) -> Client {
        let web = &state.cfg.web;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let Some(peer) = peer else {
            return Client {
                ip: "unknown".into(),
                https: false,
            };
        };
        if !web.trusts(peer) {
            return Client {
                ip: peer.to_string(),
                https: false,
            };
        }
        let entries: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        let forwarded = entries
            .iter()
            .rev()
            .find(|e| !e.parse::<IpAddr>().is_ok_and(|ip| web.trusts(ip)))
            .or(entries.first())
            .map(|v| v.chars().take(64).collect::<String>());
        let https = web.behind_tls_proxy
            && parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        Client {
            ip: forwarded.unwrap_or_else(|| peer.to_string()),
            https,
        }
    }
}

impl FromRequestParts<WebState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client::of(state, parts))
    }
}

/// In front of every staff page: a live session or the sign-in page; for a POST, the CSRF
/// token too.
pub async fn guard(State(state): State<WebState>, request: Request, next: Next) -> Response {
    let token = cookie(request.headers(), SESSION_COOKIE);
    let member = match &token {
        Some(t) => match staff::session(&state.store, t).await {
            Ok(m) => m,
            Err(e) => return WebError::from(e).into_response(),
        },
        None => None,
    };
    let (Some(member), Some(token)) = (member, token) else {
        return to_login(&request);
    };
    let expected = csrf::token_for_session(&token);
    let mut request = request;
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
        };
        let given = csrf::from_form(&bytes);
        if !given.is_some_and(|g| csrf::same(&g, &expected)) {
            tracing::warn!(staff = %member.name, path = %parts.uri.path(), "POST refused: missing or wrong CSRF token");
            return WebError::Forbidden(
                "This form is out of date or did not come from this site, so nothing was done. \
                 Go back, reload the page and try again."
                    .into(),
            )
            .into_response();
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(Staff {
        name: member.name,
        role: member.role,
        csrf: expected,
    });
    next.run(request).await
}

fn to_login(request: &Request) -> Response {
    // After signing in, come back to the page that was asked for (never to a form target).
    let next = (request.method() == Method::GET)
        .then(|| {
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
        })
        .flatten()
        .filter(|p| p != "/");
    see_other(&format!(
        "/login{}",
        super::format::query(&[("next", next)])
    ))
}

// ---------------------------------------------------------------------------------------------
// The sign-in page.

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    helpdesk: String,
    name: String,
    next: String,
    csrf: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
    next: Option<String>,
}

fn login_form(
    state: &WebState,
    client: &Client,
    key: &[u8],
    code: StatusCode,
    name: &str,
    next: &str,
    error: Option<String>,
) -> Response {
    let token = csrf::LoginToken::mint(key, crate::store::now_ms());
    let page = LoginPage {
        helpdesk: state.cfg.helpdesk.name.clone(),
        name: name.to_owned(),
        next: next.to_owned(),
        csrf: token.clone(),
        error,
    };
    let mut response = render_with(code, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            &token,
            "/login",
            Some(csrf::LOGIN_TOKEN_TTL_MS / 1000),
            client.https,
        ),
    );
    response
}

/// The key the sign-in form's token is signed with (the database's `web_keys`, cached).
async fn login_key(state: &WebState) -> Result<Vec<u8>, WebError> {
    let key = state
        .login_key
        .get_or_try_init(|| staff::web_key(&state.store, "login"))
        .await?;
    Ok(key.as_bytes().to_vec())
}

pub async fn login_page(
    State(state): State<WebState>,
    client: Client,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Some(t) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = staff::session(&state.store, &t).await
    {
        return see_other(&next);
    }
    match login_key(&state).await {
        Ok(key) => login_form(&state, &client, &key, StatusCode::OK, "", &next, None),
        Err(e) => e.into_response(),
    }
}

fn retry_after(mut response: Response, ms: i64) -> Response {
    let secs = (ms.max(0) + 999) / 1000;
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

pub async fn login(
    State(state): State<WebState>,
    client: Client,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let key = match login_key(&state).await {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let given = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !csrf::LoginToken::check(&key, &given, &form.csrf, crate::store::now_ms()) {
        return WebError::Forbidden(
            "The sign-in form is out of date or did not come from this site. Open the sign-in page again."
                .into(),
        )
        .into_response();
    }
    let ip = client.ip.clone();
    let name = form.name.trim().to_ascii_lowercase();
    let again = |code: StatusCode, message: String| {
        login_form(&state, &client, &key, code, &name, &next, Some(message))
    };
    let browser = cookie(&headers, KNOWN_COOKIE)
        .and_then(|t| csrf::KnownBrowser::check(&key, &t, &name, crate::store::now_ms()));
    let (from, shared) = match &browser {
        Some(b) => (format!("browser:{b}"), false),
        None => (ip.clone(), true),
    };
    let id = match staff::reserve_try(&state.store, &name, &from, shared, THROTTLE).await {
        Ok(Reservation::Granted { id }) => id,
        Ok(Reservation::Locked { retry_after_ms }) => {
            state.checks.note_throttled();
            tracing::warn!(name = ?name, ip = ?ip, "sign-in throttled: too many failures for this name from this address");
            let minutes = (retry_after_ms + 59_999) / 60_000;
            return retry_after(
                again(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many failed sign-ins: signing in as {name} from here is paused for {minutes} more minute{}. \
                         Wait, then try again; if you have forgotten your password, ask an administrator to set a new one.",
                        if minutes == 1 { "" } else { "s" }
                    ),
                ),
                retry_after_ms,
            );
        }
        Ok(Reservation::Paused { retry_after_ms }) => {
            state.checks.note_throttled();
            tracing::warn!(name = ?name, ip = ?ip, "sign-in paused: many failures from this address or for this name");
            let secs = (retry_after_ms + 999) / 1000;
            return retry_after(
                again(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many failed sign-ins from here or for this name: tries are slowed down. \
                         Wait {secs} second{} and try again.",
                        if secs == 1 { "" } else { "s" }
                    ),
                ),
                retry_after_ms,
            );
        }
        Err(e) => return WebError::from(e).into_response(),
    };
    let checked = state
        .checks
        .run(staff::verify_login(&state.store, &name, &form.password))
        .await;
    let member = match checked {
        None => {
            // Never checked: it is no failure.
            tracing::warn!(name = ?name, ip = ?ip, "sign-in refused: too many password checks at once");
            if let Err(e) = staff::withdraw_try(&state.store, id).await {
                return WebError::from(e).into_response();
            }
            return retry_after(
                again(
                    StatusCode::TOO_MANY_REQUESTS,
                    "The server is busy checking other sign-ins. Wait a moment and try again."
                        .into(),
                ),
                1000,
            );
        }
        Some(Ok(m)) => m,
        Some(Err(e)) => return WebError::from(e).into_response(),
    };
    let Some(member) = member else {
        // The reserved row stays: it is this failure.
        tracing::info!(name = ?name, ip = ?ip, "sign-in failed");
        return again(
            StatusCode::UNAUTHORIZED,
            "That name and password do not match a staff account.".into(),
        );
    };
    let ttl_ms = i64::try_from(state.cfg.web.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = async {
        staff::try_succeeded(&state.store, id, &member.name, &from).await?;
        let token = staff::create_session(&state.store, member.id, ttl_ms, &ip).await?;
        audit(
            &state,
            &member.name,
            AuditAction::StaffSignedIn.as_str(),
            json!({ "ip": ip }),
        )
        .await?;
        Ok::<_, WebError>(token)
    };
    let token = match session.await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    tracing::info!(staff = %member.name, ip = %ip, "signed in");
    let mut response = see_other(&next);
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, "/", None, client.https),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/login", Some(0), client.https),
    );
    let known = csrf::KnownBrowser::mint(
        &key,
        &member.name,
        browser.as_deref(),
        crate::store::now_ms(),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(
            KNOWN_COOKIE,
            &known,
            "/login",
            Some(csrf::KNOWN_BROWSER_TTL_MS / 1000),
            client.https,
        ),
    );
    response
}

/// Sign out: the session ends in the database, the cookie is cleared.
pub async fn logout(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    if let Some(t) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = staff::end_session(&state.store, &t).await {
            return WebError::from(e).into_response();
        }
        if let Err(e) = audit(
            &state,
            &me.name,
            AuditAction::StaffSignedOut.as_str(),
            json!({}),
        )
        .await
        {
            return e.into_response();
        }
    }
    let mut response = see_other("/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", Some(0), client.https),
    );
    response
}

async fn audit(
    state: &WebState,
    name: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), WebError> {
    let mut conn = state.store.read().await?;
    let actor = format!("staff:{name}");
    journal::insert_audit(
        &mut conn,
        &NewAuditEvent {
            actor: &actor,
            on_behalf_of: None,
            action,
            subject: Some(&actor),
            detail,
            request_id: None,
            message_id: None,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; postroom_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn session_cookies_are_strict_and_secure_only_over_tls() {
        let c = set_cookie(SESSION_COOKIE, "t", "/", None, false);
        assert_eq!(c, "postroom_session=t; HttpOnly; SameSite=Strict; Path=/");
        let c = set_cookie(SESSION_COOKIE, "t", "/", None, true);
        assert!(c.to_str().unwrap().ends_with("; Secure"));
    }
}
