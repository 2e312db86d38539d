//! Meta's webhooks end to end: the handshake, signatures, the durable queue, the agent's answer
//! through a server that answers like Meta, statuses, and the other fields.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};
use whatsapp_numbers::crypto::hub_signature;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

/// A number of `workspace` on the Cloud API with a usable token; returns (our id, Meta's id).
pub(crate) async fn live_number(app: &TestApp, workspace: &str, display: &str) -> (String, String) {
    let id = app.seed_cloud_number(workspace, display).await;
    let sealed = app.state.secrets.encrypt("EAAG-test-token");
    app.raw_connection()
        .batch_execute(&format!(
            "UPDATE whatsapp_accounts SET access_token_enc = '{}' WHERE id = \
             (SELECT whatsapp_account_id FROM phone_numbers WHERE id = '{id}')",
            sealed.as_str()
        ))
        .unwrap();
    let number = app
        .get_json(
            &format!("/api/v1/phone-numbers/{id}"),
            &app.editor(workspace),
        )
        .await;
    (id, number["phone_number_id"].as_str().unwrap().to_owned())
}

/// Creates the agent `body` describes and assigns it to `number`; returns its id.
pub(crate) async fn agent_on(app: &TestApp, token: &str, number: &str, body: Value) -> String {
    let response = app
        .request(Method::POST, "/api/v1/agents", Some(token), Some(body))
        .await;
    assert_eq!(response.status(), 201);
    let agent: Value = response.json().await.unwrap();
    assert_eq!(
        app.assign(token, number, agent["id"].clone())
            .await
            .status(),
        200
    );
    agent["id"].as_str().unwrap().to_owned()
}

/// An FAQ agent answering `number`'s messages.
pub(crate) async fn faq_agent(app: &TestApp, workspace: &str, number: &str) -> String {
    let token = app.editor(workspace);
    let agent = app.create_agent(&token, "Front desk").await;
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(app.assign(&token, number, json!(id)).await.status(), 200);
    id
}

pub(crate) fn text_message(meta_id: &str, wamid: &str, from: &str, text: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": meta_id},
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": from, "user_id": format!("US.{from}")}],
        "messages": [{"from": from, "from_user_id": format!("US.{from}"), "id": wamid, "timestamp": "1764150000",
                      "type": "text", "text": {"body": text}}]}}]}]})
}

pub(crate) async fn deliver_bytes(
    app: &TestApp,
    body: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/webhooks/whatsapp", app.address))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.unwrap()
}

pub(crate) async fn deliver(app: &TestApp, delivery: &Value) -> reqwest::Response {
    let body = delivery.to_string().into_bytes();
    let signature = hub_signature(META_APP_SECRET.as_bytes(), &body);
    deliver_bytes(app, &body, Some(signature)).await
}

/// An app whose Meta is `meta`, with a live number of `ws-a` answered by the FAQ agent
/// ([`faq_agent`]) and Meta taking its sends; returns (app, our number id, Meta's id).
pub(crate) async fn answering_app(meta: &MockServer) -> (TestApp, String, String) {
    let (app, number, meta_id) = faq_number(meta).await;
    meta_sends(meta, &meta_id).await;
    (app, number, meta_id)
}

/// The same, with Meta taking only read receipts: the test says how it answers sends.
pub(crate) async fn faq_app(meta: &MockServer) -> (TestApp, String, String) {
    let (app, number, meta_id) = faq_number(meta).await;
    meta_reads(meta, &meta_id).await;
    (app, number, meta_id)
}

async fn faq_number(meta: &MockServer) -> (TestApp, String, String) {
    let app = spawn_app_with_meta(meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    faq_agent(&app, "ws-a", &number).await;
    (app, number, meta_id)
}

/// Meta's read receipts of `meta_id`: `success`.
pub(crate) async fn meta_reads(meta: &MockServer, meta_id: &str) {
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"status": "read"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(meta)
        .await;
}

/// Meta's send endpoint of `meta_id`: text messages get a wamid, read receipts `success`.
pub(crate) async fn meta_sends(meta: &MockServer, meta_id: &str) {
    meta_reads(meta, meta_id).await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(|req: &Request| {
            let n = req.body.len();
            ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "x", "wa_id": "x"}],
                "messages": [{"id": format!("wamid.OUT{n}{}", uuid::Uuid::new_v4().simple())}]}))
        })
        .mount(meta)
        .await;
}

/// The bodies of the text messages Meta was asked to send.
pub(crate) async fn sent_texts(meta: &MockServer) -> Vec<Value> {
    meta.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/messages"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["type"] == "text")
        .collect()
}

