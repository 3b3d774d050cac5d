//! Repeated log lines, limited: a source that logs for each bad input (a
//! garbage syslog datagram, a line that is not JSON) must not let whoever
//! sends that input fill the disk with warnings.
//!
//! Lines are grouped by where they are logged (the callsite) and by the
//! component they speak of (the first of the fields `component`, `source`
//! and `dataflow`). Of each group, the first `limit` lines of every
//! interval are written; the rest are counted, the count is written as one
//! summary line when the interval is over, and every suppressed line is
//! added to `datascale_log_suppressed_total` on `/metrics`.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use datascale_core::metrics;
use tracing::{Event, Level, Subscriber, callsite, field::Field};
use tracing_subscriber::{Layer, layer::Context};

/// The target of the summary lines; they are never suppressed themselves.
const SUMMARY_TARGET: &str = "datascale::log_repeats";

/// The fields that name the component a line speaks of, in order of preference.
const COMPONENT_FIELDS: [&str; 3] = ["component", "source", "dataflow"];

/// The layer that drops a group's lines past its limit; it shares its
/// state with the [`RepeatSummaries`] handle that writes the summaries.
pub struct RepeatLimit {
    state: Arc<State>,
}

/// Writes the summaries of the groups whose interval is over.
#[derive(Clone)]
pub struct RepeatSummaries {
    state: Arc<State>,
}

struct State {
    limit: u32,
    interval: Duration,
    groups: Mutex<HashMap<Group, Window>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    callsite: callsite::Identifier,
    component: String,
}

/// One group's current interval.
struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
    level: Level,
    /// The text of the group's first line, for its summary.
    text: String,
}

/// A summary to write once the groups' lock is released.
struct Summary {
    component: String,
    level: Level,
    text: String,
    suppressed: u64,
}

impl RepeatLimit {
    /// `limit` lines of each group per `interval`; a `limit` of 0 lets every line through.
    pub fn new(limit: u32, interval: Duration) -> (Self, RepeatSummaries) {
        let state = Arc::new(State {
            limit,
            interval,
            groups: Mutex::new(HashMap::new()),
        });
        (
            Self {
                state: Arc::clone(&state),
            },
            RepeatSummaries { state },
        )
    }
}

impl<S: Subscriber> Layer<S> for RepeatLimit {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if self.state.limit == 0 || metadata.target() == SUMMARY_TARGET {
            return true;
        }
        let mut fields = LineFields::default();
        event.record(&mut fields);
        let group = Group {
            callsite: metadata.callsite(),
            component: fields.component.unwrap_or_default(),
        };
        let now = Instant::now();
        let (written, summary) = {
            let mut groups = self.state.lock();
            let window = groups.entry(group.clone()).or_insert_with(|| Window {
                started: now,
                written: 0,
                suppressed: 0,
                level: *metadata.level(),
                text: fields.text,
            });
            let summary = (now.duration_since(window.started) >= self.state.interval)
                .then(|| window.restart(now, &group))
                .flatten();
            let written = window.written < self.state.limit;
            match written {
                true => window.written += 1,
                false => window.suppressed += 1,
            }
            (written, summary)
        };
        if let Some(summary) = summary {
            summary.write(self.state.interval);
        }
        if !written {
            metrics::log_suppressed(level_label(metadata.level()), &group.component);
        }
        written
    }
}

impl RepeatSummaries {
    /// Writes a summary for each group whose interval is over and that
    /// suppressed lines in it, and forgets the groups that have been quiet
    /// for a whole interval.
    pub fn write_due(&self) {
        let now = Instant::now();
        let due: Vec<Summary> = {
            let mut groups = self.state.lock();
            let mut due = Vec::new();
            groups.retain(|group, window| {
                if now.duration_since(window.started) < self.state.interval {
                    return true;
                }
                let quiet = window.written == 0;
                due.extend(window.restart(now, group));
                !quiet
            });
            due
        };
        for summary in due {
            summary.write(self.state.interval);
        }
    }

