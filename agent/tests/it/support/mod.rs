//! Test harness: starts the real `datascale` binary in a temporary install
//! directory on ephemeral loopback ports, and reads back the addresses it
//! bound from its JSON log; managers and workers with the tests' tokens, a
//! client of the REST API, and the waits and file readers the areas share.
//! `browser` drives a headless Chromium for the Web UI's tests,
//! `connections` probes a server's connection limits over raw TCP, and
//! `test_hosts` boots Docker containers as machines.
//!
//! Every test of the binary runs in one process, on parallel threads: what
//! must not overlap takes a lock here ([`whole_machine`]) or in
//! `test_hosts` (one set of hosts at a time).

pub mod browser;
pub mod connections;
pub mod test_hosts;

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Mutex, MutexGuard, PoisonError, mpsc},
    thread,
    time::{Duration, Instant},
};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_datascale");

/// The admin token of the managers the tests start with [`start_manager`].
pub const ADMIN: &str = "admin-secret-for-tests";

/// The worker (enrollment) token of those managers.
pub const ENROLL: &str = "enrollment-secret-for-tests";

/// The machine's cores, for the tests that keep both busy for a while or
/// whose figures depend on having them: the kill runs of `crash_repeats`,
/// the thousands of connections of `connection_limits`, the schemathesis
/// runs of `openapi`. Each takes it with [`whole_machine`], so that no two
/// of them overlap; every other test may run beside one of them.
static WHOLE_MACHINE: Mutex<()> = Mutex::new(());

/// [`WHOLE_MACHINE`], held until dropped.
pub struct WholeMachine {
    _guard: MutexGuard<'static, ()>,
}

/// Waits until no other test holds [`WHOLE_MACHINE`], and holds it. A test
/// that failed holding it leaves it free: the next one takes it all the
/// same. An async test may hold it across `.await`: each test has a
/// runtime of its own, and the lock waits only for other tests.
pub fn whole_machine() -> WholeMachine {
    let guard = WHOLE_MACHINE.lock().unwrap_or_else(PoisonError::into_inner);
    WholeMachine { _guard: guard }
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A `datascale` command in `home` with a clean `DATASCALE_*` environment.
pub fn command(home: &Path) -> Command {
    in_home(Command::new(BIN), home)
}

/// A `datascale` command like [`command`], run by `prlimit` under an
/// open-file limit (soft and hard) of `limit`.
pub fn command_with_open_files(home: &Path, limit: u64) -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={limit}:{limit}"))
        .arg("--")
        .arg(BIN);
    in_home(command, home)
}

/// `command` in `home` with the `DATASCALE_*` variables of the tests'
/// environment removed.
fn in_home(mut command: Command, home: &Path) -> Command {
    command.current_dir(home);
    for (name, _) in std::env::vars() {
        if name.starts_with("DATASCALE_") {
            command.env_remove(name);
        }
    }
    command
}

/// A program of the Python test tools (`agent/tests/requirements.txt`):
/// from `TEST_TOOLS_BIN`, where `scripts/test.sh` installs them, or from
/// `PATH` without it.
pub fn tool(name: &str) -> Command {
    let path = std::env::var_os("TEST_TOOLS_BIN")
        .map(|bin| PathBuf::from(bin).join(name))
        .unwrap_or_else(|| PathBuf::from(name));
    let mut command = Command::new(&path);
    command.env_remove("PYTHONPATH");
    command
}

/// Runs a test tool to completion; fails the test, saying how to install
/// the tools, when it cannot run.
pub fn run_tool(mut command: Command) -> Output {
    command.output().unwrap_or_else(|err| {
        panic!(
            "cannot run {:?} ({err}); install the test tools with \
             `pip install -r agent/tests/requirements.txt` (scripts/test.sh does) \
             and set TEST_TOOLS_BIN to their bin directory",
            command.get_program()
        )
    })
}

