//! Resource limits of the process (`[resources]`), built in: on start,
//! DataScale puts itself into a cgroup of its own (`resources.cgroup_name`)
//! with the configured CPU quota and memory limit, in cgroup v2 or in the
//! v1 `cpu` and `memory` hierarchies, found in `/proc/self/mountinfo`; and
//! it reads back the limits it runs under, whoever set them, for the status
//! and `/metrics`.
//!
//! Under its systemd unit (`datascale service install`) systemd applies the
//! limits as `CPUQuota=` and `MemoryMax=`, and DataScale leaves its cgroups
//! alone. It knows it runs there when two facts hold together: systemd
//! started it (systemd sets `INVOCATION_ID` for every unit it runs) and its
//! cgroup in systemd's own hierarchy is a `.service`; and the unit applies
//! the limits when the cgroups holding its cpu and memory controllers
//! already carry exactly the configured values. `INVOCATION_ID` alone is
//! inherited by anything a service starts, and a `.service` cgroup alone
//! may be any service's; a unit whose limits differ (rendered from an older
//! configuration, or a service that merely launched DataScale) does not
//! count, and DataScale then makes its own cgroup, so the configured limits
//! always hold.

mod cgroup;
mod proc;

use std::path::PathBuf;

use tracing::{info, warn};

pub use cgroup::Unmet;
use cgroup::{Controller, CpuQuota, Host, Wanted};
use datascale_http::LimitsProbe;
use datascale_protocol::{EffectiveLimits, LimitSource};

use crate::config::ResourcesConfig;

/// How this process came under its limits on start; reads the limits in
/// force whenever asked, so that limits changed later show too.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    own_cgroup: bool,
    cgroup_root: PathBuf,
}

impl LimitsProbe for Placement {
    fn effective_limits(&self) -> EffectiveLimits {
        effective_limits(&Host::current(&self.cgroup_root), self.own_cgroup)
    }
}

/// A limit of `[resources]` that this host cannot apply.
#[derive(Debug, thiserror::Error)]
#[error(
    "setting [resources] {limits} needs root and a writable cgroup filesystem ({unmet}); run as root, install the systemd unit with `datascale service install`, or set {off}"
)]
pub struct ResourceError {
    /// The limits asked for, as `cpu_quota = 50 and memory_limit = 256`.
    limits: String,
    /// The same keys set to 0.
    off: String,
    /// What the cgroup filesystem lacks or refused.
    unmet: Unmet,
}

impl ResourceError {
    fn new(config: &ResourcesConfig, unmet: Unmet) -> Self {
        let set: Vec<(&str, u64)> = [
            ("cpu_quota", u64::from(config.cpu_quota)),
            ("memory_limit", config.memory_limit),
        ]
        .into_iter()
        .filter(|(_, value)| *value > 0)
        .collect();
        let join = |shown: Vec<String>| shown.join(" and ");
        Self {
            limits: join(set.iter().map(|(k, v)| format!("{k} = {v}")).collect()),
            off: join(set.iter().map(|(k, _)| format!("{k} = 0")).collect()),
            unmet,
        }
    }
}

/// Puts this process under the limits of `config`, unless none is set or
/// its systemd unit applies them already (see the module documentation).
pub fn place(config: &ResourcesConfig) -> Result<Placement, ResourceError> {
    let host = Host::current(&config.cgroup_root);
    Ok(Placement {
        own_cgroup: place_on(&host, config, std::process::id())?,
        cgroup_root: config.cgroup_root.clone(),
    })
}

/// The limits of `[resources]` in the kernel's units.
fn wanted(config: &ResourcesConfig) -> Wanted {
    Wanted {
        cpu: (config.cpu_quota > 0).then(|| CpuQuota::of_percent(config.cpu_quota)),
        memory_bytes: (config.memory_limit > 0).then(|| cgroup::memory_bytes(config.memory_limit)),
    }
}

