//! Cgroup directories and their limit files in both versions: where this
//! process's cgroup of a controller is, which limit that cgroup holds, and
//! making a cgroup with limits and moving the process into it.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use datascale_protocol::CgroupVersion;

use super::proc::{self, CgroupMount, Membership};

/// Microseconds of one CPU period: a quota is CPU time per 100 ms.
pub(super) const CPU_PERIOD_US: u64 = 100_000;

/// Version 1 reports "no memory limit" as the largest page-aligned `i64`;
/// anything from 2^62 bytes (4 EiB) up is taken as no limit.
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// The controllers DataScale limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Controller {
    /// CPU time.
    Cpu,
    /// Memory.
    Memory,
}

impl Controller {
    /// The kernel's name of the controller.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
        }
    }
}

/// CPU time per period, as `cpu.max` and `cpu.cfs_*_us` hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CpuQuota {
    /// Microseconds of CPU time per period.
    pub quota_us: u64,
    /// Microseconds of one period.
    pub period_us: u64,
}

impl CpuQuota {
    /// `percent` of one core: 50 → 50 000 µs per 100 000 µs.
    pub fn of_percent(percent: u32) -> Self {
        Self {
            quota_us: u64::from(percent) * CPU_PERIOD_US / 100,
            period_us: CPU_PERIOD_US,
        }
    }

    /// The quota in percent of one core.
    pub fn percent(self) -> f64 {
        self.quota_us as f64 * 100.0 / self.period_us as f64
    }

    /// Whether both give the same share of a core, whatever their periods.
    pub fn same_share(self, other: Self) -> bool {
        u128::from(self.quota_us) * u128::from(other.period_us)
            == u128::from(other.quota_us) * u128::from(self.period_us)
    }
}

/// Megabytes of `[resources] memory_limit` in bytes (1 MB = 1 MiB, as
/// systemd's `MemoryMax=256M`).
pub(super) fn memory_bytes(megabytes: u64) -> u64 {
    megabytes.saturating_mul(1024 * 1024)
}

/// The limits to set; `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Wanted {
    /// CPU time.
    pub cpu: Option<CpuQuota>,
    /// Memory, in bytes.
    pub memory_bytes: Option<u64>,
}

impl Wanted {
    /// The controllers whose limit is set.
    pub fn controllers(&self) -> Vec<Controller> {
        let mut controllers = Vec::new();
        if self.cpu.is_some() {
            controllers.push(Controller::Cpu);
        }
        if self.memory_bytes.is_some() {
            controllers.push(Controller::Memory);
        }
        controllers
    }

    /// The files that set (or lift, for `None`) the limit of `controller`,
    /// with their contents, in the order they are written.
    pub fn limit_files(
        &self,
        version: CgroupVersion,
        controller: Controller,
    ) -> Vec<(&'static str, String)> {
        match (version, controller) {
            (CgroupVersion::V2, Controller::Cpu) => vec![(
                "cpu.max",
                match self.cpu {
                    Some(cpu) => format!("{} {}", cpu.quota_us, cpu.period_us),
                    None => format!("max {CPU_PERIOD_US}"),
                },
            )],
            (CgroupVersion::V2, Controller::Memory) => vec![(
                "memory.max",
                self.memory_bytes
                    .map_or_else(|| "max".to_owned(), |bytes| bytes.to_string()),
            )],
            (CgroupVersion::V1, Controller::Cpu) => match self.cpu {
                Some(cpu) => vec![
                    ("cpu.cfs_period_us", cpu.period_us.to_string()),
                    ("cpu.cfs_quota_us", cpu.quota_us.to_string()),
                ],
                None => vec![("cpu.cfs_quota_us", "-1".to_owned())],
            },
            (CgroupVersion::V1, Controller::Memory) => vec![(
                "memory.limit_in_bytes",
                self.memory_bytes
                    .map_or_else(|| "-1".to_owned(), |bytes| bytes.to_string()),
            )],
        }
    }
}

/// The cgroup of one controller: its version and directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CgroupDir {
    /// Which interface its files follow.
    pub version: CgroupVersion,
    /// The directory.
    pub path: PathBuf,
}

impl CgroupDir {
    /// The CPU quota this cgroup holds; `None`: no limit, or no CPU controller here.
    pub fn cpu_quota(&self) -> Option<CpuQuota> {
        let (quota_us, period_us) = match self.version {
            CgroupVersion::V2 => {
                let text = self.read("cpu.max")?;
                let (quota, period) = text.split_once(' ')?;
                (quota.parse().ok()?, period.parse().ok()?)
            }
            CgroupVersion::V1 => (
                self.read("cpu.cfs_quota_us")?.parse().ok()?,
                self.read("cpu.cfs_period_us")?.parse().ok()?,
            ),
        };
        (period_us > 0).then_some(CpuQuota {
            quota_us,
            period_us,
        })
    }

