//! The bare baseline of the numbers table: actix-web with rusqlite or tokio-postgres, no layers.
//! It does the work the service does for `GET /api/v1/phone-numbers?limit=N` and
//! `GET /api/v1/phone-numbers/{id}`: checks the HS256 bearer token, reads the same rows and columns
//! from the same database (with the inbound agent's name and the register calls of the last 72
//! hours), and writes the same JSON. Each actix worker keeps its own connection: SQLite is read on
//! the worker's thread, PostgreSQL through one pipelined client a worker, prepared once.
//!
//! Environment: `DB` (an SQLite file) or `PG_URL` (a PostgreSQL URL, read without TLS),
//! `AUTH_JWT_SECRET`, `BIND_ADDR`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use actix_web::{get, web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::NaiveDateTime;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use tokio_postgres::{NoTls, Statement};

#[derive(Deserialize)]
struct Claims {
    #[allow(dead_code)]
    sub: String,
    workspace_id: String,
    #[allow(dead_code)]
    role: String,
}

enum Database {
    Sqlite(String),
    Postgres(String),
}

struct Shared {
    key: DecodingKey,
    validation: Validation,
    db: Database,
}

/// A worker's PostgreSQL client and its statements, prepared when it first connects.
struct Pg {
    client: tokio_postgres::Client,
    page: Statement,
    single: Statement,
    calls: Statement,
}

thread_local! {
    static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) };
    static PG: RefCell<Vec<Rc<Pg>>> = const { RefCell::new(Vec::new()) };
    static TURN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn with_conn<T>(
    path: &str,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    CONN.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let conn = Connection::open(path)?;
            conn.execute_batch("PRAGMA busy_timeout = 10000;")?;
            *slot = Some(conn);
        }
        f(slot.as_ref().expect("opened"))
    })
}

fn workspace(req: &HttpRequest, shared: &Shared) -> Option<String> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?;
    decode::<Claims>(token, &shared.key, &shared.validation)
        .ok()
        .map(|t| t.claims.workspace_id)
}

const COLUMNS: &str = "p.id, p.meta_phone_number_id, p.display_phone_number, p.verified_name, \
    p.platform_type, p.quality_rating, p.status, p.code_verification_status, p.name_status, \
    p.messaging_limit, p.throughput_level, p.account_mode, p.is_on_biz_app, p.inbound_agent_id, \
    a.name, p.registration_state, p.registration_last_error, p.registration_last_error_code, \
    p.registration_last_attempt_at, p.whatsapp_account_id, p.last_synced_at, p.removed_at, \
    p.created_at, p.updated_at, p.display_digits, p.quality_alert";

/// `2026-11-26 12:00:00.123` as RFC 3339 in UTC.
fn time(value: Option<String>) -> Option<String> {
    value.map(|t| format!("{}Z", t.replacen(' ', "T", 1)))
}

/// A PostgreSQL `timestamp` (UTC) as RFC 3339.
fn pg_time(value: Option<NaiveDateTime>) -> Option<String> {
    value.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())
}

/// One row as read, before the JSON is written.
struct Raw {
    id: String,
    meta_id: String,
    display: String,
    name: Option<String>,
    platform: String,
    quality: String,
    texts: [Option<String>; 6],
    on_biz_app: bool,
    agent: Option<(String, String)>,
    state: String,
    last_error: Option<String>,
    last_error_code: Option<i64>,
    /// RFC 3339: last attempt, last synced, removed, updated.
    times: [Option<String>; 4],
    account: String,
    created_at: Option<String>,
    digits: String,
    alert: Option<String>,
}

