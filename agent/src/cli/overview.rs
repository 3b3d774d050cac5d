//! `datascale overview`: the cluster at a glance, from the manager's
//! `GET /api/v1/overview`.

use std::process::ExitCode;

use serde_json::Value;

use super::{
    GlobalArgs,
    client::{ClientArgs, cell, fields},
};

/// Runs `datascale overview`.
pub fn run(global: &GlobalArgs, client: ClientArgs) -> ExitCode {
    client.run(global, |client| {
        let overview = client.get(client.url(&["overview"]))?;
        client.show(&overview, |overview| Ok(describe(overview)))
    })
}

/// The overview in a few lines.
fn describe(overview: &Value) -> String {
    let managers = overview["managers"].as_array().map(Vec::as_slice);
    let managers: Vec<_> = managers
        .unwrap_or_default()
        .iter()
        .map(|manager| {
            format!(
                "{} ({} {})",
                cell(&manager["address"]),
                cell(&manager["mode"]),
                cell(&manager["version"])
            )
        })
        .collect();
    let workers = &overview["workers"];
    let components = &overview["components"];
    let mut kinds = format!(
        "{} source(s), {} pipeline(s), {} sink(s)",
        components["sources"], components["pipelines"], components["sinks"]
    );
    if let Some(types) = components["by_type"].as_object().filter(|t| !t.is_empty()) {
        let types: Vec<_> = types
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        kinds.push_str(&format!(": {}", types.join(", ")));
    }
    fields([
        (
            "cluster",
            format!(
                "{} at revision {}",
                cell(&overview["cluster_name"]),
                overview["revision"]
            ),
        ),
        ("managers", managers.join(", ")),
        (
            "workers",
            format!(
                "{}: {} online, {} suspect, {} offline",
                workers["total"], workers["online"], workers["suspect"], workers["offline"]
            ),
        ),
        ("groups", cell(&overview["groups"])),
        ("dataflows", cell(&overview["dataflows"])),
        ("components", kinds),
    ])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_overview_reads_well() {
        let overview = json!({
            "cluster_name": "datascale", "revision": 7,
            "managers": [{"address": "127.0.0.1:7881", "mode": "manager", "version": "0.1.0"}],
            "workers": {"total": 2, "online": 1, "suspect": 0, "offline": 1},
            "groups": 2, "dataflows": 3,
            "components": {"sources": 3, "pipelines": 1, "sinks": 3,
                           "by_type": {"demo": 3, "file": 3, "remap": 1}}
        });
        assert_eq!(
            describe(&overview),
            "\
cluster     datascale at revision 7
managers    127.0.0.1:7881 (manager 0.1.0)
workers     2: 1 online, 0 suspect, 1 offline
groups      2
dataflows   3
components  3 source(s), 1 pipeline(s), 3 sink(s): demo 3, file 3, remap 1
"
        );
    }
}
