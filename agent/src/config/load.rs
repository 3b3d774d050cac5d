//! Loading the configuration: the defaults, then the file, then `DATASCALE_*`
//! variables, then command-line flags, each value remembering where it came
//! from. Every problem found is collected, so one run names them all.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use datascale_protocol::Mode;
use toml::{Table, Value};

use super::{Config, ENV_PREFIX, TOKEN_ENV, URL_ENV};

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, as written (`--set service.mode=worker`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// What overrides the defaults, besides the file's contents.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The install directory: relative paths start here, and the default
    /// configuration file is `config/datascale.toml` below it.
    pub install_dir: PathBuf,
    /// `--config`: a file that must exist. Without it the default file is
    /// read when it exists.
    pub config_path: Option<PathBuf>,
    /// The process environment; only `DATASCALE_*` variables are looked at,
    /// except those of the management commands ([`URL_ENV`], [`TOKEN_ENV`]).
    pub env: Vec<(String, String)>,
    /// Command-line overrides: key, value, and the flag as the user wrote it.
    pub flags: Vec<(String, String, String)>,
}

/// One problem with the configuration, naming the key and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// What is wrong, naming the key or variable.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("the configuration file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Keys, variables or values are wrong.
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), list_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn list_issues(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(|issue| format!("  - {issue}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The effective configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration, with relative paths resolved against the install dir.
    pub config: Config,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// The install directory.
    pub install_dir: PathBuf,
    origins: BTreeMap<String, Origin>,
}

impl LoadedConfig {
    /// Every key with its effective value (secrets redacted) and origin, in key order.
    pub fn effective_values(&self) -> Vec<(String, String, Origin)> {
        let table = Table::try_from(&self.config).expect("the configuration serializes to TOML");
        leaves(&table)
            .into_iter()
            .map(|(key, value)| {
                let shown = shown_value(&key, &value);
                let origin = self.origins.get(&key).cloned().unwrap_or(Origin::Default);
                (key, shown, origin)
            })
            .collect()
    }
}

/// Every key the configuration knows, with its environment variable and default.
pub fn known_keys() -> Vec<(String, String, String)> {
    leaves(&default_table())
        .into_iter()
        .map(|(key, value)| {
            let env = env_name(&key);
            let shown = shown_value(&key, &value);
            (key, env, shown)
        })
        .collect()
}

/// Loads the configuration: defaults < file < environment < flags.
pub fn load(overrides: &Overrides) -> Result<LoadedConfig, ConfigError> {
    let defaults = default_table();
    let mut layers = Layers::new(&defaults);
    let file = match &overrides.config_path {
        Some(path) => Some(path.clone()),
        None => Some(overrides.install_dir.join("config").join("datascale.toml"))
            .filter(|path| path.exists()),
    };
    if let Some(path) = &file {
        layers.read_file(path)?;
    }
    layers.apply_env(&overrides.env);
    layers.apply_flags(&overrides.flags);
    layers.check_each_override(&defaults);
    let (mut config, origins) = layers.merge()?;
    config.service.data_dir = overrides.install_dir.join(&config.service.data_dir);
    config.service.collectors_dir = overrides.install_dir.join(&config.service.collectors_dir);
    if !config.log.file.as_os_str().is_empty() {
        config.log.file = overrides.install_dir.join(&config.log.file);
    }
    Ok(LoadedConfig {
        config,
        file,
        install_dir: overrides.install_dir.clone(),
        origins,
    })
}

/// The configuration as its layers are laid over the defaults: each key's
/// value and where it came from, and every problem found on the way (all
/// of them are reported, not only the first).
struct Layers {
    /// Every key with its default, which also gives its type.
    known: BTreeMap<String, Value>,
    values: BTreeMap<String, Value>,
    origins: BTreeMap<String, Origin>,
    issues: Vec<ConfigIssue>,
}

impl Layers {
    fn new(defaults: &Table) -> Self {
        let known: BTreeMap<String, Value> = leaves(defaults).into_iter().collect();
        Self {
            values: known.clone(),
            known,
            origins: BTreeMap::new(),
            issues: Vec::new(),
        }
    }

    /// The keys of the configuration file at `path`.
    fn read_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: Table = text
            .parse()
            .map_err(|err: toml::de::Error| ConfigError::Syntax {
                path: path.to_owned(),
                message: err.to_string().trim_end().to_owned(),
            })?;
        let mut file_values = Vec::new();
        collect_file_values(
            &table,
            "",
            &self.known,
            path,
            &mut file_values,
            &mut self.issues,
        );
        for (key, value) in file_values {
            self.values.insert(key.clone(), value);
            self.origins.insert(key, Origin::File(path.to_owned()));
        }
        Ok(())
    }

    /// The `DATASCALE_*` variables of `env`, in name order; an unknown one
    /// is a problem, with the nearest known name.
    fn apply_env(&mut self, env: &[(String, String)]) {
        let env_keys: BTreeMap<String, String> = self
            .known
            .keys()
            .map(|key| (env_name(key), key.clone()))
            .collect();
        let mut env: Vec<_> = env
            .iter()
            .filter(|(name, _)| {
                name.starts_with(ENV_PREFIX) && ![URL_ENV, TOKEN_ENV].contains(&name.as_str())
            })
            .collect();
        env.sort();
        for (name, text) in env {
            match env_keys.get(name) {
                Some(key) => self.set(key, text, Origin::Env(name.clone())),
                None => {
                    let hint = closest(name, env_keys.keys())
                        .map(|near| format!("; did you mean {near}?"))
                        .unwrap_or_default();
                    self.issues.push(issue(format!(
                        "unknown environment variable {name}{hint} (`datascale config keys` lists them all)"
                    )));
                }
            }
        }
    }

    /// The `--set key=value` flags, in the order given.
    fn apply_flags(&mut self, flags: &[(String, String, String)]) {
        for (key, text, flag) in flags {
            let origin = Origin::Flag(flag.clone());
            if self.known.contains_key(key) {
                self.set(key, text, origin);
            } else {
                let hint = closest(key, self.known.keys())
                    .map(|near| format!("; did you mean `{near}`?"))
                    .unwrap_or_default();
                self.issues
                    .push(issue(format!("unknown key `{key}` in {origin}{hint}")));
            }
        }
    }

    /// Sets a known key from text, read as the type of its default.
    fn set(&mut self, key: &str, text: &str, origin: Origin) {
        match typed_value(&self.known[key], text) {
            Ok(value) => {
                self.values.insert(key.to_owned(), value);
                self.origins.insert(key.to_owned(), origin);
            }
            Err(expected) => self.issues.push(value_issue(key, text, &origin, expected)),
        }
    }

    /// Checks each overridden value alone against the defaults, so that
    /// every bad value is reported, not only the first.
    fn check_each_override(&mut self, defaults: &Table) {
        for (key, origin) in &self.origins {
            let mut single = defaults.clone();
            set_path(&mut single, key, self.values[key].clone());
            if let Err(err) = Value::Table(single).try_into::<Config>() {
                self.issues.push(value_issue(
                    key,
                    &plain_value(&self.values[key]),
                    origin,
                    err.message(),
                ));
            }
        }
    }

    /// The configuration of every layer together, once no problem was
    /// found, with the rules that involve more than one key checked.
    fn merge(mut self) -> Result<(Config, BTreeMap<String, Origin>), ConfigError> {
        if !self.issues.is_empty() {
            return Err(ConfigError::Invalid(self.issues));
        }
        let mut merged = Table::new();
        for (key, value) in &self.values {
            set_path(&mut merged, key, value.clone());
        }
        let config: Config = Value::Table(merged)
            .try_into()
            .map_err(|err: toml::de::Error| {
                ConfigError::Invalid(vec![issue(err.message().to_owned())])
            })?;
        self.issues.extend(cross_checks(&config, &self.origins));
        if !self.issues.is_empty() {
            return Err(ConfigError::Invalid(self.issues));
        }
        Ok((config, self.origins))
    }
}

/// Rules that involve more than one key.
fn cross_checks(config: &Config, origins: &BTreeMap<String, Origin>) -> Vec<ConfigIssue> {
    let from = |key: &str| origins.get(key).cloned().unwrap_or(Origin::Default);
    let mut issues = Vec::new();
    let service = &config.service;
    for (key, value) in [
        (
            "service.worker.heartbeat_interval_secs",
            service.worker.heartbeat_interval_secs,
        ),
        (
            "service.manager.worker_offline_secs",
            service.manager.worker_offline_secs,
        ),
        (
            "service.manager.phi_threshold",
            u64::from(service.manager.phi_threshold),
        ),
        (
            "service.manager.max_collector_mb",
            service.manager.max_collector_mb,
        ),
        (
            "service.http.header_read_timeout_secs",
            service.http.header_read_timeout_secs,
        ),
        (
            "service.http.idle_timeout_secs",
            service.http.idle_timeout_secs,
        ),
        (
            "service.http.body_read_timeout_secs",
            service.http.body_read_timeout_secs,
        ),
        (
            "service.http.max_connections",
            u64::from(service.http.max_connections),
        ),
    ] {
        if value == 0 {
            issues.push(issue(format!(
                "{key} is 0 ({}); it must be at least 1",
                from(key)
            )));
        }
    }
    if service.mode.runs_manager()
        && service.address == service.ui_address
        && service.address.port() != 0
    {
        issues.push(issue(format!(
            "service.address and service.ui_address are both {} ({} and {}); the API and the Web UI need different ports",
            service.address,
            from("service.address"),
            from("service.ui_address"),
        )));
    }
    if service.mode == Mode::Worker {
        if service.worker.manager_address.is_empty() {
            issues.push(issue(
                "service.worker.manager_address is empty, but mode is `worker`: set it to the manager's API URL, such as http://master1:7881".to_owned(),
            ));
        }
        if service.worker.token.is_empty() {
            issues.push(issue(
                "service.worker.token is empty, but mode is `worker`: set it to the manager's worker token (kept in the manager's data_dir)".to_owned(),
            ));
        }
    }
    for address in &service.worker.manager_address {
        let valid = reqwest::Url::parse(address)
            .map(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .unwrap_or(false);
        if !valid {
            issues.push(issue(format!(
                "service.worker.manager_address = `{address}` ({}): expected a URL such as http://master1:7881",
                from("service.worker.manager_address"),
            )));
        }
    }
    if service.mode.runs_worker() && service.worker.groups.is_empty() {
        issues.push(issue(format!(
            "service.worker.groups is empty ({}): a worker needs at least one group, such as `default`",
            from("service.worker.groups"),
        )));
    }
    issues
}

fn default_table() -> Table {
    Table::try_from(Config::default()).expect("the default configuration serializes to TOML")
}

/// `service.worker.manager_address` → `DATASCALE_SERVICE_WORKER_MANAGER_ADDRESS`.
pub(super) fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase())
}

