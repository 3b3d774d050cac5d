//! The `http` sink: gathers events into request bodies (by count, size and
//! age), sends them with retries, and acknowledges the batches a request
//! carried only once the remote end answered 2xx.

use std::{io::Write, time::Duration};

use bytes::Bytes;
use reqwest::{
    Client, Method, StatusCode, Url,
    header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use tokio::time::Instant;
use tracing::warn;

use super::{Codec, Compression, HttpAuth, HttpCodec, HttpMethod, HttpSinkConfig};
use crate::{
    event::{Batch, Event},
    runtime::{
        ComponentError, SinkContext,
        ack::{Delivery, DeliveryToken},
    },
};

/// Most bytes of a refusing answer's body that are logged.
const EXCERPT_BYTES: usize = 512;

/// A configured `http` sink.
pub struct HttpSink {
    client: Client,
    method: Method,
    uri: Url,
    headers: HeaderMap,
    auth: Option<HttpAuth>,
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
        let uri = Url::parse(&config.uri).map_err(|err| format!("uri `{}`: {err}", config.uri))?;
        if uri.scheme() != "http" {
            return Err(format!(
                "uri `{uri}`: this build sends over plain http only; https needs TLS support it lacks"
            ));
        }
        let mut headers = HeaderMap::new();
        let content_type = match config.encoding.codec {
            HttpCodec::Json => "application/json",
            HttpCodec::Ndjson => "application/x-ndjson",
            HttpCodec::Text => "text/plain; charset=utf-8",
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        headers.extend(header_map(&config.headers)?);
        let request = &config.request;
        let client = Client::builder()
            .timeout(Duration::from_secs(request.timeout_secs))
            .build()
            .map_err(|err| format!("cannot make an HTTP client: {err}"))?;
        let initial_backoff = Duration::from_secs(request.retry_initial_backoff_secs);
        Ok(Self {
            client,
            method: match config.method {
                HttpMethod::Post => Method::POST,
                HttpMethod::Put => Method::PUT,
            },
            uri,
            headers,
            auth: config.auth.clone(),
            codec: config.encoding.codec,
            compression: config.compression,
            max_events: config.batch.max_events,
            max_bytes: config.batch.max_bytes,
            batch_timeout: Duration::from_secs_f64(config.batch.timeout_secs),
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
                    self.send(std::mem::take(&mut pending), &context.name).await;
                    continue;
                }
            };
            match received {
                Some(batch) => self.add(batch, &mut pending, &context.name).await,
                None => break,
            }
        }
        if pending.events > 0 {
            self.send(pending, &context.name).await;
        }
        Ok(())
    }

    /// Adds a batch's events to the pending request, sending it whenever
    /// it is full; each request the batch reaches holds a share of its token.
    async fn add(&self, batch: Batch, pending: &mut Pending, name: &str) {
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
                self.send(std::mem::take(pending), name).await;
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
                self.send(std::mem::take(pending), name).await;
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

    /// Sends a request and settles every batch it carried by the outcome.
    async fn send(&self, pending: Pending, name: &str) {
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
        let outcome = self.deliver(Bytes::from(body), events, name).await;
        for token in tokens {
            token.finish(outcome);
        }
    }

    /// Sends `body` until the remote end accepts or refuses it, waiting
    /// longer (with jitter) after each failure that may pass.
    async fn deliver(&self, body: Bytes, events: usize, name: &str) -> Delivery {
        let mut backoff = self.initial_backoff;
        loop {
            match self.attempt(body.clone(), events, name).await {
                Attempt::Settled(outcome) => return outcome,
                Attempt::Retry(reason) => {
                    let wait = jittered(backoff);
                    warn!(
                        component = %name,
                        reason = %reason,
                        events,
                        retry_in_ms = wait.as_millis() as u64,
                        "Request failed; retrying."
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    /// One request: 2xx delivers; 429, 5xx and transport failures (no
    /// connection, timeout, reset) are retried; any other answer is final.
    async fn attempt(&self, body: Bytes, events: usize, name: &str) -> Attempt {
        let mut request = self
            .client
            .request(self.method.clone(), self.uri.clone())
            .headers(self.headers.clone())
            .body(body);
        request = match &self.auth {
            Some(HttpAuth::Basic { user, password }) => request.basic_auth(user, Some(password)),
            Some(HttpAuth::Bearer { token }) => request.bearer_auth(token),
            None => request,
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) if err.is_builder() || err.is_redirect() => {
                warn!(component = %name, error = %err, events, "Request cannot be sent; its events are not delivered.");
                return Attempt::Settled(Delivery::Failed);
            }
            Err(err) => return Attempt::Retry(error_chain(&err)),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Settled(Delivery::Delivered);
        }
        let excerpt = excerpt(response).await;
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Attempt::Retry(format!("the server answered {status}: {excerpt}"));
        }
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

/// The configured headers, or which one is not a valid header.
pub fn header_map(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap, String> {
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

/// Between half of `backoff` and all of it, at random, so that senders
/// that failed together do not retry together.
fn jittered(backoff: Duration) -> Duration {
    let unit = getrandom::u64().map_or(0.5, |random| (random >> 11) as f64 / (1u64 << 53) as f64);
    backoff / 2 + (backoff / 2).mul_f64(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let wait = jittered(Duration::from_secs(4));
            assert!((Duration::from_secs(2)..=Duration::from_secs(4)).contains(&wait));
        }
    }

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
