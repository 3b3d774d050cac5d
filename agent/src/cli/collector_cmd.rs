//! `datascale collector …`: custom collectors on the manager, through its
//! API. `install` takes a package, or a directory that it packs first.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Subcommand;
use datascale_dataflow::collector::package;
use reqwest::Method;
use serde_json::Value;

use super::{
    GlobalArgs,
    client::{ClientArgs, cell, fields, table},
};

/// The subcommands of `datascale collector`.
#[derive(Debug, Subcommand)]
pub enum CollectorCommand {
    /// Upload a collector to the manager: a package (.tar.gz with
    /// collector.toml at its root), or a directory holding collector.toml,
    /// which is packed first. Exits 5 when that version exists with other
    /// contents.
    Install {
        /// The package or the directory.
        path: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the collectors, with their versions and users.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one collector: its versions and the dataflows that use it.
    Show {
        /// The collector's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a collector, or one version of it; exits 5 while a dataflow
    /// uses it, naming the dataflows.
    Remove {
        /// The collector's name.
        name: String,
        /// Delete only this version.
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `datascale collector` subcommand against the manager.
pub fn run(global: &GlobalArgs, command: CollectorCommand) -> ExitCode {
    match command {
        CollectorCommand::Install { path, client } => client.run(global, |client| {
            let bytes = match path.is_dir() {
                true => package::pack(&path)
                    .with_context(|| format!("cannot pack the directory {}", path.display()))?,
                false => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            };
            let uploaded = client.upload(client.url(&["collectors"]), bytes)?;
            client.show(&uploaded, |uploaded| {
                Ok(format!(
                    "{} collector `{}` version {} (sha256 {})\n",
                    match uploaded["outcome"].as_str() {
                        Some("created") => "installed",
                        _ => "already installed:",
                    },
                    cell(&uploaded["name"]),
                    cell(&uploaded["version"]),
                    cell(&uploaded["sha256"]),
                ))
            })
        }),
        CollectorCommand::List { client } => client.run(global, |client| {
            let collectors = client.get(client.url(&["collectors"]))?;
            client.show(&collectors, |collectors| {
                Ok(table(
                    ["NAME", "LATEST", "VERSIONS", "USED BY", "DESCRIPTION"],
                    collectors.as_array().into_iter().flatten().map(|c| {
                        [
                            cell(&c["name"]),
                            cell(&c["latest"]),
                            versions(c).join(", "),
                            users(c).join(", "),
                            cell(&c["description"]),
                        ]
                    }),
                ))
            })
        }),
        CollectorCommand::Show { name, client } => client.run(global, |client| {
            let collector = client.get(client.url(&["collectors", &name]))?;
            client.show(&collector, |c| {
                let summary = fields([
                    ("name", cell(&c["name"])),
                    ("description", cell(&c["description"])),
                    ("latest", cell(&c["latest"])),
                    ("used by", users(c).join(", ")),
                ]);
                let versions = table(
                    ["VERSION", "SHA256", "SIZE", "MODE", "UPLOADED", "BY"],
                    c["versions"].as_array().into_iter().flatten().map(|v| {
                        [
                            cell(&v["version"]),
                            cell(&v["sha256"]),
                            cell(&v["size"]),
                            cell(&v["manifest"]["mode"]),
                            cell(&v["uploaded_at"]),
                            cell(&v["uploaded_by"]),
                        ]
                    }),
                );
                Ok(format!("{summary}\n{versions}"))
            })
        }),
        CollectorCommand::Remove {
            name,
            version,
            client,
        } => client.run(global, |client| {
            let mut segments = vec!["collectors", name.as_str()];
            segments.extend(version.as_deref());
            let deleted = client.send(Method::DELETE, client.url(&segments), None, None)?;
            client.show(&deleted, |deleted| {
                let versions: Vec<String> = deleted["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(cell)
                    .collect();
                Ok(format!(
                    "removed collector `{name}` version(s) {}\n",
                    versions.join(", ")
                ))
            })
        }),
    }
}

fn versions(collector: &Value) -> Vec<String> {
    let versions = collector["versions"].as_array().into_iter().flatten();
    versions.map(|v| cell(&v["version"])).collect()
}

/// The dataflows that use a collector, as `group/dataflow`.
fn users(collector: &Value) -> Vec<String> {
    let users = collector["used_by"].as_array().into_iter().flatten();
    users
        .map(|u| format!("{}/{}", cell(&u["group"]), cell(&u["dataflow"])))
        .collect()
}