/// The leaves of a table as dotted key paths; arrays are leaves.
pub(super) fn leaves(table: &Table) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    fn walk(table: &Table, prefix: &str, out: &mut Vec<(String, Value)>) {
        for (name, value) in table {
            let key = join_key(prefix, name);
            match value {
                Value::Table(inner) => walk(inner, &key, out),
                other => out.push((key, other.clone())),
            }
        }
    }
    walk(table, "", &mut out);
    out
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Walks the file's table; known leaves are kept, anything else is an issue.
fn collect_file_values(
    table: &Table,
    prefix: &str,
    known: &BTreeMap<String, Value>,
    path: &Path,
    out: &mut Vec<(String, Value)>,
    issues: &mut Vec<ConfigIssue>,
) {
    for (name, value) in table {
        let key = join_key(prefix, name);
        let section = format!("{key}.");
        if known.contains_key(&key) {
            out.push((key, value.clone()));
        } else if let (Value::Table(inner), true) =
            (value, known.keys().any(|known| known.starts_with(&section)))
        {
            collect_file_values(inner, &key, known, path, out, issues);
        } else {
            let hint = closest(&key, known.keys())
                .map(|near| format!("; did you mean `{near}`?"))
                .unwrap_or_default();
            issues.push(issue(format!(
                "unknown key `{key}` in {}{hint}",
                path.display()
            )));
        }
    }
}

