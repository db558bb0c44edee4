//! Staff sign-in and sessions.
//!
//! - A session is a random token in the cookie `postroom_session` (`HttpOnly; SameSite=Strict;
//!   Path=/`, plus `Secure` when served through a TLS proxy); the database keeps its SHA-256.
//!   It lasts `web.session_ttl` from sign-in and ends at sign-out.
//! - [`guard`] sits in front of every staff page: no live session → the sign-in page; a POST
//!   without the session's CSRF token → 403 before the handler runs.
//! - Sign-in is throttled: after [`MAX_FAILURES_NAME_AND_IP`] failures for one name from one
//!   address within [`FAILURE_WINDOW_MS`], further tries from there are refused without
//!   checking the password; [`MAX_FAILURES_IP`] bounds one address trying many names, and
//!   [`MAX_FAILURES_NAME`] many addresses trying one name.

use super::format::safe_next;
use super::{WebError, WebState, csrf, render_with, see_other};
use crate::password;
use crate::store::journal::{self, NewAuditEvent};
use crate::store::staff::{self, StaffRole};
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
use std::net::SocketAddr;

pub const SESSION_COOKIE: &str = "postroom_session";
/// The sign-in form's double-submit token (there is no session yet to derive one from).
pub const LOGIN_COOKIE: &str = "postroom_login";

pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const MAX_FAILURES_NAME_AND_IP: i64 = 5;
pub const MAX_FAILURES_IP: i64 = 20;
pub const MAX_FAILURES_NAME: i64 = 50;

/// Forms are a few fields; anything larger is not ours.
const MAX_FORM_BYTES: usize = 64 * 1024;

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

/// Whether the browser reached us over HTTPS through the trusted proxy.
fn secure(state: &WebState, headers: &HeaderMap) -> bool {
    state.cfg.web.behind_tls_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
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

/// The client's address: the peer, or behind the TLS proxy the last `X-Forwarded-For` entry
/// (the one our proxy added; earlier entries are whatever the client claimed).
pub struct ClientIp(pub String);

impl FromRequestParts<WebState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .cfg
            .web
            .behind_tls_proxy
            .then(|| {
                parts
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .rfind(|v| !v.is_empty())
                    .map(|v| v.chars().take(64).collect::<String>())
            })
            .flatten();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(ClientIp(
            forwarded.or(peer).unwrap_or_else(|| "unknown".into()),
        ))
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
    headers: &HeaderMap,
    code: StatusCode,
    name: &str,
    next: &str,
    error: Option<String>,
) -> Response {
    let token = password::token(32);
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
            Some(3600),
            secure(state, headers),
        ),
    );
    response
}

pub async fn login_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Some(t) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = staff::session(&state.store, &t).await
    {
        return see_other(&next);
    }
    login_form(&state, &headers, StatusCode::OK, "", &next, None)
}

pub async fn login(
    State(state): State<WebState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !csrf::same(&form.csrf, &expected) {
        return WebError::Forbidden(
            "The sign-in form is out of date or did not come from this site. Open the sign-in page again."
                .into(),
        )
        .into_response();
    }
    let name = form.name.trim().to_ascii_lowercase();
    let now = crate::store::now_ms();
    let failures =
        match staff::recent_failures(&state.store, &name, &ip, now - FAILURE_WINDOW_MS).await {
            Ok(f) => f,
            Err(e) => return WebError::from(e).into_response(),
        };
    if failures.name_and_ip >= MAX_FAILURES_NAME_AND_IP
        || failures.ip >= MAX_FAILURES_IP
        || failures.name >= MAX_FAILURES_NAME
    {
        tracing::warn!(name = %name, ip = %ip, ?failures, "sign-in throttled");
        return login_form(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            &name,
            &next,
            Some(format!(
                "Too many failed sign-ins: signing in as {name} from here is paused for up to 15 minutes. \
                 Wait, then try again; if you have forgotten your password, ask an administrator to set a new one."
            )),
        );
    }
    let member = match staff::verify_login(&state.store, &name, &form.password).await {
        Ok(m) => m,
        Err(e) => return WebError::from(e).into_response(),
    };
    let Some(member) = member else {
        tracing::info!(name = %name, ip = %ip, "sign-in failed");
        if let Err(e) =
            staff::record_failure(&state.store, &name, &ip, now - FAILURE_WINDOW_MS).await
        {
            return WebError::from(e).into_response();
        }
        return login_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            &name,
            &next,
            Some("That name and password do not match a staff account.".into()),
        );
    };
    let ttl_ms = i64::try_from(state.cfg.web.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = async {
        staff::clear_failures(&state.store, &member.name, &ip).await?;
        let token = staff::create_session(&state.store, member.id, ttl_ms, &ip).await?;
        audit(&state, &member.name, "staff.signed_in", json!({ "ip": ip })).await?;
        Ok::<_, WebError>(token)
    };
    let token = match session.await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    tracing::info!(staff = %member.name, ip = %ip, "signed in");
    let secure = secure(&state, &headers);
    let mut response = see_other(&next);
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, "/", None, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/login", Some(0), secure),
    );
    response
}

/// Sign out: the session ends in the database, the cookie is cleared.
pub async fn logout(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    headers: HeaderMap,
) -> Response {
    if let Some(t) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = staff::end_session(&state.store, &t).await {
            return WebError::from(e).into_response();
        }
        if let Err(e) = audit(&state, &me.name, "staff.signed_out", json!({})).await {
            return e.into_response();
        }
    }
    let mut response = see_other("/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", Some(0), secure(&state, &headers)),
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
