//! The staff web page: the review queue, request search, directory, audit trail and outbox,
//! plus `/healthz` and `/metrics` for monitoring.
//!
//! Server-rendered HTML (askama templates in `templates/`, escaped by default), one stylesheet,
//! no JavaScript: every action is a plain form POST carrying a CSRF token. The staff actions
//! themselves live in [`crate::review`] and the store; this module only shows and forwards.
//!
//! ```text
//! mod.rs        state, router, serve(), errors, rendering
//! auth.rs       sign in / out, sessions, throttling, the guard in front of staff pages
//! csrf.rs       per-session tokens and the check on every POST
//! security.rs   response headers (CSP, nosniff, …)
//! format.rs     times, ages, query strings, form values
//! reasons.rs    a stored reason code back to its sentence
//! pages/        one module per page
//! ```

pub mod auth;
pub mod csrf;
pub mod format;
pub mod pages;
pub mod reasons;
pub mod security;

pub use crate::status::{ImapState, Status, StatusSnapshot};

use crate::config::Config;
use crate::store::{Store, StoreError};
use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
}

impl WebState {
    pub fn new(store: Store, cfg: Arc<Config>, status: Status) -> WebState {
        WebState { store, cfg, status }
    }
}

/// Every route. Pages other than `/login`, `/healthz`, `/metrics` and `/static/…` sit behind
/// [`auth::guard`], which also checks the CSRF token of every POST.
pub fn router(state: WebState) -> Router {
    let staff_pages = Router::new()
        .route("/", get(pages::queue::page))
        .route("/queue", get(pages::queue::page))
        .route("/requests", get(pages::requests::page))
        .route("/requests/{reference}", get(pages::request::page))
        .route("/requests/{reference}/apply", post(pages::request::apply))
        .route("/requests/{reference}/reject", post(pages::request::reject))
        .route(
            "/requests/{reference}/comment",
            post(pages::request::comment),
        )
        .route("/messages/{id}", get(pages::message::page))
        .route("/directory", get(pages::directory::page))
        .route("/audit", get(pages::audit::page))
        .route("/audit.csv", get(pages::audit::csv))
        .route("/outbox", get(pages::outbox::page))
        .route("/outbox/{id}/retry", post(pages::outbox::retry))
        .route("/logout", post(auth::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/healthz", get(pages::health::healthz))
        .route("/metrics", get(pages::health::metrics))
        .route("/static/style.css", get(stylesheet))
        .route("/static/favicon.svg", get(favicon))
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

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", STYLESHEET)
}

async fn favicon() -> Response {
    static_file("image/svg+xml", FAVICON)
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

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
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
