//! SIGKILL at random moments: a `file` → `remap` → `file` dataflow over
//! 200,000 numbered lines is killed five times, started again after each
//! kill, and then left to finish. No line may be lost, and each kill may
//! make the dataflow write at most the figure README.md states again
//! ("Delivery guarantees") in every mode: `datascale run` with the memory
//! buffer, `datascale run` with a disk buffer, and `datascale start` with a
//! dataflow PUT through its API and a disk buffer.
//!
//! The moments are random delays from a seed that each test prints;
//! `CRASH_REPEATS_SEED=<seed>` replays a run.

use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use serde_json::{Value, json};

use crate::support::{self, Api, Node, Running, home, spawn_run, start, whole_machine};

/// Input lines, each with its own sequence number.
const LINES: u64 = 200_000;

/// Kills before the dataflow may finish.
const KILLS: usize = 5;

/// A kill comes up to this long after the sink's output has grown.
const MAX_KILL_DELAY_MS: u64 = 300;

/// What a kill may make a file source send again: the events it may have
/// sent past its saved checkpoint (README.md, "Delivery guarantees").
const SOURCE_REPEATS: u64 = 4_096;

/// What a kill may make a disk buffer send to its sink again: the events
/// it may have sent past its saved read position.
const DISK_BUFFER_REPEATS: u64 = 4_096;

const WAIT: Duration = Duration::from_secs(120);

/// splitmix64: a seeded sequence of delays, the same for the same seed.
struct Delays(u64);

impl Delays {
    /// From `CRASH_REPEATS_SEED`, or from the clock; printed either way.
    fn seeded(test: &str) -> Self {
        let seed = std::env::var("CRASH_REPEATS_SEED")
            .ok()
            .map(|seed| seed.parse().expect("CRASH_REPEATS_SEED is a number"))
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("{test}: seed {seed} (replay with CRASH_REPEATS_SEED={seed})");
        Self(seed)
    }

    fn next(&mut self) -> Duration {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Duration::from_millis((z ^ (z >> 31)) % (MAX_KILL_DELAY_MS + 1))
    }
}

/// The sink's output, read as it grows: how often each sequence number
/// arrived, and how many lines arrived again after each kill.
struct Tally {
    path: PathBuf,
    read: u64,
    /// The start of a line not yet complete.
    partial: Vec<u8>,
    copies: Vec<u8>,
    /// Lines read, and the sequence numbers among them.
    lines: u64,
    unique: u64,
    /// Lines that had arrived before, per run: the first run, then the run
    /// after each kill.
    repeats: Vec<u64>,
    /// Lines cut by a kill in the middle of a write, which the next run
    /// appended to.
    torn: Vec<String>,
}

impl Tally {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            read: 0,
            partial: Vec::new(),
            copies: vec![0; LINES as usize],
            lines: 0,
            unique: 0,
            repeats: vec![0],
            torn: Vec::new(),
        }
    }

    /// Reads what the sink wrote since the last call.
    fn update(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        let mut fresh = Vec::new();
        file.seek(SeekFrom::Start(self.read)).unwrap();
        file.read_to_end(&mut fresh).unwrap();
        self.read += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|&byte| byte == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|&byte| byte == b'\n') {
            if !line.is_empty() {
                self.count(std::str::from_utf8(line).unwrap());
            }
        }
    }

    fn count(&mut self, line: &str) {
        let event: Value = match serde_json::from_str(line) {
            Ok(event) => event,
            Err(_) => {
                // A line torn by a kill, with the next run's first line after it.
                let whole = line
                    .rfind("{\"seq\":")
                    .filter(|&at| at > 0)
                    .unwrap_or_else(|| panic!("an unreadable line in the output: {line}"));
                self.torn.push(line[..whole].to_owned());
                serde_json::from_str(&line[whole..])
                    .unwrap_or_else(|err| panic!("{err}: an unreadable line: {line}"))
            }
        };
        let seq = event["seq"].as_u64().unwrap_or_else(|| panic!("{line}"));
        assert_eq!(event["checked"], true, "the remap ran: {line}");
        self.lines += 1;
        let copies = &mut self.copies[seq as usize];
        if *copies == 0 {
            self.unique += 1;
        } else {
            *self.repeats.last_mut().unwrap() += 1;
        }
        *copies = copies.saturating_add(1);
    }
}

/// The dataflow under test, reading `in.log` in `dir` into `out.json`.
fn dataflow(dir: &Path, disk_buffer: bool) -> Value {
    let mut document = json!({
        "name": "numbered",
        "sources": [{"name": "logs", "type": "file",
                     "conf": {"include": [dir.join("in.log").display().to_string()]}}],
        "pipelines": [{"name": "parse", "type": "remap", "inputs": ["logs"],
                       "conf": {"source": ". = parse_json!(.message)\n.checked = true"}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["parse"],
                   "conf": {"path": dir.join("out.json").display().to_string()}}]
    });
    if disk_buffer {
        document["sinks"][0]["buffer"] = json!({"type": "disk", "max_size": 256 << 20});
    }
    document
}

