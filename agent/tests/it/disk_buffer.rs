//! Disk buffers with real processes and files: every event reaches the
//! sink through the buffer, a SIGKILL in the middle loses none, and a full
//! buffer either holds its source back (`block`) or discards and counts
//! (`drop_newest`), never growing past `max_size`.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::{Value, json};

use crate::support::{self, Api, eventually, home, spawn_run, start, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// A buffer small enough that its segments rotate and fill in a test.
fn small_buffer(when_full: &str) -> Value {
    json!({"type": "disk", "max_size": 1 << 20, "when_full": when_full})
}

/// How many times each `n` arrived in the sink's file.
fn counts(out: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for event in support::json_lines(out) {
        let n = event["message"].as_str().unwrap().parse().unwrap();
        *counts.entry(n).or_default() += 1;
    }
    counts
}

fn tail_through_buffer(dir: &Path) -> Value {
    json!({
        "name": "buffered",
        "sources": [{"name": "logs", "type": "file",
                     "conf": {"include": [dir.join("in.log").display().to_string()]}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["logs"],
                   "buffer": small_buffer("block"),
                   "conf": {"path": dir.join("out.log").display().to_string(),
                            "encoding": {"codec": "json"}}}]
    })
}

#[test]
fn a_sigkill_in_the_middle_loses_no_line_and_the_next_run_finishes_the_buffer() {
    let dir = home();
    let lines = 200_000;
    support::append_lines(
        &dir.path().join("in.log"),
        (0..lines).map(|n| n.to_string()),
    );
    let document = tail_through_buffer(dir.path());
    let out = dir.path().join("out.log");

    let first = spawn_run(dir.path(), &document);
    let buffer = dir.path().join("data/buffers/buffered/out");
    wait_until(WAIT, "the sink to write part of the file", || {
        counts(&out).len() > 1_000
    });
    drop(first); // SIGKILL
    assert!(
        std::fs::read_dir(&buffer).unwrap().count() > 1,
        "the buffer kept its segments and read position"
    );

    let second = spawn_run(dir.path(), &document);
    wait_until(WAIT, "every line once the run starts again", || {
        counts(&out).len() as u64 == lines
    });
    second.stop();
    let counts = counts(&out);
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..lines).collect::<Vec<_>>()
    );
    let written: usize = counts.values().sum();
    println!(
        "{} repeated lines after the SIGKILL, of {lines}",
        written as u64 - lines
    );
}

#[test]
fn a_finite_source_is_delivered_whole_through_the_buffer() {
    let dir = home();
    let out = dir.path().join("out.log");
    let document = json!({
        "name": "finite",
        "sources": [{"name": "gen", "type": "demo",
                     "conf": {"count": 20_000, "interval_secs": 0, "format": "json"}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["gen"],
                   "buffer": small_buffer("block"),
                   "conf": {"path": out.display().to_string()}}]
    });
    let mut run = spawn_run(dir.path(), &document);
    let mut status = None;
    wait_until(WAIT, "the run to end with its source", || {
        status = run.child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success());
    assert_eq!(support::json_lines(&out).len(), 20_000);
    // What the sink acknowledged is deleted but for the newest segment.
    let segments = std::fs::read_dir(dir.path().join("data/buffers/finite/out"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "seg")
        })
        .count();
    assert!(segments <= 2, "{segments} segments left");
}

/// A dataflow whose sink can never deliver: nothing listens at its URL.
fn to_nowhere(name: &str, when_full: &str) -> Value {
    let nowhere = support::free_address();
    json!({
        "name": name,
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0, "format": "json"}}],
        "sinks": [{"name": "out", "type": "http", "inputs": ["gen"],
                   "buffer": small_buffer(when_full),
                   "conf": {"uri": format!("http://{nowhere}/ingest")}}]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_buffer_holds_its_source_back_or_discards_and_counts() {
    let dir = home();
    // The sinks never deliver: stopping waits for them only briefly.
    let node = start(
        dir.path(),
        &[("DATASCALE_SERVICE_SHUTDOWN_TIMEOUT_SECS", "1")],
    );
    let api = Api::admin(&node, dir.path());
    for (name, when_full) in [("blocked", "block"), ("dropping", "drop_newest")] {
        let answer = api
            .put(
                &format!("/api/v1/groups/default/dataflows/{name}"),
                &to_nowhere(name, when_full),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    // Both dataflows have components of the same names: pick by dataflow.
    let of = |dataflow: &'static str, family: &'static str, component: &'static str| {
        let api = &api;
        async move {
            let text = api.get("/metrics").await.body.as_str()?.to_owned();
            let labels = [
                format!("dataflow=\"{dataflow}\""),
                format!("component=\"{component}\""),
            ];
            support::series_value(&text, family, &[&labels[0], &labels[1]])
        }
    };
    let discarded = eventually(WAIT, "the dropping buffer to discard", || async {
        let discarded = of(
            "dropping",
            "datascale_component_discarded_events_total",
            "out",
        )
        .await?;
        (discarded > 0).then_some(discarded)
    })
    .await;
    assert!(discarded > 0);
    eventually(WAIT, "the blocked buffer to fill", || async {
        let bytes = of("blocked", "datascale_component_disk_buffer_bytes", "out").await?;
        (bytes > 900 << 10).then_some(())
    })
    .await;
    for dataflow in ["blocked", "dropping"] {
        let bytes = of(dataflow, "datascale_component_disk_buffer_bytes", "out")
            .await
            .unwrap();
        assert!(bytes <= 1 << 20, "{dataflow}: {bytes} bytes on disk");
    }
    // The blocked source sent only what the buffer holds and what fits in
    // the channels and the writer's hands on the way.
    let sent = of("blocked", "datascale_component_sent_events_total", "gen")
        .await
        .unwrap();
    let held = of("blocked", "datascale_component_disk_buffer_events", "out")
        .await
        .unwrap();
    let on_the_way = 20 * 256;
    assert!(
        sent <= held + on_the_way,
        "the source sent {sent} events while the buffer holds {held}"
    );
    assert_eq!(
        of(
            "blocked",
            "datascale_component_discarded_events_total",
            "out"
        )
        .await,
        Some(0)
    );
    assert_eq!(
        of(
            "blocked",
            "datascale_component_disk_buffer_max_bytes",
            "out"
        )
        .await,
        Some(1 << 20)
    );
    node.terminate(Duration::from_secs(20));
}