    /// Writes the due summaries once an interval, until the task is dropped.
    pub async fn write_every_interval(self) {
        if self.state.limit == 0 {
            return;
        }
        let mut ticks = tokio::time::interval(self.state.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.write_due();
        }
    }
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Group, Window>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Window {
    /// Starts a new interval at `now`; the summary of the one that ended,
    /// if it suppressed lines.
    fn restart(&mut self, now: Instant, group: &Group) -> Option<Summary> {
        let suppressed = std::mem::take(&mut self.suppressed);
        self.started = now;
        self.written = 0;
        (suppressed > 0).then(|| Summary {
            component: group.component.clone(),
            level: self.level,
            text: self.text.clone(),
            suppressed,
        })
    }
}

impl Summary {
    fn write(&self, interval: Duration) {
        let Summary {
            component,
            level,
            text,
            suppressed,
        } = self;
        let interval_secs = interval.as_secs();
        tracing::warn!(
            target: SUMMARY_TARGET,
            component = %component,
            repeated_level = %level,
            repeated = %text,
            suppressed,
            interval_secs,
            "Suppressed repeats of a log line in the last interval."
        );
    }
}

/// The `level` label of a line's level on `/metrics`.
fn level_label(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// What the limit reads of a line: its text and the component it names.
#[derive(Default)]
struct LineFields {
    text: String,
    component: Option<String>,
    /// The index in [`COMPONENT_FIELDS`] of the field `component` came from.
    rank: usize,
}

impl tracing::field::Visit for LineFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, &format_args!("{value:?}"));
    }
}

impl LineFields {
    fn record(&mut self, field: &Field, value: &dyn fmt::Display) {
        if field.name() == "message" {
            self.text = value.to_string();
        } else if let Some(rank) = COMPONENT_FIELDS
            .iter()
            .position(|name| *name == field.name())
            && (self.component.is_none() || rank < self.rank)
        {
            self.component = Some(value.to_string());
            self.rank = rank;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the lines that reach it, and the summaries among them.
    #[derive(Clone, Default)]
    struct Written {
        lines: Arc<AtomicUsize>,
        summaries: Arc<Mutex<Vec<String>>>,
    }

    impl<S: Subscriber> Layer<S> for Written {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            self.lines.fetch_add(1, Ordering::Relaxed);
            if event.metadata().target() == SUMMARY_TARGET {
                let mut fields = Summarised::default();
                event.record(&mut fields);
                self.summaries.lock().unwrap().push(fields.0);
            }
        }
    }

    #[derive(Default)]
    struct Summarised(String);

    impl tracing::field::Visit for Summarised {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() != "message" {
                self.0 += &format!("{}={value:?} ", field.name());
            }
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0 += &format!("{}={value} ", field.name());
        }
    }

    fn bad_input(component: &str) {
        tracing::warn!(component, "A message is not valid syslog.");
    }

    /// Runs `log` under a repeat limit; answers what was written.
    fn limited(
        limit: u32,
        interval: Duration,
        log: impl FnOnce(&RepeatSummaries, &Written),
    ) -> Written {
        let (limit, summaries) = RepeatLimit::new(limit, interval);
        let written = Written::default();
        let subscriber = tracing_subscriber::registry()
            .with(limit)
            .with(written.clone());
        tracing::subscriber::with_default(subscriber, || log(&summaries, &written));
        written
    }

    #[test]
    fn a_flood_writes_the_first_lines_then_one_summary_per_interval() {
        let written = limited(3, Duration::from_millis(200), |summaries, written| {
            for _ in 0..1000 {
                bad_input("flood");
            }
            // Another component's lines are a group of their own.
            bad_input("quiet");
            assert_eq!(written.lines.load(Ordering::Relaxed), 4);
            summaries.write_due();
            assert!(written.summaries.lock().unwrap().is_empty(), "not due yet");
            let deadline = Instant::now() + Duration::from_secs(10);
            while written.summaries.lock().unwrap().is_empty() {
                assert!(Instant::now() < deadline, "no summary was written");
                std::thread::yield_now();
                summaries.write_due();
            }
        });
        let summaries = written.summaries.lock().unwrap().clone();
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        assert!(
            summaries[0].contains("component=flood")
                && summaries[0].contains("suppressed=997")
                && summaries[0].contains("A message is not valid syslog."),
            "{}",
            summaries[0]
        );
        // Four lines and the summary.
        assert_eq!(written.lines.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_limit_of_zero_lets_every_line_through() {
        let written = limited(0, Duration::from_secs(10), |_, _| {
            for _ in 0..100 {
                bad_input("flood");
            }
        });
        assert_eq!(written.lines.load(Ordering::Relaxed), 100);
    }
}
