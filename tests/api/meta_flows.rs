//! Connecting, syncing and registering through the HTTP API, with Meta answering from a local
//! server through the real Graph client.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{
    body_partial_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{assert_problem, spawn_app_with_meta, TestApp, META_APP_ID, META_APP_SECRET};

const WABA: &str = "102290129340398";
const TOKEN: &str = "EAAG-system-user-token-SECRET";

fn node(id: &str, display: &str, platform: &str, quality: &str) -> Value {
    json!({
        "id": id, "display_phone_number": display, "verified_name": format!("Name {id}"),
        "quality_rating": quality, "platform_type": platform, "status": "CONNECTED",
        "code_verification_status": "VERIFIED", "name_status": "APPROVED",
        "whatsapp_business_manager_messaging_limit": "TIER_250", "account_mode": "LIVE", "is_on_biz_app": false,
        "throughput": {"level": if platform == "CLOUD_API" { "STANDARD" } else { "NOT_APPLICABLE" }}
    })
}

fn meta_error(status: u16, code: i64, message: &str, transient: bool) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {
        "message": message, "type": "OAuthException", "code": code, "is_transient": transient, "fbtrace_id": "Trace1"}}))
}

/// Meta's WABA node and subscription for `token`.
async fn mount_waba(server: &MockServer, waba: &str, token: &str) {
    let bearer = format!("Bearer {token}");
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{waba}")))
        .and(header("authorization", bearer.as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": waba, "name": "Jaspers Market"})),
        )
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{waba}/subscribed_apps")))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .named("subscribe")
        .mount(server)
        .await;
}

/// Meta's phone-number pages for the WABA; each but the last carries `paging.next`.
async fn mount_numbers(server: &MockServer, waba: &str, pages: Vec<Vec<Value>>) {
    let count = pages.len();
    for (i, data) in pages.into_iter().enumerate() {
        let mut paging = json!({"cursors": {"before": format!("B{i}"), "after": format!("A{i}")}});
        if i + 1 < count {
            paging["next"] = json!(format!(
                "{}/v25.0/{waba}/phone_numbers?after=A{i}&access_token=x",
                server.uri()
            ));
        }
        let mut mock = Mock::given(method("GET")).and(path(format!("/v25.0/{waba}/phone_numbers")));
        mock = if i == 0 {
            mock.and(query_param_is_missing("after"))
        } else {
            mock.and(query_param("after", format!("A{}", i - 1).as_str()))
        };
        mock.respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": data, "paging": paging})),
        )
        .mount(server)
        .await;
    }
}

async fn connect(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.request(
        Method::POST,
        "/api/v1/whatsapp/accounts",
        Some(token),
        Some(body),
    )
    .await
}

/// A manual sync that reaches Meta (the last one is aged past the coalescing window first).
async fn sync_now(app: &TestApp, token: &str) -> Value {
    app.forget_recent_syncs();
    let response = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn register(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/api/v1/phone-numbers/{id}/register"),
        Some(token),
        None,
    )
    .await
}

async fn connected_app(server: &MockServer, numbers: Vec<Value>) -> (TestApp, String) {
    connected_app_with(server, numbers, |_| {}).await
}

/// The same, with more settings changed by `configure`.
async fn connected_app_with(
    server: &MockServer,
    numbers: Vec<Value>,
    configure: impl FnOnce(&mut whatsapp_numbers::config::Settings),
) -> (TestApp, String) {
    let app = crate::helpers::spawn_app_with_meta_and(server, configure).await;
    mount_waba(server, WABA, TOKEN).await;
    mount_numbers(server, WABA, vec![numbers]).await;
    let token = app.editor("ws");
    let response = connect(
        &app,
        &token,
        json!({"waba_id": WABA, "access_token": TOKEN}),
    )
    .await;
    assert_eq!(response.status(), 201);
    (app, token)
}

/// A connected account with one number (`+1 555-000-<meta_id>`); returns the app, a token and our id.
async fn app_with_number(
    server: &MockServer,
    meta_id: &str,
    platform: &str,
) -> (TestApp, String, String) {
    let display = format!("+1 555-000-{meta_id}");
    let (app, token) =
        connected_app(server, vec![node(meta_id, &display, platform, "GREEN")]).await;
    let id = number_id(&app, &token, meta_id).await;
    (app, token, id)
}

async fn number_id(app: &TestApp, token: &str, meta_id: &str) -> String {
    let list = app
        .get_json("/api/v1/phone-numbers?include_removed=true", token)
        .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["phone_number_id"] == meta_id)
        .expect("number listed")["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn register_calls(server: &MockServer, meta_id: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.method.as_str() == "POST" && r.url.path() == format!("/v25.0/{meta_id}/register")
        })
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// A name Meta lists with NUL (PostgreSQL refuses NUL in text) is synced, the NUL as U+FFFD, on
/// every database.
#[tokio::test]
async fn a_number_whose_name_holds_nul_is_synced_on_every_database() {
    let server = MockServer::start().await;
    let mut number = node("1001", "+1 555-000-1001", "CLOUD_API", "GREEN");
    number["verified_name"] = json!("Jaspers\u{0} Market");
    let (app, token) = connected_app(&server, vec![number]).await;
    let page = app.get_json("/api/v1/phone-numbers", &token).await;
    assert_eq!(page["data"][0]["verified_name"], "Jaspers\u{FFFD} Market");
}

#[tokio::test]
async fn a_system_user_token_connects_subscribes_and_syncs_every_page() {
    let server = MockServer::start().await;
    let app = spawn_app_with_meta(&server).await;
    mount_waba(&server, WABA, TOKEN).await;
    mount_numbers(
        &server,
        WABA,
        vec![
            vec![
                node("1001", "+1 555-000-1001", "CLOUD_API", "GREEN"),
                node("1002", "+1 555-000-1002", "ON_PREMISE", "YELLOW"),
            ],
            vec![],
            vec![node("1003", "15550001003", "NOT_APPLICABLE", "NA")],
        ],
    )
    .await;
    let token = app.editor("ws");

    let response = connect(
        &app,
        &token,
        json!({"waba_id": WABA, "access_token": TOKEN}),
    )
    .await;

    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(!text.contains(TOKEN), "the token is write-only: {text}");
    let account: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(account["waba_id"], WABA);
    assert_eq!(account["name"], "Jaspers Market");
    assert_eq!(account["reconnected"], false);
    assert_eq!(account["status"], "connected");
    assert_eq!(
        account["sync"],
        json!({"added": 3, "updated": 0, "removed": 0})
    );
    assert_eq!(account["phone_number_count"], 3);
    // The answer carries the new rows of the table, in its order, so the SPA needs no reload.
    let added: Vec<&str> = account["added_phone_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["phone_number_id"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["1001", "1002", "1003"]);
    assert!(account["added_phone_numbers"][0]["registration"].is_object());
    let subscribed = server.received_requests().await.unwrap();
    assert_eq!(
        subscribed
            .iter()
            .filter(|r| r.url.path().ends_with("/subscribed_apps"))
            .count(),
        1
    );

    let list = app.get_json("/api/v1/phone-numbers", &token).await;
    let numbers = list["data"].as_array().unwrap();
    assert_eq!(numbers.len(), 3);
    let third = numbers
        .iter()
        .find(|n| n["phone_number_id"] == "1003")
        .unwrap();
    assert_eq!(
        (
            third["quality_rating"].as_str(),
            third["can_register"].as_bool()
        ),
        (Some("UNKNOWN"), Some(true))
    );
    assert_eq!(numbers[0]["messaging_limit"], "TIER_250");
    assert_eq!(numbers[0]["status"], "CONNECTED");

    let accounts = app
        .get("/api/v1/whatsapp/accounts", &token)
        .await
        .text()
        .await
        .unwrap();
    assert!(!accounts.contains(TOKEN));
    assert!(accounts.contains(WABA));
}

#[tokio::test]
async fn an_embedded_signup_code_is_exchanged_the_waba_found_and_subscribed() {
    let server = MockServer::start().await;
    let app = spawn_app_with_meta(&server).await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .and(query_param("client_id", META_APP_ID))
        .and(query_param("client_secret", META_APP_SECRET))
        .and(query_param("code", "AQBx-code"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "EAAB-business-token", "token_type": "bearer"}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/debug_token"))
        .and(query_param("input_token", "EAAB-business-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"is_valid": true, "expires_at": 1893456000,
            "granular_scopes": [{"scope": "whatsapp_business_management", "target_ids": [WABA]}]}})))
        .mount(&server)
        .await;
    mount_waba(&server, WABA, "EAAB-business-token").await;
    mount_numbers(
        &server,
        WABA,
        vec![vec![node("2001", "+1 555-000-2001", "CLOUD_API", "GREEN")]],
    )
    .await;
    let token = app.editor("ws");

    let response = connect(
        &app,
        &token,
        json!({"code": "AQBx-code", "phone_number_id": "2001", "business_id": "4455"}),
    )
    .await;

    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(!text.contains("EAAB-business-token"));
    let account: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(account["waba_id"], WABA);
    assert_eq!(account["token_expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(account["sync"]["added"], 1);

    let config = app.get_json("/api/v1/whatsapp/signup-config", &token).await;
    assert_eq!(
        config,
        json!({
            "available": true, "app_id": META_APP_ID, "config_id": "es-config-1",
            "graph_version": "v25.0", "mode": "graph",
            "sdk_url": "https://connect.facebook.net/en_US/sdk.js",
            "message_origin_suffix": "facebook.com",
            "login_options": {
                "config_id": "es-config-1", "response_type": "code",
                "override_default_response_type": true, "extras": {"setup": {}}
            }
        })
    );
    assert!(!config.to_string().contains(META_APP_SECRET));
}

#[tokio::test]
async fn reconnecting_replaces_the_token_and_another_workspace_is_refused() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("3001", "+1 555-000-3001", "CLOUD_API", "GREEN")],
    )
    .await;
    mount_waba(&server, WABA, "EAAG-new-token").await;

    let again = connect(
        &app,
        &token,
        json!({"waba_id": WABA, "access_token": "EAAG-new-token"}),
    )
    .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["reconnected"], true);
    let accounts = app.get_json("/api/v1/whatsapp/accounts", &token).await;
    assert_eq!(accounts["data"].as_array().unwrap().len(), 1);
    // The re-sync ran with the new token.
    let last_list = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .rfind(|r| r.url.path().ends_with("/phone_numbers"))
        .unwrap();
    assert_eq!(
        last_list.headers.get("authorization").unwrap(),
        "Bearer EAAG-new-token"
    );

    let before = server.received_requests().await.unwrap().len();
    let elsewhere = connect(
        &app,
        &app.editor("other-ws"),
        json!({"waba_id": WABA, "access_token": "EAAG-x"}),
    )
    .await;
    assert_problem(elsewhere, 409, "account_connected_elsewhere").await;
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        before,
        "refused before any call to Meta"
    );
    assert_eq!(
        app.get_json("/api/v1/phone-numbers", &app.editor("other-ws"))
            .await["data"],
        json!([])
    );
}

