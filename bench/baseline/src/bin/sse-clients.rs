//! Load for a live stream: opens `CLIENTS` idle Server-Sent Events connections (`GET STREAM_PATH`
//! with a bearer token), then `ROUNDS` times makes one change with `TRIGGER_METHOD TRIGGER_PATH`
//! (bodies from `TRIGGER_BODIES`, `|`-separated, used in turn) and times how long each client
//! takes to receive a frame containing `WAIT_FOR`, from just before the change was sent. Also
//! reads the server's resident memory (`SERVER_PID`) before and after the clients connect.
//! Prints one line per round, `round p50_ms p99_ms max_ms received clients`, then
//! `memory_kib_per_client N`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Barrier};

fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let env = |n: &str, d: &str| std::env::var(n).unwrap_or_else(|_| d.to_owned());
    let address = env("ADDRESS", "127.0.0.1:18081");
    let token = env("TOKEN", "");
    let clients: usize = env("CLIENTS", "1000").parse().unwrap();
    let rounds: usize = env("ROUNDS", "5").parse().unwrap();
    let stream_path = env("STREAM_PATH", "/api/v1/events");
    let method = env("TRIGGER_METHOD", "PUT");
    let trigger_path = env("TRIGGER_PATH", "/trigger");
    let bodies: Vec<String> = env("TRIGGER_BODIES", "{}")
        .split('|')
        .map(str::to_owned)
        .collect();
    let wait_for = env("WAIT_FOR", "event:");
    let server_pid = env("SERVER_PID", "");

    let before = rss_kib(&server_pid);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let ready = Arc::new(Barrier::new(clients + 1));
    for c in 0..clients {
        let (address, token, path, wait_for, tx, ready) = (
            address.clone(),
            token.clone(),
            stream_path.clone(),
            wait_for.clone(),
            tx.clone(),
            ready.clone(),
        );
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect");
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut seen = String::new();
            let mut chunk = vec![0u8; 4096];
            // The answer's head first.
            loop {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the server closed the stream");
                seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
                if let Some(end) = seen.find("\r\n\r\n") {
                    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
                    seen.drain(..end + 4);
                    break;
                }
            }
            ready.wait().await;
            loop {
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
                while let Some(at) = seen.find(&wait_for) {
                    let _ = tx.send((c, Instant::now()));
                    seen.drain(..at + wait_for.len());
                }
                if seen.len() > 65536 {
                    seen.clear();
                }
            }
        });
    }
    ready.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(&server_pid);
    let client = reqwest::Client::new();
    for round in 0..rounds {
        while rx.try_recv().is_ok() {}
        let body = bodies[round % bodies.len()].clone();
        let start = Instant::now();
        let response = client
            .request(
                method.parse().unwrap(),
                format!("http://{address}{trigger_path}"),
            )
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("trigger");
        assert!(
            response.status().is_success(),
            "trigger: {}",
            response.status()
        );
        let mut latencies = Vec::with_capacity(clients);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while latencies.len() < clients {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((_, at))) => {
                    latencies.push(at.duration_since(start).as_secs_f64() * 1000.0)
                }
                _ => break,
            }
        }
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{} {:.1} {:.1} {:.1} {} {}",
            round + 1,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            latencies.len(),
            clients
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "memory_kib_per_client {:.1}",
            (a.saturating_sub(b)) as f64 / clients as f64
        ),
        _ => println!("memory_kib_per_client n/a"),
    }
}