/// Waits (bounded) until `check` holds for the workspace's first conversation's messages.
pub(crate) async fn wait_for_messages(
    app: &TestApp,
    workspace: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let token = app.editor(workspace);
    for _ in 0..800 {
        let conversations = app.get_json("/api/v1/conversations", &token).await;
        if let Some(id) = conversations["data"][0]["id"].as_str() {
            let messages = app
                .get_json(&format!("/api/v1/conversations/{id}/messages"), &token)
                .await;
            let messages = messages["data"].as_array().cloned().unwrap_or_default();
            if check(&messages) {
                return messages;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the messages never reached the expected state");
}

/// Waits (bounded) until no job is queued or running.
pub(crate) async fn wait_for_idle_queue(app: &TestApp) {
    for _ in 0..800 {
        let busy: i64 = whatsapp_numbers::db::schema::webhook_jobs::table
            .filter(whatsapp_numbers::db::schema::webhook_jobs::state.eq_any(["queued", "running"]))
            .count()
            .get_result(&mut app.raw_connection())
            .unwrap();
        if busy == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the queue never emptied");
}

pub(crate) fn job_count(app: &TestApp) -> i64 {
    whatsapp_numbers::db::schema::webhook_jobs::table
        .count()
        .get_result(&mut app.raw_connection())
        .unwrap()
}

#[tokio::test]
async fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let ok = app
        .client
        .get(format!(
            "{}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
    ] {
        let response = app
            .client
            .get(format!("{}/webhooks/whatsapp?{query}", app.address))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 403, "forbidden").await;
        assert!(!problem.to_string().contains("verify-me"));
    }
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_deliveries_are_refused_and_nothing_is_kept() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let body = text_message("123", "wamid.X", "111", "hi")
        .to_string()
        .into_bytes();
    let good = hub_signature(META_APP_SECRET.as_bytes(), &body);
    for signature in [
        None,
        Some(hub_signature(b"not-the-app-secret", &body)),
        Some("sha256=".to_owned()),
        Some(good.trim_start_matches("sha256=").to_owned()),
    ] {
        let problem = assert_problem(
            deliver_bytes(&app, &body, signature).await,
            401,
            "invalid_signature",
        )
        .await;
        assert!(!problem
            .to_string()
            .contains(good.trim_start_matches("sha256=")));
    }
    // Meta signs the escaped-unicode form; the same JSON re-serialized is another body.
    let escaped = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"other","value":{"name":"K\u00e4se"}}]}]}"#;
    let signature = hub_signature(META_APP_SECRET.as_bytes(), escaped);
    let reserialized =
        serde_json::to_vec(&serde_json::from_slice::<Value>(escaped).unwrap()).unwrap();
    assert_ne!(reserialized, escaped.to_vec());
    assert_problem(
        deliver_bytes(&app, &reserialized, Some(signature.clone())).await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(job_count(&app), 0, "nothing stored");
    assert_eq!(
        deliver_bytes(&app, escaped, Some(signature)).await.status(),
        200
    );
    assert_eq!(job_count(&app), 1);
    // Signed but not JSON: refused with a problem, nothing stored.
    let html = b"<html>oops</html>";
    let signed = hub_signature(META_APP_SECRET.as_bytes(), html);
    assert_problem(
        deliver_bytes(&app, html, Some(signed)).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(job_count(&app), 1);
}

#[tokio::test]
async fn a_message_delivered_five_times_is_answered_once_as_a_reply_from_the_same_number() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let agent = faq_agent(&app, "ws-a", &number).await;
    meta_sends(&meta, &meta_id).await;
    let delivery = text_message(
        &meta_id,
        "wamid.IN1",
        "15551234567",
        "What are your opening hours?",
    );
    // Five deliveries at once, as Meta's retries can overlap.
    let body = delivery.to_string().into_bytes();
    let signature = hub_signature(META_APP_SECRET.as_bytes(), &body);
    let sends: Vec<_> = (0..5)
        .map(|_| {
            let request = app
                .client
                .post(format!("{}/webhooks/whatsapp", app.address))
                .header("content-type", "application/json")
                .header("x-hub-signature-256", signature.clone())
                .body(body.clone());
            tokio::spawn(request.send())
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap().unwrap().status(), 200);
    }
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 2 && m[0]["status"] == "answered" && m[1]["status"] == "sent"
    })
    .await;
    assert_eq!(messages[0]["direction"], "inbound");
    assert_eq!(messages[0]["text"], "What are your opening hours?");
    assert_eq!(messages[1]["direction"], "outbound");
    assert_eq!(messages[1]["text"], "9 to 5");
    assert_eq!(messages[1]["agent_id"], json!(agent));
    assert_eq!(messages[1]["reply_to_id"], messages[0]["id"]);
    // Meta redelivers later too: still nothing more.
    assert_eq!(deliver(&app, &delivery).await.status(), 200);
    wait_for_idle_queue(&app).await;
    assert_eq!(job_count(&app), 1, "redeliveries are not stored again");
    let sent = sent_texts(&meta).await;
    assert_eq!(sent.len(), 1, "answered once: {sent:?}");
    assert_eq!(sent[0]["to"], "+15551234567");
    assert_eq!(sent[0]["context"]["message_id"], "wamid.IN1");
    assert_eq!(sent[0]["text"]["body"], "9 to 5");
    let reads: Vec<Request> = meta
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["status"] == "read"))
        .collect();
    assert!(!reads.is_empty(), "the customer's message is marked read");
    assert_eq!(
        reads[0].headers.get("authorization").unwrap(),
        "Bearer EAAG-test-token"
    );
    // The conversation shows the customer and opens the 24-hour window.
    let conversations = app
        .get_json("/api/v1/conversations", &app.editor("ws-a"))
        .await;
    let conversation = &conversations["data"][0];
    assert_eq!(conversation["number_id"], json!(number));
    assert_eq!(conversation["customer"]["user_id"], "US.15551234567");
    assert_eq!(conversation["customer"]["phone"], "15551234567");
    assert_eq!(conversation["customer"]["profile_name"], "Sheena");
    assert_eq!(conversation["last_inbound_at"], "2025-11-26T09:40:00Z");
    // What an operator sees: six deliveries, five of them duplicates; one answer and its latency.
    let metrics = app.metrics().await;
    for line in [
        "whatsapp_numbers_webhook_deliveries_total 6",
        "whatsapp_numbers_webhook_duplicate_jobs_total 5",
        "whatsapp_numbers_reply_latency_seconds_count{kind=\"faq\"} 1",
        "whatsapp_numbers_reply_stage_duration_seconds_count{stage=\"waited\"} 1",
        "whatsapp_numbers_reply_stage_duration_seconds_count{stage=\"agent\"} 1",
        "whatsapp_numbers_reply_stage_duration_seconds_count{stage=\"meta\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_message_to_a_number_without_agent_is_stored_and_nothing_is_sent() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (_, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    meta_sends(&meta, &meta_id).await;
    let delivery = text_message(&meta_id, "wamid.IN2", "15551234567", "hello?");
    assert_eq!(deliver(&app, &delivery).await.status(), 200);
    let messages = wait_for_messages(&app, "ws-a", |m| m.len() == 1).await;
    assert_eq!(messages[0]["status"], "no_agent");
    wait_for_idle_queue(&app).await;
    assert!(sent_texts(&meta).await.is_empty());
}

/// Meta's JSON may carry any character a customer typed, NUL included, which PostgreSQL refuses in
/// text: such a message is still taken in, stored and answered, on every database.
#[tokio::test]
async fn a_message_with_nul_and_control_characters_is_stored_and_answered() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    faq_agent(&app, "ws-a", &number).await;
    meta_sends(&meta, &meta_id).await;
    let mut delivery = text_message(
        &meta_id,
        "wamid.NUL1",
        "15551234567",
        "your\u{0} hours?\u{1b}",
    );
    delivery["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] =
        json!("She\u{0}ena");
    assert_eq!(deliver(&app, &delivery).await.status(), 200);
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 2 && m[0]["status"] == "answered" && m[1]["status"] == "sent"
    })
    .await;
    assert_eq!(messages[0]["text"], "your\u{fffd} hours?\u{1b}");
    assert_eq!(sent_texts(&meta).await.len(), 1);
}

#[tokio::test]
async fn a_username_customer_without_phone_number_is_answered_by_bsuid() {
    let meta = MockServer::start().await;
    let (app, _, meta_id) = answering_app(&meta).await;
    let delivery = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": meta_id},
        "contacts": [{"profile": {"name": "Ann", "username": "ann.k"}, "wa_id": "", "user_id": "US.13491208655302741918"}],
        "messages": [{"from_user_id": "US.13491208655302741918", "id": "wamid.U1", "timestamp": "1764150000",
                      "type": "text", "text": {"body": "hours?"}}]}}]}]});
    assert_eq!(deliver(&app, &delivery).await.status(), 200);
    wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    let sent = sent_texts(&meta).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["recipient"], "US.13491208655302741918");
    assert!(
        sent[0].get("to").is_none(),
        "no phone number to send to: {}",
        sent[0]
    );
    let conversations = app
        .get_json("/api/v1/conversations", &app.editor("ws-a"))
        .await;
    let customer = &conversations["data"][0]["customer"];
    assert_eq!(customer["phone"], Value::Null);
    assert_eq!(customer["username"], "ann.k");
}

#[tokio::test]
async fn a_batched_delivery_has_every_entry_and_message_handled() {
    let meta = MockServer::start().await;
    let (app, _, meta_id) = answering_app(&meta).await;
    let entries: Vec<Value> = (0..4)
        .map(|e| {
            let messages: Vec<Value> = (0..5)
                .map(|m| json!({"from": format!("1555000{e}{m}"), "id": format!("wamid.B{e}-{m}"),
                                "timestamp": "1764150000", "type": "text", "text": {"body": "hours"}}))
                .collect();
            let contacts: Vec<Value> = (0..5)
                .map(|m| json!({"wa_id": format!("1555000{e}{m}"), "profile": {"name": "x"}}))
                .collect();
            json!({"id": "W", "changes": [{"field": "messages", "value": {
                "metadata": {"phone_number_id": meta_id}, "contacts": contacts, "messages": messages}}]})
        })
        .collect();
    let delivery = json!({"object": "whatsapp_business_account", "entry": entries});
    assert_eq!(deliver(&app, &delivery).await.status(), 200);
    let token = app.editor("ws-a");
    for _ in 0..800 {
        if sent_texts(&meta).await.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_texts(&meta).await.len(), 20, "one answer per message");
    let conversations = app
        .get_json("/api/v1/conversations?limit=200", &token)
        .await;
    assert_eq!(
        conversations["data"].as_array().unwrap().len(),
        20,
        "one conversation per customer"
    );
}