#[tokio::test]
async fn bad_connect_bodies_are_400_and_meta_refusals_are_told_apart() {
    let server = MockServer::start().await;
    let app = spawn_app_with_meta(&server).await;
    let token = app.editor("ws");
    for body in [
        json!({}),
        json!({"access_token": "x"}),
        json!({"code": "c", "access_token": "x", "waba_id": "1"}),
        json!({"waba_id": "bad id!", "access_token": "x"}),
        json!({"code": "  "}),
        json!({"code": "c", "access_token": ""}),
        json!({"code": 7}),
    ] {
        assert_problem(connect(&app, &token, body).await, 400, "validation_failed").await;
    }
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .respond_with(meta_error(
            400,
            100,
            "Invalid verification code format.",
            false,
        ))
        .mount(&server)
        .await;
    let problem = assert_problem(
        connect(&app, &token, json!({"code": "stale"})).await,
        422,
        "signup_code_invalid",
    )
    .await;
    assert_eq!(problem["meta_error"]["code"], 100);
    assert_eq!(problem["retryable"], false);
    assert!(
        problem["detail"].as_str().unwrap().contains("popup"),
        "{problem}"
    );
    // A body with the popup's other keys and nulls for the other form is still the code form.
    let forwarded =
        json!({"code": "stale", "access_token": null, "business_id": "1", "phone_number_id": null});
    assert_problem(
        connect(&app, &token, forwarded).await,
        422,
        "signup_code_invalid",
    )
    .await;

    // A token without the permissions the connection needs is told apart from other refusals.
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-perm"))
        .respond_with(meta_error(403, 200, "(#200) Permissions error", false))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v25.0/waba-perm/subscribed_apps"))
        .respond_with(meta_error(403, 200, "(#200) Permissions error", false))
        .mount(&server)
        .await;
    let body = json!({"waba_id": "waba-perm", "access_token": "EAAB-no-perms"});
    let problem = assert_problem(
        connect(&app, &token, body).await,
        422,
        "meta_permission_missing",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("permission"),
        "{problem}"
    );

    // Any other Meta refusal stays a 502 `meta_error`, with whether to retry.
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-down"))
        .respond_with(meta_error(503, 2, "Service temporarily unavailable", true))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v25.0/waba-down/subscribed_apps"))
        .respond_with(meta_error(503, 2, "Service temporarily unavailable", true))
        .mount(&server)
        .await;
    let body = json!({"waba_id": "waba-down", "access_token": "EAAB-fine"});
    let problem = assert_problem(connect(&app, &token, body).await, 502, "meta_error").await;
    assert_eq!(problem["retryable"], true);
    assert_eq!(
        app.get_json("/api/v1/whatsapp/accounts", &token).await["data"],
        json!([])
    );
}

#[tokio::test]
async fn sync_adds_updates_and_removes_and_records_quality_changes() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![
            node("4001", "+1 555-000-4001", "CLOUD_API", "GREEN"),
            node("4002", "+1 555-000-4002", "CLOUD_API", "GREEN"),
        ],
    )
    .await;
    let kept = number_id(&app, &token, "4001").await;
    let gone = number_id(&app, &token, "4002").await;
    let agent = app.create_agent(&token, "Support").await;
    app.assign(&token, &gone, agent["id"].clone()).await;

    server.reset().await;
    mount_waba(&server, WABA, TOKEN).await;
    let mut changed = node("4001", "+1 555-000-4001", "CLOUD_API", "RED");
    changed["verified_name"] = json!("Jaspers Renamed");
    mount_numbers(
        &server,
        WABA,
        vec![
            vec![changed],
            vec![node("4003", "+1 555-000-4003", "ON_PREMISE", "GREEN")],
        ],
    )
    .await;

    app.forget_recent_syncs();
    let response = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(
        result,
        json!({"added": 1, "updated": 1, "removed": 1, "failed_accounts": []})
    );

    let updated = app
        .get_json(&format!("/api/v1/phone-numbers/{kept}"), &token)
        .await;
    assert_eq!(
        (
            updated["quality_rating"].as_str(),
            updated["verified_name"].as_str()
        ),
        (Some("RED"), Some("Jaspers Renamed"))
    );
    let events = app
        .get_json(
            &format!("/api/v1/phone-numbers/{kept}/quality-events"),
            &token,
        )
        .await;
    assert_eq!(events["data"][0]["old_rating"], "GREEN");
    assert_eq!(events["data"][0]["new_rating"], "RED");
    assert_eq!(events["data"][0]["source"], "sync");

    let removed = app
        .get_json(&format!("/api/v1/phone-numbers/{gone}"), &token)
        .await;
    assert!(removed["removed_at"].is_string());
    assert_eq!(removed["inbound_agent"]["id"], agent["id"], "history stays");
    let listed = app.get_json("/api/v1/phone-numbers", &token).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["phone_number_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["4001", "4003"]);

    // Nothing changed at Meta: nothing changes here.
    let again: Value = sync_now(&app, &token).await;
    assert_eq!(
        again,
        json!({"added": 0, "updated": 0, "removed": 0, "failed_accounts": []})
    );
}

#[tokio::test]
async fn a_rejected_token_marks_the_account_for_reconnection() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("5001", "+1 555-000-5001", "CLOUD_API", "GREEN")],
    )
    .await;
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .respond_with(meta_error(
            401,
            190,
            "Error validating access token: Session has expired",
            false,
        ))
        .mount(&server)
        .await;
    let account_id = app.get_json("/api/v1/whatsapp/accounts", &token).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    app.forget_recent_syncs();
    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/whatsapp/accounts/{account_id}/sync"),
            Some(&token),
            None,
        )
        .await;

    let problem = assert_problem(response, 502, "meta_error").await;
    assert_eq!(problem["meta_error"]["code"], 190);
    assert!(problem["detail"].as_str().unwrap().contains("Reconnect"));
    let account = &app.get_json("/api/v1/whatsapp/accounts", &token).await["data"][0];
    assert_eq!(account["status"], "needs_reconnect");
    assert!(account["last_sync_error"]
        .as_str()
        .unwrap()
        .contains("Reconnect"));
    // The numbers already known stay.
    assert_eq!(
        app.get_json("/api/v1/phone-numbers", &token).await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // With every account failing, the workspace sync answers with the error itself.
    let all = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        assert_problem(all, 502, "meta_error").await["meta_error"]["code"],
        190
    );
}

#[tokio::test]
async fn one_failing_account_does_not_stop_another_from_syncing() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("6001", "+1 555-000-6001", "CLOUD_API", "GREEN")],
    )
    .await;
    mount_waba(&server, "waba-two", "EAAG-two").await;
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-two/phone_numbers"))
        .respond_with(meta_error(
            400,
            80008,
            "(#80008) Too many calls to this WABA",
            false,
        ))
        .mount(&server)
        .await;
    let second = connect(
        &app,
        &token,
        json!({"waba_id": "waba-two", "access_token": "EAAG-two"}),
    )
    .await;
    let second: Value = second.json().await.unwrap();
    assert!(second["sync"].is_null());
    assert!(second["last_sync_error"].is_string());

    let result: Value = sync_now(&app, &token).await;
    assert_eq!(result["failed_accounts"].as_array().unwrap().len(), 1);
    assert_eq!(result["failed_accounts"][0]["waba_id"], "waba-two");
    // Meta said the WABA had too many calls: the service holds its calls rather than ask again.
    assert_eq!(
        result["failed_accounts"][0]["code"],
        "waba_call_budget_spent"
    );
    let accounts = app.get_json("/api/v1/whatsapp/accounts", &token).await;
    let first = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["waba_id"] == WABA)
        .unwrap()
        .clone();
    assert!(first["last_sync_error"].is_null());
    assert_eq!(first["status"], "connected");
}

