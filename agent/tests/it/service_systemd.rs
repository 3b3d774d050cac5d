//! `datascale service install|status|uninstall` on a host that runs
//! systemd (a test host container, see `support::test_hosts`): the service
//! starts, systemd gives it the CPU quota and memory limit of the
//! configuration, the kernel enforces them on its cgroups, and uninstall
//! leaves no unit and no process.

use std::{process::Command, time::Duration};

use crate::support::{
    BIN, checked,
    test_hosts::{Hosts, docker_available},
    wait_until,
};

const INSTALL_DIR: &str = "/opt/datascale";

#[test]
fn service_install_starts_the_service_under_the_limits_of_the_configuration() {
    if !docker_available() {
        return;
    }
    let hosts = Hosts::start(&["host1"]);
    let host = hosts.get("host1");
    host.sh(&format!("mkdir -p {INSTALL_DIR}/bin {INSTALL_DIR}/config"));
    checked(Command::new("docker").args([
        "cp",
        BIN,
        &format!("{}:{INSTALL_DIR}/bin/datascale", host.container),
    ]));
    host.sh(&format!(
        "printf '[resources]\\ncpu_quota = 50\\nmemory_limit = 256\\n' > {INSTALL_DIR}/config/datascale.toml"
    ));

    let installed = host.sh(&format!("{INSTALL_DIR}/bin/datascale service install"));
    assert!(installed.contains("systemctl enable --now"), "{installed}");
    wait_until(Duration::from_secs(30), "active service", || {
        host.sh("systemctl is-active datascale || true") == "active"
    });
    assert_eq!(
        host.sh("systemctl show datascale -p CPUQuotaPerSecUSec -p MemoryMax"),
        "CPUQuotaPerSecUSec=500ms\nMemoryMax=268435456"
    );
    // The kernel's own limits on the service's cgroups: cgroup v1 has a
    // hierarchy per controller, v2 one for all.
    let pid = host.sh("systemctl show datascale -p MainPID --value");
    let limits = host.sh(&format!(
        r#"cgroup() {{ awk -F: -v c="$1" '$2 ~ "(^|,)" c "(,|$)" {{ print $3 }}' /proc/{pid}/cgroup; }}
        if [ -n "$(cgroup memory)" ]; then
            cat "/sys/fs/cgroup/memory$(cgroup memory)/memory.limit_in_bytes" \
                "/sys/fs/cgroup/cpu$(cgroup cpu)/cpu.cfs_quota_us"
        else
            unified=/sys/fs/cgroup$(awk -F: '$1 == 0 {{ print $3 }}' /proc/{pid}/cgroup)
            cat "$unified/memory.max" "$unified/cpu.max"
        fi"#
    ));
    assert!(
        limits == "268435456\n50000" || limits == "268435456\n50000 100000",
        "{limits}"
    );
    let status = host.sh(&format!("{INSTALL_DIR}/bin/datascale service status"));
    assert!(
        status.contains("installed, matches this configuration"),
        "{status}"
    );

    host.sh(&format!("{INSTALL_DIR}/bin/datascale service uninstall"));
    assert_eq!(
        host.sh("systemctl list-unit-files datascale.service | tail -1"),
        "0 unit files listed."
    );
    assert_eq!(host.sh("pgrep -x datascale || echo none"), "none");
}