/// Moves `pid` into its own cgroup with the limits of `config` when needed;
/// says whether it did.
fn place_on(host: &Host, config: &ResourcesConfig, pid: u32) -> Result<bool, ResourceError> {
    let wanted = wanted(config);
    if wanted.controllers().is_empty() {
        return Ok(false);
    }
    if let Some(unit) = host.systemd_unit() {
        let cpu_held = wanted.cpu.is_none_or(|cpu| {
            host.cgroup_of(Controller::Cpu)
                .and_then(|dir| dir.cpu_quota())
                .is_some_and(|held| held.same_share(cpu))
        });
        let memory_held = wanted.memory_bytes.is_none_or(|bytes| {
            host.cgroup_of(Controller::Memory)
                .and_then(|dir| dir.memory_limit())
                == Some(bytes)
        });
        if cpu_held && memory_held {
            info!(unit, "The systemd unit applies the limits of [resources].");
            return Ok(false);
        }
        warn!(
            unit,
            "The systemd unit does not apply the limits of [resources]; DataScale moves into a cgroup of its own. `datascale service install` renders the unit from the configuration again."
        );
    }
    let joined = host
        .create_and_join(&config.cgroup_name, &wanted, pid)
        .map_err(|unmet| ResourceError::new(config, unmet))?;
    let cgroups: Vec<String> = joined
        .iter()
        .map(|dir| dir.path.display().to_string())
        .collect();
    info!(
        cgroups = cgroups.join(", "),
        cpu_quota = config.cpu_quota,
        memory_limit_mb = config.memory_limit,
        "Moved into a cgroup of its own with the limits of [resources]."
    );
    Ok(true)
}

