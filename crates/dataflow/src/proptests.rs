//! Properties of the dataflow document and its validation: any text or
//! JSON is validated or refused with its problems, never a panic, however
//! deep it nests or however long its chain of pipelines; a generated valid
//! document validates, and its model written out as JSON or YAML validates
//! back to the same model, each component's type name as serde writes it;
//! a cycle is refused at an input that closes it.

use proptest::{collection::vec, prelude::*, sample::select};
use serde_json::{Value, json};

use super::*;
use datascale_testing as testing;

fn address() -> impl Strategy<Value = String> {
    (1..=65_535u16).prop_map(|port| format!("127.0.0.1:{port}"))
}

fn source_conf() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (
            select(vec![
                "json",
                "syslog",
                "bsd_syslog",
                "apache_common",
                "apache_error"
            ]),
            proptest::option::of(any::<u64>()),
            0.0..1e6f64,
        )
            .prop_map(|(format, count, interval)| {
                (
                    "demo",
                    json!({"format": format, "count": count, "interval_secs": interval}),
                )
            }),
        (1..10_000_000usize).prop_map(|max| ("stdin", json!({"max_length": max}))),
        (address(), select(vec!["tcp", "udp"]), 1..1_000_000usize).prop_map(
            |(address, mode, max)| {
                (
                    "syslog",
                    json!({"address": address, "mode": mode, "max_length": max}),
                )
            }
        ),
        (
            address(),
            "/[a-z0-9/_-]{0,20}",
            select(vec!["bytes", "json", "ndjson"])
        )
            .prop_map(|(address, path, codec)| {
                (
                    "http_server",
                    json!({"address": address, "path": path, "decoding": {"codec": codec}}),
                )
            }),
        (
            prop_oneof![
                "[a-z]{1,8}( [a-z0-9-]{1,8}){0,3}".prop_map(Value::from),
                vec("[a-z0-9/_.-]{1,10}", 1..4).prop_map(Value::from),
            ],
            select(vec!["scheduled", "streaming"]),
            1..86_400u64,
        )
            .prop_map(|(command, mode, interval)| {
                (
                    "exec",
                    json!({"command": command, "mode": mode,
                                "scheduled": {"exec_interval_secs": interval}}),
                )
            }),
        (
            vec("/[a-z]{1,8}/[a-z*]{1,8}\\.log", 1..3),
            1..10_000_000usize,
            select(vec!["truncate", "skip"]),
            select(vec!["beginning", "end"]),
        )
            .prop_map(|(include, max, oversize, from)| {
                (
                    "file",
                    json!({"include": include, "max_line_bytes": max,
                                "oversize_lines": oversize, "read_from": from}),
                )
            }),
        (1..3_600u64).prop_map(|secs| ("internal_metrics", json!({"scrape_interval_secs": secs}))),
    ]
}

/// A pipeline's type, its `conf`, and the names of its outputs (none: one
/// unnamed output).
fn pipeline_conf() -> impl Strategy<Value = (&'static str, Value, Vec<&'static str>)> {
    prop_oneof![
        select(vec!["true", ".level == \"error\"", "exists(.message)"]).prop_map(|condition| (
            "filter",
            json!({"condition": condition}),
            vec![]
        )),
        (select(vec![". = .", ".x = 1", "del(.host)"]), any::<bool>()).prop_map(
            |(source, drop)| (
                "remap",
                json!({"source": source, "drop_on_error": drop}),
                vec![]
            )
        ),
        (1..1_000u64, proptest::option::of(Just("message"))).prop_map(|(rate, key)| {
            ("sample", json!({"rate": rate, "key_field": key}), vec![])
        }),
        (1..10_000usize).prop_map(|events| {
            (
                "dedupe",
                json!({"fields": {"match": ["message"]}, "cache": {"num_events": events}}),
                vec![],
            )
        }),
        (1..1_000u64, 0.001..3_600.0f64).prop_map(|(threshold, window)| {
            (
                "throttle",
                json!({"threshold": threshold, "window_secs": window}),
                vec![],
            )
        }),
        any::<bool>().prop_map(|unmatched| {
            let mut outputs = vec!["errors", "other"];
            if unmatched {
                outputs.push("_unmatched");
            }
            let conf = json!({"route": {"errors": ".level == \"error\"", "other": "true"},
                              "reroute_unmatched": unmatched});
            ("route", conf, outputs)
        }),
    ]
}

