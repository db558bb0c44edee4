//! Who may use which route: the one place roles are enforced (issue 13).
//!
//! Every route is declared once, with its [`Access`], in [`super::routes`]; the router is built
//! from that table, and every staff route gets [`require`] in front of its handler. A route
//! cannot be added without saying who may use it, and `tests/web_roles.rs` tries every route
//! of the table with both roles.

use super::WebError;
use super::auth::Staff;
use crate::store::staff::StaffRole;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the sign-in page, health and metrics, static files.
    Public,
    /// Any signed-in staff member (agent or admin): the review work.
    Staff,
    /// Admins only: staff management, bulk exports of personal data.
    Admin,
}

impl Access {
    /// Whether a staff member with `role` may use a route needing `self`.
    pub fn allows(self, role: StaffRole) -> bool {
        match self {
            Access::Public | Access::Staff => true,
            Access::Admin => match role {
                StaffRole::Admin => true,
                StaffRole::Agent => false,
            },
        }
    }
}

/// In front of every staff route, after [`super::auth::guard`] has put the signed-in [`Staff`]
/// in the request: 403 unless their role is allowed.
pub async fn require(State(access): State<Access>, request: Request, next: Next) -> Response {
    let Some(me) = request.extensions().get::<Staff>() else {
        // The guard did not run: a routing mistake; refuse rather than serve.
        return WebError::Internal("a staff route without the sign-in guard".into())
            .into_response();
    };
    if !access.allows(me.role) {
        tracing::warn!(staff = %me.name, role = %me.role, path = %request.uri().path(), "refused: needs an admin");
        return WebError::Forbidden(
            "Only an administrator may do this. Ask one of your helpdesk's administrators.".into(),
        )
        .into_response();
    }
    next.run(request).await
}