async fn mount_register(
    server: &MockServer,
    meta_id: &str,
    response: ResponseTemplate,
    times: Option<u64>,
) {
    let mock = Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/register")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(json!({"messaging_product": "whatsapp"})))
        .respond_with(response);
    match times {
        Some(n) => mock.up_to_n_times(n).with_priority(1).mount(server).await,
        None => mock.with_priority(2).mount(server).await,
    }
}

async fn mount_reread(server: &MockServer, meta_id: &str, display: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{meta_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(node(
            meta_id,
            display,
            "CLOUD_API",
            "GREEN",
        )))
        .mount(server)
        .await;
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"success": true}))
}

#[tokio::test]
async fn register_succeeds_rereads_the_number_and_records_the_attempt() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7001", "NOT_APPLICABLE").await;
    mount_register(&server, "7001", ok(), None).await;
    mount_reread(&server, "7001", "+1 555-000-7001").await;

    let response = register(&app, &token, &id).await;

    assert_eq!(response.status(), 200);
    let number: Value = response.json().await.unwrap();
    assert_eq!(number["platform_type"], "CLOUD_API");
    assert_eq!(number["registration"]["state"], "registered");
    assert_eq!(number["registration"]["attempts_in_window"], 1);
    assert_eq!(number["can_assign_inbound_agent"], true);
    assert_eq!(number["can_register"], false);
    let calls = register_calls(&server, "7001").await;
    assert_eq!(calls.len(), 1);
    let pin = calls[0]["pin"].as_str().unwrap();
    assert!(
        pin.len() == 6 && pin.chars().all(|c| c.is_ascii_digit()),
        "{pin}"
    );
    let ledger = app
        .get_json(
            &format!("/api/v1/phone-numbers/{id}/registration-attempts"),
            &token,
        )
        .await;
    assert_eq!(ledger["data"].as_array().unwrap().len(), 1);
    assert_eq!(ledger["data"][0]["outcome"], "succeeded");
    assert!(!ledger.to_string().contains(pin), "the PIN is never shown");

    // A Cloud API number has nothing to register: no call to Meta.
    let again = register(&app, &token, &id).await;
    assert_problem(again, 409, "already_registered").await;
    assert_eq!(register_calls(&server, "7001").await.len(), 1);
}

#[tokio::test]
async fn a_transient_error_is_retried_with_the_same_pin() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7101", "ON_PREMISE").await;
    mount_register(
        &server,
        "7101",
        meta_error(
            503,
            133004,
            "(#133004) Server temporarily unavailable",
            true,
        ),
        Some(1),
    )
    .await;
    mount_register(&server, "7101", ok(), None).await;
    mount_reread(&server, "7101", "+1 555-000-7101").await;

    let response = register(&app, &token, &id).await;

    assert_eq!(response.status(), 200);
    let calls = register_calls(&server, "7101").await;
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0]["pin"], calls[1]["pin"],
        "one PIN per number, reused on retry"
    );
    let ledger = app.ledger(&token, &id).await;
    let outcomes: Vec<&str> = ledger
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["succeeded", "failed"]);
    assert_eq!(ledger[1]["meta_error"]["code"], 133004);
}

#[tokio::test]
async fn an_error_that_needs_the_user_is_returned_at_once_and_the_pin_kept_for_next_time() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7201", "NOT_APPLICABLE").await;
    mount_register(
        &server,
        "7201",
        meta_error(
            400,
            133005,
            "(#133005) Two step verification PIN Mismatch",
            false,
        ),
        None,
    )
    .await;

    let response = register(&app, &token, &id).await;

    let problem = assert_problem(response, 502, "meta_error").await;
    assert_eq!(problem["meta_error"]["code"], 133005);
    assert_eq!(problem["meta_error"]["fbtrace_id"], "Trace1");
    assert_eq!(problem["retryable"], false);
    assert!(problem["detail"].as_str().unwrap().contains("PIN"));
    assert_eq!(
        register_calls(&server, "7201").await.len(),
        1,
        "not retried"
    );
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{id}"), &token)
        .await;
    assert_eq!(number["registration"]["state"], "failed");
    assert!(number["registration"]["last_error"]
        .as_str()
        .unwrap()
        .contains("PIN"));
    assert_eq!(number["platform_type"], "NOT_APPLICABLE");
    // The Actions column knows what the failure means without parsing words.
    assert_eq!(number["registration"]["last_error_code"], 133005);
    assert_eq!(number["registration"]["retryable"], false);
    assert_eq!(number["registration"]["blocked_reason"], Value::Null);
    assert_eq!(number["registration"]["max_attempts"], 10);
    assert_eq!(number["registration"]["calls_per_click"], 3);
    // And the failed click itself carried the number as it now is.
    assert_eq!(problem["phone_number"]["id"], id.as_str());
    assert_eq!(problem["phone_number"]["registration"]["state"], "failed");

    register(&app, &token, &id).await;
    let calls = register_calls(&server, "7201").await;
    assert_eq!(
        calls[0]["pin"], calls[1]["pin"],
        "a new PIN on retry would fail with 133005"
    );
}

#[tokio::test]
async fn the_eleventh_register_call_in_72_hours_is_refused_before_meta_sees_it() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7301", "NOT_APPLICABLE").await;
    mount_register(
        &server,
        "7301",
        meta_error(
            400,
            133006,
            "(#133006) Phone number needs to be verified",
            false,
        ),
        None,
    )
    .await;
    let path = format!("/api/v1/phone-numbers/{id}/register");
    for _ in 0..10 {
        assert_problem(
            app.request(Method::POST, &path, Some(&token), None).await,
            502,
            "meta_error",
        )
        .await;
    }

    let response = app.request(Method::POST, &path, Some(&token), None).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let problem = assert_problem(response, 429, "registration_limit_reached").await;

    assert_eq!(register_calls(&server, "7301").await.len(), 10);
    assert_eq!(problem["retry_after_seconds"].as_u64(), Some(retry_after));
    let wait = problem["retry_after_seconds"].as_u64().unwrap();
    assert!(wait > 71 * 3600 && wait <= 72 * 3600, "{wait}");
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{id}"), &token)
        .await;
    assert_eq!(number["registration"]["attempts_in_window"], 10);
    assert_eq!(number["registration"]["blocked_reason"], "limit_reached");
    assert_eq!(number["can_register"], true, "Register applies, but waits");
    let next: chrono::DateTime<chrono::Utc> = number["registration"]["next_attempt_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let in_seconds = (next - chrono::Utc::now()).num_seconds().unsigned_abs();
    assert!(in_seconds.abs_diff(wait) < 5, "{in_seconds} vs {wait}");
    assert_eq!(
        problem["phone_number"]["registration"]["blocked_reason"],
        "limit_reached"
    );
}

#[tokio::test]
async fn metas_own_block_is_honoured_without_calling_again() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7401", "NOT_APPLICABLE").await;
    mount_register(
        &server,
        "7401",
        meta_error(
            400,
            133016,
            "(#133016) Account register deregister rate limit exceeded",
            false,
        ),
        None,
    )
    .await;
    let path = format!("/api/v1/phone-numbers/{id}/register");

    let first = assert_problem(
        app.request(Method::POST, &path, Some(&token), None).await,
        429,
        "registration_limit_reached",
    )
    .await;
    assert_eq!(first["retry_after_seconds"], 72 * 3600);
    assert_problem(
        app.request(Method::POST, &path, Some(&token), None).await,
        429,
        "registration_limit_reached",
    )
    .await;
    assert_eq!(register_calls(&server, "7401").await.len(), 1);
}

#[tokio::test]
async fn concurrent_clicks_make_exactly_one_call_to_meta() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7501", "NOT_APPLICABLE").await;
    mount_register(
        &server,
        "7501",
        ok().set_delay(Duration::from_millis(2000)),
        None,
    )
    .await;
    mount_reread(&server, "7501", "+1 555-000-7501").await;
    let path = format!("/api/v1/phone-numbers/{id}/register");

    let url = format!("{}{path}", app.address);
    let clicks: Vec<_> = (0..8)
        .map(|_| {
            let request = app.client.post(url.clone()).bearer_auth(&token);
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let mut responses = Vec::new();
    for click in clicks {
        responses.push(click.await.unwrap());
    }

    let mut statuses: Vec<u16> = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        if status == 409 {
            assert_problem(response, 409, "registration_in_progress").await;
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(register_calls(&server, "7501").await.len(), 1);
}

#[tokio::test]
async fn coexistence_numbers_and_viewers_cannot_register() {
    let server = MockServer::start().await;
    let mut coexistence = node("7601", "+1 555-000-7601", "NOT_APPLICABLE", "GREEN");
    coexistence["is_on_biz_app"] = json!(true);
    let (app, token) = connected_app(
        &server,
        vec![
            coexistence,
            node("7602", "+1 555-000-7602", "ON_PREMISE", "GREEN"),
        ],
    )
    .await;
    let coex = number_id(&app, &token, "7601").await;
    let other = number_id(&app, &token, "7602").await;

    let problem = assert_problem(
        register(&app, &token, &coex).await,
        409,
        "already_registered",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("coexistence"));
    let viewer = app.token("ws", whatsapp_numbers::domain::Role::Viewer);
    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/phone-numbers/{other}/register"),
            Some(&viewer),
            None,
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    assert!(register_calls(&server, "7601").await.is_empty());
    assert!(register_calls(&server, "7602").await.is_empty());
}

#[tokio::test]
async fn a_number_added_again_in_meta_under_a_new_id_keeps_its_row_and_agent() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "8001", "CLOUD_API").await;
    let agent = app.create_agent(&token, "Support").await;
    app.assign(&token, &id, agent["id"].clone()).await;

    server.reset().await;
    mount_waba(&server, WABA, TOKEN).await;
    // Same number, written the other way, under a new Meta id.
    mount_numbers(
        &server,
        WABA,
        vec![vec![node("8999", "15550008001", "CLOUD_API", "GREEN")]],
    )
    .await;
    let result: Value = sync_now(&app, &token).await;

    assert_eq!(
        result,
        json!({"added": 0, "updated": 1, "removed": 0, "failed_accounts": []})
    );
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{id}"), &token)
        .await;
    assert_eq!(number["phone_number_id"], "8999");
    assert!(number["removed_at"].is_null());
    assert_eq!(number["inbound_agent"]["id"], agent["id"]);
}

