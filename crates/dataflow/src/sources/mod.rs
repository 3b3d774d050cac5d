//! Sources: the closed list of source types (`SourceConfig`, one line a
//! type) and what several of them share: `decoding`, connection limits,
//! the handling of oversize lines, binding a socket at build time, and
//! reading lines (`lines`). Each type's module owns its `conf`, its
//! checks, its build and its running, with Vector's field names where
//! Vector has the same source.

use std::{net::SocketAddr, time::Duration};

use datascale_connections::ConnectionLimits;
use datascale_core::component::{BuildError, ComponentTask, SourceContext};
use serde::{Deserialize, Serialize};

use crate::{Problems, TypeConf, collector::shelf::Shelf};

pub mod collector;
pub mod demo;
pub mod exec;
pub mod file;
pub mod host_metrics;
pub mod http_server;
pub mod internal_metrics;
mod lines;
pub mod stdin;
pub mod syslog;

crate::component_types! {
    /// A source: its `type` and, inside, its `conf`.
    pub enum SourceConfig as SourceType {
        /// Runs a command and turns each line it prints into an event.
        Exec(exec::ExecConfig) => "exec",
        /// Runs a custom collector installed on the manager.
        Collector(collector::CollectorConfig) => "collector",
        /// Tails files.
        File(file::FileConfig) => "file",
        /// Generates sample events.
        Demo(demo::DemoConfig) => "demo",
        /// Receives events over HTTP.
        HttpServer(http_server::HttpServerConfig) => "http_server",
        /// Receives syslog messages over TCP or UDP.
        Syslog(syslog::SyslogConfig) => "syslog",
        /// Measures the host: CPU, memory, disks, network, load.
        HostMetrics(host_metrics::HostMetricsConfig) => "host_metrics",
        /// This process's own metrics.
        InternalMetrics(internal_metrics::InternalMetricsConfig) => "internal_metrics",
        /// Reads lines from standard input.
        Stdin(stdin::StdinConfig) => "stdin",
    }
}

/// What a source is built with.
struct SourceBuild<'a> {
    /// The component's name.
    name: &'a str,
    /// What the running source sends to and is stopped by.
    context: SourceContext,
    /// The collectors a `collector` source runs one of.
    collectors: &'a Shelf,
}

/// What each source type's `conf` does besides its checks: build the
/// running source.
trait SourceType: TypeConf {
    /// The running source, or why this `conf` cannot run.
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError>;
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
        self.conf().build(SourceBuild {
            name,
            context,
            collectors,
        })
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

fn default_true() -> bool {
    true
}

fn default_max_line_bytes() -> usize {
    102_400
}

fn default_scrape_interval_secs() -> u64 {
    15
}

fn default_max_connections() -> u32 {
    1_024
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

/// Adds the problem of a `scrape_interval_secs` of 0.
fn check_scrape_interval(scrape_interval_secs: u64, problems: &mut Problems) {
    if scrape_interval_secs == 0 {
        problems.add("scrape_interval_secs", "must be at least 1");
    }
}
