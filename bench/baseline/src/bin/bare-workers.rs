//! The bare baseline of the webhook workers: `JOBS` stored deliveries (the same payloads as
//! intake-load's, from `CUSTOMERS` customers in turn) answered by `WORKERS` async workers over one
//! SQLite file, each with its own connection. A worker claims up to 8 due jobs in one write
//! transaction, never a customer's job while an earlier one of that customer is unfinished (their
//! order is kept); for each it parses the delivery, stores the inbound message, marks it read at
//! the Meta stand-in, picks the FAQ answer, stores the answer as `sending`, sends it to the
//! stand-in, then records the answer sent, the message answered and the job done in one
//! transaction. Prints `jobs_per_second jobs answers_sent`.
//!
//! Environment: `DB` (a file path; made afresh), `STANDIN` (base URL with version,
//! e.g. http://127.0.0.1:18090/v25.0), `NUMBER` (Meta's phone-number ids, separated by commas:
//! the deliveries go to each in turn, as intake-load's), `JOBS`, `CUSTOMERS`, `WORKERS` (4).
//! Meta's limits (80 messages a second per number) are not applied: spread the load over enough
//! numbers that the service's pacing does not bind either.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::{json, Value};

const CLAIM_BATCH: i64 = 8;

fn open(path: &str) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
    )
    .expect("pragmas");
    conn
}

fn setup(path: &str, numbers: &[&str], jobs: usize, customers: usize) {
    let _ = std::fs::remove_file(path);
    let mut conn = open(path);
    conn.execute_batch(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, order_key TEXT NOT NULL, payload TEXT NOT NULL,
             state TEXT NOT NULL DEFAULT 'queued');
         CREATE INDEX jobs_ready ON jobs (state, id);
         CREATE INDEX jobs_order ON jobs (order_key, id) WHERE state IN ('queued', 'running');
         CREATE TABLE messages (id TEXT PRIMARY KEY, wamid TEXT UNIQUE, direction TEXT NOT NULL,
             customer TEXT NOT NULL, body TEXT, status TEXT NOT NULL, reply_to TEXT);",
    )
    .expect("schema");
    let tx = conn.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare("INSERT INTO jobs (order_key, payload) VALUES (?1, ?2)")
            .expect("prepare");
        for i in 0..jobs {
            let number = numbers[i % numbers.len()];
            let from = bench_baseline::customer(i, customers);
            let payload = bench_baseline::delivery(number, &format!("wamid.bare.{i}"), &from);
            insert
                .execute(params![format!("{number}:{from}"), payload])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// Claims up to [`CLAIM_BATCH`] due jobs, a customer's earliest unfinished one only.
fn claim(conn: &mut Connection) -> Vec<(i64, String)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    let claimed: Vec<(i64, String)> = {
        let mut select = tx
            .prepare_cached(
                "SELECT j.id, j.payload FROM jobs j WHERE j.state = 'queued' AND NOT EXISTS (
                     SELECT 1 FROM jobs e WHERE e.order_key = j.order_key AND e.id < j.id
                     AND e.state IN ('queued', 'running'))
                 ORDER BY j.id LIMIT ?1",
            )
            .expect("prepare");
        select
            .query_map([CLAIM_BATCH], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    for (id, _) in &claimed {
        tx.execute("UPDATE jobs SET state = 'running' WHERE id = ?1", [id])
            .expect("claim");
    }
    tx.commit().expect("commit");
    claimed
}

fn busy(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
        [],
        |r| r.get(0),
    )
    .expect("count")
}

async fn db<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    work: impl FnOnce(&mut Connection) -> T + Send + 'static,
) -> T {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || work(&mut conn.lock().expect("connection")))
        .await
        .expect("blocking task")
}

async fn work(conn: Arc<Mutex<Connection>>, http: reqwest::Client, standin: String) -> u64 {
    let mut sent = 0;
    loop {
        let jobs = db(&conn, claim).await;
        if jobs.is_empty() {
            if db(&conn, |c| busy(c)).await == 0 {
                return sent;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        }
        for (job, payload) in jobs {
            let delivery: Value = serde_json::from_str(&payload).expect("json");
            let value = &delivery["entry"][0]["changes"][0]["value"];
            let number = value["metadata"]["phone_number_id"]
                .as_str()
                .expect("number")
                .to_owned();
            let message = &value["messages"][0];
            let wamid = message["id"].as_str().expect("id").to_owned();
            let from = message["from"].as_str().expect("from").to_owned();
            let text = message["text"]["body"].as_str().unwrap_or("").to_owned();
            let (inbound, answer) = (format!("in.{wamid}"), format!("out.{wamid}"));
            {
                let (inbound, wamid, from, text) =
                    (inbound.clone(), wamid.clone(), from.clone(), text.clone());
                db(&conn, move |c| {
                    c.execute(
                        "INSERT INTO messages (id, wamid, direction, customer, body, status)
                         VALUES (?1, ?2, 'inbound', ?3, ?4, 'received')",
                        params![inbound, wamid, from, text],
                    )
                    .expect("inbound")
                })
                .await;
            }
            http.post(format!("{standin}/{number}/messages"))
                .json(&json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid}))
                .send()
                .await
                .expect("mark read");
            let reply = if text.to_lowercase().contains("hours") {
                "9 to 5"
            } else {
                "A person will answer soon."
            };
            {
                let (answer, inbound, from) = (answer.clone(), inbound.clone(), from.clone());
                db(&conn, move |c| {
                    c.execute(
                        "INSERT INTO messages (id, direction, customer, body, status, reply_to)
                         VALUES (?1, 'outbound', ?2, ?3, 'sending', ?4)",
                        params![answer, from, reply, inbound],
                    )
                    .expect("answer")
                })
                .await;
            }
            let accepted: Value = http
                .post(format!("{standin}/{number}/messages"))
                .json(
                    &json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                    "to": format!("+{from}"), "type": "text", "text": {"body": reply},
                    "context": {"message_id": wamid}}),
                )
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("answer json");
            let out = accepted["messages"][0]["id"]
                .as_str()
                .expect("wamid")
                .to_owned();
            db(&conn, move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .expect("begin");
                tx.execute(
                    "UPDATE messages SET status = 'sent', wamid = ?1 WHERE id = ?2",
                    params![out, answer],
                )
                .expect("sent");
                tx.execute(
                    "UPDATE messages SET status = 'answered' WHERE id = ?1",
                    [inbound],
                )
                .expect("answered");
                tx.execute("UPDATE jobs SET state = 'done' WHERE id = ?1", [job])
                    .expect("done");
                tx.commit().expect("commit");
            })
            .await;
            sent += 1;
        }
    }
}

#[tokio::main]
async fn main() {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let path = env("DB", "/tmp/bare-workers.db");
    let standin = env("STANDIN", "http://127.0.0.1:18090/v25.0");
    let numbers = env("NUMBER", "100000000000000");
    let numbers: Vec<&str> = numbers.split(',').collect();
    let jobs: usize = env("JOBS", "10000").parse().expect("JOBS");
    let customers: usize = env("CUSTOMERS", "1000").parse().expect("CUSTOMERS");
    let workers: usize = env("WORKERS", "4").parse().expect("WORKERS");
    setup(&path, &numbers, jobs, customers);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let conn = Arc::new(Mutex::new(open(&path)));
            tokio::spawn(work(conn, http.clone(), standin.clone()))
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await.expect("worker");
    }
    let took = started.elapsed().as_secs_f64();
    println!("{:.0} {jobs} {sent}", jobs as f64 / took);
}
