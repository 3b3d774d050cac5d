//! The `internal_metrics` source: every `scrape_interval_secs`, this
//! process's own counters as metric events: per component (tagged with
//! `dataflow`, `component` and `component_type`) the series `/metrics`
//! shows, and the process's CPU time and resident memory.

use datascale_core::metrics::COMPONENT_COUNTERS;
use datascale_core::{
    component::{ComponentError, SourceContext},
    event::{Event, Origin},
    metrics::{ProcessUsage, Registry},
};

use super::{
    InternalMetricsConfig,
    host_metrics::{Kind, Metrics, scrape_every},
};

/// Reports every interval until the source is stopped.
pub async fn run(
    config: InternalMetricsConfig,
    context: SourceContext,
) -> Result<(), ComponentError> {
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
