//! Turning a dataflow document into a [`Dataflow`]: the shape of the
//! document, each `conf` against its type, names, inputs, cycles and VRL
//! programs. Every problem is collected with its JSON path, so one answer
//! names them all.

use std::{collections::BTreeMap, fmt};

use datascale_core::{buffer::BufferConfig, names::check_name};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use super::{
    Component, ComponentConfig, Dataflow,
    pipelines::{PipelineConfig, VrlRole},
    sinks::SinkConfig,
    sources::SourceConfig,
};

/// One problem with a dataflow document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Where, as a JSON path: `sinks[0].conf.event_set`; empty for the whole document.
    pub path: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_str() {
            "" => f.write_str(&self.message),
            path => write!(f, "{path}: {}", self.message),
        }
    }
}

/// Every problem found in a dataflow document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the dataflow is invalid:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ValidationErrors(pub Vec<ValidationError>);

/// Parses a document written as JSON or YAML, and validates it.
pub fn parse_text(text: &str) -> Result<Dataflow, ValidationErrors> {
    parse(&document_from_text(text)?)
}

/// Reads a document written as JSON or YAML into JSON, without validating
/// what it holds.
pub fn document_from_text(text: &str) -> Result<Value, ValidationErrors> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|err| single(format!("not valid JSON: {err}")))
    } else {
        serde_yaml::from_str(text).map_err(|err| single(format!("not valid JSON or YAML: {err}")))
    }
}

/// What validation may know beyond the document itself.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    /// The custom collectors installed, each with its versions; `None` where
    /// they are not known (a worker, the CLI), which leaves them unchecked.
    pub collectors: Option<BTreeMap<String, Vec<String>>>,
}

/// Validates a document and returns the typed dataflow.
pub fn parse(document: &Value) -> Result<Dataflow, ValidationErrors> {
    parse_in(document, &ValidationContext::default())
}

/// Validates a document against what `context` knows, and returns the
/// typed dataflow.
pub fn parse_in(
    document: &Value,
    context: &ValidationContext,
) -> Result<Dataflow, ValidationErrors> {
    let Some(fields) = document.as_object() else {
        return Err(single(
            "a dataflow is an object with `name`, `sources`, `pipelines` and `sinks`".to_owned(),
        ));
    };
    let mut report = Report::default();
    for key in fields.keys() {
        if !["name", "sources", "pipelines", "sinks"].contains(&key.as_str()) {
            report.add(key, format!("unknown field `{key}`; a dataflow has `name`, `sources`, `pipelines` and `sinks`"));
        }
    }
    let name = match fields.get("name") {
        Some(Value::String(name)) => {
            if let Err(why) = check_name(name) {
                report.add("name", why);
            }
            name.clone()
        }
        Some(_) => {
            report.add("name", "must be a string".to_owned());
            String::new()
        }
        None => {
            report.add("name", "missing: every dataflow has a name".to_owned());
            String::new()
        }
    };
    let sources = parse_components::<SourceConfig>(&mut report, fields, Kind::Source);
    let pipelines = parse_components::<PipelineConfig>(&mut report, fields, Kind::Pipeline);
    let sinks = parse_components::<SinkConfig>(&mut report, fields, Kind::Sink);

    if sources.is_empty() && !fields.contains_key("sources")
        || fields.get("sources").is_some_and(is_empty_array)
    {
        report.add("sources", "a dataflow needs at least one source".to_owned());
    }
    if sinks.is_empty() && !fields.contains_key("sinks")
        || fields.get("sinks").is_some_and(is_empty_array)
    {
        report.add("sinks", "a dataflow needs at least one sink".to_owned());
    }

    let graph = Graph::new(&mut report, &sources, &pipelines, &sinks);
    graph.check_inputs(&mut report);
    graph.check_cycles(&mut report);
    check_vrl(&mut report, &pipelines);
    if let Some(installed) = &context.collectors {
        check_collectors(&mut report, &sources, installed);
    }

    if !report.errors.is_empty() {
        return Err(ValidationErrors(report.errors));
    }
    Ok(Dataflow {
        name,
        sources: complete(sources),
        pipelines: complete(pipelines),
        sinks: complete(sinks),
    })
}

