//! Dataflows through the API of a standalone node: a PUT stores one and the
//! local worker runs it before the answer leaves, `/metrics` counts its
//! components, a change restarts only that dataflow, and a change that
//! cannot start leaves the running version in place.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{self, Api, home, start};

/// Most events a `file` source reads past the last one delivered.
const UNSAVED_EVENTS_AT_MOST: f64 = 4_096.0;

/// PUTs a dataflow of the default group that did not exist: 201.
async fn create(api: &Api, document: &Value) -> Value {
    let name = document["name"].as_str().unwrap();
    let answer = api
        .put(
            &format!("/api/v1/groups/default/dataflows/{name}"),
            document,
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body
}

/// The text of `/metrics`.
async fn metrics(api: &Api) -> String {
    let answer = api.get("/metrics").await;
    assert_eq!(answer.status, 200);
    answer.body.as_str().unwrap().to_owned()
}

fn write_lines(path: &Path, range: std::ops::Range<u64>) {
    support::append_lines(
        path,
        range.map(|n| format!("{{\"n\":{n},\"text\":\"line {n}\"}}")),
    );
}

fn tail_to_file(name: &str, dir: &Path, log: &str, out: &str) -> Value {
    json!({
        "name": name,
        "sources": [{"name": "logs", "type": "file",
                     "conf": {"include": [dir.join(log).display().to_string()],
                              "glob_minimum_cooldown_ms": 100}}],
        "pipelines": [{"name": "parse", "type": "remap", "inputs": ["logs"],
                       "conf": {"source": ". = parse_json!(.message)\n.added = \"yes\""}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["parse"],
                   "conf": {"path": dir.join(out).display().to_string()}}]
    })
}

/// Writes `lines` lines to `logs/a.log`, starts the `tail` dataflow on
/// `logs/*.log` into `out.json`, and waits until every line arrived.
async fn start_tail(api: &Api, dir: &Path, lines: u64) -> (Value, PathBuf) {
    write_lines(&dir.join("logs/a.log"), 0..lines);
    let tail = tail_to_file("tail", dir, "logs/*.log", "out.json");
    create(api, &tail).await;
    let out = dir.join("out.json");
    support::wait_until(Duration::from_secs(30), "the first lines", || {
        counts(&out).len() as u64 == lines
    });
    (tail, out)
}

/// How many times each `n` arrived in `out`.
fn counts(out: &Path) -> std::collections::BTreeMap<u64, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for event in support::json_lines(out) {
        assert_eq!(event["added"], "yes", "{event}");
        *counts.entry(event["n"].as_u64().unwrap()).or_default() += 1;
    }
    counts
}

