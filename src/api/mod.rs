//! The HTTP surface: routes, request and response types, and the OpenAPI document.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod contract;
pub mod conversations;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod me;
pub mod openapi;
pub mod phone_numbers;
pub mod problem;
pub mod request_id;
pub mod sandbox;
mod time;
pub mod types;
pub mod webhooks;

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
    .service(webhooks::verify_whatsapp_webhook)
    .service(webhooks::receive_whatsapp_webhook)
    .service(
        web::scope("/api/v1")
            .service(phone_numbers::sync_phone_numbers)
            .service(phone_numbers::register_phone_numbers)
            .service(phone_numbers::list_phone_numbers)
            .service(phone_numbers::get_phone_number)
            .service(phone_numbers::assign_inbound_agent)
            .service(phone_numbers::register_phone_number)
            .service(phone_numbers::list_registration_attempts)
            .service(phone_numbers::list_quality_events)
            .service(accounts::connect_whatsapp_account)
            .service(accounts::list_whatsapp_accounts)
            .service(accounts::sync_whatsapp_account)
            .service(accounts::disconnect_whatsapp_account)
            .service(accounts::get_signup_config)
            .service(me::get_me)
            .service(sandbox::list_sandbox_messages)
            .service(sandbox::play_sandbox_inbound_message)
            .service(conversations::list_conversations)
            .service(conversations::list_conversation_messages)
            .service(conversations::list_webhook_jobs)
            .service(agents::list_agents)
            .service(agents::create_agent)
            .service(agents::get_agent)
            .service(agents::update_agent)
            .service(agents::delete_agent)
            .service(agents::set_whatsapp_outbound_number)
            .service(agents::send_agent_message)
            .service(events::stream_events)
            .service(audit::list_audit_events),
    );
}

/// A 200 JSON answer serialized into a buffer of `capacity` bytes to start with.
pub(crate) fn json_sized(
    value: &impl serde::Serialize,
    capacity: usize,
) -> Result<HttpResponse, ApiError> {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, value)
        .map_err(|e| ApiError::Service(crate::service::ServiceError::Internal(e.to_string())))?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
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
        // The paths alone, which are the same under any URL policy.
        let spec = openapi::spec_json(crate::domain::responder::UrlPolicy::default());
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
    // The most specific templates win: `/phone-numbers/sync` is not `/phone-numbers/{id}`.
    let mut best: Option<(usize, Vec<Method>)> = None;
    for (template, methods) in table {
        let matches = template.len() == segments.len()
            && template.iter().zip(&segments).all(|(t, s)| match t {
                Some(fixed) => fixed == s,
                None => !s.is_empty(),
            });
        if !matches {
            continue;
        }
        let literals = template.iter().filter(|t| t.is_some()).count();
        match &mut best {
            Some((score, allow)) if *score == literals => {
                for method in methods {
                    if !allow.contains(method) {
                        allow.push(method.clone());
                    }
                }
            }
            Some((score, _)) if *score > literals => {}
            _ => best = Some((literals, methods.clone())),
        }
    }
    best.map(|(_, allow)| allow).unwrap_or_default()
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

fn path_error(err: PathError, req: &HttpRequest) -> actix_web::Error {
    // `GET /phone-numbers/sync` reaches `/phone-numbers/{id}`, but names a path of its own.
    let allow = methods_of(req.path());
    if !allow.is_empty() && !allow.contains(req.method()) {
        return ApiError::MethodNotAllowed {
            method: req.method().clone(),
            path: req.path().to_owned(),
            allow,
        }
        .into();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_methods_of_the_most_specific_path() {
        assert_eq!(methods_of("/api/v1/phone-numbers/sync"), vec![Method::POST]);
        assert_eq!(
            methods_of("/api/v1/phone-numbers/6f1c2a34-0b5e-4c7d-9e8f-0a1b2c3d4e5f"),
            vec![Method::GET]
        );
        let mut agent = methods_of("/api/v1/agents/x");
        agent.sort_by_key(|m| m.to_string());
        assert_eq!(agent, vec![Method::DELETE, Method::GET, Method::PATCH]);
        assert_eq!(methods_of("/readyz"), vec![Method::GET]);
        assert!(methods_of("/nowhere").is_empty());
    }
}