#[tokio::test]
async fn the_background_sync_picks_up_numbers_added_in_meta() {
    let server = MockServer::start().await;
    let app = crate::helpers::spawn_app_with_meta_and(&server, |settings| {
        settings.sync_interval_seconds = 1;
    })
    .await;
    mount_waba(&server, WABA, TOKEN).await;
    mount_numbers(
        &server,
        WABA,
        vec![vec![node(
            "9001",
            "+1 555-000-9001",
            "NOT_APPLICABLE",
            "GREEN",
        )]],
    )
    .await;
    let token = app.editor("ws");
    assert_eq!(
        connect(
            &app,
            &token,
            json!({"waba_id": WABA, "access_token": TOKEN})
        )
        .await
        .status(),
        201
    );

    // A number added in Meta Business Manager, nobody clicks anything.
    server.reset().await;
    mount_waba(&server, WABA, TOKEN).await;
    mount_numbers(
        &server,
        WABA,
        vec![vec![
            node("9001", "+1 555-000-9001", "NOT_APPLICABLE", "GREEN"),
            node("9002", "+1 555-000-9002", "NOT_APPLICABLE", "GREEN"),
        ]],
    )
    .await;
    // Even a one-second interval syncs a WABA only as often as its call budget allows (every
    // 45 s for one this small with no registered number, which has Meta's lower limit): the last
    // sync is aged past that instead of waiting.
    app.forget_recent_syncs();
    let mut listed = 0;
    for _ in 0..100 {
        listed = app.get_json("/api/v1/phone-numbers", &token).await["data"]
            .as_array()
            .unwrap()
            .len();
        if listed == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        listed, 2,
        "the background sync did not pick up the new number within 10 s"
    );
}

#[tokio::test]
async fn with_a_meta_app_there_is_no_sandbox() {
    let server = MockServer::start().await;
    let app = spawn_app_with_meta(&server).await;
    let token = app.editor("ws");
    assert_problem(
        app.get("/api/v1/sandbox/messages", &token).await,
        404,
        "sandbox_off",
    )
    .await;
    let ready: Value = app.public_json("/readyz").await;
    assert_eq!(ready["meta"], "graph");
}

#[tokio::test]
async fn a_slow_account_does_not_hold_up_the_others() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("9501", "+1 555-000-9501", "CLOUD_API", "GREEN")],
    )
    .await;
    mount_waba(&server, "waba-fast", "EAAG-fast").await;
    mount_numbers(
        &server,
        "waba-fast",
        vec![vec![node("9601", "+1 555-000-9601", "CLOUD_API", "GREEN")]],
    )
    .await;
    assert_eq!(
        connect(
            &app,
            &token,
            json!({"waba_id": "waba-fast", "access_token": "EAAG-fast"})
        )
        .await
        .status(),
        201
    );
    // The first account's WABA now answers slowly.
    server.reset().await;
    mount_waba(&server, "waba-fast", "EAAG-fast").await;
    mount_numbers(
        &server,
        "waba-fast",
        vec![vec![node("9601", "+1 555-000-9601", "CLOUD_API", "GREEN")]],
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"data": [node("9501", "+1 555-000-9501", "CLOUD_API", "GREEN")]}),
                )
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let result = sync_now(&app, &token).await;

    assert_eq!(result["failed_accounts"], json!([]));
    let accounts = app.get_json("/api/v1/whatsapp/accounts", &token).await;
    let synced_at = |waba: &str| {
        let account = accounts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["waba_id"] == waba)
            .unwrap();
        chrono::DateTime::parse_from_rfc3339(account["last_synced_at"].as_str().unwrap()).unwrap()
    };
    // The slow account comes first in the workspace, yet the fast one finished before it.
    assert!(synced_at("waba-fast") < synced_at(WABA));
}

#[tokio::test]
async fn a_signup_with_the_waba_given_needs_neither_token_inspection_nor_the_waba_name() {
    let server = MockServer::start().await;
    let app = spawn_app_with_meta(&server).await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "EAAB-t"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/debug_token"))
        .respond_with(meta_error(500, 1, "An unknown error occurred", true))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{WABA}/subscribed_apps")))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    mount_numbers(
        &server,
        WABA,
        vec![vec![node("9701", "+1 555-000-9701", "CLOUD_API", "GREEN")]],
    )
    .await;
    let token = app.editor("ws");

    let response = connect(&app, &token, json!({"code": "c", "waba_id": WABA})).await;

    assert_eq!(response.status(), 201);
    let account: Value = response.json().await.unwrap();
    assert!(account["name"].is_null());
    assert_eq!(account["sync"]["added"], 1);
    // Without the WABA id the inspection is needed, and its failure is Meta's error.
    let response = connect(&app, &token, json!({"code": "c"})).await;
    assert_eq!(
        assert_problem(response, 502, "meta_error").await["retryable"],
        true
    );
}

#[tokio::test]
async fn a_proxys_page_answering_register_does_not_mark_the_number_registered() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7601", "NOT_APPLICABLE").await;
    mount_register(
        &server,
        "7601",
        ResponseTemplate::new(200).set_body_string("<html>OK</html>"),
        None,
    )
    .await;

    let problem = assert_problem(register(&app, &token, &id).await, 502, "meta_error").await;

    assert_eq!(problem["phone_number"]["platform_type"], "NOT_APPLICABLE");
    assert_eq!(problem["phone_number"]["registration"]["state"], "failed");
    let ledger = app.ledger(&token, &id).await;
    assert!(
        !ledger.is_empty() && ledger.iter().all(|a| a["outcome"] == "failed"),
        "{ledger:?}"
    );
}

#[tokio::test]
async fn a_click_whose_lease_lapsed_and_was_taken_makes_no_further_call_and_frees_nothing() {
    let server = MockServer::start().await;
    // Retries wait 1.5 s: the window in which the first click's lease is made to lapse.
    let (app, token) = connected_app_with(
        &server,
        vec![node("7801", "+1 555-000-7801", "NOT_APPLICABLE", "GREEN")],
        |settings| settings.register_retry_base_ms = 1500,
    )
    .await;
    let id = number_id(&app, &token, "7801").await;
    mount_register(
        &server,
        "7801",
        meta_error(
            503,
            133004,
            "(#133004) Server temporarily unavailable",
            true,
        ),
        Some(1),
    )
    .await;
    mount_register(&server, "7801", ok(), None).await;
    mount_reread(&server, "7801", "+1 555-000-7801").await;

    // Click A: its first call fails transiently, then it waits before retrying.
    let first = {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/api/v1/phone-numbers/{id}/register", app.address),
            token.clone(),
        );
        tokio::spawn(async move { client.post(url).bearer_auth(token).send().await.unwrap() })
    };
    for _ in 0..250 {
        if !register_calls(&server, "7801").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(register_calls(&server, "7801").await.len(), 1);
    // A's lease lapses while it waits (as when a call outlives it), and click B takes the number.
    {
        use diesel::connection::SimpleConnection;
        app.raw_connection()
            .batch_execute(&format!(
                "UPDATE phone_numbers SET registration_lease_until = '2000-01-01 00:00:00' WHERE id = '{id}'"
            ))
            .unwrap();
    }
    let second = register(&app, &token, &id).await;
    assert_eq!(second.status(), 200, "B registers the number");

    // A wakes up: its lease is gone, so it calls Meta no more and writes nothing over B's result.
    let first = first.await.unwrap();
    assert_problem(first, 409, "registration_in_progress").await;
    assert_eq!(
        register_calls(&server, "7801").await.len(),
        2,
        "A's one call and B's one call: A made no second call"
    );
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{id}"), &token)
        .await;
    assert_eq!(number["registration"]["state"], "registered");
    assert_eq!(app.ledger(&token, &id).await.len(), 2);
}