#[tokio::test]
async fn statuses_move_an_answer_forward_only_and_keep_metas_error() {
    let meta = MockServer::start().await;
    let (app, _, meta_id) = answering_app(&meta).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN3", "15551234567", "hours"),
    )
    .await;
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    let wamid = messages[1]["wamid"].as_str().unwrap().to_owned();
    let status = |s: &str, extra: Value| {
        let mut status = json!({"id": wamid, "status": s, "timestamp": "1764150100", "recipient_id": "15551234567"});
        if let (Some(o), Some(e)) = (status.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
            "value": {"metadata": {"phone_number_id": meta_id}, "statuses": [status]}}]}]})
    };
    deliver(&app, &status("read", json!({}))).await;
    wait_for_messages(&app, "ws-a", |m| m[1]["status"] == "read").await;
    deliver(&app, &status("delivered", json!({}))).await;
    deliver(&app, &status("sent", json!({}))).await;
    wait_for_idle_queue(&app).await;
    let messages = wait_for_messages(&app, "ws-a", |_| true).await;
    assert_eq!(
        messages[1]["status"], "read",
        "a late delivered does not move it back"
    );
    // A failure of another answer keeps Meta's code and message.
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN4", "15551234567", "hours again"),
    )
    .await;
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 4 && m[3]["status"] == "sent").await;
    let wamid = messages[3]["wamid"].as_str().unwrap().to_owned();
    let failed = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
        "value": {"metadata": {"phone_number_id": meta_id}, "statuses": [{"id": wamid, "status": "failed", "timestamp": "1764150200",
            "errors": [{"code": 131049, "title": "Spam", "message": "Not delivered to keep engagement healthy"}]}]}}]}]});
    deliver(&app, &failed).await;
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 4 && m[3]["status"] == "failed").await;
    assert_eq!(messages[3]["error"]["code"], 131049);
    assert_eq!(
        messages[3]["error"]["message"],
        "Not delivered to keep engagement healthy"
    );
}

#[tokio::test]
async fn conversations_are_seen_only_by_their_workspace() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (_, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    live_number(&app, "ws-b", "+1 555-0199").await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN5", "15551234567", "hello"),
    )
    .await;
    let messages = wait_for_messages(&app, "ws-a", |m| m.len() == 1).await;
    let conversation = messages[0]["conversation_id"].as_str().unwrap().to_owned();
    let other = app.editor("ws-b");
    let listed = app.get_json("/api/v1/conversations", &other).await;
    assert_eq!(listed["data"], json!([]));
    let response = app
        .get(
            &format!("/api/v1/conversations/{conversation}/messages"),
            &other,
        )
        .await;
    assert_problem(response, 404, "conversation_not_found").await;
}

#[tokio::test]
async fn a_job_held_by_a_worker_that_died_is_finished_by_another() {
    let meta = MockServer::start().await;
    let (app, _, meta_id) = answering_app(&meta).await;
    // A worker of another process claimed the job, then died: its lease runs out.
    let delivery = text_message(&meta_id, "wamid.IN6", "15551234567", "hours");
    let jobs = whatsapp_numbers::domain::webhook::jobs_of_delivery(delivery.to_string().as_bytes())
        .unwrap();
    let job = &jobs[0];
    app.raw_connection()
        .batch_execute(&format!(
            "INSERT INTO webhook_jobs (dedup_key, kind, meta_phone_number_id, order_key, payload, state, attempts, \
             run_after, lease_owner, lease_until, received_at) VALUES ('{}', 'message', '{}', '{}', '{}', 'running', 1, \
             '2026-01-01 00:00:00', '6f1c2a34-0b5e-4c7d-9e8f-0a1b2c3d4e5f', '2026-01-01 00:00:30', '2026-01-01 00:00:00')",
            job.dedup_key,
            meta_id,
            job.order_key.as_deref().unwrap(),
            job.payload.replace('\'', "''")
        ))
        .unwrap();
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    assert_eq!(messages[1]["text"], "9 to 5");
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_texts(&meta).await.len(), 1);
    // Meta's redelivery of what the dead worker had taken changes nothing.
    deliver(&app, &delivery).await;
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_texts(&meta).await.len(), 1);
}

#[tokio::test]
async fn a_worker_that_died_while_meta_had_the_answer_leaves_it_in_doubt_not_resent() {
    let meta = MockServer::start().await;
    let (app, _, meta_id) = answering_app(&meta).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN8", "15551234567", "hours"),
    )
    .await;
    wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    wait_for_idle_queue(&app).await;
    // Rewind to what a worker killed during its call to Meta leaves: the answer recorded
    // `sending` with no wamid, the message not yet marked, the job held under a lapsed lease.
    app.raw_connection()
        .batch_execute(
            "UPDATE messages SET status = 'sending', wamid = NULL WHERE direction = 'outbound'; \
             UPDATE messages SET status = 'received' WHERE direction = 'inbound'; \
             UPDATE webhook_jobs SET state = 'running', attempts = 1, finished_at = NULL, \
             lease_owner = '6f1c2a34-0b5e-4c7d-9e8f-0a1b2c3d4e5f', lease_until = '2026-01-01 00:00:30';",
        )
        .unwrap();
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 2 && m[0]["status"] == "reply_failed"
    })
    .await;
    assert_eq!(messages[1]["status"], "failed");
    let why = messages[1]["error"]["message"].as_str().unwrap();
    assert!(why.contains("Meta may have sent it"), "{why}");
    assert_eq!(messages[0]["error"]["message"], why, "the message says why");
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_texts(&meta).await.len(), 1, "not sent again");
}

#[tokio::test]
async fn an_answer_waits_for_room_in_metas_limits_before_the_agent_is_asked() {
    let meta = MockServer::start().await;
    let (app, number, meta_id) = answering_app(&meta).await;
    // Other sends (an agent's, another instance's) have used the number's throughput for an hour.
    let hour = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let pace = whatsapp_numbers::domain::outbound::Pace::per_second(80);
    let tat = pace.exhausted_until(None, hour.timestamp_micros());
    app.raw_connection()
        .batch_execute(&format!(
            "INSERT INTO send_pacing (pace_key, tat) VALUES ('number:{number}', {tat});"
        ))
        .unwrap();
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN9", "15551234567", "hours"),
    )
    .await;
    // The job is put off until then, its attempt not counted, and nothing is sent.
    let job = || {
        use whatsapp_numbers::db::schema::webhook_jobs;
        webhook_jobs::table
            .select((
                webhook_jobs::state,
                webhook_jobs::attempts,
                webhook_jobs::received_at,
                webhook_jobs::run_after,
            ))
            .first::<(String, i64, chrono::NaiveDateTime, chrono::NaiveDateTime)>(
                &mut app.raw_connection(),
            )
            .unwrap()
    };
    for _ in 0..400 {
        let (state, _, received, run_after) = job();
        if state == "queued" && run_after > received + chrono::TimeDelta::minutes(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (state, attempts, received, run_after) = job();
    assert_eq!((state.as_str(), attempts), ("queued", 0));
    assert!(
        run_after > received + chrono::TimeDelta::minutes(59),
        "put off until the number has room: {run_after}"
    );
    let messages = wait_for_messages(&app, "ws-a", |m| m.len() == 1).await;
    assert_eq!(messages[0]["status"], "received");
    assert!(sent_texts(&meta).await.is_empty());
    // Room again: the answer goes, once.
    app.raw_connection()
        .batch_execute("DELETE FROM send_pacing; UPDATE webhook_jobs SET run_after = received_at;")
        .unwrap();
    wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_texts(&meta).await.len(), 1);
}

