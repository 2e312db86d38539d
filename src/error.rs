//! The one error type of the service, and its RFC 9457 `application/problem+json` rendering.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::RuleError;
use crate::meta::MetaError;

/// Every failure a request can end in. Each variant has a stable `code` for the SPA.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: malformed JSON, a bad UUID in a path, an unknown query value, a broken field rule.
    #[error("{0}")]
    Validation(String),
    #[error("A valid bearer token is required: send `Authorization: Bearer <JWT>`.")]
    Unauthorized,
    #[error("Your role may only read; changing things needs the editor role.")]
    Forbidden,
    /// Something that does not exist, or belongs to another workspace (indistinguishable on purpose).
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    /// The request conflicts with the current state.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// Too many attempts; `retry_after_seconds` says when trying again can work.
    #[error("{detail}")]
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after_seconds: Option<u64>,
    },
    /// Meta refused the call or could not be reached.
    #[error("{}", .0.user_sentence())]
    Meta(MetaError),
    /// The body is larger than the limit (bytes).
    #[error("The request body is larger than {0} bytes.")]
    PayloadTooLarge(usize),
    /// A dependency (the database pool) cannot serve now; retrying later may work.
    #[error("The service is temporarily unavailable; try again shortly.")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, never shown.
    #[error("An unexpected error occurred.")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(code: &'static str, what: &str) -> Self {
        ApiError::NotFound {
            code,
            detail: format!("No {what} with that id exists in your workspace."),
        }
    }

    pub fn phone_number_not_found() -> Self {
        Self::not_found("phone_number_not_found", "phone number")
    }

    pub fn agent_not_found() -> Self {
        Self::not_found("agent_not_found", "agent")
    }

    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::TooManyRequests { code, .. } => code,
            ApiError::Meta(_) => "meta_error",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "Invalid request",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden => "Forbidden",
            ApiError::NotFound { .. } => "Not found",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::TooManyRequests { .. } => "Too many requests",
            ApiError::Meta(_) => "Meta refused the request",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let mut problem = Problem::new(
            self.status_code(),
            self.code(),
            self.title(),
            self.to_string(),
        );
        match self {
            ApiError::Meta(err) => {
                problem.retryable = Some(err.retryable());
                problem.retry_after_seconds = err.retry_after_seconds();
                problem.meta_error = MetaErrorBody::of(err);
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => {
                problem.retryable = Some(true);
                problem.retry_after_seconds = *retry_after_seconds;
            }
            _ => {}
        }
        problem
    }
}

impl From<RuleError> for ApiError {
    fn from(err: RuleError) -> Self {
        match err {
            RuleError::Invalid(msg) => ApiError::Validation(msg),
            RuleError::NotCloudApi { .. } => ApiError::Conflict {
                code: "number_not_cloud_api",
                detail: err.to_string(),
            },
            RuleError::NumberRemoved { .. } => ApiError::Conflict {
                code: "number_removed",
                detail: err.to_string(),
            },
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        ApiError::Internal(format!("database: {err}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Meta(_) => StatusCode::BAD_GATEWAY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "request failed: dependency unavailable")
            }
            _ => {}
        }
        let mut response = self.problem().response();
        if let Some(seconds) = response_retry_after(self) {
            if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn response_retry_after(err: &ApiError) -> Option<u64> {
    match err {
        ApiError::TooManyRequests {
            retry_after_seconds,
            ..
        } => *retry_after_seconds,
        ApiError::Meta(meta) => meta.retry_after_seconds(),
        _ => None,
    }
}

/// Meta's own error, for problems caused by Meta.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct MetaErrorBody {
    /// Meta's error code, e.g. 133005 (PIN mismatch), 133016 (register limit), 190 (token).
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    /// For Meta support tickets.
    pub fbtrace_id: Option<String>,
}

impl MetaErrorBody {
    pub fn of(err: &MetaError) -> Option<Self> {
        match err {
            MetaError::Api(e) => Some(MetaErrorBody {
                code: e.code,
                subcode: e.subcode,
                message: e.message.clone(),
                fbtrace_id: e.fbtrace_id.clone(),
            }),
            _ => None,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:whatsapp-numbers:problem:number_not_cloud_api",
    "title": "Conflict",
    "status": 409,
    "detail": "+1 555-555-0100 is not on the WhatsApp Cloud API (platform type ON_PREMISE). Register it first …",
    "code": "number_not_cloud_api"
}))]
pub struct Problem {
    /// `urn:whatsapp-numbers:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// A sentence for the user: what went wrong and what to do.
    pub detail: String,
    /// Stable machine code: `validation_failed`, `unauthorized`, `forbidden`, `not_found`,
    /// `phone_number_not_found`, `agent_not_found`, `number_not_cloud_api`, `number_removed`,
    /// `agent_name_taken`, `meta_error`, `registration_in_progress`,
    /// `already_registered`, `registration_limit_reached`, `account_connected_elsewhere`, `payload_too_large`, `service_unavailable`, `internal_error`, ...
    pub code: String,
    /// Present on errors caused by Meta: Meta's error as it came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_error: Option<MetaErrorBody>,
    /// Present on errors caused by Meta or by limits: whether trying again can succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// When known: how long to wait before trying again (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, title: &str, detail: String) -> Self {
        Problem {
            problem_type: format!("urn:whatsapp-numbers:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            meta_error: None,
            retryable: None,
            retry_after_seconds: None,
        }
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "application/problem+json"))
            .json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_errors_map_to_stable_codes() {
        let not_cloud = RuleError::NotCloudApi {
            display: "+1".into(),
            platform_type: "ON_PREMISE".into(),
        };
        let err = ApiError::from(not_cloud);
        assert_eq!(
            (err.status_code(), err.code()),
            (StatusCode::CONFLICT, "number_not_cloud_api")
        );
        assert!(err.problem().detail.contains("Register"));
        assert_eq!(
            ApiError::from(RuleError::Invalid("x".into())).code(),
            "validation_failed"
        );
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let err = ApiError::Internal("secret table layout".into());
        assert!(!err.problem().detail.contains("secret"));
        assert_eq!(err.problem().status, 500);
    }
}
