//! The staff web page: the review queue, request search, directory, audit trail and outbox,
//! plus `/healthz` and `/metrics` for monitoring.
//!
//! Server-rendered HTML (askama templates in `templates/`, escaped by default), one stylesheet,
//! no JavaScript needed: every action is a plain form POST carrying a CSRF token. Two small
//! scripts of our own, served from here, add to it: `static/presence.js` refreshes a request
//! page's "who else is on it" notice, `static/keys.js` gives the keyboard shortcuts; without
//! them the page works the same. The staff actions
//! themselves live in [`crate::review`] and the store; this module only shows and forwards.
//!
//! ```text
//! mod.rs        state, router, serve(), errors, rendering
//! auth.rs       sign in / out, sessions, throttling, the guard in front of staff pages
//! access.rs     who may use which route (the roles), checked on every staff route
//! csrf.rs       per-session tokens and the check on every POST
//! security.rs   response headers (CSP, nosniff, …)
//! format.rs     times, ages, query strings, form values
//! reasons.rs    a stored reason code back to its sentence
//! pages/        one module per page
//! ```

pub mod access;
pub mod auth;
pub mod config;
pub mod csrf;
pub mod format;
pub mod pages;
pub mod reasons;
pub mod security;

pub use crate::status::{ImapState, Status, StatusSnapshot};

use crate::config::Config;
use crate::store::{Store, StoreError};
use access::Access;
use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What every handler can reach.
#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub cfg: Arc<Config>,
    pub status: Status,
    /// The bound on concurrent password hashing, shared by every request of this process.
    pub checks: Arc<auth::PasswordChecks>,
    /// The sign-in form's signing key, read from the database once.
    pub login_key: Arc<tokio::sync::OnceCell<String>>,
}

impl WebState {
    pub fn new(store: Store, cfg: Arc<Config>, status: Status) -> WebState {
        WebState {
            store,
            cfg,
            status,
            checks: Arc::default(),
            login_key: Arc::default(),
        }
    }
}

/// One route: method, path, who may use it, and its handler.
struct Route {
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<WebState>,
}

/// Every route of the staff page, with who may use it: the only list (see [`access`]).
fn table() -> Vec<Route> {
    use Access::{Admin, Public, Staff};
    let r = |method: Method, path, access, handler| Route {
        method,
        path,
        access,
        handler,
    };
    let (g, p) = (Method::GET, Method::POST);
    vec![
        r(g.clone(), "/login", Public, get(auth::login_page)),
        r(p.clone(), "/login", Public, post(auth::login)),
        r(g.clone(), "/healthz", Public, get(pages::health::healthz)),
        r(g.clone(), "/metrics", Public, get(pages::health::metrics)),
        r(g.clone(), "/static/style.css", Public, get(stylesheet)),
        r(g.clone(), "/static/favicon.svg", Public, get(favicon)),
        r(
            g.clone(),
            "/static/presence.js",
            Public,
            get(presence_script),
        ),
        r(g.clone(), "/static/keys.js", Public, get(keys_script)),
        r(g.clone(), "/", Staff, get(pages::queue::page)),
        r(g.clone(), "/queue", Staff, get(pages::queue::page)),
        r(p.clone(), "/queue/bulk", Staff, post(pages::bulk::bulk)),
        r(g.clone(), "/requests", Staff, get(pages::requests::page)),
        r(
            g.clone(),
            "/requests/{reference}",
            Staff,
            get(pages::request::page),
        ),
        r(
            p.clone(),
            "/requests/{reference}/apply",
            Staff,
            post(pages::request::apply),
        ),
        r(
            p.clone(),
            "/requests/{reference}/reject",
            Staff,
            post(pages::request::reject),
        ),
        r(
            p.clone(),
            "/requests/{reference}/comment",
            Staff,
            post(pages::request::comment),
        ),
        r(
            p.clone(),
            "/requests/{reference}/claim",
            Staff,
            post(pages::request::claim),
        ),
        r(
            p.clone(),
            "/requests/{reference}/release",
            Staff,
            post(pages::request::release),
        ),
        r(
            p.clone(),
            "/requests/{reference}/merge",
            Staff,
            post(pages::merge::merge),
        ),
        r(
            p.clone(),
            "/requests/{reference}/presence",
            Staff,
            post(pages::presence::beat),
        ),
        r(
            p.clone(),
            "/requests/{reference}/jobs/{id}/done",
            Staff,
            post(pages::request::job_done),
        ),
        r(
            p.clone(),
            "/requests/{reference}/jobs/{id}/retry",
            Staff,
            post(pages::request::retry_job),
        ),
        r(
            g.clone(),
            "/messages/{id}",
            Staff,
            get(pages::message::page),
        ),
        r(g.clone(), "/directory", Staff, get(pages::directory::page)),
        r(
            g.clone(),
            "/directory/history",
            Staff,
            get(pages::history::page),
        ),
        r(g.clone(), "/audit", Staff, get(pages::audit::page)),
        // A bulk export of personal data (every account, address and decision).
        r(g.clone(), "/audit.csv", Admin, get(pages::audit::csv)),
        r(g.clone(), "/audit/report", Staff, get(pages::report::page)),
        // The report's downloads: a bulk copy of personal data, like the audit export.
        r(
            g.clone(),
            "/audit/report.csv",
            Admin,
            get(pages::report::csv),
        ),
        r(
            g.clone(),
            "/audit/report.json",
            Admin,
            get(pages::report::json),
        ),
        // Saved searches (issue 17): each member's own, checked by the store.
        r(
            p.clone(),
            "/searches",
            Staff,
            post(pages::saved_searches::save),
        ),
        r(
            p.clone(),
            "/searches/{id}/delete",
            Staff,
            post(pages::saved_searches::delete),
        ),
        // Saved replies (issue 17): used by every member, kept by admins.
        r(
            g.clone(),
            "/replies",
            Admin,
            get(pages::saved_replies::page),
        ),
        r(
            p.clone(),
            "/replies",
            Admin,
            post(pages::saved_replies::add),
        ),
        r(
            p.clone(),
            "/replies/{id}",
            Admin,
            post(pages::saved_replies::update),
        ),
        r(
            p.clone(),
            "/replies/{id}/delete",
            Admin,
            post(pages::saved_replies::delete),
        ),
        r(g.clone(), "/outbox", Staff, get(pages::outbox::page)),
        r(
            p.clone(),
            "/outbox/{id}/retry",
            Staff,
            post(pages::outbox::retry),
        ),
        r(g.clone(), "/staff", Admin, get(pages::staff::page)),
        r(p.clone(), "/staff", Admin, post(pages::staff::add)),
        r(
            p.clone(),
            "/staff/{name}/disable",
            Admin,
            post(pages::staff::disable),
        ),
        r(
            p.clone(),
            "/staff/{name}/enable",
            Admin,
            post(pages::staff::enable),
        ),
        r(
            p.clone(),
            "/staff/{name}/password",
            Admin,
            post(pages::staff::password),
        ),
        r(
            p.clone(),
            "/staff/{name}/role",
            Admin,
            post(pages::staff::role),
        ),
        r(p, "/logout", Staff, post(auth::logout)),
    ]
}