#[tokio::test]
async fn an_answer_meta_refuses_for_the_pair_limit_waits_as_meta_asks_and_marks_the_pair_spent() {
    let meta = MockServer::start().await;
    let (app, number, meta_id) = faq_app(&meta).await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "type": "OAuthException", "code": 131056, "fbtrace_id": "Apair"}})))
        .up_to_n_times(1)
        .mount(&meta)
        .await;
    meta_sends(&meta, &meta_id).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN10", "15551234567", "hours"),
    )
    .await;
    wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_texts(&meta).await.len(), 2, "refused once, then sent");
    // The pair was marked spent, so every instance's sends to this customer waited too.
    let pair: Vec<(String, i64)> = {
        use whatsapp_numbers::db::schema::send_pacing;
        send_pacing::table
            .filter(send_pacing::pace_key.like(format!("pair:{number}:%")))
            .select((send_pacing::pace_key, send_pacing::tat))
            .load(&mut app.raw_connection())
            .unwrap()
    };
    assert_eq!(pair.len(), 1);
    let spent_until = chrono::Utc::now().timestamp_micros()
        + (whatsapp_numbers::domain::outbound::PAIR_PACE.burst - 2)
            * whatsapp_numbers::domain::outbound::PAIR_PACE.interval_us;
    assert!(pair[0].1 > spent_until, "the pair's burst is used up");
}

#[tokio::test]
async fn an_answer_whose_send_may_have_reached_meta_is_never_sent_again() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta_and(&meta, |s| s.meta_timeout_seconds = 1).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    faq_agent(&app, "ws-a", &number).await;
    meta_reads(&meta, &meta_id).await;
    // Meta takes the message but its answer is lost (slower than the timeout).
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messages": [{"id": "wamid.LATE"}]}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&meta)
        .await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN7", "15551234567", "hours"),
    )
    .await;
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 2 && m[0]["status"] == "reply_failed"
    })
    .await;
    assert_eq!(messages[1]["status"], "failed");
    assert!(messages[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not sent again"));
    wait_for_idle_queue(&app).await;
    assert_eq!(sent_texts(&meta).await.len(), 1, "one attempt, no resend");
}

#[tokio::test]
async fn a_refusal_from_meta_fails_the_answer_with_metas_code_and_a_transient_one_is_retried() {
    let meta = MockServer::start().await;
    let (app, _, meta_id) = faq_app(&meta).await;
    // Meta is briefly throttled, then accepts.
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429, "fbtrace_id": "A"}})))
        .up_to_n_times(1)
        .mount(&meta)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(
            json!({"type": "text", "text": {"body": "9 to 5"}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.OK"}]})),
        )
        .up_to_n_times(1)
        .mount(&meta)
        .await;
    // Then refuses for good.
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Re-engagement message", "type": "OAuthException", "code": 131047, "fbtrace_id": "B"}})))
        .mount(&meta)
        .await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN8", "15551234567", "hours"),
    )
    .await;
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    assert_eq!(messages[1]["wamid"], "wamid.OK");
    deliver(
        &app,
        &text_message(&meta_id, "wamid.IN9", "15551234567", "anything"),
    )
    .await;
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 4 && m[2]["status"] == "reply_failed"
    })
    .await;
    assert_eq!(messages[3]["status"], "failed");
    assert_eq!(messages[3]["error"]["code"], 131047);
}

/// A chat-completions server: answers with the last user message reversed, prefixed.
async fn chat_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-local-key"))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let messages = body["messages"].as_array().unwrap();
            let last = messages.last().unwrap()["content"].as_str().unwrap();
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": format!("({} turns) {}", messages.len(), last.to_uppercase())}}]}))
        })
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn an_openai_agent_answers_with_the_conversation_as_history() {
    let meta = MockServer::start().await;
    let chat = chat_server().await;
    let app = spawn_app_with_meta_and(&meta, |s| s.agent_url_allow_private = true).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    meta_sends(&meta, &meta_id).await;
    let token = app.editor("ws-a");
    let body = json!({"name": "Bot", "responder": {"kind": "openai", "openai": {
        "base_url": format!("{}/v1", chat.uri()), "model": "local-model", "api_key": "sk-local-key",
        "system_prompt": "Be brief.", "history_messages": 10}}});
    agent_on(&app, &token, &number, body).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.O1", "15551234567", "hello"),
    )
    .await;
    wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.O2", "15551234567", "again"),
    )
    .await;
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 4 && m[3]["status"] == "sent").await;
    // system + (hello, answer) + again
    assert_eq!(messages[1]["text"], "(2 turns) HELLO");
    assert_eq!(messages[3]["text"], "(4 turns) AGAIN");
    let request = &chat.received_requests().await.unwrap()[1];
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent["model"], "local-model");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "hello"})
    );
    assert_eq!(sent["messages"][2]["role"], "assistant");
}

#[tokio::test]
async fn a_webhook_agent_gets_a_signed_call_and_its_answer_is_sent() {
    let meta = MockServer::start().await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(|req: &Request| {
            let expected = hub_signature(b"0123456789abcdef-secret", &req.body);
            let given = req
                .headers
                .get("x-signature-256")
                .map(|v| v.to_str().unwrap().to_owned());
            if given.as_deref() != Some(expected.as_str()) {
                return ResponseTemplate::new(401);
            }
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            ResponseTemplate::new(200).set_body_json(
                json!({"text": format!("You said: {}", body["message"]["text"].as_str().unwrap())}),
            )
        })
        .mount(&hook)
        .await;
    let app = spawn_app_with_meta_and(&meta, |s| s.agent_url_allow_private = true).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    meta_sends(&meta, &meta_id).await;
    let token = app.editor("ws-a");
    let body = json!({"name": "Hook", "responder": {"kind": "webhook", "webhook": {
        "url": format!("{}/hook", hook.uri()), "secret": "0123456789abcdef-secret"}}});
    agent_on(&app, &token, &number, body).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.H1", "15551234567", "ping"),
    )
    .await;
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    assert_eq!(messages[1]["text"], "You said: ping");
    let call: Value =
        serde_json::from_slice(&hook.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(call["customer"]["phone"], "15551234567");
    assert_eq!(call["number"]["phone_number_id"], json!(meta_id));
    assert_eq!(call["agent"]["name"], "Hook");
}

#[tokio::test]
async fn an_agent_url_leading_to_a_private_address_is_refused_with_the_setting_off() {
    let meta = MockServer::start().await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"text": "should never be asked"})),
        )
        .mount(&hook)
        .await;
    // The agent was set up while private addresses were allowed; now they are not.
    let app = spawn_app_with_meta_and(&meta, |s| s.agent_url_allow_private = false).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    meta_sends(&meta, &meta_id).await;
    let token = app.editor("ws-a");
    let agent = app.create_agent(&token, "Hook").await;
    let agent_id = agent["id"].as_str().unwrap();
    let config = json!({"kind": "webhook", "webhook": {"url": format!("{}/hook", hook.uri()), "secret_set": true}});
    let secret = app.state.secrets.encrypt("0123456789abcdef-secret");
    app.raw_connection()
        .batch_execute(&format!(
            "UPDATE agents SET responder_kind = 'webhook', responder_config = '{config}', responder_secret_enc = '{}' WHERE id = '{agent_id}'",
            secret.as_str()
        ))
        .unwrap();
    assert_eq!(
        app.assign(&token, &number, json!(agent_id)).await.status(),
        200
    );
    deliver(
        &app,
        &text_message(&meta_id, "wamid.P1", "15551234567", "ping"),
    )
    .await;
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 1 && m[0]["status"] == "reply_failed"
    })
    .await;
    assert!(
        messages[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private"),
        "{}",
        messages[0]
    );
    assert!(
        hook.received_requests().await.unwrap().is_empty(),
        "the private address was never called"
    );
    assert!(sent_texts(&meta).await.is_empty());
}

