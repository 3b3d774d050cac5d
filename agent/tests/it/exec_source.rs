//! The `exec` source with real child processes: schedules, streams, stderr,
//! `HOSTNAME`, timeouts.

use std::{path::Path, process::Stdio, time::Duration};

use serde_json::{Value, json};

use crate::support::{self, home};

/// Runs `source` into a file sink until `enough` holds for the events
/// written, then stops the dataflow with SIGTERM; returns the events.
fn collect(dir: &Path, source: Value, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let out = dir.join("out.json");
    let document = json!({
        "name": "exec_test",
        "sources": [{"name": "cmd", "type": "exec", "conf": source}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["cmd"], "conf": {"path": out.display().to_string()}}]
    });
    let file = support::write_dataflow(dir, &document);
    let mut child = support::command(dir)
        .args(["run", "--dataflow", &file])
        .env_remove("HOSTNAME")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read = || support::json_lines(&out);
    support::wait_until(Duration::from_secs(30), "expected events", || {
        enough(&read())
    });
    if child.try_wait().unwrap().is_none() {
        let (status, _) = support::terminate(&mut child, Duration::from_secs(10));
        assert!(status.success(), "{status:?}");
    }
    read()
}

fn messages<'a>(events: &'a [Value], stream: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["stream"] == stream)
        .map(|e| e["message"].as_str().unwrap())
        .collect()
}

#[test]
fn a_scheduled_shell_command_runs_every_interval_with_stderr_and_hostname() {
    let dir = home();
    let events = collect(
        dir.path(),
        json!({"command": "echo \"out $HOSTNAME\"; echo oops >&2", "mode": "scheduled",
               "scheduled": {"exec_interval_secs": 1}}),
        |events| messages(events, "stdout").len() >= 2,
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let expected = format!("out {}", host.trim());
    assert!(
        messages(&events, "stdout").iter().all(|m| *m == expected),
        "{events:#?}"
    );
    assert!(messages(&events, "stderr").contains(&"oops"), "{events:#?}");
    assert!(
        events
            .iter()
            .all(|e| e["source"] == "cmd" && e["dataflow"] == "exec_test")
    );
}

#[test]
fn a_streaming_argv_command_is_read_as_it_prints_and_ends_without_respawn() {
    let dir = home();
    let events = collect(
        dir.path(),
        json!({"command": ["sh", "-c", "for i in 1 2 3; do echo line$i; done"], "mode": "streaming",
               "streaming": {"respawn_on_exit": false}, "include_stderr": false}),
        |events| events.len() >= 3,
    );
    assert_eq!(messages(&events, "stdout"), ["line1", "line2", "line3"]);
}

#[test]
fn a_run_past_its_timeout_is_killed_and_the_schedule_goes_on() {
    let dir = home();
    let events = collect(
        dir.path(),
        json!({"command": "echo started; sleep 30", "scheduled": {"exec_interval_secs": 1}, "timeout_secs": 1}),
        |events| events.len() >= 2,
    );
    assert!(messages(&events, "stdout").iter().all(|m| *m == "started"));
}

#[test]
fn long_lines_are_cut_at_max_line_bytes() {
    let dir = home();
    let events = collect(
        dir.path(),
        json!({"command": "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo after", "mode": "streaming",
               "streaming": {"respawn_on_exit": false}, "max_line_bytes": 1000}),
        |events| events.len() >= 2,
    );
    let lines = messages(&events, "stdout");
    assert_eq!(lines[0], "x".repeat(1000));
    assert_eq!(lines[1], "after");
}
