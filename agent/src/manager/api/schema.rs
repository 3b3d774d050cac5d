//! Schemas of the OpenAPI document for what the handlers take as plain JSON,
//! bytes or headers and check themselves: names, `If-None-Match`, the
//! dataflow document, and the collector package.

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

/// A name of the safe charset (a group, a dataflow, an event set, a
/// worker, a collector): letters, digits, `_`, `-` and `.`, starting with a
/// letter or a digit; at most 64 characters.
#[derive(Debug, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
pub struct Name(pub String);

/// `If-None-Match` on a write: `*` only, for "create, never replace".
#[derive(Debug, ToSchema)]
pub enum IfNoneMatch {
    /// Whatever is stored: the write only creates.
    #[serde(rename = "*")]
    Any,
}

/// A dataflow document: sources → pipelines → sinks. Each component's
/// `conf` is checked against its type's own fields on validation, which
/// answers 400 with every problem and its JSON path.
#[derive(Debug, ToSchema)]
pub struct DataflowDocument {
    /// Letters, digits, `_`, `-` and `.`, starting with a letter or digit;
    /// at most 64 characters. On a PUT it may be left out (the path names it).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub name: String,
    /// Where events come from.
    pub sources: Vec<Component>,
    /// What transforms them.
    pub pipelines: Option<Vec<Component>>,
    /// Where they go.
    pub sinks: Vec<Component>,
}

/// One component of a dataflow.
#[derive(Debug, ToSchema)]
pub struct Component {
    /// Unique within the dataflow.
    pub name: String,
    /// The component type, such as `file`, `remap` or `http`.
    pub r#type: String,
    /// Names of the components it reads from (`route.output` for a route's
    /// output); pipelines and sinks only.
    pub inputs: Option<Vec<String>>,
    /// Where a sink's events wait for it: `{"type": "memory"}` (the
    /// default) or `{"type": "disk", "max_size": bytes, "when_full":
    /// "block" | "drop_newest"}`; sinks only.
    #[schema(value_type = Option<Object>)]
    pub buffer: Option<BTreeMap<String, Value>>,
    /// The type's own settings.
    #[schema(value_type = Option<Object>)]
    pub conf: Option<BTreeMap<String, Value>>,
}

/// A custom collector package: a `.tar.gz` with `collector.toml` at its root.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct CollectorPackage(pub Vec<u8>);
