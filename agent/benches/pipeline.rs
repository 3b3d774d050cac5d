//! End-to-end throughput of `datascale run` on four dataflows, with the
//! CPU time and peak memory of the process, beside the time `wc -l` takes
//! to read the same file:
//!
//! 1. `file` (2,000,000 JSON lines of about 200 bytes) → `remap`
//!    (`parse_json`, one field added) → `file`;
//! 2. the same into `blackhole`;
//! 3. `demo` → `blackhole`;
//! 4. the first, with the sink's disk buffer in between;
//!
//! and the resident memory of an idle `demo` → `blackhole` dataflow, with
//! how many of the functions listed in `startup-symbols.txt` (laid out side
//! by side by the linker, see `build.rs`) the binary still has.
//!
//! Run it with `cargo bench --bench pipeline` (`-- --lines N` for another
//! size). The file source is done when its checkpoint (written as soon as
//! acknowledged lines move it) reaches the end of the file.

use std::{
    collections::HashSet,
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{cpu_seconds, stat_fields, status_kib};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_datascale");

/// What one run cost.
struct Figures {
    events: u64,
    bytes: u64,
    wall: Duration,
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lines: u64 = args
        .iter()
        .position(|arg| arg == "--lines")
        .and_then(|at| args.get(at + 1))
        .map_or(2_000_000, |n| n.parse().expect("--lines takes a number"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("input.log");
    let bytes = write_input(&input, lines);
    println!(
        "input: {lines} lines, {:.1} MiB, {:.0} bytes a line",
        mib(bytes),
        bytes as f64 / lines as f64
    );

    let started = Instant::now();
    let wc = Command::new("wc")
        .arg("-l")
        .arg(&input)
        .output()
        .expect("wc runs");
    let wc_time = started.elapsed();
    assert!(wc.status.success());
    println!(
        "baseline wc -l: {:.3} s, {:.0} lines/s",
        wc_time.as_secs_f64(),
        lines as f64 / wc_time.as_secs_f64()
    );

    let remap = json!({"name": "parse", "type": "remap", "inputs": ["logs"],
                       "conf": {"source": ". = parse_json!(.message)\n.processed = true"}});
    let source = json!({"name": "logs", "type": "file",
                        "conf": {"include": [input.display().to_string()]}});
    let out = dir.path().join("out.json");
    let to_file = json!({
        "name": "file_to_file",
        "sources": [source],
        "pipelines": [remap],
        "sinks": [{"name": "out", "type": "file", "inputs": ["parse"],
                   "conf": {"path": out.display().to_string()}}]
    });
    let figures = run_file_dataflow(dir.path(), &to_file, lines, bytes);
    report("1. file → remap → file", &figures);
    let written = std::fs::read(&out).expect("the output exists");
    let written_lines = written.iter().filter(|b| **b == b'\n').count() as u64;
    assert_eq!(written_lines, lines, "every line was written once");

    let to_blackhole = json!({
        "name": "file_to_blackhole",
        "sources": [source],
        "pipelines": [remap],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["parse"], "conf": {}}]
    });
    report(
        "2. file → remap → blackhole",
        &run_file_dataflow(dir.path(), &to_blackhole, lines, bytes),
    );

    let demo = json!({
        "name": "demo_to_blackhole",
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": lines, "interval_secs": 0}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["gen"], "conf": {}}]
    });
    report(
        "3. demo → blackhole",
        &run_finite_dataflow(dir.path(), &demo, lines),
    );

    let out_buffered = dir.path().join("out-buffered.json");
    // The first dataflow, with a disk buffer in front of its sink.
    let mut buffered = to_file.clone();
    buffered["name"] = json!("file_to_disk_buffer_to_file");
    buffered["sinks"][0]["buffer"] = json!({"type": "disk", "max_size": 256 << 20});
    buffered["sinks"][0]["conf"]["path"] = json!(out_buffered.display().to_string());
    let figures = run_until_written(dir.path(), &buffered, &out_buffered, lines, bytes);
    report("4. file → remap → disk buffer → file", &figures);
    let written = std::fs::read(&out_buffered).expect("the output exists");
    let written_lines = written.iter().filter(|b| **b == b'\n').count() as u64;
    assert_eq!(
        written_lines, lines,
        "every line was written once through the buffer"
    );

    // The same document scripts/startup-symbols.py profiles.
    let idle: Value =
        serde_json::from_str(include_str!("idle-dataflow.json")).expect("the idle dataflow parses");
    println!(
        "idle demo → blackhole: {} KiB resident after 3 s",
        idle_rss_kib(dir.path(), &idle)
    );
    print_startup_symbols_found();
    println!("rerun: cargo bench --bench pipeline -- --lines {lines}");
}

/// Writes `lines` JSON lines of about 200 bytes; returns the file's size.
fn write_input(path: &Path, lines: u64) -> u64 {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("the input file"));
    const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
    for n in 0..lines {
        writeln!(
            file,
            r#"{{"id":{n},"level":"{}","service":"checkout","host":"web-{:02}","latency_ms":{},"path":"/api/v1/orders","message":"request handled for user {} with status {} after retries"}}"#,
            LEVELS[(n % 4) as usize],
            n % 32,
            n % 977,
            n * 7919 % 100_000,
            [200, 201, 404, 500][(n % 4) as usize],
        )
        .expect("the input is written");
    }
    file.flush().expect("the input is written");
    std::fs::metadata(path).expect("the input exists").len()
}

