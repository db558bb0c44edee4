//! `POST /requests/{reference}/merge`: merge a waiting request into an earlier one of the same
//! site (issue 17, item 7; the rules and what happens are [`crate::merge`]'s). Like a
//! decision, merging a request someone else has taken asks "Decide anyway" first.

use super::request::{claim_gate, failure_sentence, merge_refused};
use crate::web::auth::Staff;
use crate::web::format::is_reference;
use crate::web::{WebError, WebState, see_other};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct MergeForm {
    #[serde(default)]
    into: String,
    #[serde(default)]
    confirm_claim: Option<String>,
}

pub async fn merge(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(reference): Path<String>,
    Form(form): Form<MergeForm>,
) -> Response {
    if !is_reference(&reference) {
        return WebError::NotFound(format!("There is no request {reference}.")).into_response();
    }
    let confirmed = form.confirm_claim.as_deref() == Some("yes");
    let result = match claim_gate(&state, &me, &reference, confirmed).await {
        Err(e) => Err(e),
        Ok(()) => crate::merge::merge(&state.store, &reference, &form.into, &me.name).await,
    };
    match result {
        Ok(()) => {
            tracing::info!(staff = %me.name, reference = %reference, into = %form.into.trim(), "merged by staff");
            see_other(&format!("/requests/{reference}?done=merged"))
        }
        Err(e) => match failure_sentence(&state, &reference, e).await {
            Ok((code, sentence)) => {
                merge_refused(&state, &me, &reference, code, form.into, sentence).await
            }
            Err(e) => e.into_response(),
        },
    }
}
