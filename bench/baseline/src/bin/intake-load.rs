//! Load for the webhook intake: `CONNECTIONS` keep-alive connections each POST signed deliveries
//! of one new customer message (a new `wamid` every time, so every delivery is stored) for
//! `SECONDS`, one request at a time per connection. Bodies and signatures are made before the
//! clock starts. Prints `requests_per_second p99_ms ok non_200`.
//!
//! Environment: `ADDRESS` (host:port), `META_APP_SECRET`, `PHONE_NUMBER_ID` (one, or several
//! separated by commas: deliveries go to each in turn), `SECONDS` (10), `CONNECTIONS` (32),
//! `PREFIX` (makes this run's wamids differ from another run's), `CUSTOMERS` (1: every delivery
//! from one customer; N: N customers writing in turn).

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

fn signed(secret: &[u8], number: &str, wamid: &str, from: &str) -> (String, String) {
    let body = bench_baseline::delivery(number, wamid, from);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (body, format!("sha256={hex}"))
}

/// Reads one HTTP/1.1 answer from `stream`; returns its status.
async fn read_answer(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<u16> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            while buffer.len() < total {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            buffer.drain(..total);
            return Ok(status);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::main]
async fn main() {
    use tokio::io::AsyncWriteExt;
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let address = env("ADDRESS", "127.0.0.1:18081");
    let secret = env("META_APP_SECRET", "bench").into_bytes();
    let numbers: Vec<String> = env("PHONE_NUMBER_ID", "106540352242922")
        .split(',')
        .map(str::to_owned)
        .collect();
    let seconds: u64 = env("SECONDS", "10").parse().expect("SECONDS");
    let connections: usize = env("CONNECTIONS", "32").parse().expect("CONNECTIONS");
    let prefix = env("PREFIX", "run");
    let customers: usize = env("CUSTOMERS", "1").parse().expect("CUSTOMERS");
    // Enough requests for 100,000 deliveries a second; each connection takes its own share.
    let per_connection = (100_000 * seconds as usize) / connections + 1;
    let mut prepared = Vec::new();
    for c in 0..connections {
        let requests: Vec<Vec<u8>> = (0..per_connection)
            .map(|i| {
                let k = c * per_connection + i;
                let from = bench_baseline::customer(k, customers);
                let wamid = format!("wamid.{prefix}.{c}.{i}");
                let (body, signature) = signed(&secret, &numbers[k % numbers.len()], &wamid, &from);
                format!(
                    "POST /webhooks/whatsapp HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
                     x-hub-signature-256: {signature}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            })
            .collect();
        prepared.push(requests);
    }
    let mut tasks = Vec::new();
    let start_at = Instant::now() + Duration::from_millis(300);
    for requests in prepared {
        let address = address.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            tokio::time::sleep_until(start_at.into()).await;
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut latencies = Vec::new();
            let (mut ok, mut other) = (0u64, 0u64);
            let mut buffer = Vec::with_capacity(8192);
            for request in requests {
                if Instant::now() >= deadline {
                    break;
                }
                let started = Instant::now();
                stream.write_all(&request).await.expect("send");
                match read_answer(&mut stream, &mut buffer).await {
                    Ok(200) => ok += 1,
                    Ok(_) => other += 1,
                    Err(_) => {
                        other += 1;
                        break;
                    }
                }
                latencies.push(started.elapsed().as_micros() as u64);
            }
            (latencies, ok, other)
        }));
    }
    let mut all = Vec::new();
    let (mut ok, mut other) = (0, 0);
    for task in tasks {
        let (latencies, o, n) = task.await.expect("task");
        all.extend(latencies);
        ok += o;
        other += n;
    }
    all.sort_unstable();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "{:.0} {p99:.2} {ok} {other}",
        all.len() as f64 / seconds as f64
    );
}
