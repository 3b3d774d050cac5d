//! `packaging/build.sh`: two builds of the same binary give the same bytes,
//! the tarballs hold the documented layout, and an extracted agent renders
//! its unit with its own paths and the limits of the configuration.

use std::{path::Path, process::Command};

use crate::support::{build_packages, checked, stdout};

/// Builds the packages into `out` and returns their SHA256SUMS.
fn build(out: &Path) -> String {
    build_packages(out, "1700000000");
    std::fs::read_to_string(out.join("SHA256SUMS")).unwrap()
}

/// The paths in `tarball`.
fn listing(tarball: &Path) -> Vec<String> {
    stdout(&checked(Command::new("tar").arg("-tzf").arg(tarball)))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_packages_are_reproducible_and_the_agent_renders_its_unit() {
    let work = tempfile::tempdir().unwrap();
    let (first, second) = (work.path().join("first"), work.path().join("second"));
    let sums = build(&first);
    assert_eq!(sums, build(&second), "two builds of the same inputs differ");

    let version = env!("CARGO_PKG_VERSION");
    let agent = first.join(format!("datascale-{version}-x86_64-linux.tar.gz"));
    let toolkit = first.join(format!("datascale-ansible-{version}.tar.gz"));
    for tarball in [&agent, &toolkit] {
        let name = tarball.file_name().unwrap().to_str().unwrap();
        assert!(sums.contains(&format!("  {name}\n")), "{sums}");
    }
    checked(
        Command::new("sha256sum")
            .arg("--check")
            .arg("SHA256SUMS")
            .current_dir(&first),
    );

    let files = listing(&agent);
    for expected in [
        "datascale/",
        "datascale/README",
        "datascale/bin/datascale",
        "datascale/config/datascale.toml",
        "datascale/init/systemd/datascale.service.template",
        "datascale/collectors/",
        "datascale/collectors/README",
        "datascale/collectors/examples/disk_usage/collector.toml",
        "datascale/collectors/examples/disk_usage/bin/disk_usage.sh",
    ] {
        assert!(
            files.iter().any(|file| file == expected),
            "{expected} missing: {files:?}"
        );
    }
    let files = listing(&toolkit);
    for expected in [
        "datascale-ansible/README.md",
        "datascale-ansible/hosts",
        "datascale-ansible/vars.yaml",
        "datascale-ansible/config/datascale.toml",
        "datascale-ansible/playbook/files/README.md",
    ] {
        assert!(
            files.iter().any(|file| file == expected),
            "{expected} missing: {files:?}"
        );
    }
    assert!(
        files
            .iter()
            .all(|file| file.starts_with("datascale-ansible/")),
        "{files:?}"
    );

    let site = work.path().join("site");
    std::fs::create_dir(&site).unwrap();
    checked(
        Command::new("tar")
            .arg("-xzf")
            .arg(&agent)
            .arg("-C")
            .arg(&site),
    );
    let install_dir = site.join("datascale").canonicalize().unwrap();
    let unit = stdout(&checked(
        Command::new(install_dir.join("bin/datascale"))
            .args(["service", "render"])
            .current_dir(work.path())
            .env("DATASCALE_RESOURCES_CPU_QUOTA", "100")
            .env("DATASCALE_RESOURCES_MEMORY_LIMIT", "1024"),
    ));
    assert!(unit.contains("\nCPUQuota=100%\n"), "{unit}");
    assert!(unit.contains("\nMemoryMax=1024M\n"), "{unit}");
    let binary = install_dir.join("bin/datascale");
    assert!(
        unit.contains(&format!("\nExecStart={} start\n", binary.display())),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("\nWorkingDirectory={}\n", install_dir.display())),
        "{unit}"
    );
    assert!(
        unit.contains(&format!(
            "\nReadWritePaths={}/data\n",
            install_dir.display()
        )),
        "{unit}"
    );
}
