//! What the contract promises the dashboard beyond single endpoints: 405 with `Allow`, `/me`,
//! the table's filters and sorts, the Actions and Agent columns never both offered, the one
//! spelling of ids and cursors, and bodies that are JSON objects.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, NumberSeed};
use whatsapp_numbers::domain::Role;

#[tokio::test]
async fn an_unsupported_method_on_a_known_path_is_405_with_allow() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let id = uuid::Uuid::new_v4();
    for (method, path, allow) in [
        (Method::TRACE, "/readyz".to_owned(), "GET"),
        (Method::DELETE, "/api/v1/phone-numbers".to_owned(), "GET"),
        (Method::GET, "/api/v1/phone-numbers/sync".to_owned(), "POST"),
        (Method::PUT, "/api/v1/phone-numbers/sync".to_owned(), "POST"),
        (Method::POST, format!("/api/v1/phone-numbers/{id}"), "GET"),
        (Method::OPTIONS, "/api/v1/me".to_owned(), "GET"),
    ] {
        let response = app.request(method.clone(), &path, Some(&token), None).await;
        let header = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let problem = assert_problem(response, 405, "method_not_allowed").await;
        assert_eq!(header.as_deref(), Some(allow), "{method} {path}");
        assert!(
            problem["detail"].as_str().unwrap().contains(allow),
            "{problem}"
        );
    }
    let response = app
        .request(Method::PUT, "/api/v1/agents/x", Some(&token), None)
        .await;
    let header = response.headers()["allow"].to_str().unwrap().to_owned();
    assert_problem(response, 405, "method_not_allowed").await;
    let mut methods: Vec<&str> = header.split(", ").collect();
    methods.sort_unstable();
    assert_eq!(methods, ["DELETE", "GET", "PATCH"]);
    // An unknown path is still 404.
    assert_problem(
        app.request(Method::DELETE, "/api/v1/nothing", Some(&token), None)
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn me_tells_the_ui_who_the_caller_is() {
    let app = spawn_app().await;
    let me = app.get_json("/api/v1/me", &app.editor("ws-1")).await;
    assert_eq!(
        me,
        json!({"sub": "tester", "workspace_id": "ws-1", "role": "editor", "can_write": true})
    );
    let me = app
        .get_json("/api/v1/me", &app.token("ws-1", Role::Viewer))
        .await;
    assert_eq!(
        (me["role"].clone(), me["can_write"].clone()),
        (json!("viewer"), json!(false))
    );
    assert_problem(
        app.request(Method::GET, "/api/v1/me", None, None).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn register_and_the_agent_picker_are_never_offered_together() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    // Meta reports CLOUD_API but no throughput: the number still needs Register (Chatwoot's reading).
    let half = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-000-0001",
                throughput: Some("NOT_APPLICABLE"),
                ..NumberSeed::default()
            },
        )
        .await;
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{half}"), &token)
        .await;
    assert_eq!(
        (
            number["can_register"].clone(),
            number["can_assign_inbound_agent"].clone(),
            number["can_use_as_outbound"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(number["registration"]["state"], "not_registered");
    let agent = app.create_agent(&token, "Support").await;
    let refused = app.assign(&token, &half, agent["id"].clone()).await;
    assert_problem(refused, 409, "number_not_cloud_api").await;
    let refused = app
        .set_outbound(&token, agent["id"].as_str().unwrap(), json!(half))
        .await;
    assert_problem(refused, 409, "number_not_cloud_api").await;

    let coexistence = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-000-0002",
                platform_type: "NOT_APPLICABLE",
                is_on_biz_app: true,
                throughput: Some("STANDARD"),
                ..NumberSeed::default()
            },
        )
        .await;
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{coexistence}"), &token)
        .await;
    assert_eq!(number["can_register"], false);
    assert_eq!(number["registration"]["blocked_reason"], "coexistence");
}

#[tokio::test]
async fn the_table_filters_on_what_its_columns_show() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let cloud = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let onprem = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-000-0002",
                platform_type: "ON_PREMISE",
                ..NumberSeed::default()
            },
        )
        .await;
    let ids = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let outbound = app
        .get_json("/api/v1/phone-numbers?can_use_as_outbound=true", &token)
        .await;
    assert_eq!(ids(&outbound), vec![cloud.clone()]);
    let not_outbound = app
        .get_json("/api/v1/phone-numbers?can_use_as_outbound=false", &token)
        .await;
    assert_eq!(ids(&not_outbound), vec![onprem.clone()]);
    let registrable = app
        .get_json("/api/v1/phone-numbers?can_register=true", &token)
        .await;
    assert_eq!(ids(&registrable), vec![onprem.clone()]);
    let done = app
        .get_json("/api/v1/phone-numbers?can_register=false", &token)
        .await;
    assert_eq!(ids(&done), vec![cloud.clone()]);
    // Each seeded number has its own account: the account filter finds exactly one.
    let number = app
        .get_json(&format!("/api/v1/phone-numbers/{cloud}"), &token)
        .await;
    let account = number["whatsapp_account_id"].as_str().unwrap();
    let of_account = app
        .get_json(
            &format!("/api/v1/phone-numbers?whatsapp_account_id={account}"),
            &token,
        )
        .await;
    assert_eq!(ids(&of_account), vec![cloud]);
}