    /// The memory limit this cgroup holds, in bytes; `None`: no limit, or
    /// no memory controller here.
    pub fn memory_limit(&self) -> Option<u64> {
        let bytes: u64 = match self.version {
            CgroupVersion::V2 => self.read("memory.max")?.parse().ok()?,
            CgroupVersion::V1 => self.read("memory.limit_in_bytes")?.parse().ok()?,
        };
        (bytes < V1_UNLIMITED_FROM).then_some(bytes)
    }

    fn read(&self, file: &str) -> Option<String> {
        let text = fs::read_to_string(self.path.join(file)).ok()?;
        Some(text.trim().to_owned())
    }
}

/// What cgroups mean to this process: the mounted hierarchies, its cgroup
/// in each, and whether systemd started it.
#[derive(Debug, Clone, Default)]
pub(super) struct Host {
    /// The cgroup filesystems considered.
    pub mounts: Vec<CgroupMount>,
    /// This process's cgroup in each hierarchy.
    pub memberships: Vec<Membership>,
    /// Whether systemd started this process as (part of) a unit: it sets
    /// `INVOCATION_ID` for every unit it runs.
    pub started_by_systemd: bool,
    /// `resources.cgroup_root`, when set: mounts elsewhere are left out.
    pub cgroup_root: Option<PathBuf>,
}

impl Host {
    /// This process's view now; with a `cgroup_root`, only the cgroup
    /// filesystems mounted at or below it.
    pub fn current(cgroup_root: &Path) -> Self {
        let read = |path| fs::read_to_string(path).unwrap_or_default();
        let cgroup_root = (!cgroup_root.as_os_str().is_empty()).then(|| cgroup_root.to_owned());
        let mounts = proc::cgroup_mounts(&read("/proc/self/mountinfo"))
            .into_iter()
            .filter(|mount| {
                cgroup_root
                    .as_ref()
                    .is_none_or(|root| mount.mount_point.starts_with(root))
            })
            .collect();
        Self {
            mounts,
            memberships: proc::memberships(&read("/proc/self/cgroup")),
            started_by_systemd: std::env::var_os("INVOCATION_ID").is_some_and(|id| !id.is_empty()),
            cgroup_root,
        }
    }

    /// The cgroup of this process that holds `controller`: in the version
    /// 1 hierarchy bound to it when one is mounted, else in version 2.
    pub fn cgroup_of(&self, controller: Controller) -> Option<CgroupDir> {
        let name = controller.name();
        let v1 = self
            .memberships
            .iter()
            .filter(|line| line.controllers.iter().any(|c| c == name))
            .find_map(|line| {
                let mount = self.mounts.iter().find(|mount| mount.binds(name))?;
                directory(mount, &line.path)
            });
        v1.or_else(|| {
            let line = self.memberships.iter().find(|line| line.is_unified())?;
            self.version_2()
                .find_map(|mount| directory(mount, &line.path))
        })
    }

    /// The systemd unit this process runs in: systemd started it, and its
    /// cgroup in systemd's own hierarchy (`name=systemd` on version 1, the
    /// unified one on version 2) is a `.service`. systemd keeps every
    /// process of a service there, whatever other cgroups it joins.
    pub fn systemd_unit(&self) -> Option<&str> {
        if !self.started_by_systemd {
            return None;
        }
        let tracking = self
            .memberships
            .iter()
            .find(|line| line.controllers.iter().any(|c| c == "name=systemd"))
            .or_else(|| self.memberships.iter().find(|line| line.is_unified()))?;
        let unit = tracking.path.rsplit('/').next()?;
        unit.ends_with(".service").then_some(unit)
    }

    fn version_2(&self) -> impl Iterator<Item = &CgroupMount> {
        self.mounts
            .iter()
            .filter(|mount| mount.version == CgroupVersion::V2)
    }

    /// Makes the cgroup `name` with the `wanted` limits and moves the
    /// process `pid` into it: one cgroup in version 2 when its hierarchy
    /// offers every controller needed, else one per controller in the
    /// version 1 hierarchies. Returns the cgroups joined.
    pub fn create_and_join(
        &self,
        name: &str,
        wanted: &Wanted,
        pid: u32,
    ) -> Result<Vec<CgroupDir>, Unmet> {
        let needed = wanted.controllers();
        let unified = self.version_2().find(|mount| {
            let offered = offered_controllers(&mount.mount_point);
            needed
                .iter()
                .all(|c| offered.iter().any(|name| name == c.name()))
        });
        if let Some(mount) = unified {
            return join_version_2(&mount.mount_point, name, wanted, pid).map(|dir| vec![dir]);
        }
        let mut hierarchies = Vec::new();
        for controller in needed {
            let Some(mount) = self.mounts.iter().find(|m| m.binds(controller.name())) else {
                return Err(Unmet::Controller {
                    controller: controller.name(),
                    why: self.why_missing(controller),
                });
            };
            hierarchies.push((controller, mount));
        }
        let mut joined = Vec::new();
        for (controller, mount) in hierarchies {
            let dir = CgroupDir {
                version: CgroupVersion::V1,
                path: mount.mount_point.join(name),
            };
            created(&dir.path, fs::create_dir_all(&dir.path))?;
            for (file, contents) in wanted.limit_files(CgroupVersion::V1, controller) {
                write(&dir.path.join(file), &contents)?;
            }
            write(&dir.path.join("cgroup.procs"), &pid.to_string())?;
            joined.push(dir);
        }
        Ok(joined)
    }

