//! `/api/v1/audit-events`: who assigned what, and when.

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Reader;
use super::types::{AuditEvent, AuditEventList};
use super::{ApiError, Problem};
use crate::db::audit::AuditFilter;
use crate::domain::page::{CursorKind, PageRequest};
use crate::domain::{AgentId, PhoneNumberId};
use crate::service::audit as service;
use crate::state::AppState;

/// Filters and paging of the audit trail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events about this number (our id).
    pub number_id: Option<PhoneNumberId>,
    /// Only events about this agent.
    pub agent_id: Option<AgentId>,
    /// Page size (default 50).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The audit trail, newest first: assignments, outbound selections and agent changes.
#[utoipa::path(
    tag = "audit",
    operation_id = "list_audit_events",
    context_path = "/api/v1",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of events", body = AuditEventList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/audit-events")]
pub async fn list_audit_events(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    query: web::Query<AuditQuery>,
) -> Result<web::Json<AuditEventList>, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Time)?;
    let filter = AuditFilter {
        number_id: query.number_id,
        agent_id: query.agent_id,
    };
    let (rows, next_cursor) = service::list(&state.db, &caller.workspace_id, filter, page).await?;
    Ok(web::Json(AuditEventList {
        data: rows.into_iter().map(AuditEvent::from).collect(),
        next_cursor,
    }))
}
