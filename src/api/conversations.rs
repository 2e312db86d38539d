//! `/api/v1/conversations`: what customers wrote to the workspace's numbers and what agents
//! answered, with delivery status.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Reader;
use super::types::utc;
use super::{ApiError, Problem};
use crate::db::conversations::{ConversationView, MessageRow};
use crate::domain::page::{CursorKind, PageRequest};
use crate::domain::{
    AgentId, ConversationId, CustomerId, JobKind, JobState, MessageDirection, MessageId,
    MessageStatus, PhoneNumberId,
};
use crate::service::conversations as service;
use crate::state::AppState;

/// Who wrote: Meta's business-scoped user id (BSUID), and what Meta shared beside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    /// The business-scoped user id (e.g. `US.13491208655302741918`), when Meta gave one.
    pub user_id: Option<String>,
    /// The phone number (digits), when Meta shared it.
    pub phone: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
}

/// One customer on one of the workspace's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Conversation {
    pub id: ConversationId,
    /// Our id of the number the customer wrote to.
    pub number_id: PhoneNumberId,
    pub display_phone_number: String,
    pub customer: Customer,
    /// The customer's last message: the 24-hour customer-service window runs from here.
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub last_inbound_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub last_message_at: DateTime<Utc>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<ConversationView> for Conversation {
    fn from((c, customer, display): ConversationView) -> Self {
        Conversation {
            id: c.id,
            number_id: c.number_id,
            display_phone_number: display,
            customer: Customer {
                id: customer.id,
                user_id: customer.user_id,
                phone: customer.phone,
                profile_name: customer.profile_name,
                username: customer.username,
            },
            last_inbound_at: c.last_inbound_at.map(utc),
            last_message_at: utc(c.last_message_at),
            created_at: utc(c.created_at),
        }
    }
}

/// A page of conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub data: Vec<Conversation>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Why a message was not answered or not delivered.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageError {
    /// Meta's error code, when Meta gave one.
    pub code: Option<i64>,
    pub message: String,
}

/// The template an agent's message used.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageTemplate {
    pub name: String,
    pub language: String,
    #[schema(value_type = Vec<Object>)]
    pub components: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A message: what a customer wrote, an agent's answer, or a message an agent sent first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub direction: MessageDirection,
    /// Meta's id of the message (`wamid...`); null for a message Meta has not accepted.
    pub wamid: Option<String>,
    /// Meta's message type: `text`, `image`, `interactive`, `system`, ...
    pub r#type: String,
    /// The text (a caption, a button's title); null for messages without one.
    pub text: Option<String>,
    /// For a template message an agent sent: the template.
    pub template: Option<MessageTemplate>,
    pub status: MessageStatus,
    /// For an answer: the customer's message it answers.
    pub reply_to_id: Option<MessageId>,
    /// For an answer longer than Meta takes in one message: which part (from 0).
    pub part: i64,
    /// The agent that answered or sent it.
    pub agent_id: Option<AgentId>,
    pub error: Option<MessageError>,
    /// When the customer sent it (inbound), or the time of Meta's last status (outbound).
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub meta_timestamp: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(m: MessageRow) -> Self {
        Message {
            id: m.id,
            conversation_id: m.conversation_id,
            direction: m.direction,
            wamid: m.wamid,
            template: match crate::domain::outbound::Content::from_stored(
                &m.kind,
                None,
                m.template.as_deref(),
            ) {
                Some(crate::domain::outbound::Content::Template(t)) => Some(MessageTemplate {
                    name: t.name,
                    language: t.language,
                    components: t.components,
                }),
                _ => None,
            },
            r#type: m.kind,
            text: m.body,
            status: m.status,
            reply_to_id: m.reply_to_id,
            part: m.part,
            agent_id: m.agent_id,
            error: m.error_message.map(|message| MessageError {
                code: m.error_code,
                message,
            }),
            meta_timestamp: m.meta_timestamp.map(utc),
            created_at: utc(m.created_at),
            updated_at: utc(m.updated_at),
        }
    }
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub data: Vec<Message>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and paging of the conversations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// Only conversations on this number (our id).
    pub number_id: Option<PhoneNumberId>,
    /// Page size (default 50).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Paging of a conversation's messages.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Page size (default 50).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The workspace's conversations, most recently active first.
