//! The manager's event sets under load: ingest throughput of 1,000,000
//! events of about 300 bytes in NDJSON batches of 1,000 through HTTP, the
//! latency of full-text and field queries over them, the disk bytes per
//! event, and the manager's CPU time and peak memory.
//!
//! Run it with `cargo bench --bench event_sets` (`-- --events N` for
//! another size, `-- --senders N` for another number of concurrent
//! senders).

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{cpu_seconds, status_kib};

const BIN: &str = env!("CARGO_BIN_EXE_datascale");
const ADMIN: &str = "bench-admin-token";
const WORKER: &str = "bench-worker-token";
const BATCH: usize = 1_000;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .map_or(default, |n| n.parse().expect("a number"))
}

/// Starts a manager in `dir` and returns it with its API URL.
fn start_manager(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("start")
        .current_dir(dir)
        .env("DATASCALE_SERVICE_MODE", "manager")
        .env("DATASCALE_SERVICE_ADDRESS", "127.0.0.1:0")
        .env("DATASCALE_SERVICE_UI_ADDRESS", "127.0.0.1:0")
        .env("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN)
        .env("DATASCALE_SERVICE_MANAGER_WORKER_TOKEN", WORKER)
        .env("DATASCALE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the manager starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    for line in stdout.lines().map_while(Result::ok) {
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["fields"]["message"] == "DataScale started." {
            let address = event["fields"]["api_address"].as_str().expect("an address");
            return (child, format!("http://{address}"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the manager did not start");
}

/// Event `n`: about 300 bytes, one in a thousand holds the word `timeout`.
fn event(n: usize) -> String {
    let word = if n % 1_000 == 7 { "timeout" } else { "served" };
    json!({
        "timestamp": format!("2026-11-23T{:02}:{:02}:{:02}.{:03}Z", n / 3_600_000 % 24, n / 60_000 % 60, n / 1_000 % 60, n % 1_000),
        "host": format!("worker{}", n % 10),
        "dataflow": "access_logs",
        "source": "nginx",
        "status": if n.is_multiple_of(50) { 500 } else { 200 },
        "message": format!("GET /api/v1/items/{n} HTTP/1.1 request {word} in {} ms by upstream {} for client 10.0.{}.{} agent Mozilla/5.0 (X11; Linux x86_64)", n % 997, n % 7, n % 255, n % 253),
    })
    .to_string()
}

/// The JSON the manager answers to `GET url` with the admin token.
async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("the manager answers")
        .json()
        .await
        .expect("a JSON answer")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 1_000_000);
    let senders = arg(&args, "--senders", 4);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut manager, base) = start_manager(dir.path());
    let pid = manager.id();
    let client = reqwest::Client::new();
    let url = Arc::new(format!("{base}/api/v1/event_sets/bench/events"));

    // The bodies are made before the clock starts.
    let bodies: Vec<String> = (0..events.div_ceil(BATCH))
        .map(|batch| {
            (batch * BATCH..((batch + 1) * BATCH).min(events))
                .map(|n| event(n) + "\n")
                .collect()
        })
        .collect();
    let body_bytes: usize = bodies.iter().map(String::len).sum();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(at) else { return };
                let response = client
                    .post(url.as_str())
                    .bearer_auth(WORKER)
                    .header("Content-Type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the manager answers");
                assert!(response.status().is_success(), "{}", response.status());
            }
        });
    }
    tasks.join_all().await;
    let ingest = started.elapsed();
    let ingest_cpu = cpu_seconds(pid) - cpu_before;

    let mut queries = Vec::new();
    for (label, q) in [
        ("rare term (1 in 1,000)", "timeout"),
        ("common term (every event)", "served"),
        ("term and field", "timeout%20host:worker7"),
        ("field only", "status:500"),
    ] {
        let mut latencies = Vec::new();
        let mut found = 0;
        for _ in 0..30 {
            let begun = Instant::now();
            let url = format!("{base}/api/v1/event_sets/bench/events?q={q}&limit=100");
            let page = get_json(&client, &url).await;
            latencies.push(begun.elapsed());
            found = page["events"].as_array().map_or(0, Vec::len);
        }
        latencies.sort();
        queries.push((
            label,
            found,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
        ));
    }
    let sets = get_json(&client, &format!("{base}/api/v1/event_sets")).await;
    let disk = sets[0]["size_bytes"].as_u64().unwrap_or(0);
    let stored = sets[0]["events"].as_u64().unwrap_or(0);
    let peak_kib = status_kib(pid, "VmHWM:");
    let _ = manager.kill();
    let _ = manager.wait();

    let seconds = ingest.as_secs_f64();
    println!(
        "event sets: {events} events of {:.0} bytes in batches of {BATCH}, {senders} senders",
        body_bytes as f64 / events as f64
    );
    println!(
        "  ingest: {:.2} s, {:.0} events/s (target ≥ 100,000), {:.1} MiB/s, manager {:.1} CPU-s",
        seconds,
        events as f64 / seconds,
        body_bytes as f64 / seconds / (1024.0 * 1024.0),
        ingest_cpu
    );
    assert_eq!(stored, events as u64, "every event was stored");
    for (label, found, p50, p99) in queries {
        println!(
            "  query {label}: p50 {:.1} ms (target < 100 ms), p99 {:.1} ms, {found} events a page",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }
    println!(
        "  disk: {:.1} MiB, {:.0} bytes an event; manager peak RSS {:.1} MiB",
        disk as f64 / (1024.0 * 1024.0),
        disk as f64 / events as f64,
        peak_kib as f64 / 1024.0
    );
    println!("rerun: cargo bench --bench event_sets [-- --events N --senders N]");
}
