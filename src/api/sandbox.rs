//! `/api/v1/sandbox`: what only the sandbox can show. Absent (404) when Meta is the real Graph API.

use std::collections::HashSet;

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Reader;
use crate::api::{ApiError, Problem};
use crate::domain::MetaPhoneNumberId;
use crate::service::ServiceError;
use crate::state::AppState;

/// A message the sandbox accepted in place of Meta.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxMessage {
    /// Meta's id of the sending number.
    pub phone_number_id: MetaPhoneNumberId,
    /// The `wamid` the sandbox answered with.
    pub message_id: String,
    /// The body as it would have gone to `POST /{PHONE-NUMBER-ID}/messages`.
    pub body: SandboxMessageBody,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub sent_at: DateTime<Utc>,
}

/// A message body as Meta's `POST /{PHONE-NUMBER-ID}/messages` takes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxMessageBody {
    /// Always `whatsapp`.
    pub messaging_product: String,
    /// The recipient's phone number, when sent to one.
    pub to: Option<String>,
    /// The recipient's business-scoped user id (BSUID), when sent to one.
    pub recipient: Option<String>,
    /// `text`, `template`, ... (null for a read receipt).
    pub r#type: Option<String>,
    /// The text of a `text` message.
    pub text: Option<String>,
    /// The template name of a `template` message.
    pub template_name: Option<String>,
    /// The whole body as sent, for everything else.
    #[schema(value_type = Object)]
    pub raw: serde_json::Value,
}

impl SandboxMessageBody {
    fn of(raw: serde_json::Value) -> Self {
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        SandboxMessageBody {
            messaging_product: text(raw.get("messaging_product")).unwrap_or_default(),
            to: text(raw.get("to")),
            recipient: text(raw.get("recipient")),
            r#type: text(raw.get("type")),
            text: text(raw.get("text").and_then(|t| t.get("body"))),
            template_name: text(raw.get("template").and_then(|t| t.get("name"))),
            raw,
        }
    }
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
    let sandbox = state.sandbox.clone().ok_or(ServiceError::SandboxOff)?;
    let ws = caller.workspace_id.clone();
    let ours: HashSet<MetaPhoneNumberId> = state
        .db
        .run(move |conn| crate::db::phone_numbers::meta_ids(conn, &ws).map_err(ServiceError::from))
        .await?
        .into_iter()
        .collect();
    let data = sandbox
        .sent_messages()
        .into_iter()
        .filter(|m| ours.contains(&m.meta_phone_number_id))
        .map(|m| SandboxMessage {
            phone_number_id: m.meta_phone_number_id,
            message_id: m.message_id,
            body: SandboxMessageBody::of(m.body),
            sent_at: m.sent_at,
        })
        .collect();
    Ok(web::Json(SandboxMessageList {
        data,
        next_cursor: None,
    }))
}

/// Body of `POST /sandbox/inbound-messages`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct InboundMessageInput {
    /// Meta's id of one of the workspace's numbers: where the message goes.
    pub phone_number_id: MetaPhoneNumberId,
    /// The WhatsApp user who writes: an E.164 phone number or a BSUID (a user with a username and
    /// no shared phone number).
    #[schema(examples("+15551234567", "US.13491208655302741918"))]
    pub from: String,
    pub text: String,
}

crate::domain::object_only!(InboundMessageInput);

/// The message the sandbox played.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlayedMessage {
    /// The `wamid` it was delivered with.
    pub wamid: String,
}

/// Plays a WhatsApp user writing to one of the workspace's numbers (sandbox mode only): Meta's
/// payload is built, signed and sent through the webhook pipeline; the agent's answer shows in
/// `GET /sandbox/messages` and in the conversation.
#[utoipa::path(
    tag = "operations",
    operation_id = "play_sandbox_inbound_message",
    context_path = "/api/v1",
    request_body = InboundMessageInput,
    responses(
        (status = 202, description = "Delivered to the webhook pipeline", body = PlayedMessage),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`sandbox_off`, or `phone_number_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/sandbox/inbound-messages")]
pub async fn play_sandbox_inbound_message(
    state: web::Data<AppState>,
    super::auth::Editor(caller): super::auth::Editor,
    body: web::Json<InboundMessageInput>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let body = body.into_inner();
    let wamid = crate::service::inbound::play_inbound(
        &state,
        &caller.workspace_id,
        body.phone_number_id,
        &body.from,
        &body.text,
    )
    .await?;
    Ok(actix_web::HttpResponse::Accepted().json(PlayedMessage { wamid }))
}
