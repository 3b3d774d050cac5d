//! The `http_server` source: accepts POST and PUT requests on one path,
//! decodes each body into events (all of them or none), and answers only
//! once the sinks have acknowledged them: 200 when delivered, 503 when not,
//! so that a client retries and nothing it was told was accepted is lost.
//! Its connections are under the limits of its `conf`, as the API's are
//! under `service.http`.
//!
//! Here too: the `http_server` `conf`, with its defaults, its checks and its build.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use datascale_connections::{ConnectionLimits, ConnectionTable, body_timeout_in};
use datascale_core::{
    ack::{Delivery, DeliveryToken},
    component::{
        BuildError, ComponentError, ComponentTask, MAX_BATCH_EVENTS, Output, SourceContext,
    },
    event::{Batch, Event, Origin},
    metrics::ComponentMetrics,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{
    Decoding, DecodingCodec, SourceBuild, SourceType, bind, connection_limits,
    default_max_connections, zeros,
};
use crate::{Problems, TypeConf};

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

fn default_http_path() -> String {
    "/".to_owned()
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_http_idle_timeout_secs() -> u64 {
    60
}

fn default_body_read_timeout_secs() -> u64 {
    30
}

impl SourceType for HttpServerConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        let listener = bind(build.name, self.address, std::net::TcpListener::bind)?;
        Ok(Box::pin(run(self.clone(), listener, build.context)))
    }
}

impl TypeConf for HttpServerConfig {
    fn check(&self, problems: &mut Problems) {
        if !self.path.starts_with('/') {
            problems.add("path", "must start with `/`");
        }
        for field in zeros([
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("max_connections", u64::from(self.max_connections)),
        ]) {
            problems.add(field, "must be at least 1");
        }
    }
}

/// Largest request body accepted; a larger one is answered 413.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What every request handler shares.
struct Receiver {
    codec: DecodingCodec,
    origin: Arc<Origin>,
    output: Output,
    metrics: Arc<ComponentMetrics>,
}

/// Why a request was not taken.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    /// The body does not decode with the source's codec.
    #[error("{0}")]
    BadBody(String),
    /// The body did not arrive within `body_read_timeout_secs`.
    #[error("{0}; send it faster or raise body_read_timeout_secs")]
    TooSlow(String),
    /// The sinks did not confirm the events; the client should retry.
    #[error("the events were not delivered; send them again")]
    NotDelivered,
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = match self {
            RequestError::BadBody(_) => StatusCode::BAD_REQUEST,
            RequestError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            RequestError::NotDelivered => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// Serves on `listener` until the source is stopped; requests in flight
/// are still answered.
async fn run(
    config: HttpServerConfig,
    listener: std::net::TcpListener,
    context: SourceContext,
) -> Result<(), ComponentError> {
    let listener = listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
        .map_err(|source| ComponentError::Io {
            context: format!("cannot listen on {}", config.address),
            source,
        })?;
    let table = ConnectionTable::new(
        format!("http_server source `{}`", context.origin.source()),
        config.connection_limits(),
    );
    let receiver = Arc::new(Receiver {
        codec: config.decoding.codec,
        origin: context.origin,
        output: context.output,
        metrics: context.metrics,
    });
    let router = Router::new()
        .route(&config.path, post(receive).put(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(receiver);
    info!(address = %config.address, path = %config.path, "Listening for events over HTTP.");
    datascale_connections::serve(
        listener,
        router,
        table,
        Duration::from_secs(config.body_read_timeout_secs),
        context.shutdown,
    )
    .await
    .map_err(|source| ComponentError::Io {
        context: format!("cannot serve HTTP on {}", config.address),
        source,
    })
}

/// Decodes the body, sends its events on and waits for their delivery.
async fn receive(
    State(receiver): State<Arc<Receiver>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => deliver(&receiver, body).await.into_response(),
        Err(rejection) => match body_timeout_in(&rejection) {
            Some(timeout) => RequestError::TooSlow(timeout.to_string()).into_response(),
            None => rejection.into_response(),
        },
    }
}

/// Decodes `body`, sends its events on and waits for their delivery.
async fn deliver(receiver: &Receiver, body: Bytes) -> Result<StatusCode, RequestError> {
    receiver.metrics.received(0, body.len());
    let events = decode(receiver.codec, body, &receiver.origin).map_err(|message| {
        receiver.metrics.error(1);
        RequestError::BadBody(message)
    })?;
    if events.is_empty() {
        return Ok(StatusCode::OK);
    }
    let (token, receipt) = DeliveryToken::new();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let batch = Batch {
            events: events.by_ref().take(MAX_BATCH_EVENTS).collect(),
            delivery: Some(token.clone()),
        };
        if receiver.output.send(batch).await.is_err() {
            token.finish(Delivery::Failed);
            return Err(RequestError::NotDelivered);
        }
    }
    drop(token);
    match receipt.outcome().await {
        Delivery::Failed => {
            receiver.metrics.error(1);
            warn!(source = %receiver.origin.source(), "A request's events were not delivered; answered 503.");
            Err(RequestError::NotDelivered)
        }
        Delivery::Delivered | Delivery::Dropped => Ok(StatusCode::OK),
    }
}

/// The events of a body, or what is wrong with it.
fn decode(codec: DecodingCodec, body: Bytes, origin: &Origin) -> Result<Vec<Event>, String> {
    match codec {
        DecodingCodec::Bytes => Ok(vec![Event::from_message(body, origin)]),
        DecodingCodec::Json => {
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|err| format!("the body is not valid JSON: {err}"))?;
            match value {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        Event::from_json(item, origin).map_err(|kind| {
                            format!("item {index} of the array is {kind}, not an object")
                        })
                    })
                    .collect(),
                other => Event::from_json(other, origin)
                    .map(|event| vec![event])
                    .map_err(|kind| {
                        format!("the body is {kind}; send an object or an array of objects")
                    }),
            }
        }
        DecodingCodec::Ndjson => body
            .split(|byte| *byte == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.trim_ascii().is_empty())
            .map(|(index, line)| {
                let number = index + 1;
                let value = serde_json::from_slice(line)
                    .map_err(|err| format!("line {number} is not valid JSON: {err}"))?;
                Event::from_json(value, origin)
                    .map_err(|kind| format!("line {number} is {kind}, not an object"))
            })
            .collect(),
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use vrl::value::Value;

    use super::*;

    fn origin() -> Origin {
        Origin::new("h", "d", "s")
    }

    #[test]
    fn ndjson_names_the_bad_line_and_skips_blank_ones() {
        let body = Bytes::from_static(b"{\"a\":1}\n\n{\"b\":2}\r\nnot json\n");
        let err = decode(DecodingCodec::Ndjson, body, &origin()).unwrap_err();
        assert!(err.starts_with("line 4 is not valid JSON"), "{err}");
        let good = Bytes::from_static(b"{\"a\":1}\n\n{\"b\":2}\r\n");
        assert_eq!(
            decode(DecodingCodec::Ndjson, good, &origin())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn json_takes_an_object_or_an_array_of_objects() {
        let one = decode(
            DecodingCodec::Json,
            Bytes::from_static(b"{\"a\":1}"),
            &origin(),
        );
        assert_eq!(one.unwrap()[0].field("a"), Some(&Value::from(1)));
        let err = decode(
            DecodingCodec::Json,
            Bytes::from_static(b"[{\"a\":1}, 2]"),
            &origin(),
        )
        .unwrap_err();
        assert_eq!(err, "item 1 of the array is a number, not an object");
    }
}