#[tokio::test]
async fn a_sync_whose_lease_lapsed_and_was_taken_stops_and_writes_nothing() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("8101", "+1 555-000-8101", "CLOUD_API", "GREEN")],
    )
    .await;
    let accounts = app.get_json("/api/v1/whatsapp/accounts", &token).await;
    let account = accounts["data"][0]["id"].as_str().unwrap().to_owned();
    // From now on the first page is slow and a second page follows.
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .and(query_param_is_missing("after"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "data": [node("8101", "+1 555-000-8101", "CLOUD_API", "GREEN")],
                    "paging": {"cursors": {"after": "P1"}, "next": format!("{}/v25.0/{WABA}/phone_numbers?after=P1", server.uri())}
                }))
                .set_delay(Duration::from_millis(1500)),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .and(query_param("after", "P1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [node("8102", "+1 555-000-8102", "CLOUD_API", "GREEN")],
            "paging": {"cursors": {"after": "P2"}}
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    let sync_path = format!("/api/v1/whatsapp/accounts/{account}/sync");
    app.forget_recent_syncs();
    let start = |app_client: reqwest::Client, url: String, token: String| {
        tokio::spawn(async move {
            app_client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        })
    };
    let first = start(
        app.client.clone(),
        format!("{}{sync_path}", app.address),
        token.clone(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // A is waiting on page one
    {
        use diesel::connection::SimpleConnection;
        app.raw_connection()
            .batch_execute(&format!(
                "UPDATE whatsapp_accounts SET sync_lease_until = '2000-01-01 00:00:00' WHERE id = '{account}'"
            ))
            .unwrap();
    }
    let second = start(
        app.client.clone(),
        format!("{}{sync_path}", app.address),
        token.clone(),
    );

    let first = first.await.unwrap();
    let second = second.await.unwrap();
    assert_problem(first, 409, "sync_in_progress").await;
    assert_eq!(
        second.status(),
        200,
        "B's lease was never released under it"
    );
    let second_pages = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.query().is_some_and(|q| q.contains("after=P1")))
        .count();
    assert_eq!(second_pages, 1, "only B read page two");
    let numbers = app.get_json("/api/v1/phone-numbers", &token).await;
    assert_eq!(numbers["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_number_another_workspace_holds_is_reported_on_the_sync_not_taken() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("9001", "+1 555-000-9001", "CLOUD_API", "GREEN")],
    )
    .await;
    // Another workspace connects a WABA whose listing (wrongly, or after a move) includes 9001.
    mount_waba(&server, "waba-2", TOKEN).await;
    mount_numbers(
        &server,
        "waba-2",
        vec![vec![
            node("9001", "+1 555-000-9001", "CLOUD_API", "GREEN"),
            node("9002", "+1 555-000-9002", "CLOUD_API", "GREEN"),
        ]],
    )
    .await;
    let other = app.editor("other");
    let body = json!({"waba_id": "waba-2", "access_token": TOKEN});
    assert_eq!(connect(&app, &other, body).await.status(), 201);

    let accounts = app.get_json("/api/v1/whatsapp/accounts", &other).await;
    let account = &accounts["data"][0];
    assert!(
        account["last_synced_at"].is_string(),
        "the sync itself succeeded"
    );
    let note = account["last_sync_error"].as_str().unwrap_or_default();
    assert!(
        note.contains("+1 555-000-9001") && note.contains("another workspace"),
        "{account}"
    );
    let theirs = app.get_json("/api/v1/phone-numbers", &other).await;
    let listed: Vec<&str> = theirs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["phone_number_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["9002"]);
    let ours = app.get_json("/api/v1/phone-numbers", &token).await;
    assert_eq!(
        ours["data"][0]["phone_number_id"], "9001",
        "it stayed where it was"
    );
}

#[tokio::test]
async fn a_sync_asked_for_moments_after_another_answers_its_result_without_calling_meta() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![
            node("8201", "+1 555-000-8201", "CLOUD_API", "GREEN"),
            node("8202", "+1 555-000-8202", "CLOUD_API", "GREEN"),
        ],
    )
    .await;
    let listings = || async {
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path().ends_with("/phone_numbers"))
            .count()
    };
    let after_connect = listings().await;
    // The button pressed again and again: the connect's sync answers, and Meta hears nothing.
    for _ in 0..5 {
        let response = app
            .request(
                Method::POST,
                "/api/v1/phone-numbers/sync",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
        let result: Value = response.json().await.unwrap();
        assert_eq!(
            (result["added"].clone(), result["removed"].clone()),
            (json!(2), json!(0))
        );
    }
    assert_eq!(
        listings().await,
        after_connect,
        "no call to Meta within the window"
    );
    // Past the window a sync reaches Meta again.
    app.forget_recent_syncs();
    let result = sync_now(&app, &token).await;
    assert_eq!(result["added"], 0);
    assert_eq!(listings().await, after_connect + 1);
}

#[tokio::test]
async fn a_waba_past_its_hours_call_budget_waits_with_429_and_meta_hears_nothing() {
    let server = MockServer::start().await;
    // Not registered yet: Meta's lower limit (200 an hour) applies, of which the service uses 160.
    let (app, token) = connected_app(
        &server,
        vec![node("8301", "+1 555-000-8301", "NOT_APPLICABLE", "GREEN")],
    )
    .await;
    let spent = |app: &crate::helpers::TestApp| {
        use diesel::prelude::*;
        diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM graph_calls WHERE waba_id = '{WABA}'"
        ))
        .get_result::<Count>(&mut app.raw_connection())
        .unwrap()
        .n
    };
    assert_eq!(
        spent(&app),
        3,
        "connect: the WABA, the subscription, one page"
    );

    // The rest of the hour's budget goes elsewhere (other syncs, other instances).
    spend_budget_elsewhere(&app, 157);
    let listings_before = server.received_requests().await.unwrap().len();

    app.forget_recent_syncs();
    let response = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(&token),
            None,
        )
        .await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let problem = assert_problem(response, 429, "waba_call_budget_spent").await;
    assert_eq!(problem["retry_after_seconds"].as_u64(), Some(retry_after));
    assert!(retry_after > 0 && retry_after <= 3600, "{retry_after}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        listings_before
    );
    assert_eq!(spent(&app), 160, "a refused call is not recorded");
}

/// Records `calls` calls to the WABA made now by someone else (other syncs, other instances).
fn spend_budget_elsewhere(app: &TestApp, calls: usize) {
    use diesel::connection::SimpleConnection;
    let now = if app.sqlite_file().is_some() {
        "CURRENT_TIMESTAMP"
    } else {
        "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
    };
    let inserts: String = (0..calls)
        .map(|i| format!("INSERT INTO graph_calls (id, waba_id, called_at) VALUES ('fill-{i}', '{WABA}', {now});"))
        .collect();
    app.raw_connection().batch_execute(&inserts).unwrap();
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn connect_reconnect_and_manual_syncs_are_audited_with_who_and_which_waba() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("8301", "+1 555-000-8301", "CLOUD_API", "GREEN")],
    )
    .await;
    let account = app.get_json("/api/v1/whatsapp/accounts", &token).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = connect(
        &app,
        &token,
        json!({"waba_id": WABA, "access_token": TOKEN}),
    )
    .await;
    assert_eq!(again.status(), 201);
    // One sync answered from the re-connect's moments before, one that reaches Meta.
    let path = format!("/api/v1/whatsapp/accounts/{account}/sync");
    let coalesced = app.request(Method::POST, &path, Some(&token), None).await;
    assert_eq!(coalesced.status(), 200);
    app.forget_recent_syncs();
    let synced = app.request(Method::POST, &path, Some(&token), None).await;
    assert_eq!(synced.status(), 200);

    let events = app.audit(&token, "").await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "account.synced",
            "account.synced",
            "account.reconnected",
            "account.connected"
        ]
    );
    for event in &events {
        assert_eq!(event["actor"], "tester");
        assert_eq!(event["detail"]["account_id"], account.as_str());
        assert_eq!(event["detail"]["waba_id"], WABA);
    }
    assert_eq!(events[1]["detail"]["reason"], "coalesced");
    assert!(events[0]["detail"].get("reason").is_none());
    assert_eq!(
        events[0]["detail"]["sync_counts"],
        json!({"added": 0, "updated": 0, "removed": 0})
    );
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains(TOKEN), "no token in the audit trail");
    // Another workspace sees none of it.
    assert!(app.audit(&app.editor("other-ws"), "").await.is_empty());
}

/// What the account's stored token is, read below the API.
fn stored_token(app: &TestApp, account: &str) -> Option<String> {
    use diesel::prelude::*;
    use whatsapp_numbers::db::schema::whatsapp_accounts as accounts;
    let mut conn = app.raw_connection();
    accounts::table
        .filter(accounts::id.eq(account))
        .select(accounts::access_token_enc)
        .first::<Option<String>>(&mut conn)
        .expect("the account row stays")
}

