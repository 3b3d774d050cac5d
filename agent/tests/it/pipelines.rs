//! `route`, `sample`, `dedupe` and `throttle` in `datascale run`: a counted
//! demo input, the outcome read back from file sinks.

use std::{collections::BTreeSet, path::Path};

use serde_json::{Value, json};

use crate::support::{self, home};

/// Runs a dataflow of `count` parsed demo events (fields `id`, `method`,
/// `status`, …) through `pipelines` (the first takes `parse`) into file
/// sinks, one per `(name, input)` (the sink is `out_<name>`); returns the
/// ids each sink received.
fn run_demo(
    dir: &Path,
    count: u64,
    pipelines: Value,
    sinks: &[(&str, &str)],
) -> Vec<BTreeSet<u64>> {
    let mut all_pipelines = vec![json!({
        "name": "parse", "type": "remap", "inputs": ["gen"],
        "conf": {"source": ". = parse_json!(.message)"}
    })];
    all_pipelines.extend(pipelines.as_array().unwrap().iter().cloned());
    let document = json!({
        "name": "counted",
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": count, "interval_secs": 0}}],
        "pipelines": all_pipelines,
        "sinks": sinks.iter().map(|(name, input)| json!({
            "name": format!("out_{name}"), "type": "file", "inputs": [input],
            "conf": {"path": dir.join(format!("{name}.json")).display().to_string()}
        })).collect::<Vec<_>>()
    });
    let file = support::write_dataflow(dir, &document);
    let output = support::run(dir, &["run", "--dataflow", &file], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    sinks
        .iter()
        .map(|(name, _)| {
            let events = support::json_lines(&dir.join(format!("{name}.json")));
            let ids: BTreeSet<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
            assert_eq!(ids.len(), events.len(), "{name}: no id twice");
            ids
        })
        .collect()
}

#[test]
fn route_sends_events_to_every_matching_output_and_the_rest_to_unmatched() {
    let dir = home();
    let routed = run_demo(
        dir.path(),
        100,
        json!([{"name": "split", "type": "route", "inputs": ["parse"],
                "conf": {"route": {"get": ".method == \"GET\"", "errors": "int!(.status) >= 500"}}}]),
        &[
            ("gets", "split.get"),
            ("errors", "split.errors"),
            ("rest", "split._unmatched"),
        ],
    );
    let get: BTreeSet<u64> = (0..100).filter(|n| n % 4 == 0).collect();
    let errors: BTreeSet<u64> = (0..100).filter(|n| n % 5 == 4).collect();
    let rest: BTreeSet<u64> = (0..100)
        .filter(|n| !get.contains(n) && !errors.contains(n))
        .collect();
    assert_eq!(routed[0], get);
    assert_eq!(routed[1], errors);
    assert_eq!(routed[2], rest);
    assert!(!get.is_disjoint(&errors), "some events go to two outputs");
}

#[test]
fn sample_keeps_exactly_one_in_rate() {
    let dir = home();
    let kept = run_demo(
        dir.path(),
        2500,
        json!([{"name": "some", "type": "sample", "inputs": ["parse"], "conf": {"rate": 10}}]),
        &[("out", "some")],
    );
    assert_eq!(kept[0], (0..2500).step_by(10).collect());
}

#[test]
fn dedupe_drops_repeats_within_its_cache() {
    let dir = home();
    let kept = run_demo(
        dir.path(),
        100,
        json!([
            {"name": "key", "type": "remap", "inputs": ["parse"], "conf": {"source": ".key = mod(int!(.id), 7)"}},
            {"name": "once", "type": "dedupe", "inputs": ["key"], "conf": {"fields": {"match": ["key"]}}},
            {"name": "short", "type": "dedupe", "inputs": ["key"],
             "conf": {"fields": {"match": ["key"]}, "cache": {"num_events": 6}}}
        ]),
        &[("once", "once"), ("short", "short")],
    );
    assert_eq!(kept[0], (0..7).collect(), "each key once");
    assert_eq!(
        kept[1],
        (0..100).collect(),
        "a key comes back after 7 others, beyond a cache of 6"
    );
}

#[test]
fn throttle_caps_events_per_window_and_key() {
    let dir = home();
    let passed = run_demo(
        dir.path(),
        1000,
        json!([
            {"name": "cap", "type": "throttle", "inputs": ["parse"],
             "conf": {"threshold": 10, "window_secs": 3600}},
            {"name": "per_method", "type": "throttle", "inputs": ["parse"],
             "conf": {"threshold": 10, "window_secs": 3600, "key_field": "method"}}
        ]),
        &[("cap", "cap"), ("per_method", "per_method")],
    );
    assert_eq!(passed[0], (0..10).collect());
    assert_eq!(passed[1], (0..40).collect(), "10 for each of 4 methods");
}
