//! Metrics: per-component counters kept in atomics (one add per batch, no
//! lock on the hot path), the registry they are read from, the lines of
//! log held back as repeats, and the process's CPU time and memory.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

/// A counter family: its name, help text, and the counter it reads.
pub type Family = (&'static str, &'static str, fn(&ComponentMetrics) -> u64);

/// The counters of every component, with their Prometheus names.
pub const COMPONENT_COUNTERS: [Family; 7] = [
    (
        "datascale_component_received_events_total",
        "Events a component received.",
        |m| m.events_in.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_sent_events_total",
        "Events a component sent on or wrote.",
        |m| m.events_out.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_received_bytes_total",
        "Bytes a source read.",
        |m| m.bytes_in.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_sent_bytes_total",
        "Bytes a sink wrote or sent.",
        |m| m.bytes_out.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_errors_total",
        "Errors of a component.",
        |m| m.errors.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_discarded_events_total",
        "Events a component discarded on purpose.",
        |m| m.discarded.load(Ordering::Relaxed),
    ),
    (
        "datascale_component_restarts_total",
        "Restarts of a component after a failure.",
        |m| m.restarts.load(Ordering::Relaxed),
    ),
];

/// Counters of one component of one running dataflow.
#[derive(Debug, Default)]
pub struct ComponentMetrics {
    /// Events received from its inputs (pipelines, sinks) or read (sources).
    pub events_in: AtomicU64,
    /// Events sent on to the next components (sources, pipelines) or written (sinks).
    pub events_out: AtomicU64,
    /// Bytes read by a source.
    pub bytes_in: AtomicU64,
    /// Bytes written or sent by a sink.
    pub bytes_out: AtomicU64,
    /// Errors: failed runs, failed writes, events a program could not process.
    pub errors: AtomicU64,
    /// Events discarded on purpose: filtered, sampled, skipped.
    pub discarded: AtomicU64,
    /// Times the component was started again after a failure.
    pub restarts: AtomicU64,
    /// Unix seconds of the last error, 0 for none.
    pub last_error_at: AtomicU64,
    /// Events in a sink's disk buffer that it has not written yet.
    pub disk_buffer_events: AtomicU64,
    /// Bytes of a sink's disk buffer files.
    pub disk_buffer_bytes: AtomicU64,
    /// Most bytes a sink's disk buffer keeps; 0 for a sink without one.
    pub disk_buffer_max_bytes: AtomicU64,
    /// What the component is doing now, and its last error.
    health: Mutex<Health>,
}

/// What a component is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Its task runs.
    #[default]
    Running,
    /// It failed and waits to be started again.
    Restarting,
    /// It ended by itself (a finite source, or its inputs ended).
    Finished,
}

#[derive(Debug, Default)]
struct Health {
    state: ComponentState,
    last_error: Option<String>,
}

/// A copy of a component's state, for reports.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ComponentReport {
    /// The component's name.
    pub component: String,
    /// Its `type`.
    pub component_type: String,
    /// What it is doing now.
    pub state: ComponentState,
    /// Its last error, if it ever had one.
    pub last_error: Option<String>,
    /// Restarts after failures.
    pub restarts: u64,
    /// Events in.
    pub events_in: u64,
    /// Events out.
    pub events_out: u64,
    /// Errors.
    pub errors: u64,
}

