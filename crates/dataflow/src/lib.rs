//! Dataflows: the document (sources → pipelines → sinks), the typed
//! configuration of each component type and the components themselves
//! (`sources`, `pipelines`, `sinks`), validation that reports every
//! problem with its JSON path (`sinks[0].inputs[0]`), custom collectors
//! (`collector`: manifest, packages, what a worker unpacked), the
//! topology that starts a whole dataflow (`topology`), and what a node says
//! of one it runs (`status`). It builds on
//! `datascale-core` and `datascale-protocol` and knows nothing of the
//! manager, the worker or the configuration file.

pub mod collector;
pub mod pipelines;
#[cfg(test)]
mod proptests;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod topology;
mod validate;

use std::fmt;

use serde::{
    Serialize, Serializer,
    de::{
        self, DeserializeOwned,
        value::{MapDeserializer, StrDeserializer},
    },
    ser::SerializeMap,
};

use datascale_core::{
    buffer::{BufferConfig, BufferType},
    component::BuildError,
};
pub use validate::{
    ValidationContext, ValidationError, ValidationErrors, document_from_text, parse, parse_in,
    parse_text,
};

use self::{pipelines::PipelineConfig, sinks::SinkConfig, sources::SourceConfig};

/// The longest wait a document may ask for, in seconds: a year. Longer
/// ones are refused, since a timer or deadline that far cannot be held (a
/// `Duration` or an `Instant` would overflow) and no dataflow needs one.
pub const MAX_WAIT_SECS: f64 = 365.0 * 86_400.0;

/// The names serde takes for the variants of `T`: the `type`s of a
/// component config enum (tagged: `{"type": …, "conf": …}`), or the values
/// of a plain enum. They are what serde's derive lists when asked for a
/// variant that does not exist, so they are always the enum's own.
pub fn variant_names<T: DeserializeOwned>() -> &'static [&'static str] {
    /// An error that keeps the variants serde expected, and nothing else.
    #[derive(Debug)]
    struct Expected(&'static [&'static str]);

    impl fmt::Display for Expected {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "expected one of {:?}", self.0)
        }
    }

    impl std::error::Error for Expected {}

    impl de::Error for Expected {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Self(&[])
        }

        fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
            Self(expected)
        }
    }

    let tagged = || {
        T::deserialize(MapDeserializer::<_, Expected>::new(
            [("type", "")].into_iter(),
        ))
    };
    let plain = || T::deserialize(StrDeserializer::<Expected>::new(""));
    [tagged().err(), plain().err()]
        .into_iter()
        .flatten()
        .map(|Expected(names)| names)
        .find(|names| !names.is_empty())
        .unwrap_or_default()
}

/// What validation asks of every component type's configuration.
pub trait ComponentConfig {
    /// The component's `type`, as the document writes it.
    fn type_name(&self) -> &'static str;

    /// The named outputs downstream components take as `component.output`;
    /// empty for components with one unnamed output.
    fn named_outputs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Problems the shape of `conf` does not catch: (path below `conf`, message).
    fn problems(&self) -> Vec<(String, String)>;
}

/// What one component type's `conf` adds to validation; each type's own
/// module implements it, and the kind's enum asks it through `conf()`.
pub(crate) trait TypeConf {
    /// The named outputs downstream components take as `component.output`;
    /// empty for components with one unnamed output.
    fn named_outputs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Adds the problems the shape of `conf` does not catch.
    fn check(&self, _problems: &mut Problems) {}
}

/// The problems of one `conf`, in the order found: (path below `conf`, message).
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<(String, String)>);

impl Problems {
    /// Adds a problem at `path`.
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }
}

/// The error of a component `name` whose `conf` cannot be put to work.
pub(crate) fn invalid(name: &str) -> impl FnOnce(String) -> BuildError + '_ {
    move |message| BuildError::Invalid {
        component: name.to_owned(),
        message,
    }
}

