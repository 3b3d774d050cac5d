//! Source types and their configurations (`conf`), with Vector's field names
//! where Vector has the same source.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use datascale_connections::ConnectionLimits;
use datascale_core::{
    component::{BuildError, ComponentTask, SourceContext},
    names::check_name,
};
use serde::{Deserialize, Serialize};

use super::{ComponentConfig, MAX_WAIT_SECS};
use crate::collector::{check_version, shelf::Shelf};

mod collector;
mod demo;
mod exec;
mod file;
mod host_metrics;
mod http_server;
mod internal_metrics;
mod lines;
mod stdin;
mod syslog;

/// A source: its `type` and, inside, its `conf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "conf",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum SourceConfig {
    /// Runs a command and turns each line it prints into an event.
    Exec(ExecConfig),
    /// Runs a custom collector installed on the manager.
    Collector(CollectorConfig),
    /// Tails files.
    File(FileConfig),
    /// Generates sample events.
    Demo(DemoConfig),
    /// Receives events over HTTP.
    HttpServer(HttpServerConfig),
    /// Receives syslog messages over TCP or UDP.
    Syslog(SyslogConfig),
    /// Measures the host: CPU, memory, disks, network, load.
    HostMetrics(HostMetricsConfig),
    /// This process's own metrics.
    InternalMetrics(InternalMetricsConfig),
    /// Reads lines from standard input.
    Stdin(StdinConfig),
}

/// `exec`: runs a command on a schedule, or once as a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// A string run by `sh -c`, or an argument vector run directly.
    pub command: ExecCommand,
    /// `scheduled`: run every `scheduled.exec_interval_secs`; `streaming`: run once and read as it prints.
    #[serde(default)]
    pub mode: ExecMode,
    /// Options of the scheduled mode.
    #[serde(default)]
    pub scheduled: ExecScheduled,
    /// Options of the streaming mode.
    #[serde(default)]
    pub streaming: ExecStreaming,
    /// Directory the command runs in; the worker's by default.
    #[serde(default)]
    pub working_directory: Option<PathBuf>,
    /// Variables added to the worker's environment for the command.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Turn lines printed on standard error into events too.
    #[serde(default = "default_true")]
    pub include_stderr: bool,
    /// A scheduled run still going after this many seconds is killed; 0 never kills.
    #[serde(default)]
    pub timeout_secs: u64,
    /// Longest line, in bytes; longer ones are truncated and logged.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How each line becomes an event: `bytes` (the line is the `message`)
    /// or `json` (the line is an object whose fields make the event).
    #[serde(default)]
    pub decoding: Decoding,
}

/// `collector`: runs a custom collector, uploaded to the manager as a
/// package, as its manifest says (entrypoint, mode, env, output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The collector's name, as uploaded to the manager.
    pub collector: String,
    /// The version to run; the highest uploaded when left out, so that a
    /// new upload replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Arguments after the entrypoint; the manifest's `args` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Seconds between two runs of a scheduled collector; the manifest's
    /// `interval_secs` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
    /// A scheduled run still going after this many seconds is killed; 0 never kills.
    #[serde(default)]
    pub timeout_secs: u64,
}

/// The command of an `exec` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a command string (run by sh -c) or an array of arguments"
)]
pub enum ExecCommand {
    /// Run by `sh -c`.
    Shell(String),
    /// Run directly: program, then arguments.
    Argv(Vec<String>),
}

/// When an `exec` source runs its command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// Every `exec_interval_secs`.
    #[default]
    Scheduled,
    /// Once, reading its output as it comes.
    Streaming,
}

/// `exec.scheduled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecScheduled {
    /// Seconds between the starts of two runs.
    #[serde(default = "default_exec_interval_secs")]
    pub exec_interval_secs: u64,
}

impl Default for ExecScheduled {
    fn default() -> Self {
        Self {
            exec_interval_secs: default_exec_interval_secs(),
        }
    }
}

/// `exec.streaming`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecStreaming {
    /// Start the command again when it exits.
    #[serde(default = "default_true")]
    pub respawn_on_exit: bool,
    /// Seconds to wait before starting it again.
    #[serde(default = "default_respawn_interval_secs")]
    pub respawn_interval_secs: u64,
}

impl Default for ExecStreaming {
    fn default() -> Self {
        Self {
            respawn_on_exit: true,
            respawn_interval_secs: default_respawn_interval_secs(),
        }
    }
}