/// A [`Raw`] from a row of `COLUMNS`, read by `$get` (rusqlite's `get`, tokio-postgres'
/// `try_get`), its timestamps written as RFC 3339 by `$time`.
macro_rules! raw_from {
    ($row:expr, $get:ident, $time:ident) => {{
        let row = $row;
        let agent_id: Option<String> = row.$get(13)?;
        let agent_name: Option<String> = row.$get(14)?;
        Ok(Raw {
            id: row.$get(0)?,
            meta_id: row.$get(1)?,
            display: row.$get(2)?,
            name: row.$get(3)?,
            platform: row.$get(4)?,
            quality: row.$get(5)?,
            texts: [
                row.$get(6)?,
                row.$get(7)?,
                row.$get(8)?,
                row.$get(9)?,
                row.$get(10)?,
                row.$get(11)?,
            ],
            on_biz_app: row.$get(12)?,
            agent: agent_id.zip(agent_name),
            state: row.$get(15)?,
            last_error: row.$get(16)?,
            last_error_code: row.$get(17)?,
            times: [
                $time(row.$get(18)?),
                $time(row.$get(20)?),
                $time(row.$get(21)?),
                $time(row.$get(23)?),
            ],
            account: row.$get(19)?,
            created_at: $time(row.$get(22)?),
            digits: row.$get(24)?,
            alert: row.$get(25)?,
        })
    }};
}

fn raw(row: &Row) -> rusqlite::Result<Raw> {
    raw_from!(row, get, time)
}

fn raw_pg(row: &tokio_postgres::Row) -> Result<Raw, tokio_postgres::Error> {
    raw_from!(row, try_get, pg_time)
}