/// Turns the text of a variable or flag into a value of the key's type.
fn typed_value(default: &Value, text: &str) -> Result<Value, &'static str> {
    match default {
        Value::Integer(_) => text
            .trim()
            .parse()
            .map(Value::Integer)
            .map_err(|_| "expected a whole number"),
        Value::Boolean(_) => match text.trim() {
            "true" => Ok(Value::Boolean(true)),
            "false" => Ok(Value::Boolean(false)),
            _ => Err("expected true or false"),
        },
        // Lists are given comma-separated; the key's own parser splits them.
        _ => Ok(Value::String(text.to_owned())),
    }
}

fn set_path(table: &mut Table, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("a key has at least one part");
    let mut current = table;
    for part in parts {
        current = current
            .entry(part)
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("a section of the configuration is a table");
    }
    current.insert(last.to_owned(), value);
}

fn is_secret(key: &str) -> bool {
    key.ends_with("token") || key.ends_with("tokens")
}

fn plain_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn shown_value(key: &str, value: &Value) -> String {
    match value {
        Value::String(text) if is_secret(key) && !text.is_empty() => "<redacted>".to_owned(),
        Value::Array(items) if is_secret(key) && !items.is_empty() => "<redacted>".to_owned(),
        Value::String(text) if text.is_empty() => "\"\"".to_owned(),
        other => plain_value(other),
    }
}

