//! Sink types and their configurations (`conf`), with Vector's field names
//! where Vector has the same sink.

use std::collections::BTreeMap;

use datascale_core::{
    component::{BuildError, ComponentTask, SinkContext},
    event::Event,
};
use serde::{Deserialize, Serialize};

use super::{ComponentConfig, MAX_WAIT_SECS};

mod console;
mod file;
mod http;

/// A sink: its `type` and, inside, its `conf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "conf",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum SinkConfig {
    /// Writes events to standard output or standard error.
    Console(ConsoleConfig),
    /// Writes events to files.
    File(FileSinkConfig),
    /// Sends batches of events over HTTP.
    Http(HttpSinkConfig),
    /// Writes events to an event set on the manager or an external platform.
    Yh(YhConfig),
    /// Accepts and discards events.
    Blackhole(BlackholeConfig),
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

/// `console`: writes events to standard output or standard error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How each event is written, one a line.
    #[serde(default)]
    pub encoding: Encoding,
    /// `stdout` or `stderr`.
    #[serde(default)]
    pub target: ConsoleTarget,
}

/// Where the `console` sink writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleTarget {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// `file`: writes events to files, one a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file; may hold strftime parts (`%Y-%m-%d`) and `{{ field }}` parts taken from each event.
    pub path: String,
    /// How each event is written.
    #[serde(default)]
    pub encoding: Encoding,
}

/// `http`: sends batches of events over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// The URL to send to.
    pub uri: String,
    /// `post` or `put`.
    #[serde(default)]
    pub method: HttpMethod,
    /// How events are written into a request body.
    #[serde(default)]
    pub encoding: HttpEncoding,
    /// When a batch is sent.
    #[serde(default)]
    pub batch: Batch,
    /// `none` or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Headers added to every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Credentials sent with every request.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// Timeouts and retries.
    #[serde(default)]
    pub request: RequestOptions,
}

/// The method of the `http` sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpMethod {
    /// POST.
    #[default]
    Post,
    /// PUT.
    Put,
}

/// `encoding` of the `http` sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEncoding {
    /// `json`: a JSON array of events; `ndjson`: one object a line; `text`: one message a line.
    #[serde(default)]
    pub codec: HttpCodec,
}

/// How the `http` sink writes a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpCodec {
    /// A JSON array of events.
    #[default]
    Json,
    /// One JSON object a line.
    Ndjson,
    /// One message a line.
    Text,
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

/// `auth` of the `http` sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
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

/// `yh`: writes events to an event set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YhConfig {
    /// The event set.
    pub event_set: String,
    /// An external platform's URL; the worker's manager when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The token for `endpoint`; the worker's own credential when absent.
    #[serde(default)]
    pub token: Option<String>,
}

/// `blackhole`: accepts and discards events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {}

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

impl SinkConfig {
    /// The running sink, or why this type cannot run.
    pub fn build(&self, name: &str, context: SinkContext) -> Result<ComponentTask, BuildError> {
        match self {
            SinkConfig::Console(config) => Ok(Box::pin(console::run(config.clone(), context))),
            SinkConfig::File(config) => {
                let template = file::PathTemplate::parse(&config.path).map_err(|message| {
                    BuildError::Invalid {
                        component: name.to_owned(),
                        message,
                    }
                })?;
                Ok(Box::pin(file::run(
                    template,
                    config.encoding.codec,
                    context,
                )))
            }
            SinkConfig::Http(config) => {
                let sink = http::HttpSink::new(config).map_err(|message| BuildError::Invalid {
                    component: name.to_owned(),
                    message,
                })?;
                Ok(Box::pin(sink.run(context)))
            }
            SinkConfig::Yh(config) => {
                let sink = http::HttpSink::for_event_set(config, context.managers.as_ref())
                    .map_err(|message| BuildError::Invalid {
                        component: name.to_owned(),
                        message,
                    })?;
                Ok(Box::pin(sink.run(context)))
            }
            SinkConfig::Blackhole(_) => Ok(Box::pin(console::discard(context))),
        }
    }
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

impl ComponentConfig for SinkConfig {
    fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::Console(_) => "console",
            SinkConfig::File(_) => "file",
            SinkConfig::Http(_) => "http",
            SinkConfig::Yh(_) => "yh",
            SinkConfig::Blackhole(_) => "blackhole",
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut add = |path: &str, message: String| problems.push((path.to_owned(), message));
        match self {
            SinkConfig::File(file) if file.path.trim().is_empty() => {
                add("path", "the path is empty".to_owned())
            }
            SinkConfig::Http(http) => {
                if let Some(why) = url_problem(&http.uri) {
                    add("uri", why);
                }
                if http.batch.max_events == 0 {
                    add("batch.max_events", "must be at least 1".to_owned());
                }
                if http.batch.max_bytes == 0 {
                    add("batch.max_bytes", "must be at least 1".to_owned());
                }
                if !(http.batch.timeout_secs > 0.0 && http.batch.timeout_secs <= MAX_WAIT_SECS) {
                    add(
                        "batch.timeout_secs",
                        "must be more than 0 and at most 31536000 (a year)".to_owned(),
                    );
                }
                if http.request.timeout_secs == 0 {
                    add("request.timeout_secs", "must be at least 1".to_owned());
                }
                if http.request.retry_initial_backoff_secs == 0 {
                    add(
                        "request.retry_initial_backoff_secs",
                        "must be at least 1".to_owned(),
                    );
                }
                if let Err(why) = http::header_map(&http.headers) {
                    add("headers", why);
                }
            }
            SinkConfig::Yh(yh) => {
                if let Err(why) = datascale_core::names::check_name(&yh.event_set) {
                    add("event_set", why);
                }
                if let Some(why) = yh.endpoint.as_deref().and_then(url_problem) {
                    add("endpoint", why);
                }
            }
            _ => {}
        }
        problems
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
