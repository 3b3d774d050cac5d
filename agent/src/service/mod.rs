//! The systemd unit of DataScale: what goes into it (from the configuration
//! and this install), its rendering from the tera template, and the host
//! steps that install, remove and inspect it (`systemd`).

pub mod systemd;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::LoadedConfig;

/// Where the template lies in an install directory (and, under
/// `packaging/`, in the repository).
pub const TEMPLATE_PATH: &str = "init/systemd/datascale.service.template";

/// The template this binary was built with, used when the install has none.
pub const EMBEDDED_TEMPLATE: &str =
    include_str!("../../../packaging/init/systemd/datascale.service.template");

/// The name of the unit.
pub const UNIT_NAME: &str = "datascale.service";

/// Seconds systemd waits beyond the graceful shutdown before it kills.
const STOP_MARGIN_SECS: u64 = 5;

/// What went wrong while preparing or rendering the unit.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The template file exists but cannot be read.
    #[error("cannot read the unit template {path}: {source}")]
    ReadTemplate {
        /// The template file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The template does not render.
    #[error("cannot render the unit template ({origin}): {message}")]
    Render {
        /// The template file, or `built-in`.
        origin: String,
        /// Tera's explanation.
        message: String,
    },
    /// A path has no UTF-8 form, which systemd needs.
    #[error("the path {0} is not valid UTF-8; systemd units need UTF-8 paths")]
    NotUtf8(PathBuf),
}

/// The values a unit is rendered from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitParams {
    /// The absolute path of the binary.
    pub binary: String,
    /// The install directory (`WorkingDirectory=`).
    pub install_dir: String,
    /// `User=`.
    pub user: String,
    /// `Group=`.
    pub group: String,
    /// The `ExecStart=` command line.
    pub start: String,
    /// The `ExecStartPre=`/`ExecReload=` command line: `datascale config check`.
    pub config_check: String,
    /// `CPUQuota=` in percent of one core; `None` for no limit.
    pub cpu_quota: Option<u32>,
    /// `MemoryMax=` in MB; `None` for no limit.
    pub memory_max_mb: Option<u64>,
    /// `ReadWritePaths=`: the data directory and the log file's directory.
    pub read_write_paths: Vec<String>,
    /// `TimeoutStopSec=`: the graceful shutdown and a margin.
    pub stop_timeout_secs: u64,
}

impl UnitParams {
    /// The unit of `binary` with this configuration, run as `user:group`;
    /// `config_file` is passed on as `--config` when given.
    pub fn new(
        loaded: &LoadedConfig,
        binary: &Path,
        config_file: Option<&Path>,
        user: &str,
        group: &str,
    ) -> Result<Self, ServiceError> {
        let binary = utf8(binary)?;
        let mut options = String::new();
        if let Some(file) = config_file {
            options = format!(" --config {}", exec_word(utf8(file)?));
        }
        let command = |args: &str| format!("{}{options} {args}", exec_word(binary));
        let config = &loaded.config;
        let mut read_write_paths = vec![exec_word(utf8(&config.service.data_dir)?)];
        if let Some(dir) = log_dir(loaded) {
            read_write_paths.push(exec_word(utf8(dir)?));
        }
        Ok(Self {
            binary: binary.to_owned(),
            install_dir: utf8(&loaded.install_dir)?.replace('%', "%%"),
            user: user.to_owned(),
            group: group.to_owned(),
            start: command("start"),
            config_check: command("config check"),
            cpu_quota: Some(config.resources.cpu_quota).filter(|&quota| quota > 0),
            memory_max_mb: Some(config.resources.memory_limit).filter(|&limit| limit > 0),
            read_write_paths,
            stop_timeout_secs: config.service.shutdown_timeout_secs + STOP_MARGIN_SECS,
        })
    }
}

/// The directory of the log file, when logs go to a file.
pub fn log_dir(loaded: &LoadedConfig) -> Option<&Path> {
    let file = &loaded.config.log.file;
    (!file.as_os_str().is_empty())
        .then(|| file.parent())
        .flatten()
}

/// The template of this install (`<install_dir>/init/systemd/…`), or the
/// built-in one when the install has none. Returns its text and origin.
pub fn template(install_dir: &Path) -> Result<(String, String), ServiceError> {
    let path = install_dir.join(TEMPLATE_PATH);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path.display().to_string())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Ok((EMBEDDED_TEMPLATE.to_owned(), "built-in".to_owned()))
        }
        Err(source) => Err(ServiceError::ReadTemplate { path, source }),
    }
}

/// Renders the unit: `template` (from `origin`, for messages) with `params`.
pub fn render(template: &str, origin: &str, params: &UnitParams) -> Result<String, ServiceError> {
    let failed = |err: tera::Error| ServiceError::Render {
        origin: origin.to_owned(),
        message: err.to_string(),
    };
    let context = tera::Context::from_serialize(params).map_err(failed)?;
    let mut unit = tera::Tera::one_off(template, &context, false).map_err(failed)?;
    if !unit.ends_with('\n') {
        unit.push('\n');
    }
    Ok(unit)
}

fn utf8(path: &Path) -> Result<&str, ServiceError> {
    path.to_str()
        .ok_or_else(|| ServiceError::NotUtf8(path.to_owned()))
}

/// One word of a systemd command line or path list: specifiers (`%`) and
/// variables (`$`) escaped, quoted when it holds blanks or quotes.
fn exec_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_as_they_are() {
        assert_eq!(
            exec_word("/opt/datascale/bin/datascale"),
            "/opt/datascale/bin/datascale"
        );
    }

    #[test]
    fn blanks_quotes_and_specifiers_are_escaped() {
        assert_eq!(exec_word("/opt/my data"), "\"/opt/my data\"");
        assert_eq!(exec_word("/opt/100%"), "/opt/100%%");
        assert_eq!(exec_word("/opt/$x"), "/opt/$$x");
        assert_eq!(exec_word("/a\"b c"), "\"/a\\\"b c\"");
    }
}