/// Every route as (method, path, who may use it), for tests and documentation.
pub fn routes() -> Vec<(Method, &'static str, Access)> {
    table()
        .into_iter()
        .map(|r| (r.method, r.path, r.access))
        .collect()
}

/// Every route. Staff routes sit behind [`auth::guard`] (a live session; the CSRF token of
/// every POST), then [`access::require`] with the route's [`Access`].
pub fn router(state: WebState) -> Router {
    let mut public = Router::new();
    let mut staff_pages = Router::new();
    for route in table() {
        match route.access {
            Access::Public => public = public.route(route.path, route.handler),
            access => {
                let handler = route
                    .handler
                    .route_layer(axum::middleware::from_fn_with_state(
                        access,
                        access::require,
                    ));
                staff_pages = staff_pages.route(route.path, handler);
            }
        }
    }
    let staff_pages = staff_pages.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::guard,
    ));
    public
        .merge(staff_pages)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(state)
}

/// Serve the staff page on `listener` until `shutdown` is cancelled, then finish the requests
/// in flight and return.
///
/// `status` is the handle the daemon updates (see [`Status`]); a process without a daemon
/// passes `Status::new()` and `/healthz` leaves IMAP out.
pub async fn serve(
    store: Store,
    cfg: Arc<Config>,
    listener: TcpListener,
    shutdown: CancellationToken,
    status: Status,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "staff page listening");
    let app = router(WebState::new(store, cfg, status));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Static files: compiled in, so the binary is the whole deployment.

const STYLESHEET: &str = include_str!("../../static/style.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");
const PRESENCE_SCRIPT: &str = include_str!("../../static/presence.js");
const KEYS_SCRIPT: &str = include_str!("../../static/keys.js");

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", STYLESHEET)
}

async fn favicon() -> Response {
    static_file("image/svg+xml", FAVICON)
}

async fn presence_script() -> Response {
    static_file("text/javascript; charset=utf-8", PRESENCE_SCRIPT)
}

async fn keys_script() -> Response {
    static_file("text/javascript; charset=utf-8", KEYS_SCRIPT)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    WebError::NotFound("There is no such page.".into()).into_response()
}

// ---------------------------------------------------------------------------------------------
// Errors and rendering.

/// Why a page could not be shown. Internal errors are logged in full and shown vaguely: the
/// page must not leak database messages.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        WebError::Internal(e.to_string())
    }
}

impl From<crate::store::staff::StaffError> for WebError {
    fn from(e: crate::store::staff::StaffError) -> Self {
        WebError::Internal(e.to_string())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (code, title, message) = match &self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.as_str()),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Not understood", m.as_str()),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Refused", m.as_str()),
            WebError::Internal(m) => {
                tracing::error!(error = %m, "staff page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The page could not be made; the reason is in postroom's log.",
                )
            }
        };
        let page = ErrorPage { title, message };
        match page.render() {
            Ok(html) => (code, html_headers(), html).into_response(),
            Err(_) => (code, message.to_owned()).into_response(),
        }
    }
}

fn html_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    )]
}

/// Render a template as a page with `code`.
pub fn render_with(code: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (code, html_headers(), html).into_response(),
        Err(e) => WebError::Internal(format!("template: {e}")).into_response(),
    }
}

pub fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

/// A 303 to a path this module built. Never panics: a path that is not a valid header value
/// (it cannot be, but the check is cheap) goes to the queue instead.
pub fn see_other(path: &str) -> Response {
    let location = HeaderValue::from_str(path).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}
