//! Response headers every answer carries.
//!
//! The page runs no script but its own: the Content-Security-Policy allows scripts only from
//! the page's own address (`static/presence.js`, the request page's presence notice, and
//! `static/keys.js`, the keyboard shortcuts), never
//! inline, and no inline style; an email that smuggled markup past the templates' escaping
//! still could not run or load anything. `frame-ancestors 'none'` (and the older `X-Frame-Options`) stops the
//! forms being framed for click-jacking.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages show personal data and carry CSRF tokens: no shared or disk cache keeps them.
    // The stylesheet sets its own, longer rule.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
