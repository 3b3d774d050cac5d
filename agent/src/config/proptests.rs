//! Properties of the configuration loader: any file text, environment and
//! flags load or are refused with their issues, never a panic, however deep
//! the file nests; generated values for every key, written as TOML, given
//! as `DATASCALE_*` variables or as `--set` flags, load to the same values.

use std::path::PathBuf;

use proptest::{collection::vec, prelude::*, sample::select};
use toml::Value;

use super::{load::leaves, *};
use datascale_testing as testing;

fn text(value: &'static str) -> BoxedStrategy<Value> {
    Just(Value::String(value.to_owned())).boxed()
}

fn string(pattern: &'static str) -> BoxedStrategy<Value> {
    pattern.prop_map(Value::String).boxed()
}

fn integer(range: std::ops::Range<i64>) -> BoxedStrategy<Value> {
    range.prop_map(Value::Integer).boxed()
}

fn strings(pattern: &'static str, count: std::ops::Range<usize>) -> BoxedStrategy<Value> {
    vec(pattern, count)
        .prop_map(|items| Value::Array(items.into_iter().map(Value::String).collect()))
        .boxed()
}

/// A valid value for each key this test knows; a key added later keeps its
/// default, which is written out and read back as well.
fn value_of(key: &str) -> Option<BoxedStrategy<Value>> {
    const NAME: &str = "[a-z0-9][a-z0-9_.-]{0,20}";
    Some(match key {
        "service.mode" => prop_oneof![text("standalone"), text("manager"), text("worker")].boxed(),
        "service.address" => (1..30_000u16)
            .prop_map(|port| Value::String(format!("127.0.0.1:{port}")))
            .boxed(),
        "service.ui_address" => (30_000..60_000u16)
            .prop_map(|port| Value::String(format!("127.0.0.1:{port}")))
            .boxed(),
        "service.data_dir" | "service.collectors_dir" => {
            string("/[a-z]{1,8}(/[a-z0-9_-]{1,8}){0,2}")
        }
        "service.cluster_name" => string(NAME),
        "service.shutdown_timeout_secs" => integer(0..100_000),
        "service.manager.admin_token" | "service.manager.worker_token" => {
            string("[A-Za-z0-9_-]{0,40}")
        }
        "service.manager.admin_tokens" => {
            proptest::collection::btree_map("[a-z][a-z0-9_-]{0,10}", "[A-Za-z0-9]{16,40}", 0..3)
                .prop_filter("admin and worker name the main tokens", |tokens| {
                    !tokens.contains_key("admin") && !tokens.contains_key("worker")
                })
                .prop_map(|tokens| {
                    Value::Array(
                        tokens
                            .into_iter()
                            .map(|(name, secret)| Value::String(format!("{name}:{secret}")))
                            .collect(),
                    )
                })
                .boxed()
        }
        "service.manager.max_body_bytes" => integer(1..1 << 40),
        "service.manager.max_collector_mb" => integer(1..1 << 20),
        "service.manager.phi_threshold" => integer(1..1_000),
        "service.manager.phi_min_std_dev_ms" => integer(0..1_000_000),
        "service.manager.worker_offline_secs" => integer(1..1_000_000),
        "service.manager.worker_expire_minutes" => integer(0..1_000_000),
        "service.worker.manager_address" => {
            strings("http://[a-z][a-z0-9-]{0,10}:[1-9][0-9]{1,3}", 1..3)
        }
        "service.worker.groups" => strings(NAME, 1..4),
        "service.worker.token" => string("[A-Za-z0-9_-]{1,40}"),
        "service.worker.heartbeat_interval_secs" => integer(1..3_600),
        "resources.cpu_quota" => integer(0..10_000),
        "resources.memory_limit" => integer(0..1 << 30),
        "resources.cgroup_name" => string("[a-z][a-z0-9_-]{0,10}(/[a-z][a-z0-9_-]{0,10}){0,2}"),
        "resources.cgroup_root" => prop_oneof![text(""), text("/sys/fs/cgroup")].boxed(),
        "event_sets.max_age_days" | "event_sets.max_size_mb" | "event_sets.max_body_mb" => {
            integer(0..1_000_000)
        }
        "log.level" => select(vec![
            "trace",
            "debug",
            "info",
            "warn",
            "error",
            "off",
            "info,datascale=debug",
        ])
        .prop_map(|level| Value::String(level.to_owned()))
        .boxed(),
        "log.format" => prop_oneof![text("text"), text("json")].boxed(),
        "log.file" => prop_oneof![text(""), string("/[a-z]{1,8}/[a-z]{1,8}\\.log")].boxed(),
        _ => return None,
    })
}