#[tokio::test]
async fn a_quality_update_rereads_the_number_and_records_a_webhook_quality_event() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let waba = waba_of(&app, &number);
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{meta_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": meta_id, "display_phone_number": "+1 555-0100", "verified_name": "Jaspers Market",
            "quality_rating": "YELLOW", "platform_type": "CLOUD_API", "status": "CONNECTED",
            "throughput": {"level": "STANDARD"}})))
        .expect(1)
        .mount(&meta)
        .await;
    let update = json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "time": 1764150000, "changes": [{
        "field": "phone_number_quality_update",
        "value": {"display_phone_number": "15550100", "event": "THROUGHPUT_UPGRADE", "current_limit": "TIER_10K"}}]}]});
    assert_eq!(deliver(&app, &update).await.status(), 200);
    assert_eq!(deliver(&app, &update).await.status(), 200);
    wait_for_idle_queue(&app).await;
    let token = app.editor("ws-a");
    let now = app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &token)
        .await;
    assert_eq!(now["quality_rating"], "YELLOW");
    let events = app
        .get_json(
            &format!("/api/v1/phone-numbers/{number}/quality-events"),
            &token,
        )
        .await;
    assert_eq!(events["data"][0]["source"], "webhook");
    assert_eq!(events["data"][0]["new_rating"], "YELLOW");
}

#[tokio::test]
async fn a_removed_partner_disconnects_the_account() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, _) = live_number(&app, "ws-a", "+1 555-0100").await;
    let waba = waba_of(&app, &number);
    let update = json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "time": 1764150000, "changes": [{
        "field": "account_update", "value": {"event": "PARTNER_REMOVED", "waba_info": {"waba_id": waba}}}]}]});
    assert_eq!(deliver(&app, &update).await.status(), 200);
    wait_for_idle_queue(&app).await;
    let accounts = app
        .get_json("/api/v1/whatsapp/accounts", &app.editor("ws-a"))
        .await;
    assert_eq!(accounts["data"], json!([]), "the account is disconnected");
}

#[tokio::test]
async fn the_sandbox_plays_a_customer_through_the_signed_pipeline_and_shows_the_answer() {
    let app = spawn_app().await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    faq_agent(&app, "ws-a", &number).await;
    let token = app.editor("ws-a");
    let response = app
        .request(
            Method::POST,
            "/api/v1/sandbox/inbound-messages",
            Some(&token),
            Some(
                json!({"phone_number_id": meta_id, "from": "+15551234567", "text": "your hours?"}),
            ),
        )
        .await;
    assert_eq!(response.status(), 202);
    let played: Value = response.json().await.unwrap();
    assert!(played["wamid"].as_str().unwrap().starts_with("wamid."));
    wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    let sent = app.get_json("/api/v1/sandbox/messages", &token).await;
    let texts: Vec<&Value> = sent["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["body"]["type"] == "text")
        .collect();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["body"]["text"], "9 to 5");
    assert_eq!(texts[0]["body"]["to"], "+15551234567");
    // Bad input is refused before anything is played; another workspace's number is not found.
    for body in [
        json!({"phone_number_id": meta_id, "from": "not a phone", "text": "x"}),
        json!({"phone_number_id": meta_id, "from": "+15551234567", "text": ""}),
        json!({"phone_number_id": meta_id, "from": "+15551234567", "text": "x", "extra": 1}),
        // NUL reached PostgreSQL as text (500) before the id was checked.
        json!({"phone_number_id": "1\u{0}2", "from": "+15551234567", "text": "x"}),
        json!({"phone_number_id": "", "from": "+15551234567", "text": "x"}),
    ] {
        let response = app
            .request(
                Method::POST,
                "/api/v1/sandbox/inbound-messages",
                Some(&token),
                Some(body),
            )
            .await;
        assert_problem(response, 400, "validation_failed").await;
    }
    let other = app.editor("ws-b");
    let response = app
        .request(
            Method::POST,
            "/api/v1/sandbox/inbound-messages",
            Some(&other),
            Some(json!({"phone_number_id": meta_id, "from": "+15551234567", "text": "hi"})),
        )
        .await;
    assert_problem(response, 404, "phone_number_not_found").await;
}

#[tokio::test]
async fn a_customer_who_changes_number_keeps_the_conversation() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (_, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.C1", "15551234567", "hello"),
    )
    .await;
    wait_for_messages(&app, "ws-a", |m| m.len() == 1).await;
    let change = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": meta_id},
        "messages": [{"from": "15551234567", "from_user_id": "US.15551234567", "id": "wamid.C2", "timestamp": "1764150100",
            "type": "system", "system": {"body": "User changed from 15551234567 to 15559876543",
                "type": "user_changed_number", "wa_id": "15559876543", "user_id": "US.NEW1", "previous_user_id": "US.15551234567"}}]}}]}]});
    deliver(&app, &change).await;
    wait_for_messages(&app, "ws-a", |m| m.len() == 2).await;
    // The new identity writes: same customer, same conversation.
    let new = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": meta_id},
        "contacts": [{"wa_id": "15559876543", "user_id": "US.NEW1", "profile": {"name": "Sheena"}}],
        "messages": [{"from": "15559876543", "from_user_id": "US.NEW1", "id": "wamid.C3", "timestamp": "1764150200",
            "type": "text", "text": {"body": "it's me"}}]}}]}]});
    deliver(&app, &new).await;
    let messages = wait_for_messages(&app, "ws-a", |m| m.len() == 3).await;
    assert_eq!(messages[1]["type"], "system");
    assert_eq!(messages[2]["text"], "it's me");
    let conversations = app
        .get_json("/api/v1/conversations", &app.editor("ws-a"))
        .await;
    let data = conversations["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "one conversation: {data:?}");
    assert_eq!(data[0]["customer"]["user_id"], "US.NEW1");
    assert_eq!(data[0]["customer"]["phone"], "15559876543");
}

