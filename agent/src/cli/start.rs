//! `datascale start`: runs the node in the foreground until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use super::{GlobalArgs, config_failure};
use crate::{logging, node, resources};

/// Options of `datascale start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Run as this side, over service.mode.
    #[arg(long, value_parser = ["standalone", "manager", "worker"])]
    mode: Option<String>,
}

pub fn run(global: &GlobalArgs, args: StartArgs) -> ExitCode {
    let extra = args
        .mode
        .map(|mode| {
            vec![(
                "service.mode".to_owned(),
                mode.clone(),
                format!("--mode {mode}"),
            )]
        })
        .unwrap_or_default();
    let loaded = match global.load_config(extra) {
        Ok(loaded) => loaded,
        Err(err) => return config_failure(&err),
    };
    let log = match logging::init(&loaded.config.log, logging::Stream::Stdout) {
        Ok(log) => log,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    if let Some(file) = &loaded.file {
        info!(path = %file.display(), "Read the configuration file.");
    }
    // Before the runtime starts its threads, so that every thread and
    // every command a dataflow runs starts under the limits.
    let resources = match resources::place(&loaded.config.resources) {
        Ok(placement) => placement,
        Err(err) => {
            error!("{err}");
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = super::async_runtime();
    let result = runtime.block_on(async {
        tokio::spawn(log.repeats.clone().write_every_interval());
        let shutdown = termination_signal().await?;
        node::run(&loaded.config, resources, shutdown)
            .await
            .map_err(anyhow::Error::from)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A future that completes on the first SIGTERM or SIGINT. The handlers are
/// installed before it is returned, so no signal is missed during start-up.
pub(super) async fn termination_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(signal = name, "Received a termination signal.");
    })
}
