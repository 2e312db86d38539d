use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, NumberSeed};

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_shows_every_column_of_the_table_with_the_actions_flags() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let cloud = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let onprem = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-555-0200",
                platform_type: "ON_PREMISE",
                quality_rating: "YELLOW",
                ..Default::default()
            },
        )
        .await;

    let body = app.get_json("/api/v1/phone-numbers", &token).await;

    assert_eq!(ids(&body), vec![cloud.clone(), onprem.clone()]);
    assert!(body["next_cursor"].is_null());
    let first = &body["data"][0];
    for key in [
        "id",
        "phone_number_id",
        "display_phone_number",
        "verified_name",
        "platform_type",
        "quality_rating",
        "status",
        "code_verification_status",
        "name_status",
        "messaging_limit",
        "throughput_level",
        "inbound_agent",
        "registration",
        "can_assign_inbound_agent",
        "can_register",
        "whatsapp_account_id",
        "last_synced_at",
        "removed_at",
        "created_at",
        "updated_at",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    assert_eq!(first["verified_name"], "Jaspers Market");
    assert_eq!(first["platform_type"], "CLOUD_API");
    assert_eq!(first["can_assign_inbound_agent"], true);
    assert_eq!(first["can_register"], false);
    assert_eq!(first["registration"]["state"], "registered");
    assert_eq!(first["registration"]["attempts_in_window"], 0);
    let second = &body["data"][1];
    assert_eq!(second["can_assign_inbound_agent"], false);
    assert_eq!(second["can_register"], true);
    assert_eq!(second["registration"]["state"], "not_registered");
    assert_eq!(second["quality_rating"], "YELLOW");
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn coexistence_numbers_are_never_offered_register() {
    let app = spawn_app().await;
    let id = app
        .seed_number(
            "ws",
            NumberSeed {
                platform_type: "NOT_APPLICABLE",
                is_on_biz_app: true,
                ..Default::default()
            },
        )
        .await;
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{id}"), &app.editor("ws"))
        .await;
    assert_eq!(number["can_register"], false);
    assert_eq!(number["is_on_biz_app"], true);
    assert_eq!(number["registration"]["state"], "registered");
}

#[tokio::test]
async fn list_filters_by_platform_type_quality_and_inbound_agent() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let green = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let red = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-000-0002",
                quality_rating: "RED",
                ..Default::default()
            },
        )
        .await;
    let onprem = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-000-0003",
                platform_type: "ON_PREMISE",
                ..Default::default()
            },
        )
        .await;
    let agent = app.create_agent(&token, "Support").await;
    assert_eq!(
        app.assign(&token, &red, agent["id"].clone()).await.status(),
        200
    );

    let by_platform = app
        .get_json("/api/v1/phone-numbers?platform_type=ON_PREMISE", &token)
        .await;
    assert_eq!(ids(&by_platform), vec![onprem.clone()]);
    let by_quality = app
        .get_json("/api/v1/phone-numbers?quality_rating=RED", &token)
        .await;
    assert_eq!(ids(&by_quality), vec![red.clone()]);
    let with_agent = app
        .get_json("/api/v1/phone-numbers?has_inbound_agent=true", &token)
        .await;
    assert_eq!(ids(&with_agent), vec![red.clone()]);
    let without = app
        .get_json("/api/v1/phone-numbers?has_inbound_agent=false", &token)
        .await;
    assert_eq!(ids(&without), vec![green.clone(), onprem.clone()]);
    let combined = app
        .get_json(
            "/api/v1/phone-numbers?platform_type=CLOUD_API&quality_rating=GREEN",
            &token,
        )
        .await;
    assert_eq!(ids(&combined), vec![green]);
}

