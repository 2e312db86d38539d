//! `/webhooks/whatsapp`: Meta's verification handshake and its signed deliveries.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiError, Problem};
use crate::service::inbound::{self, IntakeError};
use crate::service::ServiceError;
use crate::state::AppState;

/// Largest delivery taken (Meta batches up to 1,000 updates in one).
pub const DELIVERY_LIMIT: usize = 8 * 1024 * 1024;
/// Longest `hub.challenge` echoed.
const MAX_CHALLENGE: usize = 256;

/// Meta's handshake parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    /// `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    /// Must equal `META_WEBHOOK_VERIFY_TOKEN`.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    /// Echoed back when the token matches.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge", max_length = 256)]
    pub challenge: Option<String>,
}

/// Meta's verification handshake: answers `hub.challenge` when `hub.verify_token` matches.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "verify_whatsapp_webhook",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, as plain text", body = String, content_type = "text/plain"),
        (status = 403, description = "`forbidden`: the verify token does not match (or none is configured)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/webhooks/whatsapp")]
pub async fn verify_whatsapp_webhook(
    state: web::Data<AppState>,
    query: web::Query<Handshake>,
) -> Result<HttpResponse, ApiError> {
    let expected = state
        .settings
        .meta_app
        .as_ref()
        .and_then(|app| app.webhook_verify_token.as_deref());
    let query = query.into_inner();
    let matches = match (expected, query.verify_token.as_deref()) {
        (Some(expected), Some(given)) => crate::crypto::same_secret(expected, given),
        _ => false,
    };
    let challenge = query
        .challenge
        .filter(|c| c.len() <= MAX_CHALLENGE && !c.chars().any(char::is_control));
    match (query.mode.as_deref(), challenge) {
        (Some("subscribe"), Some(challenge)) if matches => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(challenge)),
        _ => Err(ApiError::VerifyTokenMismatch),
    }
}

/// A delivery from Meta, signed with `X-Hub-Signature-256` over the raw body. Stored before it is
/// acknowledged; processed afterwards. Redeliveries change nothing.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "receive_whatsapp_webhook",
    request_body(content = Object, description = "Meta's delivery, exactly as Meta sent it", content_type = "application/json"),
    params(("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the body under the app secret")),
    responses(
        (status = 200, description = "Stored"),
        (status = 400, description = "`validation_failed`: not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_signature`: no signature, or not Meta's; nothing is kept", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: not stored; Meta delivers it again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/whatsapp")]
pub async fn receive_whatsapp_webhook(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Read here rather than by an extractor, so that a body past the limit is a problem document.
    let body = payload
        .to_bytes_limited(DELIVERY_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(DELIVERY_LIMIT))?
        .map_err(|e| ApiError::Validation(format!("reading the body failed: {e}")))?;
    let signature = request
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    match inbound::accept(&state, &body, signature).await {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(IntakeError::BadSignature) => Err(ApiError::BadSignature),
        Err(IntakeError::NotADelivery(e)) => Err(ApiError::Validation(e.to_string())),
        Err(IntakeError::Unavailable(cause)) => Err(ServiceError::Unavailable(cause).into()),
    }
}
