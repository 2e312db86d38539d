//! With no Meta app configured the built-in sandbox answers: what a newcomer and the SPA team see.

use reqwest::Method;
use serde_json::{json, Value};
use whatsapp_numbers::meta::sandbox::DEMO_WABA_ID;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_sandbox_fills_the_table_and_registration_shows_its_retry() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let connected = app
        .request(
            Method::POST,
            "/api/v1/whatsapp/accounts",
            Some(&token),
            Some(json!({"waba_id": DEMO_WABA_ID, "access_token": "anything"})),
        )
        .await;
    assert_eq!(connected.status(), 201);
    let connected: Value = connected.json().await.unwrap();
    assert_eq!(connected["sync"]["added"], 6);

    let numbers = app.get_json("/api/v1/phone-numbers", &token).await;
    let numbers = numbers["data"].as_array().unwrap();
    assert!(numbers.iter().any(|n| n["can_register"] == true));
    assert!(numbers
        .iter()
        .any(|n| n["is_on_biz_app"] == true && n["can_register"] == false));
    let target = numbers
        .iter()
        .find(|n| n["platform_type"] == "ON_PREMISE")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/phone-numbers/{target}/register"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let number: Value = response.json().await.unwrap();
    assert_eq!(number["platform_type"], "CLOUD_API");
    let ledger = app.ledger(&token, &target).await;
    let outcomes: Vec<&str> = ledger
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["succeeded", "failed"],
        "the sandbox's first register call fails transiently"
    );

    let ready = app.public_json("/readyz").await;
    assert_eq!(ready["meta"], "sandbox");
    let config = app.get_json("/api/v1/whatsapp/signup-config", &token).await;
    assert_eq!(config["mode"], "sandbox");
    assert_eq!(
        config["available"], false,
        "no Meta app: the popup cannot open"
    );
    assert_eq!(config["login_options"], Value::Null);

    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let metrics = metrics.text().await.unwrap();
    for line in [
        "whatsapp_numbers_meta_calls_total{operation=\"register\",outcome=\"transient_error\",code=\"133004\"} 1",
        "whatsapp_numbers_meta_calls_total{operation=\"register\",outcome=\"ok\",code=\"\"} 1",
        "whatsapp_numbers_meta_calls_total{operation=\"subscribe_app\",outcome=\"ok\",code=\"\"} 1",
        "whatsapp_numbers_meta_call_duration_seconds_count{operation=\"register\"} 2",
        "whatsapp_numbers_registration_attempts_total{outcome=\"failed\"} 1",
        "whatsapp_numbers_registration_attempts_total{outcome=\"succeeded\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }
    // Requests by route template (the number's id is not a label) and status.
    let register = r#"whatsapp_numbers_http_requests_total{method="POST",route="/api/v1/phone-numbers/{id}/register",status="200"} 1"#;
    assert!(
        metrics.lines().any(|l| l == register),
        "missing `{register}` in:\n{metrics}"
    );
    assert!(!metrics.contains(&target), "no number id in any label");
}

#[tokio::test]
async fn messages_the_sandbox_sends_are_shown_to_the_sending_workspace_only() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let body = json!({"waba_id": DEMO_WABA_ID, "access_token": "anything"});
    assert_eq!(
        app.request(
            Method::POST,
            "/api/v1/whatsapp/accounts",
            Some(&token),
            Some(body)
        )
        .await
        .status(),
        201
    );
    let numbers = app
        .get_json("/api/v1/phone-numbers?platform_type=CLOUD_API", &token)
        .await;
    let meta_id = numbers["data"][0]["phone_number_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = json!({"messaging_product": "whatsapp", "to": "+16505551234", "type": "text", "text": {"body": "Hi"}});
    let sent = app
        .state
        .meta
        .send_message("anything", &meta_id.into(), &text)
        .await
        .unwrap();
    app.state
        .meta
        .send_message("anything", &"someone-elses-number".into(), &text)
        .await
        .unwrap();

    let messages = app.get_json("/api/v1/sandbox/messages", &token).await;
    assert_eq!(messages["data"].as_array().unwrap().len(), 1);
    assert_eq!(messages["data"][0]["message_id"], sent.message_id.as_str());
    assert_eq!(messages["data"][0]["body"]["raw"], text);
    assert_eq!(messages["data"][0]["body"]["text"], "Hi");
    assert_eq!(messages["data"][0]["body"]["to"], "+16505551234");
    assert_eq!(messages["data"][0]["body"]["type"], "text");
    assert_eq!(
        app.get_json("/api/v1/sandbox/messages", &app.editor("other"))
            .await["data"],
        json!([])
    );
}
