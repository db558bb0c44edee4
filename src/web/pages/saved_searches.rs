//! Saved searches on the requests page (issue 17): a staff member names the search they are
//! looking at and finds it again above the form; only they see it, and only they can delete
//! it. Both are POSTs with the CSRF token, audited (`search.saved`, `search.deleted`). What is
//! kept is the search's own filters (`search_query::canonical_query`), never anything else from
//! the form.

use super::search_query::canonical_query;
use crate::store::saved_searches;
use crate::store::{Conn, StoreError};
use crate::web::auth::Staff;
use crate::web::{WebError, WebState, see_other};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

/// The longest name kept.
const MAX_NAME_CHARS: usize = 60;

/// A saved search as the page lists it.
pub struct SavedLine {
    pub id: i64,
    pub name: String,
    /// `/requests?…`
    pub link: String,
}

/// `staff`'s saved searches, for the requests page.
pub async fn lines(conn: &mut Conn, staff: &str) -> Result<Vec<SavedLine>, StoreError> {
    Ok(saved_searches::of_staff(conn, staff)
        .await?
        .into_iter()
        .map(|s| SavedLine {
            link: if s.query.is_empty() {
                "/requests".to_owned()
            } else {
                format!("/requests?{}", s.query)
            },
            id: s.id,
            name: s.name,
        })
        .collect())
}

#[derive(Debug, Deserialize)]
pub struct SaveForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
}

pub async fn save(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Form(form): Form<SaveForm>,
) -> Response {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return WebError::BadRequest(format!(
            "Give the search a name of 1 to {MAX_NAME_CHARS} characters."
        ))
        .into_response();
    }
    let Some(query) = canonical_query(&form.query) else {
        return WebError::BadRequest("That search could not be read.".into()).into_response();
    };
    match saved_searches::save(&state.store, &me.name, name, &query).await {
        Ok(()) if query.is_empty() => see_other("/requests"),
        Ok(()) => see_other(&format!("/requests?{query}")),
        Err(e) => WebError::from(e).into_response(),
    }
}

pub async fn delete(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(id): Path<i64>,
) -> Response {
    match saved_searches::delete(&state.store, &me.name, id).await {
        Ok(true) => see_other("/requests"),
        Ok(false) => {
            WebError::NotFound("You have no saved search with this number.".into()).into_response()
        }
        Err(e) => WebError::from(e).into_response(),
    }
}
