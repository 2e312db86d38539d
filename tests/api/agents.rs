use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, raw_agent_columns, spawn_app, NumberSeed};

fn openai_agent(name: &str, key: &str) -> Value {
    json!({
        "name": name,
        "responder": {"kind": "openai", "openai": {
            "base_url": "https://llm.example/v1", "model": "gpt-4o-mini", "api_key": key,
            "system_prompt": "Be brief.", "history_messages": 6
        }}
    })
}

#[tokio::test]
async fn an_agent_is_created_read_changed_and_deleted() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let created = app
        .request(
            Method::POST,
            "/api/v1/agents",
            Some(&token),
            Some(openai_agent("Support", "sk-live-123")),
        )
        .await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let agent: Value = created.json().await.unwrap();
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/agents/{id}"));
    assert_eq!(agent["responder"]["kind"], "openai");
    assert_eq!(agent["responder"]["openai"]["history_messages"], 6);
    assert!(agent["whatsapp_outbound_number"].is_null());
    assert_eq!(agent["inbound_phone_numbers"], json!([]));

    assert_eq!(
        app.get_json(&format!("/api/v1/agents/{id}"), &token).await["name"],
        "Support"
    );

    let patched = app
        .request(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            Some(json!({"name": "Support EU", "description": "EU hours"})),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        (patched["name"].as_str(), patched["description"].as_str()),
        (Some("Support EU"), Some("EU hours"))
    );
    assert_eq!(
        patched["responder"], agent["responder"],
        "an absent responder stays as it is"
    );

    let cleared: Value = app
        .request(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            Some(json!({"description": null})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(cleared["description"].is_null());
    assert_eq!(cleared["name"], "Support EU");

    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert_problem(
        app.get(&format!("/api/v1/agents/{id}"), &token).await,
        404,
        "agent_not_found",
    )
    .await;
    assert_problem(
        app.request(
            Method::DELETE,
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            None,
        )
        .await,
        404,
        "agent_not_found",
    )
    .await;
}

#[tokio::test]
async fn secrets_are_write_only_and_encrypted_at_rest() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let created = app
        .request(
            Method::POST,
            "/api/v1/agents",
            Some(&token),
            Some(openai_agent("Support", "sk-live-SECRET-42")),
        )
        .await;
    let text = created.text().await.unwrap();
    assert!(!text.contains("sk-live-SECRET-42"), "{text}");
    let agent: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(agent["responder"]["openai"]["api_key_set"], true);
    assert!(agent["responder"]["openai"].get("api_key").is_none());
    let id = agent["id"].as_str().unwrap();

    let (config, sealed) = raw_agent_columns(&app, id).await;
    assert!(!config.contains("sk-live-SECRET-42"));
    let sealed = sealed.expect("secret stored");
    assert!(!sealed.contains("sk-live-SECRET-42"));
    assert_eq!(
        app.state.secrets.decrypt(&sealed.as_str().into()).unwrap(),
        "sk-live-SECRET-42"
    );

    // A responder update of the same kind and origin without a key keeps the stored one (a new
    // origin needs the key again: see a_stored_secret_never_follows_a_url_to_a_new_host).
    let body = json!({"responder": {"kind": "openai", "openai": {"base_url": "https://llm.example/v2", "model": "m2"}}});
    let response = app
        .request(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            Some(body),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (_, kept) = raw_agent_columns(&app, id).await;
    assert_eq!(
        app.state
            .secrets
            .decrypt(&kept.unwrap().as_str().into())
            .unwrap(),
        "sk-live-SECRET-42"
    );

    // Listing never shows it either.
    let list = app
        .get("/api/v1/agents", &token)
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains("sk-live-SECRET-42"));

    // Switching to a webhook needs the webhook's own secret; to FAQ drops the stored one.
    let webhook =
        json!({"responder": {"kind": "webhook", "webhook": {"url": "https://hooks.example/in"}}});
    let response = app
        .request(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            Some(webhook),
        )
        .await;
    let problem = assert_problem(response, 422, "secret_required").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("webhook.secret"),
        "{problem}"
    );
    let faq = json!({"responder": {"kind": "faq", "faq": {"entries": [], "fallback": "Hello"}}});
    let response = app
        .request(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            Some(faq),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(raw_agent_columns(&app, id).await.1, None);
}

