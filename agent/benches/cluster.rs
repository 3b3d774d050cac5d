//! The manager under the load of a fleet: the real `datascale` binary runs
//! as a manager on loopback, and this process simulates N workers (10,000
//! by default), split over two groups. Each worker enrolls once with the
//! enrollment token, then heartbeats every `--heartbeat-secs` (5 by default;
//! the fleet's heartbeats are spread evenly over the interval) with a report
//! of two dataflows, and keeps one long-polled `GET /api/v1/sync` open,
//! asking again with the revision it got after each answer.
//!
//! Once every worker is enrolled and the load has settled, it measures the
//! latency of heartbeats over a window; then it changes the dataflow of one
//! group and measures how long it takes until every worker of that group
//! holds the new desired state, then does the same with both groups at once
//! for the whole fleet. Beside them: the manager's CPU time and its peak and
//! steady resident memory, and the count of failed requests. Each figure is
//! printed with its target, which is set for 10,000 workers at a 5 s
//! heartbeat.
//!
//! Run it with `cargo bench --bench cluster` (`-- --workers N
//! --heartbeat-secs S --settle-secs S --window-secs S`; the number of
//! workers also from `DATASCALE_BENCH_WORKERS`). Each simulated worker keeps
//! a connection open, and so does the manager for each of them: both
//! processes need an open-file limit above N, so the soft limit is raised
//! to the hard limit before the manager starts (it inherits it).

mod support;

use std::{
    fmt::Display,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use datascale_http::VERSION;
use datascale_protocol::{
    CLUSTER_HEADER, DataflowReport, DataflowState, DesiredState, Enrolled, Heartbeat,
    HeartbeatReply, Identity, SYNC_WAIT_SECS,
};
use reqwest::{Client, StatusCode, header::AUTHORIZATION};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use serde_json::{Value, json};
use support::{cpu_seconds, status_kib};
use tokio::sync::Semaphore;

const BIN: &str = env!("CARGO_BIN_EXE_datascale");
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const ENROLLMENT_TOKEN: &str = "bench-enrollment-token-0123456789abcdef";
const CLUSTER: &str = "datascale";
/// The groups the workers are split over.
const GROUPS: [&str; 2] = ["edge-a", "edge-b"];
/// The dataflow of each group that the benchmark changes.
const DATAFLOW: &str = "collect";
/// Enrollments in flight at once, as when a fleet comes up.
const ENROLLING_AT_ONCE: usize = 64;
/// Open files this process and the manager need beyond one per worker.
const SPARE_FILES: u64 = 1024;
/// How long a change may take to reach every worker before it counts as
/// not delivered.
const DELIVERY_LIMIT: Duration = Duration::from_secs(60);

/// The targets, for 10,000 workers at a 5 s heartbeat.
const TARGET_WORKERS: usize = 10_000;
const TARGET_HEARTBEAT_P99: Duration = Duration::from_millis(50);
const TARGET_RSS_MIB: f64 = 300.0;
const TARGET_DELIVERY: Duration = Duration::from_secs(2);

/// What the command line asks for.
#[derive(Debug, Clone, Copy)]
struct Settings {
    workers: usize,
    heartbeat: Duration,
    settle: Duration,
    window: Duration,
}

impl Settings {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str, env: Option<&str>, default: u64| -> u64 {
            let given = args
                .iter()
                .position(|arg| arg == flag)
                .and_then(|at| args.get(at + 1).cloned())
                .or_else(|| env.and_then(|name| std::env::var(name).ok()));
            given.map_or(default, |text| {
                text.parse()
                    .unwrap_or_else(|_| panic!("{flag} takes a whole number, not `{text}`"))
            })
        };
        let settings = Self {
            workers: usize::try_from(value("--workers", Some("DATASCALE_BENCH_WORKERS"), 10_000))
                .expect("--workers fits in memory"),
            heartbeat: Duration::from_secs(value("--heartbeat-secs", None, 5)),
            settle: Duration::from_secs(value("--settle-secs", None, 30)),
            window: Duration::from_secs(value("--window-secs", None, 30)),
        };
        assert!(
            settings.workers >= GROUPS.len(),
            "--workers must be at least 2"
        );
        assert!(
            !settings.heartbeat.is_zero(),
            "--heartbeat-secs must be positive"
        );
        settings
    }

    fn group_of(index: usize) -> &'static str {
        GROUPS[index % GROUPS.len()]
    }
}

