//! Messages an agent sends first, end to end: the 24-hour window by phone number and by BSUID,
//! templates, pacing, Meta's refusals and retries, and Idempotency-Key, against a server that
//! answers like Meta.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::events::Stream;
use crate::helpers::*;
use crate::webhooks::{deliver, live_number, wait_for_idle_queue};

/// An agent of `workspace` sending from `number`; returns its id.
async fn outbound_agent(app: &TestApp, workspace: &str, number: &str) -> String {
    let token = app.editor(workspace);
    let agent = app.create_agent(&token, "Outreach").await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let response = app
        .request(
            Method::PUT,
            &format!("/api/v1/agents/{id}/whatsapp-outbound-number"),
            Some(&token),
            Some(json!({"number_id": number})),
        )
        .await;
    assert_eq!(response.status(), 200);
    id
}

/// The customer (`phone` digits, BSUID `US.<phone>`) writes to `meta_id`, `ago` before now.
async fn customer_writes(app: &TestApp, meta_id: &str, phone: &str, ago: chrono::TimeDelta) {
    let at = (chrono::Utc::now() - ago).timestamp();
    let delivery = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": meta_id},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": phone, "user_id": format!("US.{phone}")}],
        "messages": [{"from": phone, "from_user_id": format!("US.{phone}"), "id": format!("wamid.IN.{phone}.{at}"),
                      "timestamp": at.to_string(), "type": "text", "text": {"body": "hello"}}]}}]}]});
    assert_eq!(deliver(app, &delivery).await.status(), 200);
    wait_for_idle_queue(app).await;
}

/// Meta's send endpoint of `meta_id`: every message gets a new wamid.
async fn meta_accepts(meta: &MockServer, meta_id: &str) {
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .respond_with(|_: &Request| {
            ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "x", "wa_id": "x"}],
                "messages": [{"id": format!("wamid.OUT.{}", uuid::Uuid::new_v4().simple())}]}))
        })
        .mount(meta)
        .await;
}

