//! `datascale events …`: the manager's event sets, searched and listed
//! through its API.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::{
    GlobalArgs,
    client::{ClientArgs, cell, table},
};

/// The subcommands of `datascale events`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Search an event set, newest first: full-text terms and `field:value`
    /// filters, all of which must match. Example:
    /// datascale events search my_datascale_cluster 'error host:worker1' --from -15m
    Search {
        /// The event set.
        #[arg(value_name = "SET")]
        event_set: String,
        /// Terms and `field:value` filters; empty: every event.
        #[arg(default_value = "")]
        query: String,
        /// Events at or after: RFC 3339, or relative to now (-15m, -2h, -7d).
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// Events before: RFC 3339, or relative to now.
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        /// Events to show, at most 10,000.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after the page that printed this cursor.
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the event sets: events, size, oldest and newest event, retention.
    Sets {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `datascale events` subcommand against the manager.
pub fn run(global: &GlobalArgs, command: EventsCommand) -> ExitCode {
    match command {
        EventsCommand::Search {
            event_set,
            query,
            from,
            to,
            limit,
            cursor,
            client,
        } => client.run(global, |client| {
            let mut url = client.url(&["event_sets", &event_set, "events"]);
            {
                let mut pairs = url.query_pairs_mut();
                pairs.append_pair("limit", &limit.to_string());
                for (key, value) in [
                    ("q", Some(&query).filter(|q| !q.is_empty())),
                    ("from", from.as_ref()),
                    ("to", to.as_ref()),
                    ("cursor", cursor.as_ref()),
                ] {
                    if let Some(value) = value {
                        pairs.append_pair(key, value);
                    }
                }
            }
            let page = client.get(url)?;
            client.show(&page, |page| Ok(events_text(page)))
        }),
        EventsCommand::Sets { client } => client.run(global, |client| {
            let sets = client.get(client.url(&["event_sets"]))?;
            client.show(&sets, |sets| {
                Ok(table(
                    ["NAME", "EVENTS", "SIZE", "OLDEST", "NEWEST", "KEEPS"],
                    sets.as_array().into_iter().flatten().map(|set| {
                        let bytes = set["size_bytes"].as_u64().unwrap_or(0);
                        [
                            cell(&set["name"]),
                            cell(&set["events"]),
                            format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0)),
                            cell(&set["oldest"]),
                            cell(&set["newest"]),
                            keeps(&set["retention"]),
                        ]
                    }),
                ))
            })
        }),
    }
}

/// One event per line, as JSON, then the cursor of the next page.
fn events_text(page: &Value) -> String {
    let mut out: String = page["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| format!("{event}\n"))
        .collect();
    if let Some(cursor) = page["next_cursor"].as_str() {
        out.push_str(&format!("-- more: --cursor {cursor}\n"));
    }
    out
}

/// A set's retention for people: `7 days, 1024 MB`.
fn keeps(retention: &Value) -> String {
    let part = |value: &Value, unit: &str| match value.as_u64() {
        Some(0) | None => format!("no {unit} limit"),
        Some(n) => format!("{n} {unit}"),
    };
    format!(
        "{}, {}",
        part(&retention["max_age_days"], "days"),
        part(&retention["max_size_mb"], "MB")
    )
}
