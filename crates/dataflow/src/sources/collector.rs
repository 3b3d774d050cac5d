//! The `collector` source: a custom collector unpacked on this worker, run
//! by the `exec` source's machinery with what its manifest says (the
//! entrypoint, mode, interval, arguments, environment and output), the
//! dataflow's `args` and `interval_secs` taking precedence.
//!
//! Here too: the `collector` `conf`, with its defaults, its checks and its build.

use datascale_core::{
    component::{BuildError, ComponentTask},
    names::check_name,
};
use serde::{Deserialize, Serialize};

use super::{
    Decoding, DecodingCodec, SourceBuild, SourceType, default_max_line_bytes,
    exec::{self, ExecCommand, ExecConfig, ExecScheduled, ExecStreaming},
};
use crate::{
    Problems, TypeConf,
    collector::{MANIFEST, Manifest, Output, check_version, package_path, shelf::Shelf},
    invalid,
};

/// `collector`: runs a custom collector, uploaded to the manager as a
/// package, as its manifest says (entrypoint, mode, env, output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The collector's name, as uploaded to the manager.
    pub collector: String,
    /// The version to run; the highest uploaded when left out, so that a
    /// new upload replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Arguments after the entrypoint; the manifest's `args` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Seconds between two runs of a scheduled collector; the manifest's
    /// `interval_secs` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
    /// A scheduled run still going after this many seconds is killed; 0 never kills.
    #[serde(default)]
    pub timeout_secs: u64,
}

impl SourceType for CollectorConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        let exec = exec_config(self, build.collectors).map_err(invalid(build.name))?;
        Ok(Box::pin(exec::run(exec, build.context)))
    }
}

impl TypeConf for CollectorConfig {
    fn check(&self, problems: &mut Problems) {
        if let Err(why) = check_name(&self.collector) {
            problems.add("collector", why);
        }
        if let Some(Err(why)) = self.version.as_deref().map(check_version) {
            problems.add("version", why);
        }
        if self.interval_secs == Some(0) {
            problems.add("interval_secs", "must be at least 1");
        }
    }
}

/// The `exec` configuration that runs `config` from `shelf`; why not, when
/// the collector is not unpacked here.
fn exec_config(config: &CollectorConfig, shelf: &Shelf) -> Result<ExecConfig, String> {
    let name = &config.collector;
    let version = config.version.as_deref().ok_or_else(|| {
        format!("no version of collector `{name}` is installed on this worker; upload one to the manager")
    })?;
    let dir = shelf.package_dir(name, version);
    let text = std::fs::read_to_string(dir.join(MANIFEST)).map_err(|err| {
        format!(
            "collector `{name}` version {version} is not installed on this worker ({}: {err})",
            dir.display()
        )
    })?;
    let manifest = Manifest::parse(&text)
        .map_err(|why| format!("collector `{name}` version {version}: {MANIFEST}: {why}"))?;
    let entrypoint = dir.join(package_path(&manifest.entrypoint).unwrap_or_default());
    let mut argv = vec![entrypoint.to_string_lossy().into_owned()];
    argv.extend(config.args.clone().unwrap_or(manifest.args));
    Ok(ExecConfig {
        command: ExecCommand::Argv(argv),
        mode: manifest.mode,
        scheduled: ExecScheduled {
            exec_interval_secs: config.interval_secs.unwrap_or(manifest.interval_secs),
        },
        streaming: ExecStreaming::default(),
        working_directory: Some(dir),
        environment: manifest.env,
        // What a collector says on standard error is for its logs, not its events.
        include_stderr: false,
        timeout_secs: config.timeout_secs,
        max_line_bytes: default_max_line_bytes(),
        decoding: Decoding {
            codec: match manifest.output {
                Output::Lines => DecodingCodec::Bytes,
                Output::Json => DecodingCodec::Json,
            },
        },
    })
}
