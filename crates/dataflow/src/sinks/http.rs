//! The `http` sink: gathers events into request bodies (by count, size and
//! age), sends them with retries, and acknowledges the batches a request
//! carried only once the remote end answered 2xx. The `yh` sink is the same
//! machine aimed at an event set: NDJSON, gzip, the node's managers in
//! failover order (or an external endpoint), and a token that may change
//! while it runs.
//!
//! Here too: the `http` `conf`, with its defaults, its checks and its build.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use datascale_core::{
    ack::{Delivery, DeliveryToken},
    backoff::Backoff,
    component::{
        BuildError, ComponentError, ComponentTask, ManagerTarget, SinkContext, TokenSource,
    },
    event::{Batch, Event},
};
use datascale_protocol::CLUSTER_HEADER;
use reqwest::{
    Client, Method, StatusCode, Url,
    header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::warn;

use super::{
    Batch as BatchConfig, Codec, Compression, RequestOptions, SinkType, url_problem, yh::YhConfig,
};
use crate::{MAX_WAIT_SECS, Problems, TypeConf, invalid};

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
    pub batch: BatchConfig,
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

impl SinkType for HttpSinkConfig {
    fn build(&self, name: &str, context: SinkContext) -> Result<ComponentTask, BuildError> {
        let sink = HttpSink::new(self).map_err(invalid(name))?;
        Ok(Box::pin(sink.run(context)))
    }
}

impl TypeConf for HttpSinkConfig {
    fn check(&self, problems: &mut Problems) {
        if let Some(why) = url_problem(&self.uri) {
            problems.add("uri", why);
        }
        if self.batch.max_events == 0 {
            problems.add("batch.max_events", "must be at least 1");
        }
        if self.batch.max_bytes == 0 {
            problems.add("batch.max_bytes", "must be at least 1");
        }
        if !(self.batch.timeout_secs > 0.0 && self.batch.timeout_secs <= MAX_WAIT_SECS) {
            problems.add(
                "batch.timeout_secs",
                "must be more than 0 and at most 31536000 (a year)",
            );
        }
        if self.request.timeout_secs == 0 {
            problems.add("request.timeout_secs", "must be at least 1");
        }
        if self.request.retry_initial_backoff_secs == 0 {
            problems.add("request.retry_initial_backoff_secs", "must be at least 1");
        }
        if let Err(why) = header_map(&self.headers) {
            problems.add("headers", why);
        }
    }
}

/// Most bytes of a refusing answer's body that are logged.
const EXCERPT_BYTES: usize = 512;

/// How a request proves who sends it.
enum Credentials {
    /// As configured on an `http` sink.
    Configured(HttpAuth),
    /// A bearer token, looked up at each attempt.
    Bearer(TokenSource),
}

/// A configured `http` or `yh` sink.
pub(super) struct HttpSink {
    client: Client,
    method: Method,
    /// Where requests go, in failover order.
    uris: Vec<Url>,
    /// The index of the URI in use.
    current: AtomicUsize,
    headers: HeaderMap,
    credentials: Option<Credentials>,
    /// Whether a 401 may pass (a credential being renewed) and is retried.
    retry_unauthorized: bool,
    codec: HttpCodec,
    compression: Compression,
    max_events: usize,
    max_bytes: usize,
    batch_timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// Events gathered for the next request, and the tokens of every batch
/// that contributed to it.
#[derive(Default)]
struct Pending {
    body: Vec<u8>,
    events: usize,
    tokens: Vec<DeliveryToken>,
    /// When its first event arrived.
    opened: Option<Instant>,
}

/// What to do after one attempt.
enum Attempt {
    /// Try again later, for this reason.
    Retry(String),
    /// Done, with this outcome.
    Settled(Delivery),
}

impl HttpSink {
    /// A sink for `config`, or why it cannot run.
    pub fn new(config: &HttpSinkConfig) -> Result<Self, String> {
        let mut sink = Self::build(
            vec![parse_uri(&config.uri)?],
            config.method,
            config.encoding.codec,
            config.compression,
            &config.batch,
            &config.request,
        )?;
        sink.headers.extend(header_map(&config.headers)?);
        sink.credentials = config.auth.clone().map(Credentials::Configured);
        Ok(sink)
    }

    /// A `yh` sink: events of `config.event_set` go to its `endpoint`, or
    /// else to this node's managers (`managers`), as gzip NDJSON.
    pub fn for_event_set(
        config: &YhConfig,
        managers: Option<&ManagerTarget>,
    ) -> Result<Self, String> {
        let path = format!("/api/v1/event_sets/{}/events", config.event_set);
        let (bases, token, cluster) = match (&config.endpoint, managers) {
            (Some(endpoint), _) => (
                vec![endpoint.clone()],
                config.token.clone().map(TokenSource::Static),
                None,
            ),
            (None, Some(managers)) => (
                managers.urls.clone(),
                Some(
                    config
                        .token
                        .clone()
                        .map_or_else(|| managers.token.clone(), TokenSource::Static),
                ),
                Some(managers.cluster_name.as_str()),
            ),
            (None, None) => {
                return Err(
                    "no endpoint, and this process has no manager to send to: run the dataflow on a worker or a standalone node, or set conf.endpoint"
                        .to_owned(),
                );
            }
        };
        let uris = bases
            .iter()
            .map(|base| parse_uri(&format!("{}{path}", base.trim_end_matches('/'))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sink = Self::build(
            uris,
            HttpMethod::Post,
            HttpCodec::Ndjson,
            Compression::Gzip,
            &BatchConfig::default(),
            &RequestOptions::default(),
        )?;
        if let Some(cluster) = cluster {
            let value = HeaderValue::from_str(cluster)
                .map_err(|_| format!("the cluster name `{cluster}` is not a header value"))?;
            sink.headers.insert(CLUSTER_HEADER, value);
        }
        sink.credentials = token.map(Credentials::Bearer);
        sink.retry_unauthorized = managers.is_some() && config.endpoint.is_none();
        Ok(sink)
    }

    fn build(
        uris: Vec<Url>,
        method: HttpMethod,
        codec: HttpCodec,
        compression: Compression,
        batch: &BatchConfig,
        request: &RequestOptions,
    ) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        let content_type = match codec {
            HttpCodec::Json => "application/json",
            HttpCodec::Ndjson => "application/x-ndjson",
            HttpCodec::Text => "text/plain; charset=utf-8",
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let client = Client::builder()
            .timeout(Duration::from_secs(request.timeout_secs))
            .build()
            .map_err(|err| format!("cannot make an HTTP client: {err}"))?;
        let initial_backoff = Duration::from_secs(request.retry_initial_backoff_secs);
        Ok(Self {
            client,
            method: match method {
                HttpMethod::Post => Method::POST,
                HttpMethod::Put => Method::PUT,
            },
            uris,
            current: AtomicUsize::new(0),
            headers,
            credentials: None,
            retry_unauthorized: false,
            codec,
            compression,
            max_events: batch.max_events,
            max_bytes: batch.max_bytes,
            batch_timeout: Duration::from_secs_f64(batch.timeout_secs),
            initial_backoff,
            max_backoff: Duration::from_secs(request.retry_max_duration_secs).max(initial_backoff),
        })
    }

    /// Sends batches until the input ends, then sends what is left.
    pub async fn run(self, mut context: SinkContext) -> Result<(), ComponentError> {
        let mut pending = Pending::default();
        loop {
            let deadline = pending.opened.map(|opened| opened + self.batch_timeout);
            let received = tokio::select! {
                received = context.input.recv() => received,
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.send(std::mem::take(&mut pending), &context).await;
                    continue;
                }
            };
            match received {
                Some(batch) => self.add(batch, &mut pending, &context).await,
                None => break,
            }
        }
        if pending.events > 0 {
            self.send(pending, &context).await;
        }
        Ok(())
    }

    /// Adds a batch's events to the pending request, sending it whenever
    /// it is full; each request the batch reaches holds a share of its token.
    async fn add(&self, batch: Batch, pending: &mut Pending, context: &SinkContext) {
        let Batch { events, delivery } = batch;
        if events.is_empty() {
            if let Some(token) = delivery {
                token.finish(Delivery::Dropped);
            }
            return;
        }
        let mut encoded = Vec::new();
        let mut holds_token = false;
        for event in &events {
            encoded.clear();
            self.encode(event, &mut encoded);
            // One byte each for a JSON array's separator and closing bracket.
            if pending.events > 0 && pending.body.len() + encoded.len() + 2 > self.max_bytes {
                self.send(std::mem::take(pending), context).await;
                holds_token = false;
            }
            if !holds_token {
                pending.tokens.extend(delivery.clone());
                holds_token = true;
            }
            if self.codec == HttpCodec::Json {
                pending
                    .body
                    .push(if pending.events == 0 { b'[' } else { b',' });
            }
            pending.body.extend_from_slice(&encoded);
            pending.events += 1;
            pending.opened.get_or_insert_with(Instant::now);
            if pending.events >= self.max_events {
                self.send(std::mem::take(pending), context).await;
                holds_token = false;
            }
        }
    }

    /// Appends one event, as the codec writes it, with a newline.
    fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        let line_codec = match self.codec {
            HttpCodec::Json | HttpCodec::Ndjson => Codec::Json,
            HttpCodec::Text => Codec::Text,
        };
        line_codec.encode_line(event, out);
    }

    /// Sends a request, counts what it delivered, and settles every batch
    /// it carried by the outcome.
    async fn send(&self, pending: Pending, context: &SinkContext) {
        let Pending {
            mut body,
            events,
            tokens,
            ..
        } = pending;
        if self.codec == HttpCodec::Json {
            body.push(b']');
        }
        let body = match self.compression {
            Compression::None => body,
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder
                    .write_all(&body)
                    .and_then(|()| encoder.finish())
                    .expect("gzip into memory does not fail")
            }
        };
        let bytes = body.len();
        let outcome = self.deliver(Bytes::from(body), events, &context.name).await;
        if outcome == Delivery::Delivered {
            context.metrics.sent(events, bytes);
        }
        for token in tokens {
            token.finish(outcome);
        }
    }

    /// Sends `body` until the remote end accepts or refuses it, waiting
    /// longer (with jitter) after each failure that may pass.
    async fn deliver(&self, body: Bytes, events: usize, name: &str) -> Delivery {
        let mut backoff = Backoff::new(self.initial_backoff, self.max_backoff);
        loop {
            match self.attempt(body.clone(), events, name).await {
                Attempt::Settled(outcome) => return outcome,
                Attempt::Retry(reason) => {
                    let wait = backoff.next_wait();
                    warn!(
                        component = %name,
                        reason = %reason,
                        events,
                        retry_in_ms = wait.as_millis() as u64,
                        "Request failed; retrying."
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The next URI in failover order, after one that failed.
    fn fail_over(&self, failed: usize) {
        let _ = self.current.compare_exchange(
            failed,
            (failed + 1) % self.uris.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// One request: 2xx delivers; 429, 5xx and transport failures (no
    /// connection, timeout, reset) are retried, on the next URI when there
    /// are several; any other answer is final (but a 401 of a credential
    /// being renewed).
    async fn attempt(&self, body: Bytes, events: usize, name: &str) -> Attempt {
        let index = self.current.load(Ordering::Relaxed) % self.uris.len();
        let uri = &self.uris[index];
        let mut request = self
            .client
            .request(self.method.clone(), uri.clone())
            .headers(self.headers.clone())
            .body(body);
        request = match &self.credentials {
            Some(Credentials::Configured(HttpAuth::Basic { user, password })) => {
                request.basic_auth(user, Some(password))
            }
            Some(Credentials::Configured(HttpAuth::Bearer { token })) => request.bearer_auth(token),
            Some(Credentials::Bearer(source)) => match source.current() {
                Some(token) => request.bearer_auth(token),
                None => {
                    return Attempt::Retry(
                        "no credential yet; the worker has not enrolled".to_owned(),
                    );
                }
            },
            None => request,
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) if err.is_builder() || err.is_redirect() => {
                warn!(component = %name, error = %err, events, "Request cannot be sent; its events are not delivered.");
                return Attempt::Settled(Delivery::Failed);
            }
            Err(err) => {
                self.fail_over(index);
                return Attempt::Retry(format!("{uri}: {}", error_chain(&err)));
            }
        };
        let status = response.status();
        match verdict(status, self.retry_unauthorized) {
            Verdict::Delivered => Attempt::Settled(Delivery::Delivered),
            Verdict::RetryElsewhere => {
                let excerpt = excerpt(response).await;
                self.fail_over(index);
                Attempt::Retry(format!("{uri} answered {status}: {excerpt}"))
            }
            Verdict::AwaitCredential => {
                let excerpt = excerpt(response).await;
                Attempt::Retry(format!(
                    "{uri} refused the credential ({excerpt}); waiting for the worker to enroll again"
                ))
            }
            Verdict::Refused => {
                let excerpt = excerpt(response).await;
                warn!(
                    component = %name,
                    status = status.as_u16(),
                    body = %excerpt,
                    events,
                    "The server refused a request; its events are not delivered."
                );
                Attempt::Settled(Delivery::Failed)
            }
        }
    }
}

/// What the status of an answer means for the request that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 429 and 5xx: may pass; retried, on the next URI when there are several.
    RetryElsewhere,
    /// 401 to a credential being renewed: retried once it is.
    AwaitCredential,
    /// Any other answer: final, the events are not delivered.
    Refused,
}

/// The verdict on `status`; `retry_unauthorized` when a 401 may pass.
fn verdict(status: StatusCode, retry_unauthorized: bool) -> Verdict {
    if status.is_success() {
        Verdict::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Verdict::RetryElsewhere
    } else if status == StatusCode::UNAUTHORIZED && retry_unauthorized {
        Verdict::AwaitCredential
    } else {
        Verdict::Refused
    }
}

/// A plain-http URI, or why it cannot be used.
fn parse_uri(text: &str) -> Result<Url, String> {
    let uri = Url::parse(text).map_err(|err| format!("uri `{text}`: {err}"))?;
    if uri.scheme() != "http" {
        return Err(format!(
            "uri `{uri}`: this build sends over plain http only; https needs TLS support it lacks"
        ));
    }
    Ok(uri)
}

/// The configured headers, or which one is not a valid header.
fn header_map(headers: &std::collections::BTreeMap<String, String>) -> Result<HeaderMap, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
            Ok((header, value))
        })
        .collect()
}

/// The start of a response's body, as text.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An error with its causes, which name what actually failed.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_bad_headers_are_refused_with_the_reason() {
        let config = |uri: &str, header: &str| {
            serde_json::from_value::<HttpSinkConfig>(serde_json::json!({
                "uri": uri, "headers": {header: "v"}
            }))
            .unwrap()
        };
        let Err(https) = HttpSink::new(&config("https://collector/ingest", "x-ok")) else {
            panic!("https accepted");
        };
        assert!(https.contains("plain http only"), "{https}");
        let Err(header) = HttpSink::new(&config("http://collector/ingest", "bad header")) else {
            panic!("bad header accepted");
        };
        assert!(header.contains("`bad header`"), "{header}");
    }
}
