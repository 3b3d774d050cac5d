//! The `host_metrics` source: every `scrape_interval_secs`, measures the
//! host (CPU, memory, disks, network, load) and sends one batch of metric
//! events, each with `name`, `value`, `kind` (`gauge` or `counter`) and
//! `tags`, named as Vector's `host_metrics` names them.
//!
//! Here too: the `host_metrics` `conf`, with its defaults, its checks and its build.

use std::time::Duration;

use datascale_core::{
    component::{self, BuildError, ComponentError, ComponentTask, SourceContext},
    event::{Batch, Event, Origin},
};
use serde::{Deserialize, Serialize};
use sysinfo::{Disks, Networks, System};
use vrl::value::{ObjectMap, Value};

use super::{SourceBuild, SourceType, check_scrape_interval, default_scrape_interval_secs};
use crate::{Problems, TypeConf};

/// `host_metrics`: measures the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsConfig {
    /// Seconds between two measurements.
    #[serde(default = "default_scrape_interval_secs")]
    pub scrape_interval_secs: u64,
    /// What to measure; all of them by default.
    #[serde(default = "all_host_collectors")]
    pub collectors: Vec<HostCollector>,
}

/// A family of host metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCollector {
    /// CPU time per mode.
    Cpu,
    /// Memory and swap.
    Memory,
    /// Disk space per mount.
    Disk,
    /// Bytes and packets per interface.
    Network,
    /// Load averages.
    Load,
}

fn all_host_collectors() -> Vec<HostCollector> {
    vec![
        HostCollector::Cpu,
        HostCollector::Memory,
        HostCollector::Disk,
        HostCollector::Network,
        HostCollector::Load,
    ]
}

impl SourceType for HostMetricsConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        Ok(Box::pin(run(self.clone(), build.context)))
    }
}

impl TypeConf for HostMetricsConfig {
    fn check(&self, problems: &mut Problems) {
        check_scrape_interval(self.scrape_interval_secs, problems);
    }
}

/// Whether a metric is a level or a running total.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Gauge,
    Counter,
}

/// The host's measuring instruments, kept between scrapes so that CPU usage
/// is measured over the interval.
struct Probe {
    system: System,
    disks: Disks,
    networks: Networks,
}

/// Measures every interval until the source is stopped.
async fn run(config: HostMetricsConfig, context: SourceContext) -> Result<(), ComponentError> {
    let mut probe = Probe {
        system: System::new(),
        disks: Disks::new(),
        networks: Networks::new(),
    };
    scrape_every(config.scrape_interval_secs, &context, |origin| {
        probe.scrape(&config.collectors, origin)
    })
    .await
}

/// Sends one batch of `scrape`'s events every `interval_secs` until the
/// source is stopped.
pub(super) async fn scrape_every(
    interval_secs: u64,
    context: &SourceContext,
    mut scrape: impl FnMut(&Origin) -> Vec<Event>,
) -> Result<(), ComponentError> {
    let mut ticker = tokio::time::interval(Duration::from_secs(interval_secs));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = context.shutdown.cancelled() => return Ok(()),
        }
        let events = component::blocking(|| scrape(&context.origin));
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

impl Probe {
    /// One measurement of every selected collector.
    fn scrape(&mut self, collectors: &[HostCollector], origin: &Origin) -> Vec<Event> {
        let mut metrics = Metrics {
            origin,
            events: Vec::new(),
        };
        for collector in collectors {
            match collector {
                HostCollector::Cpu => self.cpu(&mut metrics),
                HostCollector::Memory => self.memory(&mut metrics),
                HostCollector::Disk => self.disk(&mut metrics),
                HostCollector::Network => self.network(&mut metrics),
                HostCollector::Load => {
                    let load = System::load_average();
                    for (name, value) in [
                        ("load1", load.one),
                        ("load5", load.five),
                        ("load15", load.fifteen),
                    ] {
                        metrics.add(name, value, Kind::Gauge, &[]);
                    }
                }
            }
        }
        metrics.events
    }

    fn cpu(&mut self, metrics: &mut Metrics<'_>) {
        self.system.refresh_cpu_usage();
        for cpu in self.system.cpus() {
            metrics.add(
                "cpu_usage_percent",
                f64::from(cpu.cpu_usage()),
                Kind::Gauge,
                &[("cpu", cpu.name())],
            );
        }
    }

    fn memory(&mut self, metrics: &mut Metrics<'_>) {
        self.system.refresh_memory();
        let system = &self.system;
        for (name, bytes) in [
            ("memory_total_bytes", system.total_memory()),
            ("memory_used_bytes", system.used_memory()),
            ("memory_free_bytes", system.free_memory()),
            ("memory_available_bytes", system.available_memory()),
            ("memory_swap_total_bytes", system.total_swap()),
            ("memory_swap_used_bytes", system.used_swap()),
            ("memory_swap_free_bytes", system.free_swap()),
        ] {
            metrics.add(name, bytes as f64, Kind::Gauge, &[]);
        }
    }

    fn disk(&mut self, metrics: &mut Metrics<'_>) {
        self.disks.refresh(true);
        for disk in self.disks.list() {
            let device = disk.name().to_string_lossy();
            let filesystem = disk.file_system().to_string_lossy();
            let mountpoint = disk.mount_point().to_string_lossy();
            let tags = [
                ("device", device.as_ref()),
                ("filesystem", filesystem.as_ref()),
                ("mountpoint", mountpoint.as_ref()),
            ];
            let (total, free) = (disk.total_space(), disk.available_space());
            for (name, bytes) in [
                ("filesystem_total_bytes", total),
                ("filesystem_free_bytes", free),
                ("filesystem_used_bytes", total.saturating_sub(free)),
            ] {
                metrics.add(name, bytes as f64, Kind::Gauge, &tags);
            }
        }
    }

    fn network(&mut self, metrics: &mut Metrics<'_>) {
        self.networks.refresh(true);
        for (device, data) in &self.networks {
            for (name, total) in [
                ("network_receive_bytes_total", data.total_received()),
                ("network_transmit_bytes_total", data.total_transmitted()),
                (
                    "network_receive_packets_total",
                    data.total_packets_received(),
                ),
                (
                    "network_transmit_packets_total",
                    data.total_packets_transmitted(),
                ),
                (
                    "network_receive_errs_total",
                    data.total_errors_on_received(),
                ),
                (
                    "network_transmit_errs_total",
                    data.total_errors_on_transmitted(),
                ),
            ] {
                metrics.add(name, total as f64, Kind::Counter, &[("device", device)]);
            }
        }
    }
}

/// The metric events of one scrape.
/// Metric events being gathered for one batch.
pub(super) struct Metrics<'a> {
    pub(super) origin: &'a Origin,
    pub(super) events: Vec<Event>,
}

impl Metrics<'_> {
    /// Adds one metric event.
    pub(super) fn add(&mut self, name: &str, value: f64, kind: Kind, tags: &[(&str, &str)]) {
        let tags: ObjectMap = tags
            .iter()
            .map(|(tag, text)| ((*tag).into(), Value::from(*text)))
            .collect();
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let mut fields = ObjectMap::new();
        fields.insert("name".into(), Value::from(name));
        fields.insert("value".into(), Value::from_f64_or_zero(value));
        fields.insert("kind".into(), Value::from(kind));
        fields.insert("tags".into(), Value::Object(tags));
        self.events.push(Event::from_fields(fields, self.origin));
    }
}