fn sink_conf() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (select(vec!["json", "text", "logfmt"]), select(vec!["stdout", "stderr"])).prop_map(
            |(codec, target)| ("console", json!({"encoding": {"codec": codec}, "target": target}))
        ),
        Just(("blackhole", json!({}))),
        "/[a-z]{1,8}/[a-z]{1,8}-%Y-%m-%d\\.log".prop_map(|path| ("file", json!({"path": path}))),
        (1..100_000usize, 1..10_000_000usize, 0.01..600.0f64, select(vec!["none", "gzip"]))
            .prop_map(|(events, bytes, timeout, compression)| {
                ("http", json!({"uri": "http://127.0.0.1:9/ingest",
                                "batch": {"max_events": events, "max_bytes": bytes, "timeout_secs": timeout},
                                "compression": compression}))
            }),
        "[a-z][a-z0-9_]{0,15}".prop_map(|set| ("yh", json!({"event_set": set}))),
    ]
}

fn buffer() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(
        (1u64 << 20..1 << 40, select(vec!["block", "drop_newest"]))
            .prop_map(|(size, full)| json!({"type": "disk", "max_size": size, "when_full": full})),
    )
}

/// A valid document: 1 to 3 sources, up to 5 pipelines each taking 1 to 3
/// of the outputs before it, and 1 to 3 sinks taking any of them.
fn valid_document() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9][a-z0-9_-]{0,20}",
        vec(source_conf(), 1..4),
        vec(
            (pipeline_conf(), vec(any::<prop::sample::Index>(), 1..4)),
            0..6,
        ),
        vec(
            (
                sink_conf(),
                buffer(),
                vec(any::<prop::sample::Index>(), 1..4),
            ),
            1..4,
        ),
    )
        .prop_map(|(name, sources, pipelines, sinks)| {
            let mut outputs: Vec<String> = Vec::new();
            let sources: Vec<Value> = sources
                .into_iter()
                .enumerate()
                .map(|(index, (kind, conf))| {
                    let name = format!("source_{index}");
                    outputs.push(name.clone());
                    json!({"name": name, "type": kind, "conf": conf})
                })
                .collect();
            let pick = |outputs: &[String], picks: &[prop::sample::Index]| {
                let mut inputs: Vec<String> =
                    picks.iter().map(|pick| pick.get(outputs).clone()).collect();
                inputs.dedup();
                inputs
            };
            let pipelines: Vec<Value> = pipelines
                .into_iter()
                .enumerate()
                .map(|(index, ((kind, conf, named), picks))| {
                    let name = format!("pipeline_{index}");
                    let inputs = pick(&outputs, &picks);
                    match named.is_empty() {
                        true => outputs.push(name.clone()),
                        false => {
                            outputs.extend(named.iter().map(|output| format!("{name}.{output}")))
                        }
                    }
                    json!({"name": name, "type": kind, "inputs": inputs, "conf": conf})
                })
                .collect();
            let sinks: Vec<Value> = sinks
                .into_iter()
                .enumerate()
                .map(|(index, ((kind, conf), buffer, picks))| {
                    let mut sink = json!({"name": format!("sink_{index}"), "type": kind,
                                          "inputs": pick(&outputs, &picks), "conf": conf});
                    if let Some(buffer) = buffer {
                        sink["buffer"] = buffer;
                    }
                    sink
                })
                .collect();
            json!({"name": name, "sources": sources, "pipelines": pipelines, "sinks": sinks})
        })
}

