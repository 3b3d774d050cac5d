//! The host side of the unit: whether this host runs systemd and we are
//! root, the steps that install and remove the unit (printed by `--dry-run`,
//! carried out otherwise), and the unit's state as systemd reports it.

use std::{
    fmt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::UNIT_NAME;

/// Where the unit is installed.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// Present on every host booted with systemd (see sd_booted(3)).
const SYSTEMD_RUNTIME_DIR: &str = "/run/systemd/system";

/// The properties `status` asks systemd for, in the order it shows them.
const STATUS_PROPERTIES: [&str; 9] = [
    "LoadState",
    "UnitFileState",
    "ActiveState",
    "SubState",
    "MainPID",
    "ActiveEnterTimestamp",
    "NRestarts",
    "MemoryCurrent",
    "CPUUsageNSec",
];

/// What went wrong on the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The host lacks what the command needs.
    #[error("`datascale service {command}` needs {needs}")]
    Unmet {
        /// The subcommand.
        command: &'static str,
        /// What is missing and how to get it.
        needs: String,
    },
    /// A program failed or could not run.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output or exit status.
        reason: String,
    },
    /// A file or directory could not be written or removed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was tried.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks that this host runs systemd and, when `needs_root`, that this
/// process is root; names everything missing at once.
pub fn check_host(command: &'static str, needs_root: bool) -> Result<(), HostError> {
    let mut missing = Vec::new();
    if !Path::new(SYSTEMD_RUNTIME_DIR).is_dir() {
        missing.push(format!(
            "systemd, and this host does not run it ({SYSTEMD_RUNTIME_DIR} is missing); \
             run `datascale start` under the service manager this host has instead"
        ));
    }
    if needs_root && !is_root() {
        missing.push("root: run it as root, for example with sudo".to_owned());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HostError::Unmet {
            command,
            needs: missing.join("; and "),
        })
    }
}

/// Whether the effective user of this process is root.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// The path of the installed unit.
pub fn unit_path() -> PathBuf {
    Path::new(UNIT_DIR).join(UNIT_NAME)
}

/// One thing install or uninstall does to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write a file (mode 0644).
    Write {
        /// The file.
        path: PathBuf,
        /// Its contents.
        contents: String,
    },
    /// Create a directory and its parents.
    CreateDir(PathBuf),
    /// Remove a file.
    RemoveFile(PathBuf),
    /// Remove a directory and everything in it.
    RemoveDir(PathBuf),
    /// Run a program.
    Run(Vec<String>),
    /// Nothing to do, but something the operator should know.
    Note(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Write { path, .. } => write!(f, "write {}", path.display()),
            Step::CreateDir(path) => write!(f, "mkdir -p {}", path.display()),
            Step::RemoveFile(path) => write!(f, "rm {}", path.display()),
            Step::RemoveDir(path) => write!(f, "rm -r {}", path.display()),
            Step::Run(args) => f.write_str(&args.join(" ")),
            Step::Note(text) => write!(f, "note: {text}"),
        }
    }
}

impl Step {
    fn run(args: &[&str]) -> Self {
        Step::Run(args.iter().map(|&arg| arg.to_owned()).collect())
    }

    fn run_with_path(args: &[&str], path: &Path) -> Self {
        let mut step = Self::run(args);
        if let Step::Run(args) = &mut step {
            args.push(path.display().to_string());
        }
        step
    }

    /// Does it.
    pub fn carry_out(&self) -> Result<(), HostError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| HostError::Io {
                action,
                path,
                source,
            }
        };
        match self {
            Step::Write { path, contents } => {
                std::fs::write(path, contents).map_err(io("write", path))
            }
            Step::CreateDir(path) => std::fs::create_dir_all(path).map_err(io("create", path)),
            Step::RemoveFile(path) => std::fs::remove_file(path).map_err(io("remove", path)),
            Step::RemoveDir(path) => std::fs::remove_dir_all(path).map_err(io("remove", path)),
            Step::Run(args) => run(args).map(drop),
            Step::Note(_) => Ok(()),
        }
    }
}

/// What install needs to know about the host before it plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The service user exists.
    pub user_exists: bool,
    /// The service group exists.
    pub group_exists: bool,
    /// The log directory exists already.
    pub log_dir_exists: bool,
    /// The unit is running now (so install restarts it).
    pub active: bool,
    /// The login shell that refuses logins.
    pub nologin: String,
}

