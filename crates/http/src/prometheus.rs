//! The Prometheus text exposition format (version 0.0.4) of the registry,
//! the process figures and the process's resource limits.

use std::{fmt::Write, sync::atomic::Ordering};

use datascale_core::metrics::{COMPONENT_COUNTERS, Family, ProcessUsage, Registered, Registry};
use datascale_protocol::EffectiveLimits;

/// A channel gauge: its name, help text, and what it reads of (queued, capacity).
type BufferGauge = (&'static str, &'static str, fn((usize, usize)) -> usize);

/// The gauges of a sink's disk buffer, shown for sinks that have one.
const DISK_BUFFER_GAUGES: [Family; 3] = [
    (
        "datascale_component_disk_buffer_events",
        "Events in a sink's disk buffer that the sink has not written yet.",
        |m| m.disk_buffer_events.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_disk_buffer_bytes",
        "Bytes of a sink's disk buffer files.",
        |m| m.disk_buffer_bytes.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_disk_buffer_max_bytes",
        "Most bytes a sink's disk buffer keeps.",
        |m| m.disk_buffer_max_bytes.load(Ordering::Relaxed),
    ),
];

/// Each family's header and its sample for every component `shown` picks.
fn families(
    out: &mut String,
    families: &[Family],
    kind: &str,
    components: &[std::sync::Arc<Registered>],
    shown: impl Fn(&Registered) -> bool,
) {
    for (name, help, read) in families {
        header(out, name, help, kind);
        for registered in components.iter().filter(|registered| shown(registered)) {
            sample(out, name, registered, read(&registered.metrics));
        }
    }
}

/// Renders every series: per component counters, channel fill and disk buffers, the
/// process's CPU time and resident memory, and the `limits` it runs under.
pub fn render(registry: &Registry, limits: &EffectiveLimits) -> String {
    let components = registry.components();
    let mut out = String::new();
    families(
        &mut out,
        &COMPONENT_COUNTERS,
        "counter",
        &components,
        |_| true,
    );
    let buffer_gauges: [BufferGauge; 2] = [
        (
            "datascale_component_buffer_batches",
            "Batches waiting in a component's input channel.",
            |(used, _)| used,
        ),
        (
            "datascale_component_buffer_max_batches",
            "Batches a component's input channel holds at most.",
            |(_, max)| max,
        ),
    ];
    for (name, help, pick) in buffer_gauges {
        header(&mut out, name, help, "gauge");
        for registered in &components {
            if let Some(fill) = registered.input_fill() {
                sample(&mut out, name, registered, pick(fill) as u64);
            }
        }
    }
    let has_disk_buffer = |registered: &Registered| {
        registered
            .metrics
            .disk_buffer_max_bytes
            .load(Ordering::Relaxed)
            > 0
    };
    families(
        &mut out,
        &DISK_BUFFER_GAUGES,
        "gauge",
        &components,
        has_disk_buffer,
    );
    let suppressed = "datascale_log_suppressed_total";
    header(
        &mut out,
        suppressed,
        "Log lines not written because their component repeated them past log.repeat_limit.",
        "counter",
    );
    for (level, component, count) in datascale_core::metrics::suppressed_log_lines() {
        let _ = writeln!(
            out,
            "{suppressed}{{level=\"{level}\",component=\"{}\"}} {count}",
            escape(&component)
        );
    }
    let usage = ProcessUsage::now();
    header(
        &mut out,
        "process_cpu_seconds_total",
        "User and system CPU time spent, in seconds.",
        "counter",
    );
    let _ = writeln!(out, "process_cpu_seconds_total {}", usage.cpu_seconds);
    header(
        &mut out,
        "process_resident_memory_bytes",
        "Resident memory, in bytes.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "process_resident_memory_bytes {}",
        usage.resident_bytes
    );
    let source = limits.source.as_str();
    for (name, help, value) in [
        (
            "datascale_resources_cpu_quota_percent",
            "CPU time this process may use, in percent of one core; 0: no limit.",
            limits.cpu_quota_percent,
        ),
        (
            "datascale_resources_memory_limit_bytes",
            "Memory this process may use, in bytes; 0: no limit.",
            limits.memory_limit_bytes as f64,
        ),
    ] {
        header(&mut out, name, help, "gauge");
        let _ = writeln!(out, "{name}{{source=\"{source}\"}} {value}");
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample with the labels `dataflow`, `component`, `component_type`,
/// and `group` for a dataflow of a group.
fn sample(out: &mut String, name: &str, registered: &Registered, value: u64) {
    let group = match registered.group.as_str() {
        "" => String::new(),
        group => format!(",group=\"{}\"", escape(group)),
    };
    let _ = writeln!(
        out,
        "{name}{{dataflow=\"{}\",component=\"{}\",component_type=\"{}\"{group}}} {value}",
        escape(&registered.dataflow),
        escape(&registered.component),
        escape(&registered.component_type),
    );
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datascale_protocol::{CgroupVersion, LimitSource};

    #[test]
    fn series_carry_the_component_labels() {
        let registry = Registry::new();
        let component = registry.register(("", "flow"), "my \"sink\"", "file", None);
        component.metrics.received(3, 0);
        let limits = EffectiveLimits {
            source: LimitSource::Cgroup,
            cgroup_version: Some(CgroupVersion::V1),
            cpu_cgroup: None,
            memory_cgroup: None,
            cpu_quota_percent: 50.0,
            memory_limit_bytes: 268_435_456,
        };
        let text = render(&registry, &limits);
        assert!(text.contains(
            "datascale_component_received_events_total{dataflow=\"flow\",component=\"my \\\"sink\\\"\",component_type=\"file\"} 3"
        ), "{text}");
        assert!(text.contains("# TYPE process_resident_memory_bytes gauge"));
        assert!(
            text.contains("datascale_resources_cpu_quota_percent{source=\"cgroup\"} 50\n")
                && text.contains(
                    "datascale_resources_memory_limit_bytes{source=\"cgroup\"} 268435456\n"
                ),
            "{text}"
        );
    }
}
