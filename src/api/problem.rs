//! Errors as HTTP: the one list of problem codes, [`ApiError`] (a service error, or what only
//! HTTP can get wrong), and its RFC 9457 `application/problem+json` rendering.

use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::vocabulary::text_enum;
use crate::domain::RuleError;
use crate::meta::MetaError;
use crate::service::ServiceError;

text_enum! {
    /// Stable machine code of a problem: the SPA branches on it, never on `detail`.
    "problem code" pub enum ProblemCode {
        ValidationFailed = "validation_failed",
        Unauthorized = "unauthorized",
        Forbidden = "forbidden",
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        PhoneNumberNotFound = "phone_number_not_found",
        AgentNotFound = "agent_not_found",
        AccountNotFound = "account_not_found",
        ConversationNotFound = "conversation_not_found",
        InvalidSignature = "invalid_signature",
        IdempotencyKeyReused = "idempotency_key_reused",
        IdempotencyKeyInProgress = "idempotency_key_in_progress",
        NumberNotCloudApi = "number_not_cloud_api",
        NumberRemoved = "number_removed",
        NoOutboundNumber = "no_outbound_number",
        OutsideServiceWindow = "outside_service_window",
        AgentNameTaken = "agent_name_taken",
        SecretRequired = "secret_required",
        RegistrationInProgress = "registration_in_progress",
        AlreadyRegistered = "already_registered",
        RegistrationLimitReached = "registration_limit_reached",
        AccountNeedsReconnect = "account_needs_reconnect",
        AccountConnectedElsewhere = "account_connected_elsewhere",
        SyncInProgress = "sync_in_progress",
        WabaCallBudgetSpent = "waba_call_budget_spent",
        SignupCodeInvalid = "signup_code_invalid",
        MetaPermissionMissing = "meta_permission_missing",
        MetaError = "meta_error",
        SandboxOff = "sandbox_off",
        PayloadTooLarge = "payload_too_large",
        ServiceUnavailable = "service_unavailable",
        InternalError = "internal_error",
    }
}

/// Every failure a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What a use case ended in.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Bad input caught at the HTTP edge: malformed JSON, a bad UUID in a path, a bad query value.
    #[error("{0}")]
    Validation(String),
    #[error("A valid bearer token is required: send `Authorization: Bearer <JWT>`.")]
    Unauthorized,
    #[error("Your role may only read; changing things needs the editor role.")]
    Forbidden,
    /// No route has this path.
    #[error("No route for {0}.")]
    RouteNotFound(String),
    /// The path exists, but not with this method.
    #[error("{path} does not support {method}; it supports {}.", allow.iter().map(Method::as_str).collect::<Vec<_>>().join(", "))]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: Vec<Method>,
    },
    /// Meta's webhook handshake with a verify token that is not ours (or none is configured).
    #[error("The verify token does not match this server's META_WEBHOOK_VERIFY_TOKEN.")]
    VerifyTokenMismatch,
    /// A webhook delivery without Meta's signature, or with a wrong one.
    #[error("The X-Hub-Signature-256 header is missing or does not match the body.")]
    BadSignature,
    /// The body is larger than the limit (bytes).
    #[error("The request body is larger than {0} bytes.")]
    PayloadTooLarge(usize),
}

impl From<RuleError> for ApiError {
    fn from(err: RuleError) -> Self {
        ApiError::Service(err.into())
    }
}

impl ApiError {
    /// The stable machine code.
    pub fn code(&self) -> ProblemCode {
        use ProblemCode as C;
        use ServiceError as S;
        match self {
            ApiError::Validation(_) => C::ValidationFailed,
            ApiError::Unauthorized => C::Unauthorized,
            ApiError::Forbidden => C::Forbidden,
            ApiError::RouteNotFound(_) => C::NotFound,
            ApiError::MethodNotAllowed { .. } => C::MethodNotAllowed,
            ApiError::PayloadTooLarge(_) => C::PayloadTooLarge,
            ApiError::BadSignature => C::InvalidSignature,
            ApiError::VerifyTokenMismatch => C::Forbidden,
            ApiError::Service(err) => match err {
                S::Invalid(_) => C::ValidationFailed,
                S::PhoneNumberNotFound => C::PhoneNumberNotFound,
                S::AgentNotFound => C::AgentNotFound,
                S::AccountNotFound => C::AccountNotFound,
                S::ConversationNotFound => C::ConversationNotFound,
                S::IdempotencyKeyReused => C::IdempotencyKeyReused,
                S::IdempotencyKeyInProgress => C::IdempotencyKeyInProgress,
                S::NotCloudApi { .. } => C::NumberNotCloudApi,
                S::NumberRemoved { .. } => C::NumberRemoved,
                S::NoOutboundNumber { .. } => C::NoOutboundNumber,
                S::OutsideServiceWindow { .. } => C::OutsideServiceWindow,
                S::AgentNameTaken { .. } => C::AgentNameTaken,
                S::SecretRequired { .. } => C::SecretRequired,
                S::RegistrationInProgress { .. } => C::RegistrationInProgress,
                S::AlreadyRegistered { .. } => C::AlreadyRegistered,
                S::RegistrationLimitReached { .. } | S::RegistrationPaused { .. } => {
                    C::RegistrationLimitReached
                }
                S::AccountNeedsReconnect => C::AccountNeedsReconnect,
                S::AccountConnectedElsewhere => C::AccountConnectedElsewhere,
                S::SyncInProgress => C::SyncInProgress,
                S::WabaCallBudgetSpent { .. } => C::WabaCallBudgetSpent,
                S::SignupCodeInvalid(_) => C::SignupCodeInvalid,
                S::MetaPermissionMissing(_) => C::MetaPermissionMissing,
                S::Meta(_) => C::MetaError,
                S::SandboxOff => C::SandboxOff,
                S::Unavailable(_) => C::ServiceUnavailable,
                S::Internal(_) => C::InternalError,
            },
        }
    }

