//! `/api/v1/events`: the live stream of the caller's workspace, as Server-Sent Events.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Reader;
use super::ApiError;
use crate::domain::text::LAST_EVENT_ID;
use crate::domain::{
    AccountId, AgentId, ConversationId, EventKind, MessageId, MessageStatus, PhoneNumberId,
};
use crate::service::events::{self as service, EventStream};
use crate::state::AppState;

/// The `data` of an event (each SSE frame also carries it as `id` and `event`). Only the ids the
/// event is about are present; fetch the item again for its new state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    /// Ever increasing; send the last one seen as `Last-Event-ID` when reconnecting.
    pub id: i64,
    /// What happened; `reset` means events since `Last-Event-ID` are no longer kept: reload the
    /// screen, then listen on.
    pub r#type: EventKind,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    #[schema(nullable = false)]
    pub number_id: Option<PhoneNumberId>,
    /// `number.removed` for every number of a disconnected account.
    #[schema(nullable = false)]
    pub account_id: Option<AccountId>,
    #[schema(nullable = false)]
    pub agent_id: Option<AgentId>,
    #[schema(nullable = false)]
    pub conversation_id: Option<ConversationId>,
    #[schema(nullable = false)]
    pub message_id: Option<MessageId>,
    /// A message's new status (`message.*` events).
    #[schema(nullable = false)]
    pub status: Option<MessageStatus>,
    /// Why (a failed registration's error, a quality alert's reason, ...).
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

impl MessageBody for EventStream {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.get_mut().poll_frame(cx).map(|frame| frame.map(Ok))
    }
}

/// Live updates of the caller's workspace (Server-Sent Events): numbers added, removed or changed;
/// registrations started, succeeded or failed; inbound agent and outbound number changes; quality
/// alerts raised or cleared; messages received, queued, sent and their statuses.
///
/// Each frame has `id`, `event` (the type) and `data` (an `Event` as JSON). Reconnect with the
/// `Last-Event-ID` header to get what was missed (events are kept 24 hours); when that is no longer
/// possible, the stream starts with an event of type `reset`: reload, then listen on. A comment
/// (`: keep-alive`) comes every 15 seconds while nothing happens. Every instance on one database
/// serves the same stream.
#[utoipa::path(
    tag = "events",
    operation_id = "stream_events",
    context_path = "/api/v1",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: the stream starts with what came after it"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`; each frame's `data` is an `Event`", body = Event, content_type = "text/event-stream"),
        (status = 400, description = "`validation_failed`: `Last-Event-ID` is not an event id", body = super::Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = super::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/events")]
pub async fn stream_events(
    state: web::Data<AppState>,
    request: HttpRequest,
    Reader(caller): Reader,
) -> Result<HttpResponse, ApiError> {
    let last = match request.headers().get("Last-Event-ID") {
        None => None,
        Some(value) => {
            let not_an_id = || {
                ApiError::Validation(
                    "`Last-Event-ID` must be the `id` of an event (a whole number)".into(),
                )
            };
            let value = value.to_str().map_err(|_| not_an_id())?;
            LAST_EVENT_ID.check(value).map_err(|_| not_an_id())?;
            Some(value.parse::<i64>().map_err(|_| not_an_id())?)
        }
    };
    let stream = service::subscribe(
        &state.shutdown,
        &state.db,
        &state.events,
        caller.workspace_id,
        last,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .body(stream))
}