#[tokio::test]
async fn q_matches_the_verified_name_anywhere_or_the_number_either_way_it_is_written() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let support = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+91 98765 43210",
                verified_name: "Ärger Support",
                ..Default::default()
            },
        )
        .await;
    let sales = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "15550001111",
                verified_name: "Sales 100%",
                ..Default::default()
            },
        )
        .await;

    let search = |q: &str| format!("/api/v1/phone-numbers?q={}", urlencode(q));
    assert_eq!(
        ids(&app.get_json(&search("ärger"), &token).await),
        vec![support.clone()]
    );
    assert_eq!(
        ids(&app.get_json(&search("SUPPORT"), &token).await),
        vec![support.clone()]
    );
    assert_eq!(
        ids(&app.get_json(&search("98765 432"), &token).await),
        vec![support.clone()]
    );
    assert_eq!(
        ids(&app.get_json(&search("+1 555-000"), &token).await),
        vec![sales.clone()]
    );
    assert_eq!(
        ids(&app.get_json(&search("100%"), &token).await),
        vec![sales.clone()]
    );
    // `%` and `_` are literal, not wildcards.
    assert!(ids(&app.get_json(&search("s_les"), &token).await).is_empty());
    assert!(ids(&app.get_json(&search("nobody"), &token).await).is_empty());
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn pagination_walks_every_number_once_in_order() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let mut expected = Vec::new();
    for i in 0..7 {
        expected.push((
            format!("1555000{i:04}"),
            app.seed_cloud_number("ws", &format!("+1 555-000-{i:04}"))
                .await,
        ));
    }
    // Two numbers written differently with the same digits still page by id.
    expected.push((
        "15550000003".into(),
        app.seed_cloud_number("ws", "15550000003").await,
    ));
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut path = "/api/v1/phone-numbers?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let body = app.get_json(&path, &token).await;
        pages += 1;
        assert!(body["data"].as_array().unwrap().len() <= 3);
        seen.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/phone-numbers?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn removed_numbers_are_left_out_unless_asked_for_and_cannot_get_an_agent() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let live = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let removed = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-000-0002",
                removed: true,
                ..Default::default()
            },
        )
        .await;

    assert_eq!(
        ids(&app.get_json("/api/v1/phone-numbers", &token).await),
        vec![live.clone()]
    );
    let all = app
        .get_json("/api/v1/phone-numbers?include_removed=true", &token)
        .await;
    assert_eq!(ids(&all), vec![live, removed.clone()]);
    assert!(all["data"][1]["removed_at"].is_string());
    assert_eq!(all["data"][1]["can_assign_inbound_agent"], false);

    let agent = app.create_agent(&token, "Support").await;
    assert_problem(
        app.assign(&token, &removed, agent["id"].clone()).await,
        409,
        "number_removed",
    )
    .await;
    assert_problem(
        app.set_outbound(&token, agent["id"].as_str().unwrap(), json!(removed))
            .await,
        409,
        "number_removed",
    )
    .await;
}

#[tokio::test]
async fn an_agent_is_assigned_to_a_cloud_api_number_and_shows_in_both_places() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let agent = app.create_agent(&token, "Support bot").await;

    let response = app.assign(&token, &number, agent["id"].clone()).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["inbound_agent"],
        json!({"id": agent["id"], "name": "Support bot"})
    );
    let listed = app.get_json("/api/v1/phone-numbers", &token).await;
    assert_eq!(listed["data"][0]["inbound_agent"]["name"], "Support bot");
    let agent_view = app
        .get_json(
            &format!("/api/v1/agents/{}", agent["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(
        agent_view["inbound_phone_numbers"],
        json!([{"id": number, "display_phone_number": "+1 555-555-0100"}])
    );
}

#[tokio::test]
async fn assign_returns_409_number_not_cloud_api_for_other_platforms_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let agent = app.create_agent(&token, "Support").await;
    for platform in ["ON_PREMISE", "NOT_APPLICABLE", "SOME_FUTURE_TYPE"] {
        let number = app
            .seed_number(
                "ws",
                NumberSeed {
                    platform_type: platform,
                    display: "+44 20 7946 0000",
                    ..Default::default()
                },
            )
            .await;
        let problem = assert_problem(
            app.assign(&token, &number, agent["id"].clone()).await,
            409,
            "number_not_cloud_api",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("Register"),
            "{problem}"
        );
        let after = app
            .get_json(&format!("/api/v1/phone-numbers/{number}"), &token)
            .await;
        assert!(after["inbound_agent"].is_null());
        // Clearing is always allowed.
        assert_eq!(app.assign(&token, &number, Value::Null).await.status(), 200);
    }
    assert!(app
        .audit(&token, "")
        .await
        .iter()
        .all(|e| e["action"] != "inbound_agent.assigned"));
}

#[tokio::test]
async fn an_unknown_agent_gives_404_agent_not_found() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let response = app
        .assign(&token, &number, json!(uuid::Uuid::new_v4()))
        .await;
    assert_problem(response, 404, "agent_not_found").await;
    let response = app
        .assign(&token, &uuid::Uuid::new_v4().to_string(), Value::Null)
        .await;
    assert_problem(response, 404, "phone_number_not_found").await;
}

