//! The `exec` source: runs a command on a schedule, or once as a stream
//! (respawned when it exits), and turns each line it prints into an event:
//! the line as its `message`, or with `decoding.codec = "json"` the fields
//! of the JSON object it holds. The `collector` source runs here too.
//!
//! Here too: the `exec` `conf`, with its defaults, its checks and its build.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use bytes::Bytes;
use datascale_core::{
    component::{BuildError, ComponentError, ComponentTask, MAX_BATCH_EVENTS, SourceContext},
    event::{Batch, Event, Origin},
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufRead, BufReader},
    process::{Child, Command},
    sync::mpsc,
};
use tracing::{info, warn};
use vrl::value::Value;

use super::{
    Decoding, DecodingCodec, SourceBuild, SourceType, default_max_line_bytes, default_true,
    lines::read_line,
};
use crate::{Problems, TypeConf};

/// `exec`: runs a command on a schedule, or once as a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// A string run by `sh -c`, or an argument vector run directly.
    pub command: ExecCommand,
    /// `scheduled`: run every `scheduled.exec_interval_secs`; `streaming`: run once and read as it prints.
    #[serde(default)]
    pub mode: ExecMode,
    /// Options of the scheduled mode.
    #[serde(default)]
    pub scheduled: ExecScheduled,
    /// Options of the streaming mode.
    #[serde(default)]
    pub streaming: ExecStreaming,
    /// Directory the command runs in; the worker's by default.
    #[serde(default)]
    pub working_directory: Option<PathBuf>,
    /// Variables added to the worker's environment for the command.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Turn lines printed on standard error into events too.
    #[serde(default = "default_true")]
    pub include_stderr: bool,
    /// A scheduled run still going after this many seconds is killed; 0 never kills.
    #[serde(default)]
    pub timeout_secs: u64,
    /// Longest line, in bytes; longer ones are truncated and logged.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How each line becomes an event: `bytes` (the line is the `message`)
    /// or `json` (the line is an object whose fields make the event).
    #[serde(default)]
    pub decoding: Decoding,
}

/// The command of an `exec` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a command string (run by sh -c) or an array of arguments"
)]
pub enum ExecCommand {
    /// Run by `sh -c`.
    Shell(String),
    /// Run directly: program, then arguments.
    Argv(Vec<String>),
}

/// When an `exec` source runs its command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// Every `exec_interval_secs`.
    #[default]
    Scheduled,
    /// Once, reading its output as it comes.
    Streaming,
}

/// `exec.scheduled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecScheduled {
    /// Seconds between the starts of two runs.
    #[serde(default = "default_exec_interval_secs")]
    pub exec_interval_secs: u64,
}

impl Default for ExecScheduled {
    fn default() -> Self {
        Self {
            exec_interval_secs: default_exec_interval_secs(),
        }
    }
}

/// `exec.streaming`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecStreaming {
    /// Start the command again when it exits.
    #[serde(default = "default_true")]
    pub respawn_on_exit: bool,
    /// Seconds to wait before starting it again.
    #[serde(default = "default_respawn_interval_secs")]
    pub respawn_interval_secs: u64,
}

impl Default for ExecStreaming {
    fn default() -> Self {
        Self {
            respawn_on_exit: true,
            respawn_interval_secs: default_respawn_interval_secs(),
        }
    }
}

fn default_exec_interval_secs() -> u64 {
    60
}

fn default_respawn_interval_secs() -> u64 {
    5
}

impl SourceType for ExecConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        Ok(Box::pin(run(self.clone(), build.context)))
    }
}

impl TypeConf for ExecConfig {
    fn check(&self, problems: &mut Problems) {
        let empty = match &self.command {
            ExecCommand::Shell(line) => line.trim().is_empty(),
            ExecCommand::Argv(argv) => argv.first().is_none_or(|program| program.is_empty()),
        };
        if empty {
            problems.add("command", "the command is empty");
        }
        if self.max_line_bytes == 0 {
            problems.add("max_line_bytes", "must be at least 1");
        }
        if self.scheduled.exec_interval_secs == 0 {
            problems.add("scheduled.exec_interval_secs", "must be at least 1");
        }
    }
}

/// Runs the command as its mode says until the source is stopped.
pub(super) async fn run(config: ExecConfig, context: SourceContext) -> Result<(), ComponentError> {
    match config.mode {
        ExecMode::Scheduled => {
            let mut ticker =
                tokio::time::interval(Duration::from_secs(config.scheduled.exec_interval_secs));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = context.shutdown.cancelled() => return Ok(()),
                }
                let timeout =
                    (config.timeout_secs > 0).then(|| Duration::from_secs(config.timeout_secs));
                if !run_once(&config, &context, timeout).await {
                    return Ok(());
                }
            }
        }
        ExecMode::Streaming => loop {
            if !run_once(&config, &context, None).await || !config.streaming.respawn_on_exit {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(config.streaming.respawn_interval_secs)) => {}
                () = context.shutdown.cancelled() => return Ok(()),
            }
        },
    }
}