#[tokio::test]
async fn disconnecting_frees_the_waba_and_its_numbers_and_connecting_again_brings_them_back() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![
            node("9101", "+1 555-000-9101", "CLOUD_API", "GREEN"),
            node("9102", "+1 555-000-9102", "CLOUD_API", "GREEN"),
        ],
    )
    .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v25.0/{WABA}/subscribed_apps")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(2)
        .named("unsubscribe")
        .mount(&server)
        .await;
    let account = app.get_json("/api/v1/whatsapp/accounts", &token).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (first, second) = (
        number_id(&app, &token, "9101").await,
        number_id(&app, &token, "9102").await,
    );
    let agent = app.create_agent(&token, "Concierge").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.assign(&token, &first, json!(agent)).await.status(), 200);
    assert_eq!(
        app.set_outbound(&token, &agent, json!(second))
            .await
            .status(),
        200
    );

    let path = format!("/api/v1/whatsapp/accounts/{account}");
    let viewer = app.token("ws", whatsapp_numbers::domain::Role::Viewer);
    let refused = app
        .request(Method::DELETE, &path, Some(&viewer), None)
        .await;
    assert_problem(refused, 403, "forbidden").await;
    let stranger = app.editor("other-ws");
    let hidden = app
        .request(Method::DELETE, &path, Some(&stranger), None)
        .await;
    assert_problem(hidden, 404, "account_not_found").await;
    assert!(
        stored_token(&app, &account).is_some(),
        "refusals change nothing"
    );

    let gone = app.request(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(gone.status(), 204);
    assert_eq!(stored_token(&app, &account), None, "the token is wiped");
    let accounts = app.get_json("/api/v1/whatsapp/accounts", &token).await;
    assert_eq!(accounts["data"], json!([]));
    let again = app.request(Method::DELETE, &path, Some(&token), None).await;
    assert_problem(again, 404, "account_not_found").await;
    let sync = app
        .request(Method::POST, &format!("{path}/sync"), Some(&token), None)
        .await;
    assert_problem(sync, 404, "account_not_found").await;
    assert_eq!(
        app.get_json("/api/v1/phone-numbers", &token).await["data"],
        json!([]),
        "its numbers are removed"
    );
    let kept = app
        .get_json("/api/v1/phone-numbers?include_removed=true", &token)
        .await;
    assert_eq!(kept["data"].as_array().unwrap().len(), 2, "history kept");
    assert!(kept["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["removed_at"].is_string() && n["inbound_agent"].is_null()));
    let agent_now = app
        .get_json(&format!("/api/v1/agents/{agent}"), &token)
        .await;
    assert_eq!(agent_now["whatsapp_outbound_number"], Value::Null);
    assert_eq!(agent_now["inbound_phone_numbers"], json!([]));

    let events = app.audit(&token, "").await;
    let actions: Vec<&str> = events[..3]
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "account.disconnected",
            "outbound_number.cleared",
            "inbound_agent.cleared"
        ]
    );
    assert_eq!(events[0]["actor"], "tester");
    assert_eq!(events[0]["detail"]["account_id"], account.as_str());
    assert_eq!(events[0]["detail"]["waba_id"], WABA);
    assert_eq!(events[0]["detail"]["numbers_removed"], 2);
    assert_eq!(events[0]["detail"]["meta_unsubscribed"], true);
    assert_eq!(events[1]["agent_id"], agent.as_str());
    assert_eq!(events[1]["detail"]["previous_number_id"], second.as_str());
    assert_eq!(events[1]["detail"]["reason"], "account_disconnected");
    assert_eq!(events[2]["number_id"], first.as_str());
    assert_eq!(events[2]["detail"]["reason"], "account_disconnected");

    // Another workspace may now connect the WABA, and takes its numbers.
    let body = json!({"waba_id": WABA, "access_token": TOKEN});
    let theirs = connect(&app, &stranger, body.clone()).await;
    assert_eq!(theirs.status(), 201);
    let theirs: Value = theirs.json().await.unwrap();
    assert_eq!(theirs["reconnected"], false);
    assert_eq!(
        theirs["last_sync_error"],
        Value::Null,
        "nothing held elsewhere"
    );
    let their_numbers = app.get_json("/api/v1/phone-numbers", &stranger).await;
    assert_eq!(their_numbers["data"].as_array().unwrap().len(), 2);
    assert!(their_numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["id"] != first.as_str() && n["id"] != second.as_str()));
    let refused = connect(&app, &token, body.clone()).await;
    assert_problem(refused, 409, "account_connected_elsewhere").await;

    // Released there, and connected here again: the old account and numbers come back.
    let their_path = format!(
        "/api/v1/whatsapp/accounts/{}",
        theirs["id"].as_str().unwrap()
    );
    let released = app
        .request(Method::DELETE, &their_path, Some(&stranger), None)
        .await;
    assert_eq!(released.status(), 204);
    let back = connect(&app, &token, body).await;
    assert_eq!(back.status(), 201);
    let back: Value = back.json().await.unwrap();
    assert_eq!(back["id"], account.as_str());
    assert_eq!(back["reconnected"], true);
    assert_eq!(back["status"], "connected");
    let ours = app.get_json("/api/v1/phone-numbers", &token).await;
    let mut ids: Vec<&str> = ours["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = [first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(
        app.get_json("/api/v1/phone-numbers", &stranger).await["data"],
        json!([])
    );
}

/// `X-Business-Use-Case-Usage` as Meta documents it, for the WABA.
fn usage_header(call_count: u32, regain_minutes: u32) -> String {
    json!({WABA: [{"type": "whatsapp_business_management", "call_count": call_count,
        "total_cputime": 3, "total_time": 4, "estimated_time_to_regain_access": regain_minutes}]})
    .to_string()
}

/// A workspace sync that is refused for the WABA's budget: its `Retry-After`.
async fn refused_sync(app: &TestApp, token: &str) -> u64 {
    app.forget_recent_syncs();
    let response = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(token),
            None,
        )
        .await;
    let problem = assert_problem(response, 429, "waba_call_budget_spent").await;
    problem["retry_after_seconds"].as_u64().unwrap()
}

#[tokio::test]
async fn metas_usage_header_holds_the_wabas_calls_until_its_count_has_room() {
    let server = MockServer::start().await;
    let app = spawn_app_with_meta(&server).await;
    mount_waba(&server, WABA, TOKEN).await;
    // Meta counts 95 % of the 200 calls an hour (another app of ours, another tool): 190, past
    // the service's 160 although the service itself made three.
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Business-Use-Case-Usage", usage_header(95, 0).as_str())
                .set_body_json(
                    json!({"data": [node("8401", "+1 555-000-8401", "NOT_APPLICABLE", "GREEN")]}),
                ),
        )
        .mount(&server)
        .await;
    let token = app.editor("ws");
    let body = json!({"waba_id": WABA, "access_token": TOKEN});
    assert_eq!(connect(&app, &token, body).await.status(), 201);
    let heard = server.received_requests().await.unwrap().len();

    // Aged as if spread over the hour, 190 calls leave room for one more within 160 after
    // 3600 * 31 / 190 = 588 seconds.
    let retry_after = refused_sync(&app, &token).await;
    assert!((580..=588).contains(&retry_after), "{retry_after}");
    assert_eq!(server.received_requests().await.unwrap().len(), heard);
}

#[tokio::test]
async fn a_rate_limit_answer_holds_the_wabas_calls_for_as_long_as_meta_says() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("8501", "+1 555-000-8501", "NOT_APPLICABLE", "GREEN")],
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .respond_with(
            meta_error(400, 80007, "Rate limit hit", false)
                .insert_header("X-Business-Use-Case-Usage", usage_header(100, 7).as_str()),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    app.forget_recent_syncs();
    let throttled = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(&token),
            None,
        )
        .await;
    assert_ne!(throttled.status(), 200);
    let heard = server.received_requests().await.unwrap().len();

    let retry_after = refused_sync(&app, &token).await;
    assert!((400..=420).contains(&retry_after), "{retry_after}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        heard,
        "Meta hears nothing until it said it would listen"
    );
}

/// `(id, meta id, quality, last_synced_at, updated_at)` of every stored number, read below the API.
fn stored_numbers(app: &TestApp) -> Vec<(String, String, String, Option<String>, String)> {
    use diesel::prelude::*;
    use whatsapp_numbers::db::schema::phone_numbers as n;
    let rows: Vec<(
        String,
        String,
        String,
        Option<chrono::NaiveDateTime>,
        chrono::NaiveDateTime,
    )> = n::table
        .select((
            n::id,
            n::meta_phone_number_id,
            n::quality_rating,
            n::last_synced_at,
            n::updated_at,
        ))
        .order(n::id)
        .load(&mut app.raw_connection())
        .unwrap();
    rows.into_iter()
        .map(|(a, b, c, d, e)| (a, b, c, d.map(|d| d.to_string()), e.to_string()))
        .collect()
}