impl HostFacts {
    /// Asks the host.
    pub fn probe(user: &str, group: &str, log_dir: Option<&Path>) -> Self {
        let known = |database: &str, name: &str| {
            Command::new("getent")
                .args([database, name])
                .output()
                .is_ok_and(|output| output.status.success())
        };
        Self {
            user_exists: known("passwd", user),
            group_exists: known("group", group),
            log_dir_exists: log_dir.is_some_and(Path::is_dir),
            active: Command::new("systemctl")
                .args(["is-active", "--quiet", UNIT_NAME])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success()),
            nologin: ["/usr/sbin/nologin", "/sbin/nologin"]
                .into_iter()
                .find(|shell| Path::new(shell).exists())
                .unwrap_or("/bin/false")
                .to_owned(),
        }
    }
}

/// Where install puts things and as whom the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout<'a> {
    /// The install directory (the system user's home).
    pub install_dir: &'a Path,
    /// The data directory.
    pub data_dir: &'a Path,
    /// The log file's directory, when logs go to a file.
    pub log_dir: Option<&'a Path>,
    /// `User=`.
    pub user: &'a str,
    /// `Group=`.
    pub group: &'a str,
}

/// The steps that install `unit` and start it: the unit file, the system
/// user and group when missing, the data and log directories owned by them,
/// then systemd told to enable and start it (restarted when it ran, so an
/// upgrade takes effect).
pub fn install_steps(unit: &str, layout: &Layout<'_>, facts: &HostFacts) -> Vec<Step> {
    let owner = format!("{}:{}", layout.user, layout.group);
    let mut steps = vec![Step::Write {
        path: unit_path(),
        contents: unit.to_owned(),
    }];
    if !facts.group_exists {
        steps.push(Step::run(&["groupadd", "--system", layout.group]));
    }
    if !facts.user_exists {
        let home = layout.install_dir.display().to_string();
        steps.push(Step::run(&[
            "useradd",
            "--system",
            "--gid",
            layout.group,
            "--home-dir",
            &home,
            "--no-create-home",
            "--shell",
            &facts.nologin,
            "--comment",
            "DataScale",
            layout.user,
        ]));
    }
    steps.push(Step::CreateDir(layout.data_dir.to_owned()));
    steps.push(Step::run_with_path(
        &["chown", "-R", &owner],
        layout.data_dir,
    ));
    if let Some(log_dir) = layout.log_dir {
        // Only a directory of DataScale's own is handed over: never, say, /var/log.
        if !facts.log_dir_exists || log_dir.starts_with(layout.install_dir) {
            steps.push(Step::CreateDir(log_dir.to_owned()));
            steps.push(Step::run_with_path(&["chown", "-R", &owner], log_dir));
        } else {
            steps.push(Step::Note(format!(
                "{} is not DataScale's own directory and keeps its owner: make sure {} may write there",
                log_dir.display(),
                layout.user
            )));
        }
    }
    steps.push(Step::run(&["systemctl", "daemon-reload"]));
    steps.push(Step::run(&["systemctl", "enable", "--now", UNIT_NAME]));
    if facts.active {
        steps.push(Step::run(&["systemctl", "restart", UNIT_NAME]));
    }
    steps
}

/// The steps that stop, disable and remove the unit; with `purge`, the data
/// directory goes too.
pub fn uninstall_steps(installed: bool, data_dir: &Path, purge: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if installed {
        steps.push(Step::run(&["systemctl", "disable", "--now", UNIT_NAME]));
        steps.push(Step::RemoveFile(unit_path()));
        steps.push(Step::run(&["systemctl", "daemon-reload"]));
    } else {
        steps.push(Step::Note(format!(
            "{} is not installed",
            unit_path().display()
        )));
    }
    if purge {
        if data_dir.exists() {
            steps.push(Step::RemoveDir(data_dir.to_owned()));
        }
    } else {
        steps.push(Step::Note(format!(
            "the data in {} is kept; `--purge` removes it",
            data_dir.display()
        )));
    }
    steps
}

/// The unit as systemd sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// The installed unit file, if any.
    pub installed: Option<String>,
    /// Properties from `systemctl show`, in [`STATUS_PROPERTIES`] order.
    pub properties: Vec<(String, String)>,
}