fn value_issue(key: &str, text: &str, origin: &Origin, why: &str) -> ConfigIssue {
    let shown = if is_secret(key) { "<redacted>" } else { text };
    issue(format!("{key} = `{shown}` ({origin}): {why}"))
}

fn issue(message: String) -> ConfigIssue {
    ConfigIssue { message }
}

/// The closest known name, when it is close enough to be a likely typo.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    candidates
        .map(|candidate| {
            (
                strsim::normalized_damerau_levenshtein(name, candidate),
                candidate,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::config::LogFormat;

    fn overrides() -> Overrides {
        Overrides {
            install_dir: PathBuf::from("/opt/datascale"),
            ..Overrides::default()
        }
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn messages(err: ConfigError) -> Vec<String> {
        match err {
            ConfigError::Invalid(issues) => issues.into_iter().map(|i| i.message).collect(),
            other => panic!("expected invalid values, got {other}"),
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let loaded = load(&overrides()).unwrap();
        let service = &loaded.config.service;
        assert_eq!(service.mode, Mode::Standalone);
        assert_eq!(service.address.to_string(), "0.0.0.0:7881");
        assert_eq!(service.ui_address.to_string(), "0.0.0.0:7880");
        assert_eq!(service.data_dir, PathBuf::from("/opt/datascale/data"));
        assert_eq!(service.cluster_name, "datascale");
        assert_eq!(service.worker.groups, vec!["default"]);
        assert_eq!(loaded.config.resources.cpu_quota, 0);
        assert_eq!(loaded.config.log.level, "info");
        assert!(loaded.file.is_none());
        assert!(
            loaded
                .effective_values()
                .iter()
                .all(|(_, _, origin)| *origin == Origin::Default)
        );
    }

    #[test]
    fn every_contract_key_has_its_documented_variable() {
        let names: Vec<String> = known_keys().into_iter().map(|(_, env, _)| env).collect();
        for expected in [
            "DATASCALE_SERVICE_MODE",
            "DATASCALE_SERVICE_ADDRESS",
            "DATASCALE_SERVICE_UI_ADDRESS",
            "DATASCALE_SERVICE_DATA_DIR",
            "DATASCALE_SERVICE_CLUSTER_NAME",
            "DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN",
            "DATASCALE_SERVICE_MANAGER_WORKER_TOKEN",
            "DATASCALE_SERVICE_WORKER_MANAGER_ADDRESS",
            "DATASCALE_SERVICE_WORKER_GROUPS",
            "DATASCALE_SERVICE_WORKER_TOKEN",
            "DATASCALE_RESOURCES_CPU_QUOTA",
            "DATASCALE_RESOURCES_MEMORY_LIMIT",
            "DATASCALE_LOG_LEVEL",
        ] {
            assert!(
                names.iter().any(|name| name == expected),
                "{expected} missing"
            );
        }
    }

    #[test]
    fn precedence_is_default_file_env_flag() {
        let file = file_with(
            "[service]\nmode = \"manager\"\ncluster_name = \"from-file\"\naddress = \"127.0.0.1:1\"\n[log]\nlevel = \"debug\"\n",
        );
        let mut over = overrides();
        over.config_path = Some(file.path().to_owned());
        over.env = vec![
            ("DATASCALE_SERVICE_CLUSTER_NAME".into(), "from-env".into()),
            ("DATASCALE_SERVICE_ADDRESS".into(), "127.0.0.1:2".into()),
            ("PATH".into(), "/bin".into()),
        ];
        over.flags = vec![(
            "service.address".into(),
            "127.0.0.1:3".into(),
            "--set service.address=127.0.0.1:3".into(),
        )];
        let loaded = load(&over).unwrap();
        let config = &loaded.config;
        assert_eq!(config.service.mode, Mode::Manager);
        assert_eq!(config.service.cluster_name, "from-env");
        assert_eq!(config.service.address.to_string(), "127.0.0.1:3");
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.log.format, LogFormat::Text);
        let origin_of = |key: &str| {
            loaded
                .effective_values()
                .into_iter()
                .find(|(k, _, _)| k == key)
                .unwrap()
                .2
        };
        assert_eq!(
            origin_of("service.mode"),
            Origin::File(file.path().to_owned())
        );
        assert_eq!(
            origin_of("service.cluster_name"),
            Origin::Env("DATASCALE_SERVICE_CLUSTER_NAME".into())
        );
        assert!(matches!(origin_of("service.address"), Origin::Flag(_)));
        assert_eq!(origin_of("service.ui_address"), Origin::Default);
    }

    #[test]
    fn every_key_can_be_set_from_its_variable() {
        let cases = [
            ("DATASCALE_SERVICE_MODE", "worker"),
            ("DATASCALE_SERVICE_ADDRESS", "127.0.0.1:9001"),
            ("DATASCALE_SERVICE_UI_ADDRESS", "127.0.0.1:9000"),
            ("DATASCALE_SERVICE_DATA_DIR", "/var/lib/datascale"),
            ("DATASCALE_SERVICE_COLLECTORS_DIR", "plugins"),
            ("DATASCALE_SERVICE_CLUSTER_NAME", "prod"),
            ("DATASCALE_SERVICE_SHUTDOWN_TIMEOUT_SECS", "3"),
            ("DATASCALE_SERVICE_HTTP_HEADER_READ_TIMEOUT_SECS", "4"),
            ("DATASCALE_SERVICE_HTTP_IDLE_TIMEOUT_SECS", "45"),
            ("DATASCALE_SERVICE_HTTP_BODY_READ_TIMEOUT_SECS", "120"),
            ("DATASCALE_SERVICE_HTTP_MAX_CONNECTIONS", "25000"),
            ("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", "admin-secret"),
            ("DATASCALE_SERVICE_MANAGER_WORKER_TOKEN", "worker-secret"),
            (
                "DATASCALE_SERVICE_MANAGER_ADMIN_TOKENS",
                "alice:alice-secret-0123456789,ci:ci-secret-0123456789",
            ),
            ("DATASCALE_SERVICE_MANAGER_MAX_BODY_BYTES", "65536"),
            ("DATASCALE_SERVICE_MANAGER_MAX_COLLECTOR_MB", "8"),
            ("DATASCALE_SERVICE_MANAGER_PHI_THRESHOLD", "10"),
            ("DATASCALE_SERVICE_MANAGER_PHI_MIN_STD_DEV_MS", "100"),
            ("DATASCALE_SERVICE_MANAGER_WORKER_OFFLINE_SECS", "12"),
            ("DATASCALE_SERVICE_MANAGER_WORKER_EXPIRE_MINUTES", "60"),
            ("DATASCALE_SERVICE_WORKER_HEARTBEAT_INTERVAL_SECS", "2"),
            ("DATASCALE_EVENT_SETS_MAX_AGE_DAYS", "30"),
            ("DATASCALE_EVENT_SETS_MAX_SIZE_MB", "2048"),
            ("DATASCALE_EVENT_SETS_MAX_BODY_MB", "4"),
            (
                "DATASCALE_SERVICE_WORKER_MANAGER_ADDRESS",
                "http://m1:7881, http://m2:7881",
            ),
            ("DATASCALE_SERVICE_WORKER_GROUPS", "default,another_group"),
            ("DATASCALE_SERVICE_WORKER_TOKEN", "worker-secret"),
            ("DATASCALE_RESOURCES_CPU_QUOTA", "200"),
            ("DATASCALE_RESOURCES_MEMORY_LIMIT", "1024"),
            ("DATASCALE_RESOURCES_CGROUP_NAME", "apps/datascale"),
            ("DATASCALE_RESOURCES_CGROUP_ROOT", "/sys/fs/cgroup"),
            ("DATASCALE_LOG_LEVEL", "debug"),
            ("DATASCALE_LOG_FORMAT", "json"),
            ("DATASCALE_LOG_FILE", "logs/datascale.log"),
            ("DATASCALE_LOG_REPEAT_LIMIT", "3"),
            ("DATASCALE_LOG_REPEAT_INTERVAL_SECS", "60"),
        ];
        let mut over = overrides();
        over.env = cases
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let loaded = load(&over).unwrap();
        let c = &loaded.config;
        assert_eq!(c.service.mode, Mode::Worker);
        assert_eq!(c.service.address.to_string(), "127.0.0.1:9001");
        assert_eq!(c.service.ui_address.to_string(), "127.0.0.1:9000");
        assert_eq!(c.service.data_dir, PathBuf::from("/var/lib/datascale"));
        assert_eq!(
            c.service.collectors_dir,
            PathBuf::from("/opt/datascale/plugins")
        );
        assert_eq!(c.service.cluster_name, "prod");
        assert_eq!(c.service.shutdown_timeout_secs, 3);
        assert_eq!(c.service.http.header_read_timeout_secs, 4);
        assert_eq!(c.service.http.idle_timeout_secs, 45);
        assert_eq!(c.service.http.body_read_timeout_secs, 120);
        assert_eq!(c.service.http.max_connections, 25_000);
        assert_eq!(c.service.manager.admin_token, "admin-secret");
        assert_eq!(c.service.manager.worker_token, "worker-secret");
        assert_eq!(
            c.service.manager.admin_tokens,
            vec!["alice:alice-secret-0123456789", "ci:ci-secret-0123456789"]
        );
        assert_eq!(c.service.manager.max_body_bytes, 65536);
        assert_eq!(c.service.manager.max_collector_mb, 8);
        assert_eq!(c.service.manager.phi_threshold, 10);
        assert_eq!(c.service.manager.phi_min_std_dev_ms, 100);
        assert_eq!(c.service.manager.worker_offline_secs, 12);
        assert_eq!(c.service.manager.worker_expire_minutes, 60);
        assert_eq!(c.service.worker.heartbeat_interval_secs, 2);
        assert_eq!(c.event_sets.max_age_days, 30);
        assert_eq!(c.event_sets.max_size_mb, 2048);
        assert_eq!(c.event_sets.max_body_mb, 4);
        assert_eq!(
            c.service.worker.manager_address,
            vec!["http://m1:7881", "http://m2:7881"]
        );
        assert_eq!(c.service.worker.groups, vec!["default", "another_group"]);
        assert_eq!(c.service.worker.token, "worker-secret");
        assert_eq!(c.resources.cpu_quota, 200);
        assert_eq!(c.resources.memory_limit, 1024);
        assert_eq!(c.resources.cgroup_name, "apps/datascale");
        assert_eq!(c.resources.cgroup_root, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(
            c.log.file,
            PathBuf::from("/opt/datascale/logs/datascale.log")
        );
        assert_eq!(c.log.repeat_limit, 3);
        assert_eq!(c.log.repeat_interval_secs, 60);
        // The table is exhaustive: a key added later must be added here too.
        assert_eq!(known_keys().len(), cases.len());
        let shown = loaded.effective_values();
        assert!(
            shown
                .iter()
                .all(|(_, _, origin)| matches!(origin, Origin::Env(_)))
        );
        assert!(
            shown
                .iter()
                .filter(|(key, _, _)| key.ends_with("token") || key.ends_with("tokens"))
                .all(|(_, value, _)| value == "<redacted>")
        );
    }

    #[test]
    fn connection_limits_of_zero_are_refused_naming_the_key() {
        let mut over = overrides();
        over.env = vec![
            ("DATASCALE_SERVICE_HTTP_MAX_CONNECTIONS".into(), "0".into()),
            (
                "DATASCALE_SERVICE_HTTP_IDLE_TIMEOUT_SECS".into(),
                "0".into(),
            ),
        ];
        let all = messages(load(&over).unwrap_err()).join("\n");
        for key in [
            "service.http.max_connections",
            "service.http.idle_timeout_secs",
        ] {
            assert!(
                all.contains(&format!("{key} is 0 (env DATASCALE_")),
                "{all}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_variables_are_named() {
        let file = file_with("[service]\nadress = \"127.0.0.1:1\"\n[nope]\nx = 1\n");
        let mut over = overrides();
        over.config_path = Some(file.path().to_owned());
        over.env = vec![("DATASCALE_SERVICE_NO_SUCH_KEY".into(), "1".into())];
        let all = messages(load(&over).unwrap_err()).join("\n");
        assert!(all.contains("unknown key `service.adress`"), "{all}");
        assert!(all.contains("did you mean `service.address`?"), "{all}");
        assert!(all.contains("unknown key `nope`"), "{all}");
        assert!(
            all.contains("unknown environment variable DATASCALE_SERVICE_NO_SUCH_KEY"),
            "{all}"
        );
    }

    #[test]
    fn the_variables_of_the_management_commands_are_left_alone() {
        let mut over = overrides();
        over.env = vec![
            (URL_ENV.into(), "http://master1:7881".into()),
            (TOKEN_ENV.into(), "dsa_secret".into()),
        ];
        let loaded = load(&over).unwrap();
        assert_eq!(loaded.config, load(&overrides()).unwrap().config);
        assert!(
            known_keys()
                .iter()
                .all(|(_, env, _)| env != URL_ENV && env != TOKEN_ENV),
            "no configuration key may take their names"
        );
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let mut over = overrides();
        over.env = vec![
            ("DATASCALE_SERVICE_MODE".into(), "leader".into()),
            ("DATASCALE_SERVICE_ADDRESS".into(), "localhost".into()),
            ("DATASCALE_RESOURCES_CPU_QUOTA".into(), "half".into()),
            ("DATASCALE_RESOURCES_MEMORY_LIMIT".into(), "-1".into()),
            ("DATASCALE_RESOURCES_CGROUP_NAME".into(), "../escape".into()),
            ("DATASCALE_RESOURCES_CGROUP_ROOT".into(), "cgroup".into()),
            ("DATASCALE_LOG_LEVEL".into(), "loud".into()),
            ("DATASCALE_SERVICE_WORKER_GROUPS".into(), "ok,not/ok".into()),
            ("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN".into(), "".into()),
            (
                "DATASCALE_SERVICE_MANAGER_ADMIN_TOKENS".into(),
                "alice:short".into(),
            ),
        ];
        let found = messages(load(&over).unwrap_err());
        let has = |parts: &[&str]| {
            assert!(
                found.iter().any(|m| parts.iter().all(|p| m.contains(p))),
                "no message with {parts:?} in {found:#?}"
            )
        };
        has(&[
            "service.mode",
            "`leader`",
            "DATASCALE_SERVICE_MODE",
            "standalone",
        ]);
        has(&["service.address", "`localhost`", "0.0.0.0:7881"]);
        has(&["resources.cpu_quota", "`half`", "whole number"]);
        has(&["resources.memory_limit", "`-1`"]);
        has(&["resources.cgroup_name", "`..`", "apps/datascale"]);
        has(&["resources.cgroup_root", "`cgroup`", "absolute path"]);
        has(&["log.level", "`loud`", "debug"]);
        has(&["service.worker.groups", "not/ok", "`/`"]);
        has(&["service.manager.admin_tokens", "`alice`", "shorter than 16"]);
        assert!(
            found.iter().all(|m| !m.contains("alice:short")),
            "secrets are not shown: {found:#?}"
        );
        assert_eq!(found.len(), 9, "{found:#?}");
    }

    #[test]
    fn worker_mode_requires_a_manager_and_a_token() {
        let mut over = overrides();
        over.flags = vec![(
            "service.mode".into(),
            "worker".into(),
            "--mode worker".into(),
        )];
        let found = messages(load(&over).unwrap_err()).join("\n");
        assert!(
            found.contains("service.worker.manager_address is empty"),
            "{found}"
        );
        assert!(found.contains("service.worker.token is empty"), "{found}");
        over.env = vec![(
            "DATASCALE_SERVICE_WORKER_MANAGER_ADDRESS".into(),
            "master1:7881".into(),
        )];
        let found = messages(load(&over).unwrap_err()).join("\n");
        assert!(
            found.contains("expected a URL such as http://master1:7881"),
            "{found}"
        );
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let file = file_with("[service]\nmode = \n");
        let mut over = overrides();
        over.config_path = Some(file.path().to_owned());
        let err = load(&over).unwrap_err().to_string();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error_but_a_missing_default_is_not() {
        let mut over = overrides();
        over.config_path = Some(PathBuf::from("/nonexistent/datascale.toml"));
        assert!(matches!(load(&over), Err(ConfigError::Read { .. })));
    }
}
