//! The Ansible toolkit is lint clean: `ansible-lint` with its `production`
//! profile on `playbook/`, and `yamllint --strict` (the repository's
//! `.yamllint`) on every YAML file of the toolkit. Both come from
//! `agent/tests/requirements.txt`.

use std::process::Command;

use crate::support::{repository, run_tool_successfully, tool};

/// Runs a lint tool in the repository; fails the test with its report.
fn lint(mut command: Command) {
    command.current_dir(repository());
    run_tool_successfully(command);
}

#[test]
fn the_playbooks_pass_ansible_lint_in_the_production_profile() {
    let ansible_home = tempfile::tempdir().unwrap();
    let mut command = tool("ansible-lint");
    command
        .args([
            "--offline",
            "--nocolor",
            "--profile",
            "production",
            "playbook",
        ])
        .env("ANSIBLE_HOME", ansible_home.path());
    lint(command);
}

#[test]
fn the_toolkit_yaml_passes_yamllint() {
    let mut command = tool("yamllint");
    command.args(["--strict", "playbook", "config", "vars.yaml", ".yamllint"]);
    lint(command);
}
