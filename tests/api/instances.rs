//! Real server processes (the built binary) sharing one database: one is killed with SIGKILL while
//! Meta's deliveries keep coming, and the other takes its work up.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::prelude::*;
use serde_json::{json, Value};
use whatsapp_numbers::crypto::hub_signature;
use whatsapp_numbers::db::schema::{messages, webhook_jobs};
use whatsapp_numbers::db::DbUrl;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::webhooks::{agent_on, live_number, meta_reads, sent_texts, text_message};

/// A server process of the release under test, on the test's database.
struct Instance {
    child: Child,
    address: String,
    log: std::path::PathBuf,
}

impl Instance {
    /// Starts the binary with `app`'s database and secrets, Meta at `meta`, and short timeouts
    /// (so a dead instance's claims lapse within seconds); returns once it is ready.
    async fn start(app: &TestApp, meta: &MockServer, name: &str) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = &app.state.settings;
        let database_url = match &settings.database_url {
            DbUrl::Sqlite(file) => format!("sqlite://{file}"),
            DbUrl::Postgres(url) => url.clone(),
        };
        let dir = std::env::temp_dir().join(format!("wn-instance-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_whatsapp-numbers"))
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DATA_DIR", &dir)
            .env("AUTH_JWT_SECRET", JWT_SECRET)
            .env("SECRETS_KEY", &settings.secrets_key)
            .env("META_APP_ID", META_APP_ID)
            .env("META_APP_SECRET", META_APP_SECRET)
            .env("META_GRAPH_URL", meta.uri())
            .env("META_TIMEOUT_SECONDS", "1")
            .env("AGENT_TIMEOUT_SECONDS", "1")
            .env("JOB_RETRY_BASE_MS", "50")
            .env("WEBHOOK_WORKERS", "2")
            .env("SYNC_INTERVAL_SECONDS", "0")
            .env("DATABASE_POOL_SIZE", "4")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the server binary starts");
        let instance = Instance {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            let ready = client
                .get(format!("{}/readyz", instance.address))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return instance;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} never became ready: {}", instance.logs());
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no hand-back; its claimed jobs stay claimed until their leases lapse.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts a signed delivery like Meta: to `first`, and when that fails (no answer, or not 200),
/// again to `second`, as Meta retries a delivery that was not acknowledged.
async fn deliver_to(
    client: &reqwest::Client,
    first: &str,
    second: &str,
    delivery: &Value,
) -> &'static str {
    let body = delivery.to_string().into_bytes();
    let signature = hub_signature(META_APP_SECRET.as_bytes(), &body);
    for (which, address) in [("first", first), ("second", second)] {
        let sent = client
            .post(format!("{address}/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature.clone())
            .body(body.clone())
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == 200) {
            return which;
        }
    }
    panic!("neither instance acknowledged a delivery");
}

const CUSTOMERS: usize = 30;
const WAVES: usize = 4;

#[tokio::test]
async fn an_instance_killed_under_load_loses_nothing_and_doubles_nothing() {
    let meta = MockServer::start().await;
    // This one only sets the data up: it answers no jobs.
    let setup = spawn_app_with_meta_and(&meta, |s| s.webhook_workers = 0).await;
    let (number, meta_id) = live_number(&setup, "ws-a", "+1 555-0100").await;
    let token = setup.editor("ws-a");
    let entries: Vec<Value> = (0..WAVES)
        .map(|w| json!({"keywords": [format!("w{w}")], "answer": format!("a{w}")}))
        .collect();
    let body = json!({"name": "Echo", "responder": {"kind": "faq", "faq": {"entries": entries}}});
    agent_on(&setup, &token, &number, body).await;
    meta_reads(&meta, &meta_id).await;
    // Meta takes a moment to accept each message, so the doomed instance is mid-call when killed.
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{meta_id}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(|_: &Request| {
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": "x", "wa_id": "x"}],
                    "messages": [{"id": format!("wamid.OUT{}", uuid::Uuid::new_v4().simple())}]}))
                .set_delay(Duration::from_millis(150))
        })
        .mount(&meta)
        .await;
    let mut doomed = Instance::start(&setup, &meta, "doomed").await;
    let survivor = Instance::start(&setup, &meta, "survivor").await;
    let client = reqwest::Client::new();
    // Each customer writes once a wave; a wave's deliveries alternate between the instances and
    // go at once. The doomed instance is killed halfway through the third wave.
    let mut acknowledged_by_doomed = 0;
    for wave in 0..WAVES {
        let mut posts = Vec::new();
        for customer in 0..CUSTOMERS {
            let delivery = text_message(
                &meta_id,
                &format!("wamid.w{wave}.c{customer}"),
                &format!("1555000{customer:04}"),
                &format!("w{wave}"),
            );
            let (first, second) = if customer % 2 == 0 {
                (doomed.address.clone(), survivor.address.clone())
            } else {
                (survivor.address.clone(), doomed.address.clone())
            };
            let client = client.clone();
            posts.push(tokio::spawn(async move {
                deliver_to(&client, &first, &second, &delivery).await
            }));
        }
        for (customer, post) in posts.into_iter().enumerate() {
            if wave == 2 && customer == CUSTOMERS / 2 {
                doomed.kill();
            }
            let took = post.await.unwrap();
            let doomed_first = customer % 2 == 0;
            if (took == "first") == doomed_first {
                acknowledged_by_doomed += 1;
            }
        }
    }
    assert!(
        acknowledged_by_doomed > CUSTOMERS,
        "the doomed instance took deliveries in before it died"
    );
    // Everything settles: the survivor takes the dead one's claims up once their leases lapse.
    let total = (CUSTOMERS * WAVES) as i64;
    let mut conn = setup.raw_connection();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let busy: i64 = webhook_jobs::table
            .filter(webhook_jobs::state.eq_any(["queued", "running"]))
            .count()
            .get_result(&mut conn)
            .unwrap();
        if busy == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{busy} jobs never finished; survivor's log:\n{}",
            survivor.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every acknowledged message was kept once, and each got an answer.
    let jobs: Vec<(String, i64)> = webhook_jobs::table
        .select((webhook_jobs::state, webhook_jobs::attempts))
        .load(&mut conn)
        .unwrap();
    assert_eq!(jobs.len() as i64, total, "each delivery stored once");
    assert!(jobs.iter().all(|(state, _)| state == "done"), "{jobs:?}");
    assert!(
        jobs.iter().any(|(_, attempts)| *attempts >= 2),
        "some job the dead instance held was taken up by the survivor"
    );
    let inbound: Vec<(String, String, Option<String>)> = messages::table
        .filter(messages::direction.eq("inbound"))
        .select((
            messages::body.assume_not_null(),
            messages::status,
            messages::error_message,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(inbound.len() as i64, total, "each message stored once");
    let answered = inbound.iter().filter(|m| m.1 == "answered").count();
    // A reply the dead instance was sending may have reached Meta: it is failed, never resent.
    let unknown: Vec<_> = inbound.iter().filter(|m| m.1 != "answered").collect();
    assert!(
        unknown.len() <= 2,
        "at most one reply per dead worker is in doubt: {unknown:?}"
    );
    for (_, status, error) in &unknown {
        assert_eq!(status, "reply_failed");
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("may have sent it")),
            "{error:?}"
        );
    }
    // The survivor's log tells, per number, where each answer's time went; no secret is in it.
    let log = survivor.logs();
    let answers: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "answer sent")
        .collect();
    assert!(
        answers.len() >= CUSTOMERS * 2,
        "{} answers logged",
        answers.len()
    );
    for line in &answers {
        assert_eq!(line["span"]["phone_number_id"], meta_id.as_str(), "{line}");
        assert_eq!(line["fields"]["responder"], "faq", "{line}");
        for field in ["total_ms", "waited_ms", "agent_ms", "meta_ms"] {
            assert!(line["fields"][field].is_u64(), "{field} in {line}");
        }
    }
    assert!(!log.contains("EAAG-test-token"));
    // Meta got each answer at most once, in each customer's order.
    let sent = sent_texts(&meta).await;
    let mut replied_to: Vec<&str> = sent
        .iter()
        .map(|b| b["context"]["message_id"].as_str().unwrap())
        .collect();
    replied_to.sort_unstable();
    let before = replied_to.len();
    replied_to.dedup();
    assert_eq!(replied_to.len(), before, "no message answered twice");
    assert!(
        sent.len() >= answered && sent.len() <= answered + unknown.len(),
        "{} sent for {answered} answered",
        sent.len()
    );
    for customer in 0..CUSTOMERS {
        let to = format!("+1555000{customer:04}");
        let answers: Vec<&str> = sent
            .iter()
            .filter(|b| b["to"] == to.as_str())
            .map(|b| b["text"]["body"].as_str().unwrap())
            .collect();
        let mut expected: Vec<String> = (0..WAVES).map(|w| format!("a{w}")).collect();
        expected.retain(|a| answers.contains(&a.as_str()));
        assert_eq!(
            answers, expected,
            "customer {customer}: once each, in order"
        );
    }
}