/// Declares the closed enum of a kind's component types, one line a type
/// (`Variant(module::Config) => "type"`), with the serde attributes every
/// kind's enum has (`{"type": …, "conf": …}`), and generates what
/// dispatches on it: `type_name`, `conf()` (the variant's configuration as
/// the kind's trait) and `ComponentConfig`. `TYPE_NAMES` lets a test check
/// the names against serde's.
macro_rules! component_types {
    (
        $(#[$meta:meta])*
        pub enum $kind:ident as $component:ident {
            $($(#[doc = $doc:literal])* $variant:ident($config:ty) => $name:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(
            tag = "type",
            content = "conf",
            rename_all = "snake_case",
            deny_unknown_fields
        )]
        pub enum $kind {
            $($(#[doc = $doc])* $variant($config),)+
        }

        impl $kind {
            /// The `type` of each variant, in the order declared.
            #[cfg(test)]
            pub(crate) const TYPE_NAMES: &[&str] = &[$($name),+];

            /// This variant's configuration, as its own module implements it.
            fn conf(&self) -> &dyn $component {
                match self {
                    $($kind::$variant(config) => config,)+
                }
            }
        }

        impl $crate::ComponentConfig for $kind {
            fn type_name(&self) -> &'static str {
                match self {
                    $($kind::$variant(_) => $name,)+
                }
            }

            fn named_outputs(&self) -> Vec<String> {
                $crate::TypeConf::named_outputs(self.conf())
            }

            fn problems(&self) -> Vec<(String, String)> {
                let mut problems = $crate::Problems::default();
                $crate::TypeConf::check(self.conf(), &mut problems);
                problems.0
            }
        }
    };
}
pub(crate) use component_types;

/// A valid dataflow: names unique, inputs resolved, no cycles, every `conf`
/// of its type's shape and every VRL program compiled once.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataflow {
    /// Unique within its group.
    pub name: String,
    /// Where events come from.
    pub sources: Vec<Component<SourceConfig>>,
    /// What changes, filters or routes them, in the order written.
    pub pipelines: Vec<Component<PipelineConfig>>,
    /// Where they go.
    pub sinks: Vec<Component<SinkConfig>>,
}

/// One component of a dataflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Component<C> {
    /// Unique within the dataflow.
    pub name: String,
    /// Components (or `component.output`) whose events it takes; empty for sources.
    pub inputs: Vec<String>,
    /// Its type and that type's configuration.
    pub config: C,
    /// Where its events wait for it (`buffer`): only a sink's may be other
    /// than the default, memory.
    pub buffer: BufferConfig,
}

impl Dataflow {
    /// How many components it has of each kind: sources, pipelines, sinks.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.sources.len(), self.pipelines.len(), self.sinks.len())
    }

    /// The names of its components: sources, pipelines, then sinks.
    pub fn component_names(&self) -> Vec<String> {
        let sources = self.sources.iter().map(|c| &c.name);
        let pipelines = self.pipelines.iter().map(|c| &c.name);
        let sinks = self.sinks.iter().map(|c| &c.name);
        sources.chain(pipelines).chain(sinks).cloned().collect()
    }
}

/// Serializes as the document: `{"name", "sources", "pipelines", "sinks"}`.
impl Serialize for Dataflow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("sources", &self.sources)?;
        map.serialize_entry("pipelines", &self.pipelines)?;
        map.serialize_entry("sinks", &self.sinks)?;
        map.end()
    }
}

/// Serializes as the document's component: `{"name", "type", "inputs",
/// "buffer", "conf"}`, with `inputs` and `buffer` only where they are set.
impl<C: Serialize> Serialize for Component<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tagged = serde_json::to_value(&self.config).map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("type", &tagged["type"])?;
        if !self.inputs.is_empty() {
            map.serialize_entry("inputs", &self.inputs)?;
        }
        if self.buffer.kind != BufferType::Memory {
            map.serialize_entry("buffer", &self.buffer)?;
        }
        map.serialize_entry("conf", &tagged["conf"])?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn variant_names_are_the_types_the_document_takes() {
        let sources = variant_names::<SourceConfig>();
        assert!(
            sources.contains(&"http_server") && sources.contains(&"file"),
            "{sources:?}"
        );
        assert!(variant_names::<PipelineConfig>().contains(&"remap"));
        assert!(variant_names::<SinkConfig>().contains(&"console"));
        assert_eq!(variant_names::<BufferType>(), ["memory", "disk"]);
        assert_eq!(sources, SourceConfig::TYPE_NAMES);
        assert_eq!(
            variant_names::<PipelineConfig>(),
            PipelineConfig::TYPE_NAMES
        );
        assert_eq!(variant_names::<SinkConfig>(), SinkConfig::TYPE_NAMES);
        for name in sources {
            let err = serde_json::from_value::<SourceConfig>(json!({"type": name, "conf": {}}))
                .err()
                .map(|err| err.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{name}: {err}");
        }
        let unknown = serde_json::from_value::<SourceConfig>(json!({"type": "nope"}));
        let message = unknown.unwrap_err().to_string();
        assert!(
            sources
                .iter()
                .all(|name| message.contains(&format!("`{name}`"))),
            "{message}"
        );
    }
}