#[tokio::test]
async fn the_table_sorts_by_its_columns_and_pages_through_each_order() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    for (display, name, quality) in [
        ("+1 555-000-0003", "Charlie", "GREEN"),
        ("+1 555-000-0001", "alpha", "RED"),
        ("+1 555-000-0004", "Delta", "UNKNOWN"),
        ("+1 555-000-0002", "Bravo", "YELLOW"),
    ] {
        app.seed_number(
            "ws",
            NumberSeed {
                display,
                verified_name: name,
                quality_rating: quality,
                ..NumberSeed::default()
            },
        )
        .await;
    }
    for (sort, field, expected) in [
        (
            "phone_number",
            "display_phone_number",
            [
                "+1 555-000-0001",
                "+1 555-000-0002",
                "+1 555-000-0003",
                "+1 555-000-0004",
            ],
        ),
        (
            "-phone_number",
            "display_phone_number",
            [
                "+1 555-000-0004",
                "+1 555-000-0003",
                "+1 555-000-0002",
                "+1 555-000-0001",
            ],
        ),
        (
            "verified_name",
            "verified_name",
            ["alpha", "Bravo", "Charlie", "Delta"],
        ),
        (
            "quality_rating",
            "quality_rating",
            ["RED", "YELLOW", "UNKNOWN", "GREEN"],
        ),
        (
            "-quality_rating",
            "quality_rating",
            ["GREEN", "UNKNOWN", "YELLOW", "RED"],
        ),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor
                .as_deref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let page = app
                .get_json(
                    &format!("/api/v1/phone-numbers?sort={sort}&limit=1{after}"),
                    &token,
                )
                .await;
            seen.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n[field].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "sort={sort}");
    }
    assert_problem(
        app.get("/api/v1/phone-numbers?sort=colour", &token).await,
        400,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn any_well_formed_cursor_is_a_position_and_anything_else_is_400() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    app.seed_cloud_number("ws", "+1 555-000-0001").await;
    app.seed_cloud_number("ws", "+1 555-000-0002").await;
    // The digits of the first number, hex-encoded, then any id: the list continues after it.
    let key: String = "15550000001".bytes().map(|b| format!("{b:02x}")).collect();
    let cursor = format!("{key}.ffffffffffffffffffffffffffffffff");
    let page = app
        .get_json(&format!("/api/v1/phone-numbers?cursor={cursor}"), &token)
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["display_phone_number"], "+1 555-000-0002");
    let page = app
        .get_json(
            "/api/v1/audit-events?cursor=0.00000000000000000000000000000000",
            &token,
        )
        .await;
    assert_eq!(page["data"], json!([]), "nothing is older than 1970");
    for bad in [
        "garbage",
        "",
        "abc.123",
        "zz.ffffffffffffffffffffffffffffffff",
    ] {
        let response = app
            .get(&format!("/api/v1/phone-numbers?cursor={bad}"), &token)
            .await;
        assert_problem(response, 400, "validation_failed").await;
    }
}

#[tokio::test]
async fn ids_have_one_spelling_and_whole_numbers_two() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let simple = number.replace('-', "");
    assert_problem(
        app.get(&format!("/api/v1/phone-numbers/{simple}"), &token)
            .await,
        400,
        "validation_failed",
    )
    .await;
    let braced = format!("{{{number}}}");
    assert_problem(
        app.get(&format!("/api/v1/phone-numbers/{braced}"), &token)
            .await,
        400,
        "validation_failed",
    )
    .await;
    app.get_json(
        &format!("/api/v1/phone-numbers/{}", number.to_uppercase()),
        &token,
    )
    .await;
    // JSON Schema's integers include 2.0; so does `limit`.
    let page = app
        .get_json("/api/v1/phone-numbers?limit=1.0", &token)
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_problem(
        app.get("/api/v1/phone-numbers?limit=1.5", &token).await,
        400,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn bodies_are_json_objects() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let agent = app.create_agent(&token, "Support").await;
    let agent_id = agent["id"].as_str().unwrap();
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/agents/{agent_id}"),
            json!([null, null]),
        ),
        (
            Method::PUT,
            format!("/api/v1/phone-numbers/{number}/inbound-agent"),
            json!([agent_id]),
        ),
        (
            Method::PUT,
            format!("/api/v1/agents/{agent_id}/whatsapp-outbound-number"),
            json!([number]),
        ),
        (
            Method::POST,
            "/api/v1/agents".to_owned(),
            json!(["Name", null, {"kind": "faq", "faq": {"entries": [], "fallback": "x"}}]),
        ),
        (
            Method::POST,
            "/api/v1/agents".to_owned(),
            json!({"name": "Arr", "responder": ["faq", [[], "x"]]}),
        ),
        (
            Method::POST,
            "/api/v1/whatsapp/accounts".to_owned(),
            json!(["code"]),
        ),
    ] {
        let response = app
            .request(method.clone(), &path, Some(&token), Some(body))
            .await;
        assert_problem(response, 400, "validation_failed").await;
    }
    let unchanged = app
        .get_json(&format!("/api/v1/agents/{agent_id}"), &token)
        .await;
    assert_eq!(unchanged["name"], "Support");
}

#[tokio::test]
async fn the_outbound_number_is_named_number_id_and_the_old_name_still_works() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let number = app.seed_cloud_number("ws", "+1 555-000-0001").await;
    let agent = app.create_agent(&token, "Support").await;
    let path = format!(
        "/api/v1/agents/{}/whatsapp-outbound-number",
        agent["id"].as_str().unwrap()
    );
    let response = app
        .request(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"phone_number_id": number})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let agent: Value = response.json().await.unwrap();
    assert_eq!(agent["whatsapp_outbound_number"]["id"], number.as_str());
    let events = app.audit(&token, &format!("number_id={number}")).await;
    assert_eq!(events[0]["action"], "outbound_number.set");
    assert_eq!(events[0]["number_id"], number.as_str());
    assert!(
        events[0].get("phone_number_id").is_none(),
        "phone_number_id is only ever Meta's id"
    );
}
