//! `datascale group …`: the groups of workers, through the manager's API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    GlobalArgs,
    client::{ClientArgs, IfMatchArg, cell, table},
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
    /// Change a group's description; exits 4 when there is no such group.
    Update {
        /// The group's name.
        name: String,
        /// Free text for people.
        #[arg(long)]
        description: String,
        #[command(flatten)]
        if_match: IfMatchArg,
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
        if_match: IfMatchArg,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `datascale group` subcommand against the manager.
pub fn run(global: &GlobalArgs, command: GroupCommand) -> ExitCode {
    match command {
        GroupCommand::List { client } => client.run(global, |client| {
            let groups = client.get(client.url(&["groups"]))?;
            client.show(&groups, |groups| {
                Ok(groups_table(groups.as_array().into_iter().flatten()))
            })
        }),
        GroupCommand::Get { name, client } => client.run(global, |client| {
            let group = client.get(client.url(&["groups", &name]))?;
            client.show(&group, |group| Ok(groups_table([group])))
        }),
        GroupCommand::Create {
            name,
            description,
            client,
        } => client.run(global, |client| {
            let body = json!({"name": name, "description": description});
            let group = client.send(Method::POST, client.url(&["groups"]), Some(&body), None)?;
            client.show(&group, |group| Ok(wrote(&name, group)))
        }),
        GroupCommand::Update {
            name,
            description,
            if_match,
            client,
        } => client.run(global, |client| {
            // Read first: a missing group exits 4 (a PUT would create it),
            // and the change is based on the revision read.
            let url = client.url(&["groups", &name]);
            let current = client.get(url.clone())?;
            let based_on = if_match.revision.or(current["revision"].as_u64());
            let body = json!({ "description": description });
            let group = client.send(Method::PUT, url, Some(&body), based_on)?;
            client.show(&group, |group| Ok(wrote(&name, group)))
        }),
        GroupCommand::Delete {
            name,
            force,
            if_match,
            client,
        } => client.run(global, |client| {
            let mut url = client.url(&["groups", &name]);
            if force {
                url.query_pairs_mut().append_pair("force", "true");
            }
            let deleted = client.send(Method::DELETE, url, None, if_match.revision)?;
            client.show(&deleted, |deleted| {
                Ok(format!(
                    "deleted group `{name}` (revision {})\n",
                    deleted["revision"]
                ))
            })
        }),
    }
}

/// What a write did: `created group `edge` (revision 3)`.
fn wrote(name: &str, group: &Value) -> String {
    format!(
        "{} group `{name}` (revision {})\n",
        cell(&group["outcome"]),
        group["revision"]
    )
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
