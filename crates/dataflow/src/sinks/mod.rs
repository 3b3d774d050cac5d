//! Sinks: the closed list of sink types (`SinkConfig`, one line a type)
//! and what several of them share: `encoding` and its codecs, and the
//! `batch`, `compression` and `request` settings and URL check of `http`
//! and `yh`. Each type's module owns its `conf`, its checks, its build and
//! its running, with Vector's field names where Vector has the same sink.

use datascale_core::{
    component::{BuildError, ComponentTask, SinkContext},
    event::Event,
};
use serde::{Deserialize, Serialize};

use crate::TypeConf;

pub mod blackhole;
pub mod console;
pub mod file;
pub mod http;
pub mod yh;

crate::component_types! {
    /// A sink: its `type` and, inside, its `conf`.
    pub enum SinkConfig as SinkType {
        /// Writes events to standard output or standard error.
        Console(console::ConsoleConfig) => "console",
        /// Writes events to files.
        File(file::FileSinkConfig) => "file",
        /// Sends batches of events over HTTP.
        Http(http::HttpSinkConfig) => "http",
        /// Writes events to an event set on the manager or an external platform.
        Yh(yh::YhConfig) => "yh",
        /// Accepts and discards events.
        Blackhole(blackhole::BlackholeConfig) => "blackhole",
    }
}

/// What each sink type's `conf` does besides its checks: build the
/// running sink.
trait SinkType: TypeConf {
    /// The running sink, or why this `conf` cannot run.
    fn build(&self, name: &str, context: SinkContext) -> Result<ComponentTask, BuildError>;
}

impl SinkConfig {
    /// The running sink, or why this type cannot run.
    pub fn build(&self, name: &str, context: SinkContext) -> Result<ComponentTask, BuildError> {
        self.conf().build(name, context)
    }
}

/// `encoding` of a sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoding {
    /// How each event is written.
    #[serde(default)]
    pub codec: Codec,
}

/// How a sink writes an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// One JSON object.
    #[default]
    Json,
    /// The `message` field alone.
    Text,
    /// `key=value` pairs.
    Logfmt,
}

/// `batch`: a batch is sent when it holds `max_events` events or `max_bytes`
/// bytes, or `timeout_secs` after its first event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Most events in one request.
    #[serde(default = "default_batch_events")]
    pub max_events: usize,
    /// Most bytes in one request, before compression.
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: usize,
    /// Longest wait, in seconds, before a partial batch is sent.
    #[serde(default = "default_batch_timeout_secs")]
    pub timeout_secs: f64,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            max_events: default_batch_events(),
            max_bytes: default_batch_bytes(),
            timeout_secs: default_batch_timeout_secs(),
        }
    }
}

/// Compression of request bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Sent as is.
    #[default]
    None,
    /// gzip, with `Content-Encoding: gzip`.
    Gzip,
}

/// `request`: timeouts and retries of the `http` sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOptions {
    /// Seconds a request may take.
    #[serde(default = "default_request_timeout_secs")]
    pub timeout_secs: u64,
    /// First wait before a retry; it doubles (with jitter) up to `retry_max_duration_secs`.
    #[serde(default = "default_retry_initial_backoff_secs")]
    pub retry_initial_backoff_secs: u64,
    /// Longest wait between two retries.
    #[serde(default = "default_retry_max_duration_secs")]
    pub retry_max_duration_secs: u64,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            timeout_secs: default_request_timeout_secs(),
            retry_initial_backoff_secs: default_retry_initial_backoff_secs(),
            retry_max_duration_secs: default_retry_max_duration_secs(),
        }
    }
}

fn default_batch_events() -> usize {
    1_000
}

fn default_batch_bytes() -> usize {
    1 << 20
}

fn default_batch_timeout_secs() -> f64 {
    1.0
}

fn default_request_timeout_secs() -> u64 {
    60
}

fn default_retry_initial_backoff_secs() -> u64 {
    1
}

fn default_retry_max_duration_secs() -> u64 {
    30
}

impl Codec {
    /// Appends the event, written in this codec, and a newline to `out`.
    pub fn encode_line(self, event: &Event, out: &mut Vec<u8>) {
        match self {
            Codec::Json => event.write_json(out),
            Codec::Text => match event.message() {
                Some(message) => out.extend_from_slice(message.as_bytes()),
                None => event.write_json(out),
            },
            Codec::Logfmt => encode_logfmt(&event.value, out),
        }
        out.push(b'\n');
    }
}

/// `key=value` pairs; values with spaces, quotes or `=` are quoted.
fn encode_logfmt(value: &vrl::value::Value, out: &mut Vec<u8>) {
    let vrl::value::Value::Object(fields) = value else {
        out.extend_from_slice(value.to_string().as_bytes());
        return;
    };
    for (index, (key, field)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        let text = match field {
            vrl::value::Value::Object(_) | vrl::value::Value::Array(_) => {
                serde_json::to_string(field).unwrap_or_default()
            }
            other => datascale_core::event::text_of(other).into_owned(),
        };
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        if text.is_empty() || text.contains([' ', '"', '=']) {
            out.extend_from_slice(serde_json::to_string(&text).unwrap_or_default().as_bytes());
        } else {
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Why `text` is not an http(s) URL, if it is not.
fn url_problem(text: &str) -> Option<String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => None,
        _ => Some(format!(
            "`{text}` is not an http(s) URL such as http://collector:8080/ingest"
        )),
    }
}
