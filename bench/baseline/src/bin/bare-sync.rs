//! The bare baseline of a sync: reqwest and rusqlite, no layers. Reads every page of a WABA's
//! numbers from the Meta stand-in (pages of 100, one after another, as the service does), compares
//! them with what its SQLite file holds, and writes only what changed, 500 changes to a
//! transaction; prints the time taken and what changed.
//!
//! Usage: bare-sync <graph base URL, e.g. http://127.0.0.1:18090/v25.0> <WABA id> <SQLite file>

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rusqlite::{params, Connection};
use serde_json::Value;

const FIELDS: [&str; 10] = [
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "platform_type",
    "status",
    "code_verification_status",
    "name_status",
    "whatsapp_business_manager_messaging_limit",
    "account_mode",
    "is_on_biz_app",
];

fn facts(node: &Value) -> Vec<String> {
    let mut out: Vec<String> = FIELDS
        .iter()
        .map(|f| match &node[*f] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        })
        .collect();
    out.push(
        node["throughput"]["level"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (base, waba, db) = (&args[1], &args[2], &args[3]);
    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut listed: Vec<(String, Vec<String>)> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/{waba}/phone_numbers?limit=100");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: Value = http
            .get(&url)
            .bearer_auth("token")
            .send()
            .await?
            .json()
            .await?;
        for node in page["data"].as_array().into_iter().flatten() {
            listed.push((
                node["id"].as_str().unwrap_or_default().to_owned(),
                facts(node),
            ));
        }
        match (
            page["paging"]["next"].as_str(),
            page["paging"]["cursors"]["after"].as_str(),
        ) {
            (Some(_), Some(cursor)) => after = Some(cursor.to_owned()),
            _ => break,
        }
    }
    let fetched = started.elapsed();

    let mut conn = Connection::open(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS numbers (meta_id TEXT PRIMARY KEY, facts TEXT NOT NULL,
             removed_at TEXT, updated_at TEXT NOT NULL);",
    )?;
    let stored: HashMap<String, (String, bool)> = {
        let mut statement =
            conn.prepare("SELECT meta_id, facts, removed_at IS NOT NULL FROM numbers")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut changes: Vec<(String, String, bool)> = Vec::new(); // (id, facts, new)
    let seen: HashSet<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    for (id, facts) in &listed {
        let facts = facts.join("\u{1f}");
        match stored.get(id) {
            Some((old, removed)) if *old == facts && !removed => {}
            Some(_) => changes.push((id.clone(), facts, false)),
            None => changes.push((id.clone(), facts, true)),
        }
    }
    let gone: Vec<&String> = stored
        .iter()
        .filter(|(id, (_, removed))| !removed && !seen.contains(id.as_str()))
        .map(|(id, _)| id)
        .collect();
    let (added, updated) = (
        changes.iter().filter(|c| c.2).count(),
        changes.iter().filter(|c| !c.2).count(),
    );
    for chunk in changes.chunks(500) {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO numbers (meta_id, facts, updated_at) VALUES (?1, ?2, datetime('now'))",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE numbers SET facts = ?2, removed_at = NULL, updated_at = datetime('now') WHERE meta_id = ?1",
            )?;
            for (id, facts, new) in chunk {
                if *new {
                    insert.execute(params![id, facts])?;
                } else {
                    update.execute(params![id, facts])?;
                }
            }
        }
        tx.commit()?;
    }
    for chunk in gone.chunks(500) {
        let tx = conn.transaction()?;
        for id in chunk {
            tx.execute(
                "UPDATE numbers SET removed_at = datetime('now') WHERE meta_id = ?1",
                [id],
            )?;
        }
        tx.commit()?;
    }
    println!(
        "{:.0} ms (fetch {:.0} ms) added {added} updated {updated} removed {}",
        started.elapsed().as_secs_f64() * 1000.0,
        fetched.as_secs_f64() * 1000.0,
        gone.len()
    );
    Ok(())
}
