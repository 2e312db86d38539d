//! The live stream: events in order, scoped to the caller's workspace, resumed with
//! Last-Event-ID, told to reload when too much was missed, and served alike by every instance.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use reqwest::Method;
use serde_json::{json, Value};
use whatsapp_numbers::meta::sandbox::DEMO_WABA_ID;

use crate::helpers::*;

/// An open stream and what was read of it.
pub(crate) struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    pub(crate) async fn open(app: &TestApp, token: &str, last_event_id: Option<&str>) -> Stream {
        let mut request = app
            .client
            .get(format!("{}/api/v1/events", app.address))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an event stream"
        );
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (its `data`, with the frame's `id` and `event` checked against it), or
    /// `None` if none came within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut fields = std::collections::HashMap::new();
                for line in frame.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    if let Some((name, value)) = line.split_once(": ") {
                        fields.insert(name.to_owned(), value.to_owned());
                    }
                }
                let Some(data) = fields.get("data") else {
                    continue;
                };
                let data: Value = serde_json::from_str(data).unwrap();
                assert_eq!(fields["id"], data["id"].to_string());
                assert_eq!(fields["event"], data["type"].as_str().unwrap());
                return Some(data);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(other) => panic!("the stream ended: {other:?}"),
                Err(_) => return None,
            }
        }
    }

    pub(crate) async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 seconds")
    }

    /// The next event of `kind`, skipping others.
    pub(crate) async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let event = self.next().await;
            if event["type"] == kind {
                return event;
            }
        }
    }
}

async fn connect_demo(app: &TestApp, token: &str) {
    let connected = app
        .request(
            Method::POST,
            "/api/v1/whatsapp/accounts",
            Some(token),
            Some(json!({"waba_id": DEMO_WABA_ID, "access_token": "anything"})),
        )
        .await;
    assert_eq!(connected.status(), 201);
}

