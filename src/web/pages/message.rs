//! `/messages/{id}`: one stored email as postroom read it, and the requests it became. The
//! email view is shared with the request page.
//!
//! An email is shown as text only: its headers as they came, its body as `message::parse`
//! reads it (an HTML-only email already rendered to text). Every value goes through the
//! templates' HTML escaping; nothing from a message is ever put in a response header.

use super::Layout;
use crate::message;
use crate::store::views::{self, StoredMessage};
use crate::web::auth::Staff;
use crate::web::format::time;
use crate::web::{WebError, WebState, render};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;

/// Headers shown up front; the rest are one click away.
const KEY_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "date",
    "subject",
    "message-id",
    "in-reply-to",
    "return-path",
    "authentication-results",
];

/// Longest body shown: more is cut with a note (the raw message stays in the database).
const MAX_TEXT_CHARS: usize = 100_000;

pub struct EmailView {
    pub id: i64,
    pub from: String,
    pub subject: String,
    pub key_headers: Vec<(String, String)>,
    pub all_headers: Vec<(String, String)>,
    pub text: String,
    pub text_cut: bool,
    pub unparsable: bool,
    pub size: i64,
    pub received: String,
    pub source: String,
    pub sha256: String,
}

impl EmailView {
    pub fn new(stored: &StoredMessage) -> EmailView {
        let parsed = message::parse(&stored.raw);
        let from = match (&parsed.from_name, &parsed.from) {
            (Some(n), Some(a)) if !n.trim().is_empty() => format!("{} <{a}>", n.trim()),
            (_, Some(a)) => a.clone(),
            _ => stored.from_address.clone().unwrap_or_default(),
        };
        let key_headers = KEY_HEADERS
            .iter()
            .flat_map(|k| {
                parsed
                    .header_values(k)
                    .map(|v| (display_name(k), v.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let all_headers = parsed
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let text_cut = parsed.text.chars().count() > MAX_TEXT_CHARS;
        let text = if text_cut {
            parsed.text.chars().take(MAX_TEXT_CHARS).collect()
        } else {
            parsed.text.clone()
        };
        EmailView {
            id: stored.id,
            from,
            subject: if parsed.subject.is_empty() {
                stored.subject.clone()
            } else {
                parsed.subject.clone()
            },
            key_headers,
            all_headers,
            text,
            text_cut,
            unparsable: parsed.unparsable,
            size: stored.size,
            received: time(stored.received_at),
            source: stored.source.clone(),
            sha256: stored.sha256.clone(),
        }
    }
}

/// `reply-to` → `Reply-To`, `message-id` → `Message-ID`.
fn display_name(name: &str) -> String {
    match name {
        "message-id" => "Message-ID".into(),
        other => other
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    layout: Layout,
    email: EmailView,
    references: Vec<String>,
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let not_found = || WebError::NotFound(format!("There is no stored message {id}."));
    let id_num: i64 = id.parse().map_err(|_| not_found())?;
    let mut conn = state.store.read().await?;
    let stored = views::message(&mut conn, id_num)
        .await?
        .ok_or_else(not_found)?;
    let references = views::requests_of_message(&mut conn, id_num).await?;
    drop(conn);
    let layout = Layout::new(&state, &me, format!("Message {id_num}"), "requests").await?;
    Ok(render(&MessagePage {
        layout,
        email: EmailView::new(&stored),
        references,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_written_as_people_know_them() {
        assert_eq!(display_name("reply-to"), "Reply-To");
        assert_eq!(display_name("message-id"), "Message-ID");
        assert_eq!(
            display_name("authentication-results"),
            "Authentication-Results"
        );
    }
}