#[tokio::test]
async fn a_large_sync_writes_in_short_transactions_and_one_with_no_change_writes_nothing() {
    let server = MockServer::start().await;
    let app = spawn_app_with_meta(&server).await;
    let pages = |changed: usize| -> Vec<Vec<Value>> {
        (0..12)
            .map(|page| {
                (0..100)
                    .map(|i| {
                        let n = page * 100 + i;
                        let quality = if n < changed { "YELLOW" } else { "GREEN" };
                        let id = format!("77{n:04}");
                        node(&id, &format!("+1 555-1{n:04}"), "CLOUD_API", quality)
                    })
                    .collect()
            })
            .collect()
    };
    mount_waba(&server, WABA, TOKEN).await;
    mount_numbers(&server, WABA, pages(0)).await;
    let token = app.editor("ws");
    let body = json!({"waba_id": WABA, "access_token": TOKEN});
    let connected: Value = connect(&app, &token, body).await.json().await.unwrap();
    assert_eq!(connected["sync"]["added"], 1200, "{connected}");
    let before = stored_numbers(&app);
    assert_eq!(before.len(), 1200);

    let unchanged = sync_now(&app, &token).await;
    assert_eq!(
        (
            &unchanged["added"],
            &unchanged["updated"],
            &unchanged["removed"]
        ),
        (&json!(0), &json!(0), &json!(0))
    );
    let rewritten = stored_numbers(&app)
        .iter()
        .zip(&before)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(rewritten, 0, "no row written");
    // Yet every number shows it was confirmed by that sync.
    let account = &app.get_json("/api/v1/whatsapp/accounts", &token).await["data"][0];
    let page = app.get_json("/api/v1/phone-numbers?limit=3", &token).await;
    for number in page["data"].as_array().unwrap() {
        assert_eq!(number["last_synced_at"], account["last_synced_at"]);
    }

    // 1 % changes: exactly those rows are written, across the write chunks.
    server.reset().await;
    mount_waba(&server, WABA, TOKEN).await;
    mount_numbers(&server, WABA, pages(12)).await;
    let changed = sync_now(&app, &token).await;
    assert_eq!(changed["updated"], 12, "{changed}");
    let after = stored_numbers(&app);
    let written: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(_, a)| a.1.as_str())
        .collect();
    assert_eq!(written.len(), 12);
    assert!(written
        .iter()
        .all(|id| id.as_bytes()[2..4] == *b"00" && id[4..].parse::<u32>().unwrap() < 12));
    assert!(after
        .iter()
        .filter(|a| written.contains(&a.1.as_str()))
        .all(|a| a.2 == "YELLOW"));
}

