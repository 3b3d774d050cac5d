//! Configuration: the typed model of `datascale.toml` and its defaults.
//!
//! The structs here are the one source of truth for the configuration keys:
//! [`load`] derives the known key paths, their types and their `DATASCALE_*`
//! environment names from them, so a key added here is at once readable from
//! the file, the environment and `--set`, and shown by `datascale config check`.

mod load;

use std::{net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use datascale_core::names::check_name;
use datascale_protocol::Mode;
pub use load::{ConfigError, ConfigIssue, LoadedConfig, Origin, Overrides, known_keys, load};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "DATASCALE_";

/// The API URL the management commands talk to (their `--url`). It shares
/// the prefix but is no configuration key, so the loader leaves it alone.
pub const URL_ENV: &str = "DATASCALE_URL";

/// The token the management commands present (their `--token`); like
/// [`URL_ENV`], no configuration key.
pub const TOKEN_ENV: &str = "DATASCALE_TOKEN";

/// The whole configuration of one `datascale` process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What this process runs and where it listens.
    pub service: ServiceConfig,
    /// Limits on the CPU and memory this process may use.
    pub resources: ResourcesConfig,
    /// How a manager keeps the event sets workers send it.
    pub event_sets: EventSetsConfig,
    /// Where and how this process logs.
    pub log: LogConfig,
}

/// `[service]`: the role of this process and its addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// `standalone` runs a manager and a local worker in one process.
    pub mode: Mode,
    /// Address of the REST API (and of a worker's local API).
    #[serde(deserialize_with = "socket_address")]
    pub address: SocketAddr,
    /// Address of the Web UI (manager and standalone).
    #[serde(deserialize_with = "socket_address")]
    pub ui_address: SocketAddr,
    /// Where state is kept; relative paths start at the install directory.
    pub data_dir: PathBuf,
    /// Where a worker unpacks the custom collectors its dataflows use;
    /// relative paths start at the install directory.
    pub collectors_dir: PathBuf,
    /// A manager refuses workers and clients of another cluster.
    #[serde(deserialize_with = "name")]
    pub cluster_name: String,
    /// How long a graceful shutdown may take before the process exits anyway.
    #[serde(deserialize_with = "whole_number")]
    pub shutdown_timeout_secs: u64,
    /// Limits on the connections of the REST API and the Web UI.
    pub http: HttpConfig,
    /// Manager settings.
    pub manager: ManagerConfig,
    /// Worker settings.
    pub worker: WorkerConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Standalone,
            address: SocketAddr::from(([0, 0, 0, 0], 7881)),
            ui_address: SocketAddr::from(([0, 0, 0, 0], 7880)),
            data_dir: PathBuf::from("data"),
            collectors_dir: PathBuf::from("collectors"),
            cluster_name: "datascale".to_owned(),
            shutdown_timeout_secs: 10,
            http: HttpConfig::default(),
            manager: ManagerConfig::default(),
            worker: WorkerConfig::default(),
        }
    }
}

/// `[service.http]`: limits on the connections of the REST API and the Web
/// UI, which share them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds from accepting a connection, or from the first byte of a
    /// later request on it, to the end of the request's head; a slower
    /// client is disconnected.
    #[serde(deserialize_with = "whole_number")]
    pub header_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before
    /// it is closed; a request in progress, such as a waiting sync, is never
    /// idle.
    #[serde(deserialize_with = "whole_number")]
    pub idle_timeout_secs: u64,
    /// Seconds a request's body may take to arrive after its head; a slower
    /// one is answered 408.
    #[serde(deserialize_with = "whole_number")]
    pub body_read_timeout_secs: u64,
    /// The most connections open at once, API and Web UI together; at most
    /// the open-file limit less 256. Past it, the connection idle the
    /// longest is closed to admit a new one, or the new one is answered 503
    /// when none is idle. A manager holds about two for each worker.
    #[serde(deserialize_with = "whole_number")]
    pub max_connections: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 30,
            max_connections: 16_384,
        }
    }
}

