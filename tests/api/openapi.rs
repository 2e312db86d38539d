//! The committed OpenAPI document matches the code, and the server serves it with Swagger UI.

use whatsapp_numbers::api::openapi::document;
use whatsapp_numbers::api::ProblemCode;

const REGENERATE: &str = "cargo run --quiet -- openapi > openapi/openapi.json";

#[test]
fn committed_openapi_json_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == document(),
        "openapi/openapi.json is out of date with the code. Regenerate it with:\n\n    {REGENERATE}\n"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_describes_every_endpoint() {
    let spec: serde_json::Value = serde_json::from_str(&document()).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/phone-numbers", "get"),
        ("/api/v1/phone-numbers/{id}", "get"),
        ("/api/v1/phone-numbers/{id}/inbound-agent", "put"),
        ("/api/v1/agents", "get"),
        ("/api/v1/agents", "post"),
        ("/api/v1/agents/{id}", "get"),
        ("/api/v1/agents/{id}", "patch"),
        ("/api/v1/agents/{id}", "delete"),
        ("/api/v1/agents/{id}/whatsapp-outbound-number", "put"),
        ("/api/v1/audit-events", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["operationId"].is_string() && op["tags"].is_array() && op["description"].is_string()
                || op["summary"].is_string(),
            "{method} {path}"
        );
        if path.starts_with("/api/") {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents no 401"
            );
        }
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    assert!(spec["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn the_server_serves_the_document_and_swagger_ui() {
    let app = crate::helpers::spawn_app().await;
    let served: serde_json::Value = app.public_json("/api/v1/openapi.json").await;
    let expected: serde_json::Value = serde_json::from_str(&document()).unwrap();
    assert_eq!(served, expected);
    let ui = app
        .client
        .get(format!("{}/swagger-ui/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

/// The served document states the agent URLs this server takes: plain `http` to loopback only
/// where it is allowed (development mode), so a client generating requests from the document is
/// never refused a URL the document admits. Outside development mode it is the committed document.
#[tokio::test]
async fn the_served_document_admits_plain_http_agent_urls_only_where_the_server_takes_them() {
    let plain = "http://127.0.0.1:9000/in";
    for allow_private in [false, true] {
        let app =
            crate::helpers::spawn_app_with(|s| s.agent_url_allow_private = allow_private).await;
        let served: serde_json::Value = app.public_json("/api/v1/openapi.json").await;
        let schemas = &served["components"]["schemas"];
        for (schema, field) in [
            ("WebhookInput", "url"),
            ("NewWebhookInput", "url"),
            ("OpenAiInput", "base_url"),
            ("NewOpenAiInput", "base_url"),
        ] {
            let pattern = schemas[schema]["properties"][field]["pattern"]
                .as_str()
                .unwrap();
            assert_eq!(
                regex::Regex::new(pattern).unwrap().is_match(plain),
                allow_private,
                "{schema}.{field} with AGENT_URL_ALLOW_PRIVATE={allow_private}"
            );
        }
        if !allow_private {
            let committed: serde_json::Value = serde_json::from_str(&document()).unwrap();
            assert_eq!(served, committed);
        }
        let token = app.editor("ws");
        let body = serde_json::json!({"name": "Hook", "responder": {"kind": "webhook",
            "webhook": {"url": plain, "secret": "0123456789abcdef"}}});
        let response = app
            .request(
                reqwest::Method::POST,
                "/api/v1/agents",
                Some(&token),
                Some(body),
            )
            .await;
        let expected = if allow_private { 201 } else { 400 };
        assert_eq!(response.status().as_u16(), expected, "{plain}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = crate::helpers::spawn_app().await;
    let token = app.editor("ws");
    let spec: serde_json::Value = serde_json::from_str(&document()).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = path.replace("{id}", &id);
            let response = app
                .request(
                    method.clone(),
                    &url,
                    Some(&token),
                    Some(serde_json::json!({})),
                )
                .await;
            let status = response.status();
            if response
                .headers()
                .get("content-type")
                .is_some_and(|t| t == "text/event-stream")
            {
                continue; // the live stream: routed, and it never ends
            }
            let body = response.text().await.unwrap();
            assert!(
                !body.contains("\"code\":\"not_found\""),
                "{method} {path} is documented but not routed ({status})"
            );
        }
    }
}

/// Codes every operation can answer with, whatever it does, documented once on the Problem
/// schema rather than per operation: they answer paths and methods, not operations.
const ROUTING_CODES: [ProblemCode; 2] = [ProblemCode::NotFound, ProblemCode::MethodNotAllowed];

#[test]
fn every_problem_code_the_server_can_emit_is_in_the_document() {
    let spec: serde_json::Value = serde_json::from_str(&document()).unwrap();
    let listed: Vec<&str> = spec["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        spec["components"]["schemas"]["Problem"]["properties"]["code"]["$ref"],
        "#/components/schemas/ProblemCode"
    );
    let mut per_operation: Vec<String> = Vec::new();
    for operations in spec["paths"].as_object().unwrap().values() {
        for operation in operations.as_object().unwrap().values() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(schema) = response.pointer("/content/application~1problem+json/schema")
                else {
                    continue;
                };
                let codes = schema.pointer("/allOf/1/properties/code/enum");
                let codes = codes.and_then(|c| c.as_array()).unwrap_or_else(|| {
                    panic!(
                        "{} {status} lists no problem codes",
                        operation["operationId"]
                    )
                });
                per_operation.extend(codes.iter().map(|c| c.as_str().unwrap().to_owned()));
            }
        }
    }
    // ApiError::code returns a ProblemCode, so these are all the codes the server can emit.
    for code in ProblemCode::ALL {
        assert!(
            listed.contains(&code.as_str()),
            "{code} is not in the ProblemCode schema"
        );
        assert!(
            ROUTING_CODES.contains(code) || per_operation.iter().any(|c| c == code.as_str()),
            "no operation documents {code}"
        );
    }
    for code in &per_operation {
        assert!(
            ProblemCode::parse(code).is_ok(),
            "{code} is documented but not a ProblemCode"
        );
    }
}

#[test]
fn every_field_a_response_always_sends_is_required() {
    let spec: serde_json::Value = serde_json::from_str(&document()).unwrap();
    let number = &spec["components"]["schemas"]["PhoneNumber"];
    let properties: Vec<&String> = number["properties"].as_object().unwrap().keys().collect();
    let required: Vec<&str> = number["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for property in properties {
        assert!(
            required.contains(&property.as_str()),
            "PhoneNumber.{property} is not required"
        );
    }
}
