//! `/api/v1/agents`: the AI agents and their outbound number.

use actix_web::{delete, get, patch, post, put, web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Editor, Reader};
use super::conversations::Message;
use super::types::{Agent, AgentList};
use super::{ApiError, Problem};
use crate::domain::agent::{CreateAgent, UpdateAgent};
use crate::domain::outbound::SendMessage;
use crate::domain::page::{CursorKind, PageRequest};
use crate::domain::{AgentId, PhoneNumberId};
use crate::service::agents as service;
use crate::service::{outbound, ServiceError};
use crate::state::AppState;

/// Search and paging of agents.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentQuery {
    /// Matches anywhere in the name, case-insensitively (the assignment dropdown's search box).
    pub q: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Body of `PUT /agents/{id}/whatsapp-outbound-number`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct SetOutboundNumber {
    /// Our id of a number that `can_use_as_outbound`; null to clear.
    // `phone_number_id`, this field's name before that name meant Meta's id only, is still read
    // for a while; deliberately undocumented.
    #[serde(
        deserialize_with = "super::required_nullable",
        alias = "phone_number_id"
    )]
    #[schema(required = true)]
    pub number_id: Option<PhoneNumberId>,
}

crate::domain::object_only!(SetOutboundNumber);

/// List agents, sorted by name; `q` searches names.
#[utoipa::path(
    tag = "agents",
    operation_id = "list_agents",
    context_path = "/api/v1",
    params(AgentQuery),
    responses(
        (status = 200, description = "One page of agents", body = AgentList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/agents")]
pub async fn list_agents(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    query: web::Query<AgentQuery>,
) -> Result<web::Json<AgentList>, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Text)?;
    let (records, next_cursor) =
        service::list(&state.db, &caller.workspace_id, query.q, page).await?;
    Ok(web::Json(AgentList {
        data: records.into_iter().map(Agent::from).collect(),
        next_cursor,
    }))
}

