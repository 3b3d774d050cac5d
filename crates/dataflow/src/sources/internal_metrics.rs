//! The `internal_metrics` source: every `scrape_interval_secs`, this
//! process's own counters as metric events: per component (tagged with
//! `dataflow`, `component` and `component_type`) the series `/metrics`
//! shows, and the process's CPU time and resident memory.
//!
//! Here too: the `internal_metrics` `conf`, with its defaults, its checks and its build.

use datascale_core::metrics::COMPONENT_COUNTERS;
use datascale_core::{
    component::{BuildError, ComponentError, ComponentTask, SourceContext},
    event::{Event, Origin},
    metrics::{ProcessUsage, Registry},
};
use serde::{Deserialize, Serialize};

use super::{
    SourceBuild, SourceType, check_scrape_interval, default_scrape_interval_secs,
    host_metrics::{Kind, Metrics, scrape_every},
};
use crate::{Problems, TypeConf};

/// `internal_metrics`: this process's own metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalMetricsConfig {
    /// Seconds between two reports.
    #[serde(default = "default_scrape_interval_secs")]
    pub scrape_interval_secs: u64,
}

impl SourceType for InternalMetricsConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        Ok(Box::pin(run(self.clone(), build.context)))
    }
}

impl TypeConf for InternalMetricsConfig {
    fn check(&self, problems: &mut Problems) {
        check_scrape_interval(self.scrape_interval_secs, problems);
    }
}

/// Reports every interval until the source is stopped.
async fn run(config: InternalMetricsConfig, context: SourceContext) -> Result<(), ComponentError> {
    let registry = context.registry.clone();
    scrape_every(config.scrape_interval_secs, &context, |origin| {
        scrape(&registry, origin)
    })
    .await
}

fn scrape(registry: &Registry, origin: &Origin) -> Vec<Event> {
    let mut metrics = Metrics {
        origin,
        events: Vec::new(),
    };
    for registered in registry.components() {
        let tags = [
            ("dataflow", registered.dataflow.as_str()),
            ("component", registered.component.as_str()),
            ("component_type", registered.component_type.as_str()),
        ];
        for (name, _, read) in COMPONENT_COUNTERS {
            let name = name.trim_start_matches("datascale_");
            metrics.add(name, read(&registered.metrics) as f64, Kind::Counter, &tags);
        }
    }
    let usage = ProcessUsage::now();
    metrics.add(
        "process_cpu_seconds_total",
        usage.cpu_seconds,
        Kind::Counter,
        &[],
    );
    metrics.add(
        "process_resident_memory_bytes",
        usage.resident_bytes as f64,
        Kind::Gauge,
        &[],
    );
    metrics.events
}