    fn title(&self) -> &'static str {
        match self.status_code() {
            StatusCode::BAD_REQUEST => "Invalid request",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
            StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable request",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            StatusCode::BAD_GATEWAY => "Meta refused the request",
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
            _ => "Internal server error",
        }
    }

    fn service(&self) -> Option<&ServiceError> {
        match self {
            ApiError::Service(err) => Some(err),
            _ => None,
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
        if let Some(err) = self.service() {
            problem.retryable = err.retryable();
            problem.retry_after_seconds = err.retry_after_seconds();
            problem.meta_error = err.meta().and_then(MetaErrorBody::of);
        }
        problem
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use ProblemCode as C;
        match self.code() {
            C::ValidationFailed => StatusCode::BAD_REQUEST,
            C::Unauthorized | C::InvalidSignature => StatusCode::UNAUTHORIZED,
            C::Forbidden => StatusCode::FORBIDDEN,
            C::NotFound
            | C::PhoneNumberNotFound
            | C::AgentNotFound
            | C::AccountNotFound
            | C::ConversationNotFound
            | C::SandboxOff => StatusCode::NOT_FOUND,
            C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            C::NumberNotCloudApi
            | C::NumberRemoved
            | C::NoOutboundNumber
            | C::AgentNameTaken
            | C::RegistrationInProgress
            | C::AlreadyRegistered
            | C::AccountNeedsReconnect
            | C::AccountConnectedElsewhere
            | C::SyncInProgress
            | C::IdempotencyKeyInProgress => StatusCode::CONFLICT,
            C::SignupCodeInvalid
            | C::SecretRequired
            | C::MetaPermissionMissing
            | C::IdempotencyKeyReused
            | C::OutsideServiceWindow => StatusCode::UNPROCESSABLE_ENTITY,
            C::RegistrationLimitReached | C::WabaCallBudgetSpent => StatusCode::TOO_MANY_REQUESTS,
            C::MetaError => StatusCode::BAD_GATEWAY,
            C::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            C::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            C::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response_with(self.problem())
    }
}

impl ApiError {
    /// The response, with the headers the status calls for; logs what callers never see.
    pub fn response_with(&self, problem: Problem) -> HttpResponse {
        if let Some(cause) = self.service().and_then(ServiceError::cause) {
            match self.code() {
                ProblemCode::ServiceUnavailable => {
                    tracing::warn!(%cause, "request failed: dependency unavailable")
                }
                _ => tracing::error!(%cause, "request failed"),
            }
        }
        let mut response = problem.response();
        let headers = response.headers_mut();
        if let Some(seconds) = problem.retry_after_seconds {
            if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        match self {
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                let allow: Vec<&str> = allow.iter().map(Method::as_str).collect();
                if let Ok(value) = header::HeaderValue::from_str(&allow.join(", ")) {
                    headers.insert(header::ALLOW, value);
                }
            }
            _ => {}
        }
        response
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
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:whatsapp-numbers:problem:number_not_cloud_api",
    "title": "Conflict",
    "status": 409,
    "detail": "+1 555-555-0100 is not ready on the WhatsApp Cloud API (platform type ON_PREMISE). Register it first …",
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
    pub code: ProblemCode,
    /// Present on errors caused by Meta: Meta's error as it came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_error: Option<MetaErrorBody>,
    /// Present on errors caused by Meta or by limits: whether trying again can succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// When known: how long to wait before trying again (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub retry_after_seconds: Option<u64>,
    /// On Register's errors: the number as it now is, so a failed click needs no second request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<Box<super::types::PhoneNumber>>,
    /// The request's id (also in the `X-Request-Id` header): quote it when asking for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: ProblemCode, title: &str, detail: String) -> Self {
        Problem {
            problem_type: format!("urn:whatsapp-numbers:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code,
            meta_error: None,
            retryable: None,
            retry_after_seconds: None,
            phone_number: None,
            request_id: super::request_id::current(),
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
    use crate::domain::PlatformType;

    #[test]
    fn rule_errors_map_to_stable_codes() {
        let not_cloud = RuleError::NotCloudApi {
            display: "+1".into(),
            platform_type: PlatformType::OnPremise,
        };
        let err = ApiError::from(not_cloud);
        assert_eq!(
            (err.status_code(), err.code()),
            (StatusCode::CONFLICT, ProblemCode::NumberNotCloudApi)
        );
        assert!(err.problem().detail.contains("Register"));
        assert_eq!(
            ApiError::from(RuleError::Invalid("x".into())).code(),
            ProblemCode::ValidationFailed
        );
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let err = ApiError::Service(ServiceError::Internal("secret table layout".into()));
        assert!(!err.problem().detail.contains("secret"));
        assert_eq!(err.problem().status, 500);
    }
}
