//! The `collector` source: a custom collector unpacked on this worker, run
//! by the `exec` source's machinery with what its manifest says (the
//! entrypoint, mode, interval, arguments, environment and output), the
//! dataflow's `args` and `interval_secs` taking precedence.

use super::{
    CollectorConfig, Decoding, DecodingCodec, ExecCommand, ExecConfig, ExecScheduled,
    ExecStreaming, default_max_line_bytes,
};
use crate::collector::{MANIFEST, Manifest, Output, package_path, shelf::Shelf};

/// The `exec` configuration that runs `config` from `shelf`; why not, when
/// the collector is not unpacked here.
pub fn exec_config(config: &CollectorConfig, shelf: &Shelf) -> Result<ExecConfig, String> {
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