/// A document of `length` pipelines, each taking the one before it, and a
/// cycle back to the first when `cycle` is set.
fn chain(length: usize, cycle: bool) -> Value {
    let pipelines: Vec<Value> = (0..length)
        .map(|index| {
            let mut inputs = vec![match index {
                0 => "source".to_owned(),
                _ => format!("p{}", index - 1),
            }];
            if cycle && index == 0 {
                inputs.push(format!("p{}", length - 1));
            }
            json!({"name": format!("p{index}"), "type": "sample", "inputs": inputs, "conf": {"rate": 1}})
        })
        .collect();
    json!({
        "name": "chain",
        "sources": [{"name": "source", "type": "stdin"}],
        "pipelines": pipelines,
        "sinks": [{"name": "out", "type": "blackhole", "inputs": [format!("p{}", length - 1)]}],
    })
}

proptest! {
    #![proptest_config(testing::cases(testing::CASES))]

    /// Any text: a dataflow, or its problems; never a panic.
    #[test]
    fn any_text_is_validated_or_refused(
        text in testing::text_or_tokens(&["{", "}", "[", "]", ":", ",", "-", " ", "\n", "&a", "*a", "!!", "name", "\"x\""]),
    ) {
        if let Err(errors) = parse_text(&text) {
            prop_assert!(!errors.0.is_empty());
        }
    }

    /// Any JSON value: a dataflow, or its problems, each at a path.
    #[test]
    fn any_json_is_validated_or_refused(document in testing::json_value()) {
        if let Err(errors) = parse(&document) {
            prop_assert!(!errors.0.is_empty());
        }
    }

    /// A valid document with one field replaced by any JSON value is
    /// validated or refused, never a panic.
    #[test]
    fn a_damaged_document_is_validated_or_refused(
        document in valid_document(),
        at in any::<prop::sample::Index>(),
        value in testing::json_value(),
    ) {
        let mut document = document;
        let mut paths = Vec::new();
        fn collect(value: &Value, path: String, out: &mut Vec<String>) {
            out.push(path.clone());
            match value {
                Value::Object(fields) => fields.iter().for_each(|(key, inner)| collect(inner, format!("{path}/{key}"), out)),
                Value::Array(items) => items.iter().enumerate().for_each(|(index, inner)| collect(inner, format!("{path}/{index}"), out)),
                _ => {}
            }
        }
        collect(&document, String::new(), &mut paths);
        let pointer: &String = at.get(&paths);
        if let Some(target) = document.pointer_mut(pointer) {
            *target = value;
        }
        if let Err(errors) = parse(&document) {
            prop_assert!(!errors.0.is_empty());
        }
    }

    /// A generated valid document validates; its model written as JSON and
    /// as YAML validates back to the same model.
    #[test]
    fn a_valid_document_round_trips(document in valid_document()) {
        let dataflow = parse(&document).map_err(|errors| TestCaseError::fail(format!("{errors}\n{document:#}")))?;
        prop_assert_eq!(dataflow.name.as_str(), document["name"].as_str().unwrap());
        prop_assert_eq!(dataflow.counts(), (
            document["sources"].as_array().unwrap().len(),
            document["pipelines"].as_array().unwrap().len(),
            document["sinks"].as_array().unwrap().len(),
        ));
        let json = serde_json::to_string_pretty(&dataflow).unwrap();
        prop_assert_eq!(&parse_text(&json).unwrap(), &dataflow);
        // Each component's type name is the `type` serde writes for it.
        let written: Value = serde_json::from_str(&json).unwrap();
        let types: Vec<String> = ["sources", "pipelines", "sinks"]
            .iter()
            .flat_map(|kind| written[kind].as_array().cloned().unwrap_or_default())
            .map(|component| component["type"].as_str().unwrap().to_owned())
            .collect();
        let names: Vec<&str> = dataflow.sources.iter().map(|c| c.config.type_name())
            .chain(dataflow.pipelines.iter().map(|c| c.config.type_name()))
            .chain(dataflow.sinks.iter().map(|c| c.config.type_name()))
            .collect();
        prop_assert_eq!(names, types);
        let yaml = serde_yaml::to_string(&dataflow).unwrap();
        prop_assert_eq!(&parse_text(&yaml).unwrap(), &dataflow);
    }
}

