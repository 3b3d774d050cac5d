//! `datascale enrollment-token …`: the enrollment tokens workers enroll
//! with, each limited to groups, with an optional expiry and number of
//! uses, through the manager's API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    GlobalArgs,
    client::{ClientArgs, cell},
};

/// The subcommands of `datascale enrollment-token`.
#[derive(Debug, Subcommand)]
pub enum EnrollmentTokenCommand {
    /// Make an enrollment token and print its secret, once: workers enroll
    /// with it as service.worker.token, only in its groups.
    Create {
        /// The groups a worker enrolling with it may ask for, comma-separated.
        #[arg(
            long,
            value_name = "GROUP,…",
            value_delimiter = ',',
            required_unless_present = "all_groups",
            conflicts_with = "all_groups"
        )]
        groups: Vec<String>,
        /// Let workers enrolling with it ask for any group.
        #[arg(long)]
        all_groups: bool,
        /// When it stops enrolling workers, in RFC 3339 (such as
        /// 2030-01-31T12:00:00Z) [default: never]
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
        /// How many workers it may enroll [default: any number]
        #[arg(long, value_name = "N")]
        max_uses: Option<u64>,
        /// What it is for, for people.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the enrollment tokens: groups, uses, expiry and state; never
    /// their secrets.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke an enrollment token: no worker enrolls with it from now on;
    /// the workers it enrolled keep their own credentials.
    Revoke {
        /// The token's id (`et-…`).
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `datascale enrollment-token` subcommand against the manager.
pub fn run(global: &GlobalArgs, command: EnrollmentTokenCommand) -> ExitCode {
    match command {
        EnrollmentTokenCommand::Create {
            groups,
            all_groups,
            expires_at,
            max_uses,
            description,
            client,
        } => client.run(global, |client| {
            let body = json!({
                "groups": (!all_groups).then_some(groups),
                "expires_at": expires_at,
                "max_uses": max_uses,
                "description": description,
            });
            let created = client.send(
                Method::POST,
                client.url(&["enrollment_tokens"]),
                Some(&body),
                None,
            )?;
            client.show(&created, |created| {
                Ok(format!(
                    "created enrollment token `{}` for {}, {}\n\
                     token: {}\n\
                     It is shown only now: workers enroll with it as service.worker.token.\n",
                    cell(&created["id"]),
                    groups_of(created),
                    limits(created),
                    cell(&created["token"]),
                ))
            })
        }),
        EnrollmentTokenCommand::List { client } => client.run(global, |client| {
            client.list(
                &["enrollment_tokens"],
                [
                    "ID",
                    "GROUPS",
                    "USES",
                    "EXPIRES",
                    "STATE",
                    "CREATED",
                    "DESCRIPTION",
                ],
                |token| {
                    [
                        cell(&token["id"]),
                        groups_of(token),
                        uses(token),
                        match &token["expires_at"] {
                            Value::Null => "never".to_owned(),
                            at => cell(at),
                        },
                        cell(&token["state"]),
                        cell(&token["created_at"]),
                        cell(&token["description"]),
                    ]
                },
            )
        }),
        EnrollmentTokenCommand::Revoke { id, client } => client.run(global, |client| {
            let revoked = client.send(
                Method::DELETE,
                client.url(&["enrollment_tokens", &id]),
                None,
                None,
            )?;
            client.show(&revoked, |_| {
                Ok(format!(
                    "revoked enrollment token `{id}`: no worker enrolls with it from now on; \
                     the workers it enrolled keep their credentials\n"
                ))
            })
        }),
    }
}

/// The groups a token allows, for people.
fn groups_of(token: &Value) -> String {
    match &token["groups"] {
        Value::Null => "any group".to_owned(),
        groups => format!("groups {}", cell(groups)),
    }
}

/// Its uses, and of how many when limited: `1/5`, `3`.
fn uses(token: &Value) -> String {
    match &token["max_uses"] {
        Value::Null => cell(&token["uses"]),
        max => format!("{}/{}", cell(&token["uses"]), cell(max)),
    }
}

/// Its expiry and number of uses, for people.
fn limits(token: &Value) -> String {
    let expires = match &token["expires_at"] {
        Value::Null => "never expires".to_owned(),
        at => format!("expires at {}", cell(at)),
    };
    match &token["max_uses"] {
        Value::Null => format!("{expires}, any number of uses"),
        max => format!("{expires}, at most {} use(s)", cell(max)),
    }
}
