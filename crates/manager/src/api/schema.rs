//! Schemas of the OpenAPI document for what the handlers take as plain JSON,
//! bytes or headers and check themselves: names, `If-None-Match`, the
//! dataflow document (whose component types are read from the config
//! enums, so that they cannot drift), the lines of an ingest, and the
//! collector package.

use datascale_core::buffer::{BufferType, WhenFull};
use datascale_dataflow::{
    self, pipelines::PipelineConfig, sinks::SinkConfig, sources::SourceConfig,
};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Ref, RefOr, Schema,
        schema::{
            AdditionalProperties, ArrayBuilder, ArrayItems, KnownFormat, ObjectBuilder,
            SchemaFormat, SchemaType, Type,
        },
    },
};

/// `If-None-Match` on a write: `*` only, for "create, never replace".
#[derive(Debug, ToSchema)]
pub enum IfNoneMatch {
    /// Whatever is stored: the write only creates.
    #[serde(rename = "*")]
    Any,
}

/// The name of a component: a name without `.`, which separates a
/// component from its output in `inputs`.
const COMPONENT_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";

/// An input: a component's name, or a route's `name.output`.
const INPUT_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(\.[\s\S]*)?$";

/// A dataflow document: sources → pipelines → sinks. Each component's
/// `conf` is checked against its type's own fields on validation, which
/// answers 400 with every problem and its JSON path; so are the rules no
/// schema says: names unique, every input a component that puts out
/// events, no cycle, every VRL program compiles.
#[derive(Debug)]
pub struct DataflowDocument;

/// A dataflow document to store at a path that names it: `name` may be
/// left out, and when given is the path's.
#[derive(Debug)]
pub struct DataflowDocumentAtPath;

/// A source of a dataflow: where events come from.
#[derive(Debug)]
pub struct SourceComponent;

/// A pipeline of a dataflow: what transforms, filters or routes events.
#[derive(Debug)]
pub struct PipelineComponent;

/// A sink of a dataflow: where events go.
#[derive(Debug)]
pub struct SinkComponent;

/// The events of an ingest, as the lines of its NDJSON body: one JSON
/// object a line, at least one.
#[derive(Debug)]
pub struct EventLines;

impl PartialSchema for EventLines {
    fn schema() -> RefOr<Schema> {
        let event = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An event; one without a `timestamp` (RFC 3339) gets the time of arrival.",
            ));
        array("The lines, one event each.", event, 1).into()
    }
}

impl ToSchema for EventLines {}

/// A custom collector package: a `.tar.gz` with `collector.toml` at its root.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct CollectorPackage(pub Vec<u8>);

fn string(description: &str, pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
}

fn array(description: &str, items: impl Into<ArrayItems>, min_items: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .description(Some(description))
        .items(items)
        .min_items((min_items > 0).then_some(min_items))
}

fn one_of(description: &str, names: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(names.iter().copied()))
}

/// A closed object: what it does not list, it refuses.
fn closed(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// The schema of a component of one kind: `types` are its kind's types;
/// pipelines and sinks take `inputs`, sinks a `buffer`.
fn component(description: &str, types: &[&str], inputs: bool, buffer: bool) -> RefOr<Schema> {
    let mut object = closed(description)
        .property(
            "name",
            string("Unique within the dataflow.", COMPONENT_NAME_PATTERN),
        )
        .required("name")
        .property("type", one_of("The component's type.", types))
        .required("type")
        .property(
            "conf",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                .description(Some(
                    "The type's own settings, checked against its fields on validation; none: every setting's default.",
                )),
        );
    if inputs {
        let input = string(
            "A source's or a pipeline's name, or a route's `name.output`.",
            INPUT_PATTERN,
        );
        object = object
            .property("inputs", array("The components it reads from.", input, 1))
            .required("inputs");
    }
    if buffer {
        object = object.property("buffer", sink_buffer());
    }
    object.into()
}

/// The schema of a dataflow document; `at_path`: one stored at a path
/// that names it.
fn document(at_path: bool) -> RefOr<Schema> {
    let name = string(
        match at_path {
            false => {
                "Letters, digits, `_`, `-` and `.`, starting with a letter or digit; at most 64 characters."
            }
            true => {
                "Letters, digits, `_`, `-` and `.`, starting with a letter or digit; at most 64 characters. May be left out; when given, the path's name."
            }
        },
        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    );
    let description = "A dataflow document: sources → pipelines → sinks. Validation also checks what no schema says: each `conf` against its type's fields, names unique, every input a source or a pipeline, no cycle, every VRL program compiles; a 400 names every problem with its JSON path.";
    let mut object = closed(description)
        .property("name", name)
        .property(
            "sources",
            array("Where events come from.", reference::<SourceComponent>(), 1),
        )
        .required("sources")
        .property(
            "pipelines",
            array(
                "What transforms them, in order.",
                reference::<PipelineComponent>(),
                0,
            ),
        )
        .property(
            "sinks",
            array("Where they go.", reference::<SinkComponent>(), 1),
        )
        .required("sinks");
    if !at_path {
        object = object.required("name");
    }
    object.into()
}

/// What a schema that refers to the component schemas registers with it.
fn component_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    for (name, schema) in [
        (SourceComponent::name(), SourceComponent::schema()),
        (PipelineComponent::name(), PipelineComponent::schema()),
        (SinkComponent::name(), SinkComponent::schema()),
    ] {
        schemas.push((name.into_owned(), schema));
    }
}

/// A reference to the schema of `T`, which the referring schema registers.
fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

impl PartialSchema for DataflowDocument {
    fn schema() -> RefOr<Schema> {
        document(false)
    }
}

impl ToSchema for DataflowDocument {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        component_schemas(schemas);
    }
}

impl PartialSchema for DataflowDocumentAtPath {
    fn schema() -> RefOr<Schema> {
        document(true)
    }
}

impl ToSchema for DataflowDocumentAtPath {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        component_schemas(schemas);
    }
}

impl PartialSchema for SourceComponent {
    fn schema() -> RefOr<Schema> {
        let types = datascale_dataflow::variant_names::<SourceConfig>();
        component("A source: where events come from.", types, false, false)
    }
}

impl ToSchema for SourceComponent {}

impl PartialSchema for PipelineComponent {
    fn schema() -> RefOr<Schema> {
        let types = datascale_dataflow::variant_names::<PipelineConfig>();
        component(
            "A pipeline: what transforms, filters or routes events.",
            types,
            true,
            false,
        )
    }
}

impl ToSchema for PipelineComponent {}

impl PartialSchema for SinkComponent {
    fn schema() -> RefOr<Schema> {
        let types = datascale_dataflow::variant_names::<SinkConfig>();
        component("A sink: where events go.", types, true, true)
    }
}

impl ToSchema for SinkComponent {}

/// Where a sink's events wait for it.
fn sink_buffer() -> ObjectBuilder {
    let max_size = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .description(Some(
            "Most bytes a disk buffer keeps: at least 1 MiB (256 MiB when left out).",
        ));
    closed(
        "Where a sink's events wait: `memory` (the default), or `disk`, which keeps them across restarts.",
    )
    .property(
        "type",
        one_of("`memory` or `disk`.", datascale_dataflow::variant_names::<BufferType>()),
    )
    .property("max_size", max_size)
    .property(
        "when_full",
        one_of(
            "What a full disk buffer does with new events.",
            datascale_dataflow::variant_names::<WhenFull>(),
        ),
    )
}
