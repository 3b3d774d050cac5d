//! The command line: argument parsing with clap and one function per
//! subcommand. Configuration-loading errors exit with 78 (EX_CONFIG) so that
//! a service manager can tell a broken configuration from a crash.

mod client;
mod collector_cmd;
mod config_cmd;
mod dataflow_cmd;
mod enrollment_token_cmd;
mod events_cmd;
mod group_cmd;
mod overview;
mod run;
mod service_cmd;
mod start;
mod status;
mod tap_cmd;
mod worker_cmd;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

use crate::config::{self, LoadedConfig, Overrides};

/// Exit code for an invalid configuration (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

const ABOUT: &str = "DataScale: a data-collection agent and the control plane of its fleet.";

const LONG_ABOUT: &str = "\
DataScale: a data-collection agent and the control plane of its fleet.

One binary runs as a manager (REST API, Web UI), as a worker (runs the
dataflows of its groups), or as both in one process (standalone, the default).

Configuration comes from, lowest precedence first: built-in defaults, the
configuration file, DATASCALE_* environment variables (DATASCALE_ + the key
path in upper case with dots turned into underscores, e.g.
DATASCALE_SERVICE_MODE for service.mode), and --set flags.
`datascale config keys` lists every key with its variable and default.";

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 failure, 2 wrong usage, 78 invalid configuration.
The commands that ask a node (status, overview, group, dataflow, worker,
enrollment-token, collector, events, tap) also exit 3 when the server cannot
be reached, 4 when it has no such object, and 5 on a conflict. They find the
node and its token in the local configuration, or take --url and --token
(DATASCALE_URL, DATASCALE_TOKEN).";

/// The `datascale` command line.
#[derive(Debug, Parser)]
#[command(name = "datascale", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// Configuration file [default: config/datascale.toml in the install
    /// directory, the parent of the binary's bin/ (or the current directory
    /// when the binary is not in a bin/ directory)]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Set a configuration key for this run, over the file and the
    /// environment; repeatable. Example: --set service.address=127.0.0.1:7881
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run DataScale in the foreground until SIGTERM or SIGINT, then shut
    /// down gracefully and exit 0.
    Start(start::StartArgs),
    /// Show the state of the DataScale node on this host, from its API.
    Status(status::StatusArgs),
    /// Show the cluster at a glance, from the manager: managers, workers by
    /// state, groups, dataflows, and components by kind and type.
    Overview(client::ClientArgs),
    /// Check the configuration, or list the keys it may hold.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Run dataflow files in the foreground with no manager, until their
    /// sources end or SIGTERM/SIGINT; for trying a dataflow out, scripts and
    /// benchmarks. Logs go to standard error.
    Run(run::RunArgs),
    /// Check dataflow documents, and manage the dataflows of the manager's
    /// groups and their revisions.
    #[command(subcommand)]
    Dataflow(dataflow_cmd::DataflowCommand),
    /// Manage the groups of workers on the manager.
    #[command(subcommand)]
    Group(group_cmd::GroupCommand),
    /// See the workers the manager knows, assign them groups, revoke and
    /// delete them.
    #[command(subcommand)]
    Worker(worker_cmd::WorkerCommand),
    /// Make, list and revoke the enrollment tokens workers enroll with,
    /// each limited to groups, with an optional expiry and number of uses.
    #[command(subcommand)]
    EnrollmentToken(enrollment_token_cmd::EnrollmentTokenCommand),
    /// Install, list, show and remove the custom collectors on the manager.
    #[command(subcommand)]
    Collector(collector_cmd::CollectorCommand),
    /// Search and list the manager's event sets.
    #[command(subcommand)]
    Events(events_cmd::EventsCommand),
    /// Watch the events of one component of a dataflow live, from every
    /// worker that runs it, through the manager; one JSON object a line.
    Tap(tap_cmd::TapArgs),
    /// Render, install, remove and inspect the systemd unit of this install.
    #[command(subcommand)]
    Service(service_cmd::ServiceCommand),
    /// Print the version of this binary.
    Version,
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Start(args) => start::run(&cli.global, args),
        Command::Status(args) => status::run(&cli.global, args),
        Command::Overview(client) => overview::run(&cli.global, client),
        Command::Config(command) => config_cmd::run(&cli.global, command),
        Command::Dataflow(command) => dataflow_cmd::run(&cli.global, command),
        Command::Group(command) => group_cmd::run(&cli.global, command),
        Command::Worker(command) => worker_cmd::run(&cli.global, command),
        Command::EnrollmentToken(command) => enrollment_token_cmd::run(&cli.global, command),
        Command::Collector(command) => collector_cmd::run(&cli.global, command),
        Command::Events(command) => events_cmd::run(&cli.global, command),
        Command::Tap(args) => tap_cmd::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Service(command) => service_cmd::run(&cli.global, command),
        Command::Version => {
            emit(&format!("datascale {}\n", datascale_http::VERSION));
            ExitCode::SUCCESS
        }
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE, such as service.mode=worker"))?;
    Ok((key.trim().to_owned(), value.to_owned()))
}

impl GlobalArgs {
    /// Loads the configuration with this process's environment and these
    /// flags, plus `extra` flags of the subcommand (key, value, flag as written).
    fn load_config(
        &self,
        extra: Vec<(String, String, String)>,
    ) -> Result<LoadedConfig, config::ConfigError> {
        let mut flags: Vec<_> = self
            .set
            .iter()
            .map(|(key, value)| (key.clone(), value.clone(), format!("--set {key}={value}")))
            .collect();
        flags.extend(extra);
        config::load(&Overrides {
            install_dir: install_dir(),
            config_path: self.config.clone(),
            env: std::env::vars_os()
                .filter_map(|(name, value)| {
                    Some((
                        name.into_string().ok()?,
                        value.to_string_lossy().into_owned(),
                    ))
                })
                .collect(),
            flags,
        })
    }
}

/// The install directory: the parent of the binary's `bin/`, or the current
/// directory when the binary is elsewhere (as under `cargo run`).
fn install_dir() -> PathBuf {
    let current = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let Ok(exe) = std::env::current_exe() else {
        return current;
    };
    match exe.parent() {
        Some(bin) if bin.file_name().is_some_and(|name| name == "bin") => {
            bin.parent().map(PathBuf::from).unwrap_or(current)
        }
        _ => current,
    }
}

/// Writes command output to standard output. A reader that went away (as
/// `datascale config keys | head` does) ends the command quietly.
fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {err}");
        std::process::exit(1);
    }
}

/// The single-threaded async runtime of `datascale run`: its components
/// share one thread, which makes them allocate from one malloc arena
/// instead of one arena for each thread that ran them.
fn single_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// The multi-threaded async runtime of the long-running commands.
fn async_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("datascale")
        .build()
        .expect("the async runtime starts")
}

/// Prints a configuration error and returns the exit code for it.
fn config_failure(err: &config::ConfigError) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(EXIT_CONFIG)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn set_takes_key_equals_value() {
        assert_eq!(parse_key_value("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
        assert!(parse_key_value("a.b").unwrap_err().contains("KEY=VALUE"));
    }
}
