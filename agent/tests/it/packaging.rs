//! `packaging/build.sh`: two builds of the same binary give the same bytes,
//! the tarballs hold the documented layout, and an extracted agent renders
//! its unit with its own paths and the limits of the configuration.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::BIN;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `packaging/build.sh --binary BIN --out out` and returns SHA256SUMS.
fn build(out: &Path) -> String {
    let output = Command::new(repository().join("packaging/build.sh"))
        .args(["--binary", BIN, "--out"])
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "build.sh failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out.join("SHA256SUMS")).unwrap()
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn listing(tarball: &Path) -> Vec<String> {
    run(Command::new("tar").arg("-tzf").arg(tarball))
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
    run(Command::new("sha256sum")
        .arg("--check")
        .arg("SHA256SUMS")
        .current_dir(&first));

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
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&agent)
        .arg("-C")
        .arg(&site));
    let install_dir = site.join("datascale").canonicalize().unwrap();
    let unit = run(Command::new(install_dir.join("bin/datascale"))
        .args(["service", "render"])
        .current_dir(work.path())
        .env("DATASCALE_RESOURCES_CPU_QUOTA", "100")
        .env("DATASCALE_RESOURCES_MEMORY_LIMIT", "1024"));
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