#[tokio::test]
async fn invalid_agents_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let bad = [
        json!({"name": "", "responder": {"kind": "faq", "faq": {"entries": [], "fallback": "x"}}}),
        json!({"name": "A", "responder": {"kind": "faq", "faq": {"entries": []}}}),
        json!({"name": "A", "responder": {"kind": "openai", "openai": {"base_url": "https://x.example", "model": "m"}}}),
        json!({"name": "A", "responder": {"kind": "webhook", "webhook": {"url": "ftp://x", "secret": "0123456789abcdef"}}}),
        json!({"name": "A", "responder": {"kind": "telepathy"}}),
        json!({"name": "A"}),
        json!({"name": "A", "responder": {"kind": "faq", "faq": {"entries": [], "fallback": "x"}}, "surprise": 1}),
    ];
    for body in bad {
        let response = app
            .request(
                Method::POST,
                "/api/v1/agents",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_problem(response, 400, "validation_failed").await;
    }
    assert_eq!(
        app.get_json("/api/v1/agents", &token).await["data"],
        json!([])
    );
}

#[tokio::test]
async fn names_that_would_look_alike_in_the_dropdown_are_refused_or_taken() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    app.create_agent(&token, "Care \u{2764}\u{FE0F}").await;
    app.create_agent(&token, "Support").await;
    let faq = json!({"kind": "faq", "faq": {"entries": [], "fallback": "x"}});
    // Characters that show nothing are refused, whatever surrounds them; invisible characters a
    // name may hold (an emoji's presentation selector, tag characters) do not make another name.
    let refused = [
        "Sup\u{3164}port",
        "\u{3164}",
        "Support\u{034F}",
        "Support\u{FE00}",
    ];
    let taken = ["care \u{2764}", "Support\u{E0041}", "Support\u{FE0F}"];
    for (names, status, code) in [
        (&refused[..], 400, "validation_failed"),
        (&taken[..], 409, "agent_name_taken"),
    ] {
        for name in names {
            let body = json!({"name": name, "responder": faq});
            let response = app
                .request(Method::POST, "/api/v1/agents", Some(&token), Some(body))
                .await;
            assert_problem(response, status, code).await;
        }
    }
    let names: Vec<String> = app.get_json("/api/v1/agents", &token).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Care \u{2764}\u{FE0F}", "Support"]);
}

#[tokio::test]
async fn agent_names_are_unique_per_workspace_regardless_of_case() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    app.create_agent(&token, "Support").await;
    let body = json!({"name": "  SUPPORT ", "responder": {"kind": "faq", "faq": {"entries": [], "fallback": "x"}}});
    let response = app
        .request(
            Method::POST,
            "/api/v1/agents",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_problem(response, 409, "agent_name_taken").await;
    let other = app.create_agent(&token, "Sales").await;
    let rename = app
        .request(
            Method::PATCH,
            &format!("/api/v1/agents/{}", other["id"].as_str().unwrap()),
            Some(&token),
            Some(json!({"name": "support"})),
        )
        .await;
    assert_problem(rename, 409, "agent_name_taken").await;
    // Another workspace may use the name.
    let response = app
        .request(
            Method::POST,
            "/api/v1/agents",
            Some(&app.editor("other")),
            Some(body),
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn q_searches_agent_names_case_insensitively_anywhere() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    for name in ["Support EU", "Ärger-Desk", "Sales", "After-hours support"] {
        app.create_agent(&token, name).await;
    }
    let names = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(app.get_json("/api/v1/agents?q=SUPP", &token).await),
        vec!["After-hours support", "Support EU"]
    );
    assert_eq!(
        names(app.get_json("/api/v1/agents?q=%C3%A4rger", &token).await),
        vec!["Ärger-Desk"]
    );
    assert_eq!(
        names(app.get_json("/api/v1/agents?q=ale", &token).await),
        vec!["Sales"]
    );
    assert_eq!(
        names(app.get_json("/api/v1/agents?q=%25", &token).await),
        Vec::<String>::new()
    );
    assert_eq!(names(app.get_json("/api/v1/agents", &token).await).len(), 4);
}