/// Every key of the configuration with a generated value (or its default).
fn values() -> impl Strategy<Value = Vec<(String, Value)>> {
    let defaults = leaves(&toml::Table::try_from(Config::default()).unwrap());
    let strategies: Vec<BoxedStrategy<(String, Value)>> = defaults
        .into_iter()
        .map(|(key, default)| {
            let strategy = value_of(&key).unwrap_or_else(|| Just(default).boxed());
            strategy.prop_map(move |value| (key.clone(), value)).boxed()
        })
        .collect();
    strategies
}

/// A value as a variable or flag gives it: lists comma-separated.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn file_of(values: &[(String, Value)]) -> String {
    let mut table = toml::Table::new();
    for (key, value) in values {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap();
        let mut current = &mut table;
        for part in parts {
            current = current
                .entry(part)
                .or_insert_with(|| Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap();
        }
        current.insert(last.to_owned(), value.clone());
    }
    toml::to_string(&table).unwrap()
}

fn overrides() -> Overrides {
    Overrides {
        install_dir: PathBuf::from("/opt/datascale"),
        ..Overrides::default()
    }
}

fn write(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// The loaded configuration as key paths and values.
fn loaded_values(loaded: &LoadedConfig) -> Vec<(String, Value)> {
    leaves(&toml::Table::try_from(&loaded.config).unwrap())
}

proptest! {
    #![proptest_config(testing::cases(testing::CASES))]

    /// Generated values for every key load to the same values, whether
    /// written in the file, given as variables or as `--set` flags.
    #[test]
    fn values_load_back_from_file_env_and_flags(values in values(), how in 0..3u8) {
        let file = write(&file_of(&values));
        let mut over = overrides();
        let env_names: std::collections::BTreeMap<String, String> =
            known_keys().into_iter().map(|(key, env, _)| (key, env)).collect();
        match how {
            0 => over.config_path = Some(file.path().to_owned()),
            1 => over.env = values.iter().map(|(key, value)| (env_names[key].clone(), as_text(value))).collect(),
            _ => {
                over.flags = values
                    .iter()
                    .map(|(key, value)| (key.clone(), as_text(value), format!("--set {key}={}", as_text(value))))
                    .collect()
            }
        }
        let loaded = load(&over).map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(loaded_values(&loaded), values);
    }

    /// Any file text: a configuration, or what is wrong with it.
    #[test]
    fn any_file_is_loaded_or_refused(
        text in testing::text_or_tokens(&["[service]", "[log]", "mode = ", "\"worker\"", "level = ", "1", "[", "]", "{", "}", "=", "\n", "x.y = ", "'a'"]),
    ) {
        let file = write(&text);
        let mut over = overrides();
        over.config_path = Some(file.path().to_owned());
        if let Err(err) = load(&over) {
            prop_assert!(!err.to_string().is_empty());
        }
    }

    /// Any variables and flags: a configuration, or the issues, each naming
    /// its key or variable.
    #[test]
    fn any_env_and_flags_are_loaded_or_refused(
        env in vec(("DATASCALE_[A-Z_]{0,40}", "\\PC{0,20}"), 0..6),
        known in vec((any::<prop::sample::Index>(), "\\PC{0,20}"), 0..6),
        flags in vec(("[a-z_.]{0,30}", "\\PC{0,20}"), 0..4),
    ) {
        let keys = known_keys();
        let mut over = overrides();
        over.env = env;
        over.env.extend(known.iter().map(|(index, value)| (index.get(&keys).1.clone(), value.clone())));
        over.flags = flags.into_iter().map(|(key, value)| {
            let flag = format!("--set {key}={value}");
            (key, value, flag)
        }).collect();
        match load(&over) {
            Ok(_) => {}
            Err(ConfigError::Invalid(issues)) => prop_assert!(!issues.is_empty()),
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }
}

proptest! {
    #![proptest_config(testing::cases(16))]

    /// A file nested far deeper than a parser should recurse is refused on
    /// a thread with a runtime worker's stack.
    #[test]
    fn deep_nesting_is_refused(depth in 100..50_000usize, tables in any::<bool>()) {
        let text = match tables {
            true => format!("x = {}1{}", "{a = ".repeat(depth), "}".repeat(depth)),
            false => format!("x = {}1{}", "[".repeat(depth), "]".repeat(depth)),
        };
        let file = write(&text);
        let mut over = overrides();
        over.config_path = Some(file.path().to_owned());
        let refused = testing::on_worker_stack(move || load(&over).is_err());
        prop_assert!(refused);
    }
}