#[utoipa::path(
    tag = "conversations",
    operation_id = "list_conversations",
    context_path = "/api/v1",
    params(ConversationQuery),
    responses(
        (status = 200, description = "One page of conversations", body = ConversationList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/conversations")]
pub async fn list_conversations(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    query: web::Query<ConversationQuery>,
) -> Result<web::Json<ConversationList>, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Time)?;
    let (rows, next_cursor) =
        service::list(&state.db, &caller.workspace_id, query.number_id, page).await?;
    Ok(web::Json(ConversationList {
        data: rows.into_iter().map(Conversation::from).collect(),
        next_cursor,
    }))
}

/// A conversation's messages, oldest first, with their delivery status.
#[utoipa::path(
    tag = "conversations",
    operation_id = "list_conversation_messages",
    context_path = "/api/v1",
    params(("id" = ConversationId, Path, description = "Our id of the conversation"), MessageQuery),
    responses(
        (status = 200, description = "One page of messages", body = MessageList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`conversation_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/conversations/{id}/messages")]
pub async fn list_conversation_messages(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    id: web::Path<ConversationId>,
    query: web::Query<MessageQuery>,
) -> Result<web::Json<MessageList>, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Time)?;
    let (rows, next_cursor) =
        service::messages(&state.db, &caller.workspace_id, id.into_inner(), page).await?;
    Ok(web::Json(MessageList {
        data: rows.into_iter().map(Message::from).collect(),
        next_cursor,
    }))
}

/// One unit of a Meta webhook delivery (a message, a status, a change) and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJob {
    pub id: i64,
    pub kind: JobKind,
    pub state: JobState,
    /// Claims so far (each try counts one).
    pub attempts: i64,
    /// Why the last try failed (for `dead`: why it was given up), or a note on what was done.
    pub last_error: Option<String>,
    /// Meta's id of the number it concerns, when it concerns one.
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub received_at: DateTime<Utc>,
    /// When it is (or was) due to run.
    #[serde(serialize_with = "super::time::rfc3339")]
    pub run_after: DateTime<Utc>,
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// A page of webhook jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJobList {
    pub data: Vec<WebhookJob>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Which webhook jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookJobQuery {
    /// Default `dead`: the jobs that kept failing.
    #[param(inline)]
    pub state: Option<JobState>,
    /// Page size (default 50).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Meta's webhook deliveries that concern the workspace, by state, newest first: `dead` jobs
/// (the default) kept failing and carry their last error; nothing is dropped silently.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhook_jobs",
    context_path = "/api/v1",
    params(WebhookJobQuery),
    responses(
        (status = 200, description = "One page of jobs", body = WebhookJobList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/webhook-jobs")]
pub async fn list_webhook_jobs(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    query: web::Query<WebhookJobQuery>,
) -> Result<web::Json<WebhookJobList>, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Time)?;
    let wanted = query.state.unwrap_or(JobState::Dead);
    let (rows, next_cursor) = service::jobs(&state.db, &caller.workspace_id, wanted, page).await?;
    Ok(web::Json(WebhookJobList {
        data: rows
            .into_iter()
            .map(|j| WebhookJob {
                id: j.id,
                kind: j.kind,
                state: j.state,
                attempts: j.attempts,
                last_error: j.last_error,
                phone_number_id: j.meta_phone_number_id,
                waba_id: j.waba_id,
                received_at: utc(j.received_at),
                run_after: utc(j.run_after),
                finished_at: j.finished_at.map(utc),
            })
            .collect(),
        next_cursor,
    }))
}
