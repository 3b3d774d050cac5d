//! Events and batches: what flows along the edges of a dataflow.
//!
//! An event is a VRL value (an object), so `remap` and `filter` run on it
//! in place, with no conversion in or out. A batch is the unit that crosses
//! a channel and that sinks acknowledge.

use bytes::Bytes;
use vrl::value::{ObjectMap, Value};

use crate::ack::{Delivery, DeliveryToken};

/// Where events come from: stamped on every event a source makes. The
/// names are kept as shared bytes, so stamping an event copies no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    host: Bytes,
    dataflow: Bytes,
    source: Bytes,
}

impl Origin {
    /// The origin of events that `source` of `dataflow` makes on `host`.
    pub fn new(host: &str, dataflow: &str, source: &str) -> Self {
        let bytes = |text: &str| Bytes::copy_from_slice(text.as_bytes());
        Self {
            host: bytes(host),
            dataflow: bytes(dataflow),
            source: bytes(source),
        }
    }

    /// The host's name.
    pub fn host(&self) -> &str {
        as_text(&self.host)
    }

    /// The dataflow's name.
    pub fn dataflow(&self) -> &str {
        as_text(&self.dataflow)
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        as_text(&self.source)
    }
}

/// Text that [`Origin::new`] stored as bytes.
fn as_text(bytes: &Bytes) -> &str {
    std::str::from_utf8(bytes).expect("an origin is made from text")
}

/// One event: an object of fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The fields; always an object.
    pub value: Value,
}

impl Event {
    /// An event for a line of text: `message`, `timestamp`, `host`,
    /// `dataflow` and `source`.
    pub fn from_message(message: impl Into<Bytes>, origin: &Origin) -> Self {
        let mut fields = ObjectMap::new();
        fields.insert("message".into(), Value::Bytes(message.into()));
        Self::from_fields(fields, origin)
    }

    /// An event made of `fields`, stamped like [`Event::from_message`]:
    /// `host`, `dataflow` and `source` from the origin, and `timestamp` now
    /// unless the fields already have one.
    pub fn from_fields(mut fields: ObjectMap, origin: &Origin) -> Self {
        fields
            .entry("timestamp".into())
            .or_insert_with(|| Value::Timestamp(chrono::Utc::now()));
        fields.insert("host".into(), Value::Bytes(origin.host.clone()));
        fields.insert("dataflow".into(), Value::Bytes(origin.dataflow.clone()));
        fields.insert("source".into(), Value::Bytes(origin.source.clone()));
        Self {
            value: Value::Object(fields),
        }
    }

    /// An event of a JSON object's fields, stamped like
    /// [`Event::from_fields`]; for any other JSON value, the kind of value
    /// it is.
    pub fn from_json(value: serde_json::Value, origin: &Origin) -> Result<Self, &'static str> {
        let serde_json::Value::Object(object) = value else {
            return Err(match value {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::String(_) => "a string",
                _ => "an array",
            });
        };
        let fields: ObjectMap = object
            .into_iter()
            .map(|(name, value)| (name.into(), Value::from(value)))
            .collect();
        Ok(Self::from_fields(fields, origin))
    }

    /// Appends the event as one JSON object and a newline to `out`.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        self.write_json(out);
        out.push(b'\n');
    }

    /// Appends the event as one JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &self.value).expect("a VRL value serializes to JSON");
    }

    /// The `message` field as text, when there is one.
    pub fn message(&self) -> Option<String> {
        self.field("message")
            .map(|message| text_of(message).into_owned())
    }

    /// Sets a top-level field.
    pub fn insert(&mut self, name: &str, value: Value) {
        if let Value::Object(fields) = &mut self.value {
            fields.insert(name.into(), value);
        }
    }

    /// A top-level field.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match &self.value {
            Value::Object(fields) => fields.get(name),
            _ => None,
        }
    }
}

/// Events that travel together, with the token their source waits on.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The events, in order.
    pub events: Vec<Event>,
    /// Shared by every copy of this batch; `None` when no source waits.
    pub delivery: Option<DeliveryToken>,
}

impl Batch {
    /// A batch whose source does not wait for its delivery.
    pub fn unacknowledged(events: Vec<Event>) -> Self {
        Self {
            events,
            delivery: None,
        }
    }

    /// Whether its source has abandoned it, to send its events again.
    pub fn is_abandoned(&self) -> bool {
        self.delivery
            .as_ref()
            .is_some_and(DeliveryToken::is_abandoned)
    }

    /// Records what became of this copy of the batch, and lets it go.
    pub fn finish(self, outcome: Delivery) {
        if let Some(token) = self.delivery {
            token.finish(outcome);
        }
    }
}

/// A value as text: strings as they are (invalid UTF-8 replaced), other
/// values in VRL's notation.
pub fn text_of(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::Bytes(bytes) => String::from_utf8_lossy(bytes),
        Value::String(text) => std::borrow::Cow::Borrowed(text.as_ref()),
        Value::Timestamp(time) => time
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            .into(),
        other => other.to_string().into(),
    }
}
