//! `datascale run` with real files, pipes and signals: events go from the
//! source through VRL to the sink, each exactly once; a file sink on a disk
//! that fills up keeps whole lines and loses none.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{self, home};

#[test]
fn demo_through_remap_into_a_file_delivers_every_event_once() {
    let dir = home();
    let out = dir.path().join("out/events.json");
    let document = json!({
        "name": "demo_to_file",
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": 2500, "interval_secs": 0}}],
        "pipelines": [{"name": "parse", "type": "remap", "inputs": ["gen"],
                       "conf": {"source": ". = parse_json!(.message)\n.pipeline = \"parse\""}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["parse"],
                   "conf": {"path": out.display().to_string()}}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let output = support::run(dir.path(), &["run", "--dataflow", &file], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = support::json_lines(&out);
    assert_eq!(events.len(), 2500);
    let ids: BTreeSet<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..2500).collect(), "every id exactly once");
    assert!(events.iter().all(|e| e["pipeline"] == "parse"));
}

#[test]
fn stdin_through_a_filter_to_the_console_keeps_origin_fields() {
    let dir = home();
    let document = json!({
        "name": "pipe",
        "sources": [{"name": "in", "type": "stdin", "conf": {"max_length": 16}}],
        "pipelines": [{"name": "keep", "type": "filter", "inputs": ["in"],
                       "conf": {"condition": "!starts_with(string!(.message), \"drop\")"}}],
        "sinks": [{"name": "out", "type": "console", "inputs": ["keep"]}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let mut child = support::command(dir.path())
        .args(["run", "--dataflow", &file])
        .env("HOSTNAME", "test-host")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"first\ndrop me\n\xff\xfe bytes\n")
        .unwrap();
    stdin.write_all(&[b'x'; 100]).unwrap();
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["first", "\u{fffd}\u{fffd} bytes", &"x".repeat(16)]
    );
    for event in &events {
        assert_eq!(event["host"], "test-host");
        assert_eq!(event["dataflow"], "pipe");
        assert_eq!(event["source"], "in");
        assert!(event["timestamp"].is_string());
    }
}

#[test]
fn the_file_sink_renders_its_path_from_event_fields() {
    let dir = home();
    let document = json!({
        "name": "by_method",
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": 8, "interval_secs": 0}}],
        "pipelines": [{"name": "parse", "type": "remap", "inputs": ["gen"], "conf": {"source": ". = parse_json!(.message)"}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["parse"],
                   "conf": {"path": format!("{}/%Y/{{{{ method }}}}.log", dir.path().display())}}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let output = support::run(dir.path(), &["run", "--dataflow", &file], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let year = chrono_year();
    for method in ["GET", "POST", "PUT", "DELETE"] {
        let events = support::json_lines(&dir.path().join(format!("{year}/{method}.log")));
        assert_eq!(events.len(), 2, "{method}");
        assert!(events.iter().all(|e| e["method"] == method));
    }
}

fn chrono_year() -> String {
    let output = Command::new("date").arg("-u").arg("+%Y").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn sigterm_stops_an_endless_dataflow_and_exits_0() {
    let dir = home();
    let out = dir.path().join("out.json");
    let document = json!({
        "name": "endless",
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.001}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["gen"], "conf": {"path": out.display().to_string()}}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let mut child = support::command(dir.path())
        .args(["run", "--dataflow", &file])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_until(Duration::from_secs(30), "event written", || {
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) > 0
    });
    let (status, took) = support::terminate(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'), "only whole lines are written");
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

#[test]
fn a_yh_sink_with_nowhere_to_send_is_refused_before_anything_starts() {
    let dir = home();
    let document = json!({
        "name": "later",
        "sources": [{"name": "logs", "type": "demo", "conf": {}}],
        "sinks": [{"name": "out", "type": "yh", "inputs": ["logs"], "conf": {"event_set": "x"}}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let output = support::run(dir.path(), &["run", "--dataflow", &file], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("component `out`: no endpoint, and this process has no manager"),
        "{err}"
    );
}

#[test]
fn an_invalid_dataflow_file_is_refused_with_its_paths() {
    let dir = home();
    let file = support::write_dataflow(
        dir.path(),
        &json!({"name": "x", "sources": [], "sinks": []}),
    );
    let output = support::run(dir.path(), &["run", "--dataflow", &file], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("sources: a dataflow needs at least one source"),
        "{err}"
    );
}

/// The most events in one batch of a source (`MAX_BATCH_EVENTS`).
const BATCH_EVENTS: usize = 256;

/// How many times each input line `n` arrived in the file sink's output
/// `out`, and the lines there that are not whole JSON (cut short).
fn arrivals(out: &Path) -> (BTreeMap<u64, usize>, Vec<String>) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut counts = BTreeMap::new();
    let mut torn = Vec::new();
    for line in text.lines() {
        let n = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|event| serde_json::from_str::<Value>(event["message"].as_str()?).ok())
            .and_then(|input| input["n"].as_u64());
        match n {
            Some(n) => *counts.entry(n).or_default() += 1,
            None => torn.push(line.chars().take(120).collect()),
        }
    }
    (counts, torn)
}

#[test]
fn a_file_sink_on_a_full_disk_keeps_whole_lines_and_loses_none() {
    let dir = home();
    let Some(disk) = support::Tmpfs::mount(&dir.path().join("disk"), "1m") else {
        return;
    };
    // A filler takes most of the disk, so that the sink soon fills the rest.
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![0u8; 700 * 1024]).unwrap();
    // Lines of about 900 bytes in the output: the first 200 fit on the
    // disk, all 500 do not.
    let (fit, lines) = (200, 500);
    let input = dir.path().join("logs/app.log");
    let pad = "z".repeat(800);
    let append = |range: std::ops::Range<u64>| {
        support::append_lines(
            &input,
            range.map(|n| format!("{{\"n\":{n},\"pad\":\"{pad}\"}}")),
        );
    };
    append(0..fit);
    let out = disk.path.join("out.json");
    let document = json!({
        "name": "to_disk",
        "sources": [{"name": "logs", "type": "file",
                     "conf": {"include": [input.display().to_string()], "glob_minimum_cooldown_ms": 100}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["logs"],
                   "conf": {"path": out.display().to_string()}}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let log = dir.path().join("run.log");
    let child = support::command(dir.path())
        .args(["run", "--dataflow", &file])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let running = support::Running { child };
    support::wait_until(Duration::from_secs(30), "the lines that fit", || {
        arrivals(&out).0.len() as u64 >= fit
    });
    append(fit..lines);
    support::wait_until(
        Duration::from_secs(30),
        "write failing on the full disk",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("No space left on device")
        },
    );
    let (written_when_full, torn_when_full) = arrivals(&out);
    std::fs::remove_file(&filler).unwrap();
    support::wait_until(Duration::from_secs(60), "every line in the output", || {
        arrivals(&out).0.len() as u64 >= lines
    });
    running.stop();

    let (counts, torn) = arrivals(&out);
    assert!(torn.is_empty(), "torn lines in the output: {torn:#?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'), "the output ends in a torn line");
    let arrived: Vec<u64> = counts.keys().copied().collect();
    assert_eq!(arrived, (0..lines).collect::<Vec<_>>(), "lines lost");
    let repeats: usize = counts.values().map(|count| count - 1).sum();
    eprintln!(
        "{} lines and {} torn ones written when the disk was full; {} bytes at the end, {repeats} lines repeated",
        written_when_full.len(),
        torn_when_full.len(),
        text.len()
    );
    assert!(
        repeats <= BATCH_EVENTS,
        "{repeats} lines repeated, more than a batch of {BATCH_EVENTS}"
    );
}
