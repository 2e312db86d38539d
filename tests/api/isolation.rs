//! Every endpoint, given another workspace's id, answers 404 exactly as if it did not exist.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn another_workspaces_ids_are_404_on_every_endpoint() {
    let app = spawn_app().await;
    let owner = app.editor("owner");
    let intruder = app.editor("intruder");
    let number = app.seed_cloud_number("owner", "+1 555-555-0100").await;
    let agent = app.create_agent(&owner, "Owner's agent").await;
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    app.assign(&owner, &number, json!(agent_id)).await;
    let intruders_number = app.seed_cloud_number("intruder", "+1 555-555-0999").await;
    let intruders_agent = app.create_agent(&intruder, "Intruder's agent").await;
    let intruders_agent_id = intruders_agent["id"].as_str().unwrap().to_owned();

    let account = app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &owner)
        .await["whatsapp_account_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::POST,
            format!("/api/v1/phone-numbers/{number}/register"),
            None,
            "phone_number_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/phone-numbers/{number}/registration-attempts"),
            None,
            "phone_number_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/phone-numbers/{number}/quality-events"),
            None,
            "phone_number_not_found",
        ),
        (
            Method::POST,
            format!("/api/v1/whatsapp/accounts/{account}/sync"),
            None,
            "account_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/phone-numbers/{number}"),
            None,
            "phone_number_not_found",
        ),
        (
            Method::PUT,
            format!("/api/v1/phone-numbers/{number}/inbound-agent"),
            Some(json!({"agent_id": intruders_agent_id})),
            "phone_number_not_found",
        ),
        (
            Method::PUT,
            format!("/api/v1/phone-numbers/{number}/inbound-agent"),
            Some(json!({"agent_id": null})),
            "phone_number_not_found",
        ),
        (
            Method::PUT,
            format!("/api/v1/phone-numbers/{intruders_number}/inbound-agent"),
            Some(json!({"agent_id": agent_id})),
            "agent_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{agent_id}"),
            None,
            "agent_not_found",
        ),
        (
            Method::PATCH,
            format!("/api/v1/agents/{agent_id}"),
            Some(json!({"name": "Mine now"})),
            "agent_not_found",
        ),
        (
            Method::DELETE,
            format!("/api/v1/agents/{agent_id}"),
            None,
            "agent_not_found",
        ),
        (
            Method::PUT,
            format!("/api/v1/agents/{agent_id}/whatsapp-outbound-number"),
            Some(json!({"number_id": intruders_number})),
            "agent_not_found",
        ),
        (
            Method::PUT,
            format!("/api/v1/agents/{intruders_agent_id}/whatsapp-outbound-number"),
            Some(json!({"number_id": number})),
            "phone_number_not_found",
        ),
    ];
    for (method, path, body, code) in cases {
        let response = app
            .request(method.clone(), &path, Some(&intruder), body)
            .await;
        let problem = assert_problem(response, 404, code).await;
        assert!(
            !problem.to_string().contains("owner"),
            "{method} {path}: {problem}"
        );
    }

    // Lists and the audit trail show nothing of the other workspace, even when filtered by its ids.
    assert_eq!(
        app.get_json("/api/v1/whatsapp/accounts", &intruder).await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let numbers = app.get_json("/api/v1/phone-numbers", &intruder).await;
    assert_eq!(numbers["data"].as_array().unwrap().len(), 1);
    assert_eq!(numbers["data"][0]["id"], json!(intruders_number));
    let agents = app.get_json("/api/v1/agents?q=agent", &intruder).await;
    assert_eq!(agents["data"].as_array().unwrap().len(), 1);
    assert_eq!(agents["data"][0]["id"], json!(intruders_agent_id));
    assert!(app
        .audit(&intruder, &format!("number_id={number}"))
        .await
        .is_empty());
    assert!(app
        .audit(&intruder, &format!("agent_id={agent_id}"))
        .await
        .is_empty());

    // And the owner's data is untouched.
    let view = app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &owner)
        .await;
    assert_eq!(view["inbound_agent"]["id"], json!(agent_id));
    assert_eq!(
        app.get_json(&format!("/api/v1/agents/{agent_id}"), &owner)
            .await["name"],
        "Owner's agent"
    );
}