#[derive(Serialize)]
struct Agent {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct Registration {
    state: &'static str,
    last_error: Option<String>,
    last_error_code: Option<i64>,
    retryable: Option<bool>,
    last_attempt_at: Option<String>,
    attempts_in_window: i64,
    max_attempts: i64,
    calls_per_click: i64,
    next_attempt_at: Option<String>,
    blocked_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Item {
    id: String,
    phone_number_id: String,
    display_phone_number: String,
    verified_name: Option<String>,
    platform_type: String,
    quality_rating: String,
    quality_alert: Option<Alert>,
    status: Option<String>,
    code_verification_status: Option<String>,
    name_status: Option<String>,
    messaging_limit: Option<String>,
    throughput_level: Option<String>,
    account_mode: Option<String>,
    is_on_biz_app: bool,
    inbound_agent: Option<Agent>,
    registration: Registration,
    can_assign_inbound_agent: bool,
    can_register: bool,
    can_use_as_outbound: bool,
    whatsapp_account_id: String,
    last_synced_at: Option<String>,
    removed_at: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Alert {
    since: String,
    reason: String,
    previous_rating: String,
}

#[derive(Serialize)]
struct Page {
    data: Vec<Item>,
    next_cursor: Option<String>,
}

fn state(text: &str) -> &'static str {
    match text {
        "registered" => "registered",
        "failed" => "failed",
        _ => "not_registered",
    }
}

fn item(r: Raw, calls: &HashMap<String, i64>) -> Item {
    let [status, code_status, name_status, limit, throughput, mode] = r.texts;
    let [last_attempt, synced, removed, updated] = r.times;
    let needs_register =
        r.platform != "CLOUD_API" || throughput.as_deref() == Some("NOT_APPLICABLE");
    let live = removed.is_none();
    let usable = live && r.platform == "CLOUD_API" && (r.on_biz_app || !needs_register);
    let can_register = live && !r.on_biz_app && needs_register;
    let attempts = calls.get(&r.id).copied().unwrap_or(0);
    let failed = r.state == "failed";
    Item {
        registration: Registration {
            state: if usable && r.state == "not_registered" {
                "registered"
            } else {
                state(&r.state)
            },
            last_error: r.last_error,
            last_error_code: if failed { r.last_error_code } else { None },
            retryable: failed.then_some(true),
            last_attempt_at: last_attempt,
            attempts_in_window: attempts,
            max_attempts: 10,
            calls_per_click: 3,
            next_attempt_at: None,
            blocked_reason: (attempts >= 10).then_some("attempt_limit"),
        },
        id: r.id,
        phone_number_id: r.meta_id,
        display_phone_number: r.display,
        verified_name: r.name,
        platform_type: r.platform,
        quality_rating: r.quality,
        quality_alert: r
            .alert
            .and_then(|a| serde_json::from_str::<Alert>(&a).ok())
            .map(|a| Alert {
                since: format!("{}Z", a.since),
                ..a
            }),
        status,
        code_verification_status: code_status,
        name_status,
        messaging_limit: limit,
        throughput_level: throughput,
        account_mode: mode,
        is_on_biz_app: r.on_biz_app,
        inbound_agent: r.agent.map(|(id, name)| Agent { id, name }),
        can_assign_inbound_agent: usable,
        can_register,
        can_use_as_outbound: usable,
        whatsapp_account_id: r.account,
        last_synced_at: synced,
        removed_at: removed,
        created_at: r.created_at,
        updated_at: updated,
    }
}

/// Register calls of the last 72 hours per number.
fn calls(conn: &Connection, ids: &[String]) -> rusqlite::Result<HashMap<String, i64>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let sql = format!(
        "SELECT number_id, COUNT(*) FROM registration_attempts WHERE number_id IN ({marks}) \
         AND created_at > datetime('now', '-72 hours') GROUP BY number_id"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(ids.iter()), |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

#[derive(Deserialize)]
struct Query {
    limit: Option<usize>,
}

const PAGE_SQL: &str = "FROM phone_numbers p LEFT JOIN agents a ON a.id = p.inbound_agent_id \
     WHERE p.workspace_id = $1 AND p.removed_at IS NULL ORDER BY p.display_digits, p.id LIMIT $2";
const ONE_SQL: &str = "FROM phone_numbers p LEFT JOIN agents a ON a.id = p.inbound_agent_id \
     WHERE p.workspace_id = $1 AND p.id = $2";

/// The page: up to `limit` rows and the cursor after them, with their register calls.
fn page(mut rows: Vec<Raw>, limit: usize, calls: &HashMap<String, i64>) -> Page {
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        let last = &rows[limit - 1];
        format!("{}.{}", hex(&last.digits), last.id)
    });
    Page {
        data: rows.into_iter().map(|r| item(r, calls)).collect(),
        next_cursor: next,
    }
}

fn ids(rows: &[Raw], limit: usize) -> Vec<String> {
    rows.iter().take(limit).map(|r| r.id.clone()).collect()
}

fn sqlite_page(path: &str, ws: &str, limit: usize) -> rusqlite::Result<Page> {
    with_conn(path, |conn| {
        let sql = format!("SELECT {COLUMNS} {}", PAGE_SQL.replace('$', "?"));
        let rows: Vec<Raw> = {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map(rusqlite::params![ws, limit as i64 + 1], raw)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let calls = calls(conn, &ids(&rows, limit))?;
        Ok(page(rows, limit, &calls))
    })
}

fn sqlite_one(path: &str, ws: &str, id: &str) -> rusqlite::Result<Option<Item>> {
    with_conn(path, |conn| {
        let calls = calls(conn, &[id.to_owned()])?;
        let sql = format!("SELECT {COLUMNS} {}", ONE_SQL.replace('$', "?"));
        let mut statement = conn.prepare_cached(&sql)?;
        let found = statement
            .query_row(rusqlite::params![ws, id], raw)
            .optional()?;
        Ok(found.map(|r| item(r, &calls)))
    })
}

/// Clients a worker keeps (`PG_CLIENTS`, default 4), taken in turn.
fn client_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::env::var("PG_CLIENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4)
            .max(1)
    })
}