fn assert_exactly_once(out: &Path, total: u64) {
    let counts = counts(out);
    assert_eq!(counts.len() as u64, total, "distinct lines");
    assert!(counts.values().all(|c| *c == 1), "a line arrived twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_dataflow_delivers_every_line_once_and_shows_in_metrics() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    write_lines(&dir.path().join("logs/app.log"), 0..100_000);
    let document = tail_to_file("tail", dir.path(), "logs/*.log", "out.json");
    let support::Answer { status, body, .. } = api
        .put("/api/v1/groups/default/dataflows/tail", &document)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "created", "{body}");
    let revision = body["revision"].as_u64().unwrap();
    assert_eq!(body["status"]["revision"], revision, "it runs: {body}");
    let out = dir.path().join("out.json");
    support::wait_until(Duration::from_secs(60), "100,000 lines", || {
        counts(&out).len() == 100_000
    });
    assert_exactly_once(&out, 100_000);

    let metrics = metrics(&api).await;
    let series = "datascale_component_sent_events_total{dataflow=\"tail\",component=\"out\",component_type=\"file\",group=\"default\"} 100000";
    assert!(metrics.contains(series), "{metrics}");
    assert!(metrics.contains("component=\"parse\",component_type=\"remap\",group=\"default\""));
    assert!(metrics.contains("process_resident_memory_bytes"));

    let support::Answer { status, body, .. } = api
        .put("/api/v1/groups/default/dataflows/tail", &document)
        .await;
    assert_eq!(
        (status, &body["outcome"], &body["revision"]),
        (200, &json!("unchanged"), &json!(revision)),
        "{body}"
    );
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_dataflow_gets_400_pointing_at_the_component() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let document = json!({
        "sources": [{"name": "gen", "type": "demo", "conf": {}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["nope"], "conf": {}}]
    });
    let support::Answer { status, body, .. } = api
        .put("/api/v1/groups/default/dataflows/bad", &document)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_dataflow");
    let details = body["error"]["details"].as_array().unwrap();
    assert!(
        details
            .iter()
            .any(|d| d["path"].as_str().unwrap().starts_with("sinks[0]")
                && d["message"].as_str().unwrap().contains("nope")),
        "{body}"
    );
    let status = api.get("/api/v1/groups/default/dataflows/bad").await.status;
    assert_eq!(status, 404, "nothing was started");
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_one_dataflow_keeps_the_other_running_and_resumes_its_checkpoint() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let steady_out = dir.path().join("steady.json");
    let steady = json!({
        "name": "steady",
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.01}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["gen"],
                   "conf": {"path": steady_out.display().to_string()}}]
    });
    let steady_revision = create(&api, &steady).await["revision"].clone();
    let log = dir.path().join("logs/a.log");
    let (tail, out) = start_tail(&api, dir.path(), 1_000).await;

    let steady_before = support::json_lines(&steady_out).len();
    let mut changed = tail.clone();
    changed["pipelines"][0]["conf"]["source"] =
        json!(". = parse_json!(.message)\n.added = \"yes\"\n.version = 2");
    let support::Answer { status, body, .. } = api
        .put("/api/v1/groups/default/dataflows/tail", &changed)
        .await;
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("updated")),
        "{body}"
    );
    assert_eq!(
        body["status"]["revision"], body["revision"],
        "the new revision runs: {body}"
    );
    write_lines(&log, 1_000..2_000);
    support::wait_until(
        Duration::from_secs(30),
        "the lines after the change",
        || counts(&out).len() == 2_000,
    );
    assert_exactly_once(&out, 2_000);
    let versions: Vec<_> = support::json_lines(&out)
        .iter()
        .map(|e| e["version"].clone())
        .collect();
    assert!(
        versions[..1_000].iter().all(Value::is_null) && versions[1_000..].iter().all(|v| v == 2)
    );
    // The other dataflow was not stopped: its output grew, and its source never restarted.
    support::wait_until(
        Duration::from_secs(10),
        "the steady dataflow's output to grow",
        || support::json_lines(&steady_out).len() > steady_before,
    );
    let status_body = api
        .get("/api/v1/groups/default/dataflows/steady")
        .await
        .body;
    assert_eq!(status_body["status"]["revision"], steady_revision);
    let ids: Vec<u64> = support::json_lines(&steady_out)
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["message"].as_str().unwrap()).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "the demo source counted on without a restart"
    );
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_that_cannot_start_leaves_the_running_version_in_place() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let log = dir.path().join("logs/a.log");
    let (tail, out) = start_tail(&api, dir.path(), 10).await;

    let mut broken = tail.clone();
    broken["sinks"][0]["conf"]["path"] =
        json!(dir.path().join("%Q/out.json").display().to_string());
    let support::Answer { status, body, .. } = api
        .put("/api/v1/groups/default/dataflows/tail", &broken)
        .await;
    // The change is stored; the worker reports that it cannot start it.
    assert_eq!(status, 200, "{body}");
    let failed = body["revision"].clone();
    let running = &body["status"]["revision"];
    assert!(running.as_u64() < failed.as_u64(), "{body}");
    assert_eq!(body["status"]["state"], "running", "{body}");
    assert_eq!(body["status"]["last_failure"]["revision"], failed, "{body}");
    assert!(
        body["status"]["last_failure"]["error"]
            .as_str()
            .unwrap()
            .contains("previous revision keeps running"),
        "{body}"
    );

    write_lines(&log, 10..20);
    support::wait_until(
        Duration::from_secs(30),
        "lines through the kept version",
        || counts(&out).len() == 20,
    );
    assert_exactly_once(&out, 20);
    let status_body = api.get("/api/v1/groups/default/dataflows/tail").await.body;
    assert_eq!(status_body["status"]["revision"], *running);
    assert_eq!(status_body["status"]["last_failure"]["revision"], failed);
    node.terminate(Duration::from_secs(10));
}

