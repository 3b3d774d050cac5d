//! The metric sources on this machine: `host_metrics` (the selected
//! collectors' series, one batch per scrape) and `internal_metrics` (the
//! process's own counters, per component).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, home};

#[test]
fn memory_and_load_series_are_emitted_every_interval() {
    let dir = home();
    let out = dir.path().join("out.json");
    let document = json!({
        "name": "metrics_test",
        "sources": [{"name": "host", "type": "host_metrics",
                     "conf": {"scrape_interval_secs": 1, "collectors": ["memory", "load"]}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["host"],
                   "conf": {"path": out.display().to_string()}}]
    });
    let running = support::spawn_run(dir.path(), &document);
    let named = |events: &[Value], name: &str| events.iter().filter(|e| e["name"] == name).count();
    support::wait_until(Duration::from_secs(30), "two scrapes", || {
        named(&support::json_lines(&out), "memory_used_bytes") >= 2
    });
    running.stop();
    let events = support::json_lines(&out);
    for name in [
        "memory_total_bytes",
        "memory_used_bytes",
        "memory_available_bytes",
        "load1",
        "load5",
        "load15",
    ] {
        let event = events
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {events:#?}"));
        assert_eq!(event["kind"], "gauge");
        assert!(event["value"].as_f64().unwrap() >= 0.0, "{event}");
        assert_eq!(event["tags"], json!({}));
        assert_eq!(event["source"], "host");
        assert_eq!(event["dataflow"], "metrics_test");
        assert!(event["host"].is_string() && event["timestamp"].is_string());
    }
    let total = events
        .iter()
        .find(|e| e["name"] == "memory_total_bytes")
        .unwrap();
    assert!(total["value"].as_f64().unwrap() > 0.0);
    assert!(
        events
            .iter()
            .all(|e| !e["name"].as_str().unwrap().starts_with("cpu_")),
        "only the selected collectors run"
    );
}

#[test]
fn internal_metrics_count_the_events_of_each_component() {
    let dir = home();
    let out = dir.path().join("out.json");
    let document = json!({
        "name": "self",
        "sources": [
            {"name": "gen", "type": "demo", "conf": {"count": 500, "interval_secs": 0}},
            {"name": "own", "type": "internal_metrics", "conf": {"scrape_interval_secs": 1}}
        ],
        "sinks": [
            {"name": "drop", "type": "blackhole", "inputs": ["gen"]},
            {"name": "out", "type": "file", "inputs": ["own"],
             "conf": {"path": out.display().to_string()}}
        ]
    });
    let running = support::spawn_run(dir.path(), &document);
    let sent_by_drop = |events: &[Value]| {
        events.iter().rev().find_map(|e| {
            (e["name"] == "component_sent_events_total" && e["tags"]["component"] == "drop")
                .then(|| e["value"].as_f64().unwrap())
        })
    };
    support::wait_until(
        Duration::from_secs(30),
        "the blackhole's 500 events counted",
        || sent_by_drop(&support::json_lines(&out)) == Some(500.0),
    );
    running.stop();
    let events = support::json_lines(&out);
    let received = events.iter().find(|e| {
        e["name"] == "component_received_events_total" && e["tags"]["component"] == "gen"
    });
    assert_eq!(received.unwrap()["tags"]["component_type"], "demo");
    assert!(events.iter().any(
        |e| e["name"] == "process_resident_memory_bytes" && e["value"].as_f64().unwrap() > 0.0
    ));
}
