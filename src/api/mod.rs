//! The HTTP surface: routes, request and response types, and the OpenAPI document.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod contract;
pub mod health;
pub mod me;
pub mod openapi;
pub mod phone_numbers;
pub mod problem;
pub mod sandbox;
pub mod types;

use std::sync::OnceLock;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

pub use problem::{ApiError, Problem, ProblemCode};

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
            .service(me::get_me)
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

/// For everything no route matches: 405 `method_not_allowed` with `Allow` when the path exists
/// under other methods, else 404 `not_found`.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    let (method, path) = (req.method().clone(), req.path().to_owned());
    let allow = methods_of(&path);
    let err = if allow.is_empty() {
        ApiError::RouteNotFound(format!("{method} {path}"))
    } else {
        ApiError::MethodNotAllowed {
            method,
            path,
            allow,
        }
    };
    err.error_response()
}

/// A path template split into segments; `None` stands for a `{parameter}`.
type Template = Vec<Option<String>>;

/// The methods the server answers on `path`: the OpenAPI document's operations (the routes are
/// checked against it by a test), plus the served spec and Swagger UI.
fn methods_of(path: &str) -> Vec<Method> {
    static TABLE: OnceLock<Vec<(Template, Vec<Method>)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let spec = openapi::spec_json();
        let mut table: Vec<(Template, Vec<Method>)> = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(template, operations)| {
                let methods = operations
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                    .collect();
                (split_template(template), methods)
            })
            .collect();
        for fixed in ["/", "/api/v1/openapi.json", "/swagger-ui"] {
            table.push((split_template(fixed), vec![Method::GET]));
        }
        table
    });
    if path.starts_with("/swagger-ui/") {
        return vec![Method::GET];
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut allow: Vec<Method> = Vec::new();
    for (template, methods) in table {
        let matches = template.len() == segments.len()
            && template.iter().zip(&segments).all(|(t, s)| match t {
                Some(fixed) => fixed == s,
                None => !s.is_empty(),
            });
        if matches {
            allow.extend(
                methods
                    .iter()
                    .filter(|m| !allow.contains(m))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    allow
}

fn split_template(template: &str) -> Template {
    template
        .trim_end_matches('/')
        .split('/')
        .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
        .collect()
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