/// Every `collector` source names an installed collector, and an
/// installed version of it when it names one.
fn check_collectors(
    report: &mut Report,
    sources: &[Parsed<SourceConfig>],
    installed: &BTreeMap<String, Vec<String>>,
) {
    for parsed in sources {
        let Some(SourceConfig::Collector(config)) = parsed.component.as_ref().map(|c| &c.config)
        else {
            continue;
        };
        let path = &parsed.path;
        match (installed.get(&config.collector), &config.version) {
            (None, _) => {
                let known = match installed.is_empty() {
                    true => "none is installed; upload one with `datascale collector install`"
                        .to_owned(),
                    false => format!(
                        "installed: {}",
                        installed.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                };
                report.add(
                    format!("{path}.conf.collector"),
                    format!("no collector named `{}`; {known}", config.collector),
                );
            }
            (Some(versions), Some(version)) if !versions.contains(version) => report.add(
                format!("{path}.conf.version"),
                format!(
                    "collector `{}` has no version {version}; installed: {}",
                    config.collector,
                    versions.join(", ")
                ),
            ),
            _ => {}
        }
    }
}

/// The components of a list that parsed without any error.
fn complete<C>(parsed: Vec<Parsed<C>>) -> Vec<Component<C>> {
    parsed.into_iter().filter_map(|p| p.component).collect()
}

fn single(message: String) -> ValidationErrors {
    ValidationErrors(vec![ValidationError {
        path: String::new(),
        message,
    }])
}

fn is_empty_array(value: &Value) -> bool {
    value.as_array().is_some_and(Vec::is_empty)
}

#[derive(Default)]
struct Report {
    errors: Vec<ValidationError>,
}

impl Report {
    fn add(&mut self, path: impl Into<String>, message: String) {
        self.errors.push(ValidationError {
            path: path.into(),
            message,
        });
    }
}

/// The three kinds of components, each a list of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Source,
    Pipeline,
    Sink,
}

impl Kind {
    fn list(self) -> &'static str {
        match self {
            Kind::Source => "sources",
            Kind::Pipeline => "pipelines",
            Kind::Sink => "sinks",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Pipeline => "pipeline",
            Kind::Sink => "sink",
        }
    }
}

/// What is known of one component entry, even when its `conf` is invalid,
/// so that references to it do not add errors of their own.
struct Parsed<C> {
    path: String,
    name: Option<String>,
    inputs: Vec<String>,
    named_outputs: Vec<String>,
    component: Option<Component<C>>,
}

fn parse_components<C: DeserializeOwned + ComponentConfig>(
    report: &mut Report,
    fields: &Map<String, Value>,
    kind: Kind,
) -> Vec<Parsed<C>> {
    let list = kind.list();
    let entries = match fields.get(list) {
        None => return Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            report.add(list, format!("must be an array of {list}"));
            return Vec::new();
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| parse_component(report, entry, kind, format!("{list}[{index}]")))
        .collect()
}