/// Runs a test tool to completion and fails the test, with the tool's
/// output, unless it succeeds.
pub fn run_tool_successfully(command: Command) -> Output {
    let output = run_tool(command);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a command to completion; fails the test, with its output, unless
/// it succeeds.
pub fn checked(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The standard output of a command, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The standard error of a command, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Packs the binary under test with `packaging/build.sh` into `out`, dated
/// `epoch` (`SOURCE_DATE_EPOCH`): the agent tarball, the Ansible toolkit's
/// and their `SHA256SUMS`.
pub fn build_packages(out: &Path, epoch: &str) {
    checked(
        Command::new(repository().join("packaging/build.sh"))
            .args(["--binary", BIN, "--out"])
            .arg(out)
            .env("SOURCE_DATE_EPOCH", epoch),
    );
}

/// Runs a `datascale` command to completion.
pub fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(home)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("datascale runs")
}

/// A running `datascale start`.
pub struct Node {
    pub child: Child,
    pub api: SocketAddr,
    pub ui: Option<SocketAddr>,
    /// Lines of standard output after the start-up line.
    pub stdout: mpsc::Receiver<String>,
    /// Lines printed before the start-up line (generated tokens, …).
    pub early_output: Vec<String>,
}

/// Starts a node in `home` on ephemeral loopback ports, with `env` on top,
/// and waits (up to 30 s) until it says it has started.
pub fn start(home: &Path, env: &[(&str, &str)]) -> Node {
    start_command(command(home), env)
}

/// Starts a node like [`start`], under an open-file limit of `limit`.
pub fn start_with_open_files(home: &Path, env: &[(&str, &str)], limit: u64) -> Node {
    start_command(command_with_open_files(home, limit), env)
}

/// Runs `start` with `command` and waits until the node has started.
fn start_command(mut command: Command, env: &[(&str, &str)]) -> Node {
    let mut child = command
        .arg("start")
        .env("DATASCALE_SERVICE_ADDRESS", "127.0.0.1:0")
        .env("DATASCALE_SERVICE_UI_ADDRESS", "127.0.0.1:0")
        .env("DATASCALE_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("datascale starts");
    let (sender, stdout) = mpsc::channel();
    let reader = BufReader::new(child.stdout.take().unwrap());
    thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut early_output = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match stdout.recv_timeout(left) {
            Ok(line) => line,
            Err(why) => {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                let what = match why {
                    mpsc::RecvTimeoutError::Timeout => "did not start within 30 s",
                    mpsc::RecvTimeoutError::Disconnected => "exited before it started",
                };
                panic!(
                    "datascale {what} ({}); stdout so far: {early_output:#?}\nstderr: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            early_output.push(line);
            continue;
        };
        if event["fields"]["message"] == "DataScale started." {
            let api = event["fields"]["api_address"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let ui = event["fields"]["ui_address"].as_str().unwrap().parse().ok();
            return Node {
                child,
                api,
                ui,
                stdout,
                early_output,
            };
        }
        early_output.push(line);
    }
}

/// Starts a manager in `dir` (made if missing) with the tokens [`ADMIN`]
/// and [`ENROLL`], and `extra` settings over them.
pub fn start_manager(dir: &Path, extra: &[(&str, &str)]) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    let mut env = vec![
        ("DATASCALE_SERVICE_MODE", "manager"),
        ("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN),
        ("DATASCALE_SERVICE_MANAGER_WORKER_TOKEN", ENROLL),
    ];
    env.extend_from_slice(extra);
    start(dir, &env)
}

/// Starts a worker in `dir` (made if missing) as host `hostname`, in
/// `groups`, following the manager at `manager_url` with `token` and
/// heartbeating every second, with `extra` settings over these.
pub fn start_worker(
    dir: &Path,
    hostname: &str,
    manager_url: &str,
    groups: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    let mut env = vec![
        ("HOSTNAME", hostname),
        ("DATASCALE_SERVICE_MODE", "worker"),
        ("DATASCALE_SERVICE_WORKER_MANAGER_ADDRESS", manager_url),
        ("DATASCALE_SERVICE_WORKER_GROUPS", groups),
        ("DATASCALE_SERVICE_WORKER_TOKEN", token),
        ("DATASCALE_SERVICE_WORKER_HEARTBEAT_INTERVAL_SECS", "1"),
    ];
    env.extend_from_slice(extra);
    start(dir, &env)
}

/// Starts a worker of `manager` in `dir` as [`start_worker`] does, with
/// nothing on top.
pub fn worker(dir: &Path, hostname: &str, manager: &Node, groups: &str, token: &str) -> Node {
    start_worker(dir, hostname, &manager.api_url(""), groups, token, &[])
}

impl Node {
    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// Sends SIGTERM and waits up to `limit` for the exit.
    pub fn terminate(mut self, limit: Duration) -> (ExitStatus, Duration) {
        terminate(&mut self.child, limit)
    }
}

/// Sends SIGTERM to `child` and waits up to `limit` for its exit; returns
/// the status and how long the exit took. The signal waits (up to `limit`
/// too) until `child` handles it: one sent before, in the first
/// milliseconds of a process, ends it by the kernel's default action.
pub fn terminate(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    wait_until(limit, "handler of SIGTERM", || handles_sigterm(child.id()));
    let sent = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for(limit, "exit after SIGTERM", || child.try_wait().unwrap());
    (status, sent.elapsed())
}

/// Whether process `pid` catches SIGTERM (`SigCgt` of `/proc/<pid>/status`),
/// or has exited already: a zombie takes the signal as well.
fn handles_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let caught = field("SigCgt")
        .and_then(|mask| u64::from_str_radix(mask, 16).ok())
        .unwrap_or_else(|| panic!("no SigCgt in the status of process {pid}"));
    let sigterm = 1 << (rustix::process::Signal::TERM.as_raw() - 1);
    caught & sigterm != 0 || field("State").is_some_and(|state| state.starts_with('Z'))
}

/// Polls `done` every 20 ms until it holds; fails the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    wait_for(limit, what, || done().then_some(()));
}

/// Polls `probe` every 20 ms until it returns a value; fails the test
/// after `limit`. [`eventually`] is the same for async probes.
pub fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "no {what} within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary install directory.
pub fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `home/data/secrets/<kind>.token`.
pub fn token_file(home: &Path, kind: &str) -> PathBuf {
    home.join("data")
        .join("secrets")
        .join(format!("{kind}.token"))
}

/// The token a node generated in `home`: `admin` or `worker`.
pub fn token(home: &Path, kind: &str) -> String {
    std::fs::read_to_string(token_file(home, kind))
        .unwrap()
        .trim()
        .to_owned()
}

/// Writes a dataflow document into `dir` and returns its path.
pub fn write_dataflow(dir: &Path, document: &serde_json::Value) -> String {
    let path = dir.join(format!(
        "{}.json",
        document["name"].as_str().unwrap_or("dataflow")
    ));
    std::fs::write(&path, document.to_string()).unwrap();
    path.display().to_string()
}

/// A running `datascale run`, killed when dropped so that a failing test
/// leaves no process behind.
pub struct Running {
    pub child: Child,
}

impl Running {
    /// Sends SIGTERM once the process handles it, waits up to 20 s, and
    /// asserts a clean exit.
    pub fn stop(mut self) {
        let (status, _) = terminate(&mut self.child, Duration::from_secs(20));
        assert!(status.success(), "datascale run exited with {status:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `datascale run` on a dataflow document in `dir`; logs go to the
/// test's standard error.
pub fn spawn_run(dir: &Path, document: &serde_json::Value) -> Running {
    let file = write_dataflow(dir, document);
    let child = command(dir)
        .args(["run", "--dataflow", &file])
        .spawn()
        .expect("datascale starts");
    Running { child }
}

/// The complete JSON lines of a sink's output file (a line still being
/// written is left out); none while the file does not exist.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

/// Appends one line per item to `path` in one write, creating the file and
/// its directory when missing.
pub fn append_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A loopback address whose TCP port is free right now (bound, read back
/// and released), for a dataflow under test to listen on.
pub fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A loopback address whose UDP port is free right now, as
/// [`free_address`] for TCP.
pub fn free_udp_address() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits (up to 30 s) until something accepts TCP connections on `address`.
pub fn wait_for_listener(address: SocketAddr) {
    wait_until(Duration::from_secs(30), "listener", || {
        TcpStream::connect(address).is_ok()
    });
}

/// A client of a node's REST API with one bearer token.
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

/// An answer of the API: status, headers and the JSON body (`Null` when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

/// Asserts that `answer` is an error of `status` and `code` whose message
/// holds every one of `words`.
pub fn assert_error(answer: &Answer, status: u16, code: &str, words: &[&str]) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap();
    for word in words {
        assert!(message.contains(word), "`{word}` not in: {message}");
    }
}

impl Answer {
    /// Reads a response: its JSON body, else its text, else `Null`.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = match bytes.is_empty() {
            true => serde_json::Value::Null,
            false => serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }),
        };
        Self {
            status,
            headers,
            body,
        }
    }

    /// The `ETag` header, if any.
    pub fn etag(&self) -> Option<&str> {
        self.headers.get("etag").and_then(|v| v.to_str().ok())
    }
}

impl Api {
    /// A client of `node` with the admin token the node generated in `home`.
    pub fn admin(node: &Node, home: &Path) -> Self {
        Self::with_token(node, &token(home, "admin"))
    }

    /// A client of `node` with `token`.
    pub fn with_token(node: &Node, token: &str) -> Self {
        Self {
            base: node.api_url(""),
            token: token.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// Sends a request with an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Answer::read(request.send().await.expect("the node answers")).await
    }

    /// POSTs `body` as bytes, with `headers` (such as its `Content-Type`).
    pub async fn post_bytes(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Answer::read(request.send().await.expect("the node answers")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn put(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.send(reqwest::Method::PUT, path, Some(body), &[]).await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None, &[]).await
    }
}

/// POSTs `body` to the events of the event set `set` as `api`, with
/// `headers`; as NDJSON unless they name another `Content-Type`.
pub async fn ingest(api: &Api, set: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let mut headers = headers.to_vec();
    if !headers.iter().any(|(name, _)| *name == "Content-Type") {
        headers.push(("Content-Type", "application/x-ndjson"));
    }
    api.post_bytes(&format!("/api/v1/event_sets/{set}/events"), body, &headers)
        .await
}

/// `events` as NDJSON, a line each.
pub fn ndjson(events: &[serde_json::Value]) -> Vec<u8> {
    events
        .iter()
        .map(|event| format!("{event}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Polls `probe` every 50 ms until it returns a value; fails the test after
/// `limit`.
pub async fn eventually<T, F>(limit: Duration, what: &str, mut probe: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "no {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first worker `GET /api/v1/workers` lists for which `wanted` holds,
/// once there is one; fails the test, naming `what`, after `limit`.
pub async fn listed_worker(
    api: &Api,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(limit, what, || async {
        let workers = api.get("/api/v1/workers").await.body;
        workers.as_array()?.iter().find(|w| wanted(w)).cloned()
    })
    .await
}

/// Waits up to `limit` for a line of the node's standard output holding
/// every one of `words`, and returns it.
pub fn wait_for_output(node: &Node, limit: Duration, words: &[&str]) -> String {
    let holds = |line: &String| words.iter().all(|word| line.contains(word));
    if let Some(line) = node.early_output.iter().find(|line| holds(line)) {
        return line.clone();
    }
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.stdout.recv_timeout(left) {
            Ok(line) if holds(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("no output line with {words:?} within {limit:?}"),
        }
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
}

/// Whether the tests run as root, for a test that needs it to check
/// anything: without root it is skipped, saying why, except where `CI` is
/// set, which runs the suite as root, so a test that would check nothing
/// fails instead.
pub fn root_for(what: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} needs root, and CI runs the tests as root"
    );
    eprintln!("skipped: {what} needs root");
    false
}

/// A `datascale` command, in `dir`, run by a user other than root: as
/// root, a copy of the binary in `dir/bin/` (which any user may run) run
/// as nobody; otherwise the binary as the tests' own user.
pub fn unprivileged(dir: &Path) -> Command {
    if !is_root() {
        let mut command = Command::new(BIN);
        command.current_dir(dir);
        return command;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("bin")).unwrap();
    let copy = dir.join("bin/datascale");
    std::fs::copy(BIN, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(copy)
        .current_dir(dir);
    command
}

/// The value of the first series of `family` in Prometheus text whose
/// labels hold every one of `labels` (`name="value"`).
pub fn series_value(metrics: &str, family: &str, labels: &[&str]) -> Option<u64> {
    let prefix = format!("{family}{{");
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .find(|rest| labels.iter().all(|label| rest.contains(label)))
        .and_then(|rest| rest.rsplit(' ').next()?.parse().ok())
}

/// Fails the test when a JSON document repeats a key in any of its
/// objects: parsers keep one of the two silently.
pub fn assert_unique_keys(document: &str) {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut keys = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("the key `{key}` twice")));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
    }
    impl<'de> serde::de::DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
            de.deserialize_any(self)
        }
    }
    let mut de = serde_json::Deserializer::from_str(document);
    serde::de::DeserializeSeed::deserialize(Unique, &mut de)
        .unwrap_or_else(|err| panic!("{err}: {document}"));
}

/// The resident set size of process `pid` (`VmRSS` of
/// `/proc/<pid>/status`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// The peak resident set size of process `pid` so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

/// The figure of `field` in `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in the status of process {pid}"))
}

/// A tmpfs mounted for a test, unmounted when dropped, so that a failing
/// test leaves no mount behind.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `1m`) at
    /// `path`, made if missing. Mounting needs root: elsewhere this says
    /// the test is skipped and returns `None`, except where `CI` is set,
    /// where the test fails instead.
    pub fn mount(path: &Path, size: &str) -> Option<Self> {
        if !root_for("mounting a tmpfs") {
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cannot mount a tmpfs at {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Self {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process that still has a file open there does not keep
        // the mount.
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(&self.path)
            .status();
    }
}