    /// Why neither version offers `controller`, for the error message.
    fn why_missing(&self, controller: Controller) -> String {
        let name = controller.name();
        let version_2 = match self.version_2().next() {
            Some(mount) => {
                let offered = offered_controllers(&mount.mount_point);
                format!(
                    "the cgroup v2 hierarchy at {} does not offer it (its cgroup.controllers: {})",
                    mount.mount_point.display(),
                    if offered.is_empty() {
                        "none".to_owned()
                    } else {
                        offered.join(" ")
                    }
                )
            }
            None => "no cgroup v2 hierarchy is mounted".to_owned(),
        };
        let place = match &self.cgroup_root {
            Some(root) => format!(" at or below {} (resources.cgroup_root)", root.display()),
            None => String::new(),
        };
        format!("the cgroup v1 {name} controller is not mounted, and {version_2}{place}")
    }
}

/// The directory of the cgroup `path` in the hierarchy mounted at `mount`,
/// when the mount shows it.
fn directory(mount: &CgroupMount, path: &str) -> Option<CgroupDir> {
    let inside = match mount.root.as_str() {
        "/" => path,
        root => path
            .strip_prefix(root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))?,
    };
    Some(CgroupDir {
        version: mount.version,
        path: mount.mount_point.join(inside.trim_start_matches('/')),
    })
}

/// The controllers a version 2 cgroup offers its children.
fn offered_controllers(dir: &Path) -> Vec<String> {
    let text = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    text.split_whitespace().map(str::to_owned).collect()
}

/// Version 2: enables the controllers needed in every cgroup from the root
/// down to `name`'s parent, makes `name`, sets its limits and joins it.
fn join_version_2(
    mount_point: &Path,
    name: &str,
    wanted: &Wanted,
    pid: u32,
) -> Result<CgroupDir, Unmet> {
    let enable: Vec<String> = wanted
        .controllers()
        .iter()
        .map(|c| format!("+{}", c.name()))
        .collect();
    let mut path = mount_point.to_owned();
    for part in name.split('/') {
        write(&path.join("cgroup.subtree_control"), &enable.join(" "))?;
        path.push(part);
        created(&path, fs::create_dir(&path))?;
    }
    // A controller without a limit has its limit lifted, in case an earlier
    // start left one in this cgroup; it is only there when enabled.
    for controller in [Controller::Cpu, Controller::Memory] {
        for (file, contents) in wanted.limit_files(CgroupVersion::V2, controller) {
            let file = path.join(file);
            if wanted.controllers().contains(&controller) || file.exists() {
                write(&file, &contents)?;
            }
        }
    }
    write(&path.join("cgroup.procs"), &pid.to_string())?;
    Ok(CgroupDir {
        version: CgroupVersion::V2,
        path,
    })
}

/// What a cgroup filesystem refused.
#[derive(Debug, thiserror::Error)]
pub enum Unmet {
    /// No hierarchy offers a controller that a limit needs.
    #[error("no cgroup hierarchy offers the {controller} controller: {why}")]
    Controller {
        /// The controller.
        controller: &'static str,
        /// What each version lacks.
        why: String,
    },
    /// A cgroup could not be made.
    #[error("cannot create the cgroup {}: {source}", path.display())]
    Create {
        /// Its directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A cgroup file could not be written.
    #[error("cannot write `{contents}` to {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        contents: String,
        /// Why.
        source: io::Error,
    },
}

/// The outcome of making the cgroup `path`: made, or there already.
fn created(path: &Path, made: io::Result<()>) -> Result<(), Unmet> {
    match made {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => Err(Unmet::Create {
            path: path.to_owned(),
            source: err,
        }),
        _ => Ok(()),
    }
}

fn write(path: &Path, contents: &str) -> Result<(), Unmet> {
    fs::write(path, contents).map_err(|source| Unmet::Write {
        path: path.to_owned(),
        contents: contents.to_owned(),
        source,
    })
}