#[tokio::test]
async fn a_client_sees_its_workspaces_changes_in_order_and_resumes_where_it_left() {
    let app = spawn_app().await;
    let (token_a, token_b) = (app.editor("ws-a"), app.editor("ws-b"));
    let number_b = app.seed_cloud_number("ws-b", "+1 555-0199").await;
    let mut stream_a = Stream::open(&app, &token_a, None).await;

    // Another workspace's change is never shown.
    let agent_b = app.create_agent(&token_b, "B's agent").await;
    assert_eq!(
        app.assign(&token_b, &number_b, agent_b["id"].clone())
            .await
            .status(),
        200
    );

    // Connecting the sandbox's account adds its six numbers.
    connect_demo(&app, &token_a).await;
    let mut added = Vec::new();
    for _ in 0..6 {
        let event = stream_a.next().await;
        assert_eq!(event["type"], "number.added", "{event}");
        added.push(event);
    }
    let numbers = app
        .get_json("/api/v1/phone-numbers?limit=100", &token_a)
        .await;
    let cloud = numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["can_assign_inbound_agent"] == true)
        .unwrap()["id"]
        .clone();
    for event in &added {
        assert!(numbers["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == event["number_id"]));
    }

    // An assignment and an outbound number, in the order they were made.
    let agent = app.create_agent(&token_a, "A's agent").await;
    assert_eq!(
        app.assign(&token_a, cloud.as_str().unwrap(), agent["id"].clone())
            .await
            .status(),
        200
    );
    let response = app
        .request(
            Method::PUT,
            &format!(
                "/api/v1/agents/{}/whatsapp-outbound-number",
                agent["id"].as_str().unwrap()
            ),
            Some(&token_a),
            Some(json!({"number_id": cloud})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let assigned = stream_a.next().await;
    assert_eq!(assigned["type"], "inbound_agent.changed");
    assert_eq!(assigned["number_id"], cloud);
    assert_eq!(assigned["agent_id"], agent["id"]);
    let outbound = stream_a.next().await;
    assert_eq!(outbound["type"], "outbound_number.changed");
    assert_eq!(outbound["agent_id"], agent["id"]);
    assert_eq!(outbound["number_id"], cloud);
    let ids: Vec<i64> = added
        .iter()
        .chain([&assigned, &outbound])
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(
        stream_a
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing of ws-b's"
    );

    // Reconnecting after the first event replays the rest, in order, then goes on live.
    drop(stream_a);
    let first = ids[0].to_string();
    let mut resumed = Stream::open(&app, &token_a, Some(&first)).await;
    for id in &ids[1..] {
        assert_eq!(resumed.next().await["id"], *id);
    }
    assert_eq!(
        app.assign(&token_a, cloud.as_str().unwrap(), Value::Null)
            .await
            .status(),
        200
    );
    let cleared = resumed.next().await;
    assert_eq!(cleared["type"], "inbound_agent.changed");
    assert_eq!(cleared["agent_id"], Value::Null);

    // Too far back (events cleared): told to reload, then live again.
    app.raw_connection()
        .batch_execute(&format!("DELETE FROM events WHERE id <= {}", ids[2]))
        .unwrap();
    let mut stale = Stream::open(&app, &token_a, Some(&first)).await;
    assert_eq!(stale.next().await["type"], "reset");
    assert_eq!(
        app.assign(&token_a, cloud.as_str().unwrap(), agent["id"].clone())
            .await
            .status(),
        200
    );
    assert_eq!(stale.next().await["type"], "inbound_agent.changed");

    // A Last-Event-ID that is not an id, as the document's pattern and length say.
    for not_an_id in ["yesterday", "+5", "-1", "1234567890123456789"] {
        let bad = app
            .client
            .get(format!("{}/api/v1/events", app.address))
            .bearer_auth(&token_a)
            .header("Last-Event-ID", not_an_id)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{not_an_id}");
    }
    let unauthenticated = app
        .client
        .get(format!("{}/api/v1/events", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn a_registration_shows_as_started_then_succeeded_with_the_number_changed() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    connect_demo(&app, &token).await;
    let numbers = app
        .get_json("/api/v1/phone-numbers?limit=100", &token)
        .await;
    let target = numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["platform_type"] == "ON_PREMISE")
        .unwrap()["id"]
        .clone();
    let mut stream = Stream::open(&app, &token, None).await;
    let response = app
        .request(
            Method::POST,
            &format!(
                "/api/v1/phone-numbers/{}/register",
                target.as_str().unwrap()
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let kinds: Vec<Value> = vec![
        stream.next().await,
        stream.next().await,
        stream.next().await,
    ];
    let types: Vec<&str> = kinds.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "registration.started",
            "number.changed",
            "registration.succeeded"
        ]
    );
    assert!(kinds.iter().all(|e| e["number_id"] == target));
}

#[tokio::test]
async fn two_instances_on_one_database_serve_the_same_stream() {
    let first = spawn_app().await;
    let second = spawn_app_beside(&first, |_| {}).await;
    let token = first.editor("ws-a");
    let number = first.seed_cloud_number("ws-a", "+1 555-0100").await;
    let mut on_first = Stream::open(&first, &token, None).await;
    let mut on_second = Stream::open(&second, &token, None).await;
    let agent = first.create_agent(&token, "Desk").await;
    // A change through one instance reaches the clients of both.
    assert_eq!(
        second
            .assign(&token, &number, agent["id"].clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        first.assign(&token, &number, Value::Null).await.status(),
        200
    );
    for stream in [&mut on_first, &mut on_second] {
        let a = stream.next().await;
        let b = stream.next().await;
        assert_eq!(
            (a["type"].as_str(), b["type"].as_str()),
            (Some("inbound_agent.changed"), Some("inbound_agent.changed"))
        );
        assert_eq!(a["agent_id"], agent["id"]);
        assert_eq!(b["agent_id"], Value::Null);
        assert!(a["id"].as_i64() < b["id"].as_i64());
    }
}

#[tokio::test]
async fn register_all_queues_the_eligible_numbers_skips_the_rest_and_registers_each_once() {
    let app = spawn_app().await;
    let token = app.editor("ws");
    connect_demo(&app, &token).await;
    let limited = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-0177",
                platform_type: "ON_PREMISE",
                ..NumberSeed::default()
            },
        )
        .await;
    let removed = app
        .seed_number(
            "ws",
            NumberSeed {
                display: "+1 555-0178",
                platform_type: "ON_PREMISE",
                removed: true,
                ..NumberSeed::default()
            },
        )
        .await;
    // Meta's 10 register calls of the last 72 hours are used up on one number.
    let mut ledger = String::new();
    for i in 0..10 {
        ledger.push_str(&format!(
            "INSERT INTO registration_attempts (id, workspace_id, number_id, actor, outcome, created_at) \
             VALUES ('{}', 'ws', '{limited}', 'someone', 'failed', '{}');",
            uuid::Uuid::new_v4(),
            (chrono::Utc::now() - chrono::TimeDelta::hours(i + 1)).naive_utc().format("%Y-%m-%d %H:%M:%S")
        ));
    }
    ledger.push_str(&format!(
        "UPDATE phone_numbers SET registration_last_attempt_at = '{}' WHERE id = '{limited}';",
        (chrono::Utc::now() - chrono::TimeDelta::hours(1))
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S")
    ));
    app.raw_connection().batch_execute(&ledger).unwrap();
    let table = app
        .get_json("/api/v1/phone-numbers?limit=100", &token)
        .await;
    let rows = table["data"].as_array().unwrap().clone();
    let pending: Vec<Value> = rows
        .iter()
        .filter(|n| n["can_register"] == true && n["id"] != json!(limited))
        .map(|n| n["id"].clone())
        .collect();
    assert!(
        pending.len() >= 2,
        "the demo account has numbers to register"
    );
    let coexistence = rows.iter().find(|n| n["is_on_biz_app"] == true).unwrap()["id"].clone();
    let registered = rows
        .iter()
        .find(|n| n["can_assign_inbound_agent"] == true)
        .unwrap()["id"]
        .clone();

    let mut stream = Stream::open(&app, &token, None).await;
    let register_all = |body: Value| {
        app.request(
            Method::POST,
            "/api/v1/phone-numbers/register",
            Some(&token),
            Some(body),
        )
    };
    let answer = register_all(json!({"all_pending": true})).await;
    assert_eq!(answer.status(), 202);
    let answer: Value = answer.json().await.unwrap();
    let queued: Vec<Value> = answer["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].clone())
        .collect();
    let mut expected = pending.clone();
    expected.sort_by_key(|v| v.to_string());
    let mut got = queued.clone();
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, expected, "every eligible number, once: {answer}");
    let skipped = |id: &Value| {
        answer["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == *id)
            .cloned()
    };
    assert_eq!(skipped(&coexistence).unwrap()["reason"], "coexistence");
    let limit = skipped(&json!(limited)).unwrap();
    assert_eq!(limit["reason"], "limit_reached");
    let wait = limit["retry_after_seconds"].as_u64().unwrap();
    assert!(
        wait > 61 * 3600 && wait <= 63 * 3600,
        "the oldest call leaves the window in about 62 hours: {wait}"
    );
    assert!(
        skipped(&registered).is_none(),
        "numbers on the Cloud API are not pending"
    );
    assert!(
        skipped(&json!(removed)).is_none(),
        "removed numbers are not pending"
    );

    // Named numbers: the queued ones are in progress, the others say why.
    let unknown = uuid::Uuid::new_v4().to_string();
    let again =
        register_all(json!({"number_ids": [pending[0], registered, removed, unknown]})).await;
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    let reasons: Vec<&str> = again["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    let first_reason = reasons[0];
    assert!(
        first_reason == "in_progress" || first_reason == "already_registered",
        "{again}"
    );
    assert_eq!(
        &reasons[1..],
        ["already_registered", "removed", "not_found"]
    );
    assert!(again["queued"].as_array().unwrap().is_empty());

    // Each queued number registers, through its lease and ledger, and says so on the stream.
    let mut succeeded = std::collections::HashSet::new();
    while succeeded.len() < pending.len() {
        let event = stream.next_of("registration.succeeded").await;
        succeeded.insert(event["number_id"].to_string());
    }
    for id in &pending {
        let number = app
            .get_json(
                &format!("/api/v1/phone-numbers/{}", id.as_str().unwrap()),
                &token,
            )
            .await;
        assert_eq!(number["platform_type"], "CLOUD_API", "{number}");
        assert_eq!(number["registration"]["state"], "registered");
        let ledger = app.ledger(&token, id.as_str().unwrap()).await;
        assert_eq!(
            ledger
                .iter()
                .filter(|a| a["outcome"] == "succeeded")
                .count(),
            1,
            "registered once: {ledger:?}"
        );
    }
    for bad in [
        json!({}),
        json!({"all_pending": false}),
        json!({"number_ids": []}),
        json!({"number_ids": [registered], "all_pending": true}),
    ] {
        let response = register_all(bad.clone()).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    let viewer = app
        .request(
            Method::POST,
            "/api/v1/phone-numbers/register",
            Some(&app.token("ws", whatsapp_numbers::domain::Role::Viewer)),
            Some(json!({"all_pending": true})),
        )
        .await;
    assert_eq!(viewer.status(), 403);
}
