//! The `demo` source: sample lines of a chosen format, at an interval or as
//! fast as the dataflow takes them.
//!
//! Here too: the `demo` `conf`, with its defaults, its checks and its build.

use std::time::Duration;

use datascale_core::{
    component::{BuildError, ComponentError, ComponentTask, MAX_BATCH_EVENTS, SourceContext},
    event::{Batch, Event},
};
use serde::{Deserialize, Serialize};

use super::{SourceBuild, SourceType};
use crate::{MAX_WAIT_SECS, Problems, TypeConf};

/// `demo`: generates sample events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// The kind of lines to generate.
    #[serde(default)]
    pub format: DemoFormat,
    /// How many events to generate; unlimited when absent.
    #[serde(default)]
    pub count: Option<u64>,
    /// Seconds between two events; 0 generates as fast as the sinks take them.
    #[serde(default = "default_demo_interval_secs")]
    pub interval_secs: f64,
    /// The lines `shuffle` picks from.
    #[serde(default)]
    pub lines: Vec<String>,
}

/// The lines a `demo` source generates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemoFormat {
    /// JSON objects.
    #[default]
    Json,
    /// RFC 5424 syslog lines.
    Syslog,
    /// RFC 3164 syslog lines.
    BsdSyslog,
    /// Apache common log lines.
    ApacheCommon,
    /// Apache error log lines.
    ApacheError,
    /// Lines picked from `lines`.
    Shuffle,
}

fn default_demo_interval_secs() -> f64 {
    1.0
}

impl SourceType for DemoConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        Ok(Box::pin(run(self.clone(), build.context)))
    }
}

impl TypeConf for DemoConfig {
    fn check(&self, problems: &mut Problems) {
        if self.format == DemoFormat::Shuffle && self.lines.is_empty() {
            problems.add(
                "lines",
                "the `shuffle` format picks from `lines`: give at least one",
            );
        }
        if !(0.0..=MAX_WAIT_SECS).contains(&self.interval_secs) {
            problems.add("interval_secs", "must be from 0 to 31536000 (a year)");
        }
    }
}

/// Generates events until `count` is reached or the source is stopped.
async fn run(config: DemoConfig, context: SourceContext) -> Result<(), ComponentError> {
    let interval = Duration::from_secs_f64(config.interval_secs);
    let batch_size = if interval.is_zero() {
        MAX_BATCH_EVENTS as u64
    } else {
        1
    };
    let mut made: u64 = 0;
    let mut ticker = (!interval.is_zero()).then(|| tokio::time::interval(interval));
    loop {
        let left = config.count.map_or(batch_size, |count| {
            count.saturating_sub(made).min(batch_size)
        });
        if left == 0 {
            return Ok(());
        }
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = ticker.tick() => {}
                () = context.shutdown.cancelled() => return Ok(()),
            }
        } else if context.shutdown.is_cancelled() {
            return Ok(());
        }
        let events = (made..made + left)
            .map(|n| Event::from_message(line(&config, n), &context.origin))
            .collect();
        made += left;
        if context
            .output
            .send(Batch::unacknowledged(events))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}

/// The `n`th line of the format.
fn line(config: &DemoConfig, n: u64) -> String {
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    const PATHS: [&str; 4] = ["/", "/login", "/api/v1/items", "/static/app.js"];
    const STATUS: [u16; 5] = [200, 200, 201, 404, 500];
    let method = METHODS[(n % 4) as usize];
    let path = PATHS[(n / 4 % 4) as usize];
    let status = STATUS[(n % 5) as usize];
    let host = format!("10.0.{}.{}", n / 256 % 256, n % 256);
    let now = chrono::Utc::now();
    match config.format {
        DemoFormat::Json => format!(
            r#"{{"id":{n},"method":"{method}","path":"{path}","status":{status},"bytes":{},"client":"{host}"}}"#,
            512 + n % 4096
        ),
        DemoFormat::Syslog => format!(
            "<{}>1 {} demo.example datascale {} ID{n} - {method} {path} answered {status}",
            8 + n % 8,
            now.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            1000 + n % 100
        ),
        DemoFormat::BsdSyslog => format!(
            "<{}>{} demo.example datascale[{}]: {method} {path} answered {status}",
            8 + n % 8,
            now.format("%b %e %H:%M:%S"),
            1000 + n % 100
        ),
        DemoFormat::ApacheCommon => format!(
            r#"{host} - - [{}] "{method} {path} HTTP/1.1" {status} {}"#,
            now.format("%d/%b/%Y:%H:%M:%S %z"),
            512 + n % 4096
        ),
        DemoFormat::ApacheError => format!(
            "[{}] [core:error] [pid {}] [client {host}] File does not exist: /var/www{path}",
            now.format("%a %b %d %H:%M:%S%.6f %Y"),
            1000 + n % 100
        ),
        DemoFormat::Shuffle => config.lines[(n % config.lines.len() as u64) as usize].clone(),
    }
}
