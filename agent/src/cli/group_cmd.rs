//! `datascale group …`: the groups of workers, through the manager's API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    GlobalArgs,
    client::{ClientArgs, cell, table},
};

/// The subcommands of `datascale group`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the groups, with how many dataflows each holds.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one group.
    Get {
        /// The group's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a group; exits 5 when one of that name exists.
    Create {
        /// The group's name: letters, digits, `-` and `_`.
        name: String,
        /// Free text for people.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a group; exits 5 when it still holds dataflows, unless --force.
    Delete {
        /// The group's name.
        name: String,
        /// Delete the group's dataflows with it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `datascale group` subcommand against the manager.
pub fn run(global: &GlobalArgs, command: GroupCommand) -> ExitCode {
    match command {
        GroupCommand::List { client } => client.run(global, |client| {
            let groups = client.send(Method::GET, client.url(&["groups"]), None)?;
            client.show(&groups, |groups| {
                Ok(groups_table(groups.as_array().into_iter().flatten()))
            })
        }),
        GroupCommand::Get { name, client } => client.run(global, |client| {
            let group = client.send(Method::GET, client.url(&["groups", &name]), None)?;
            client.show(&group, |group| Ok(groups_table([group])))
        }),
        GroupCommand::Create {
            name,
            description,
            client,
        } => client.run(global, |client| {
            let body = json!({"name": name, "description": description});
            let group = client.send(Method::POST, client.url(&["groups"]), Some(&body))?;
            client.show(&group, |group| {
                Ok(format!(
                    "created group `{name}` (revision {})\n",
                    group["revision"]
                ))
            })
        }),
        GroupCommand::Delete {
            name,
            force,
            client,
        } => client.run(global, |client| {
            let mut url = client.url(&["groups", &name]);
            if force {
                url.query_pairs_mut().append_pair("force", "true");
            }
            let deleted = client.send(Method::DELETE, url, None)?;
            client.show(&deleted, |deleted| {
                Ok(format!(
                    "deleted group `{name}` (revision {})\n",
                    deleted["revision"]
                ))
            })
        }),
    }
}

fn groups_table<'a>(groups: impl IntoIterator<Item = &'a Value>) -> String {
    table(
        ["NAME", "DESCRIPTION", "DATAFLOWS", "REVISION", "UPDATED"],
        groups.into_iter().map(|group| {
            ["name", "description", "dataflows", "revision", "updated_at"]
                .map(|field| cell(&group[field]))
        }),
    )
}
