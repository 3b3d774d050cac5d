//! `datascale worker …`: the workers the manager knows and the groups they
//! serve, through its API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{
    GlobalArgs,
    client::{ClientArgs, cell, pretty, table},
};

/// The subcommands of `datascale worker`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// List the workers, with their state and groups.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show everything the manager knows of one worker.
    Show {
        /// The worker's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set the groups whose dataflows a worker runs.
    Assign {
        /// The worker's id.
        id: String,
        /// The groups, comma-separated.
        #[arg(long, value_name = "GROUP,…", value_delimiter = ',', required = true)]
        groups: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `datascale worker` subcommand against the manager.
pub fn run(global: &GlobalArgs, command: WorkerCommand) -> ExitCode {
    match command {
        WorkerCommand::List { client } => {
            client.run(global, |client| {
                let workers = client.send(Method::GET, client.url(&["workers"]), None)?;
                client.show(&workers, |workers| {
                    Ok(table(
                        ["ID", "STATE", "GROUPS"],
                        workers.as_array().into_iter().flatten().map(|worker| {
                            ["id", "state", "groups"].map(|field| cell(&worker[field]))
                        }),
                    ))
                })
            })
        }
        WorkerCommand::Show { id, client } => client.run(global, |client| {
            let worker = client.send(Method::GET, client.url(&["workers", &id]), None)?;
            client.show(&worker, |worker| Ok(pretty(worker)))
        }),
        WorkerCommand::Assign { id, groups, client } => client.run(global, |client| {
            let url = client.url(&["workers", &id, "groups"]);
            let body = json!({ "groups": groups });
            let worker = client.send(Method::PUT, url, Some(&body))?;
            client.show(&worker, |_| {
                Ok(format!(
                    "worker `{id}` now runs groups {}\n",
                    groups.join(", ")
                ))
            })
        }),
    }
}
