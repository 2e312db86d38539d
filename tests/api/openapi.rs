//! The committed OpenAPI document matches the code, and the server serves it with Swagger UI.

use whatsapp_numbers::api::openapi::document;

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
            let body = response.text().await.unwrap();
            assert!(
                !body.contains("\"code\":\"not_found\""),
                "{method} {path} is documented but not routed ({status})"
            );
        }
    }
}
