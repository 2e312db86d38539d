//! The `Idempotency-Key` header on the operations that take it: the first answer is kept and
//! sent again for the same key and request (with `Idempotent-Replayed: true`); see
//! `service::idempotency`.

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::ApiError;
use crate::auth::Principal;
use crate::service::idempotency::{self as keys, Begin};
use crate::service::ServiceError;
use crate::state::AppState;

/// The header.
pub const HEADER: &str = "Idempotency-Key";

/// Whether an answer is final, so kept for replays: a success, or a refusal that asking again
/// would not change. Busy, rate-limited and failed answers let the key go.
fn is_final(status: StatusCode) -> bool {
    status.is_success()
        || (status.is_client_error()
            && status != StatusCode::CONFLICT
            && status != StatusCode::TOO_MANY_REQUESTS)
}

/// Runs `work` once per `Idempotency-Key` (when the request has one) of `caller`'s workspace.
pub async fn once<F>(
    state: &AppState,
    request: &HttpRequest,
    caller: &Principal,
    operation: &'static str,
    body: &[u8],
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: std::future::Future<Output = HttpResponse>,
{
    let Some(value) = request.headers().get(HEADER) else {
        return Ok(work.await);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::Validation("`Idempotency-Key` must be visible ASCII text".into()))?
        .to_owned();
    let mut what = format!("{} {}\n", request.method(), request.path()).into_bytes();
    what.extend_from_slice(body);
    let hash = crate::crypto::sha256_hex(&what);
    let ws = &caller.workspace_id;
    match keys::begin(&state.db, ws, operation, &key, hash).await? {
        Begin::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let content_type = if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            };
            Ok(HttpResponse::build(status)
                .insert_header((CONTENT_TYPE, content_type))
                .insert_header(("Idempotent-Replayed", "true"))
                .body(body))
        }
        Begin::Run => {
            let response = work.await;
            let status = response.status();
            if !is_final(status) {
                keys::release(&state.db, ws, operation, &key).await?;
                return Ok(response);
            }
            let headers = response.headers().clone();
            let bytes = actix_web::body::to_bytes(response.into_body())
                .await
                .map_err(|e| ApiError::Service(ServiceError::Internal(e.to_string())))?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            keys::finish(&state.db, ws, operation, &key, status.as_u16(), text).await?;
            let mut rebuilt = HttpResponse::build(status);
            for (name, value) in headers.iter() {
                rebuilt.insert_header((name.clone(), value.clone()));
            }
            rebuilt.insert_header(("Idempotent-Replayed", HeaderValue::from_static("false")));
            Ok(rebuilt.body(bytes))
        }
    }
}