/// `[service.manager]`: the manager's credentials and request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerConfig {
    /// Token that may do everything; empty: generated on first start into `data_dir`.
    pub admin_token: String,
    /// More admin tokens, each `name:secret`, so that the history and the
    /// audit log say who made a change.
    #[serde(deserialize_with = "named_tokens")]
    pub admin_tokens: Vec<String>,
    /// The built-in enrollment token, which enrolls workers for any group;
    /// empty: generated on first start into `data_dir`.
    pub worker_token: String,
    /// The largest request body the API accepts, in bytes.
    #[serde(deserialize_with = "whole_number")]
    pub max_body_bytes: u64,
    /// The largest custom collector package, in MB, packed and unpacked.
    #[serde(deserialize_with = "whole_number")]
    pub max_collector_mb: u64,
    /// Phi at and above which a worker whose heartbeat is overdue is suspect.
    #[serde(deserialize_with = "whole_number")]
    pub phi_threshold: u32,
    /// The least spread of heartbeat intervals the detector assumes, in ms.
    #[serde(deserialize_with = "whole_number")]
    pub phi_min_std_dev_ms: u64,
    /// Seconds without a heartbeat after which a worker is offline.
    #[serde(deserialize_with = "whole_number")]
    pub worker_offline_secs: u64,
    /// Minutes offline after which a worker leaves the list.
    #[serde(deserialize_with = "whole_number")]
    pub worker_expire_minutes: u64,
}

impl ManagerConfig {
    /// The named admin tokens, each split into (name, secret).
    pub fn named_admin_tokens(&self) -> Vec<(String, String)> {
        self.admin_tokens
            .iter()
            .filter_map(|entry| split_named_token(entry))
            .map(|(name, secret)| (name.to_owned(), secret.to_owned()))
            .collect()
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            admin_token: String::new(),
            admin_tokens: Vec::new(),
            worker_token: String::new(),
            max_body_bytes: 1024 * 1024,
            max_collector_mb: 64,
            phi_threshold: 8,
            phi_min_std_dev_ms: 500,
            worker_offline_secs: 30,
            worker_expire_minutes: 1440,
        }
    }
}

/// The shortest secret a named admin token may have.
pub const MIN_NAMED_TOKEN_LEN: usize = 16;

/// Splits a named token, `name:secret`, into its name and secret.
fn split_named_token(entry: &str) -> Option<(&str, &str)> {
    entry.split_once(':')
}

fn named_tokens<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let entries = list(de)?;
    let mut names = std::collections::BTreeSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let problem = |why: String| serde::de::Error::custom(format!("entry {}: {why}", index + 1));
        let (name, secret) = split_named_token(entry).ok_or_else(|| {
            problem("expected `name:secret`, such as `alice:<32 random characters>`".to_owned())
        })?;
        check_name(name).map_err(|why| problem(format!("the name `{name}`: {why}")))?;
        if secret.len() < MIN_NAMED_TOKEN_LEN {
            return Err(problem(format!(
                "the secret of `{name}` is shorter than {MIN_NAMED_TOKEN_LEN} characters"
            )));
        }
        if !names.insert(name) || matches!(name, "admin" | "worker") {
            return Err(problem(format!(
                "the name `{name}` is taken (`admin` and `worker` name the main tokens)"
            )));
        }
    }
    Ok(entries)
}

/// `[service.worker]`: how a worker finds its manager and what it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Manager URLs such as `http://master1:7881`; several for failover.
    #[serde(deserialize_with = "list")]
    pub manager_address: Vec<String>,
    /// Groups whose dataflows this worker runs.
    #[serde(deserialize_with = "name_list")]
    pub groups: Vec<String>,
    /// An enrollment token of the manager: its built-in worker token, or
    /// one made through its API (which allows only its groups).
    pub token: String,
    /// Seconds between heartbeats to the manager.
    #[serde(deserialize_with = "whole_number")]
    pub heartbeat_interval_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            manager_address: Vec::new(),
            groups: vec!["default".to_owned()],
            token: String::new(),
            heartbeat_interval_secs: 5,
        }
    }
}

/// `[resources]`: limits applied through cgroups or the systemd unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesConfig {
    /// Percent of one core; 200 means two cores; 0 means no limit.
    #[serde(deserialize_with = "whole_number")]
    pub cpu_quota: u32,
    /// Megabytes; 0 means no limit.
    #[serde(deserialize_with = "whole_number")]
    pub memory_limit: u64,
    /// The cgroup DataScale makes for itself when it sets a limit, as a path
    /// below the root of each cgroup hierarchy; `a/b` nests it in cgroup `a`.
    #[serde(deserialize_with = "cgroup_name")]
    pub cgroup_name: String,
    /// The directory the cgroup filesystems are mounted at or below; empty:
    /// wherever `/proc/self/mountinfo` lists them.
    #[serde(deserialize_with = "absolute_or_empty_path")]
    pub cgroup_root: PathBuf,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        Self {
            cpu_quota: 0,
            memory_limit: 0,
            cgroup_name: "datascale".to_owned(),
            cgroup_root: PathBuf::new(),
        }
    }
}