proptest! {
    #![proptest_config(testing::cases(testing::CASES))]

    /// Every `demo` source that validation accepts has an interval the
    /// source can wait, each tick a deadline that can be held.
    #[test]
    fn an_accepted_demo_interval_can_be_waited(
        interval in prop_oneof![any::<f64>().prop_filter("JSON holds finite numbers", |f| f.is_finite()), 0.0..1e3f64, 1e7..1e20f64],
    ) {
        let config: sources::demo::DemoConfig = serde_json::from_value(json!({"interval_secs": interval})).unwrap();
        if sources::SourceConfig::Demo(config).problems().is_empty() {
            let wait = std::time::Duration::try_from_secs_f64(interval);
            prop_assert!(wait.is_ok_and(|wait| std::time::Instant::now().checked_add(wait).is_some()));
        }
    }
}

proptest! {
    #![proptest_config(testing::cases(16))]

    /// Text nested far deeper than a parser should recurse, as JSON or
    /// YAML, is refused on a runtime worker's stack.
    #[test]
    fn deep_nesting_is_refused(depth in 100..50_000usize, objects in any::<bool>(), yaml in any::<bool>()) {
        let text = match yaml {
            true => (0..depth).map(|level| format!("{}a:\n", "  ".repeat(level % 200))).collect(),
            false => testing::deeply_nested(depth, objects),
        };
        let refused = testing::on_worker_stack(move || parse_text(&text).is_err());
        prop_assert!(refused);
    }

    /// A chain of pipelines as long as a request body allows is validated
    /// on a runtime worker's stack; closed into a cycle, it is refused at
    /// the input that closes it.
    #[test]
    fn a_long_chain_is_validated(length in 1..16_000usize, cycle in any::<bool>()) {
        let document = chain(length, cycle);
        let result = testing::on_worker_stack(move || parse(&document));
        match (result, cycle) {
            (Ok(dataflow), false) => prop_assert_eq!(dataflow.pipelines.len(), length),
            (Err(errors), true) => {
                prop_assert_eq!(errors.0.len(), 1, "{}", errors);
                prop_assert!(errors.0[0].message.contains("closes a cycle"), "{}", errors);
            }
            (other, _) => return Err(TestCaseError::fail(format!("{:?}", other.map(|d| d.name)))),
        }
    }

    /// YAML aliases that would expand to billions of nodes are refused
    /// without expanding them.
    #[test]
    fn an_alias_bomb_is_refused_without_expanding(levels in 3..12usize, width in 5..12usize) {
        let mut text = String::from("a0: &a0 [x]\n");
        for level in 1..levels {
            let refs = vec![format!("*a{}", level - 1); width].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        text.push_str(&format!("name: *a{}\n", levels - 1));
        let (result, peak) = testing::peak_heap(|| parse_text(&text));
        prop_assert!(result.is_err());
        prop_assert!(peak < 64 << 20, "{} bytes held", peak);
    }
}

/// Found by `a_long_chain_is_validated`: the cycle check recursed once per
/// pipeline of a chain, and a chain of a few thousand overflowed the stack
/// of the runtime worker validating it, which aborts the process.
#[test]
fn a_chain_of_sixteen_thousand_pipelines_is_validated() {
    let length = 16_000;
    let dataflow = testing::on_worker_stack(move || parse(&chain(length, false)));
    assert_eq!(dataflow.unwrap().pipelines.len(), length);
}

/// Found by `an_accepted_demo_interval_can_be_waited` and the `http`
/// sink's `every_accepted_configuration_builds`: a wait too long for a
/// `Duration` or an `Instant` passed validation, and the component
/// panicked when it started or when its first batch opened.
#[test]
fn a_wait_longer_than_a_year_is_refused() {
    let document = json!({
        "name": "waits",
        "sources": [{"name": "s", "type": "demo", "conf": {"interval_secs": 1e20}}],
        "sinks": [{"name": "h", "type": "http", "inputs": ["s"],
                   "conf": {"uri": "http://127.0.0.1:9/", "batch": {"timeout_secs": 1e19}}}],
    });
    let errors = parse(&document).unwrap_err().0;
    let paths: Vec<_> = errors.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "sources[0].conf.interval_secs",
            "sinks[0].conf.batch.timeout_secs"
        ]
    );
    assert!(
        errors[0].message.contains("a year"),
        "{}",
        errors[0].message
    );
}