fn parse_component<C: DeserializeOwned + ComponentConfig>(
    report: &mut Report,
    entry: &Value,
    kind: Kind,
    path: String,
) -> Parsed<C> {
    let mut parsed = Parsed {
        path: path.clone(),
        name: None,
        inputs: Vec::new(),
        named_outputs: Vec::new(),
        component: None,
    };
    let Some(fields) = entry.as_object() else {
        report.add(
            path,
            format!(
                "a {} is an object with `name`, `type` and `conf`",
                kind.noun()
            ),
        );
        return parsed;
    };
    let allowed: &[&str] = match kind {
        Kind::Source => &["name", "type", "conf"],
        Kind::Pipeline => &["name", "type", "inputs", "conf"],
        Kind::Sink => &["name", "type", "inputs", "buffer", "conf"],
    };
    for key in fields.keys() {
        if key == "inputs" && kind == Kind::Source {
            report.add(
                format!("{path}.inputs"),
                "a source takes no inputs: it is where events come from".to_owned(),
            );
        } else if !allowed.contains(&key.as_str()) {
            let known = allowed
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            report.add(
                format!("{path}.{key}"),
                format!("unknown field `{key}`; a {} has {known}", kind.noun()),
            );
        }
    }
    let valid_name = match fields.get("name") {
        Some(Value::String(name)) => match component_name_problem(name) {
            Some(why) => {
                report.add(format!("{path}.name"), why);
                false
            }
            None => {
                parsed.name = Some(name.clone());
                true
            }
        },
        Some(_) => {
            report.add(format!("{path}.name"), "must be a string".to_owned());
            false
        }
        None => {
            report.add(
                format!("{path}.name"),
                format!("missing: every {} has a name", kind.noun()),
            );
            false
        }
    };
    if kind != Kind::Source {
        parsed.inputs = parse_inputs(report, fields.get("inputs"), kind, &path);
    }
    let buffer = match fields.get("buffer") {
        Some(buffer) if kind == Kind::Sink => parse_buffer(report, buffer, &path),
        _ => Some(BufferConfig::default()),
    };
    let Some(type_name) = fields.get("type") else {
        report.add(
            format!("{path}.type"),
            format!("missing: every {} has a type", kind.noun()),
        );
        return parsed;
    };
    let conf = match fields.get("conf") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(conf @ Value::Object(_)) => conf.clone(),
        Some(_) => {
            report.add(format!("{path}.conf"), "must be an object".to_owned());
            return parsed;
        }
    };
    // The `[type, conf]` form of an adjacently tagged enum reads `conf` with
    // its type known, so the path of a bad field inside it is kept.
    let tagged = json!([type_name, conf]);
    let config: C = match serde_path_to_error::deserialize(&tagged) {
        Ok(config) => config,
        Err(err) => {
            let inner = err.path().to_string();
            // The root or element 0 is the type; element 1 is `conf`.
            let at = match inner.strip_prefix("[1]") {
                Some("") => format!("{path}.conf"),
                Some(below) => format!("{path}.conf{below}"),
                None => format!("{path}.type"),
            };
            report.add(at, err.inner().to_string());
            return parsed;
        }
    };
    for (below, message) in config.problems() {
        report.add(format!("{path}.conf.{below}"), message);
    }
    parsed.named_outputs = config.named_outputs();
    if let (true, Some(buffer)) = (valid_name, buffer) {
        parsed.component = Some(Component {
            name: parsed.name.clone().unwrap_or_default(),
            inputs: parsed.inputs.clone(),
            config,
            buffer,
        });
    }
    parsed
}

/// A sink's `buffer`, or `None` with its problems reported at their paths.
fn parse_buffer(report: &mut Report, buffer: &Value, path: &str) -> Option<BufferConfig> {
    match serde_path_to_error::deserialize::<_, BufferConfig>(buffer) {
        Ok(config) => {
            let problems = config.problems();
            for (below, message) in &problems {
                report.add(format!("{path}.buffer.{below}"), message.clone());
            }
            problems.is_empty().then_some(config)
        }
        Err(err) => {
            let at = match err.path().to_string().as_str() {
                "." => format!("{path}.buffer"),
                below => format!("{path}.buffer.{below}"),
            };
            report.add(at, err.inner().to_string());
            None
        }
    }
}

/// Component names are names of the safe charset without `.`, which
/// separates a component from its output in `inputs`.
fn component_name_problem(name: &str) -> Option<String> {
    if let Err(why) = check_name(name) {
        return Some(why);
    }
    name.contains('.')
        .then(|| "`.` is not allowed in a component name: it separates a component from its output in `inputs`".to_owned())
}