/// The bodies Meta was asked to send from `meta_id`, in order.
async fn sent_from(meta: &MockServer, meta_id: &str) -> Vec<Value> {
    meta.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == format!("/v25.0/{meta_id}/messages"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .collect()
}

async fn send(app: &TestApp, workspace: &str, agent: &str, body: Value) -> (u16, Value) {
    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/agents/{agent}/messages"),
            Some(&app.editor(workspace)),
            Some(body),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The message `id` of conversation `conversation`, once `check` holds (bounded wait).
async fn wait_for_message(
    app: &TestApp,
    workspace: &str,
    conversation: &Value,
    id: &Value,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let token = app.editor(workspace);
    let path = format!(
        "/api/v1/conversations/{}/messages?limit=200",
        conversation.as_str().unwrap()
    );
    let mut last = Value::Null;
    for _ in 0..800 {
        let page = app.get_json(&path, &token).await;
        if let Some(found) = page["data"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["id"] == *id))
        {
            if check(found) {
                return found.clone();
            }
            last = found.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the message never reached the expected state: {last}");
}

/// The message `sent` (as the send answered it), once its status is `status`.
async fn wait_for_status(app: &TestApp, workspace: &str, sent: &Value, status: &str) -> Value {
    wait_for_message(app, workspace, &sent["conversation_id"], &sent["id"], |m| {
        m["status"] == status
    })
    .await
}

fn template(name: &str) -> Value {
    json!({"name": name, "language": "en_US", "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]})
}

#[tokio::test]
async fn text_inside_the_window_goes_once_from_the_agents_number_by_phone_and_by_bsuid() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let (_, other_meta_id) = live_number(&app, "ws-a", "+1 555-0101").await;
    let agent = outbound_agent(&app, "ws-a", &number).await;
    meta_accepts(&meta, &meta_id).await;
    let mut stream = Stream::open(&app, &app.editor("ws-a"), None).await;
    customer_writes(&app, &meta_id, "15551230001", chrono::TimeDelta::hours(2)).await;
    let received = stream.next_of("message.received").await;
    assert_eq!(received["number_id"], json!(number));
    assert_eq!(received["status"], "no_agent");

    let (status, by_phone) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "+15551230001", "text": "Your order shipped"}),
    )
    .await;
    assert_eq!(status, 202, "{by_phone}");
    assert_eq!(by_phone["status"], "queued");
    assert_eq!(by_phone["direction"], "outbound");
    assert_eq!(by_phone["agent_id"], json!(agent));
    let (status, by_bsuid) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "US.15551230001", "text": "It arrives Friday"}),
    )
    .await;
    assert_eq!(status, 202, "{by_bsuid}");
    // The window is the customer's, whichever id is used: one conversation, the customer's.
    assert_eq!(by_phone["conversation_id"], by_bsuid["conversation_id"]);
    let conversations = app
        .get_json("/api/v1/conversations", &app.editor("ws-a"))
        .await;
    assert_eq!(conversations["data"].as_array().unwrap().len(), 1);
    assert_eq!(conversations["data"][0]["id"], by_phone["conversation_id"]);

    for sent in [&by_phone, &by_bsuid] {
        let done = wait_for_message(&app, "ws-a", &sent["conversation_id"], &sent["id"], |m| {
            m["status"] == "sent"
        })
        .await;
        assert!(done["wamid"].as_str().unwrap().starts_with("wamid.OUT."));
    }
    wait_for_idle_queue(&app).await;
    let sent = sent_from(&meta, &meta_id).await;
    assert_eq!(sent.len(), 2, "each message reached Meta once: {sent:?}");
    assert_eq!(sent[0]["text"]["body"], "Your order shipped");
    assert_eq!(sent[1]["text"]["body"], "It arrives Friday");
    for body in &sent {
        assert_eq!(
            body["to"], "+15551230001",
            "the phone number Meta shared wins"
        );
        assert_eq!(body["type"], "text");
        assert!(body.get("context").is_none(), "not a reply");
    }
    assert!(
        sent_from(&meta, &other_meta_id).await.is_empty(),
        "only from the agent's number"
    );
    let auth = meta.received_requests().await.unwrap()[0]
        .headers
        .get("authorization")
        .unwrap()
        .clone();
    assert_eq!(auth, "Bearer EAAG-test-token");

    // Meta's statuses move the message on, as for replies.
    let wamid = wait_for_status(&app, "ws-a", &by_phone, "sent").await["wamid"].clone();
    let status = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": meta_id},
        "statuses": [{"id": wamid, "status": "delivered", "timestamp": chrono::Utc::now().timestamp().to_string(),
                      "recipient_id": "15551230001"}]}}]}]});
    assert_eq!(deliver(&app, &status).await.status(), 200);
    wait_for_status(&app, "ws-a", &by_phone, "delivered").await;
}

