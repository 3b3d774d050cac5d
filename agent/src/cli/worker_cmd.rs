//! `datascale worker …`: the workers the manager knows, the groups they
//! serve, and their credentials, through its API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    GlobalArgs,
    client::{ClientArgs, cell, fields, table},
};

/// The subcommands of `datascale worker`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// List the workers: state, groups, the revision each applied of the
    /// one it should run, and its last heartbeat.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show what the manager knows of one worker, with the state of each of
    /// its dataflows from its last heartbeat.
    Show {
        /// The worker's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set the groups whose dataflows a worker runs, over those of its own
    /// configuration; --own goes back to these.
    Assign {
        /// The worker's id.
        id: String,
        /// The groups, comma-separated.
        #[arg(
            long,
            value_name = "GROUP,…",
            value_delimiter = ',',
            required_unless_present = "own",
            conflicts_with = "own"
        )]
        groups: Vec<String>,
        /// Run the groups of the worker's own configuration again.
        #[arg(long)]
        own: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a worker's credential: the manager refuses it from now on, and
    /// it may not enroll again until deleted. Other workers are not touched.
    Revoke {
        /// The worker's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Forget a worker; with an enrollment token it may enroll again. This
    /// resets a worker that lost its credential, whose id is taken until then.
    Delete {
        /// The worker's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `datascale worker` subcommand against the manager.
pub fn run(global: &GlobalArgs, command: WorkerCommand) -> ExitCode {
    match command {
        WorkerCommand::List { client } => client.run(global, |client| {
            client.list(
                &["workers"],
                [
                    "ID",
                    "HOSTNAME",
                    "STATE",
                    "GROUPS",
                    "APPLIED/DESIRED",
                    "LAST HEARTBEAT",
                ],
                |worker| {
                    [
                        cell(&worker["id"]),
                        cell(&worker["hostname"]),
                        state(worker),
                        cell(&worker["groups"]),
                        format!(
                            "{}/{}",
                            cell(&worker["status"]["applied_revision"]),
                            cell(&worker["desired_revision"])
                        ),
                        cell(&worker["last_heartbeat"]),
                    ]
                },
            )
        }),
        WorkerCommand::Show { id, client } => client.run(global, |client| {
            let worker = client.get(client.url(&["workers", &id]))?;
            client.show(&worker, |worker| Ok(describe(worker)))
        }),
        WorkerCommand::Assign {
            id,
            groups,
            own,
            client,
        } => client.run(global, |client| {
            let url = client.url(&["workers", &id, "groups"]);
            let body = json!({ "groups": (!own).then_some(groups) });
            let worker = client.send(Method::PUT, url, Some(&body), None)?;
            client.show(&worker, |worker| {
                Ok(format!(
                    "worker `{id}` now runs groups {} ({})\n",
                    cell(&worker["groups"]),
                    origin(worker)
                ))
            })
        }),
        WorkerCommand::Revoke { id, client } => client.run(global, |client| {
            let worker = client.send(
                Method::POST,
                client.url(&["workers", &id, "revoke"]),
                None,
                None,
            )?;
            client.show(&worker, |worker| {
                Ok(format!(
                    "revoked worker `{id}` ({}): the manager refuses its credential from now on; \
                     `datascale worker delete {id}` lets it enroll again\n",
                    cell(&worker["hostname"])
                ))
            })
        }),
        WorkerCommand::Delete { id, client } => client.run(global, |client| {
            let deleted = client.send(Method::DELETE, client.url(&["workers", &id]), None, None)?;
            client.show(&deleted, |_| {
                Ok(format!(
                    "deleted worker `{id}`; with the enrollment token it may enroll again\n"
                ))
            })
        }),
    }
}

/// Its liveness, and whether its credential was revoked.
fn state(worker: &Value) -> String {
    let state = cell(&worker["state"]);
    match worker["revoked"].as_bool() {
        Some(true) => format!("{state} (revoked)"),
        _ => state,
    }
}

/// Where its groups come from: assigned on the manager, or its own.
fn origin(worker: &Value) -> String {
    match worker["assigned_groups"] {
        Value::Null => "its own".to_owned(),
        _ => format!("assigned; its own: {}", cell(&worker["own_groups"])),
    }
}

/// One worker in lines: who it is, its state and groups, its revisions, its
/// resources and each dataflow from its last heartbeat.
fn describe(worker: &Value) -> String {
    let status = &worker["status"];
    let mut out = fields([
        ("id", cell(&worker["id"])),
        ("hostname", cell(&worker["hostname"])),
        ("version", cell(&worker["version"])),
        ("address", cell(&status["identity"]["address"])),
        (
            "state",
            format!(
                "{} (phi {:.2})",
                state(worker),
                worker["phi"].as_f64().unwrap_or_default()
            ),
        ),
        (
            "groups",
            format!("{} ({})", cell(&worker["groups"]), origin(worker)),
        ),
        (
            "revision",
            format!(
                "applied {}, desired {}",
                cell(&status["applied_revision"]),
                cell(&worker["desired_revision"])
            ),
        ),
        ("last heartbeat", cell(&worker["last_heartbeat"])),
        ("enrolled", cell(&worker["enrolled_at"])),
        (
            "resources",
            match status {
                Value::Null => "-".to_owned(),
                _ => format!(
                    "CPU {:.1} s, memory {:.1} MiB, load {:.2}",
                    status["cpu_seconds"].as_f64().unwrap_or_default(),
                    status["resident_bytes"].as_f64().unwrap_or_default() / 1_048_576.0,
                    status["load1"].as_f64().unwrap_or_default()
                ),
            },
        ),
    ]);
    let dataflows = status["dataflows"].as_array().map(Vec::as_slice);
    let dataflows = dataflows.unwrap_or_default();
    if dataflows.is_empty() {
        out.push_str("\nNo dataflows reported.\n");
        return out;
    }
    out.push_str("\nDataflows, as of its last heartbeat:\n");
    out.push_str(&table(
        [
            "GROUP",
            "NAME",
            "STATE",
            "REVISION",
            "EVENTS IN",
            "EVENTS OUT",
            "ERRORS",
            "LAST ERROR",
        ],
        dataflows.iter().map(|dataflow| {
            let mut revision = cell(&dataflow["revision"]);
            if dataflow["revision"] != dataflow["wanted_revision"] {
                revision.push_str(&format!(" (wants {})", dataflow["wanted_revision"]));
            }
            [
                cell(&dataflow["group"]),
                cell(&dataflow["name"]),
                cell(&dataflow["state"]),
                revision,
                cell(&dataflow["events_in"]),
                cell(&dataflow["events_out"]),
                cell(&dataflow["errors"]),
                cell(&dataflow["last_error"]),
            ]
        }),
    ));
    out
}
