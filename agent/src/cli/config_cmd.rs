//! `datascale config check` and `datascale config keys`.

use std::{fmt::Write, process::ExitCode};

use clap::Subcommand;

use super::{GlobalArgs, config_failure, emit};
use crate::config;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, DATASCALE_* variables and --set
    /// flags) and print every effective value with where it came from;
    /// secrets are redacted. Exits 78 naming each problem when invalid.
    Check,
    /// List every configuration key with its environment variable and default.
    Keys,
}

pub fn run(global: &GlobalArgs, command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Check => check(global),
        ConfigCommand::Keys => {
            let rows: Vec<[String; 3]> = config::known_keys()
                .into_iter()
                .map(|(key, env, default)| [key, env, default])
                .collect();
            emit(&table(["KEY", "VARIABLE", "DEFAULT"], &rows));
            ExitCode::SUCCESS
        }
    }
}

fn check(global: &GlobalArgs) -> ExitCode {
    let loaded = match global.load_config(Vec::new()) {
        Ok(loaded) => loaded,
        Err(err) => return config_failure(&err),
    };
    let mut out = String::new();
    match &loaded.file {
        Some(file) => writeln!(out, "Configuration file: {}", file.display()),
        None => writeln!(
            out,
            "Configuration file: none (no file at {}; built-in defaults apply)",
            loaded
                .install_dir
                .join("config")
                .join("datascale.toml")
                .display()
        ),
    }
    .expect("writing to a string succeeds");
    let rows: Vec<[String; 3]> = loaded
        .effective_values()
        .into_iter()
        .map(|(key, value, origin)| [key, value, origin.to_string()])
        .collect();
    out.push_str(&format!(
        "Install directory:  {}\n\n",
        loaded.install_dir.display()
    ));
    out.push_str(&table(["KEY", "VALUE", "ORIGIN"], &rows));
    out.push_str("\nThe configuration is valid.\n");
    emit(&out);
    ExitCode::SUCCESS
}

/// Rows under a header in aligned columns.
pub(super) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
