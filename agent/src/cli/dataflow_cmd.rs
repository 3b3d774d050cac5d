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
    client::{Client, ClientArgs, ClientError, IfMatchArg, NodeArgs, Output, cell, pretty, table},
    emit,
};

/// The subcommands of `datascale dataflow`.
#[derive(Debug, Subcommand)]
pub enum DataflowCommand {
    /// Check dataflow documents (JSON or YAML) without running them: their
    /// shape, each component's conf, names, inputs, cycles and VRL programs.
    /// Prints every problem with its JSON path; exits 1 when any is invalid.
    /// Works offline, or asks the manager with --remote.
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
    /// Create a dataflow from a document (JSON or YAML) named inside; exits
    /// 5 when one of that name exists in the group. The manager validates
    /// it, and prints every problem with its JSON path.
    Create {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create or replace a dataflow from a document (JSON or YAML) named
    /// inside; the manager validates it, and prints every problem with its
    /// JSON path. Says whether it was created, updated or unchanged.
    Apply {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        group: GroupArg,
        #[command(flatten)]
        if_match: IfMatchArg,
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
        if_match: IfMatchArg,
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
    /// Print the document of one revision of a dataflow.
    Revision {
        /// The dataflow's name.
        name: String,
        /// The revision (`datascale dataflow revisions` lists them).
        revision: u64,
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
        if_match: IfMatchArg,
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

/// The dataflow document a write sends.
#[derive(Debug, Args)]
pub struct FileArg {
    /// The dataflow file; `-` reads standard input.
    #[arg(short, long, value_name = "FILE")]
    file: PathBuf,
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
    /// Have the manager check them (POST /api/v1/dataflows/validate), as it
    /// would on apply.
    #[arg(long)]
    remote: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// What checking one document found: the dataflow's name and how many
/// sources, pipelines and sinks it has, or every problem.
type Checked = Result<(String, (usize, usize, usize)), datascale_dataflow::ValidationErrors>;

/// Runs a `datascale dataflow` subcommand: `validate` on this host unless
/// `--remote`, the others against the manager.
pub fn run(global: &GlobalArgs, command: DataflowCommand) -> ExitCode {
    match command {
        DataflowCommand::Validate(args) => validate(global, args),
        DataflowCommand::List { group, client } => client.run(global, |client| {
            let dataflows = client.get(client.url(&["groups", &group.name, "dataflows"]))?;
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
            let stored = client.get(dataflow_url(client, &group, &name, &[]))?;
            client.show(&stored, |stored| Ok(pretty(&stored["document"])))
        }),
        DataflowCommand::Create {
            file,
            group,
            client,
        } => client.run(global, |client| {
            let document = read_document(&file.file)?;
            let url = client.url(&["groups", &group.name, "dataflows"]);
            let written = client.send(Method::POST, url, Some(&document), None)?;
            client.show(&written, |written| Ok(wrote(written)))
        }),
        DataflowCommand::Apply {
            file,
            group,
            if_match,
            client,
        } => client.run(global, |client| {
            let document = read_document(&file.file)?;
            let name = document["name"].as_str().ok_or_else(|| {
                anyhow!(
                    "{}: the document has no `name`; it says which dataflow to create or replace",
                    file.file.display()
                )
            })?;
            let url = dataflow_url(client, &group, name, &[]);
            let written = client.send(Method::PUT, url, Some(&document), if_match.revision)?;
            client.show(&written, |written| Ok(wrote(written)))
        }),
        DataflowCommand::Delete {
            name,
            group,
            if_match,
            client,
        } => client.run(global, |client| {
            let url = dataflow_url(client, &group, &name, &[]);
            let deleted = client.send(Method::DELETE, url, None, if_match.revision)?;
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
            let history = client.get(dataflow_url(client, &group, &name, &["revisions"]))?;
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
        DataflowCommand::Revision {
            name,
            revision,
            group,
            client,
        } => client.run(global, |client| {
            let revision = revision.to_string();
            let entry = client.get(dataflow_url(
                client,
                &group,
                &name,
                &["revisions", &revision],
            ))?;
            client.show(&entry, |entry| match &entry["document"] {
                Value::Null => Err(anyhow!(
                    "revision {revision} deleted dataflow `{name}`: it has no document"
                )),
                document => Ok(pretty(document)),
            })
        }),
        DataflowCommand::Restore {
            name,
            revision,
            group,
            if_match,
            client,
        } => client.run(global, |client| {
            let revision = revision.to_string();
            let url = dataflow_url(client, &group, &name, &["revisions", &revision, "restore"]);
            let written = client.send(Method::POST, url, None, if_match.revision)?;
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
    datascale_dataflow::document_from_text(&text).map_err(|errors| {
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

/// Runs `datascale dataflow validate`: on this host, or with `--remote` by
/// the manager.
fn validate(global: &GlobalArgs, args: ValidateArgs) -> ExitCode {
    if !args.remote {
        return match report(&args.files, args.json, |text| Ok(check_here(text))) {
            Ok(true) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        };
    }
    let output = if args.json {
        Output::Json
    } else {
        Output::Table
    };
    let mut all_valid = true;
    let code = args.node.run(global, output, |client| {
        all_valid = report(&args.files, args.json, |text| check_remote(client, text))?;
        Ok(())
    });
    if all_valid { code } else { ExitCode::FAILURE }
}

/// Checks a document on this host.
fn check_here(text: &str) -> Checked {
    datascale_dataflow::parse_text(text).map(|parsed| (parsed.name.clone(), parsed.counts()))
}

/// Has the manager check a document; only a document that cannot be read
/// as JSON or YAML is refused here.
fn check_remote(client: &Client, text: &str) -> anyhow::Result<Checked> {
    let document = match datascale_dataflow::document_from_text(text) {
        Ok(document) => document,
        Err(errors) => return Ok(Err(errors)),
    };
    let url = client.url(&["dataflows", "validate"]);
    match client.send(Method::POST, url, Some(&document), None) {
        Ok(valid) => {
            let count = |kind: &str| {
                let count = valid["components"][kind].as_u64().unwrap_or_default();
                usize::try_from(count).unwrap_or(usize::MAX)
            };
            let counts = (count("sources"), count("pipelines"), count("sinks"));
            Ok(Ok((cell(&valid["name"]), counts)))
        }
        Err(err) => {
            let problems = err
                .downcast_ref::<ClientError>()
                .and_then(ClientError::invalid_dataflow);
            match problems {
                Some(problems) => Ok(Err(datascale_dataflow::ValidationErrors(problems.to_vec()))),
                None => Err(err),
            }
        }
    }
}

/// Checks each file with `check` and prints what it found, as text or JSON;
/// whether every file is valid. Stops at the first error of `check` itself.
fn report(
    files: &[PathBuf],
    json: bool,
    mut check: impl FnMut(&str) -> anyhow::Result<Checked>,
) -> anyhow::Result<bool> {
    let mut all_valid = true;
    let mut results = Vec::new();
    let mut out = String::new();
    for file in files {
        let checked = match std::fs::read_to_string(file) {
            Ok(text) => check(&text)?,
            Err(err) => Err(datascale_dataflow::ValidationErrors(vec![
                datascale_dataflow::ValidationError {
                    path: String::new(),
                    message: format!("cannot read the file: {err}"),
                },
            ])),
        };
        let shown = file.display();
        match checked {
            Ok((name, (sources, pipelines, sinks))) => {
                out.push_str(&format!(
                    "{shown}: dataflow `{name}` is valid ({sources} source(s), {pipelines} pipeline(s), {sinks} sink(s))\n"
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
    if json {
        out = pretty(&json!(results));
    }
    emit(&out);
    Ok(all_valid)
}