#[tokio::test]
async fn outside_the_window_text_is_refused_before_meta_and_a_template_goes() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let agent = outbound_agent(&app, "ws-a", &number).await;
    meta_accepts(&meta, &meta_id).await;
    // Wrote 25 hours ago: the window closed an hour ago.
    customer_writes(&app, &meta_id, "15551230002", chrono::TimeDelta::hours(25)).await;

    for to in [
        "+15551230002",
        "US.15551230002",
        "+15559870000",
        "GB.unknown42",
    ] {
        let (status, problem) =
            send(&app, "ws-a", &agent, json!({"to": to, "text": "Hi again"})).await;
        assert_eq!(status, 422, "{to}: {problem}");
        assert_eq!(problem["code"], "outside_service_window", "{to}");
        assert!(
            problem["detail"].as_str().unwrap().contains("template"),
            "{problem}"
        );
    }
    let (status, sent) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "US.15551230002", "template": template("order_update")}),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["type"], "template");
    assert_eq!(sent["template"]["name"], "order_update");
    assert_eq!(sent["template"]["language"], "en_US");
    assert_eq!(sent["text"], Value::Null);
    // A template to someone who never wrote starts their conversation; by BSUID it goes by BSUID.
    let (status, fresh) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "GB.newcustomer7", "template": template("welcome")}),
    )
    .await;
    assert_eq!(status, 202, "{fresh}");
    for message in [&sent, &fresh] {
        wait_for_status(&app, "ws-a", message, "sent").await;
    }
    wait_for_idle_queue(&app).await;
    let bodies = sent_from(&meta, &meta_id).await;
    assert_eq!(
        bodies.len(),
        2,
        "only the templates reached Meta: {bodies:?}"
    );
    assert!(bodies.iter().all(|b| b["type"] == "template"));
    // Two conversations: their sends may go in either order.
    let mut bodies = bodies;
    bodies.sort_by_key(|b| b["template"]["name"] != "order_update");
    assert_eq!(bodies[0]["to"], "+15551230002");
    assert_eq!(bodies[0]["template"]["name"], "order_update");
    assert_eq!(bodies[0]["template"]["language"]["code"], "en_US");
    assert_eq!(
        bodies[0]["template"]["components"][0]["parameters"][0]["text"],
        "Ana"
    );
    assert_eq!(bodies[1]["recipient"], "GB.newcustomer7");
    assert!(bodies[1].get("to").is_none());
    // A template does not open the window.
    let (status, _) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "GB.newcustomer7", "text": "hi"}),
    )
    .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_send_without_a_usable_number_or_with_bad_input_is_refused_and_changes_nothing() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let token = app.editor("ws-a");
    let bare = app.create_agent(&token, "No number").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message = json!({"to": "+15551230003", "template": template("hello")});
    let (status, problem) = send(&app, "ws-a", &bare, message.clone()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("no_outbound_number")),
        "{problem}"
    );
    let agent = outbound_agent(&app, "ws-a", &number).await;
    // Another workspace's agent, an unknown agent.
    let (status, problem) = send(&app, "ws-b", &agent, message.clone()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("agent_not_found"))
    );
    for bad in [
        json!({"to": "15551230003", "text": "no plus"}),
        json!({"to": "+1555", "text": "too short"}),
        json!({"to": "us.123", "text": "lower-case country"}),
        json!({"to": "+15551230003"}),
        json!({"to": "+15551230003", "text": "both", "template": template("hello")}),
        json!({"to": "+15551230003", "text": "   "}),
        json!({"to": "+15551230003", "text": null}),
        json!({"to": "+15551230003", "template": {"name": "Hello World", "language": "en"}}),
        json!({"to": "+15551230003", "template": {"name": "hello", "language": "english"}}),
        json!({"to": "+15551230003", "template": {"name": "hello", "language": "en", "components": [{"parameters": []}]}}),
        json!({"to": "+15551230003", "text": "x", "extra": 1}),
    ] {
        let (status, problem) = send(&app, "ws-a", &agent, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(problem["code"], "validation_failed");
    }
    // Meta rejected the account's token: reconnect first.
    app.raw_connection()
        .batch_execute("UPDATE whatsapp_accounts SET status = 'needs_reconnect'")
        .unwrap();
    let (status, problem) = send(&app, "ws-a", &agent, message.clone()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("account_needs_reconnect"))
    );
    app.raw_connection()
        .batch_execute("UPDATE whatsapp_accounts SET status = 'connected'")
        .unwrap();
    // The number stops being usable: removed in Meta, or no longer on the Cloud API.
    app.raw_connection()
        .batch_execute(&format!(
            "UPDATE phone_numbers SET platform_type = 'ON_PREMISE' WHERE id = '{number}'"
        ))
        .unwrap();
    let (status, problem) = send(&app, "ws-a", &agent, message.clone()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("number_not_cloud_api"))
    );
    app.raw_connection()
        .batch_execute(&format!(
            "UPDATE phone_numbers SET platform_type = 'CLOUD_API', removed_at = created_at WHERE id = '{number}'"
        ))
        .unwrap();
    let (status, problem) = send(&app, "ws-a", &agent, message).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("number_removed"))
    );
    let conversations = app.get_json("/api/v1/conversations", &token).await;
    assert_eq!(conversations["data"], json!([]), "nothing was recorded");
    assert!(sent_from(&meta, &meta_id).await.is_empty());
}

