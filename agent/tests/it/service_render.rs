//! `datascale service`: the rendered unit for several configurations against
//! golden files (`tests/golden/*.service`; `UPDATE_GOLDEN=1` rewrites them),
//! and install refusing, with a message that says why, where it cannot work.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use crate::support::{BIN, command, home, root_for, stderr, stdout, unprivileged};

/// Renders the unit in `home` and puts placeholders for the paths of this run.
fn render(home: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = command(home)
        .args(["service", "render"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let binary = Path::new(BIN).canonicalize().unwrap();
    let install_dir = home.canonicalize().unwrap();
    stdout(&output)
        .replace(binary.to_str().unwrap(), "{binary}")
        .replace(install_dir.to_str().unwrap(), "{install_dir}")
}

fn assert_golden(name: &str, unit: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.service"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, unit).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err}; UPDATE_GOLDEN=1 writes it", path.display()));
    assert_eq!(
        unit,
        golden,
        "{name}: the rendered unit differs from {}",
        path.display()
    );
}

/// `home` with `config/datascale.toml` holding `toml`.
fn home_with(toml: &str) -> tempfile::TempDir {
    let home = home();
    std::fs::create_dir(home.path().join("config")).unwrap();
    std::fs::write(home.path().join("config/datascale.toml"), toml).unwrap();
    home
}

#[test]
fn without_limits_the_unit_has_no_cpu_or_memory_lines() {
    let home = home_with("");
    let unit = render(home.path(), &[], &[]);
    assert!(!unit.contains("CPUQuota=") && !unit.contains("MemoryMax="));
    assert_golden("no_limits", &unit);
}

#[test]
fn a_cpu_quota_alone_gives_cpu_quota_only() {
    let home = home_with("[resources]\ncpu_quota = 50\n");
    let unit = render(home.path(), &[], &[]);
    assert!(unit.contains("\nCPUAccounting=yes\nCPUQuota=50%\n"));
    assert!(!unit.contains("MemoryMax="));
    assert_golden("cpu_only", &unit);
}

#[test]
fn both_limits_give_cpu_quota_and_memory_max() {
    let home = home_with("[resources]\ncpu_quota = 100\nmemory_limit = 1024\n");
    let unit = render(home.path(), &[], &[]);
    assert!(unit.contains("\nCPUQuota=100%\n"), "{unit}");
    assert!(
        unit.contains("\nMemoryAccounting=yes\nMemoryMax=1024M\n"),
        "{unit}"
    );
    assert_golden("both_limits", &unit);
    // The same from the environment.
    let from_env = render(
        home_with("").path(),
        &[],
        &[
            ("DATASCALE_RESOURCES_CPU_QUOTA", "100"),
            ("DATASCALE_RESOURCES_MEMORY_LIMIT", "1024"),
        ],
    );
    assert!(from_env.contains("\nCPUQuota=100%\n") && from_env.contains("\nMemoryMax=1024M\n"));
}

#[test]
fn a_custom_user_config_file_and_log_file_reach_the_unit() {
    let home = home();
    let config = home.path().join("site.toml");
    std::fs::write(
        &config,
        "[service]\ndata_dir = \"/var/lib/datascale\"\nshutdown_timeout_secs = 20\n\
         [log]\nfile = \"logs/datascale.log\"\n",
    )
    .unwrap();
    let unit = render(
        home.path(),
        &[
            "--user",
            "collector",
            "--group",
            "adm",
            "--config",
            "site.toml",
        ],
        &[],
    );
    assert!(unit.contains("\nExecStart={binary} --config {install_dir}/site.toml start\n"));
    assert_golden("custom_user", &unit);
}

#[test]
fn the_template_of_the_install_wins_over_the_built_in_one() {
    let home = home_with("");
    let dir = home.path().join("init/systemd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("datascale.service.template"),
        "[Service]\nUser={{ user }}\n",
    )
    .unwrap();
    assert_eq!(render(home.path(), &[], &[]), "[Service]\nUser=datascale\n");
}

#[test]
fn a_bad_configuration_exits_78() {
    let home = home_with("[resources]\ncpu_quota = -1\n");
    let output = command(home.path())
        .args(["service", "render"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
}

#[test]
fn install_as_another_user_than_root_says_root_is_needed() {
    let home = home();
    let output = unprivileged(home.path())
        .args(["service", "install"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("`datascale service install` needs")
            && message.contains("root: run it as root"),
        "{message}"
    );
}

#[test]
fn install_as_root_needs_systemd_or_plans_the_install() {
    // The path of another user is the test above; this one is root's.
    if !root_for("root's path of `service install`") {
        return;
    }
    let home = home();
    let systemd = Path::new("/run/systemd/system").is_dir();
    let args: &[&str] = if systemd {
        // Never change the host of the test: only the plan.
        &["service", "install", "--dry-run"]
    } else {
        &["service", "install"]
    };
    let output = command(home.path()).args(args).output().unwrap();
    if systemd {
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains("write /etc/systemd/system/datascale.service"));
    } else {
        assert_eq!(output.status.code(), Some(1));
        let message = stderr(&output);
        assert!(message.contains("needs systemd"), "{message}");
        assert!(!message.contains("root:"), "{message}");
        assert!(!Path::new("/etc/systemd/system/datascale.service").exists());
    }
}

#[test]
fn dry_run_prints_the_steps_and_changes_nothing() {
    let home = home_with("[log]\nfile = \"logs/datascale.log\"\n");
    let output = command(home.path())
        .args(["service", "install", "--dry-run", "--user", "collector"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let steps = stdout(&output);
    let install_dir = home.path().canonicalize().unwrap();
    assert!(
        steps.contains("write /etc/systemd/system/datascale.service\n"),
        "{steps}"
    );
    assert!(
        steps.contains(&format!(
            "chown -R collector:collector {}/data\n",
            install_dir.display()
        )),
        "{steps}"
    );
    assert!(
        steps.contains("systemctl enable --now datascale.service\n"),
        "{steps}"
    );
    assert!(!home.path().join("data").exists() && !home.path().join("logs").exists());
    let uninstall = command(home.path())
        .args(["service", "uninstall", "--dry-run", "--purge"])
        .output()
        .unwrap();
    assert!(uninstall.status.success(), "{}", stderr(&uninstall));
}

/// Run as another user where `CI` is set, root's test of install fails
/// rather than passing with nothing checked.
#[test]
fn where_ci_is_set_a_test_that_needs_root_fails_without_it() {
    if !root_for("running this test binary as another user") {
        return;
    }
    let home = home();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = home.path().join("it");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_as_nobody = |ci: bool| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args([
                "--exact",
                "service_render::install_as_root_needs_systemd_or_plans_the_install",
                "--nocapture",
            ])
            .current_dir(home.path())
            .env_remove("CI");
        if ci {
            command.env("CI", "true");
        }
        let output = command.output().unwrap();
        let said = format!("{}{}", stdout(&output), stderr(&output));
        (output.status.success(), said)
    };
    let (passed, said) = run_as_nobody(false);
    assert!(passed && said.contains("skipped: root's path"), "{said}");
    let (passed, said) = run_as_nobody(true);
    assert!(
        !passed && said.contains("needs root, and CI runs the tests as root"),
        "{said}"
    );
}