fn parse_inputs(
    report: &mut Report,
    inputs: Option<&Value>,
    kind: Kind,
    path: &str,
) -> Vec<String> {
    let at = format!("{path}.inputs");
    let need = || {
        format!(
            "a {} needs at least one input: the name of a source or a pipeline",
            kind.noun()
        )
    };
    match inputs {
        None => {
            report.add(at, need());
            Vec::new()
        }
        Some(Value::Array(items)) if items.is_empty() => {
            report.add(at, need());
            Vec::new()
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| match item {
                Value::String(input) => Some(input.clone()),
                _ => {
                    report.add(
                        format!("{at}[{index}]"),
                        "must be a string: a component's name".to_owned(),
                    );
                    None
                }
            })
            .collect(),
        Some(_) => {
            report.add(at, "must be an array of component names".to_owned());
            Vec::new()
        }
    }
}

/// The components by name, for resolving inputs and finding cycles.
struct Graph<'a> {
    nodes: BTreeMap<&'a str, Node<'a>>,
    /// Every pipeline and sink with its inputs, in document order.
    consumers: Vec<(&'a str, Kind, &'a str, &'a [String])>,
}

struct Node<'a> {
    kind: Kind,
    path: &'a str,
    named_outputs: &'a [String],
}

impl<'a> Graph<'a> {
    fn new(
        report: &mut Report,
        sources: &'a [Parsed<SourceConfig>],
        pipelines: &'a [Parsed<PipelineConfig>],
        sinks: &'a [Parsed<SinkConfig>],
    ) -> Self {
        let mut graph = Graph {
            nodes: BTreeMap::new(),
            consumers: Vec::new(),
        };
        let mut add = |kind: Kind,
                       path: &'a str,
                       name: &'a Option<String>,
                       inputs: &'a [String],
                       outputs: &'a [String]| {
            let Some(name) = name.as_deref() else { return };
            if let Some(first) = graph.nodes.get(name) {
                report.add(
                    format!("{path}.name"),
                    format!(
                        "`{name}` is already the name of {}; names are unique within a dataflow",
                        first.path
                    ),
                );
                return;
            }
            graph.nodes.insert(
                name,
                Node {
                    kind,
                    path,
                    named_outputs: outputs,
                },
            );
            if kind != Kind::Source {
                graph.consumers.push((name, kind, path, inputs));
            }
        };
        for p in sources {
            add(Kind::Source, &p.path, &p.name, &p.inputs, &p.named_outputs);
        }
        for p in pipelines {
            add(
                Kind::Pipeline,
                &p.path,
                &p.name,
                &p.inputs,
                &p.named_outputs,
            );
        }
        for p in sinks {
            add(Kind::Sink, &p.path, &p.name, &p.inputs, &p.named_outputs);
        }
        graph
    }

    /// Every input names a source or a pipeline, and a route's output when
    /// it is a route.
    fn check_inputs(&self, report: &mut Report) {
        for (name, _, path, inputs) in &self.consumers {
            for (index, input) in inputs.iter().enumerate() {
                if let Some(message) = self.input_problem(name, input) {
                    report.add(format!("{path}.inputs[{index}]"), message);
                }
            }
        }
    }

    fn input_problem(&self, consumer: &str, input: &str) -> Option<String> {
        let (target, output) = match input.split_once('.') {
            Some((target, output)) => (target, Some(output)),
            None => (input, None),
        };
        let Some(node) = self.nodes.get(target) else {
            let known: Vec<&str> = self
                .nodes
                .iter()
                .filter(|(name, node)| node.kind != Kind::Sink && **name != consumer)
                .map(|(name, _)| *name)
                .collect();
            let known = match known.is_empty() {
                true => "there are no sources or pipelines".to_owned(),
                false => format!("known: {}", known.join(", ")),
            };
            return Some(format!("no component named `{target}`; {known}"));
        };
        let outputs = || {
            node.named_outputs
                .iter()
                .map(|o| format!("{target}.{o}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (node.kind, output) {
            (Kind::Sink, _) => Some(format!("`{target}` is a sink: sinks have no outputs")),
            (_, None) if !node.named_outputs.is_empty() => Some(format!(
                "`{target}` is a route: name one of its outputs: {}",
                outputs()
            )),
            (_, Some(output)) if node.named_outputs.is_empty() => Some(format!(
                "`{target}` has no output `{output}`: it has one output, named `{target}`"
            )),
            (_, Some(output)) if !node.named_outputs.iter().any(|o| o == output) => Some(format!(
                "`{target}` has no output `{output}`; its outputs: {}",
                outputs()
            )),
            _ => None,
        }
    }

    /// Pipelines may not feed back into themselves. The walk keeps its
    /// own stack, so a chain of thousands of pipelines does not exhaust the
    /// thread's; the first cycle found is reported.
    fn check_cycles(&self, report: &mut Report) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        let inputs_of: BTreeMap<&str, (&str, &[String])> = self
            .consumers
            .iter()
            .filter(|(_, kind, _, _)| *kind == Kind::Pipeline)
            .map(|(name, _, path, inputs)| (*name, (*path, *inputs)))
            .collect();
        let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
        for start in inputs_of.keys() {
            if marks.contains_key(start) {
                continue;
            }
            // The pipelines being visited, each with its next input to follow.
            let mut trail: Vec<(&str, usize)> = vec![(start, 0)];
            marks.insert(start, Mark::Visiting);
            while let Some(&(name, index)) = trail.last() {
                let (path, inputs) = inputs_of[name];
                let Some(input) = inputs.get(index) else {
                    marks.insert(name, Mark::Done);
                    trail.pop();
                    continue;
                };
                if let Some(top) = trail.last_mut() {
                    top.1 += 1;
                }
                let target = input.split_once('.').map_or(input.as_str(), |(t, _)| t);
                let Some((&target, _)) = inputs_of.get_key_value(target) else {
                    continue;
                };
                match marks.get(target) {
                    Some(Mark::Visiting) => {
                        let start = trail.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let mut cycle: Vec<&str> = trail[start..].iter().map(|(n, _)| *n).collect();
                        cycle.push(target);
                        cycle.reverse();
                        report.add(
                            format!("{path}.inputs[{index}]"),
                            format!("this input closes a cycle: {}; events must flow from sources to sinks", cycle.join(" → ")),
                        );
                        return;
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(target, Mark::Visiting);
                        trail.push((target, 0));
                    }
                }
            }
        }
    }
}