/// `file`: tails the files matching `include`, following rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Glob patterns of the files to read.
    pub include: Vec<String>,
    /// Glob patterns of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in a file seen for the first time.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Leave out files not modified for this many seconds.
    #[serde(default)]
    pub ignore_older_secs: Option<u64>,
    /// Longest line, in bytes; see `oversize_lines` for longer ones.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// What to do with a line longer than `max_line_bytes`: `truncate` or `skip`. Both are counted.
    #[serde(default)]
    pub oversize_lines: OversizeLines,
    /// Milliseconds between two scans of the globs for new files.
    #[serde(default = "default_glob_minimum_cooldown_ms")]
    pub glob_minimum_cooldown_ms: u64,
}

/// Where the `file` source starts in a new file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From the first byte.
    #[default]
    Beginning,
    /// From the end: only lines written from now on.
    End,
}

/// What the `file` source does with a line longer than `max_line_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizeLines {
    /// Keep its first `max_line_bytes` bytes.
    #[default]
    Truncate,
    /// Drop it.
    Skip,
}

/// `demo`: generates sample events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// The kind of lines to generate.
    #[serde(default)]
    pub format: DemoFormat,
    /// How many events to generate; unlimited when absent.
    #[serde(default)]
    pub count: Option<u64>,
    /// Seconds between two events; 0 generates as fast as the sinks take them.
    #[serde(default = "default_demo_interval_secs")]
    pub interval_secs: f64,
    /// The lines `shuffle` picks from.
    #[serde(default)]
    pub lines: Vec<String>,
}

/// The lines a `demo` source generates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemoFormat {
    /// JSON objects.
    #[default]
    Json,
    /// RFC 5424 syslog lines.
    Syslog,
    /// RFC 3164 syslog lines.
    BsdSyslog,
    /// Apache common log lines.
    ApacheCommon,
    /// Apache error log lines.
    ApacheError,
    /// Lines picked from `lines`.
    Shuffle,
}

/// `http_server`: receives events over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Address to listen on, such as 0.0.0.0:8080.
    pub address: SocketAddr,
    /// Path that accepts events.
    #[serde(default = "default_http_path")]
    pub path: String,
    /// How request bodies become events.
    #[serde(default)]
    pub decoding: Decoding,
    /// Seconds from accepting a connection, or from the first byte of a
    /// later request on it, to the end of the request's head; a slower
    /// client is disconnected.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before
    /// it is closed.
    #[serde(default = "default_http_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Seconds a request's body may take to arrive after its head; a slower
    /// one is answered 408.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
    /// The most connections open at once; at most the open-file limit less
    /// 256. Past it, the connection idle the longest is closed to admit a
    /// new one, or the new one is answered 503 when none is idle.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl HttpServerConfig {
    /// The limits on this source's connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        connection_limits(
            self.max_connections,
            self.idle_timeout_secs,
            self.header_read_timeout_secs,
        )
    }
}

/// `decoding` of a source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decoding {
    /// `bytes`: the body is one event; `json`: an object or an array of objects; `ndjson`: one object a line.
    #[serde(default)]
    pub codec: DecodingCodec,
}

/// How a body is split into events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodingCodec {
    /// The whole body is the message of one event.
    #[default]
    Bytes,
    /// A JSON object, or an array of them.
    Json,
    /// One JSON object a line.
    Ndjson,
}

/// `syslog`: receives syslog messages (RFC 3164 and 5424).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Address to listen on, such as 0.0.0.0:514.
    pub address: SocketAddr,
    /// `tcp` (one message a line) or `udp` (one message a datagram).
    pub mode: SyslogMode,
    /// Longest message, in bytes; longer ones are truncated and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_length: usize,
    /// TCP: seconds a message may take to arrive once its first byte has; a
    /// slower sender is disconnected and the part it sent dropped.
    #[serde(default = "default_message_read_timeout_secs")]
    pub message_read_timeout_secs: u64,
    /// TCP: seconds a connection may stay without a message before it is
    /// closed. Long, since a sender over plain TCP may lose the message it
    /// writes into a connection just closed.
    #[serde(default = "default_syslog_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// TCP: the most connections open at once; at most the open-file limit
    /// less 256. Past it, the connection quiet the longest is closed to
    /// admit a new one.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl SyslogConfig {
    /// The limits on this source's TCP connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        connection_limits(
            self.max_connections,
            self.idle_timeout_secs,
            self.message_read_timeout_secs,
        )
    }
}