fn write_input(dir: &Path) {
    support::append_lines(
        &dir.join("in.log"),
        (0..LINES).map(|seq| format!("{{\"seq\":{seq},\"text\":\"line {seq}\"}}")),
    );
}

/// A process running the dataflow: killed when dropped.
enum Process {
    Run(Running),
    Node(Node),
}

impl Process {
    /// SIGTERM, and a clean exit.
    fn stop(self) {
        match self {
            Process::Run(running) => running.stop(),
            Process::Node(node) => {
                let (status, _) = node.terminate(Duration::from_secs(20));
                assert!(status.success(), "datascale start exited with {status:?}");
            }
        }
    }
}

/// Starts the dataflow, kills it [`KILLS`] times at random moments while
/// its sink writes, starting it again after each kill, lets it finish, and
/// checks that no line was lost and that each kill repeated at most `bound`.
fn kill_and_count(test: &str, dir: &Path, mut launch: impl FnMut() -> Process, bound: u64) {
    let _machine = whole_machine();
    let mut delays = Delays::seeded(test);
    let mut tally = Tally::new(dir.join("out.json"));
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        let process = launch();
        let before = tally.lines;
        let started = Instant::now();
        while tally.lines == before && tally.unique < LINES {
            assert!(started.elapsed() < WAIT, "the sink wrote nothing");
            std::thread::sleep(Duration::from_millis(2));
            tally.update();
        }
        let delay = delays.next();
        std::thread::sleep(delay);
        drop(process); // SIGKILL, and waits for the exit
        tally.update();
        kills.push((delay.as_millis(), tally.unique));
        tally.repeats.push(0);
    }
    let last = launch();
    let started = Instant::now();
    while tally.unique < LINES {
        assert!(
            started.elapsed() < WAIT,
            "{} of {LINES} lines arrived; repeats {:?}",
            tally.unique,
            tally.repeats
        );
        std::thread::sleep(Duration::from_millis(20));
        tally.update();
    }
    last.stop();
    tally.update();
    let repeated: u64 = tally.repeats.iter().sum();
    let most_copies = tally.copies.iter().max().copied().unwrap_or(0);
    println!(
        "{test}: kills (delay ms, lines so far) {kills:?}; repeats after each kill {:?} \
         (bound {bound}), {repeated} in all, at most {most_copies} copies of a line; \
         torn lines {:?}",
        &tally.repeats[1..],
        tally.torn
    );
    assert_eq!(tally.unique, LINES, "no line is lost");
    assert_eq!(tally.repeats[0], 0, "nothing repeats before the first kill");
    // A disk buffer may hold a kill's repeats until a later run sends them,
    // so the bound holds for the kills so far together.
    let mut so_far = 0;
    for (kills, &repeats) in (1..).zip(&tally.repeats[1..]) {
        so_far += repeats;
        assert!(
            so_far <= kills * bound,
            "{so_far} lines repeated after {kills} kills, more than {bound} a kill; \
             repeats after each kill {:?}",
            &tally.repeats[1..]
        );
    }
    assert!(tally.torn.len() <= KILLS, "{:?}", tally.torn);
}

/// `datascale run` on the dataflow, killed and started again.
fn kill_runs(test: &str, disk_buffer: bool, bound: u64) {
    let dir = home();
    write_input(dir.path());
    let document = dataflow(dir.path(), disk_buffer);
    let launch = || Process::Run(spawn_run(dir.path(), &document));
    kill_and_count(test, dir.path(), launch, bound);
}

#[test]
fn run_with_the_memory_buffer_repeats_at_most_what_its_source_had_not_saved() {
    kill_runs("run, memory buffer", false, SOURCE_REPEATS);
}

#[test]
fn run_with_a_disk_buffer_repeats_at_most_what_its_source_and_buffer_had_not_saved() {
    kill_runs(
        "run, disk buffer",
        true,
        SOURCE_REPEATS + DISK_BUFFER_REPEATS,
    );
}

#[test]
fn start_with_a_disk_buffer_repeats_at_most_what_its_source_and_buffer_had_not_saved() {
    let dir = home();
    write_input(dir.path());
    let document = dataflow(dir.path(), true);
    let mut stored = false;
    let launch = || {
        let node = start(dir.path(), &[]);
        if !stored {
            // Stored once: every later start runs it from the store.
            let api = Api::admin(&node, dir.path());
            let answer = tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(api.put("/api/v1/groups/default/dataflows/numbered", &document));
            assert_eq!(answer.status, 201, "{}", answer.body);
            stored = true;
        }
        Process::Node(node)
    };
    kill_and_count(
        "start, disk buffer",
        dir.path(),
        launch,
        SOURCE_REPEATS + DISK_BUFFER_REPEATS,
    );
}
