//! `/staff` (admins only): who may sign in, and the changes an admin makes to them — add,
//! disable / enable, set a new password, change role. Each is a POST with the page's CSRF
//! token, audited (`staff.added`, `staff.disabled`, `staff.enabled`, `staff.password_set`,
//! `staff.role_set`) with the admin as actor. Disabling or a new password ends the member's
//! sessions at once. An admin cannot disable or demote themselves here, so the page always
//! keeps at least one admin who can use it (the command line can).

use super::Layout;
use crate::store::staff::{self, StaffError, StaffRole};
use crate::web::auth::Staff;
use crate::web::format::time;
use crate::web::{WebError, WebState, render_with, see_other};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

pub struct StaffLine {
    pub name: String,
    pub role: &'static str,
    pub disabled: bool,
    pub created: String,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "staff.html")]
struct StaffPage {
    layout: Layout,
    rows: Vec<StaffLine>,
    notice: Option<String>,
    error: Option<String>,
    min_password: usize,
}

#[derive(Debug, Default, Deserialize)]
pub struct StaffQuery {
    done: Option<String>,
    name: Option<String>,
}

async fn show(
    state: &WebState,
    me: &Staff,
    code: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let rows = staff::list(&state.store)
        .await?
        .into_iter()
        .map(|m| StaffLine {
            is_me: m.name == me.name,
            role: m.role.as_str(),
            disabled: m.disabled,
            created: time(m.created_at),
            name: m.name,
        })
        .collect();
    let page = StaffPage {
        layout: Layout::new(state, me, "Staff", "staff").await?,
        rows,
        notice,
        error,
        min_password: staff::MIN_PASSWORD_CHARS,
    };
    Ok(render_with(code, &page))
}

pub async fn page(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Query(q): Query<StaffQuery>,
) -> Result<Response, WebError> {
    let who = q
        .name
        .as_deref()
        .and_then(|n| staff::normalise_name(n).ok())
        .unwrap_or_default();
    let notice = q.done.as_deref().and_then(|d| {
        Some(match d {
            "added" => format!("{who} was added and can sign in now."),
            "disabled" => format!("{who} is disabled: their sessions have ended."),
            "enabled" => format!("{who} can sign in again."),
            "password" => format!("{who} has a new password: their sessions have ended."),
            "role" => format!("{who}'s role was changed."),
            _ => return None,
        })
    });
    show(&state, &me, StatusCode::OK, notice, None).await
}

/// A refused change: the page again with the reason.
async fn refused(state: &WebState, me: &Staff, e: StaffError) -> Result<Response, WebError> {
    let code = match &e {
        StaffError::Invalid(_) => StatusCode::BAD_REQUEST,
        StaffError::Exists(_) => StatusCode::CONFLICT,
        StaffError::NotFound(_) => StatusCode::NOT_FOUND,
        StaffError::Store(_) => return Err(e.into()),
    };
    show(state, me, code, None, Some(e.to_string())).await
}

fn done(what: &str, name: &str) -> Response {
    see_other(&format!(
        "/staff{}",
        crate::web::format::query(&[
            ("done", Some(what.to_owned())),
            ("name", Some(name.to_owned()))
        ])
    ))
}

fn actor(me: &Staff) -> String {
    format!("staff:{}", me.name)
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

/// Hash under the page's bound on concurrent Argon2 ([`crate::web::auth::PasswordChecks`]).
async fn hashing<T>(
    state: &WebState,
    work: impl Future<Output = Result<T, StaffError>>,
) -> Result<T, StaffError> {
    state.checks.run(work).await.unwrap_or_else(|| {
        Err(StaffError::Invalid(
            "The server is busy checking passwords; try again in a moment.".into(),
        ))
    })
}

pub async fn add(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Form(f): Form<AddForm>,
) -> Result<Response, WebError> {
    let role = match f.role.parse::<StaffRole>() {
        Ok(r) => r,
        Err(e) => return refused(&state, &me, StaffError::Invalid(e)).await,
    };
    let added = hashing(
        &state,
        staff::add_by(&state.store, &actor(&me), &f.name, role, &f.password),
    )
    .await;
    match added {
        Ok(m) => Ok(done("added", &m.name)),
        Err(e) => refused(&state, &me, e).await,
    }
}

/// The member named in the path, who must not be the admin acting (on themselves, these
/// changes could leave nobody able to manage staff).
fn someone_else(me: &Staff, name: &str, what: &str) -> Result<String, StaffError> {
    let name = staff::normalise_name(name)?;
    if name == me.name {
        return Err(StaffError::Invalid(format!(
            "You cannot {what} your own account here: ask another admin, or use `postroom staff` on the server."
        )));
    }
    Ok(name)
}

async fn set_disabled(
    state: WebState,
    me: Staff,
    name: String,
    disabled: bool,
) -> Result<Response, WebError> {
    let r = async {
        let name = someone_else(&me, &name, "disable or enable")?;
        staff::set_disabled_by(&state.store, &actor(&me), &name, disabled).await?;
        Ok::<_, StaffError>(name)
    }
    .await;
    match r {
        Ok(name) => Ok(done(if disabled { "disabled" } else { "enabled" }, &name)),
        Err(e) => refused(&state, &me, e).await,
    }
}

pub async fn disable(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    set_disabled(state, me, name, true).await
}

pub async fn enable(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    set_disabled(state, me, name, false).await
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
}

pub async fn password(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(name): Path<String>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, WebError> {
    // Setting one's own password here is fine: it ends one's own sessions too.
    let set = hashing(
        &state,
        staff::set_password_by(&state.store, &actor(&me), &name, &f.password),
    )
    .await;
    match set {
        Ok(()) => Ok(done("password", &name)),
        Err(e) => refused(&state, &me, e).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn role(
    State(state): State<WebState>,
    Extension(me): Extension<Staff>,
    Path(name): Path<String>,
    Form(f): Form<RoleForm>,
) -> Result<Response, WebError> {
    let r = async {
        let name = someone_else(&me, &name, "change the role of")?;
        let role = f.role.parse::<StaffRole>().map_err(StaffError::Invalid)?;
        staff::set_role_by(&state.store, &actor(&me), &name, role).await?;
        Ok::<_, StaffError>(name)
    }
    .await;
    match r {
        Ok(name) => Ok(done("role", &name)),
        Err(e) => refused(&state, &me, e).await,
    }
}