#[tokio::test]
async fn a_burst_to_one_recipient_spreads_out_while_others_are_not_held_up() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let agent = outbound_agent(&app, "ws-a", &number).await;
    meta_accepts(&meta, &meta_id).await;
    // Meta lets 45 messages to one person through at once, then one every 6 seconds.
    let mut burst = Vec::new();
    for i in 0..46 {
        let (status, sent) = send(&app, "ws-a", &agent, json!({"to": "+15551230004", "template": {"name": format!("step_{i}"), "language": "en"}})).await;
        assert_eq!(status, 202, "{sent}");
        burst.push(sent);
    }
    let (status, other) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "+15551230005", "template": template("hello")}),
    )
    .await;
    assert_eq!(status, 202);
    wait_for_message(&app, "ws-a", &other["conversation_id"], &other["id"], |m| {
        m["status"] == "sent"
    })
    .await;
    wait_for_status(&app, "ws-a", &burst[44], "sent").await;
    // The 46th waits for its turn, about 6 seconds after the first went.
    let last = wait_for_message(
        &app,
        "ws-a",
        &burst[45]["conversation_id"],
        &burst[45]["id"],
        |_| true,
    )
    .await;
    assert_eq!(last["status"], "queued", "the 46th is held back");
    // Once a worker has tried it, its job is put off (not failed) until its turn.
    let (run_after, first_sent) = {
        use whatsapp_numbers::db::schema::{messages, webhook_jobs};
        let mut conn = app.raw_connection();
        let first: chrono::NaiveDateTime = messages::table
            .filter(messages::id.eq(burst[0]["id"].as_str().unwrap()))
            .select(messages::updated_at)
            .first(&mut conn)
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (state, received, run_after): (
                String,
                chrono::NaiveDateTime,
                chrono::NaiveDateTime,
            ) = webhook_jobs::table
                .filter(webhook_jobs::payload.eq(burst[45]["id"].as_str().unwrap()))
                .select((
                    webhook_jobs::state,
                    webhook_jobs::received_at,
                    webhook_jobs::run_after,
                ))
                .first(&mut conn)
                .unwrap();
            assert!(
                state == "queued" || state == "running",
                "the 46th is neither sent nor given up: {state}"
            );
            if state == "queued" && run_after > received {
                break (run_after, first);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no worker tried the 46th"
            );
            // Awaited, not slept: the workers run on this test's runtime.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let held = run_after - first_sent;
    assert!(
        held >= chrono::TimeDelta::milliseconds(5000),
        "held {held} after the first went"
    );
    let to_first: Vec<Value> = sent_from(&meta, &meta_id)
        .await
        .into_iter()
        .filter(|b| b["to"] == "+15551230004")
        .collect();
    assert_eq!(to_first.len(), 45);
    // Its turn comes, and the order is kept.
    wait_for_status(&app, "ws-a", &burst[45], "sent").await;
    let names: Vec<String> = sent_from(&meta, &meta_id)
        .await
        .into_iter()
        .filter(|b| b["to"] == "+15551230004")
        .map(|b| b["template"]["name"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..46).map(|i| format!("step_{i}")).collect();
    assert_eq!(names, expected);
}

/// Meta's error envelope.
fn meta_error(code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": {
        "message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Atrace"}}))
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_message_with_metas_code_and_rate_limits_are_retried() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let agent = outbound_agent(&app, "ws-a", &number).await;
    // The pair rate limit once, throughput once, then accepted; a template Meta does not know: refused.
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(wiremock::matchers::body_partial_json(
            json!({"template": {"name": "missing"}}),
        ))
        .respond_with(meta_error(
            132001,
            "Template name does not exist in the translation",
        ))
        .mount(&meta)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .respond_with(meta_error(
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
        ))
        .up_to_n_times(1)
        .mount(&meta)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .respond_with(meta_error(130429, "Rate limit hit"))
        .up_to_n_times(1)
        .mount(&meta)
        .await;
    meta_accepts(&meta, &meta_id).await;

    let (_, refused) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "+15551230006", "template": template("missing")}),
    )
    .await;
    let failed = wait_for_status(&app, "ws-a", &refused, "failed").await;
    assert_eq!(failed["error"]["code"], 132001);
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Template name does not exist"),
        "{failed}"
    );
    let (_, retried) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "+15551230007", "template": template("hello")}),
    )
    .await;
    let sent = wait_for_status(&app, "ws-a", &retried, "sent").await;
    assert!(sent["error"].is_null());
    wait_for_idle_queue(&app).await;
    let tries: Vec<Value> = sent_from(&meta, &meta_id)
        .await
        .into_iter()
        .filter(|b| b["to"] == "+15551230007")
        .collect();
    assert_eq!(tries.len(), 3, "two refusals, then accepted once");
    let refused_tries = sent_from(&meta, &meta_id)
        .await
        .into_iter()
        .filter(|b| b["to"] == "+15551230006")
        .count();
    assert_eq!(refused_tries, 1, "a permanent refusal is not retried");
}