#[tokio::test]
async fn a_sync_in_flight_when_its_account_is_disconnected_writes_nothing() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("8601", "+1 555-000-8601", "CLOUD_API", "GREEN")],
    )
    .await;
    let account = app.get_json("/api/v1/whatsapp/accounts", &token).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Mock::given(method("DELETE"))
        .and(path(format!("/v25.0/{WABA}/subscribed_apps")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&server)
        .await;
    // From now on Meta answers slowly, and lists a second number.
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [
                    node("8601", "+1 555-000-8601", "CLOUD_API", "YELLOW"),
                    node("8602", "+1 555-000-8602", "CLOUD_API", "GREEN")]}))
                .set_delay(Duration::from_millis(800)),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    app.forget_recent_syncs();
    let sync_path = format!("/api/v1/whatsapp/accounts/{account}/sync");
    let syncing = {
        let (app_url, token) = (app.address.clone(), token.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{app_url}{sync_path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("/api/v1/whatsapp/accounts/{account}");
    let gone = app.request(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(gone.status(), 204);

    let sync = syncing.await.unwrap();
    assert_ne!(sync.status(), 200, "the sync lost its account mid-flight");
    let numbers = app
        .get_json("/api/v1/phone-numbers?include_removed=true", &token)
        .await;
    let numbers = numbers["data"].as_array().unwrap();
    assert_eq!(numbers.len(), 1, "nothing added after the disconnect");
    assert!(numbers[0]["removed_at"].is_string(), "still removed");
    assert_eq!(numbers[0]["quality_rating"], "GREEN", "nothing updated");
    assert_eq!(
        app.get_json("/api/v1/whatsapp/accounts", &token).await["data"],
        json!([])
    );
}

#[tokio::test]
async fn a_sync_uses_the_last_calls_of_the_budget_one_at_a_time() {
    let server = MockServer::start().await;
    // Not registered: 160 calls an hour for the service. The connect used 3.
    let (app, token) = connected_app(
        &server,
        vec![node("8701", "+1 555-000-8701", "NOT_APPLICABLE", "GREEN")],
    )
    .await;
    spend_budget_elsewhere(&app, 153);
    // Four pages for the four calls left: reserved 1, then 2, then (4 do not fit) 1.
    server.reset().await;
    mount_waba(&server, WABA, TOKEN).await;
    let pages = (0..4)
        .map(|p| {
            vec![node(
                &format!("87{p}0"),
                &format!("+1 555-001-87{p}0"),
                "NOT_APPLICABLE",
                "GREEN",
            )]
        })
        .collect();
    mount_numbers(&server, WABA, pages).await;
    let synced = sync_now(&app, &token).await;
    assert_eq!(synced["failed_accounts"], json!([]), "{synced}");
    assert_eq!(synced["added"], 4);
    app.forget_recent_syncs();
    let response = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(&token),
            None,
        )
        .await;
    assert_problem(response, 429, "waba_call_budget_spent").await;
}

async fn register_with_key(app: &TestApp, token: &str, id: &str, key: &str) -> reqwest::Response {
    app.client
        .post(format!(
            "{}/api/v1/phone-numbers/{id}/register",
            app.address
        ))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_meta_is_called_once() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7101", "NOT_APPLICABLE").await;
    mount_register(&server, "7101", ok(), None).await;
    mount_reread(&server, "7101", "+1 555-000-7101").await;
    let first = register_with_key(&app, &token, &id, "click-1").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["idempotent-replayed"], "false");
    let first: Value = first.json().await.unwrap();
    // The same key again: the same answer, not `already_registered`, and no call to Meta.
    let again = register_with_key(&app, &token, &id, "click-1").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(register_calls(&server, "7101").await.len(), 1);
    // Another key asks again: this time the answer is that it is registered.
    assert_problem(
        register_with_key(&app, &token, &id, "click-2").await,
        409,
        "already_registered",
    )
    .await;
    // The same key for another request is refused, and changes nothing.
    let other = app
        .seed_number(
            "ws",
            crate::helpers::NumberSeed {
                display: "+1 555-000-7102",
                platform_type: "NOT_APPLICABLE",
                ..Default::default()
            },
        )
        .await;
    let reused = register_with_key(&app, &token, &other, "click-1").await;
    assert_problem(reused, 422, "idempotency_key_reused").await;
    // Keys belong to a workspace: another workspace's same key is its own.
    let stranger = app.editor("ws-other");
    assert_problem(
        register_with_key(&app, &stranger, &id, "click-1").await,
        404,
        "phone_number_not_found",
    )
    .await;
    // An unusable key is 400.
    let bad = register_with_key(&app, &token, &id, &"k".repeat(300)).await;
    assert_problem(bad, 400, "validation_failed").await;
}

#[tokio::test]
async fn concurrent_clicks_with_one_key_make_one_call_and_get_one_answer() {
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7201", "NOT_APPLICABLE").await;
    mount_register(
        &server,
        "7201",
        ok().set_delay(std::time::Duration::from_millis(300)),
        None,
    )
    .await;
    mount_reread(&server, "7201", "+1 555-000-7201").await;
    let clicks: Vec<_> = (0..4)
        .map(|_| {
            let request = app
                .client
                .post(format!(
                    "{}/api/v1/phone-numbers/{id}/register",
                    app.address
                ))
                .bearer_auth(&token)
                .header("Idempotency-Key", "double-click");
            tokio::spawn(request.send())
        })
        .collect();
    let mut statuses = Vec::new();
    for click in clicks {
        let response = click.await.unwrap().unwrap();
        let status = response.status().as_u16();
        if status == 409 {
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["code"], "idempotency_key_in_progress");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409]);
    assert_eq!(register_calls(&server, "7201").await.len(), 1);
    // Once answered, the key replays the answer.
    let later = register_with_key(&app, &token, &id, "double-click").await;
    assert_eq!(later.status(), 200);
    assert_eq!(later.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn register_all_registers_every_eligible_number_once_through_metas_api() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![
            node("8101", "+1 555-000-8101", "ON_PREMISE", "GREEN"),
            node("8102", "+1 555-000-8102", "NOT_APPLICABLE", "GREEN"),
            node("8103", "+1 555-000-8103", "CLOUD_API", "GREEN"),
        ],
    )
    .await;
    // 8101 succeeds after one transient error; 8102 is refused for good (not verified).
    mount_register(
        &server,
        "8101",
        meta_error(503, 2, "Service temporarily unavailable", true),
        Some(1),
    )
    .await;
    mount_register(&server, "8101", ok(), None).await;
    mount_register(
        &server,
        "8102",
        meta_error(
            400,
            133006,
            "(#133006) Phone number needs to be verified",
            false,
        ),
        None,
    )
    .await;
    mount_reread(&server, "8101", "+1 555-000-8101").await;
    let ids = [
        number_id(&app, &token, "8101").await,
        number_id(&app, &token, "8102").await,
        number_id(&app, &token, "8103").await,
    ];
    let answer = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/register",
            Some(&token),
            Some(json!({"all_pending": true})),
        )
        .await;
    assert_eq!(answer.status(), 202);
    let answer: Value = answer.json().await.unwrap();
    let queued: Vec<&str> = answer["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(queued.len(), 2, "{answer}");
    assert!(queued.contains(&ids[0].as_str()) && queued.contains(&ids[1].as_str()));
    assert_eq!(
        answer["skipped"],
        json!([]),
        "a number on the Cloud API is not pending"
    );
    let outcome = |id: &str| {
        let (app, token, id) = (&app, &token, id.to_owned());
        async move {
            for _ in 0..400 {
                let n = app
                    .get_json(&format!("/api/v1/phone-numbers/{id}"), token)
                    .await;
                let state = n["registration"]["state"].as_str().unwrap().to_owned();
                if state == "registered" || state == "failed" {
                    return n;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("{id} never finished registering");
        }
    };
    let first = outcome(&ids[0]).await;
    assert_eq!(first["platform_type"], "CLOUD_API");
    assert_eq!(first["registration"]["state"], "registered");
    let second = outcome(&ids[1]).await;
    assert_eq!(second["registration"]["state"], "failed");
    assert_eq!(second["registration"]["last_error_code"], 133006);
    assert_eq!(
        register_calls(&server, "8101").await.len(),
        2,
        "one transient error, then once"
    );
    assert_eq!(
        register_calls(&server, "8102").await.len(),
        1,
        "a refusal that needs a person is not retried"
    );
    assert!(register_calls(&server, "8103").await.is_empty());
    // Each call is in the number's ledger, within Meta's window.
    assert_eq!(app.ledger(&token, &ids[0]).await.len(), 2);
    assert_eq!(app.ledger(&token, &ids[1]).await.len(), 1);
}

#[tokio::test]
async fn two_instances_share_the_background_sync_each_account_once_then_scheduled_by_its_budget() {
    let server = MockServer::start().await;
    let first =
        crate::helpers::spawn_app_with_meta_and(&server, |s| s.sync_interval_seconds = 1).await;
    let uri = server.uri();
    let second = crate::helpers::spawn_app_beside(&first, |s| {
        s.meta_app = first.state.settings.meta_app.clone();
        s.meta_graph_url = uri;
        s.sync_interval_seconds = 1;
    })
    .await;
    let wabas: Vec<String> = (0..6).map(|i| format!("55500000000000{i}")).collect();
    let token = first.editor("ws");
    for (i, waba) in wabas.iter().enumerate() {
        mount_waba(&server, waba, TOKEN).await;
        mount_numbers(
            &server,
            waba,
            vec![vec![node(
                &format!("77{i}"),
                &format!("+1 555-000-77{i}"),
                "NOT_APPLICABLE",
                "GREEN",
            )]],
        )
        .await;
        let connected = connect(
            &first,
            &token,
            json!({"waba_id": waba, "access_token": TOKEN}),
        )
        .await;
        assert_eq!(connected.status(), 201);
    }
    let listings = |waba: &str| {
        let server = &server;
        let waba = waba.to_owned();
        async move {
            server
                .received_requests()
                .await
                .unwrap()
                .iter()
                .filter(|r| r.url.path() == format!("/v25.0/{waba}/phone_numbers"))
                .count()
        }
    };
    let scheduled_count = || {
        use diesel::prelude::*;
        use whatsapp_numbers::db::schema::whatsapp_accounts;
        // Scheduled after a finished sync (a claim for a sync under way reaches 10 minutes out).
        let finished_by = chrono::Utc::now().naive_utc() + chrono::TimeDelta::minutes(5);
        whatsapp_accounts::table
            .filter(whatsapp_accounts::next_sync_at.lt(finished_by))
            .count()
            .get_result::<i64>(&mut first.raw_connection())
            .unwrap()
    };
    // The background takes each new account once (an interval of 1 s), then schedules it.
    for _ in 0..400 {
        if scheduled_count() == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        scheduled_count(),
        6,
        "every account was synced in the background"
    );
    // As if that were long ago: every account is due again, on both instances at once.
    let mut before = Vec::new();
    for waba in &wabas {
        before.push(listings(waba).await);
    }
    first.forget_recent_syncs();
    for _ in 0..400 {
        let mut all = true;
        for (waba, base) in wabas.iter().zip(&before) {
            all &= listings(waba).await > *base;
        }
        if all {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    // A few more rounds of both loops: nothing is synced twice, each is scheduled by its budget.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for (waba, base) in wabas.iter().zip(&before) {
        assert_eq!(
            listings(waba).await,
            base + 1,
            "{waba}: once per due time, by one instance"
        );
    }
    use diesel::prelude::*;
    use whatsapp_numbers::db::schema::whatsapp_accounts;
    let scheduled: Vec<Option<chrono::NaiveDateTime>> = whatsapp_accounts::table
        .select(whatsapp_accounts::next_sync_at)
        .load(&mut first.raw_connection())
        .unwrap();
    let soon = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(30);
    assert_eq!(scheduled.len(), 6);
    assert!(
        scheduled.iter().all(|at| at.is_some_and(|at| at > soon)),
        "each next sync waits for the WABA's budget (45 s for a small one): {scheduled:?}"
    );
    drop(second);
}

#[tokio::test]
async fn a_meta_outage_costs_one_call_however_often_sync_is_pressed_then_sync_resumes() {
    let server = MockServer::start().await;
    let (app, token) = connected_app(
        &server,
        vec![node("6001", "+1 555-000-6001", "CLOUD_API", "GREEN")],
    )
    .await;
    // Meta is down (its listing answers 500) for the next call; then it recovers.
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{WABA}/phone_numbers")))
        .respond_with(meta_error(
            500,
            2,
            "An unexpected error has occurred. Please retry your request later.",
            true,
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let listed_before = listing_calls(&server).await;
    app.forget_recent_syncs();
    let mut answers = Vec::new();
    for _ in 0..10 {
        let response = app
            .request(
                Method::POST,
                "/api/v1/phone-numbers/sync",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(response.status(), 502);
        answers.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(
        listing_calls(&server).await - listed_before,
        1,
        "one call to Meta for ten clicks"
    );
    for answer in &answers {
        assert_eq!(answer["code"], "meta_error");
        assert_eq!(answer["retryable"], true);
        assert_eq!(answer["meta_error"]["code"], 2);
    }
    // The clicks after the first are answered from its failure, with when to try again.
    for answer in &answers[1..] {
        let wait = answer["retry_after_seconds"].as_u64().unwrap();
        assert!((1..=30).contains(&wait), "{answer}");
    }
    let accounts = app.get_json("/api/v1/whatsapp/accounts", &token).await;
    assert!(accounts["data"][0]["last_sync_error"].is_string());
    // Once the wait is over, the next click calls Meta, which has recovered.
    app.forget_recent_syncs();
    let response = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(listing_calls(&server).await - listed_before, 2);
    let accounts = app.get_json("/api/v1/whatsapp/accounts", &token).await;
    assert!(accounts["data"][0]["last_sync_error"].is_null());
    // A success clears the failure: the next click within the window answers the success.
    let response = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/sync",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(listing_calls(&server).await - listed_before, 2);
}

async fn listing_calls(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/phone_numbers"))
        .count()
}

#[tokio::test]
async fn clicking_register_through_a_meta_outage_pauses_and_probes_instead_of_spending_the_window()
{
    let server = MockServer::start().await;
    let (app, token, id) = app_with_number(&server, "7901", "ON_PREMISE").await;
    // Meta answers 500 to the next four register calls, then recovers.
    mount_register(
        &server,
        "7901",
        meta_error(500, 2, "Service temporarily unavailable", true),
        Some(4),
    )
    .await;
    mount_register(&server, "7901", ok(), None).await;
    mount_reread(&server, "7901", "+1 555-000-7901").await;
    let first = register(&app, &token, &id).await;
    let problem = assert_problem(first, 502, "meta_error").await;
    assert_eq!(problem["retryable"], true);
    assert_eq!(
        register_calls(&server, "7901").await.len(),
        3,
        "one click's calls"
    );
    // Clicks right after are refused without a call, with when to try again.
    for _ in 0..4 {
        let again = register(&app, &token, &id).await;
        let problem = assert_problem(again, 429, "registration_limit_reached").await;
        let wait = problem["retry_after_seconds"].as_u64().unwrap();
        assert!((1..=60).contains(&wait), "{problem}");
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .contains("did not answer"));
    }
    assert_eq!(register_calls(&server, "7901").await.len(), 3);
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{id}"), &token)
        .await;
    let registration = &number["registration"];
    assert_eq!(registration["blocked_reason"], "meta_unavailable");
    assert!(registration["next_attempt_at"].is_string());
    assert_eq!(registration["calls_per_click"], 1);
    assert_eq!(registration["attempts_in_window"], 3);
    // The pause is over (the calls are made older): one call, still unanswered, a longer pause.
    let age_calls = |seconds: i64| {
        use diesel::connection::SimpleConnection;
        let at = (chrono::Utc::now() - chrono::TimeDelta::seconds(seconds))
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        app.raw_connection()
            .batch_execute(&format!(
                "UPDATE registration_attempts SET created_at = '{at}';"
            ))
            .unwrap();
    };
    age_calls(65);
    let probe = register(&app, &token, &id).await;
    assert_problem(probe, 502, "meta_error").await;
    assert_eq!(register_calls(&server, "7901").await.len(), 4, "one call");
    let soon = register(&app, &token, &id).await;
    let problem = assert_problem(soon, 429, "registration_limit_reached").await;
    let wait = problem["retry_after_seconds"].as_u64().unwrap();
    assert!((61..=120).contains(&wait), "twice as long: {problem}");
    // Meta is back: the next try after the pause registers the number, with one call.
    age_calls(125);
    let response = register(&app, &token, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(register_calls(&server, "7901").await.len(), 5);
    let number: Value = response.json().await.unwrap();
    assert_eq!(number["registration"]["state"], "registered");
    assert_eq!(number["registration"]["calls_per_click"], 3);
    assert_eq!(number["registration"]["blocked_reason"], Value::Null);
}