#[tokio::test]
async fn a_job_that_cannot_succeed_ends_dead_with_its_error_visible_to_its_workspace_only() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (_, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    // A message Meta sent without an id (and so without a way to answer it once).
    let broken = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": meta_id},
        "messages": [{"from": "15551234567", "timestamp": "1764150000", "type": "text", "text": {"body": "hi"}}]}}]}]});
    assert_eq!(deliver(&app, &broken).await.status(), 200);
    wait_for_idle_queue(&app).await;
    let token = app.editor("ws-a");
    let dead = app.get_json("/api/v1/webhook-jobs", &token).await;
    let jobs = dead["data"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{dead}");
    assert_eq!(jobs[0]["state"], "dead");
    assert_eq!(jobs[0]["kind"], "message");
    assert!(
        jobs[0]["last_error"].as_str().unwrap().contains("no id"),
        "{}",
        jobs[0]
    );
    let others = app
        .get_json("/api/v1/webhook-jobs", &app.editor("ws-b"))
        .await;
    assert_eq!(others["data"], json!([]));
    let done = app
        .get_json("/api/v1/webhook-jobs?state=done", &token)
        .await;
    assert_eq!(done["data"], json!([]));
    let bad = app.get("/api/v1/webhook-jobs?state=buried", &token).await;
    assert_problem(bad, 400, "validation_failed").await;
    // Operators see the queue in /metrics.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("whatsapp_numbers_queue_jobs{state=\"dead\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("whatsapp_numbers_queue_jobs{state=\"queued\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("whatsapp_numbers_webhook_jobs_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_name_the_ten_numbers_with_most_waiting_and_the_ten_wabas_spending_most() {
    let meta = MockServer::start().await;
    // No workers: what comes in stays queued.
    let app = spawn_app_with_meta_and(&meta, |s| s.webhook_workers = 0).await;
    let (_, busy) = live_number(&app, "ws-a", "+1 555-0100").await;
    let (_, quiet) = live_number(&app, "ws-a", "+1 555-0101").await;
    for i in 0..3 {
        let delivery = text_message(&busy, &format!("wamid.B{i}"), "15551234567", "hi");
        assert_eq!(deliver(&app, &delivery).await.status(), 200);
    }
    let delivery = text_message(&quiet, "wamid.Q0", "15551234567", "hi");
    assert_eq!(deliver(&app, &delivery).await.status(), 200);
    // Eleven more numbers with a job each, and twelve WABAs that called Meta 1..12 times.
    let now = chrono::Utc::now().naive_utc();
    let minutes_ago = |m: i64| {
        (now - chrono::TimeDelta::minutes(m))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let mut sql = String::new();
    for n in 0..11 {
        sql += &format!(
            "INSERT INTO webhook_jobs (dedup_key, kind, meta_phone_number_id, payload, state, attempts, \
             run_after, received_at) VALUES ('k{n}', 'other', 'other-{n:02}', '{{}}', 'queued', 0, '{t}', '{t}');",
            t = minutes_ago(1)
        );
    }
    for waba in 1..=12 {
        for call in 0..waba {
            sql += &format!(
                "INSERT INTO graph_calls (id, waba_id, called_at) VALUES ('c{waba}-{call}', 'WABA{waba:02}', '{}');",
                minutes_ago(5)
            );
        }
    }
    // Calls that left the hour count for nothing.
    for call in 0..50 {
        sql += &format!(
            "INSERT INTO graph_calls (id, waba_id, called_at) VALUES ('old-{call}', 'WABA00', '{}');",
            minutes_ago(61)
        );
    }
    sql += &format!(
        "INSERT INTO waba_usage (waba_id, used_percent, reported_at) VALUES ('WABA12', 37, '{}');",
        minutes_ago(2)
    );
    app.raw_connection().batch_execute(&sql).unwrap();
    let metrics = app.metrics().await;
    let has = |line: &str| {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        )
    };
    has(&format!(
        "whatsapp_numbers_queue_number_jobs{{phone_number_id=\"{busy}\"}} 3"
    ));
    has(&format!(
        "whatsapp_numbers_queue_number_jobs{{phone_number_id=\"{quiet}\"}} 1"
    ));
    let oldest = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "whatsapp_numbers_queue_number_oldest_age_seconds{phone_number_id=\"other-00\"}",
            )
        })
        .unwrap_or_else(|| panic!("no age for other-00 in:\n{metrics}"));
    let age: i64 = oldest.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((55..=120).contains(&age), "{oldest}");
    let count = |prefix: &str| metrics.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(
        count("whatsapp_numbers_queue_number_jobs{"),
        10,
        "ten numbers at most"
    );
    assert_eq!(
        count("whatsapp_numbers_queue_number_oldest_age_seconds{"),
        10
    );
    // The busiest WABAs, with the service's budget and Meta's own report.
    let budget = whatsapp_numbers::meta::waba_call_budget(false);
    has("whatsapp_numbers_meta_budget_used_calls{waba_id=\"WABA12\"} 12");
    has("whatsapp_numbers_meta_budget_used_calls{waba_id=\"WABA03\"} 3");
    has(&format!(
        "whatsapp_numbers_meta_budget_calls_per_hour{{waba_id=\"WABA12\"}} {budget}"
    ));
    has("whatsapp_numbers_meta_reported_usage_percent{waba_id=\"WABA12\"} 37");
    assert_eq!(
        count("whatsapp_numbers_meta_budget_used_calls{"),
        10,
        "ten WABAs at most"
    );
    assert!(!metrics.contains("WABA01\""), "the least busy are left out");
    assert!(
        !metrics.contains("WABA00\""),
        "calls older than an hour count for nothing"
    );
    // Once the queue drains, the numbers leave the metrics.
    app.raw_connection()
        .batch_execute("UPDATE webhook_jobs SET state = 'done', finished_at = received_at;")
        .unwrap();
    let metrics = app.metrics().await;
    assert!(!metrics.contains("queue_number_jobs{"), "{metrics}");
}

/// The WABA id of the number's account.
fn waba_of(app: &TestApp, number: &str) -> String {
    use whatsapp_numbers::db::schema::{phone_numbers, whatsapp_accounts};
    whatsapp_accounts::table
        .inner_join(
            phone_numbers::table.on(phone_numbers::whatsapp_account_id.eq(whatsapp_accounts::id)),
        )
        .filter(phone_numbers::id.eq(number))
        .select(whatsapp_accounts::waba_id)
        .first(&mut app.raw_connection())
        .unwrap()
}

#[tokio::test]
async fn an_approved_name_is_read_back_and_the_number_registered_again_through_the_ledger() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let waba = waba_of(&app, &number);
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{meta_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": meta_id, "display_phone_number": "+1 555-0100", "verified_name": "Lucky Shrub",
            "quality_rating": "GREEN", "platform_type": "CLOUD_API", "status": "CONNECTED",
            "name_status": "APPROVED", "throughput": {"level": "STANDARD"}})))
        .mount(&meta)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/register")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&meta)
        .await;
    let update = |decision: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "time": 1764150000, "changes": [{
            "field": "phone_number_name_update",
            "value": {"display_phone_number": "15550100", "decision": decision, "requested_verified_name": "Lucky Shrub", "rejection_reason": null}}]}]})
    };
    // A pending decision changes nothing; the approval is applied once, however often it comes.
    assert_eq!(deliver(&app, &update("PENDING")).await.status(), 200);
    assert_eq!(deliver(&app, &update("APPROVED")).await.status(), 200);
    assert_eq!(deliver(&app, &update("APPROVED")).await.status(), 200);
    wait_for_idle_queue(&app).await;
    let token = app.editor("ws-a");
    let now = app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &token)
        .await;
    assert_eq!(now["verified_name"], "Lucky Shrub");
    let ledger = app.ledger(&token, &number).await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0]["outcome"], "succeeded");
}