#[tokio::test]
async fn an_idempotency_key_sends_once_answers_the_same_and_refuses_another_body() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let agent = outbound_agent(&app, "ws-a", &number).await;
    meta_accepts(&meta, &meta_id).await;
    let token = app.editor("ws-a");
    let post = |key: &str, body: Value| {
        app.client
            .post(format!("{}/api/v1/agents/{agent}/messages", app.address))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let body = json!({"to": "+15551230008", "template": template("hello")});
    // Five at once with one key: one message.
    let answers = futures_join_all((0..5).map(|_| post("key-1", body.clone()))).await;
    let mut first: Option<Value> = None;
    for answer in answers {
        let answer = answer.unwrap();
        let status = answer.status().as_u16();
        let json: Value = answer.json().await.unwrap();
        match status {
            202 => match &first {
                Some(f) => assert_eq!(f["id"], json["id"], "the same answer"),
                None => first = Some(json),
            },
            409 => assert_eq!(json["code"], "idempotency_key_in_progress"),
            other => panic!("{other}: {json}"),
        }
    }
    let first = first.expect("one was accepted");
    // Later, the same key and body (keys in another order): the first answer, replayed.
    let again = post(
        "key-1",
        json!({"template": template("hello"), "to": "+15551230008"}),
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    // The same key for another message.
    let other = post(
        "key-1",
        json!({"to": "+15551230009", "template": template("hello")}),
    )
    .await
    .unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.unwrap()["code"],
        "idempotency_key_reused"
    );
    wait_for_message(&app, "ws-a", &first["conversation_id"], &first["id"], |m| {
        m["status"] == "sent"
    })
    .await;
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_from(&meta, &meta_id).await.len(), 1, "sent once");
    let messages = app
        .get_json(
            &format!(
                "/api/v1/conversations/{}/messages",
                first["conversation_id"].as_str().unwrap()
            ),
            &token,
        )
        .await;
    assert_eq!(messages["data"].as_array().unwrap().len(), 1);
}

/// Runs the requests at once; their answers in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn meta_failing_then_recovering_sends_once_and_a_reset_connection_is_never_resent() {
    // Meta answers 500 three times, then recovers: the queued message goes once, after it does.
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let agent = outbound_agent(&app, "ws-a", &number).await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "message": "An unknown error occurred", "type": "OAuthException", "code": 131000,
            "is_transient": true, "fbtrace_id": "Afault"}})))
        .up_to_n_times(3)
        .mount(&meta)
        .await;
    meta_accepts(&meta, &meta_id).await;
    let (status, sent) = send(
        &app,
        "ws-a",
        &agent,
        json!({"to": "+15551230010", "template": template("hello")}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        sent["status"], "queued",
        "the request does not wait for Meta"
    );
    let done = wait_for_message(&app, "ws-a", &sent["conversation_id"], &sent["id"], |m| {
        m["status"] == "sent"
    })
    .await;
    assert!(done["error"].is_null());
    wait_for_idle_queue(&app).await;
    assert_eq!(
        sent_from(&meta, &meta_id).await.len(),
        4,
        "three refusals, then once"
    );
    let metrics = app.metrics().await;
    let line = r#"whatsapp_numbers_meta_calls_total{operation="send_message",outcome="transient_error",code="131000"} 3"#;
    assert!(
        metrics.lines().any(|l| l == line),
        "missing `{line}` in:\n{metrics}"
    );

    // A Meta that takes the request and drops the connection: the outcome is unknown, so the
    // message fails as possibly sent and is never sent again; nothing hangs.
    let dropper = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = dropper.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let Ok((mut socket, _)) = dropper.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await; // the request arrives, then the line goes dead
            drop(socket);
        }
    });
    let flaky = spawn_app_with(|s| {
        s.meta_app = app.state.settings.meta_app.clone();
        s.meta_graph_url = format!("http://{address}");
        s.meta_timeout_seconds = 2;
    })
    .await;
    let (number, _) = live_number(&flaky, "ws-a", "+1 555-0100").await;
    let agent = outbound_agent(&flaky, "ws-a", &number).await;
    let (status, sent) = send(
        &flaky,
        "ws-a",
        &agent,
        json!({"to": "+15551230011", "template": template("hello")}),
    )
    .await;
    assert_eq!(status, 202);
    let failed = wait_for_message(&flaky, "ws-a", &sent["conversation_id"], &sent["id"], |m| {
        m["status"] == "failed"
    })
    .await;
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may have sent it"),
        "{failed}"
    );
    wait_for_idle_queue(&flaky).await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "called once, never again"
    );
}
