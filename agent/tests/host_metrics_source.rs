//! The `host_metrics` source on this machine: the selected collectors'
//! series, one batch per scrape.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::home;

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