/// What the simulated workers did, shared with the measurements.
struct Fleet {
    /// Time zero: heartbeats are phased from it, receipts counted from it.
    epoch: Instant,
    enrolled: AtomicUsize,
    /// Whether heartbeat latencies are being recorded.
    recording: AtomicBool,
    latencies: Mutex<Vec<Duration>>,
    heartbeats: AtomicU64,
    states_received: AtomicU64,
    unchanged: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    /// Per worker: the revision of the desired state it holds (0: none yet).
    revisions: Vec<AtomicU64>,
    /// Per worker: when it received that state, in µs since `epoch`.
    received_at: Vec<AtomicU64>,
}

impl Fleet {
    fn new(workers: usize) -> Self {
        Self {
            epoch: Instant::now(),
            enrolled: AtomicUsize::new(0),
            recording: AtomicBool::new(false),
            latencies: Mutex::new(Vec::new()),
            heartbeats: AtomicU64::new(0),
            states_received: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_errors: Mutex::new(Vec::new()),
            revisions: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            received_at: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn error(&self, what: impl Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first.len() < 5 {
            first.push(what.to_string());
        }
    }

    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// How many workers hold a desired state.
    fn synced(&self) -> usize {
        self.revisions
            .iter()
            .filter(|revision| revision.load(Ordering::Acquire) > 0)
            .count()
    }
}

/// The manager process, stopped when dropped.
struct Manager {
    child: Child,
    address: SocketAddr,
}

impl Manager {
    fn start(dir: &Path, settings: Settings) -> Self {
        let mut command = Command::new(BIN);
        for (name, _) in std::env::vars() {
            if name.starts_with("DATASCALE_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .current_dir(dir)
            .arg("start")
            .env("DATASCALE_SERVICE_MODE", "manager")
            .env("DATASCALE_SERVICE_ADDRESS", "127.0.0.1:0")
            .env("DATASCALE_SERVICE_UI_ADDRESS", "127.0.0.1:0")
            .env("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("DATASCALE_SERVICE_MANAGER_WORKER_TOKEN", ENROLLMENT_TOKEN)
            .env(
                "DATASCALE_SERVICE_WORKER_HEARTBEAT_INTERVAL_SECS",
                settings.heartbeat.as_secs().to_string(),
            )
            .env("DATASCALE_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .spawn()
            .expect("datascale starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let address = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().expect("datascale exits");
                panic!("the manager exited before it started ({status})");
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["fields"]["message"] == "DataScale started." {
                break event["fields"]["api_address"]
                    .as_str()
                    .and_then(|address| address.parse().ok())
                    .expect("the start-up line names the API address");
            }
        };
        // Keep reading, so that the manager never blocks on a full pipe;
        // show what it warns about.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if !line.contains(r#""level":"INFO""#) {
                    eprintln!("manager: {line}");
                }
            }
        });
        Self { child, address }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises the soft open-file limit to the hard one; fails when even that
/// leaves no room for `workers` connections.
fn raise_open_files(workers: usize) -> Result<u64, String> {
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)
        .map_err(|err| format!("cannot raise the open-file limit: {err}"))?;
    let open_files = limit.maximum.unwrap_or(u64::MAX);
    let needed = workers as u64 + SPARE_FILES;
    if open_files < needed {
        return Err(format!(
            "the hard open-file limit is {open_files}, but {workers} workers need at least {needed} \
             in this process and in the manager: raise it (`ulimit -Hn`, limits.conf or the \
             container's nofile) or pass a smaller --workers"
        ));
    }
    Ok(open_files)
}

/// A dataflow of `group`; `marker` makes a changed document.
fn dataflow(group: &str, marker: u64) -> Value {
    json!({
        "name": DATAFLOW,
        "sources": [{"name": "gen", "type": "demo",
                     "conf": {"interval_secs": 1, "lines": [format!("{group} {marker}")]}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["gen"], "conf": {}}]
    })
}

/// An admin's requests.
struct Admin {
    client: Client,
    manager: String,
}

impl Admin {
    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.manager))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Puts the dataflow of `group`; returns its new revision.
    async fn put_dataflow(&self, group: &str, marker: u64) -> u64 {
        let path = format!("/api/v1/groups/{group}/dataflows/{DATAFLOW}");
        let (status, body) = self
            .send(reqwest::Method::PUT, &path, &dataflow(group, marker))
            .await;
        assert!(status.is_success(), "PUT {path}: {status} {body}");
        body["revision"]
            .as_u64()
            .expect("a written dataflow has a revision")
    }
}

/// One simulated worker.
struct Worker {
    index: usize,
    fleet: Arc<Fleet>,
    client: Client,
    manager: Arc<str>,
    identity: Identity,
    interval: Duration,
}

impl Worker {
    fn new(
        index: usize,
        fleet: Arc<Fleet>,
        client: Client,
        manager: Arc<str>,
        interval: Duration,
    ) -> Self {
        let identity = Identity {
            id: format!("bench-{index:05}"),
            hostname: format!("host-{index:05}.bench.example"),
            version: VERSION.to_owned(),
            groups: vec![Settings::group_of(index).to_owned()],
            address: format!(
                "10.{}.{}.{}:7881",
                index >> 16 & 255,
                index >> 8 & 255,
                index & 255
            ),
        };
        Self {
            index,
            fleet,
            client,
            manager,
            identity,
            interval,
        }
    }

