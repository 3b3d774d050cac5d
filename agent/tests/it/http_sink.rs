//! The `http` sink against a real HTTP server on a loopback port that
//! records every request: batching, codecs, gzip, headers and auth,
//! retries of 503 and no retry of 400.

use std::{
    collections::VecDeque,
    io::{Read, Write},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode},
};
use serde_json::{Value, json};

use crate::support::{self, home};

/// One request as the server saw it, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    headers: HeaderMap,
    /// The body, gunzipped when it came with `Content-Encoding: gzip`.
    body: Vec<u8>,
    status: StatusCode,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }

    /// The events of a JSON-array or NDJSON body.
    fn events(&self) -> Vec<Value> {
        let text = std::str::from_utf8(&self.body).unwrap();
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(events)) => events,
            _ => text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.events()
            .iter()
            .map(|event| event["id"].as_u64().unwrap())
            .collect()
    }
}

#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 200 once they are used up.
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Recorder {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .expect("the body is gzip");
        plain
    } else {
        body.to_vec()
    };
    let status = recorder.script.lock().unwrap().pop_front().unwrap_or(200);
    let status = StatusCode::from_u16(status).unwrap();
    recorder.received.lock().unwrap().push(Received {
        method,
        headers,
        body,
        status,
    });
    (status, "answer of the test server")
}