impl ComponentMetrics {
    /// Counts `events` (and `bytes`, when known) coming in.
    pub fn received(&self, events: usize, bytes: usize) {
        self.events_in.fetch_add(events as u64, Ordering::Relaxed);
        if bytes > 0 {
            self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Counts `events` (and `bytes`, when known) going out.
    pub fn sent(&self, events: usize, bytes: usize) {
        self.events_out.fetch_add(events as u64, Ordering::Relaxed);
        if bytes > 0 {
            self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Counts `events` discarded on purpose.
    pub fn discard(&self, events: usize) {
        self.discarded.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts `count` errors; none is no error.
    pub fn error(&self, count: usize) {
        if count == 0 {
            return;
        }
        self.errors.fetch_add(count as u64, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.last_error_at.store(now, Ordering::Relaxed);
    }

    /// Records that the component failed with `error` and will be started again.
    pub fn failed(&self, error: String) {
        self.error(1);
        let mut health = self.health.lock().expect("health lock");
        health.state = ComponentState::Restarting;
        health.last_error = Some(error);
    }

    /// Records a new state.
    pub fn set_state(&self, state: ComponentState) {
        self.health.lock().expect("health lock").state = state;
    }

    fn health(&self) -> (ComponentState, Option<String>) {
        let health = self.health.lock().expect("health lock");
        (health.state, health.last_error.clone())
    }
}

/// How full an edge is, read when metrics are scraped.
pub trait ChannelFill: Send + Sync + std::fmt::Debug {
    /// Batches waiting in the channel, and how many it holds at most.
    fn fill(&self) -> Option<(usize, usize)>;
}

/// One component registered with the [`Registry`].
#[derive(Debug)]
pub struct Registered {
    /// The group of the dataflow; empty for one run outside any group.
    pub group: String,
    /// The dataflow's name.
    pub dataflow: String,
    /// The component's name.
    pub component: String,
    /// The component's `type`.
    pub component_type: String,
    /// Its counters.
    pub metrics: Arc<ComponentMetrics>,
    /// Its input channel, for pipelines and sinks.
    input: Option<Arc<dyn ChannelFill>>,
}

impl Registered {
    /// How full its input channel is, (queued, capacity), for pipelines and
    /// sinks whose channel is still open.
    pub fn input_fill(&self) -> Option<(usize, usize)> {
        self.input.as_ref().and_then(|input| input.fill())
    }
}

/// Every running component's metrics. Components are held weakly: a stopped
/// dataflow's series disappear from the next scrape by themselves.
#[derive(Debug, Default)]
pub struct Registry {
    components: Mutex<Vec<Weak<Registered>>>,
}

impl Registry {
    /// A registry shared by every dataflow of the process.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a component; its series live as long as the returned handle.
    pub fn register(
        &self,
        (group, dataflow): (&str, &str),
        component: &str,
        component_type: &str,
        input: Option<Arc<dyn ChannelFill>>,
    ) -> Arc<Registered> {
        let registered = Arc::new(Registered {
            group: group.to_owned(),
            dataflow: dataflow.to_owned(),
            component: component.to_owned(),
            component_type: component_type.to_owned(),
            metrics: Arc::new(ComponentMetrics::default()),
            input,
        });
        let mut components = self.components.lock().expect("registry lock");
        components.retain(|weak| weak.strong_count() > 0);
        components.push(Arc::downgrade(&registered));
        registered
    }

    /// The components registered now, in group, dataflow and component order.
    pub fn components(&self) -> Vec<Arc<Registered>> {
        let mut live: Vec<_> = self
            .components
            .lock()
            .expect("registry lock")
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        live.sort_by(|a, b| {
            (&a.group, &a.dataflow, &a.component).cmp(&(&b.group, &b.dataflow, &b.component))
        });
        live
    }

    /// The state of each component of the dataflow `name` of `group`.
    pub fn reports(&self, group: &str, name: &str) -> Vec<ComponentReport> {
        self.components()
            .into_iter()
            .filter(|registered| registered.group == group && registered.dataflow == name)
            .map(|registered| {
                let metrics = &registered.metrics;
                let (state, last_error) = metrics.health();
                ComponentReport {
                    component: registered.component.clone(),
                    component_type: registered.component_type.clone(),
                    state,
                    last_error,
                    restarts: metrics.restarts.load(Ordering::Relaxed),
                    events_in: metrics.events_in.load(Ordering::Relaxed),
                    events_out: metrics.events_out.load(Ordering::Relaxed),
                    errors: metrics.errors.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// Log lines the repeat limit suppressed, by level and component (empty
/// for lines that name none). Process-wide, like the log itself.
static SUPPRESSED_LOG_LINES: Mutex<BTreeMap<(&'static str, String), u64>> =
    Mutex::new(BTreeMap::new());

/// Counts one log line of `level` about `component` that was suppressed.
pub fn log_suppressed(level: &'static str, component: &str) {
    let mut counts = SUPPRESSED_LOG_LINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match counts.get_mut(&(level, component.to_owned())) {
        Some(count) => *count += 1,
        None => {
            counts.insert((level, component.to_owned()), 1);
        }
    }
}

/// The counts of suppressed log lines: level, component, count.
pub fn suppressed_log_lines() -> Vec<(&'static str, String, u64)> {
    SUPPRESSED_LOG_LINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|((level, component), count)| (*level, component.clone(), *count))
        .collect()
}

/// The process's own resource use, read from `/proc/self`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessUsage {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
}

impl ProcessUsage {
    /// Reads the current figures; zeros where `/proc` cannot be read.
    pub fn now() -> Self {
        // The kernel reports times in USER_HZ, which is 100 on Linux.
        const TICKS_PER_SECOND: f64 = 100.0;
        const PAGE_BYTES: u64 = 4096;
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                // Fields after the command name, which is in parentheses and may hold spaces.
                let after = &stat[stat.rfind(')')? + 2..];
                let fields: Vec<&str> = after.split(' ').collect();
                let user: f64 = fields.get(11)?.parse().ok()?;
                let system: f64 = fields.get(12)?.parse().ok()?;
                Some((user + system) / TICKS_PER_SECOND)
            })
            .unwrap_or_default();
        let resident_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| statm.split(' ').nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * PAGE_BYTES);
        Self {
            cpu_seconds,
            resident_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_component_leaves_the_registry() {
        let registry = Registry::new();
        let kept = registry.register(("", "flow"), "a", "demo", None);
        let dropped = registry.register(("", "flow"), "b", "blackhole", None);
        assert_eq!(registry.components().len(), 2);
        drop(dropped);
        let names: Vec<_> = registry
            .components()
            .iter()
            .map(|c| c.component.clone())
            .collect();
        assert_eq!(names, ["a"]);
        drop(kept);
    }

    #[test]
    fn a_failure_is_reported_with_its_error() {
        let registry = Registry::new();
        let component = registry.register(("", "flow"), "out", "file", None);
        component.metrics.failed("disk full".into());
        let reports = registry.reports("", "flow");
        assert_eq!(reports[0].state, ComponentState::Restarting);
        assert_eq!(reports[0].last_error.as_deref(), Some("disk full"));
        assert_eq!(reports[0].errors, 1);
    }

    #[test]
    fn the_process_uses_some_memory() {
        assert!(ProcessUsage::now().resident_bytes > 0);
    }
}
