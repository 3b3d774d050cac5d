//! The `file` source against real files: every line exactly once through
//! restarts, rotation by rename and by copy-truncate, huge and binary lines,
//! `read_from = end`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{self, home};

/// A dataflow tailing `logs/*.log` under `dir` through a remap that parses
/// each JSON line and adds a field, into `out.json`.
fn tail_document(dir: &Path, conf: Value) -> Value {
    let mut conf = conf;
    conf["include"] = json!([dir.join("logs/*.log").display().to_string()]);
    conf["glob_minimum_cooldown_ms"] = json!(100);
    json!({
        "name": "tail",
        "sources": [{"name": "logs", "type": "file", "conf": conf}],
        "pipelines": [{"name": "parse", "type": "remap", "inputs": ["logs"],
                       "conf": {"source": "parsed, err = parse_json(.message)\nif err == null { . = merge(., object!(parsed)) }\n.checked = true"}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["parse"],
                   "conf": {"path": dir.join("out.json").display().to_string()}}]
    })
}

/// Appends the JSON lines numbered `range` (`n`), padded to about 170 bytes.
fn append_numbered(path: &Path, range: std::ops::Range<u64>) {
    let padding = "p".repeat(150);
    support::append_lines(
        path,
        range.map(|n| format!("{{\"n\":{n},\"padding\":\"{padding}\"}}")),
    );
}

/// How many times each `n` arrived.
fn counts(out: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for event in support::json_lines(out) {
        if let Some(n) = event["n"].as_u64() {
            *counts.entry(n).or_default() += 1;
        }
    }
    counts
}

fn wait_for_count(out: &Path, expected: usize) {
    support::wait_until(
        Duration::from_secs(60),
        &format!("{expected} events in {}", out.display()),
        || counts(out).len() >= expected,
    );
}

fn assert_exactly_once(out: &Path, range: std::ops::Range<u64>) {
    let counts = counts(out);
    let expected: BTreeMap<u64, usize> = range.map(|n| (n, 1)).collect();
    if counts != expected {
        let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(5).collect();
        let missing: Vec<_> = expected
            .keys()
            .filter(|n| !counts.contains_key(n))
            .take(5)
            .collect();
        panic!(
            "not exactly once: {} distinct, repeated e.g. {repeated:?}, missing e.g. {missing:?}",
            counts.len()
        );
    }
}

fn log(dir: &Path) -> PathBuf {
    dir.join("logs/app.log")
}

#[test]
fn a_hundred_thousand_lines_arrive_exactly_once_with_the_field_added() {
    let dir = home();
    let out = dir.path().join("out.json");
    append_numbered(&log(dir.path()), 0..100_000);
    let child = support::spawn_run(dir.path(), &tail_document(dir.path(), json!({})));
    wait_for_count(&out, 100_000);
    child.stop();
    assert_exactly_once(&out, 0..100_000);
    assert!(
        support::json_lines(&out)
            .iter()
            .all(|e| e["checked"] == true && e["source"] == "logs")
    );
}

#[test]
fn a_restart_resumes_from_the_checkpoint_without_loss_or_repeat() {
    let dir = home();
    let out = dir.path().join("out.json");
    let document = tail_document(dir.path(), json!({}));
    append_numbered(&log(dir.path()), 0..5_000);
    let child = support::spawn_run(dir.path(), &document);
    wait_for_count(&out, 5_000);
    child.stop();
    append_numbered(&log(dir.path()), 5_000..8_000);
    let child = support::spawn_run(dir.path(), &document);
    wait_for_count(&out, 8_000);
    child.stop();
    assert_exactly_once(&out, 0..8_000);
}

