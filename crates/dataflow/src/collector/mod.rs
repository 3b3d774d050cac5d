//! Custom collectors: programs of users' own, shipped as `.tar.gz` packages
//! with a `collector.toml` manifest at their root. This module owns the
//! manifest, how versions compare ("latest" is the highest), which
//! collectors a dataflow document uses, the package format (`package`:
//! checking, unpacking and packing) and the collectors unpacked on a worker
//! (`shelf`).

pub mod package;
pub mod shelf;

use std::{cmp::Ordering, collections::BTreeMap};

use datascale_core::names::check_name;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::sources::exec::ExecMode;

/// The file at a package's root that describes it.
pub const MANIFEST: &str = "collector.toml";

/// `collector.toml`: what a collector is and how it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The collector's name, as dataflows name it.
    pub name: String,
    /// Its version; versions compare number by number (`1.10.0` > `1.9.2`).
    pub version: String,
    /// Free text for people.
    #[serde(default)]
    pub description: String,
    /// The program to run, a path inside the package (executable).
    pub entrypoint: String,
    /// `scheduled`: run every `interval_secs`; `streaming`: run once and read as it prints.
    #[serde(default)]
    #[schema(value_type = String)]
    pub mode: ExecMode,
    /// Seconds between two runs of a scheduled collector, unless the dataflow says otherwise.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Arguments after the entrypoint, unless the dataflow gives its own.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables added to the worker's environment for the program.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How each line the program prints becomes an event.
    #[serde(default)]
    pub output: Output,
}

/// How a collector's lines become events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Each line is the `message` of an event.
    #[default]
    Lines,
    /// Each line is a JSON object whose fields make an event.
    Json,
}

fn default_interval_secs() -> u64 {
    60
}

impl Manifest {
    /// Reads and checks a manifest.
    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|err| err.to_string())?;
        check_name(&manifest.name).map_err(|why| format!("name `{}`: {why}", manifest.name))?;
        check_version(&manifest.version)?;
        if package_path(&manifest.entrypoint).is_none() {
            return Err(format!(
                "entrypoint `{}` is not a relative path inside the package (no `..`, not absolute)",
                manifest.entrypoint
            ));
        }
        if manifest.interval_secs == 0 {
            return Err("interval_secs must be at least 1".to_owned());
        }
        if let Some(bad) = manifest
            .env
            .keys()
            .find(|key| key.is_empty() || key.contains(['=', '\0']))
        {
            return Err(format!(
                "env: `{bad}` is not a variable name (not empty, no `=`)"
            ));
        }
        Ok(manifest)
    }
}

/// Checks a version: like a name, letters, digits, `_`, `-` and `.`.
pub fn check_version(version: &str) -> Result<(), String> {
    check_name(version)
        .map_err(|why| format!("version `{version}`: {why}").replace("a name", "a version"))
}

/// A path inside a package, normalized (`./bin/run` → `bin/run`); `None`
/// when it is absolute, climbs with `..` or names the root itself.
pub fn package_path(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in std::path::Path::new(path).components() {
        match part {
            std::path::Component::Normal(part) => parts.push(part.to_str()?),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Compares two versions part by part (split at `.`): numerically when both
/// parts are numbers (`01` below `1` when equal), a number below a word (as
/// in semantic versioning), words as text; a version that goes on is the
/// higher. A total order: two versions are equal only when they are the same.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x_number), Ok(y_number)) => x_number.cmp(&y_number).then_with(|| x.cmp(y)),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// The version that `wanted` names among `available`: itself when
/// available, the highest when `None` (latest).
pub fn resolve<'a>(
    available: impl IntoIterator<Item = &'a str>,
    wanted: Option<&str>,
) -> Option<&'a str> {
    let mut available = available.into_iter();
    match wanted {
        Some(wanted) => available.find(|version| *version == wanted),
        None => available.max_by(|a, b| compare_versions(a, b)),
    }
}

/// One use of a collector by a dataflow: its name, and the version it pins
/// (`None`: the latest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Use {
    /// The collector's name.
    pub collector: String,
    /// The version pinned, if any.
    pub version: Option<String>,
}

/// The collectors the sources of a dataflow document use, read from the
/// document as stored (valid or not), in order.
pub fn uses(document: &Value) -> Vec<Use> {
    let sources = document["sources"].as_array().map(Vec::as_slice);
    sources
        .unwrap_or_default()
        .iter()
        .filter(|source| source["type"] == "collector")
        .filter_map(|source| {
            let conf = &source["conf"];
            Some(Use {
                collector: conf["collector"].as_str()?.to_owned(),
                version: conf["version"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn versions_compare_number_by_number() {
        assert_eq!(compare_versions("1.10.0", "1.9.2"), Ordering::Greater);
        assert_eq!(compare_versions("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare_versions("2.0.0", "2.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.0.b", "1.0.a"), Ordering::Greater);
        let available = ["1.0.0", "1.10.0", "1.9.0"];
        assert_eq!(resolve(available, None), Some("1.10.0"));
        assert_eq!(resolve(available, Some("1.9.0")), Some("1.9.0"));
        assert_eq!(resolve(available, Some("3")), None);
    }

    #[test]
    fn a_manifest_is_checked_and_says_what_is_wrong() {
        let good = "name = \"disk_usage\"\nversion = \"1.0.0\"\nentrypoint = \"./bin/run.sh\"\noutput = \"json\"\n";
        let manifest = Manifest::parse(good).unwrap();
        assert_eq!(manifest.interval_secs, 60);
        assert_eq!(manifest.output, Output::Json);
        let climbing = good.replace("./bin/run.sh", "../run.sh");
        assert!(
            Manifest::parse(&climbing)
                .unwrap_err()
                .contains("entrypoint")
        );
        let unknown = format!("{good}colour = \"red\"\n");
        assert!(Manifest::parse(&unknown).unwrap_err().contains("colour"));
        let bad_version = good.replace("1.0.0", "1.0/0");
        assert!(
            Manifest::parse(&bad_version)
                .unwrap_err()
                .contains("version")
        );
    }

    #[test]
    fn uses_are_read_from_the_document() {
        let document = json!({"sources": [
            {"type": "collector", "conf": {"collector": "a"}},
            {"type": "exec", "conf": {"command": "x"}},
            {"type": "collector", "conf": {"collector": "b", "version": "2"}}]});
        assert_eq!(
            uses(&document),
            [
                Use {
                    collector: "a".into(),
                    version: None
                },
                Use {
                    collector: "b".into(),
                    version: Some("2".into())
                }
            ]
        );
    }
}