/// `[event_sets]`: retention and request size of the manager's event sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSetsConfig {
    /// Days an event is kept; 0 keeps events for ever.
    #[serde(deserialize_with = "whole_number")]
    pub max_age_days: u64,
    /// Megabytes a set may take on disk before its oldest events go; 0: no limit.
    #[serde(deserialize_with = "whole_number")]
    pub max_size_mb: u64,
    /// The largest ingest request, in megabytes (after decompression).
    #[serde(deserialize_with = "whole_number")]
    pub max_body_mb: u64,
}

impl Default for EventSetsConfig {
    fn default() -> Self {
        Self {
            max_age_days: 7,
            max_size_mb: 1024,
            max_body_mb: 16,
        }
    }
}

/// `[log]`: log level, format and destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `trace`, `debug`, `info`, `warn`, `error`, or a filter such as `info,datascale=debug`.
    #[serde(deserialize_with = "log_filter")]
    pub level: String,
    /// `text` for people, `json` for machines.
    pub format: LogFormat,
    /// Log file, rotated daily; empty logs to standard output.
    pub file: PathBuf,
    /// How many lines of one kind (logged at one place, about one component)
    /// are written in each `repeat_interval_secs`; the rest are counted in
    /// one summary line. 0 writes every line.
    #[serde(deserialize_with = "whole_number")]
    pub repeat_limit: u32,
    /// The interval of `repeat_limit`, in seconds; 0 writes every line.
    #[serde(deserialize_with = "whole_number")]
    pub repeat_interval_secs: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
            file: PathBuf::new(),
            repeat_limit: 5,
            repeat_interval_secs: 10,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

fn socket_address<'de, D: Deserializer<'de>>(de: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(de)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not an address; expected an IP address and a port, such as 0.0.0.0:7881 or 127.0.0.1:7881"
        ))
    })
}

/// A whole number in the range of `T`, with a message that says so.
fn whole_number<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + Bounded,
{
    let number = i64::deserialize(de)?;
    T::try_from(number).map_err(|_| {
        serde::de::Error::custom(format!("expected a whole number from 0 to {}", T::MAX))
    })
}

/// The largest value of an unsigned configuration number.
trait Bounded {
    const MAX: u64;
}

impl Bounded for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl Bounded for u64 {
    const MAX: u64 = i64::MAX as u64;
}

fn name<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    check_name(&text).map_err(serde::de::Error::custom)?;
    Ok(text)
}

/// A list given either as an array or as one comma-separated string.
fn list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or an array of strings")]
    enum StringOrList {
        One(String),
        Many(Vec<String>),
    }
    let items = match StringOrList::deserialize(de)? {
        StringOrList::One(text) => text.split(',').map(str::to_owned).collect(),
        StringOrList::Many(items) => items,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// A relative cgroup path: names of the safe charset joined by `/`.
fn cgroup_name<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    for part in text.split('/') {
        check_name(part).map_err(|why| {
            serde::de::Error::custom(format!(
                "`{part}`: {why}; a cgroup name is one or more names joined by `/`, such as datascale or apps/datascale"
            ))
        })?;
    }
    Ok(text)
}

fn absolute_or_empty_path<'de, D: Deserializer<'de>>(de: D) -> Result<PathBuf, D::Error> {
    let path = PathBuf::deserialize(de)?;
    if path.as_os_str().is_empty() || path.is_absolute() {
        Ok(path)
    } else {
        Err(serde::de::Error::custom(
            "expected an absolute path, such as /sys/fs/cgroup, or empty",
        ))
    }
}

fn name_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let names = list(de)?;
    for item in &names {
        check_name(item).map_err(|why| serde::de::Error::custom(format!("`{item}`: {why}")))?;
    }
    Ok(names)
}

fn log_filter<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let text = String::deserialize(de)?;
    // A bare word would parse as a target name, so `warning` would silently
    // mean "everything from the target `warning`": bare words must be levels.
    let bare_ok = text
        .split(',')
        .filter(|part| !part.contains('='))
        .all(|part| LEVELS.contains(&part.trim().to_ascii_lowercase().as_str()));
    let parsed = tracing_subscriber::EnvFilter::builder().parse(&text);
    if !bare_ok || parsed.is_err() {
        return Err(serde::de::Error::custom(
            "expected trace, debug, info, warn, error, off, or a filter such as info,datascale=debug",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod proptests;
