//! `/api/v1/me`: who the token says the caller is, so the SPA can hide what a viewer cannot do.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Reader;
use crate::domain::{Role, WorkspaceId};

/// The caller, as its token says.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The token's subject.
    pub sub: String,
    pub workspace_id: WorkspaceId,
    pub role: Role,
    /// Whether this caller may change things (`role` is `editor`).
    pub can_write: bool,
}

/// Who the bearer token belongs to: subject, workspace and role.
#[utoipa::path(
    tag = "auth",
    operation_id = "get_me",
    context_path = "/api/v1",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "`unauthorized`", body = super::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/me")]
pub async fn get_me(Reader(caller): Reader) -> web::Json<Me> {
    web::Json(Me {
        can_write: caller.role.can_write(),
        sub: caller.subject,
        workspace_id: caller.workspace_id,
        role: caller.role,
    })
}