/// The limits of a source's connections, from its `conf`.
fn connection_limits(
    max_connections: u32,
    idle_timeout_secs: u64,
    read_timeout_secs: u64,
) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        idle_timeout: Duration::from_secs(idle_timeout_secs),
        read_timeout: Duration::from_secs(read_timeout_secs),
    }
}

/// The transport of a `syslog` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogMode {
    /// Messages over TCP, one a line.
    Tcp,
    /// Messages over UDP, one a datagram.
    Udp,
}

/// `host_metrics`: measures the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsConfig {
    /// Seconds between two measurements.
    #[serde(default = "default_scrape_interval_secs")]
    pub scrape_interval_secs: u64,
    /// What to measure; all of them by default.
    #[serde(default = "all_host_collectors")]
    pub collectors: Vec<HostCollector>,
}

/// A family of host metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCollector {
    /// CPU time per mode.
    Cpu,
    /// Memory and swap.
    Memory,
    /// Disk space per mount.
    Disk,
    /// Bytes and packets per interface.
    Network,
    /// Load averages.
    Load,
}

/// `internal_metrics`: this process's own metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalMetricsConfig {
    /// Seconds between two reports.
    #[serde(default = "default_scrape_interval_secs")]
    pub scrape_interval_secs: u64,
}

/// `stdin`: reads lines from standard input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Longest line, in bytes; longer ones are truncated and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_length: usize,
}

fn default_true() -> bool {
    true
}

fn default_exec_interval_secs() -> u64 {
    60
}

fn default_respawn_interval_secs() -> u64 {
    5
}

fn default_max_line_bytes() -> usize {
    102_400
}

fn default_glob_minimum_cooldown_ms() -> u64 {
    1_000
}

fn default_demo_interval_secs() -> f64 {
    1.0
}

fn default_http_path() -> String {
    "/".to_owned()
}

