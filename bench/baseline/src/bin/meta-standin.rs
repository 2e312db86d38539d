//! A local stand-in for the part of Meta's Graph API a sync uses, answering at once: the WABA node,
//! its `subscribed_apps`, and `GET /{WABA}/phone_numbers` in pages (`limit`, at most 100, and an
//! `after` cursor, with `paging.next` while more follow), as the reference describes them.
//! `POST /__change?percent=N` changes the quality rating of the first N % of the numbers.
//! `POST /{PHONE-NUMBER-ID}/messages` takes a message (a new `wamid`) or a read receipt
//! (`success`); `GET /__sent` says how many messages it took.
//!
//! Environment: `BIND_ADDR`, `NUMBERS` (default 10000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use actix_web::{get, post, web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::{json, Value};

struct Numbers(Mutex<Vec<Value>>);

fn number(i: usize) -> Value {
    json!({
        "id": format!("1{i:014}"),
        "display_phone_number": format!("+1 555-{:03}-{:04}", i / 10000, i % 10000),
        "verified_name": format!("Jaspers Market {i}"),
        "quality_rating": "GREEN",
        "platform_type": "CLOUD_API",
        "status": "CONNECTED",
        "code_verification_status": "VERIFIED",
        "name_status": "APPROVED",
        "whatsapp_business_manager_messaging_limit": "TIER_1K",
        "throughput": {"level": "STANDARD"},
        "account_mode": "LIVE",
        "is_on_biz_app": false
    })
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    after: Option<String>,
}

#[get("/{version}/{waba}/phone_numbers")]
async fn phone_numbers(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    page: web::Query<Page>,
    numbers: web::Data<Numbers>,
) -> HttpResponse {
    let (version, waba_id) = path.into_inner();
    let all = numbers.0.lock().expect("numbers");
    let start: usize = page
        .after
        .as_deref()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let end = (start + page.limit.unwrap_or(25).clamp(1, 100)).min(all.len());
    let mut paging = json!({"cursors": {"before": start.to_string(), "after": end.to_string()}});
    if end < all.len() {
        let host = req.connection_info().host().to_owned();
        paging["next"] = json!(format!(
            "http://{host}/{version}/{waba_id}/phone_numbers?after={end}"
        ));
    }
    HttpResponse::Ok().json(json!({"data": &all[start.min(end)..end], "paging": paging}))
}

#[get("/{version}/{waba}")]
async fn waba_node(path: web::Path<(String, String)>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"id": path.1, "name": "Bench WABA"}))
}

#[post("/{version}/{waba}/subscribed_apps")]
async fn subscribe() -> HttpResponse {
    HttpResponse::Ok().json(json!({"success": true}))
}

#[derive(Deserialize)]
struct Change {
    percent: usize,
}

#[post("/__change")]
async fn change(query: web::Query<Change>, numbers: web::Data<Numbers>) -> HttpResponse {
    let mut all = numbers.0.lock().expect("numbers");
    let count = all.len() * query.percent / 100;
    for n in all.iter_mut().take(count) {
        let next = if n["quality_rating"] == "GREEN" {
            "YELLOW"
        } else {
            "GREEN"
        };
        n["quality_rating"] = json!(next);
    }
    HttpResponse::Ok().json(json!({"changed": count}))
}

/// Messages taken by `POST /{phone}/messages`.
static SENT: AtomicU64 = AtomicU64::new(0);

#[post("/{version}/{phone}/messages")]
async fn messages(body: web::Json<Value>) -> HttpResponse {
    if body.get("status").and_then(Value::as_str) == Some("read") {
        return HttpResponse::Ok().json(json!({"success": true}));
    }
    let n = SENT.fetch_add(1, Ordering::Relaxed);
    let to = body.get("to").cloned().unwrap_or(Value::Null);
    HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": format!("wamid.standin.{n}")}]
    }))
}

#[get("/__sent")]
async fn sent() -> HttpResponse {
    HttpResponse::Ok().json(json!({"sent": SENT.load(Ordering::Relaxed)}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let count: usize = std::env::var("NUMBERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:18090".into());
    let numbers = web::Data::new(Numbers(Mutex::new((0..count).map(number).collect())));
    HttpServer::new(move || {
        App::new()
            .app_data(numbers.clone())
            .service(change)
            .service(sent)
            .service(messages)
            .service(phone_numbers)
            .service(subscribe)
            .service(waba_node)
    })
    .workers(1)
    .bind(bind)?
    .run()
    .await
}