#[tokio::test]
async fn a_number_has_one_agent_at_a_time_and_null_unassigns_it() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let first = app.create_agent(&token, "First").await;
    let second = app.create_agent(&token, "Second").await;

    assert_eq!(
        app.assign(&token, &number, first["id"].clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        app.assign(&token, &number, second["id"].clone())
            .await
            .status(),
        200
    );
    let number_view = app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &token)
        .await;
    assert_eq!(number_view["inbound_agent"]["id"], second["id"]);
    let first_view = app
        .get_json(
            &format!("/api/v1/agents/{}", first["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(first_view["inbound_phone_numbers"], json!([]));

    let cleared: Value = app
        .assign(&token, &number, Value::Null)
        .await
        .json()
        .await
        .unwrap();
    assert!(cleared["inbound_agent"].is_null());
    let unassigned = app
        .get_json("/api/v1/phone-numbers?has_inbound_agent=false", &token)
        .await;
    assert_eq!(ids(&unassigned), vec![number]);
}

#[tokio::test]
async fn one_agent_may_answer_several_numbers() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let a = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let b = app.seed_cloud_number("ws", "+1 555-000-0002").await;
    let agent = app.create_agent(&token, "Support").await;
    assert_eq!(
        app.assign(&token, &a, agent["id"].clone()).await.status(),
        200
    );
    assert_eq!(
        app.assign(&token, &b, agent["id"].clone()).await.status(),
        200
    );
    let view = app
        .get_json(
            &format!("/api/v1/agents/{}", agent["id"].as_str().unwrap()),
            &token,
        )
        .await;
    let numbers: Vec<&str> = view["inbound_phone_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, vec![a.as_str(), b.as_str()]);
}

#[tokio::test]
async fn assignments_are_recorded_in_the_audit_trail_with_who_and_when() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let agent = app.create_agent(&token, "Support").await;
    app.assign(&token, &number, agent["id"].clone()).await;
    // Assigning the same agent again changes nothing and records nothing.
    app.assign(&token, &number, agent["id"].clone()).await;
    app.assign(&token, &number, Value::Null).await;

    let events = app.audit(&token, &format!("number_id={number}")).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["inbound_agent.cleared", "inbound_agent.assigned"]
    );
    assert_eq!(events[1]["actor"], "tester");
    assert_eq!(events[1]["agent_id"], agent["id"]);
    assert_eq!(events[1]["detail"]["agent_name"], "Support");
    assert!(events[1]["created_at"].is_string());
}

#[tokio::test]
async fn get_returns_one_number_and_404_for_an_unknown_id() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let id = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{id}"), &token)
        .await;
    assert_eq!(number["id"], id);
    assert_eq!(number["display_phone_number"], "+1 555-555-0100");
    let missing = app
        .request(
            Method::GET,
            &format!("/api/v1/phone-numbers/{}", uuid::Uuid::new_v4()),
            Some(&token),
            None,
        )
        .await;
    assert_problem(missing, 404, "phone_number_not_found").await;
}

#[tokio::test]
async fn a_page_costs_the_same_number_of_queries_whatever_its_size() {
    // No webhook workers: their polling would be counted with the page's statements.
    let app = spawn_app_with(|s| s.webhook_workers = 0).await;
    let token = app.editor("ws");
    let agent = app.create_agent(&token, "Support").await;
    let other = app.create_agent(&token, "Sales").await;
    let mut seeded = 0;
    let mut cost_of_page = Vec::new();
    for target in [2, 40] {
        while seeded < target {
            let id = app
                .seed_cloud_number("ws", &format!("+1 555-100-{seeded:04}"))
                .await;
            let who = if seeded % 2 == 0 { &agent } else { &other };
            assert_eq!(
                app.assign(&token, &id, who["id"].clone()).await.status(),
                200
            );
            seeded += 1;
        }
        let before = app.state.db.queries_executed();
        let body = app
            .get_json("/api/v1/phone-numbers?limit=200", &token)
            .await;
        cost_of_page.push(app.state.db.queries_executed() - before);
        assert_eq!(body["data"].as_array().unwrap().len(), target);
        assert!(body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["inbound_agent"]["name"].is_string()));
    }
    // The page with its agents' names and its accounts' standing is one query; register calls
    // are looked up only for numbers attempted lately (none here).
    assert_eq!(cost_of_page, [1, 1], "queries per page");

    // The agents list batches its numbers the same way.
    let before = app.state.db.queries_executed();
    let agents = app.get_json("/api/v1/agents", &token).await;
    let agents_cost = app.state.db.queries_executed() - before;
    assert_eq!(
        agents["data"][0]["inbound_phone_numbers"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    assert!(
        agents_cost <= cost_of_page[0] + 2,
        "agents page ran {agents_cost} queries"
    );
}