fn default_scrape_interval_secs() -> u64 {
    15
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_message_read_timeout_secs() -> u64 {
    10
}

fn default_http_idle_timeout_secs() -> u64 {
    60
}

fn default_syslog_idle_timeout_secs() -> u64 {
    3_600
}

fn default_body_read_timeout_secs() -> u64 {
    30
}

fn default_max_connections() -> u32 {
    1_024
}

fn all_host_collectors() -> Vec<HostCollector> {
    vec![
        HostCollector::Cpu,
        HostCollector::Memory,
        HostCollector::Disk,
        HostCollector::Network,
        HostCollector::Load,
    ]
}

impl SourceConfig {
    /// The running source, or why this type cannot run; a `collector`
    /// source runs a collector of `collectors`.
    pub fn build(
        &self,
        name: &str,
        context: SourceContext,
        collectors: &Shelf,
    ) -> Result<ComponentTask, BuildError> {
        match self {
            SourceConfig::Demo(config) => Ok(Box::pin(demo::run(config.clone(), context))),
            SourceConfig::Stdin(config) => Ok(Box::pin(stdin::run(config.clone(), context))),
            SourceConfig::Exec(config) => Ok(Box::pin(exec::run(config.clone(), context))),
            SourceConfig::Collector(config) => {
                let exec = collector::exec_config(config, collectors).map_err(|message| {
                    BuildError::Invalid {
                        component: name.to_owned(),
                        message,
                    }
                })?;
                Ok(Box::pin(exec::run(exec, context)))
            }
            SourceConfig::File(config) => {
                let patterns =
                    file::Patterns::new(config).map_err(|message| BuildError::Invalid {
                        component: name.to_owned(),
                        message,
                    })?;
                Ok(Box::pin(file::run(config.clone(), patterns, context)))
            }
            SourceConfig::HttpServer(config) => {
                let listener = bind(name, config.address, std::net::TcpListener::bind)?;
                Ok(Box::pin(http_server::run(
                    config.clone(),
                    listener,
                    context,
                )))
            }
            SourceConfig::Syslog(config) => {
                let socket = match config.mode {
                    SyslogMode::Tcp => syslog::Socket::Tcp(bind(
                        name,
                        config.address,
                        std::net::TcpListener::bind,
                    )?),
                    SyslogMode::Udp => {
                        syslog::Socket::Udp(bind(name, config.address, std::net::UdpSocket::bind)?)
                    }
                };
                Ok(Box::pin(syslog::run(config.clone(), socket, context)))
            }
            SourceConfig::InternalMetrics(config) => {
                Ok(Box::pin(internal_metrics::run(config.clone(), context)))
            }
            SourceConfig::HostMetrics(config) => {
                Ok(Box::pin(host_metrics::run(config.clone(), context)))
            }
        }
    }
}

/// Binds a socket while the dataflow is built, so that an address in use
/// stops the dataflow from starting, with the address named.
fn bind<S>(
    component: &str,
    address: SocketAddr,
    bind: impl FnOnce(SocketAddr) -> std::io::Result<S>,
) -> Result<S, BuildError> {
    bind(address).map_err(|err| BuildError::Invalid {
        component: component.to_owned(),
        message: format!("cannot listen on {address}: {err}"),
    })
}

/// The names of the fields whose value is 0.
fn zeros<const N: usize>(fields: [(&'static str, u64); N]) -> impl Iterator<Item = &'static str> {
    fields
        .into_iter()
        .filter(|(_, value)| *value == 0)
        .map(|(field, _)| field)
}

impl ComponentConfig for SourceConfig {
    fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::Exec(_) => "exec",
            SourceConfig::Collector(_) => "collector",
            SourceConfig::File(_) => "file",
            SourceConfig::Demo(_) => "demo",
            SourceConfig::HttpServer(_) => "http_server",
            SourceConfig::Syslog(_) => "syslog",
            SourceConfig::HostMetrics(_) => "host_metrics",
            SourceConfig::InternalMetrics(_) => "internal_metrics",
            SourceConfig::Stdin(_) => "stdin",
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut add =
            |path: &str, message: &str| problems.push((path.to_owned(), message.to_owned()));
        match self {
            SourceConfig::Exec(exec) => {
                let empty = match &exec.command {
                    ExecCommand::Shell(line) => line.trim().is_empty(),
                    ExecCommand::Argv(argv) => {
                        argv.first().is_none_or(|program| program.is_empty())
                    }
                };
                if empty {
                    add("command", "the command is empty");
                }
                if exec.max_line_bytes == 0 {
                    add("max_line_bytes", "must be at least 1");
                }
                if exec.scheduled.exec_interval_secs == 0 {
                    add("scheduled.exec_interval_secs", "must be at least 1");
                }
            }
            SourceConfig::Collector(collector) => {
                if let Err(why) = check_name(&collector.collector) {
                    add("collector", &why);
                }
                if let Some(Err(why)) = collector.version.as_deref().map(check_version) {
                    add("version", &why);
                }
                if collector.interval_secs == Some(0) {
                    add("interval_secs", "must be at least 1");
                }
            }
            SourceConfig::File(file) => {
                if file.include.is_empty() {
                    add(
                        "include",
                        "name at least one file or glob pattern, such as /var/log/*.log",
                    );
                }
                if file.max_line_bytes == 0 {
                    add("max_line_bytes", "must be at least 1");
                }
            }
            SourceConfig::Demo(demo) => {
                if demo.format == DemoFormat::Shuffle && demo.lines.is_empty() {
                    add(
                        "lines",
                        "the `shuffle` format picks from `lines`: give at least one",
                    );
                }
                if !(0.0..=MAX_WAIT_SECS).contains(&demo.interval_secs) {
                    add("interval_secs", "must be from 0 to 31536000 (a year)");
                }
            }
            SourceConfig::HttpServer(http) => {
                if !http.path.starts_with('/') {
                    add("path", "must start with `/`");
                }
                for field in zeros([
                    ("header_read_timeout_secs", http.header_read_timeout_secs),
                    ("idle_timeout_secs", http.idle_timeout_secs),
                    ("body_read_timeout_secs", http.body_read_timeout_secs),
                    ("max_connections", u64::from(http.max_connections)),
                ]) {
                    add(field, "must be at least 1");
                }
            }
            SourceConfig::HostMetrics(HostMetricsConfig {
                scrape_interval_secs: 0,
                ..
            })
            | SourceConfig::InternalMetrics(InternalMetricsConfig {
                scrape_interval_secs: 0,
            }) => {
                add("scrape_interval_secs", "must be at least 1");
            }
            SourceConfig::Syslog(syslog) => {
                for field in zeros([
                    ("max_length", syslog.max_length as u64),
                    (
                        "message_read_timeout_secs",
                        syslog.message_read_timeout_secs,
                    ),
                    ("idle_timeout_secs", syslog.idle_timeout_secs),
                    ("max_connections", u64::from(syslog.max_connections)),
                ]) {
                    add(field, "must be at least 1");
                }
            }
            SourceConfig::Stdin(StdinConfig { max_length: 0 }) => {
                add("max_length", "must be at least 1");
            }
            _ => {}
        }
        problems
    }
}
