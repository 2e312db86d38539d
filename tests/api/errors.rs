//! actix's own extractor errors come back as problem+json like every other error.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn malformed_json_is_400_validation_failed() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let response = app
        .client
        .post(format!("{}/api/v1/agents", app.address))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "validation_failed").await;

    let response = app
        .client
        .post(format!("{}/api/v1/agents", app.address))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "validation_failed").await;
}

#[tokio::test]
async fn a_bad_uuid_in_a_path_or_body_is_400_validation_failed() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    assert_problem(
        app.get("/api/v1/phone-numbers/not-a-uuid", &token).await,
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.get("/api/v1/agents/123", &token).await,
        400,
        "validation_failed",
    )
    .await;
    let number = app.seed_cloud_number("ws", "+1 555-555-0100").await;
    let response = app.assign(&token, &number, json!("not-a-uuid")).await;
    assert_problem(response, 400, "validation_failed").await;
    // `agent_id` must be given; null is how to clear.
    let path = format!("/api/v1/phone-numbers/{number}/inbound-agent");
    let response = app
        .request(Method::PUT, &path, Some(&token), Some(json!({})))
        .await;
    assert_problem(response, 400, "validation_failed").await;
}

#[tokio::test]
async fn unknown_query_values_are_400_validation_failed() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    for query in [
        "quality_rating=PURPLE",
        "platform_type=cloud%20api",
        "has_inbound_agent=maybe",
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=garbage",
        "include_removed=perhaps",
    ] {
        let response = app
            .get(&format!("/api/v1/phone-numbers?{query}"), &token)
            .await;
        assert_problem(response, 400, "validation_failed").await;
    }
    assert_problem(
        app.get("/api/v1/agents?cursor=%%%", &token).await,
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.get("/api/v1/audit-events?agent_id=x", &token).await,
        400,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_body_is_413_in_the_same_shape() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    let body = json!({"name": "A", "description": "x".repeat(300 * 1024), "responder": {"kind": "faq", "faq": {"entries": [], "fallback": "x"}}});
    let response = app
        .request(Method::POST, "/api/v1/agents", Some(&token), Some(body))
        .await;
    assert_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn unknown_routes_are_404_problem_json() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    assert_problem(
        app.get("/api/v1/nothing-here", &token).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(app.get("/elsewhere", &token).await, 404, "not_found").await;
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let app = spawn_app().await;
    let health: serde_json::Value = app.public_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["meta"], "sandbox");
    let expected = if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(ready["database"], expected);
}

#[tokio::test]
async fn control_characters_are_400_on_every_database_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    // PostgreSQL refuses NUL in text: before this was checked, `q=%00` answered 500 there.
    for path in [
        "/api/v1/phone-numbers?q=%00",
        "/api/v1/phone-numbers?q=shop%1B",
        "/api/v1/agents?q=%00",
        "/api/v1/phone-numbers?platform_type=CLOUD%00API",
        // A cursor is the hex of a key: a NUL there reached PostgreSQL as text (500) before.
        "/api/v1/phone-numbers?cursor=3100.ffffffffffffffffffffffffffffffff",
        "/api/v1/agents?cursor=00.0000000d000000000000000000000d00",
    ] {
        assert_problem(app.get(path, &token).await, 400, "validation_failed").await;
    }
    let long = "q".repeat(201);
    assert_problem(
        app.get(&format!("/api/v1/phone-numbers?q={long}"), &token)
            .await,
        400,
        "validation_failed",
    )
    .await;
    let faq = json!({"kind": "faq", "faq": {"entries": [], "fallback": "Hi"}});
    for body in [
        json!({"name": "Support\u{0}", "responder": faq}),
        json!({"name": "Support\u{200B}", "responder": faq}),
        json!({"name": "Support", "description": "a\u{0}b", "responder": faq}),
        json!({"name": "Support", "responder": {"kind": "faq", "faq": {"entries": [{"keywords": ["a\u{0}"], "answer": "x"}]}}}),
    ] {
        let response = app
            .request(Method::POST, "/api/v1/agents", Some(&token), Some(body))
            .await;
        assert_problem(response, 400, "validation_failed").await;
    }
    let agents = app.get_json("/api/v1/agents", &token).await;
    assert_eq!(agents["data"], json!([]), "nothing was created");
    // Line breaks and tabs are text, not control characters to refuse.
    let body = json!({"name": "Support", "description": "line one\nline two\twith a tab", "responder": faq});
    let response = app
        .request(Method::POST, "/api/v1/agents", Some(&token), Some(body))
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_database_busy_past_its_lock_wait_is_503_with_retry_after_and_changes_nothing() {
    use diesel::connection::SimpleConnection;
    let app = spawn_app().await;
    let token = app.editor("ws");
    app.get_json("/api/v1/agents", &token).await; // the workspace exists before the lock
                                                  // Another writer holds the lock longer than the server waits for it.
    let mut holder = app.raw_connection();
    let lock = if app.sqlite_file().is_some() {
        "BEGIN EXCLUSIVE"
    } else {
        "BEGIN; LOCK TABLE agents IN ACCESS EXCLUSIVE MODE"
    };
    holder.batch_execute(lock).unwrap();
    let body = json!({"name": "Waits", "responder": {"kind": "faq", "faq": {"entries": [], "fallback": "Hi"}}});
    let response = app
        .request(Method::POST, "/api/v1/agents", Some(&token), Some(body))
        .await;
    holder.batch_execute("ROLLBACK").unwrap();

    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let problem = assert_problem(response, 503, "service_unavailable").await;
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert_eq!(problem["retryable"], true);
    assert!(
        !problem.to_string().contains("locked"),
        "the cause stays in the log: {problem}"
    );
    let agents = app.get_json("/api/v1/agents", &token).await;
    assert_eq!(agents["data"], json!([]));
}

/// The server closed every pooled connection (a restart, a failover): each dead one fails at most
/// one request and is dropped; the pool does not keep handing it out because it was used lately.
#[tokio::test]
async fn connections_the_database_closed_are_dropped_not_handed_out_again() {
    use diesel::connection::SimpleConnection;
    let app = spawn_app().await;
    if app.sqlite_file().is_some() {
        return; // SQLite has no server to close them
    }
    let token = app.editor("ws");
    assert_eq!(app.get("/api/v1/phone-numbers", &token).await.status(), 200);
    app.raw_connection()
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(
            app.get("/api/v1/phone-numbers", &token)
                .await
                .status()
                .as_u16(),
        );
    }
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 503)),
        "a lost connection is 503, try again: {statuses:?}"
    );
    let pool = app.state.settings.db_pool_size as usize;
    assert!(failed <= pool, "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn every_answer_carries_the_request_id_and_problems_repeat_it() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    // The caller's id is kept.
    let response = app
        .client
        .get(format!("{}/api/v1/phone-numbers/not-a-uuid", app.address))
        .bearer_auth(&token)
        .header("X-Request-Id", "support-case-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "support-case-7");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["request_id"], "support-case-7");
    // None, or one that could break a log line: a new one, the same in header and body.
    for sent in [None, Some("two words")] {
        let mut request = app.client.get(format!("{}/api/v1/me", app.address));
        if let Some(id) = sent {
            request = request.header("X-Request-Id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let header = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(header.len(), 32, "{header}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["request_id"], header.as_str());
    }
    // Successes carry it too.
    let ok = app
        .client
        .get(format!("{}/api/v1/me", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("x-request-id"));
}
