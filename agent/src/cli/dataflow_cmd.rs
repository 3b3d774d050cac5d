//! `datascale dataflow …`: checking dataflow documents on this host, and
//! the dataflows of the manager's groups and their history, through its API.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::{
    GlobalArgs,
    client::{Client, ClientArgs, cell, pretty, table},
    emit,
};
use crate::dataflow;

/// The subcommands of `datascale dataflow`.
#[derive(Debug, Subcommand)]
pub enum DataflowCommand {
    /// Check dataflow documents (JSON or YAML) without running them: their
    /// shape, each component's conf, names, inputs, cycles and VRL programs.
    /// Prints every problem with its JSON path; exits 1 when any is invalid.
    /// Works offline.
    Validate(ValidateArgs),
    /// List the dataflows of a group.
    List {
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a dataflow's document, ready to edit and apply again.
    Get {
        /// The dataflow's name.
        name: String,
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create or replace a dataflow from a document (JSON or YAML) named
    /// inside; the manager validates it, and prints every problem with its
    /// JSON path. Says whether it was created, updated or unchanged.
    Apply {
        /// The dataflow file; `-` reads standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a dataflow; its history stays.
    Delete {
        /// The dataflow's name.
        name: String,
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the revisions of a dataflow, newest first.
    Revisions {
        /// The dataflow's name.
        name: String,
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Bring back the document of an earlier revision, as a new revision.
    Restore {
        /// The dataflow's name.
        name: String,
        /// The revision to bring back (`datascale dataflow revisions` lists them).
        revision: u64,
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// The group a dataflow command works in.
#[derive(Debug, Args)]
pub struct GroupArg {
    /// The group the dataflow belongs to.
    #[arg(
        short = 'g',
        long = "group",
        id = "group",
        value_name = "GROUP",
        default_value = "default"
    )]
    name: String,
}

/// Options of `datascale dataflow validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A dataflow file; repeatable.
    #[arg(short, long = "file", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Print the result as JSON: one object per file with its errors.
    #[arg(long)]
    json: bool,
}

/// Runs a `datascale dataflow` subcommand: `validate` on this host, the
/// others against the manager.
pub fn run(global: &GlobalArgs, command: DataflowCommand) -> ExitCode {
    match command {
        DataflowCommand::Validate(args) => validate(&args),
        DataflowCommand::List { group, client } => client.run(global, |client| {
            let url = client.url(&["groups", &group.name, "dataflows"]);
            let dataflows = client.send(Method::GET, url, None)?;
            client.show(&dataflows, |dataflows| {
                Ok(table(
                    ["NAME", "REVISION", "UPDATED", "BY", "STATE"],
                    dataflows.as_array().into_iter().flatten().map(|dataflow| {
                        [
                            cell(&dataflow["name"]),
                            cell(&dataflow["revision"]),
                            cell(&dataflow["updated_at"]),
                            cell(&dataflow["updated_by"]),
                            cell(&dataflow["status"]["state"]),
                        ]
                    }),
                ))
            })
        }),
        DataflowCommand::Get {
            name,
            group,
            client,
        } => client.run(global, |client| {
            let stored =
                client.send(Method::GET, dataflow_url(client, &group, &name, &[]), None)?;
            client.show(&stored, |stored| Ok(pretty(&stored["document"])))
        }),
        DataflowCommand::Apply {
            file,
            group,
            client,
        } => client.run(global, |client| {
            let document = read_document(&file)?;
            let name = document["name"].as_str().ok_or_else(|| {
                anyhow!(
                    "{}: the document has no `name`; it says which dataflow to create or replace",
                    file.display()
                )
            })?;
            let url = dataflow_url(client, &group, name, &[]);
            let written = client.send(Method::PUT, url, Some(&document))?;
            client.show(&written, |written| Ok(wrote(written)))
        }),
        DataflowCommand::Delete {
            name,
            group,
            client,
        } => client.run(global, |client| {
            let url = dataflow_url(client, &group, &name, &[]);
            let deleted = client.send(Method::DELETE, url, None)?;
            client.show(&deleted, |deleted| {
                Ok(format!(
                    "deleted dataflow `{name}` from group `{}` (revision {})\n",
                    group.name, deleted["revision"]
                ))
            })
        }),
        DataflowCommand::Revisions {
            name,
            group,
            client,
        } => client.run(global, |client| {
            let url = dataflow_url(client, &group, &name, &["revisions"]);
            let history = client.send(Method::GET, url, None)?;
            client.show(&history, |history| {
                Ok(table(
                    ["REVISION", "ACTION", "BY", "TIME"],
                    history.as_array().into_iter().flatten().map(|entry| {
                        let action = match entry["restored_from"].as_u64() {
                            Some(from) => format!("{} of {from}", cell(&entry["action"])),
                            None => cell(&entry["action"]),
                        };
                        [
                            cell(&entry["revision"]),
                            action,
                            cell(&entry["token"]),
                            cell(&entry["time"]),
                        ]
                    }),
                ))
            })
        }),
        DataflowCommand::Restore {
            name,
            revision,
            group,
            client,
        } => client.run(global, |client| {
            let revision = revision.to_string();
            let url = dataflow_url(client, &group, &name, &["revisions", &revision, "restore"]);
            let written = client.send(Method::POST, url, None)?;
            client.show(&written, |written| {
                Ok(format!("restored revision {revision}: {}", wrote(written)))
            })
        }),
    }
}

/// The URL of a dataflow of `group`, and `rest` below it.
fn dataflow_url(client: &Client, group: &GroupArg, name: &str, rest: &[&str]) -> Url {
    let mut segments = vec!["groups", &group.name, "dataflows", name];
    segments.extend(rest);
    client.url(&segments)
}

/// A dataflow document from a file (or standard input for `-`), JSON or YAML.
fn read_document(file: &Path) -> anyhow::Result<Value> {
    let shown = file.display();
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(file)
    }
    .with_context(|| format!("cannot read {shown}"))?;
    dataflow::document_from_text(&text).map_err(|errors| {
        let problems: Vec<_> = errors.0.iter().map(ToString::to_string).collect();
        anyhow!("{shown}: {}", problems.join("; "))
    })
}

/// What a write did: `created dataflow `x` in group `g` (revision 3)`, and
/// the local worker's state of it when the node runs one in the group.
fn wrote(written: &Value) -> String {
    let mut line = format!(
        "{} dataflow `{}` in group `{}` (revision {})",
        cell(&written["outcome"]),
        cell(&written["name"]),
        cell(&written["group"]),
        written["revision"]
    );
    if let Some(state) = written["status"]["state"].as_str() {
        line.push_str(&format!(", {state} on this node"));
    }
    let failure = &written["status"]["last_failure"];
    if let Some(error) = failure["error"].as_str() {
        line.push_str(&format!(
            "; revision {} did not start: {error}",
            failure["revision"]
        ));
    }
    line.push('\n');
    line
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let mut all_valid = true;
    let mut results = Vec::new();
    let mut out = String::new();
    for file in &args.files {
        let outcome = std::fs::read_to_string(file)
            .map_err(|err| {
                dataflow::ValidationErrors(vec![dataflow::ValidationError {
                    path: String::new(),
                    message: format!("cannot read the file: {err}"),
                }])
            })
            .and_then(|text| dataflow::parse_text(&text));
        let shown = file.display();
        match outcome {
            Ok(parsed) => {
                let (sources, pipelines, sinks) = parsed.counts();
                out.push_str(&format!(
                    "{shown}: dataflow `{}` is valid ({sources} source(s), {pipelines} pipeline(s), {sinks} sink(s))\n",
                    parsed.name
                ));
                results.push(json!({"file": shown.to_string(), "valid": true, "errors": []}));
            }
            Err(errors) => {
                all_valid = false;
                out.push_str(&format!("{shown}: {} problem(s)\n", errors.0.len()));
                for error in &errors.0 {
                    out.push_str(&format!("  {error}\n"));
                }
                results
                    .push(json!({"file": shown.to_string(), "valid": false, "errors": errors.0}));
            }
        }
    }
    if args.json {
        out = format!(
            "{}\n",
            serde_json::to_string_pretty(&results).expect("results serialize")
        );
    }
    emit(&out);
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