#[tokio::test]
async fn one_customers_messages_are_answered_in_the_order_they_came() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let token = app.editor("ws-a");
    let body = json!({"name": "Counter", "responder": {"kind": "faq", "faq": {"entries": [
        {"keywords": ["one"], "answer": "1"}, {"keywords": ["two"], "answer": "2"},
        {"keywords": ["three"], "answer": "3"}, {"keywords": ["four"], "answer": "4"}]}}});
    agent_on(&app, &token, &number, body).await;
    // Meta takes long over the first message's read receipt: a second worker would overtake the
    // first if it could.
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"status": "read"})))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let slow = body["message_id"] == "wamid.ORD0";
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true}))
                .set_delay(Duration::from_millis(if slow { 400 } else { 0 }))
        })
        .mount(&meta)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.x"}]})),
        )
        .mount(&meta)
        .await;
    let message = |i: usize, word: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
            "metadata": {"phone_number_id": meta_id}, "contacts": [{"wa_id": "15551234567", "profile": {"name": "S"}}],
            "messages": [{"from": "15551234567", "id": format!("wamid.ORD{i}"), "timestamp": "1764150000",
                          "type": "text", "text": {"body": word}}]}}]}]})
    };
    assert_eq!(deliver(&app, &message(0, "one")).await.status(), 200);
    // Once the first is being answered (its read receipt went out), the others arrive.
    for _ in 0..800 {
        let reads = meta.received_requests().await.unwrap_or_default().len();
        if reads >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (i, word) in ["two", "three", "four"].iter().enumerate() {
        assert_eq!(deliver(&app, &message(i + 1, word)).await.status(), 200);
    }
    for _ in 0..800 {
        if sent_texts(&meta).await.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let order: Vec<String> = sent_texts(&meta)
        .await
        .iter()
        .map(|b| b["text"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["1", "2", "3", "4"]);
}

/// An app (agents may call loopback) whose number of `ws-a` is answered by a webhook agent at a
/// server answering `answer`; Meta takes sends. Returns the app, Meta, the hook and Meta's id.
async fn app_with_hook_agent(
    answer: ResponseTemplate,
) -> (TestApp, MockServer, MockServer, String) {
    let meta = MockServer::start().await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(answer)
        .mount(&hook)
        .await;
    let app = spawn_app_with_meta_and(&meta, |s| s.agent_url_allow_private = true).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    meta_sends(&meta, &meta_id).await;
    webhook_agent(&app, "ws-a", &number, &hook).await;
    (app, meta, hook, meta_id)
}

/// An answer holding NUL (a webhook agent is any server) is stored and sent, the NUL as U+FFFD: on
/// PostgreSQL, which refuses NUL in text, it could not be stored before.
#[tokio::test]
async fn an_answer_holding_nul_is_sent_once_on_every_database() {
    let answer = ResponseTemplate::new(200).set_body_json(json!({"text": "9 to\u{0}5"}));
    let (app, meta, _hook, meta_id) = app_with_hook_agent(answer).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.NUL2", "15551234567", "hours?"),
    )
    .await;
    let messages =
        wait_for_messages(&app, "ws-a", |m| m.len() == 2 && m[1]["status"] == "sent").await;
    assert_eq!(messages[1]["text"], "9 to\u{FFFD}5");
    let sent = sent_texts(&meta).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["text"]["body"], "9 to\u{FFFD}5");
}

/// A webhook agent at `hook` answering `number`'s messages.
async fn webhook_agent(app: &TestApp, workspace: &str, number: &str, hook: &MockServer) {
    let token = app.editor(workspace);
    let body = json!({"name": "Hook", "responder": {"kind": "webhook", "webhook": {
        "url": format!("{}/hook", hook.uri()), "secret": "0123456789abcdef-secret"}}});
    agent_on(app, &token, number, body).await;
}

#[tokio::test]
async fn an_answer_longer_than_meta_takes_goes_out_in_parts_each_once() {
    let long = format!("{}\n\n{}", "a".repeat(3000), "b".repeat(3000));
    let (app, meta, _hook, meta_id) =
        app_with_hook_agent(ResponseTemplate::new(200).set_body_json(json!({"text": long}))).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.L1", "15551234567", "tell me everything"),
    )
    .await;
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 3 && m[0]["status"] == "answered"
    })
    .await;
    assert_eq!(messages[1]["part"], 0);
    assert_eq!(messages[2]["part"], 1);
    assert_eq!(messages[1]["text"], "a".repeat(3000));
    assert_eq!(messages[2]["text"], "b".repeat(3000));
    let sent = sent_texts(&meta).await;
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|b| b["text"]["body"].as_str().unwrap().chars().count() <= 4096));
}

#[tokio::test]
async fn a_failing_agent_is_retried_then_the_message_is_recorded_as_not_answered() {
    let (app, meta, hook, meta_id) = app_with_hook_agent(ResponseTemplate::new(500)).await;
    deliver(
        &app,
        &text_message(&meta_id, "wamid.F1", "15551234567", "hello"),
    )
    .await;
    let messages = wait_for_messages(&app, "ws-a", |m| {
        m.len() == 1 && m[0]["status"] == "reply_failed"
    })
    .await;
    let error = messages[0]["error"]["message"].as_str().unwrap();
    assert!(
        error.contains("after 3 attempts") && error.contains("HTTP 500"),
        "{error}"
    );
    assert_eq!(
        hook.received_requests().await.unwrap().len(),
        3,
        "tried three times"
    );
    assert!(sent_texts(&meta).await.is_empty());
}

#[tokio::test]
async fn two_instances_on_one_database_answer_every_message_once_and_in_order() {
    let meta = MockServer::start().await;
    let first = spawn_app_with_meta(&meta).await;
    let uri = meta.uri();
    let second = spawn_app_beside(&first, |s| {
        s.meta_app = first.state.settings.meta_app.clone();
        s.meta_graph_url = uri;
    })
    .await;
    let (number, meta_id) = live_number(&first, "ws-a", "+1 555-0100").await;
    let token = first.editor("ws-a");
    let body = json!({"name": "Echo", "responder": {"kind": "faq", "faq": {"entries": [
        {"keywords": ["first"], "answer": "1"}, {"keywords": ["second"], "answer": "2"}]}}});
    agent_on(&first, &token, &number, body).await;
    meta_sends(&meta, &meta_id).await;
    // Ten customers write twice each; Meta delivers every message to both instances (a retry
    // landing on the other replica), concurrently.
    let mut sends = Vec::new();
    for word in ["first", "second"] {
        for customer in 0..10 {
            let delivery = text_message(
                &meta_id,
                &format!("wamid.{word}.{customer}"),
                &format!("155500000{customer:02}"),
                word,
            );
            let body = delivery.to_string().into_bytes();
            let signature = hub_signature(META_APP_SECRET.as_bytes(), &body);
            for app in [&first, &second] {
                let request = app
                    .client
                    .post(format!("{}/webhooks/whatsapp", app.address))
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", signature.clone())
                    .body(body.clone());
                sends.push(tokio::spawn(request.send()));
            }
        }
        for send in sends.drain(..) {
            assert_eq!(send.await.unwrap().unwrap().status(), 200);
        }
    }
    for _ in 0..800 {
        if sent_texts(&meta).await.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    wait_for_idle_queue(&first).await;
    let sent = sent_texts(&meta).await;
    assert_eq!(sent.len(), 20, "each message answered once");
    for customer in 0..10 {
        let to = format!("+155500000{customer:02}");
        let answers: Vec<&str> = sent
            .iter()
            .filter(|b| b["to"] == to.as_str())
            .map(|b| b["text"]["body"].as_str().unwrap())
            .collect();
        assert_eq!(answers, ["1", "2"], "customer {customer}");
    }
    assert_eq!(job_count(&first), 20, "each message stored once");
}

#[tokio::test]
async fn finished_jobs_are_kept_while_meta_may_redeliver_then_cleared_and_dead_ones_stay() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let insert = |key: &str, state: &str, finished: &str| {
        format!(
            "INSERT INTO webhook_jobs (dedup_key, kind, payload, state, attempts, run_after, received_at, finished_at) \
             VALUES ('{key}', 'other', '{{}}', '{state}', 1, '{finished}', '{finished}', '{finished}');"
        )
    };
    let now = chrono::Utc::now().naive_utc();
    let nine_days_ago = (now - chrono::TimeDelta::days(9))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let six_days_ago = (now - chrono::TimeDelta::days(6))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    app.raw_connection()
        .batch_execute(&format!(
            "{}{}{}",
            insert("old-done", "done", &nine_days_ago),
            insert("recent-done", "done", &six_days_ago),
            insert("old-dead", "dead", &nine_days_ago)
        ))
        .unwrap();
    let gone =
        whatsapp_numbers::service::inbound::prune_finished(&app.state, whatsapp_numbers::db::now())
            .await
            .unwrap();
    assert_eq!(gone, 1);
    let keys: Vec<String> = whatsapp_numbers::db::schema::webhook_jobs::table
        .select(whatsapp_numbers::db::schema::webhook_jobs::dedup_key)
        .order(whatsapp_numbers::db::schema::webhook_jobs::dedup_key.asc())
        .load(&mut app.raw_connection())
        .unwrap();
    assert_eq!(keys, ["old-dead", "recent-done"]);
}

