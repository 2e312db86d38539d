//! The HTTP surface: routes, request and response types, and the OpenAPI document.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod health;
pub mod openapi;
pub mod phone_numbers;
pub mod sandbox;
pub mod types;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::error::ApiError;

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 256 * 1024;

/// Registers every route, and makes actix's own extractor errors problem+json like the rest.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT)
            .error_handler(json_error),
    )
    .app_data(web::PathConfig::default().error_handler(path_error))
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .service(health::healthz)
    .service(health::readyz)
    .service(health::metrics)
    .service(
        web::scope("/api/v1")
            .service(phone_numbers::sync_phone_numbers)
            .service(phone_numbers::list_phone_numbers)
            .service(phone_numbers::get_phone_number)
            .service(phone_numbers::assign_inbound_agent)
            .service(phone_numbers::register_phone_number)
            .service(phone_numbers::list_registration_attempts)
            .service(phone_numbers::list_quality_events)
            .service(accounts::connect_whatsapp_account)
            .service(accounts::list_whatsapp_accounts)
            .service(accounts::sync_whatsapp_account)
            .service(accounts::get_signup_config)
            .service(sandbox::list_sandbox_messages)
            .service(agents::list_agents)
            .service(agents::create_agent)
            .service(agents::get_agent)
            .service(agents::update_agent)
            .service(agents::delete_agent)
            .service(agents::set_whatsapp_outbound_number)
            .service(audit::list_audit_events),
    );
}

/// For everything no route matches.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let err = ApiError::NotFound {
        code: "not_found",
        detail: format!("No route for {} {}.", req.method(), req.path()),
    };
    actix_web::ResponseError::error_response(&err)
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            return ApiError::PayloadTooLarge(JSON_LIMIT).into();
        }
        JsonPayloadError::ContentType => {
            "the body must be JSON, sent with `Content-Type: application/json`".to_owned()
        }
        JsonPayloadError::Deserialize(e) => format!("the JSON body is invalid: {e}"),
        other => format!("the body could not be read: {other}"),
    };
    ApiError::Validation(detail).into()
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        PathError::Deserialize(e) => format!("a path segment is invalid (ids are UUIDs): {e}"),
        other => other.to_string(),
    };
    ApiError::Validation(detail).into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        QueryPayloadError::Deserialize(e) => format!("a query parameter is invalid: {e}"),
        other => other.to_string(),
    };
    ApiError::Validation(detail).into()
}

/// For body fields that must be present but may be null (`{"agent_id": null}` clears; `{}` is a mistake).
pub(crate) fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}