/// Runs the command once, sending its lines on. Returns false when the
/// source must stop (stopped, or nobody takes its output any more).
async fn run_once(config: &ExecConfig, context: &SourceContext, timeout: Option<Duration>) -> bool {
    let shown = shown_command(&config.command);
    let mut child = match command(config, context.origin.host()).spawn() {
        Ok(child) => child,
        Err(err) => {
            warn!(source = %context.origin.source(), command = %shown, error = %err, "Cannot start the command.");
            return !context.shutdown.is_cancelled();
        }
    };
    let (lines, mut received) = mpsc::channel::<(Bytes, &'static str)>(MAX_BATCH_EVENTS);
    let stdout = child.stdout.take().map(|out| {
        tokio::spawn(forward_lines(
            BufReader::new(out),
            "stdout",
            config.max_line_bytes,
            lines.clone(),
        ))
    });
    let stderr = match config.include_stderr {
        true => child.stderr.take().map(|err| {
            tokio::spawn(forward_lines(
                BufReader::new(err),
                "stderr",
                config.max_line_bytes,
                lines.clone(),
            ))
        }),
        false => None,
    };
    drop(lines);
    let deadline = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut keep_going = true;
    let mut events = Vec::new();
    loop {
        tokio::select! {
            line = received.recv() => match line {
                Some((text, stream)) => {
                    events.push(line_event(config.decoding.codec, text, stream, context));
                    let batch_complete = events.len() >= MAX_BATCH_EVENTS || received.is_empty();
                    if batch_complete
                        && context.output.send(Batch::unacknowledged(std::mem::take(&mut events))).await.is_err()
                    {
                        keep_going = false;
                        break;
                    }
                }
                None => break,
            },
            () = &mut deadline => {
                warn!(source = %context.origin.source(), command = %shown, timeout_secs = config.timeout_secs, "The command ran past its timeout; killed it.");
                break;
            }
            () = context.shutdown.cancelled() => {
                keep_going = false;
                break;
            }
        }
    }
    if !events.is_empty()
        && context
            .output
            .send(Batch::unacknowledged(events))
            .await
            .is_err()
    {
        keep_going = false;
    }
    finish(child, &shown, context).await;
    for reader in [stdout, stderr].into_iter().flatten() {
        reader.abort();
    }
    keep_going && !context.shutdown.is_cancelled()
}

/// The event of one line: its `message` and `stream`; with a JSON codec the
/// fields of the object on it (a line that holds none is kept as a
/// `message`, and counted as an error).
fn line_event(
    codec: DecodingCodec,
    text: Bytes,
    stream: &'static str,
    context: &SourceContext,
) -> Event {
    let origin: &Origin = &context.origin;
    if codec != DecodingCodec::Bytes {
        let decoded = serde_json::from_slice(&text)
            .map_err(|_| "not JSON")
            .and_then(|value| Event::from_json(value, origin));
        match decoded {
            Ok(event) => return event,
            Err(kind) => {
                context.metrics.error(1);
                warn!(source = %origin.source(), stream, problem = kind, "A line is not a JSON object; kept as its message.");
            }
        }
    }
    let mut event = Event::from_message(text, origin);
    event.insert("stream", Value::from(stream));
    event
}

/// Reaps the command, killing it if it still runs, and logs how it ended.
async fn finish(mut child: Child, shown: &str, context: &SourceContext) {
    if let Ok(None) = child.try_wait() {
        let _ = child.start_kill();
    }
    match child.wait().await {
        Ok(status) if status.success() => {}
        Ok(status) => {
            context.metrics.error(1);
            info!(source = %context.origin.source(), command = %shown, status = %status, "The command exited with an error.")
        }
        Err(err) => {
            warn!(source = %context.origin.source(), command = %shown, error = %err, "Cannot wait for the command.")
        }
    }
}

/// Sends each line of `reader` with its stream's name.
async fn forward_lines<R: AsyncBufRead + Unpin>(
    mut reader: R,
    stream: &'static str,
    max: usize,
    lines: mpsc::Sender<(Bytes, &'static str)>,
) {
    let mut line = Vec::new();
    while let Ok(Some(cut)) = read_line(&mut reader, &mut line, max).await {
        if cut {
            warn!(
                stream,
                max_line_bytes = max,
                "Truncated a line longer than max_line_bytes."
            );
        }
        if lines
            .send((Bytes::copy_from_slice(&line), stream))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The command to run: `sh -c` for a string, the program itself for an array;
/// `HOSTNAME` is set to the host's name when neither the worker's
/// environment nor the source's sets it.
fn command(config: &ExecConfig, host: &str) -> Command {
    let mut command = match &config.command {
        ExecCommand::Shell(line) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(line);
            command
        }
        ExecCommand::Argv(argv) => {
            let mut command = Command::new(&argv[0]);
            command.args(&argv[1..]);
            command
        }
    };
    if std::env::var_os("HOSTNAME").is_none() && !config.environment.contains_key("HOSTNAME") {
        command.env("HOSTNAME", host);
    }
    command
        .envs(&config.environment)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if config.include_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    if let Some(dir) = &config.working_directory {
        command.current_dir(dir);
    }
    command
}

fn shown_command(command: &ExecCommand) -> String {
    match command {
        ExecCommand::Shell(line) => line.clone(),
        ExecCommand::Argv(argv) => argv.join(" "),
    }
}
