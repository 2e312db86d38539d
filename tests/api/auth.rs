use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;
use whatsapp_numbers::domain::Role;

use crate::helpers::{assert_problem, spawn_app, JWT_SECRET};

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/api/v1/phone-numbers", None, None)
        .await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_problem(response, 401, "unauthorized").await;

    let forged = whatsapp_numbers::auth::TokenKeys::new("some-other-secret-0123456789").mint(
        "eve",
        "ws",
        Role::Editor,
        chrono::TimeDelta::hours(1),
    );
    assert_problem(
        app.get("/api/v1/agents", &forged).await,
        401,
        "unauthorized",
    )
    .await;

    let expired = whatsapp_numbers::auth::TokenKeys::new(JWT_SECRET).mint(
        "bob",
        "ws",
        Role::Editor,
        chrono::TimeDelta::hours(-1),
    );
    assert_problem(
        app.get("/api/v1/agents", &expired).await,
        401,
        "unauthorized",
    )
    .await;

    let claims = json!({"sub": "bob", "workspace_id": "ws", "role": "admin", "exp": chrono::Utc::now().timestamp() + 600});
    let odd_role = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_problem(
        app.get("/api/v1/agents", &odd_role).await,
        401,
        "unauthorized",
    )
    .await;

    let no_workspace =
        json!({"sub": "bob", "role": "editor", "exp": chrono::Utc::now().timestamp() + 600});
    let token = encode(
        &Header::default(),
        &no_workspace,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_problem(app.get("/api/v1/agents", &token).await, 401, "unauthorized").await;

    let response = app
        .client
        .get(format!("{}/api/v1/agents", app.address))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn viewers_read_but_every_change_is_403_and_changes_nothing() {
    let app = spawn_app().await;
    let editor = app.editor("ws");
    let viewer = app.token("ws", Role::Viewer);
    let number = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let agent = app.create_agent(&editor, "Support").await;
    let agent_id = agent["id"].as_str().unwrap();

    assert_eq!(
        app.get("/api/v1/phone-numbers", &viewer).await.status(),
        200
    );
    assert_eq!(
        app.get(&format!("/api/v1/phone-numbers/{number}"), &viewer)
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/api/v1/agents", &viewer).await.status(), 200);
    assert_eq!(
        app.get(&format!("/api/v1/agents/{agent_id}"), &viewer)
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/api/v1/audit-events", &viewer).await.status(), 200);

    let faq = json!({"name": "New", "responder": {"kind": "faq", "faq": {"entries": [], "fallback": "x"}}});
    let account = app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &editor)
        .await["whatsapp_account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let writes = [
        (Method::POST, "/api/v1/agents".to_owned(), Some(faq)),
        (
            Method::POST,
            format!("/api/v1/phone-numbers/{number}/register"),
            None,
        ),
        (Method::POST, "/api/v1/phone-numbers/sync".to_owned(), None),
        (
            Method::POST,
            format!("/api/v1/whatsapp/accounts/{account}/sync"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/whatsapp/accounts".to_owned(),
            Some(json!({"waba_id": "1", "access_token": "t"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/agents/{agent_id}"),
            Some(json!({"name": "Renamed"})),
        ),
        (Method::DELETE, format!("/api/v1/agents/{agent_id}"), None),
        (
            Method::PUT,
            format!("/api/v1/agents/{agent_id}/whatsapp-outbound-number"),
            Some(json!({"number_id": number})),
        ),
        (
            Method::PUT,
            format!("/api/v1/phone-numbers/{number}/inbound-agent"),
            Some(json!({"agent_id": agent_id})),
        ),
    ];
    for (method, path, body) in writes {
        let response = app
            .request(method.clone(), &path, Some(&viewer), body)
            .await;
        assert_problem(response, 403, "forbidden").await;
    }
    let agents = app.get_json("/api/v1/agents", &editor).await;
    assert_eq!(agents["data"].as_array().unwrap().len(), 1);
    assert_eq!(agents["data"][0]["name"], "Support");
    assert!(agents["data"][0]["whatsapp_outbound_number"].is_null());
    assert!(app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &editor)
        .await["inbound_agent"]
        .is_null());
}

#[tokio::test]
async fn a_workspace_is_created_the_first_time_a_token_names_it() {
    let app = spawn_app().await;
    let token = app.editor("brand-new-workspace");
    assert_eq!(
        app.get_json("/api/v1/agents", &token).await["data"],
        json!([])
    );
    let agent = app.create_agent(&token, "First agent").await;
    assert_eq!(agent["name"], "First agent");
}
