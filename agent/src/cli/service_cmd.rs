//! `datascale service render|install|uninstall|status`: the systemd unit of
//! this install.

use std::{fmt::Write, process::ExitCode};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{GlobalArgs, config_failure, emit};
use crate::{
    config::LoadedConfig,
    service::{
        self, UnitParams,
        systemd::{self, HostFacts, Layout, Step, UnitState},
    },
};

/// Exit code of `status` when the service does not run (as systemctl's).
const EXIT_NOT_RUNNING: u8 = 3;

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Print the systemd unit of this install: the template
    /// init/systemd/datascale.service.template of the install directory (the
    /// built-in one when there is none) filled in from the configuration.
    Render(UnitArgs),
    /// Install the unit as /etc/systemd/system/datascale.service, create the
    /// system user when missing, hand it the data and log directories, then
    /// enable and (re)start the service. Needs root and systemd.
    Install {
        #[command(flatten)]
        unit: UnitArgs,
        /// Print the steps without doing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop, disable and remove the unit. The data directory is kept unless
    /// --purge. Needs root and systemd.
    Uninstall {
        /// Remove the data directory too.
        #[arg(long)]
        purge: bool,
        /// Print the steps without doing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the unit's state as systemd reports it, and whether the installed
    /// unit matches this configuration. Exits 3 when the service does not run.
    Status(UnitArgs),
}

/// Who the service runs as.
#[derive(Debug, Args)]
pub struct UnitArgs {
    /// The user the service runs as; install creates it as a system user
    /// when it is missing.
    #[arg(long, default_value = "datascale")]
    user: String,
    /// The service's group [default: the user's name]
    #[arg(long)]
    group: Option<String>,
}

impl UnitArgs {
    fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.user)
    }
}

pub fn run(global: &GlobalArgs, command: ServiceCommand) -> ExitCode {
    let loaded = match global.load_config(Vec::new()) {
        Ok(loaded) => loaded,
        Err(err) => return config_failure(&err),
    };
    let result = match command {
        ServiceCommand::Render(unit) => rendered(global, &loaded, &unit).map(|text| {
            emit(&text);
            ExitCode::SUCCESS
        }),
        ServiceCommand::Install { unit, dry_run } => install(global, &loaded, &unit, dry_run),
        ServiceCommand::Uninstall { purge, dry_run } => uninstall(&loaded, purge, dry_run),
        ServiceCommand::Status(unit) => status(global, &loaded, &unit),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}

/// The unit of this binary with this configuration.
fn rendered(global: &GlobalArgs, loaded: &LoadedConfig, unit: &UnitArgs) -> anyhow::Result<String> {
    let binary = std::env::current_exe()
        .and_then(|exe| exe.canonicalize())
        .context("cannot find the path of this binary")?;
    let config_file = global
        .config
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("cannot make the --config path absolute")?;
    let params = UnitParams::new(
        loaded,
        &binary,
        config_file.as_deref(),
        &unit.user,
        unit.group(),
    )?;
    let (template, origin) = service::template(&loaded.install_dir)?;
    Ok(service::render(&template, &origin, &params)?)
}

fn install(
    global: &GlobalArgs,
    loaded: &LoadedConfig,
    unit: &UnitArgs,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    if !dry_run {
        systemd::check_host("install", true)?;
    }
    let text = rendered(global, loaded, unit)?;
    let log_dir = service::log_dir(loaded);
    let layout = Layout {
        install_dir: &loaded.install_dir,
        data_dir: &loaded.config.service.data_dir,
        log_dir,
        user: &unit.user,
        group: unit.group(),
    };
    let facts = HostFacts::probe(&unit.user, unit.group(), log_dir);
    carry_out(&systemd::install_steps(&text, &layout, &facts), dry_run)?;
    if !dry_run {
        emit(&format!(
            "DataScale is installed as {} and runs as {}:{}.\n",
            systemd::unit_path().display(),
            unit.user,
            unit.group()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn uninstall(loaded: &LoadedConfig, purge: bool, dry_run: bool) -> anyhow::Result<ExitCode> {
    if !dry_run {
        systemd::check_host("uninstall", true)?;
    }
    let installed = systemd::unit_path().exists();
    let steps = systemd::uninstall_steps(installed, &loaded.config.service.data_dir, purge);
    carry_out(&steps, dry_run)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints each step; unless `dry_run`, does it first.
fn carry_out(steps: &[Step], dry_run: bool) -> anyhow::Result<()> {
    for step in steps {
        if !dry_run {
            step.carry_out()?;
        }
        let done = if dry_run || matches!(step, Step::Note(_)) {
            ""
        } else {
            "done: "
        };
        emit(&format!("{done}{step}\n"));
    }
    Ok(())
}

fn status(global: &GlobalArgs, loaded: &LoadedConfig, unit: &UnitArgs) -> anyhow::Result<ExitCode> {
    systemd::check_host("status", false)?;
    let state = UnitState::query()?;
    let expected = rendered(global, loaded, unit)?;
    let mut out = String::new();
    let unit_file = match &state.installed {
        None => "not installed (`datascale service install` installs it)".to_owned(),
        Some(text) if *text == expected => "installed, matches this configuration".to_owned(),
        Some(_) => "installed, differs from this configuration \
                    (`datascale service install` brings it up to date)"
            .to_owned(),
    };
    let rows = [
        (
            "Unit",
            format!("{} ({unit_file})", systemd::unit_path().display()),
        ),
        ("Enabled", state.get("UnitFileState").to_owned()),
        (
            "Active",
            format!(
                "{} ({}) since {}",
                state.get("ActiveState"),
                state.get("SubState"),
                state.get("ActiveEnterTimestamp")
            ),
        ),
        ("Main PID", state.get("MainPID").to_owned()),
        ("Restarts", state.get("NRestarts").to_owned()),
        ("Memory", amount(state.get("MemoryCurrent"), 1 << 20, "MB")),
        (
            "CPU time",
            amount(state.get("CPUUsageNSec"), 1_000_000_000, "s"),
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "{:<10}{value}", format!("{name}:")).expect("writing to a string succeeds");
    }
    emit(&out);
    Ok(if state.is_active() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_RUNNING)
    })
}

/// A counter of systemd in `unit`s, or `-` when systemd has none.
fn amount(raw: &str, unit: u64, name: &str) -> String {
    raw.parse::<u64>()
        .ok()
        .filter(|&value| value != u64::MAX)
        .map_or_else(
            || "-".to_owned(),
            |value| format!("{:.1} {name}", value as f64 / unit as f64),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_read_as_amounts() {
        assert_eq!(super::amount("1572864", 1 << 20, "MB"), "1.5 MB");
        assert_eq!(super::amount("[not set]", 1, "s"), "-");
        assert_eq!(super::amount("18446744073709551615", 1, "s"), "-");
    }
}