/// Starts a recording server on 127.0.0.1:0 that answers `script` first;
/// returns its URL and what it records.
fn serve(script: &[u16]) -> (String, Recorder) {
    let recorder = Recorder::default();
    recorder.script.lock().unwrap().extend(script);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let app = Router::new().fallback(record).with_state(recorder.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (url, recorder)
}

/// Runs `count` parsed demo events into an `http` sink with `conf` to the
/// end; returns the standard error of `datascale run`.
fn run_demo(count: u64, conf: Value) -> String {
    let dir = home();
    let document = json!({
        "name": "to_http",
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": count, "interval_secs": 0}}],
        "pipelines": [{"name": "parse", "type": "remap", "inputs": ["gen"],
                       "conf": {"source": ". = parse_json!(.message)"}}],
        "sinks": [{"name": "out", "type": "http", "inputs": ["parse"], "conf": conf}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let output = support::run(dir.path(), &["run", "--dataflow", &file], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

#[test]
fn batches_by_max_events_into_json_arrays_with_headers_and_bearer_auth() {
    let (url, server) = serve(&[]);
    run_demo(
        250,
        json!({"uri": url, "method": "put", "batch": {"max_events": 100},
               "headers": {"x-team": "blue"},
               "auth": {"strategy": "bearer", "token": "s3cret"}}),
    );
    let received = server.received();
    let sizes: Vec<usize> = received.iter().map(|r| r.events().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let ids: Vec<u64> = received.iter().flat_map(Received::ids).collect();
    assert_eq!(ids, (0..250).collect::<Vec<_>>());
    for request in &received {
        assert_eq!(request.method, Method::PUT);
        assert_eq!(request.header("authorization"), "Bearer s3cret");
        assert_eq!(request.header("x-team"), "blue");
        assert_eq!(request.header("content-type"), "application/json");
    }
}

#[test]
fn gzip_ndjson_bodies_stay_within_max_bytes_and_carry_basic_auth() {
    let (url, server) = serve(&[]);
    run_demo(
        100,
        json!({"uri": url, "encoding": {"codec": "ndjson"}, "compression": "gzip",
               "batch": {"max_bytes": 1000},
               "auth": {"strategy": "basic", "user": "user", "password": "pass"}}),
    );
    let received = server.received();
    assert!(received.len() > 5, "{} requests", received.len());
    for request in &received {
        assert!(request.body.len() <= 1000, "{} bytes", request.body.len());
        assert_eq!(request.header("content-encoding"), "gzip");
        assert_eq!(request.header("content-type"), "application/x-ndjson");
        assert_eq!(request.header("authorization"), "Basic dXNlcjpwYXNz");
    }
    let ids: Vec<u64> = received.iter().flat_map(Received::ids).collect();
    assert_eq!(ids, (0..100).collect::<Vec<_>>());
}

#[test]
fn a_503_is_retried_until_accepted_and_every_event_arrives_once() {
    let (url, server) = serve(&[503, 503]);
    run_demo(10, json!({"uri": url}));
    let received = server.received();
    let statuses: Vec<u16> = received.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [503, 503, 200]);
    let accepted: Vec<u64> = received
        .iter()
        .filter(|r| r.status.is_success())
        .flat_map(Received::ids)
        .collect();
    assert_eq!(accepted, (0..10).collect::<Vec<_>>());
}

#[test]
fn a_400_is_not_retried_and_is_logged_with_the_answer() {
    let (url, server) = serve(&[400]);
    let stderr = run_demo(10, json!({"uri": url}));
    assert_eq!(server.received().len(), 1, "no retry");
    assert!(stderr.contains("400"), "{stderr}");
    assert!(stderr.contains("answer of the test server"), "{stderr}");
}

#[test]
fn a_partial_batch_leaves_after_timeout_secs_as_text() {
    let (url, server) = serve(&[]);
    let dir = home();
    let document = json!({
        "name": "lines",
        "sources": [{"name": "in", "type": "stdin"}],
        "sinks": [{"name": "out", "type": "http", "inputs": ["in"],
                   "conf": {"uri": url, "encoding": {"codec": "text"},
                            "batch": {"timeout_secs": 0.2}}}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let mut child = support::command(dir.path())
        .args(["run", "--dataflow", &file])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    stdin.flush().unwrap();
    support::wait_until(Duration::from_secs(20), "a request", || {
        !server.received().is_empty()
    });
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let received = server.received();
    assert_eq!(received.len(), 1, "sent once, before stdin closed");
    assert_eq!(received[0].body, b"one\ntwo\nthree\n");
    assert_eq!(
        received[0].header("content-type"),
        "text/plain; charset=utf-8"
    );
}

#[test]
fn a_file_source_moves_on_only_after_the_server_accepted() {
    let (url, server) = serve(&[503; 1000]);
    let dir = home();
    let log = dir.path().join("logs/app.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let lines: String = (0..20).map(|n| format!("{{\"id\":{n}}}\n")).collect();
    std::fs::write(&log, lines).unwrap();
    let document = json!({
        "name": "tail_to_http",
        "sources": [{"name": "logs", "type": "file",
                     "conf": {"include": [dir.path().join("logs/*.log").display().to_string()]}}],
        "pipelines": [{"name": "parse", "type": "remap", "inputs": ["logs"],
                       "conf": {"source": ". = parse_json!(.message)"}}],
        "sinks": [{"name": "out", "type": "http", "inputs": ["parse"], "conf": {"uri": url}}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let start = || support::Running {
        child: support::command(dir.path())
            .args(["run", "--dataflow", &file])
            .env("DATASCALE_SERVICE_SHUTDOWN_TIMEOUT_SECS", "1")
            .spawn()
            .unwrap(),
    };

    let refused = start();
    support::wait_until(Duration::from_secs(20), "a refused request", || {
        !server.received().is_empty()
    });
    refused.stop();
    assert!(server.received().iter().all(|r| r.status.as_u16() == 503));

    server.script.lock().unwrap().clear();
    let accepted_ids = || -> Vec<u64> {
        server
            .received()
            .iter()
            .filter(|r| r.status.is_success())
            .flat_map(Received::ids)
            .collect()
    };
    let accepting = start();
    support::wait_until(Duration::from_secs(20), "20 accepted events", || {
        accepted_ids().len() >= 20
    });
    accepting.stop();
    assert_eq!(accepted_ids(), (0..20).collect::<Vec<_>>());
}