#[tokio::test]
async fn agents_page_by_name_with_a_cursor() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    for name in ["delta", "Alpha", "charlie", "Bravo", "echo"] {
        app.create_agent(&token, name).await;
    }
    let first = app.get_json("/api/v1/agents?limit=2", &token).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get_json(&format!("/api/v1/agents?limit=2&cursor={cursor}"), &token)
        .await;
    let cursor = second["next_cursor"].as_str().unwrap().to_owned();
    let third = app
        .get_json(&format!("/api/v1/agents?limit=2&cursor={cursor}"), &token)
        .await;
    assert!(third["next_cursor"].is_null());
    let names: Vec<String> = [first, second, third]
        .iter()
        .flat_map(|page| {
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names, vec!["Alpha", "Bravo", "charlie", "delta", "echo"]);
}

#[tokio::test]
async fn only_cloud_api_numbers_can_be_an_agents_outbound_number() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let agent = app.create_agent(&token, "Outbound").await;
    let agent_id = agent["id"].as_str().unwrap();
    let cloud = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let onprem = app
        .seed_number(
            "ws",
            NumberSeed {
                platform_type: "ON_PREMISE",
                display: "+1 555-555-0200",
                ..Default::default()
            },
        )
        .await;

    let problem = assert_problem(
        app.set_outbound(&token, agent_id, json!(onprem)).await,
        409,
        "number_not_cloud_api",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("Register"));
    assert!(app
        .get_json(&format!("/api/v1/agents/{agent_id}"), &token)
        .await["whatsapp_outbound_number"]
        .is_null());

    let response = app.set_outbound(&token, agent_id, json!(cloud)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["whatsapp_outbound_number"],
        json!({"id": cloud, "display_phone_number": "+1 555-555-0100"})
    );

    let missing = app
        .set_outbound(&token, agent_id, json!(uuid::Uuid::new_v4()))
        .await;
    assert_problem(missing, 404, "phone_number_not_found").await;
    let cleared: Value = app
        .set_outbound(&token, agent_id, Value::Null)
        .await
        .json()
        .await
        .unwrap();
    assert!(cleared["whatsapp_outbound_number"].is_null());

    let actions: Vec<String> = app
        .audit(&token, &format!("agent_id={agent_id}"))
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        vec![
            "outbound_number.cleared",
            "outbound_number.set",
            "agent.created"
        ]
    );
}

#[tokio::test]
async fn one_number_may_be_the_outbound_number_of_many_agents() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    for name in ["One", "Two", "Three"] {
        let agent = app.create_agent(&token, name).await;
        let response = app
            .set_outbound(&token, agent["id"].as_str().unwrap(), json!(number))
            .await;
        assert_eq!(response.status(), 200);
    }
    let agents = app.get_json("/api/v1/agents", &token).await;
    assert!(agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["whatsapp_outbound_number"]["id"] == json!(number)));
}