/// One of this worker's clients, in turn; each is connected and prepared on first use.
async fn pg(url: &str) -> Result<Rc<Pg>, tokio_postgres::Error> {
    let turn = TURN.with(|t| {
        let turn = t.get();
        t.set(turn.wrapping_add(1));
        turn
    });
    let have = PG.with(|cell| {
        let clients = cell.borrow();
        (clients.len() >= client_count()).then(|| clients[turn % clients.len()].clone())
    });
    if let Some(pg) = have {
        return Ok(pg);
    }
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    actix_web::rt::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("postgres connection: {err}");
        }
    });
    let page = client
        .prepare(&format!("SELECT {COLUMNS} {PAGE_SQL}"))
        .await?;
    let single = client
        .prepare(&format!("SELECT {COLUMNS} {ONE_SQL}"))
        .await?;
    let calls = client
        .prepare(
            "SELECT number_id, COUNT(*) FROM registration_attempts \
             WHERE number_id = ANY($1) AND created_at > $2 GROUP BY number_id",
        )
        .await?;
    let pg = Rc::new(Pg {
        client,
        page,
        single,
        calls,
    });
    PG.with(|cell| cell.borrow_mut().push(pg.clone()));
    Ok(pg)
}

async fn pg_calls(pg: &Pg, ids: &[String]) -> Result<HashMap<String, i64>, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let since = chrono::Utc::now().naive_utc() - chrono::Duration::hours(72);
    let rows = pg.client.query(&pg.calls, &[&ids, &since]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

async fn pg_page(url: &str, ws: &str, limit: usize) -> Result<Page, tokio_postgres::Error> {
    let pg = pg(url).await?;
    let rows = pg
        .client
        .query(&pg.page, &[&ws, &(limit as i64 + 1)])
        .await?;
    let rows = rows.iter().map(raw_pg).collect::<Result<Vec<_>, _>>()?;
    let calls = pg_calls(&pg, &ids(&rows, limit)).await?;
    Ok(page(rows, limit, &calls))
}

async fn pg_one(url: &str, ws: &str, id: &str) -> Result<Option<Item>, tokio_postgres::Error> {
    let pg = pg(url).await?;
    let calls = pg_calls(&pg, &[id.to_owned()]).await?;
    let found = pg.client.query_opt(&pg.single, &[&ws, &id]).await?;
    Ok(match found {
        Some(row) => Some(item(raw_pg(&row)?, &calls)),
        None => None,
    })
}

#[get("/api/v1/phone-numbers")]
async fn list(
    req: HttpRequest,
    query: web::Query<Query>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let Some(ws) = workspace(&req, &shared) else {
        return HttpResponse::Unauthorized().finish();
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 100);
    let result = match &shared.db {
        Database::Sqlite(path) => sqlite_page(path, &ws, limit).map_err(|e| e.to_string()),
        Database::Postgres(url) => pg_page(url, &ws, limit).await.map_err(|e| e.to_string()),
    };
    match result {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(err) => HttpResponse::InternalServerError().body(err),
    }
}

#[get("/api/v1/phone-numbers/{id}")]
async fn one(req: HttpRequest, id: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let Some(ws) = workspace(&req, &shared) else {
        return HttpResponse::Unauthorized().finish();
    };
    let result = match &shared.db {
        Database::Sqlite(path) => sqlite_one(path, &ws, &id).map_err(|e| e.to_string()),
        Database::Postgres(url) => pg_one(url, &ws, &id).await.map_err(|e| e.to_string()),
    };
    match result {
        Ok(Some(body)) => HttpResponse::Ok().json(body),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(err) => HttpResponse::InternalServerError().body(err),
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is required"));
    let (secret, bind) = (env("AUTH_JWT_SECRET"), env("BIND_ADDR"));
    let db = match (std::env::var("DB"), std::env::var("PG_URL")) {
        (Ok(path), _) => Database::Sqlite(path),
        (_, Ok(url)) => Database::Postgres(url),
        _ => panic!("DB (an SQLite file) or PG_URL is required"),
    };
    let shared = web::Data::new(Shared {
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation: Validation::new(Algorithm::HS256),
        db,
    });
    HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .service(list)
            .service(one)
    })
    .bind(bind)?
    .run()
    .await
}