/// Create an agent.
///
/// Secrets in the responder (`openai.api_key`, `webhook.secret`) are stored encrypted and never returned.
#[utoipa::path(
    tag = "agents",
    operation_id = "create_agent",
    context_path = "/api/v1",
    request_body = CreateAgent,
    responses(
        (status = 201, description = "The new agent", body = Agent),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`agent_name_taken`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/agents")]
pub async fn create_agent(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    body: web::Json<CreateAgent>,
) -> Result<HttpResponse, ApiError> {
    let record = service::create(
        &state.db,
        &state.secrets,
        &caller,
        body.into_inner(),
        state.settings.url_policy(),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/agents/{}", record.row.id)))
        .json(Agent::from(record)))
}

/// Get one agent.
#[utoipa::path(
    tag = "agents",
    operation_id = "get_agent",
    context_path = "/api/v1",
    params(("id" = AgentId, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 400, description = "`validation_failed`: the id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`agent_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/agents/{id}")]
pub async fn get_agent(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    id: web::Path<AgentId>,
) -> Result<web::Json<Agent>, ApiError> {
    Ok(web::Json(
        service::get(&state.db, &caller.workspace_id, id.into_inner())
            .await?
            .into(),
    ))
}

/// Change an agent's name, description or responder.
///
/// Absent fields stay as they are. A responder of the same kind may omit its secret to keep the stored one.
#[utoipa::path(
    tag = "agents",
    operation_id = "update_agent",
    context_path = "/api/v1",
    params(("id" = AgentId, Path, description = "The agent's id")),
    request_body = UpdateAgent,
    responses(
        (status = 200, description = "The changed agent", body = Agent),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`agent_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`agent_name_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`secret_required`: the key or secret must be sent again, for a new responder kind (the agent has none to keep) or a URL on another origin (a stored one never follows a new host)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/agents/{id}")]
pub async fn update_agent(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    id: web::Path<AgentId>,
    body: web::Json<UpdateAgent>,
) -> Result<web::Json<Agent>, ApiError> {
    let record = service::update(
        &state.db,
        &state.secrets,
        &caller,
        id.into_inner(),
        body.into_inner(),
        state.settings.url_policy(),
    )
    .await?;
    Ok(web::Json(record.into()))
}

/// Delete an agent.
///
/// Numbers it answered are left without an inbound agent; each such change is recorded in the audit trail.
#[utoipa::path(
    tag = "agents",
    operation_id = "delete_agent",
    context_path = "/api/v1",
    params(("id" = AgentId, Path, description = "The agent's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`validation_failed`: the id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`agent_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/agents/{id}")]
pub async fn delete_agent(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    id: web::Path<AgentId>,
) -> Result<HttpResponse, ApiError> {
    service::delete(&state.db, &caller, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Pick the number this agent sends outbound WhatsApp messages from, or clear it with null.
///
/// Only numbers with `can_use_as_outbound` can be chosen (409 `number_not_cloud_api`: register
/// it first). One number may be the outbound number of many agents.
#[utoipa::path(
    tag = "agents",
    operation_id = "set_whatsapp_outbound_number",
    context_path = "/api/v1",
    params(("id" = AgentId, Path, description = "The agent's id")),
    request_body = SetOutboundNumber,
    responses(
        (status = 200, description = "The agent with its outbound number", body = Agent),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`agent_not_found` or `phone_number_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`number_not_cloud_api` (register it first) or `number_removed`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/agents/{id}/whatsapp-outbound-number")]
pub async fn set_whatsapp_outbound_number(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    id: web::Path<AgentId>,
    body: web::Json<SetOutboundNumber>,
) -> Result<web::Json<Agent>, ApiError> {
    let number = body.into_inner().number_id;
    let record = service::set_outbound_number(&state.db, &caller, id.into_inner(), number).await?;
    Ok(web::Json(record.into()))
}

/// Send a WhatsApp message from the agent's outbound number.
///
/// `text` goes only to a customer whose 24-hour window on that number is open (they wrote in the
/// last 24 hours); otherwise send an approved `template` (422 `outside_service_window`). `to` is
/// an E.164 phone number or the customer's business-scoped user id; the message joins the
/// customer's conversation. The answer is 202 with the message `queued`: it goes to Meta within
/// the number's throughput and Meta's limit per recipient, and its status moves on as Meta reports
/// it (read it in the conversation's messages).
#[utoipa::path(
    tag = "agents",
    operation_id = "send_agent_message",
    context_path = "/api/v1",
    params(
        ("id" = AgentId, Path, description = "The agent's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Any key of the client's making (a UUID): the same key and body answer what the first request answered, and the message is sent once; the same key for another request is `idempotency_key_reused`"),
    ),
    request_body = SendMessage,
    responses(
        (status = 202, description = "Queued: the message, `queued`", body = Message),
        (status = 400, description = "`validation_failed`: `to`, `text` or `template` is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`agent_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_outbound_number` (pick one first), `number_not_cloud_api` or `number_removed` (the outbound number can no longer send), `account_needs_reconnect` (Meta rejected the number's account token), or `idempotency_key_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`outside_service_window`: the customer has not written in 24 hours, send a template; or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/agents/{id}/messages")]
pub async fn send_agent_message(
    state: web::Data<AppState>,
    request: HttpRequest,
    Editor(caller): Editor,
    id: web::Path<AgentId>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    // serde_json writes object keys sorted: the same request hashes the same, however written.
    let canonical = body.to_string();
    let work = async {
        let sent = async {
            let input: SendMessage = serde_json::from_value(body)
                .map_err(|e| ApiError::Validation(format!("the JSON body is invalid: {e}")))?;
            let (to, content) = input.into_parts().map_err(ServiceError::from)?;
            let row = outbound::send(&state, &caller, id, to, content).await?;
            Ok::<_, ApiError>(HttpResponse::Accepted().json(Message::from(row)))
        };
        sent.await.unwrap_or_else(|err| err.error_response())
    };
    super::idempotency::once(
        &state,
        &request,
        &caller,
        "send_message",
        canonical.as_bytes(),
        work,
    )
    .await
}