#[tokio::test]
async fn deleting_an_agent_clears_its_numbers_and_records_it() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let a = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let b = app.seed_cloud_number("ws", "+1 555-000-0002").await;
    let agent = app.create_agent(&token, "Leaving").await;
    let agent_id = agent["id"].as_str().unwrap();
    app.assign(&token, &a, agent["id"].clone()).await;
    app.assign(&token, &b, agent["id"].clone()).await;
    app.set_outbound(&token, agent_id, json!(a)).await;

    let response = app
        .request(
            Method::DELETE,
            &format!("/api/v1/agents/{agent_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);

    for number in [&a, &b] {
        let view = app
            .get_json(&format!("/api/v1/phone-numbers/{number}"), &token)
            .await;
        assert!(view["inbound_agent"].is_null());
        let events = app.audit(&token, &format!("number_id={number}")).await;
        assert_eq!(events[0]["action"], "inbound_agent.cleared");
        assert_eq!(events[0]["detail"]["reason"], "agent_deleted");
        assert_eq!(events[0]["agent_id"], agent["id"]);
    }
    let events = app.audit(&token, &format!("agent_id={agent_id}")).await;
    assert_eq!(events[0]["action"], "agent.deleted");
    assert_eq!(events[0]["detail"]["agent_name"], "Leaving");
}

#[tokio::test]
async fn a_stored_secret_never_follows_a_url_to_a_new_host() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let body = json!({"name": "Hooked", "responder": {"kind": "webhook", "webhook": {
        "url": "https://hooks.example/in", "secret": "0123456789abcdef"}}});
    let response = app
        .request(Method::POST, "/api/v1/agents", Some(&token), Some(body))
        .await;
    assert_eq!(response.status(), 201);
    let agent: serde_json::Value = response.json().await.unwrap();
    let path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());

    let moved = json!({"responder": {"kind": "webhook", "webhook": {"url": "https://elsewhere.example/in"}}});
    let response = app
        .request(Method::PATCH, &path, Some(&token), Some(moved))
        .await;
    let problem = assert_problem(response, 422, "secret_required").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("webhook.secret"));
    let kept = app.get_json(&path, &token).await;
    assert_eq!(
        kept["responder"]["webhook"]["url"],
        "https://hooks.example/in"
    );

    // Another path on the same host keeps the secret; plain http is not for production.
    let same_host =
        json!({"responder": {"kind": "webhook", "webhook": {"url": "https://hooks.example/v2"}}});
    let response = app
        .request(Method::PATCH, &path, Some(&token), Some(same_host))
        .await;
    assert_eq!(response.status(), 200);
    let plain = json!({"responder": {"kind": "webhook", "webhook": {"url": "http://127.0.0.1:9000/in", "secret": "0123456789abcdef"}}});
    let response = app
        .request(Method::PATCH, &path, Some(&token), Some(plain))
        .await;
    assert_problem(response, 400, "validation_failed").await;
}

#[tokio::test]
async fn an_update_is_audited_with_the_fields_it_changed_never_a_secret() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let agent: Value = app
        .request(
            Method::POST,
            "/api/v1/agents",
            Some(&token),
            Some(openai_agent("Sales", "sk-live-first")),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = agent["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/agents/{id}");
    let patch = |body: Value| {
        let (app, path, token) = (&app, &path, &token);
        async move {
            let response = app
                .request(Method::PATCH, path, Some(token), Some(body))
                .await;
            assert_eq!(response.status(), 200);
        }
    };
    patch(json!({"name": "Sales EU", "description": "EU hours"})).await;
    patch(json!({"responder": {"kind": "openai", "openai": {
        "base_url": "https://llm.example/v1", "model": "gpt-4o", "api_key": "sk-live-second",
        "system_prompt": "Be brief.", "history_messages": 6
    }}}))
    .await;
    // Sending what is already there changes nothing, and says so.
    patch(json!({"name": "Sales EU"})).await;

    let events = app.audit(&token, &format!("agent_id={id}")).await;
    let updates: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "agent.updated")
        .collect();
    let changed: Vec<&Value> = updates
        .iter()
        .map(|e| &e["detail"]["changed_fields"])
        .collect();
    assert_eq!(
        changed,
        vec![
            &json!([]),
            &json!(["responder.openai.model", "responder.openai.api_key"]),
            &json!(["name", "description"]),
        ],
        "newest first"
    );
    assert_eq!(updates[2]["detail"]["agent_name"], "Sales EU");
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains("sk-live"), "no key in the audit trail");
}