impl UnitState {
    /// Asks systemd.
    pub fn query() -> Result<Self, HostError> {
        let installed = std::fs::read_to_string(unit_path()).ok();
        let output = run(&[
            "systemctl".to_owned(),
            "show".to_owned(),
            UNIT_NAME.to_owned(),
            format!("--property={}", STATUS_PROPERTIES.join(",")),
        ])?;
        let mut properties: Vec<(String, String)> = output
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        properties.sort_by_key(|(key, _)| STATUS_PROPERTIES.iter().position(|known| known == key));
        Ok(Self {
            installed,
            properties,
        })
    }

    /// A property's value, or an empty string.
    pub fn get(&self, key: &str) -> &str {
        self.properties
            .iter()
            .find(|(name, _)| name == key)
            .map_or("", |(_, value)| value)
    }

    /// Whether the service runs.
    pub fn is_active(&self) -> bool {
        self.get("ActiveState") == "active"
    }
}

/// Runs a program and returns its standard output.
fn run(args: &[String]) -> Result<String, HostError> {
    let failed = |reason: String| HostError::Command {
        command: args.join(" "),
        reason,
    };
    let (program, rest) = args.split_first().expect("a command has a program");
    let output = Command::new(program)
        .args(rest)
        .output()
        .map_err(|err| failed(err.to_string()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(failed(if stderr.is_empty() {
            output.status.to_string()
        } else {
            stderr
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            user_exists: false,
            group_exists: false,
            log_dir_exists: false,
            active: false,
            nologin: "/usr/sbin/nologin".to_owned(),
        }
    }

    fn layout(log_dir: Option<&Path>) -> Layout<'_> {
        Layout {
            install_dir: Path::new("/opt/datascale"),
            data_dir: Path::new("/opt/datascale/data"),
            log_dir,
            user: "datascale",
            group: "datascale",
        }
    }

    fn shown(steps: &[Step]) -> Vec<String> {
        steps.iter().map(Step::to_string).collect()
    }

    #[test]
    fn a_first_install_creates_the_account_and_starts_the_service() {
        assert_eq!(
            shown(&install_steps("unit", &layout(None), &facts())),
            [
                "write /etc/systemd/system/datascale.service",
                "groupadd --system datascale",
                "useradd --system --gid datascale --home-dir /opt/datascale --no-create-home \
                 --shell /usr/sbin/nologin --comment DataScale datascale",
                "mkdir -p /opt/datascale/data",
                "chown -R datascale:datascale /opt/datascale/data",
                "systemctl daemon-reload",
                "systemctl enable --now datascale.service",
            ]
        );
    }

    #[test]
    fn an_upgrade_keeps_the_account_and_restarts() {
        let facts = HostFacts {
            user_exists: true,
            group_exists: true,
            active: true,
            ..facts()
        };
        let steps = shown(&install_steps("unit", &layout(None), &facts));
        assert!(
            !steps
                .iter()
                .any(|step| step.contains("useradd") || step.contains("groupadd"))
        );
        assert_eq!(steps.last().unwrap(), "systemctl restart datascale.service");
    }

    #[test]
    fn a_shared_log_directory_keeps_its_owner() {
        let facts = HostFacts {
            log_dir_exists: true,
            ..facts()
        };
        let steps = shown(&install_steps(
            "unit",
            &layout(Some(Path::new("/var/log"))),
            &facts,
        ));
        assert!(
            !steps.iter().any(|step| step.ends_with(" /var/log")),
            "{steps:?}"
        );
        assert!(steps.iter().any(|step| step.starts_with("note: /var/log")));
        let own = shown(&install_steps(
            "unit",
            &layout(Some(Path::new("/var/log/datascale"))),
            &HostFacts {
                log_dir_exists: false,
                ..facts
            },
        ));
        assert!(own.contains(&"chown -R datascale:datascale /var/log/datascale".to_owned()));
    }

    #[test]
    fn uninstall_keeps_data_unless_purged() {
        let data = Path::new("/nonexistent/datascale-data");
        let kept = shown(&uninstall_steps(true, data, false));
        assert_eq!(kept[0], "systemctl disable --now datascale.service");
        assert!(kept.last().unwrap().contains("is kept"));
        assert!(
            !shown(&uninstall_steps(false, data, true))
                .iter()
                .any(|s| s.starts_with("rm -r"))
        );
    }
}
