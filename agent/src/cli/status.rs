//! `datascale status`: asks the local node's API what it is doing.

use std::{fmt::Write, net::SocketAddr, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::{GlobalArgs, config_failure, emit};
use crate::{
    api::Status,
    auth,
    config::{Config, Mode},
};

/// Options of `datascale status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// API URL of the node [default: service.address of the local configuration]
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Token to present [default: the local configuration's, or the one
    /// stored in data_dir]
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Lines for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

pub fn run(global: &GlobalArgs, args: StatusArgs) -> ExitCode {
    let loaded = match global.load_config(Vec::new()) {
        Ok(loaded) => loaded,
        Err(err) => return config_failure(&err),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    match runtime.block_on(show(&loaded.config, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn show(config: &Config, args: StatusArgs) -> anyhow::Result<()> {
    let base = args
        .url
        .unwrap_or_else(|| local_url(config.service.address));
    let token = match args.token {
        Some(token) => token,
        None => local_token(config)?,
    };
    let url = format!("{}/api/v1/status", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let response = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the DataScale API at {base}; is `datascale start` running?")
        })?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        bail!("{base} refused the token (401); pass the node's token with --token");
    }
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let text = response.text().await?;
    if args.output == Output::Json {
        emit(&format!("{text}\n"));
        return Ok(());
    }
    let status: Status =
        serde_json::from_str(&text).with_context(|| format!("{url} sent an unexpected answer"))?;
    let mut out = format!(
        "DataScale {} running as {} in cluster {}\n  pid {}, up {}\n  API     {}\n",
        status.version,
        status.mode,
        status.cluster_name,
        status.pid,
        uptime(status.uptime_secs),
        status.api_address
    );
    if let Some(ui) = status.ui_address {
        writeln!(out, "  Web UI  {ui}")?;
    }
    if let Some(worker) = status.worker {
        writeln!(out, "  groups  {}", worker.groups.join(", "))?;
        if !worker.manager_address.is_empty() {
            writeln!(out, "  manager {}", worker.manager_address.join(", "))?;
        }
    }
    emit(&out);
    Ok(())
}

/// The URL at which the local node answers: a wildcard listen address is
/// reached on loopback.
fn local_url(address: SocketAddr) -> String {
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        ip if ip.is_ipv6() => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", address.port())
}

/// The token of the local node: on a manager the admin token (configured or
/// stored in data_dir), on a worker its worker token.
fn local_token(config: &Config) -> anyhow::Result<String> {
    let service = &config.service;
    if service.mode == Mode::Worker {
        return Ok(service.worker.token.clone());
    }
    if !service.manager.admin_token.is_empty() {
        return Ok(service.manager.admin_token.clone());
    }
    let path = auth::token_path(&service.data_dir, "admin");
    auth::read_token("admin", &path)
        .context("run as the service's user, or pass --token")?
        .with_context(|| {
            format!(
                "no admin token in {}; has this node started once? Or pass --token",
                path.display()
            )
        })
}

/// `3725` → `1h 2m 5s`.
fn uptime(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m {seconds}s"),
        _ => format!("{days}d {hours}h {minutes}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        assert_eq!(
            local_url("0.0.0.0:7881".parse().unwrap()),
            "http://127.0.0.1:7881"
        );
        assert_eq!(local_url("[::]:7881".parse().unwrap()), "http://[::1]:7881");
        assert_eq!(
            local_url("10.1.2.3:80".parse().unwrap()),
            "http://10.1.2.3:80"
        );
    }

    #[test]
    fn uptime_reads_well() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(3725), "1h 2m 5s");
        assert_eq!(uptime(90_061), "1d 1h 1m");
    }
}