/// Compiles every VRL program, so that a mistake is refused when the
/// dataflow is submitted, with VRL's own diagnostic.
fn check_vrl(report: &mut Report, pipelines: &[Parsed<PipelineConfig>]) {
    let programs: Vec<_> = pipelines
        .iter()
        .filter_map(|p| p.component.as_ref().map(|c| (&p.path, &c.config)))
        .flat_map(|(path, config)| {
            config
                .vrl_programs()
                .into_iter()
                .map(move |program| (path, program))
        })
        .collect();
    if programs.is_empty() {
        return;
    }
    let functions = vrl::stdlib::all();
    for (path, (field, source, role)) in programs {
        let at = format!("{path}.conf.{field}");
        match vrl::compiler::compile(source, &functions) {
            Err(diagnostics) => {
                let text = vrl::diagnostic::Formatter::new(source, diagnostics).to_string();
                report.add(at, format!("VRL does not compile:\n{}", text.trim_end()));
            }
            Ok(compiled) if role == VrlRole::Condition => {
                let result = compiled.program.final_type_info().result;
                if !result.kind().is_boolean() {
                    report.add(
                        at,
                        format!(
                            "a condition must return a boolean, but this returns {}",
                            result.kind()
                        ),
                    );
                }
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the dataflow contract.
    fn contract_example() -> Value {
        json!({
            "name": "default_dataflow",
            "sources": [{"name": "my_source", "type": "exec",
                         "conf": {"command": "echo hello", "mode": "scheduled",
                                  "scheduled": {"exec_interval_secs": 10}}}],
            "pipelines": [{"name": "parse", "type": "remap", "inputs": ["my_source"],
                           "conf": {"source": ". = parse_json!(.message)"}}],
            "sinks": [{"name": "my_sink", "type": "yh", "inputs": ["parse"],
                       "conf": {"event_set": "my_datascale_cluster"}}]
        })
    }

    #[test]
    fn collectors_are_checked_where_the_installed_ones_are_known() {
        let document = |conf: Value| {
            json!({"name": "disks",
                   "sources": [{"name": "usage", "type": "collector", "conf": conf}],
                   "sinks": [{"name": "out", "type": "blackhole", "inputs": ["usage"]}]})
        };
        let context = ValidationContext {
            collectors: Some(BTreeMap::from([(
                "disk_usage".to_owned(),
                vec!["1.0.0".to_owned()],
            )])),
        };
        let latest = document(json!({"collector": "disk_usage", "interval_secs": 5}));
        assert!(parse_in(&latest, &context).is_ok());
        let unknown = parse_in(&document(json!({"collector": "nope"})), &context).unwrap_err();
        assert_eq!(unknown.0[0].path, "sources[0].conf.collector");
        assert!(
            unknown.0[0].message.contains("installed: disk_usage"),
            "{unknown}"
        );
        let version = json!({"collector": "disk_usage", "version": "2.0.0"});
        let missing = parse_in(&document(version.clone()), &context).unwrap_err();
        assert_eq!(missing.0[0].path, "sources[0].conf.version");
        // Without the installed collectors (a worker, the CLI), only the shape counts.
        assert!(parse(&document(version)).is_ok());
        let zero = parse(&document(
            json!({"collector": "disk_usage", "interval_secs": 0}),
        ));
        assert_eq!(zero.unwrap_err().0[0].path, "sources[0].conf.interval_secs");
    }

    fn errors_of(document: Value) -> Vec<ValidationError> {
        parse(&document).expect_err("the document is invalid").0
    }

    fn message_at(errors: &[ValidationError], path: &str) -> String {
        errors
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no error at {path} in {errors:#?}"))
            .message
            .clone()
    }

    #[test]
    fn the_contract_example_is_valid_and_serializes_back_to_its_shape() {
        let dataflow = parse(&contract_example()).unwrap();
        assert_eq!(dataflow.name, "default_dataflow");
        assert_eq!(dataflow.counts(), (1, 1, 1));
        let back = serde_json::to_value(&dataflow).unwrap();
        assert_eq!(back["sinks"][0]["type"], "yh");
        assert_eq!(back["sinks"][0]["inputs"], json!(["parse"]));
        assert_eq!(
            back["sources"][0]["conf"]["scheduled"]["exec_interval_secs"],
            10
        );
        assert!(back["sources"][0].get("inputs").is_none());
        assert_eq!(
            parse(&back).unwrap(),
            dataflow,
            "the serialized form parses to the same dataflow"
        );
    }

    #[test]
    fn a_sink_may_have_a_disk_buffer_and_keeps_it_when_serialized() {
        let mut document = contract_example();
        document["sinks"][0]["buffer"] = json!({"type": "disk", "max_size": 8 << 20});
        let dataflow = parse(&document).unwrap();
        let buffer = &dataflow.sinks[0].buffer;
        assert_eq!(buffer.kind, datascale_core::buffer::BufferType::Disk);
        assert_eq!(buffer.max_size, 8 << 20);
        assert_eq!(buffer.when_full, datascale_core::buffer::WhenFull::Block);
        let back = serde_json::to_value(&dataflow).unwrap();
        assert_eq!(back["sinks"][0]["buffer"]["type"], "disk");
        assert_eq!(parse(&back).unwrap(), dataflow);
        // The default, memory, is not written out.
        let plain = serde_json::to_value(parse(&contract_example()).unwrap()).unwrap();
        assert!(plain["sinks"][0].get("buffer").is_none(), "{plain}");
    }

    #[test]
    fn connection_limits_of_zero_are_reported_at_their_paths() {
        let errors = errors_of(json!({
            "name": "limits",
            "sources": [
                {"name": "web", "type": "http_server",
                 "conf": {"address": "127.0.0.1:8080", "max_connections": 0}},
                {"name": "logs", "type": "syslog",
                 "conf": {"address": "127.0.0.1:5140", "mode": "tcp",
                          "message_read_timeout_secs": 0}}
            ],
            "sinks": [{"name": "out", "type": "blackhole", "inputs": ["web", "logs"]}]
        }));
        for path in [
            "sources[0].conf.max_connections",
            "sources[1].conf.message_read_timeout_secs",
        ] {
            assert_eq!(message_at(&errors, path), "must be at least 1");
        }
        assert_eq!(errors.len(), 2, "{errors:#?}");
    }

    #[test]
    fn a_bad_buffer_is_reported_at_its_path() {
        let with_buffer = |kind: &str, buffer: Value| {
            let mut document = contract_example();
            document[kind][0]["buffer"] = buffer;
            errors_of(document)
        };
        let small = with_buffer("sinks", json!({"type": "disk", "max_size": 1024}));
        assert!(
            message_at(&small, "sinks[0].buffer.max_size").contains("at least 1048576"),
            "{small:#?}"
        );
        let memory = with_buffer("sinks", json!({"when_full": "drop_newest"}));
        assert!(
            message_at(&memory, "sinks[0].buffer.when_full").contains("disk buffers only"),
            "{memory:#?}"
        );
        let unknown = with_buffer("sinks", json!({"type": "disk", "max_events": 5}));
        assert!(
            message_at(&unknown, "sinks[0].buffer.max_events").contains("expected one of `type`"),
            "{unknown:#?}"
        );
        let kind = with_buffer("sinks", json!({"type": "tape"}));
        assert!(
            message_at(&kind, "sinks[0].buffer.type").contains("expected `memory` or `disk`"),
            "{kind:#?}"
        );
        let full = with_buffer("sinks", json!({"type": "disk", "when_full": "panic"}));
        assert!(
            message_at(&full, "sinks[0].buffer.when_full").contains("drop_newest"),
            "{full:#?}"
        );
        let on_source = with_buffer("sources", json!({"type": "disk"}));
        assert!(
            message_at(&on_source, "sources[0].buffer").contains("unknown field `buffer`"),
            "{on_source:#?}"
        );
    }

    #[test]
    fn a_missing_input_is_named_with_the_known_components() {
        let mut document = contract_example();
        document["sinks"][0]["inputs"] = json!(["nope"]);
        let errors = errors_of(document);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(
            message_at(&errors, "sinks[0].inputs[0]"),
            "no component named `nope`; known: my_source, parse"
        );
    }

    #[test]
    fn conf_is_checked_against_its_type_with_the_path_of_the_field() {
        let mut document = contract_example();
        document["sources"][0]["conf"]["bogus"] = json!(1);
        document["sinks"][0]["type"] = json!("http");
        document["sinks"][0]["conf"] =
            json!({"uri": "http://x:1/", "batch": {"max_events": "many"}});
        document["pipelines"][0]["type"] = json!("transmogrify");
        let errors = errors_of(document);
        assert!(
            message_at(&errors, "sources[0].conf.bogus").contains("unknown field `bogus`"),
            "{errors:#?}"
        );
        assert!(
            message_at(&errors, "sinks[0].conf.batch.max_events").contains("invalid type"),
            "{errors:#?}"
        );
        let unknown_type = message_at(&errors, "pipelines[0].type");
        assert!(
            unknown_type.contains("transmogrify") && unknown_type.contains("remap"),
            "{unknown_type}"
        );
    }

    #[test]
    fn names_are_unique_and_of_the_safe_charset() {
        let mut document = contract_example();
        document["sinks"][0]["name"] = json!("parse");
        document["sources"][0]["name"] = json!("my.source");
        let errors = errors_of(document);
        assert!(message_at(&errors, "sinks[0].name").contains("already the name of pipelines[0]"));
        assert!(message_at(&errors, "sources[0].name").contains("`.` is not allowed"));
    }

    #[test]
    fn cycles_are_refused_at_the_input_that_closes_them() {
        let document = json!({
            "name": "loop",
            "sources": [{"name": "s", "type": "stdin"}],
            "pipelines": [
                {"name": "a", "type": "filter", "inputs": ["s", "b"], "conf": {"condition": "true"}},
                {"name": "b", "type": "filter", "inputs": ["a"], "conf": {"condition": "true"}}
            ],
            "sinks": [{"name": "out", "type": "blackhole", "inputs": ["b"]}]
        });
        let errors = errors_of(document);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].path.starts_with("pipelines["), "{errors:#?}");
        assert!(
            errors[0].message.contains("cycle: a → b → a")
                || errors[0].message.contains("cycle: b → a → b"),
            "{errors:#?}"
        );
    }

    #[test]
    fn route_outputs_are_named_component_dot_output() {
        let document = |inputs: Value| {
            json!({
                "name": "routes",
                "sources": [{"name": "s", "type": "demo"}],
                "pipelines": [{"name": "r", "type": "route", "inputs": ["s"],
                               "conf": {"route": {"errors": ".level == \"error\""}}}],
                "sinks": [{"name": "out", "type": "console", "inputs": inputs}]
            })
        };
        assert!(parse(&document(json!(["r.errors", "r._unmatched"]))).is_ok());
        let errors = errors_of(document(json!(["r", "r.nope", "s.x", "out"])));
        assert!(
            message_at(&errors, "sinks[0].inputs[0]")
                .contains("name one of its outputs: r.errors, r._unmatched")
        );
        assert!(message_at(&errors, "sinks[0].inputs[1]").contains("no output `nope`"));
        assert!(message_at(&errors, "sinks[0].inputs[2]").contains("it has one output, named `s`"));
        assert!(message_at(&errors, "sinks[0].inputs[3]").contains("is a sink"));
    }

    #[test]
    fn vrl_is_compiled_with_its_own_diagnostics_and_conditions_must_be_boolean() {
        let document = json!({
            "name": "vrl",
            "sources": [{"name": "s", "type": "demo"}],
            "pipelines": [
                {"name": "bad", "type": "remap", "inputs": ["s"], "conf": {"source": ". = parse_json(.message"}},
                {"name": "cond", "type": "filter", "inputs": ["s"], "conf": {"condition": "upcase(\"x\")"}},
                {"name": "fallible", "type": "remap", "inputs": ["s"], "conf": {"source": ". = parse_json(.message)"}}
            ],
            "sinks": [{"name": "out", "type": "blackhole", "inputs": ["bad", "cond", "fallible"]}]
        });
        let errors = errors_of(document);
        assert!(
            message_at(&errors, "pipelines[0].conf.source").starts_with("VRL does not compile"),
            "{errors:#?}"
        );
        assert!(
            message_at(&errors, "pipelines[1].conf.condition").contains("must return a boolean"),
            "{errors:#?}"
        );
        let fallible = message_at(&errors, "pipelines[2].conf.source");
        assert!(fallible.contains("fallible"), "VRL's own text: {fallible}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let document = json!({
            "label": "x",
            "sources": [{"name": "s", "type": "file", "inputs": ["t"], "conf": {"include": []}}],
            "sinks": [{"type": "blackhole"}, {"name": "h", "type": "http", "inputs": ["s"], "conf": {"uri": "collector:80"}}]
        });
        let errors = errors_of(document);
        for path in [
            "label",
            "name",
            "sources[0].inputs",
            "sources[0].conf.include",
            "sinks[0].name",
            "sinks[0].inputs",
            "sinks[1].conf.uri",
        ] {
            message_at(&errors, path);
        }
        assert_eq!(errors.len(), 7, "{errors:#?}");
    }

    #[test]
    fn yaml_is_accepted_and_syntax_errors_say_where() {
        let yaml = "name: y\nsources:\n  - {name: s, type: stdin}\nsinks:\n  - {name: o, type: console, inputs: [s]}\n";
        assert_eq!(parse_text(yaml).unwrap().name, "y");
        let err = parse_text("{\"name\": ").unwrap_err();
        assert!(
            err.0[0].message.contains("not valid JSON") && err.0[0].message.contains("line 1"),
            "{err}"
        );
    }
}