/// The value of the series with `labels` in Prometheus text.
fn series(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_that_stops_taking_events_pauses_the_source_with_bounded_memory() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let total: u64 = 750_000;
    let padding = "p".repeat(170);
    support::append_lines(
        &dir.path().join("logs/big.log"),
        (0..total).map(|n| format!("{{\"n\":{n},\"text\":\"{padding}\"}}")),
    );
    let file_bytes = std::fs::metadata(dir.path().join("logs/big.log"))
        .unwrap()
        .len();
    // A named pipe nobody reads yet: the sink's first write blocks.
    let fifo = dir.path().join("out.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let document = tail_to_file("tail", dir.path(), "logs/*.log", "out.fifo");
    create(&api, &document).await;

    // The source pauses when the sink's channel is full, or, where the sink
    // gathered the channel's batches into its next write, once it has read
    // as many events past the last delivered one as it may (4,096, as the
    // README's delivery guarantees say).
    let sink_labels =
        "dataflow=\"tail\",component=\"out\",component_type=\"file\",group=\"default\"";
    let source_labels =
        "dataflow=\"tail\",component=\"logs\",component_type=\"file\",group=\"default\"";
    let mut metrics = String::new();
    let mut paused = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        metrics = self::metrics(&api).await;
        let queued = series(&metrics, "datascale_component_buffer_batches", sink_labels);
        let capacity = series(
            &metrics,
            "datascale_component_buffer_max_batches",
            sink_labels,
        );
        let read = series(
            &metrics,
            "datascale_component_received_events_total",
            source_labels,
        );
        if (queued.is_some() && queued == capacity) || read >= Some(UNSAVED_EVENTS_AT_MOST) {
            paused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(paused, "the source never paused: {metrics}");
    let read = series(
        &metrics,
        "datascale_component_received_bytes_total",
        source_labels,
    )
    .unwrap();
    assert!(
        read < file_bytes as f64 / 2.0,
        "the source read {read} of {file_bytes} bytes while the sink was stuck"
    );
    let resident: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        resident < 120.0 * 1024.0 * 1024.0,
        "resident memory {resident} with a {file_bytes}-byte file"
    );

    // Reading the pipe lets everything through, once.
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(std::fs::File::open(fifo).unwrap()).lines();
        let mut seen = 0u64;
        while seen < total {
            let line = lines.next().unwrap().unwrap();
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(event["n"].as_u64(), Some(seen), "lines in order, once");
            seen += 1;
        }
        seen
    });
    assert_eq!(
        tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap(),
        total
    );
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_sink_is_reported_and_restarted_while_its_source_goes_on() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    // The sink's directory is a regular file at first: every write fails.
    let blocker = dir.path().join("blocked");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = blocker.join("out.json");
    let document = json!({
        "name": "flaky",
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.01}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["gen"],
                   "conf": {"path": out.display().to_string()}}]
    });
    create(&api, &document).await;
    let mut status = Value::Null;
    for _ in 0..1_500 {
        status = api.get("/api/v1/groups/default/dataflows/flaky").await.body;
        if status["status"]["components"][1]["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sink = &status["status"]["components"][1];
    assert_eq!(sink["component"], "out", "{status}");
    assert!(
        sink["last_error"].as_str().unwrap().contains("out.json"),
        "{status}"
    );
    assert_eq!(
        status["status"]["components"][0]["state"], "running",
        "the source goes on: {status}"
    );

    // Once the path can be written, a restart delivers again.
    std::fs::remove_file(&blocker).unwrap();
    support::wait_until(Duration::from_secs(30), "events after the restart", || {
        support::json_lines(&out).len() > 5
    });
    let status = api.get("/api/v1/groups/default/dataflows/flaky").await.body;
    assert!(
        status["status"]["components"][1]["restarts"]
            .as_u64()
            .unwrap()
            >= 1,
        "{status}"
    );
    assert_eq!(
        status["status"]["components"][1]["state"], "running",
        "{status}"
    );
    let metrics = metrics(&api).await;
    let restarts = series(
        &metrics,
        "datascale_component_restarts_total",
        "dataflow=\"flaky\",component=\"out\",component_type=\"file\",group=\"default\"",
    );
    assert!(restarts.is_some_and(|count| count >= 1.0), "{metrics}");
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_a_sink_failed_to_write_are_read_again_and_arrive_once() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    write_lines(&dir.path().join("logs/a.log"), 0..20_000);
    // The sink's directory is a regular file at first, so every write fails.
    let blocker = dir.path().join("blocked");
    std::fs::write(&blocker, "not a directory").unwrap();
    let document = tail_to_file("tail", dir.path(), "logs/*.log", "blocked/out.json");
    create(&api, &document).await;
    let labels = |component: &str, kind: &str| {
        format!(
            "dataflow=\"tail\",component=\"{component}\",component_type=\"{kind}\",group=\"default\""
        )
    };
    let mut failed_and_sent = false;
    for _ in 0..1_500 {
        let metrics = self::metrics(&api).await;
        let restarts = series(
            &metrics,
            "datascale_component_restarts_total",
            &labels("out", "file"),
        );
        let sent = series(
            &metrics,
            "datascale_component_sent_events_total",
            &labels("logs", "file"),
        );
        if restarts.is_some_and(|n| n >= 1.0) && sent.is_some_and(|n| n >= 1_000.0) {
            failed_and_sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failed_and_sent, "the sink never failed and restarted");
    let checkpoints = dir
        .path()
        .join("data/state/default/tail/logs.checkpoints.json");
    assert!(
        !checkpoints.exists(),
        "the checkpoint moved over lines nobody wrote"
    );

    std::fs::remove_file(&blocker).unwrap();
    let out = dir.path().join("blocked/out.json");
    support::wait_until(Duration::from_secs(60), "every line after the fix", || {
        counts(&out).len() == 20_000
    });
    assert_exactly_once(&out, 20_000);
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_lines_are_counted() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let long = format!("{{\"n\":1,\"text\":\"{}\"}}", "x".repeat(5_000));
    support::append_lines(
        &dir.path().join("logs/a.log"),
        ["{\"n\":0}".to_owned(), long, "{\"n\":2}".to_owned()],
    );
    let mut tail = tail_to_file("tail", dir.path(), "logs/*.log", "out.json");
    tail["sources"][0]["conf"]["max_line_bytes"] = json!(100);
    tail["sources"][0]["conf"]["oversize_lines"] = json!("skip");
    create(&api, &tail).await;
    let out = dir.path().join("out.json");
    support::wait_until(Duration::from_secs(30), "the short lines", || {
        counts(&out).len() == 2
    });
    let metrics = metrics(&api).await;
    let skipped = series(
        &metrics,
        "datascale_component_discarded_events_total",
        "dataflow=\"tail\",component=\"logs\",component_type=\"file\",group=\"default\"",
    );
    assert_eq!(skipped, Some(1.0), "{metrics}");
    assert_eq!(counts(&out).keys().copied().collect::<Vec<_>>(), [0, 2]);
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_name_in_two_groups_is_two_dataflows() {
    let dir = home();
    let node = start(
        dir.path(),
        &[("DATASCALE_SERVICE_WORKER_GROUPS", "default,edge")],
    );
    let api = Api::admin(&node, dir.path());
    let created = api.post("/api/v1/groups", &json!({"name": "edge"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    for group in ["default", "edge"] {
        let out = dir.path().join(format!("{group}.json"));
        let document = json!({
            "name": "collect",
            "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.01}}],
            "sinks": [{"name": "out", "type": "file", "inputs": ["gen"],
                       "conf": {"path": out.display().to_string()}}]
        });
        let answer = api
            .put(
                &format!("/api/v1/groups/{group}/dataflows/collect"),
                &document,
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body["status"]["group"], group, "{}", answer.body);
        assert_eq!(answer.body["status"]["state"], "running", "{}", answer.body);
    }
    for group in ["default", "edge"] {
        let out = dir.path().join(format!("{group}.json"));
        support::wait_until(Duration::from_secs(20), "events of both", || {
            !support::json_lines(&out).is_empty()
        });
    }
    let metrics = metrics(&api).await;
    for group in ["default", "edge"] {
        let labels = format!(
            "dataflow=\"collect\",component=\"out\",component_type=\"file\",group=\"{group}\""
        );
        assert!(
            series(&metrics, "datascale_component_sent_events_total", &labels).is_some(),
            "{metrics}"
        );
    }
    node.terminate(Duration::from_secs(10));
}
