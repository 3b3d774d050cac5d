//! `datascale status`: asks the local node's API what it is doing.

use std::{fmt::Write, process::ExitCode};

use anyhow::Context;
use clap::Args;
use datascale_http::Status;
use datascale_protocol::{CgroupVersion, EffectiveLimits, LimitSource};
use serde::Deserialize;
use serde_json::Value;

use super::{GlobalArgs, client::ClientArgs};

/// Options of `datascale status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `datascale status`.
pub fn run(global: &GlobalArgs, args: StatusArgs) -> ExitCode {
    args.client.run(global, |client| {
        let status = client.get(client.url(&["status"]))?;
        client.show(&status, describe)
    })
}

/// The status in a few lines.
fn describe(answer: &Value) -> anyhow::Result<String> {
    let status = Status::deserialize(answer).context("the node sent an unexpected status")?;
    let mut out = format!(
        "DataScale {} running as {} in cluster {}\n  pid {}, up {}\n  API     {}\n",
        status.version,
        status.mode,
        status.cluster_name,
        status.pid,
        uptime(status.uptime_secs),
        status.api_address
    );
    if let Some(ui) = status.ui_address {
        writeln!(out, "  Web UI  {ui}")?;
    }
    if let Some(worker) = status.worker {
        writeln!(out, "  groups  {}", worker.groups.join(", "))?;
        if !worker.manager_address.is_empty() {
            writeln!(out, "  manager {}", worker.manager_address.join(", "))?;
        }
    }
    if let Some(resources) = status.resources {
        writeln!(out, "  limits  {}", limits(&resources))?;
    }
    Ok(out)
}

/// The limits, who set them and in which cgroups.
fn limits(limits: &EffectiveLimits) -> String {
    const MIB: u64 = 1024 * 1024;
    let mut set = Vec::new();
    if limits.cpu_quota_percent > 0.0 {
        set.push(format!("CPU {}% of one core", limits.cpu_quota_percent));
    }
    match limits.memory_limit_bytes {
        0 => {}
        bytes if bytes % MIB == 0 => set.push(format!("memory {} MiB", bytes / MIB)),
        bytes => set.push(format!("memory {bytes} bytes")),
    }
    if set.is_empty() {
        return "none".to_owned();
    }
    let by = match limits.source {
        LimitSource::Cgroup => "set by DataScale",
        LimitSource::Systemd => "set by the systemd unit",
        LimitSource::Inherited | LimitSource::None => "inherited",
    };
    let version = match limits.cgroup_version {
        Some(CgroupVersion::V1) => "cgroup v1",
        Some(CgroupVersion::V2) => "cgroup v2",
        None => "cgroup",
    };
    let mut cgroups: Vec<String> = [&limits.cpu_cgroup, &limits.memory_cgroup]
        .into_iter()
        .flatten()
        .map(|path| path.display().to_string())
        .collect();
    cgroups.dedup();
    format!(
        "{} ({by}; {version} {})",
        set.join(", "),
        cgroups.join(", ")
    )
}

/// `3725` → `1h 2m 5s`.
fn uptime(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m {seconds}s"),
        _ => format!("{days}d {hours}h {minutes}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_say_what_who_and_where() {
        let mut set = EffectiveLimits {
            source: LimitSource::Cgroup,
            cgroup_version: Some(CgroupVersion::V2),
            cpu_cgroup: Some("/sys/fs/cgroup/datascale".into()),
            memory_cgroup: Some("/sys/fs/cgroup/datascale".into()),
            cpu_quota_percent: 50.0,
            memory_limit_bytes: 256 * 1024 * 1024,
        };
        assert_eq!(
            limits(&set),
            "CPU 50% of one core, memory 256 MiB (set by DataScale; cgroup v2 /sys/fs/cgroup/datascale)"
        );
        set.cpu_quota_percent = 0.0;
        set.source = LimitSource::Systemd;
        assert!(limits(&set).starts_with("memory 256 MiB (set by the systemd unit;"));
        set.memory_limit_bytes = 0;
        assert_eq!(limits(&set), "none");
    }

    #[test]
    fn uptime_reads_well() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(3725), "1h 2m 5s");
        assert_eq!(uptime(90_061), "1d 1h 1m");
    }
}