    /// Enrolls (retrying), then heartbeats and syncs for ever.
    async fn run(self, enrolling: Arc<Semaphore>) {
        let credential = loop {
            let permit = enrolling.acquire().await.expect("the semaphore stays open");
            let enrolled = self.enroll().await;
            drop(permit);
            match enrolled {
                Ok(credential) => break credential,
                Err(err) => {
                    self.fleet.error(format_args!("enroll: {err}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        self.fleet.enrolled.fetch_add(1, Ordering::Relaxed);
        let authorization = format!("Bearer {credential}");
        tokio::join!(self.heartbeats(&authorization), self.syncs(&authorization));
    }

    async fn enroll(&self) -> Result<String, String> {
        let response = self
            .client
            .post(format!("{}/api/v1/workers/enroll", self.manager))
            .bearer_auth(ENROLLMENT_TOKEN)
            .header(CLUSTER_HEADER, CLUSTER)
            .json(&self.identity)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|err| chain(&err))?;
        if response.status() != StatusCode::CREATED {
            return Err(format!("answered {}", response.status()));
        }
        let enrolled: Enrolled = response.json().await.map_err(|err| err.to_string())?;
        Ok(enrolled.credential)
    }

    /// What a worker running two dataflows of its group reports.
    fn heartbeat(&self, beats: u64) -> Heartbeat {
        let revision = self.fleet.revisions[self.index].load(Ordering::Relaxed);
        let group = &self.identity.groups[0];
        let report = |name: &str, rate: u64| DataflowReport {
            group: group.clone(),
            name: name.to_owned(),
            state: DataflowState::Running,
            revision: Some(revision),
            document_sha256: Some("0".repeat(64)),
            wanted_revision: revision,
            last_error: None,
            restarting: 0,
            events_in: beats * rate,
            events_out: beats * rate,
            errors: 0,
        };
        Heartbeat {
            identity: self.identity.clone(),
            applied_revision: revision,
            dataflows: vec![report(DATAFLOW, 5_000), report("forward", 120)],
            cpu_seconds: beats as f64 * 0.05,
            resident_bytes: 48 << 20,
            load1: 0.42,
        }
    }

    async fn heartbeats(&self, authorization: &str) {
        // This worker's place in the interval, so that the fleet's
        // heartbeats are spread evenly over it.
        let workers = self.fleet.revisions.len();
        let phase = self.interval.mul_f64(self.index as f64 / workers as f64);
        let mut first = self.fleet.epoch + phase;
        while first < Instant::now() {
            first += self.interval;
        }
        let mut ticks = tokio::time::interval_at(first.into(), self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let url = format!("{}/api/v1/heartbeat", self.manager);
        for beats in 0.. {
            ticks.tick().await;
            let sent = Instant::now();
            let answer = self
                .client
                .post(&url)
                .header(AUTHORIZATION, authorization)
                .header(CLUSTER_HEADER, CLUSTER)
                .json(&self.heartbeat(beats))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            let replied = match answer {
                Ok(response) if response.status() == StatusCode::OK => response
                    .json::<HeartbeatReply>()
                    .await
                    .map_err(|err| err.to_string()),
                Ok(response) => Err(format!("answered {}", response.status())),
                Err(err) => Err(chain(&err)),
            };
            match replied {
                Ok(_) => {
                    let latency = sent.elapsed();
                    self.fleet.heartbeats.fetch_add(1, Ordering::Relaxed);
                    if self.fleet.recording.load(Ordering::Relaxed) {
                        self.fleet
                            .latencies
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(latency);
                    }
                }
                Err(err) => self.fleet.error(format_args!("heartbeat: {err}")),
            }
        }
    }

    async fn syncs(&self, authorization: &str) {
        let base = format!(
            "{}/api/v1/sync?worker_id={}&revision=",
            self.manager, self.identity.id
        );
        // The store epoch of the state held, as a real worker sends it.
        let mut epoch = String::new();
        loop {
            let holding = self.fleet.revisions[self.index].load(Ordering::Relaxed);
            let answer = self
                .client
                .get(format!("{base}{holding}{epoch}"))
                .header(AUTHORIZATION, authorization)
                .header(CLUSTER_HEADER, CLUSTER)
                .timeout(Duration::from_secs(SYNC_WAIT_SECS + 10))
                .send()
                .await;
            let outcome = match answer {
                Ok(response) if response.status() == StatusCode::NOT_MODIFIED => Ok(None),
                Ok(response) if response.status() == StatusCode::OK => response
                    .json::<DesiredState>()
                    .await
                    .map(Some)
                    .map_err(|err| err.to_string()),
                Ok(response) => Err(format!("answered {}", response.status())),
                Err(err) => Err(chain(&err)),
            };
            match outcome {
                Ok(None) => {
                    self.fleet.unchanged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(desired)) => {
                    let at = self.fleet.since_epoch(Instant::now());
                    self.fleet.states_received.fetch_add(1, Ordering::Relaxed);
                    if desired.dataflows.len() != 1 {
                        self.fleet.error(format_args!(
                            "sync: {} dataflows in the desired state of {}",
                            desired.dataflows.len(),
                            self.identity.id
                        ));
                    }
                    self.fleet.received_at[self.index].store(at, Ordering::Relaxed);
                    self.fleet.revisions[self.index].store(desired.revision, Ordering::Release);
                    epoch = format!("&epoch={}", desired.epoch);
                }
                Err(err) => {
                    self.fleet.error(format_args!("sync: {err}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// An error with its causes: reqwest's own message seldom says what failed.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

/// How long a change took to reach the workers `of` selects.
struct Delivery {
    /// How long the change itself took to be answered.
    written: Duration,
    workers: usize,
    delivered: usize,
    first: Duration,
    median: Duration,
    last: Duration,
}

/// Waits until the workers `of` selects hold at least the revision
/// `revision_of` gives them, then tells how long each took from `started`.
async fn delivery(
    fleet: &Fleet,
    started: Instant,
    written: Duration,
    revision_of: impl Fn(usize) -> u64,
    of: impl Fn(usize) -> bool + Copy,
) -> Delivery {
    let deadline = started + DELIVERY_LIMIT;
    let selected: Vec<usize> = (0..fleet.revisions.len()).filter(|&i| of(i)).collect();
    let arrived = |i: usize| fleet.revisions[i].load(Ordering::Acquire) >= revision_of(i);
    while Instant::now() < deadline && !selected.iter().all(|&i| arrived(i)) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let since = fleet.since_epoch(started);
    let mut times: Vec<Duration> = selected
        .iter()
        .filter(|&&i| arrived(i))
        .map(|&i| {
            let at = fleet.received_at[i].load(Ordering::Relaxed);
            Duration::from_micros(at.saturating_sub(since))
        })
        .collect();
    times.sort_unstable();
    Delivery {
        written,
        workers: selected.len(),
        delivered: times.len(),
        first: times.first().copied().unwrap_or(DELIVERY_LIMIT),
        median: percentile(&times, 0.5),
        last: times.last().copied().unwrap_or(DELIVERY_LIMIT),
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[at - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report_delivery(title: &str, delivery: &Delivery, settings: Settings) {
    let met = delivery.delivered == delivery.workers && delivery.last < TARGET_DELIVERY;
    let missing = match delivery.workers - delivery.delivered {
        0 => String::new(),
        missing => format!(
            " ({missing} never got it within {} s)",
            DELIVERY_LIMIT.as_secs()
        ),
    };
    println!(
        "{title}: {} of {} workers in {:.2} s{missing} (target for all {TARGET_WORKERS}: < {} s, {}); \
         the write answered in {}, the first worker had it after {}, half of them after {}",
        delivery.delivered,
        delivery.workers,
        delivery.last.as_secs_f64(),
        TARGET_DELIVERY.as_secs(),
        target_verdict(met, settings),
        ms(delivery.written),
        ms(delivery.first),
        ms(delivery.median),
    );
}

/// The verdict, or why there is none for other settings than the target's.
fn target_verdict(met: bool, settings: Settings) -> &'static str {
    if settings.workers == TARGET_WORKERS && settings.heartbeat == Duration::from_secs(5) {
        verdict(met)
    } else {
        if met {
            "met with other settings"
        } else {
            "missed with other settings"
        }
    }
}

/// The load averages over 1, 5 and 15 minutes: other work on the machine
/// takes CPU from both processes.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let settings = Settings::from_args();
    let open_files = match raise_open_files(settings.workers) {
        Ok(limit) => limit,
        Err(why) => {
            eprintln!("cluster benchmark: {why}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let manager = Manager::start(dir.path(), settings);
    println!(
        "manager: pid {} on {}; {} simulated workers in groups {} and {}, heartbeat every {} s; \
         open files up to {open_files}; load average before: {}",
        manager.pid(),
        manager.address,
        settings.workers,
        GROUPS[0],
        GROUPS[1],
        settings.heartbeat.as_secs(),
        load_average(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(measure(&manager, settings));
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(manager);
    println!(
        "rerun: cargo bench --bench cluster -- --workers {} --heartbeat-secs {} --settle-secs {} --window-secs {}",
        settings.workers,
        settings.heartbeat.as_secs(),
        settings.settle.as_secs(),
        settings.window.as_secs(),
    );
}

async fn measure(manager: &Manager, settings: Settings) {
    let pid = manager.pid();
    let admin = Admin {
        client: Client::new(),
        manager: manager.url(""),
    };
    for group in GROUPS {
        let (status, body) = admin
            .send(
                reqwest::Method::POST,
                "/api/v1/groups",
                &json!({"name": group}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating group {group}: {body}"
        );
        admin.put_dataflow(group, 0).await;
    }

    let fleet = Arc::new(Fleet::new(settings.workers));
    let client = Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(SYNC_WAIT_SECS * 3))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("the HTTP client builds");
    let base: Arc<str> = manager.url("").into();
    let enrolling = Arc::new(Semaphore::new(ENROLLING_AT_ONCE));
    let started = Instant::now();
    for index in 0..settings.workers {
        let worker = Worker::new(
            index,
            fleet.clone(),
            client.clone(),
            base.clone(),
            settings.heartbeat,
        );
        tokio::spawn(worker.run(enrolling.clone()));
    }
    let mut last_progress = Instant::now();
    loop {
        let enrolled = fleet.enrolled.load(Ordering::Relaxed);
        let synced = fleet.synced();
        if enrolled == settings.workers && synced == settings.workers {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            println!(
                "  … {enrolled} enrolled, {synced} synced after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "the fleet did not come up within 30 minutes: {enrolled} enrolled, {synced} synced; \
             errors: {:?}",
            fleet
                .first_errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let up = started.elapsed();
    println!(
        "enrolled and synced: {} workers in {:.1} s = {:.0} workers/s; manager RSS {:.1} MiB",
        settings.workers,
        up.as_secs_f64(),
        settings.workers as f64 / up.as_secs_f64(),
        mib(status_kib(pid, "VmRSS:")),
    );

    tokio::time::sleep(settings.settle).await;
    let errors_before = fleet.errors();
    let cpu_before = cpu_seconds(pid);
    let own_cpu_before = cpu_seconds(std::process::id());
    let beats_before = fleet.heartbeats.load(Ordering::Relaxed);
    let window_started = Instant::now();
    fleet.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(settings.window).await;
    fleet.recording.store(false, Ordering::Relaxed);
    let window = window_started.elapsed().as_secs_f64();
    let manager_cpu = cpu_seconds(pid) - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_before;
    let beats = fleet.heartbeats.load(Ordering::Relaxed) - beats_before;
    let steady_rss = status_kib(pid, "VmRSS:");
    let window_errors = fleet.errors() - errors_before;
    let mut latencies = std::mem::take(
        &mut *fleet
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    latencies.sort_unstable();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "heartbeats over {window:.0} s: {beats} = {:.0}/s; latency p50 {}, p99 {}, max {} \
         (target p99 < {}, {})",
        beats as f64 / window,
        ms(percentile(&latencies, 0.5)),
        ms(p99),
        ms(latencies.last().copied().unwrap_or_default()),
        ms(TARGET_HEARTBEAT_P99),
        target_verdict(p99 < TARGET_HEARTBEAT_P99, settings),
    );
    println!(
        "steady state: manager CPU {manager_cpu:.2} s over {window:.0} s = {:.0} % of a core \
         (this load generator: {:.0} %); RSS {:.1} MiB; {window_errors} failed requests",
        manager_cpu / window * 100.0,
        own_cpu / window * 100.0,
        mib(steady_rss),
    );

    let group_a = |i: usize| Settings::group_of(i) == GROUPS[0];
    let others = |fleet: &Fleet| -> Vec<u64> {
        (0..settings.workers)
            .filter(|&i| !group_a(i))
            .map(|i| fleet.revisions[i].load(Ordering::Acquire))
            .collect()
    };
    let others_before = others(&fleet);
    let put = Instant::now();
    let revision = admin.put_dataflow(GROUPS[0], 1).await;
    let one = delivery(&fleet, put, put.elapsed(), |_| revision, group_a).await;
    report_delivery(
        &format!("change to group {} delivered", GROUPS[0]),
        &one,
        settings,
    );
    let bothered = others_before
        .iter()
        .zip(others(&fleet))
        .filter(|(before, after)| **before != *after)
        .count();
    if bothered > 0 {
        fleet.error(format_args!(
            "{bothered} workers of {} got a new state for a change to {}",
            GROUPS[1], GROUPS[0]
        ));
    }

    tokio::time::sleep(settings.heartbeat).await;
    let put = Instant::now();
    let (revision_a, revision_b) = tokio::join!(
        admin.put_dataflow(GROUPS[0], 2),
        admin.put_dataflow(GROUPS[1], 2)
    );
    let written = put.elapsed();
    let all = delivery(
        &fleet,
        put,
        written,
        |i| if group_a(i) { revision_a } else { revision_b },
        |_| true,
    )
    .await;
    report_delivery("change to both groups delivered", &all, settings);

    let overview = admin
        .client
        .get(manager.url("/api/v1/overview"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the overview answers")
        .json::<Value>()
        .await
        .expect("the overview is JSON");
    let peak_rss = status_kib(pid, "VmHWM:");
    println!(
        "manager: CPU {:.1} s in all; RSS peak {:.1} MiB, steady {:.1} MiB (target < {TARGET_RSS_MIB:.0} MiB, {}); \
         {} of {} workers online",
        cpu_seconds(pid),
        mib(peak_rss),
        mib(steady_rss),
        target_verdict(mib(peak_rss) < TARGET_RSS_MIB, settings),
        overview["workers"]["online"],
        settings.workers,
    );
    let first_errors = fleet
        .first_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    println!(
        "requests: {} heartbeats, {} desired states, {} unchanged syncs; {} failed{}",
        fleet.heartbeats.load(Ordering::Relaxed),
        fleet.states_received.load(Ordering::Relaxed),
        fleet.unchanged.load(Ordering::Relaxed),
        fleet.errors(),
        if first_errors.is_empty() {
            String::new()
        } else {
            format!(", the first: {first_errors:?}")
        },
    );
}
