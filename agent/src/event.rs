//! Events and batches: what flows along the edges of a dataflow.
//!
//! An event is a VRL value (an object), so `remap` and `filter` run on it
//! in place, with no conversion in or out. A batch is the unit that crosses
//! a channel and that sinks acknowledge.

use bytes::Bytes;
use vrl::value::{ObjectMap, Value};

use crate::runtime::ack::{Delivery, DeliveryToken};

/// Where events come from: stamped on every event a source makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The host's name.
    pub host: String,
    /// The dataflow's name.
    pub dataflow: String,
    /// The source's name.
    pub source: String,
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
        let text = |text: &str| Value::Bytes(Bytes::copy_from_slice(text.as_bytes()));
        fields.insert("host".into(), text(&origin.host));
        fields.insert("dataflow".into(), text(&origin.dataflow));
        fields.insert("source".into(), text(&origin.source));
        Self {
            value: Value::Object(fields),
        }
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
