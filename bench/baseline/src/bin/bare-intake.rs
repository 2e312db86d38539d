//! The bare baseline of the webhook intake: actix-web and rusqlite, no layers. For each delivery it
//! does what the service's intake does: checks `X-Hub-Signature-256` (HMAC-SHA256 of the raw body,
//! compared in constant time), parses the JSON, takes one row per message and status keyed by
//! Meta's id, and answers 200 only after the rows are committed. A single writer thread commits
//! every delivery waiting at that moment in one transaction (group commit), skipping keys already
//! stored.
//!
//! Environment: `DB` (a SQLite file), `META_APP_SECRET`, `BIND_ADDR`.

use std::sync::mpsc;

use actix_web::{post, web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use rusqlite::Connection;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::oneshot;

struct Row {
    key: String,
    payload: String,
}

struct Job {
    rows: Vec<Row>,
    done: oneshot::Sender<bool>,
}

struct Shared {
    secret: Vec<u8>,
    writer: mpsc::SyncSender<Job>,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn rows_of(delivery: &Value) -> Vec<Row> {
    let mut rows = Vec::new();
    for entry in delivery["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let value = &change["value"];
            for m in value["messages"].as_array().into_iter().flatten() {
                rows.push(Row {
                    key: format!("message:{}", m["id"].as_str().unwrap_or_default()),
                    payload: m.to_string(),
                });
            }
            for s in value["statuses"].as_array().into_iter().flatten() {
                rows.push(Row {
                    key: format!(
                        "status:{}:{}",
                        s["id"].as_str().unwrap_or_default(),
                        s["status"].as_str().unwrap_or_default()
                    ),
                    payload: s.to_string(),
                });
            }
        }
    }
    rows
}

#[post("/webhooks/whatsapp")]
async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let Some(given) = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(unhex)
    else {
        return HttpResponse::Unauthorized().finish();
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&shared.secret).expect("any key length");
    mac.update(&body);
    if mac.verify_slice(&given).is_err() {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(delivery) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let (done, stored) = oneshot::channel();
    if shared
        .writer
        .send(Job {
            rows: rows_of(&delivery),
            done,
        })
        .is_err()
    {
        return HttpResponse::ServiceUnavailable().finish();
    }
    match stored.await {
        Ok(true) => HttpResponse::Ok().finish(),
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

fn write_loop(path: String, jobs: mpsc::Receiver<Job>) {
    let mut conn = Connection::open(path).expect("open the database");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;
         CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, dedup_key TEXT NOT NULL UNIQUE,
             payload TEXT NOT NULL, received_at TEXT NOT NULL);",
    )
    .expect("set up the database");
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < 1024 {
            match jobs.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let ok = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO deliveries (dedup_key, payload, received_at) VALUES (?1, ?2, datetime('now')) \
                     ON CONFLICT (dedup_key) DO NOTHING",
                )?;
                for job in &group {
                    for row in &job.rows {
                        insert.execute((&row.key, &row.payload))?;
                    }
                }
            }
            tx.commit()
        })()
        .is_ok();
        for job in group {
            let _ = job.done.send(ok);
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is required"));
    let (db, secret, bind) = (env("DB"), env("META_APP_SECRET"), env("BIND_ADDR"));
    let (writer, jobs) = mpsc::sync_channel(8192);
    std::thread::spawn(move || write_loop(db, jobs));
    let shared = web::Data::new(Shared {
        secret: secret.into_bytes(),
        writer,
    });
    HttpServer::new(move || App::new().app_data(shared.clone()).service(receive))
        .bind(bind)?
        .run()
        .await
}
