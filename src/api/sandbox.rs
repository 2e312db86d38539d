//! `/api/v1/sandbox`: what only the sandbox can show. Absent (404) when Meta is the real Graph API.

use std::collections::HashSet;

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// A message the sandbox accepted in place of Meta.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxMessage {
    /// Meta's id of the sending number.
    pub phone_number_id: String,
    /// The `wamid` the sandbox answered with.
    pub message_id: String,
    /// The body as it would have gone to `POST /{PHONE-NUMBER-ID}/messages`.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub sent_at: DateTime<Utc>,
}

/// Messages the sandbox "sent" from the workspace's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxMessageList {
    pub data: Vec<SandboxMessage>,
    /// Always null.
    pub next_cursor: Option<String>,
}

/// Messages the sandbox "sent" from this workspace's numbers, oldest first (sandbox mode only).
#[utoipa::path(
    tag = "operations",
    operation_id = "list_sandbox_messages",
    context_path = "/api/v1",
    responses(
        (status = 200, description = "What the sandbox accepted", body = SandboxMessageList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`sandbox_off`: Meta is the real Graph API here", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/sandbox/messages")]
pub async fn list_sandbox_messages(
    state: web::Data<AppState>,
    Reader(caller): Reader,
) -> Result<web::Json<SandboxMessageList>, ApiError> {
    let sandbox = state.sandbox.clone().ok_or_else(|| ApiError::NotFound {
        code: "sandbox_off",
        detail: "A Meta app is configured: messages go to Meta, not to the sandbox.".into(),
    })?;
    let ws = caller.workspace_id.clone();
    let ours: HashSet<String> = state
        .db
        .run(move |conn| Ok(crate::db::phone_numbers::meta_ids(conn, &ws)?))
        .await?
        .into_iter()
        .collect();
    let data = sandbox
        .sent_messages()
        .into_iter()
        .filter(|m| ours.contains(&m.phone_number_id))
        .map(|m| SandboxMessage {
            phone_number_id: m.phone_number_id,
            message_id: m.message_id,
            body: m.body,
            sent_at: m.sent_at,
        })
        .collect();
    Ok(web::Json(SandboxMessageList {
        data,
        next_cursor: None,
    }))
}