/// The limits `host` shows for this process; `own_cgroup`: DataScale set them.
fn effective_limits(host: &Host, own_cgroup: bool) -> EffectiveLimits {
    let cpu = host.cgroup_of(Controller::Cpu);
    let memory = host.cgroup_of(Controller::Memory);
    let cpu_quota = cpu.as_ref().and_then(|dir| dir.cpu_quota());
    let memory_limit = memory.as_ref().and_then(|dir| dir.memory_limit());
    let limited = cpu_quota.is_some() || memory_limit.is_some();
    let source = if own_cgroup {
        LimitSource::Cgroup
    } else if !limited {
        LimitSource::None
    } else if host.systemd_unit().is_some() {
        LimitSource::Systemd
    } else {
        LimitSource::Inherited
    };
    EffectiveLimits {
        source,
        cgroup_version: memory.as_ref().or(cpu.as_ref()).map(|dir| dir.version),
        cpu_cgroup: cpu.map(|dir| dir.path),
        memory_cgroup: memory.map(|dir| dir.path),
        cpu_quota_percent: cpu_quota.map_or(0.0, CpuQuota::percent),
        memory_limit_bytes: memory_limit.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use datascale_protocol::CgroupVersion;

    use super::{
        proc::{cgroup_mounts, memberships},
        *,
    };

    const MIB: u64 = 1024 * 1024;

    fn limits(cpu_quota: u32, memory_limit: u64) -> ResourcesConfig {
        ResourcesConfig {
            cpu_quota,
            memory_limit,
            ..ResourcesConfig::default()
        }
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    /// A host whose cgroup filesystems are plain directories below `dir`.
    fn host(dir: &Path, mounts: &[(&str, &str)], cgroups: &str) -> Host {
        let mountinfo: String = mounts
            .iter()
            .map(|(point, fs_and_options)| {
                let point = dir.join(point);
                fs::create_dir_all(&point).unwrap();
                format!("30 20 0:30 / {} rw - {fs_and_options}\n", point.display())
            })
            .collect();
        Host {
            mounts: cgroup_mounts(&mountinfo),
            memberships: memberships(cgroups),
            ..Host::default()
        }
    }

    fn version_2_host(dir: &Path, offered: &str, cgroup: &str) -> Host {
        let host = host(
            dir,
            &[("unified", "cgroup2 cgroup2 rw")],
            &format!("0::{cgroup}\n"),
        );
        fs::write(dir.join("unified/cgroup.controllers"), offered).unwrap();
        host
    }

    fn version_1_host(dir: &Path, cgroups: &str) -> Host {
        host(
            dir,
            &[
                ("cpu", "cgroup cgroup rw,cpu,cpuacct"),
                ("memory", "cgroup cgroup rw,memory"),
                ("systemd", "cgroup cgroup rw,name=systemd"),
            ],
            cgroups,
        )
    }

    #[test]
    fn percent_and_megabytes_become_the_kernels_units() {
        assert_eq!(CpuQuota::of_percent(50).quota_us, 50_000);
        assert_eq!(CpuQuota::of_percent(200).quota_us, 200_000);
        assert_eq!(CpuQuota::of_percent(1).period_us, 100_000);
        assert_eq!(CpuQuota::of_percent(50).percent(), 50.0);
        let systemd_style = CpuQuota {
            quota_us: 5_000,
            period_us: 10_000,
        };
        assert!(systemd_style.same_share(CpuQuota::of_percent(50)));
        assert!(!systemd_style.same_share(CpuQuota::of_percent(51)));
        assert_eq!(cgroup::memory_bytes(256), 268_435_456);
        assert_eq!(cgroup::memory_bytes(u64::MAX), u64::MAX);
        let wanted = wanted(&limits(50, 256));
        assert_eq!(
            wanted.limit_files(CgroupVersion::V2, Controller::Cpu),
            [("cpu.max", "50000 100000".to_owned())]
        );
        assert_eq!(
            wanted.limit_files(CgroupVersion::V1, Controller::Cpu),
            [
                ("cpu.cfs_period_us", "100000".to_owned()),
                ("cpu.cfs_quota_us", "50000".to_owned())
            ]
        );
        let none = Wanted::default();
        assert_eq!(
            none.limit_files(CgroupVersion::V2, Controller::Memory),
            [("memory.max", "max".to_owned())]
        );
        assert_eq!(
            none.limit_files(CgroupVersion::V1, Controller::Cpu),
            [("cpu.cfs_quota_us", "-1".to_owned())]
        );
    }

    #[test]
    fn version_2_enables_the_controllers_down_the_path_and_joins() {
        let dir = tempfile::tempdir().unwrap();
        let host = version_2_host(dir.path(), "cpuset cpu io memory pids", "/");
        let config = ResourcesConfig {
            cgroup_name: "apps/datascale".into(),
            ..limits(50, 256)
        };
        assert!(place_on(&host, &config, 4242).unwrap());
        let root = dir.path().join("unified");
        assert_eq!(read(&root.join("cgroup.subtree_control")), "+cpu +memory");
        assert_eq!(
            read(&root.join("apps/cgroup.subtree_control")),
            "+cpu +memory"
        );
        let own = root.join("apps/datascale");
        assert_eq!(read(&own.join("cpu.max")), "50000 100000");
        assert_eq!(read(&own.join("memory.max")), "268435456");
        assert_eq!(read(&own.join("cgroup.procs")), "4242");

        let moved = version_2_host(dir.path(), "cpu memory", "/apps/datascale");
        let effective = effective_limits(&moved, true);
        assert_eq!(
            effective,
            EffectiveLimits {
                source: LimitSource::Cgroup,
                cgroup_version: Some(CgroupVersion::V2),
                cpu_cgroup: Some(own.clone()),
                memory_cgroup: Some(own.clone()),
                cpu_quota_percent: 50.0,
                memory_limit_bytes: 256 * MIB,
            }
        );
    }

    #[test]
    fn version_2_lifts_a_limit_an_earlier_start_left() {
        let dir = tempfile::tempdir().unwrap();
        let host = version_2_host(dir.path(), "cpu memory", "/");
        place_on(&host, &limits(50, 0), 1).unwrap();
        fs::write(dir.path().join("unified/datascale/memory.max"), "1024").unwrap();
        place_on(&host, &limits(50, 0), 1).unwrap();
        let own = dir.path().join("unified/datascale");
        assert_eq!(read(&own.join("memory.max")), "max");
        assert_eq!(
            read(&dir.path().join("unified/cgroup.subtree_control")),
            "+cpu"
        );
    }

    #[test]
    fn version_1_sets_each_hierarchy_that_has_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let host = version_1_host(
            dir.path(),
            "3:memory:/\n2:cpu,cpuacct:/\n1:name=systemd:/\n",
        );
        assert!(place_on(&host, &limits(150, 64), 77).unwrap());
        let cpu = dir.path().join("cpu/datascale");
        let memory = dir.path().join("memory/datascale");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "150000");
        assert_eq!(
            read(&memory.join("memory.limit_in_bytes")),
            (64 * MIB).to_string()
        );
        for joined in [&cpu, &memory] {
            assert_eq!(read(&joined.join("cgroup.procs")), "77");
        }

        let only_memory = tempfile::tempdir().unwrap();
        let host = version_1_host(only_memory.path(), "3:memory:/\n2:cpu,cpuacct:/\n");
        place_on(&host, &limits(0, 64), 77).unwrap();
        assert!(!only_memory.path().join("cpu/datascale").exists());
    }

    #[test]
    fn version_1_limits_are_read_from_the_process_cgroups() {
        let dir = tempfile::tempdir().unwrap();
        let host = version_1_host(
            dir.path(),
            "3:memory:/datascale\n2:cpu,cpuacct:/\n1:name=systemd:/\n",
        );
        let cpu_root = dir.path().join("cpu");
        fs::write(cpu_root.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        fs::write(cpu_root.join("cpu.cfs_period_us"), "100000\n").unwrap();
        let memory = dir.path().join("memory/datascale");
        fs::create_dir_all(&memory).unwrap();
        fs::write(
            memory.join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        let unlimited = effective_limits(&host, false);
        assert_eq!(unlimited.source, LimitSource::None);
        assert_eq!(unlimited.cgroup_version, Some(CgroupVersion::V1));
        assert_eq!(unlimited.cpu_cgroup, Some(cpu_root));
        assert_eq!(unlimited.memory_cgroup, Some(memory.clone()));
        assert_eq!(
            (unlimited.cpu_quota_percent, unlimited.memory_limit_bytes),
            (0.0, 0)
        );

        fs::write(memory.join("memory.limit_in_bytes"), "1048576\n").unwrap();
        let inherited = effective_limits(&host, false);
        assert_eq!(inherited.source, LimitSource::Inherited);
        assert_eq!(inherited.memory_limit_bytes, MIB);
    }

    #[test]
    fn a_systemd_unit_that_applies_the_limits_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let unit = "/system.slice/datascale.service";
        let mut host = version_1_host(
            dir.path(),
            &format!("3:memory:{unit}\n2:cpu,cpuacct:{unit}\n1:name=systemd:{unit}\n"),
        );
        let cpu = dir.path().join("cpu").join(&unit[1..]);
        let memory = dir.path().join("memory").join(&unit[1..]);
        fs::create_dir_all(&cpu).unwrap();
        fs::create_dir_all(&memory).unwrap();
        fs::write(cpu.join("cpu.cfs_quota_us"), "50000").unwrap();
        fs::write(cpu.join("cpu.cfs_period_us"), "100000").unwrap();
        fs::write(
            memory.join("memory.limit_in_bytes"),
            (256 * MIB).to_string(),
        )
        .unwrap();
        let own = |dir: &Path| dir.join("cpu/datascale").exists();

        // A .service cgroup without INVOCATION_ID is not taken for systemd.
        assert!(place_on(&host, &limits(50, 256), 9).unwrap());
        assert!(own(dir.path()));
        fs::remove_dir_all(dir.path().join("cpu/datascale")).unwrap();

        host.started_by_systemd = true;
        assert_eq!(host.systemd_unit(), Some("datascale.service"));
        assert!(!place_on(&host, &limits(50, 256), 9).unwrap());
        assert!(!own(dir.path()));
        assert_eq!(effective_limits(&host, false).source, LimitSource::Systemd);

        // Limits other than the unit's: DataScale makes its own cgroup.
        assert!(place_on(&host, &limits(25, 256), 9).unwrap());
        assert!(own(dir.path()));
    }

    #[test]
    fn no_limit_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let host = version_2_host(dir.path(), "", "/");
        assert!(!place_on(&host, &limits(0, 0), 1).unwrap());
        assert!(!dir.path().join("unified/datascale").exists());
        assert_eq!(effective_limits(&host, false).source, LimitSource::None);
    }

    #[test]
    fn a_missing_controller_is_named_with_how_to_turn_the_limit_off() {
        let dir = tempfile::tempdir().unwrap();
        let host = version_2_host(dir.path(), "hugetlb", "/");
        let message = place_on(&host, &limits(0, 256), 1).unwrap_err().to_string();
        assert!(
            message.starts_with(
                "setting [resources] memory_limit = 256 needs root and a writable cgroup filesystem"
            ),
            "{message}"
        );
        assert!(
            message.contains("the cgroup v1 memory controller is not mounted")
                && message.contains("does not offer it (its cgroup.controllers: hugetlb)")
                && message.ends_with(
                    "run as root, install the systemd unit with `datascale service install`, or set memory_limit = 0"
                ),
            "{message}"
        );
        let message = place_on(&Host::default(), &limits(50, 256), 1)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("cpu_quota = 50 and memory_limit = 256")
                && message.contains("no cgroup v2 hierarchy is mounted")
                && message.ends_with("set cpu_quota = 0 and memory_limit = 0"),
            "{message}"
        );
    }
}