fn spawn(dir: &Path, document: &Value) -> Child {
    let name = document["name"].as_str().unwrap();
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, document.to_string()).expect("the dataflow is written");
    Command::new(BIN)
        .current_dir(dir)
        .args(["run", "--dataflow"])
        .arg(&file)
        .env("DATASCALE_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("datascale starts")
}

/// Runs a dataflow whose `file` source reads the input, until its
/// checkpoint says every byte was acknowledged.
fn run_file_dataflow(dir: &Path, document: &Value, lines: u64, bytes: u64) -> Figures {
    let name = document["name"].as_str().unwrap();
    let checkpoint: PathBuf = dir.join(format!("data/state/{name}/logs.checkpoints.json"));
    let mut acknowledged = || {
        std::fs::read(&checkpoint)
            .ok()
            .and_then(|text| serde_json::from_slice::<Value>(&text).ok())
            .and_then(|state| state["files"][0]["offset"].as_u64())
            == Some(bytes)
    };
    run_until(dir, document, lines, bytes, &mut acknowledged)
}

/// Runs a dataflow whose `file` sink writes `out`, until it holds `lines`
/// lines: with a disk buffer, the source's checkpoint moves once its lines
/// are in the buffer, before the sink has them.
fn run_until_written(dir: &Path, document: &Value, out: &Path, lines: u64, bytes: u64) -> Figures {
    let mut written = 0;
    let mut counted = 0;
    let mut all_written = || {
        if let Ok(mut file) = std::fs::File::open(out) {
            let mut chunk = Vec::new();
            if file.seek(SeekFrom::Start(counted)).is_ok() && file.read_to_end(&mut chunk).is_ok() {
                counted += chunk.len() as u64;
                written += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
            }
        }
        written >= lines
    };
    run_until(dir, document, lines, bytes, &mut all_written)
}

/// Runs a dataflow until `done` holds.
fn run_until(
    dir: &Path,
    document: &Value,
    lines: u64,
    bytes: u64,
    done: &mut dyn FnMut() -> bool,
) -> Figures {
    let name = document["name"].as_str().unwrap();
    let started = Instant::now();
    let mut child = spawn(dir, document);
    let mut peak = 0;
    loop {
        peak = peak.max(status_kib(child.id(), "VmHWM:"));
        if done() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{name} did not finish"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall = started.elapsed();
    let cpu_seconds = cpu_seconds(child.id());
    peak = peak.max(status_kib(child.id(), "VmHWM:"));
    stop(&mut child);
    Figures {
        events: lines,
        bytes,
        wall,
        cpu_seconds,
        peak_rss_kib: peak,
    }
}

/// Runs a dataflow that ends by itself; the figures are read from the
/// process after it has exited and before it is reaped.
fn run_finite_dataflow(dir: &Path, document: &Value, events: u64) -> Figures {
    let started = Instant::now();
    let mut child = spawn(dir, document);
    let mut peak = 0;
    let mut cpu = 0.0;
    loop {
        let state =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        if state.is_empty() || stat_fields(&state).first() == Some(&"Z") {
            break;
        }
        peak = peak.max(status_kib(child.id(), "VmHWM:"));
        cpu = cpu_seconds(child.id());
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    cpu = f64::max(cpu, cpu_seconds(child.id()));
    assert!(child.wait().expect("datascale exits").success());
    Figures {
        events,
        bytes: 0,
        wall,
        cpu_seconds: cpu,
        peak_rss_kib: peak,
    }
}

fn idle_rss_kib(dir: &Path, document: &Value) -> u64 {
    let mut child = spawn(dir, document);
    std::thread::sleep(Duration::from_secs(3));
    let rss = status_kib(child.id(), "VmRSS:");
    stop(&mut child);
    rss
}

/// Prints how many of the listed start-up functions the binary has: names
/// change with dependencies, and a list that has gone stale shows here (and
/// in the idle figure) before anywhere else.
fn print_startup_symbols_found() {
    let listed = include_str!("../startup-symbols.txt");
    let Ok(nm) = Command::new("nm").arg(BIN).output() else {
        println!("startup symbols: cannot run nm, not counted");
        return;
    };
    let defined = String::from_utf8_lossy(&nm.stdout);
    let defined: HashSet<&str> = defined
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .collect();
    let found = listed.lines().filter(|name| defined.contains(name)).count();
    println!(
        "startup symbols: {found} of {} in agent/startup-symbols.txt are in the binary \
         (regenerate with scripts/startup-symbols.py when this falls)",
        listed.lines().count()
    );
}

fn stop(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    child.wait().expect("datascale exits");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(title: &str, figures: &Figures) {
    let seconds = figures.wall.as_secs_f64();
    let throughput = if figures.bytes > 0 {
        format!(", {:.1} MiB/s", mib(figures.bytes) / seconds)
    } else {
        String::new()
    };
    println!(
        "{title}: {} events in {seconds:.2} s = {:.0} events/s{throughput}; CPU {:.2} s; peak RSS {:.1} MiB",
        figures.events,
        figures.events as f64 / seconds,
        figures.cpu_seconds,
        figures.peak_rss_kib as f64 / 1024.0,
    );
}
