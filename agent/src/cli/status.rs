//! `datascale status`: asks the local node's API what it is doing.

use std::{fmt::Write, process::ExitCode};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::{GlobalArgs, client::ClientArgs};
use crate::api::Status;

/// Options of `datascale status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `datascale status`.
pub fn run(global: &GlobalArgs, args: StatusArgs) -> ExitCode {
    args.client.run(global, |client| {
        let status = client.get(client.url(&["status"]))?;
        client.show(&status, describe)
    })
}

/// The status in a few lines.
fn describe(answer: &Value) -> anyhow::Result<String> {
    let status = Status::deserialize(answer).context("the node sent an unexpected status")?;
    let mut out = format!(
        "DataScale {} running as {} in cluster {}\n  pid {}, up {}\n  API     {}\n",
        status.version,
        status.mode,
        status.cluster_name,
        status.pid,
        uptime(status.uptime_secs),
        status.api_address
    );
    if let Some(ui) = status.ui_address {
        writeln!(out, "  Web UI  {ui}")?;
    }
    if let Some(worker) = status.worker {
        writeln!(out, "  groups  {}", worker.groups.join(", "))?;
        if !worker.manager_address.is_empty() {
            writeln!(out, "  manager {}", worker.manager_address.join(", "))?;
        }
    }
    Ok(out)
}

/// `3725` → `1h 2m 5s`.
fn uptime(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m {seconds}s"),
        _ => format!("{days}d {hours}h {minutes}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_well() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(3725), "1h 2m 5s");
        assert_eq!(uptime(90_061), "1d 1h 1m");
    }
}
