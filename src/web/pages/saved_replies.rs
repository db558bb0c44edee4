//! `/replies` (admins only): the saved replies staff use in a request's reject and comment
//! forms (issue 17). Add, change, delete: each a POST with the page's CSRF token, audited
//! (`saved_reply.added`, `.changed`, `.deleted`). A body with a placeholder postroom does not
//! know (`{nmae}`) is refused with the list of them, and shown again as typed.

use super::Layout;
use crate::saved_reply::{PLACEHOLDERS, problems};
use crate::store::saved_replies::{self, Change};
use crate::web::auth::Staff;
use crate::web::format::time;
use crate::web::{WebError, WebState, render_with, see_other};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

/// The longest title and body kept.
const MAX_TITLE_CHARS: usize = 80;
const MAX_BODY_CHARS: usize = 10_000;

pub struct ReplyLine {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub updated: String,
    pub updated_by: String,
}

#[derive(Template)]
#[template(path = "saved_replies.html")]
struct RepliesPage {
    layout: Layout,
    rows: Vec<ReplyLine>,
    placeholders: Vec<(&'static str, &'static str)>,
    notice: Option<String>,
    error: Option<String>,
    /// What was typed in the add form, shown again after a refusal.
    new_title: String,
    new_body: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct RepliesQuery {
    done: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
}

async fn show(
    state: &WebState,
    me: &Staff,
    code: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    typed: ReplyForm,
) -> Result<Response, WebError> {
    let mut conn = state.store.read().await?;
    let rows = saved_replies::list(&mut conn)
        .await?
        .into_iter()
        .map(|r| ReplyLine {
            id: r.id,
            title: r.title,
            body: r.body,
            updated: time(r.updated_at),
            updated_by: r.updated_by,
        })
        .collect();
    drop(conn);
    let page = RepliesPage {
        layout: Layout::new(state, me, "Saved replies", "replies").await?,
        rows,
        placeholders: PLACEHOLDERS.to_vec(),
        notice,
        error,
        new_title: typed.title,
        new_body: typed.body,
    };
    Ok(render_with(code, &page))
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<RepliesQuery>,
) -> Result<Response, WebError> {
    let notice = match q.done.as_deref() {
        Some("added") => Some("The reply is saved: staff see it in the reject and comment forms."),
        Some("changed") => Some("The reply is changed."),
        Some("deleted") => Some("The reply is deleted."),
        _ => None,
    };
    show(
        &state,
        &me,
        StatusCode::OK,
        notice.map(str::to_owned),
        None,
        ReplyForm::default(),
    )
    .await
}

/// Why a title and body cannot be saved, if they cannot.
fn refusal(form: &ReplyForm) -> Option<String> {
    let title = form.title.trim();
    if title.is_empty() || form.body.trim().is_empty() {
        return Some("Give the reply a title and a text.".into());
    }
    if title.chars().count() > MAX_TITLE_CHARS || form.body.chars().count() > MAX_BODY_CHARS {
        return Some(format!(
            "A title is at most {MAX_TITLE_CHARS} characters, a text at most {MAX_BODY_CHARS}."
        ));
    }
    let p = problems(&form.body);
    (!p.is_empty()).then(|| {
        format!(
            "Not saved: {}. The placeholders are listed below the form.",
            p.join("; ")
        )
    })
}

async fn refused(
    state: &WebState,
    me: &Staff,
    code: StatusCode,
    sentence: String,
    form: ReplyForm,
) -> Response {
    match show(state, me, code, None, Some(sentence), form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

pub async fn add(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Form(form): Form<ReplyForm>,
) -> Response {
    if let Some(sentence) = refusal(&form) {
        return refused(
            &state,
            &me,
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence,
            form,
        )
        .await;
    }
    match saved_replies::add(&state.store, form.title.trim(), &form.body, &me.name).await {
        Ok(Change::Done) => see_other("/replies?done=added"),
        Ok(Change::TitleTaken) => {
            let sentence = format!(
                "A saved reply is already called \u{201c}{}\u{201d}.",
                form.title.trim()
            );
            refused(&state, &me, StatusCode::CONFLICT, sentence, form).await
        }
        Ok(Change::NotFound) => {
            WebError::NotFound("There is no such saved reply.".into()).into_response()
        }
        Err(e) => WebError::from(e).into_response(),
    }
}

pub async fn update(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(id): Path<i64>,
    Form(form): Form<ReplyForm>,
) -> Response {
    if let Some(sentence) = refusal(&form) {
        return refused(
            &state,
            &me,
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence,
            form,
        )
        .await;
    }
    match saved_replies::update(&state.store, id, form.title.trim(), &form.body, &me.name).await {
        Ok(Change::Done) => see_other("/replies?done=changed"),
        Ok(Change::TitleTaken) => {
            let sentence = format!(
                "A saved reply is already called \u{201c}{}\u{201d}.",
                form.title.trim()
            );
            refused(&state, &me, StatusCode::CONFLICT, sentence, form).await
        }
        Ok(Change::NotFound) => {
            WebError::NotFound("There is no such saved reply.".into()).into_response()
        }
        Err(e) => WebError::from(e).into_response(),
    }
}

pub async fn delete(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(id): Path<i64>,
) -> Response {
    match saved_replies::delete(&state.store, id, &me.name).await {
        Ok(Change::Done) => see_other("/replies?done=deleted"),
        Ok(Change::TitleTaken | Change::NotFound) => {
            WebError::NotFound("There is no such saved reply.".into()).into_response()
        }
        Err(e) => WebError::from(e).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// In a request's reject and comment forms.

/// The saved replies a request page offers: (id, title).
pub async fn choices(state: &WebState) -> Result<Vec<(i64, String)>, WebError> {
    let mut conn = state.store.read().await?;
    Ok(saved_replies::list(&mut conn)
        .await?
        .into_iter()
        .map(|r| (r.id, r.title))
        .collect())
}

/// Saved reply `id` filled in for request `reference` (`None`: no such reply or request). The
/// values are the request's as stored; the page escapes the result like anything typed.
pub async fn filled(
    state: &WebState,
    reference: &str,
    id: i64,
) -> Result<Option<String>, WebError> {
    let mut conn = state.store.read().await?;
    let Some(reply) = saved_replies::find(&mut conn, id).await? else {
        return Ok(None);
    };
    let Some(request) = crate::store::journal::find_request(&mut conn, reference).await? else {
        return Ok(None);
    };
    let from = crate::store::views::message(&mut conn, request.message_id)
        .await?
        .and_then(|m| m.from_address);
    drop(conn);
    let fields: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&request.fields).unwrap_or_default();
    let mut values: std::collections::BTreeMap<&str, String> = PLACEHOLDERS
        .iter()
        .filter_map(|(name, _)| fields.get(*name).map(|v| (*name, v.clone())))
        .collect();
    values.insert("reference", request.reference.clone());
    values.insert("site", request.mailbox.clone().or(from).unwrap_or_default());
    values.insert("requester", request.requester.clone().unwrap_or_default());
    values.insert("kind", request.kind.title().to_owned());
    values.insert("helpdesk", state.cfg.helpdesk.name.clone());
    if !values.contains_key("account")
        && let Some(t) = &request.target
    {
        values.insert("account", t.clone());
    }
    Ok(Some(crate::saved_reply::fill(&reply.body, &values)))
}