#[tokio::test]
async fn a_quality_drop_raises_an_alert_the_table_filters_on_and_recovery_clears_it() {
    let meta = MockServer::start().await;
    let app = spawn_app_with_meta(&meta).await;
    let (number, meta_id) = live_number(&app, "ws-a", "+1 555-0100").await;
    let (other, _) = live_number(&app, "ws-a", "+1 555-0199").await;
    let waba = waba_of(&app, &number);
    let token = app.editor("ws-a");
    let meta_says = |rating: &str| {
        json!({"id": meta_id, "display_phone_number": "+1 555-0100", "verified_name": "Jaspers Market",
               "quality_rating": rating, "platform_type": "CLOUD_API", "status": "CONNECTED",
               "throughput": {"level": "STANDARD"}})
    };
    let update = |time: i64| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "time": time, "changes": [{
            "field": "phone_number_quality_update",
            "value": {"display_phone_number": "15550100", "event": "THROUGHPUT_UPGRADE"}}]}]})
    };
    let reread = Mock::given(method("GET"))
        .and(path(format!("/v25.0/{meta_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(meta_says("RED")))
        .mount_as_scoped(&meta)
        .await;
    deliver(&app, &update(1)).await;
    wait_for_idle_queue(&app).await;
    drop(reread);
    let now = app
        .get_json(&format!("/api/v1/phone-numbers/{number}"), &token)
        .await;
    assert_eq!(now["quality_rating"], "RED");
    assert_eq!(now["quality_alert"]["reason"], "quality_dropped");
    assert_eq!(now["quality_alert"]["previous_rating"], "GREEN");
    let alerted = app
        .get_json("/api/v1/phone-numbers?quality_alert=true", &token)
        .await;
    let ids: Vec<&str> = alerted["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [number.as_str()]);
    let calm = app
        .get_json("/api/v1/phone-numbers?quality_alert=false", &token)
        .await;
    assert_eq!(calm["data"][0]["id"], json!(other));
    assert_eq!(calm["data"][0]["quality_alert"], Value::Null);
    // Yellow is better, but not yet what it was: the alert stays. Green clears it.
    for (time, rating) in [(2, "YELLOW"), (3, "GREEN")] {
        let reread = Mock::given(method("GET"))
            .and(path(format!("/v25.0/{meta_id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(meta_says(rating)))
            .mount_as_scoped(&meta)
            .await;
        deliver(&app, &update(time)).await;
        wait_for_idle_queue(&app).await;
        drop(reread);
        let now = app
            .get_json(&format!("/api/v1/phone-numbers/{number}"), &token)
            .await;
        assert_eq!(
            now["quality_alert"].is_null(),
            rating == "GREEN",
            "{rating}: {now}"
        );
    }
    let events = app
        .get_json(
            &format!("/api/v1/phone-numbers/{number}/quality-events"),
            &token,
        )
        .await;
    let events: Vec<(String, Value)> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["new_rating"].as_str().unwrap().to_owned(),
                e["event"].clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("GREEN".to_owned(), json!("quality_alert_cleared")),
            ("YELLOW".to_owned(), Value::Null),
            (
                "RED".to_owned(),
                json!("quality_alert_raised:quality_dropped")
            ),
        ]
    );
}

#[tokio::test]
async fn stopping_hands_back_claimed_jobs_and_another_instance_answers_them_once() {
    // A slow agent: each answer takes half a second, so the workers hold claimed jobs.
    let (first, meta, hook, meta_id) = app_with_hook_agent(
        ResponseTemplate::new(200)
            .set_body_json(json!({"text": "on it"}))
            .set_delay(Duration::from_millis(500)),
    )
    .await;
    for customer in 0..8 {
        let delivery = text_message(
            &meta_id,
            &format!("wamid.S{customer}"),
            &format!("155500001{customer:02}"),
            "hello",
        );
        assert_eq!(deliver(&first, &delivery).await.status(), 200);
    }
    for _ in 0..400 {
        if !hook
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.state.shutdown.begin();
    // The jobs in hand finish; the ones claimed but not begun go back at once, not when their
    // leases (minutes) lapse.
    let count = |state: &str| -> i64 {
        whatsapp_numbers::db::schema::webhook_jobs::table
            .filter(whatsapp_numbers::db::schema::webhook_jobs::state.eq(state))
            .count()
            .get_result(&mut first.raw_connection())
            .unwrap()
    };
    let mut running = i64::MAX;
    for _ in 0..300 {
        running = count("running");
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(running, 0, "nothing is left held by the stopped instance");
    let handed_back = count("queued");
    assert!(handed_back > 0, "some jobs were handed back");
    assert_eq!(count("dead"), 0);
    // Another instance on the same database answers the rest; each customer once.
    let uri = meta.uri();
    let second = spawn_app_beside(&first, |s| {
        s.meta_app = first.state.settings.meta_app.clone();
        s.meta_graph_url = uri;
        s.agent_url_allow_private = true;
    })
    .await;
    wait_for_idle_queue(&second).await;
    let sent = sent_texts(&meta).await;
    let mut to: Vec<String> = sent
        .iter()
        .map(|b| b["to"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    let expected: Vec<String> = (0..8).map(|c| format!("+155500001{c:02}")).collect();
    assert_eq!(to, expected, "every customer answered once");
}

#[tokio::test]
async fn a_database_outage_makes_the_service_unready_and_it_recovers_by_itself_losing_nothing() {
    let meta = MockServer::start().await;
    let (app, _, meta_id) = answering_app(&meta).await;
    let ready = |app: &TestApp| {
        let request = app.client.get(format!("{}/readyz", app.address)).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&app).await, 200);
    if !app.database_outage(true) {
        return; // SQLite is in the process: it cannot be stopped apart from it.
    }
    let mut status = 0;
    for _ in 0..100 {
        status = ready(&app).await;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 503, "not ready while the database is away");
    // A delivery during the outage is not acknowledged: Meta will deliver it again.
    let during = text_message(&meta_id, "wamid.OUT1", "15551239001", "hours?");
    let answer = deliver(&app, &during).await.status().as_u16();
    assert_ne!(answer, 200, "nothing is acknowledged that was not stored");
    app.database_outage(false);
    for _ in 0..200 {
        status = ready(&app).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "ready again without a restart");
    // Meta's redelivery is taken and answered once.
    let mut taken = 0;
    for _ in 0..100 {
        taken = deliver(&app, &during).await.status().as_u16();
        if taken == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(taken, 200);
    wait_for_idle_queue(&app).await;
    let sent = sent_texts(&meta).await;
    assert_eq!(sent.len(), 1, "answered once: {sent:?}");
    assert_eq!(sent[0]["to"], "+15551239001");
}