#[test]
fn a_stop_in_the_middle_of_a_big_file_loses_and_repeats_nothing() {
    let dir = home();
    let out = dir.path().join("out.json");
    let document = tail_document(dir.path(), json!({}));
    append_numbered(&log(dir.path()), 0..300_000);
    let child = support::spawn_run(dir.path(), &document);
    wait_for_count(&out, 1);
    child.stop();
    let first = counts(&out).len();
    let child = support::spawn_run(dir.path(), &document);
    wait_for_count(&out, 300_000);
    child.stop();
    assert!(
        first < 300_000,
        "the stop came after the whole file ({first} lines); the test needs a bigger file"
    );
    assert_exactly_once(&out, 0..300_000);
}

#[test]
fn rotation_by_rename_reads_the_old_file_to_its_end_and_the_new_one_from_its_start() {
    let dir = home();
    let out = dir.path().join("out.json");
    append_numbered(&log(dir.path()), 0..1_000);
    let child = support::spawn_run(dir.path(), &tail_document(dir.path(), json!({})));
    wait_for_count(&out, 1_000);
    append_numbered(&log(dir.path()), 1_000..1_500);
    std::fs::rename(log(dir.path()), dir.path().join("logs/app.log.1")).unwrap();
    append_numbered(&log(dir.path()), 1_500..2_000);
    wait_for_count(&out, 2_000);
    child.stop();
    assert_exactly_once(&out, 0..2_000);
}

#[test]
fn copy_truncate_starts_the_file_again_from_its_beginning() {
    let dir = home();
    let out = dir.path().join("out.json");
    append_numbered(&log(dir.path()), 0..1_000);
    let child = support::spawn_run(dir.path(), &tail_document(dir.path(), json!({})));
    wait_for_count(&out, 1_000);
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(log(dir.path()))
        .unwrap();
    append_numbered(&log(dir.path()), 1_000..1_010);
    wait_for_count(&out, 1_010);
    child.stop();
    assert_exactly_once(&out, 0..1_010);
}

#[test]
fn huge_and_binary_lines_are_cut_or_skipped_and_kept_lossily() {
    for (action, expect_cut_line) in [("truncate", true), ("skip", false)] {
        let dir = home();
        let out = dir.path().join("out.json");
        let path = log(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut content = b"before\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        content.extend_from_slice(b"\nbin \xff\xfe end\nafter\n");
        std::fs::write(&path, content).unwrap();
        let conf = json!({"max_line_bytes": 1000, "oversize_lines": action});
        let child = support::spawn_run(dir.path(), &tail_document(dir.path(), conf));
        support::wait_until(
            Duration::from_secs(60),
            "the line after the huge one",
            || {
                support::json_lines(&out)
                    .iter()
                    .any(|e| e["message"] == "after")
            },
        );
        child.stop();
        let messages: Vec<String> = support::json_lines(&out)
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect();
        let mut expected = vec!["before".to_owned()];
        if expect_cut_line {
            expected.push("x".repeat(1000));
        }
        expected.extend(["bin \u{fffd}\u{fffd} end".to_owned(), "after".to_owned()]);
        assert_eq!(messages, expected, "oversize_lines = {action}");
    }
}

#[test]
fn read_from_end_takes_only_what_is_written_after_the_start() {
    let dir = home();
    let out = dir.path().join("out.json");
    append_numbered(&log(dir.path()), 0..100);
    let child = support::spawn_run(
        dir.path(),
        &tail_document(dir.path(), json!({"read_from": "end"})),
    );
    // Lines written before the source opened the file are skipped by design,
    // and nothing tells the test when that happens: write one probe line at
    // a time until one arrives. Every line after that one must arrive too.
    let mut next = 100;
    support::wait_until(
        Duration::from_secs(30),
        "a line written after the start",
        || {
            if counts(&out).is_empty() {
                append_numbered(&log(dir.path()), next..next + 1);
                next += 1;
                false
            } else {
                true
            }
        },
    );
    let first = *counts(&out).keys().next().unwrap();
    append_numbered(&log(dir.path()), next..next + 100);
    wait_for_count(&out, (next + 100 - first) as usize);
    child.stop();
    assert!(
        first >= 100,
        "a line written before the start arrived: {first}"
    );
    assert_exactly_once(&out, first..next + 100);
}
