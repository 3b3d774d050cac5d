//! `datascale run`: runs dataflow files in the foreground, with no manager.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use datascale_dataflow::topology;
use tracing::info;

use super::{GlobalArgs, config_failure};
use crate::logging;

/// Options of `datascale run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A dataflow file (JSON or YAML); repeatable.
    #[arg(short, long = "dataflow", value_name = "FILE", required = true)]
    dataflows: Vec<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: RunArgs) -> ExitCode {
    let loaded = match global.load_config(Vec::new()) {
        Ok(loaded) => loaded,
        Err(err) => return config_failure(&err),
    };
    let mut dataflows = Vec::new();
    for file in &args.dataflows {
        let parsed = std::fs::read_to_string(file)
            .map_err(|err| format!("cannot read the file: {err}"))
            .and_then(|text| {
                datascale_dataflow::parse_text(&text).map_err(|errors| errors.to_string())
            });
        match parsed {
            Ok(parsed) => dataflows.push(parsed),
            Err(message) => {
                eprintln!("error: {}: {message}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let log = match logging::init(&loaded.config.log, logging::Stream::Stderr) {
        Ok(log) => log,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let deadline = Duration::from_secs(loaded.config.service.shutdown_timeout_secs);
    let tokio = super::single_thread_runtime();
    let result = tokio.block_on(async {
        tokio::spawn(log.repeats.clone().write_every_interval());
        let stop = super::start::termination_signal().await?;
        let environment = topology::Environment::new(
            &loaded.config.service.data_dir,
            &loaded.config.service.collectors_dir,
        );
        let mut running = Vec::new();
        for dataflow in &dataflows {
            running.push(topology::start(dataflow, "", &environment)?);
        }
        let all_finished = async {
            for dataflow in &mut running {
                dataflow.finished().await;
            }
        };
        tokio::select! {
            () = all_finished => info!("Every dataflow has finished."),
            () = stop => {}
        }
        for dataflow in running {
            dataflow.stop(deadline).await;
        }
        Ok::<_, anyhow::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
