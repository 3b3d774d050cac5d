//! What a node says of itself: which side of DataScale it runs (its mode),
//! and the resource limits it runs under, whoever set them.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which side of DataScale a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The REST API, the Web UI and the store of groups and dataflows.
    Manager,
    /// Runs the dataflows of its groups, configured by a manager.
    Worker,
    /// A manager and a local worker in one process.
    Standalone,
}

impl Mode {
    /// Whether this mode serves the manager's API and Web UI.
    pub fn runs_manager(self) -> bool {
        matches!(self, Mode::Manager | Mode::Standalone)
    }

    /// Whether this mode runs dataflows.
    pub fn runs_worker(self) -> bool {
        matches!(self, Mode::Worker | Mode::Standalone)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Manager => "manager",
            Mode::Worker => "worker",
            Mode::Standalone => "standalone",
        })
    }
}

/// Which interface of cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// Separate hierarchies per controller (`cpu`, `memory`, …).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Who set the limits the process runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LimitSource {
    /// DataScale, in its own cgroup, from `[resources]`.
    Cgroup,
    /// The systemd unit DataScale runs as.
    Systemd,
    /// The cgroup DataScale was started in, set up by someone else (a
    /// container runtime, an administrator).
    Inherited,
    /// No limit.
    None,
}

impl LimitSource {
    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSource::Cgroup => "cgroup",
            LimitSource::Systemd => "systemd",
            LimitSource::Inherited => "inherited",
            LimitSource::None => "none",
        }
    }
}

/// The limits the process runs under, read from the files of its cgroups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EffectiveLimits {
    /// Who set them.
    pub source: LimitSource,
    /// The cgroup interface of the process's cgroups; none without cgroups.
    pub cgroup_version: Option<CgroupVersion>,
    /// The directory of the cgroup that holds the CPU controller.
    #[schema(value_type = Option<String>)]
    pub cpu_cgroup: Option<PathBuf>,
    /// The directory of the cgroup that holds the memory controller.
    #[schema(value_type = Option<String>)]
    pub memory_cgroup: Option<PathBuf>,
    /// CPU time in percent of one core; 0: no limit.
    pub cpu_quota_percent: f64,
    /// Memory in bytes; 0: no limit.
    pub memory_limit_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_say_which_sides_they_run() {
        assert!(Mode::Standalone.runs_manager() && Mode::Standalone.runs_worker());
        assert!(Mode::Manager.runs_manager() && !Mode::Manager.runs_worker());
        assert!(!Mode::Worker.runs_manager() && Mode::Worker.runs_worker());
    }
}
