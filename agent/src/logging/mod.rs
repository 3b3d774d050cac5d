//! Logging with `tracing`: readable lines (coloured on a terminal) or JSON,
//! to standard output or to a file rotated daily, filtered by `log.level`,
//! with repeated lines limited (`repeats`).

mod repeats;

use std::{io::IsTerminal, time::Duration};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

pub use repeats::RepeatSummaries;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log file's directory could not be created.
    #[error("cannot create the log directory {path} (log.file): {source}")]
    Directory {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `log.file` names no file.
    #[error(
        "log.file = `{0}` names a directory, not a file; give a file such as logs/datascale.log"
    )]
    NotAFile(std::path::PathBuf),
}

/// Which standard stream logs go to when `log.file` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: `datascale start`.
    Stdout,
    /// Standard error: `datascale run`, whose console sink owns standard output.
    Stderr,
}

/// The installed log: keep it alive until exit. Dropping it writes the
/// summaries that are due and flushes the file writer.
pub struct Log {
    /// Writes the summaries of suppressed repeats; run
    /// [`RepeatSummaries::write_every_interval`] on the process's runtime.
    pub repeats: RepeatSummaries,
    _file_writer: Option<WorkerGuard>,
}

impl Drop for Log {
    fn drop(&mut self) {
        self.repeats.write_due();
    }
}

/// Installs the global subscriber.
pub fn init(config: &LogConfig, stream: Stream) -> Result<Log, LoggingError> {
    let filter = EnvFilter::builder().parse_lossy(&config.level);
    let interval = Duration::from_secs(config.repeat_interval_secs);
    let limit = match interval.is_zero() {
        true => 0,
        false => config.repeat_limit,
    };
    let (limit, repeats) = repeats::RepeatLimit::new(limit, interval);
    let registry = tracing_subscriber::registry().with(filter).with(limit);
    let format = tracing_subscriber::fmt::layer();
    if config.file.as_os_str().is_empty() {
        let ansi = match stream {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        };
        let writer = move || -> Box<dyn std::io::Write> {
            match stream {
                Stream::Stdout => Box::new(std::io::stdout()),
                Stream::Stderr => Box::new(std::io::stderr()),
            }
        };
        let format = format.with_writer(writer);
        match config.format {
            LogFormat::Text => registry.with(format.with_ansi(ansi)).init(),
            LogFormat::Json => registry.with(format.json()).init(),
        }
        return Ok(Log {
            repeats,
            _file_writer: None,
        });
    }
    let file = &config.file;
    let name = file
        .file_name()
        .ok_or_else(|| LoggingError::NotAFile(file.clone()))?;
    let dir = file.parent().unwrap_or_else(|| std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| LoggingError::Directory {
        path: dir.to_owned(),
        source,
    })?;
    let (writer, guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::daily(dir, name));
    let format = format.with_writer(writer).with_ansi(false);
    match config.format {
        LogFormat::Text => registry.with(format).init(),
        LogFormat::Json => registry.with(format.json()).init(),
    }
    eprintln!("Logging to {} (rotated daily).", file.display());
    Ok(Log {
        repeats,
        _file_writer: Some(guard),
    })
}
