//! The kernel's views of this process that cgroups need: the cgroup
//! filesystems of `/proc/self/mountinfo` and the memberships of
//! `/proc/self/cgroup`, parsed from their text.

use std::path::PathBuf;

use datascale_protocol::CgroupVersion;

/// One mounted cgroup filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CgroupMount {
    /// The cgroup of the hierarchy mounted here: `/`, or a container's own
    /// cgroup when the container sees only its part of the hierarchy.
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// `cgroup` is version 1, `cgroup2` version 2.
    pub version: CgroupVersion,
    /// The filesystem's own options; on version 1 they name the controllers
    /// bound to the hierarchy (`rw,cpu,cpuacct`).
    pub options: Vec<String>,
}

impl CgroupMount {
    /// Whether this version 1 hierarchy has `controller` bound to it.
    pub fn binds(&self, controller: &str) -> bool {
        self.version == CgroupVersion::V1 && self.options.iter().any(|o| o == controller)
    }
}

/// The cgroup filesystems among the mounts of `mountinfo`, in its order.
///
/// A line is `id parent major:minor root mount_point options [tags…] - type source super_options`.
pub(super) fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, filesystem) = line.split_once(" - ")?;
            let mut mount = mount.split(' ').skip(3);
            let (root, mount_point) = (mount.next()?, mount.next()?);
            let mut filesystem = filesystem.split(' ');
            let version = match filesystem.next()? {
                "cgroup" => CgroupVersion::V1,
                "cgroup2" => CgroupVersion::V2,
                _ => return None,
            };
            let options = filesystem.nth(1).unwrap_or_default();
            Some(CgroupMount {
                root: unescape(root),
                mount_point: PathBuf::from(unescape(mount_point)),
                version,
                options: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Undoes the octal escapes mountinfo writes for space, tab, newline and
/// backslash (`\040`, …).
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let octal = bytes
            .get(at + 1..at + 4)
            .filter(|digits| bytes[at] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                at += 4;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup of this process in one hierarchy, a line of `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Membership {
    /// The controllers of a version 1 hierarchy (`cpu`, `cpuacct`, or
    /// `name=systemd`); empty for the version 2 hierarchy.
    pub controllers: Vec<String>,
    /// The cgroup, from the root of the hierarchy as this process sees it.
    pub path: String,
}

impl Membership {
    /// Whether this is the line of the version 2 hierarchy (`0::/path`).
    pub fn is_unified(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// The memberships of `/proc/self/cgroup`: lines `id:controllers:path`.
pub(super) fn memberships(proc_cgroup: &str) -> Vec<Membership> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
77 24 8:1 / /data\\040disk rw - ext4 /dev/sda1 rw
";

    #[test]
    fn mountinfo_yields_the_cgroup_filesystems_with_their_controllers() {
        let mounts = cgroup_mounts(HYBRID);
        let points: Vec<_> = mounts.iter().map(|m| m.mount_point.clone()).collect();
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified"
            ]
            .map(PathBuf::from)
        );
        assert!(mounts[0].binds("cpu") && mounts[0].binds("cpuacct") && !mounts[0].binds("memory"));
        assert!(mounts[1].binds("memory"));
        assert!(mounts[2].binds("name=systemd") && !mounts[2].binds("cpu"));
        assert_eq!(mounts[3].version, CgroupVersion::V2);
        assert!(
            !mounts[3].binds("cpu"),
            "version 2 binds nothing by options"
        );
        assert!(mounts.iter().all(|m| m.root == "/"));
    }

    #[test]
    fn mountinfo_paths_lose_their_escapes_and_containers_keep_their_root() {
        let line = "90 80 0:40 /docker/ab\\134c /tmp/my\\040cgroups rw - cgroup2 none rw\n";
        let mounts = cgroup_mounts(line);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/tmp/my cgroups"));
        assert_eq!(mounts[0].root, "/docker/ab\\c");
        assert_eq!(unescape("no\\escape\\9"), "no\\escape\\9");
    }

    #[test]
    fn proc_cgroup_names_each_hierarchy_and_the_unified_one() {
        let lines = memberships(
            "9:name=systemd:/system.slice/datascale.service\n4:memory:/datascale\n1:cpu,cpuacct:/\n0::/system.slice/datascale.service\n",
        );
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].controllers, ["name=systemd"]);
        assert_eq!(lines[1].path, "/datascale");
        assert_eq!(lines[2].controllers, ["cpu", "cpuacct"]);
        assert!(lines[3].is_unified() && !lines[2].is_unified());
        assert_eq!(lines[3].path, "/system.slice/datascale.service");
        assert_eq!(
            memberships("0::/a:b\n")[0].path,
            "/a:b",
            "a colon in a path stays"
        );
    }
}
