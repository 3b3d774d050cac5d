//! Events in and out per second of each group over the last hour, for the
//! dashboard's charts. Workers report cumulative counters per dataflow in
//! every heartbeat; what a dataflow counted since the same worker's
//! previous report is added to the current time step of its group. A ring
//! of at most [`STEPS`] steps of [`STEP_SECS`] is kept, so the memory held
//! is bounded by the number of steps times the number of groups.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};
use datascale_http::LocalDataflows;
use datascale_protocol::DataflowReport;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::WorkerRegistry;

/// The length of one step, in seconds.
pub const STEP_SECS: i64 = 10;
/// How many steps are kept: one hour.
pub const STEPS: usize = 360;

/// Events counted in one step.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    events_in: u64,
    events_out: u64,
}

/// What each group counted in one step.
#[derive(Debug)]
struct Step {
    /// Its start, in seconds since the epoch (a multiple of `STEP_SECS`).
    start: i64,
    groups: HashMap<String, Counts>,
}

/// The recent event rates of every group.
#[derive(Debug, Default)]
pub struct RateHistory {
    steps: Mutex<VecDeque<Step>>,
}

/// The rates of every group, step by step, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateSeries {
    /// The length of one step, in seconds.
    pub step_secs: i64,
    /// Each group that counted events in the last hour, by name.
    pub groups: Vec<GroupRates>,
}

/// The rates of one group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRates {
    /// The group's name.
    pub group: String,
    /// One point per step, oldest first, without gaps; the last one is the
    /// step in progress, its rate over the part of it that has passed.
    pub points: Vec<RatePoint>,
}

/// The rates of one group in one step.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatePoint {
    /// The start of the step (RFC 3339).
    pub time: String,
    /// Events its sources took in, per second.
    pub events_in_per_sec: f64,
    /// Events its sinks wrote, per second.
    pub events_out_per_sec: f64,
}

/// How much a counter grew from `then` to `now`; a counter lower than
/// before was reset (its dataflow restarted), so all of it is new.
fn growth(now: u64, then: u64) -> u64 {
    now.checked_sub(then).unwrap_or(now)
}

fn step_of(time: DateTime<Utc>) -> i64 {
    let secs = time.timestamp();
    secs - secs.rem_euclid(STEP_SECS)
}

impl RateHistory {
    /// Adds what one reporter's dataflows counted between its `previous`
    /// reports and its `current` ones, at `now`.
    pub fn record<'a>(
        &self,
        previous: &[DataflowReport],
        current: impl IntoIterator<Item = &'a DataflowReport>,
        now: DateTime<Utc>,
    ) {
        let mut added: BTreeMap<&str, Counts> = BTreeMap::new();
        for report in current {
            let before = previous
                .iter()
                .find(|old| old.group == report.group && old.name == report.name);
            let (events_in, events_out) =
                before.map_or((0, 0), |old| (old.events_in, old.events_out));
            let counts = added.entry(&report.group).or_default();
            counts.events_in += growth(report.events_in, events_in);
            counts.events_out += growth(report.events_out, events_out);
        }
        let start = step_of(now);
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        // A report stamped before the newest step (the clock went back)
        // joins the newest step.
        if steps.back().is_none_or(|newest| newest.start < start) {
            steps.push_back(Step {
                start,
                groups: HashMap::new(),
            });
        }
        let step = steps.back_mut().expect("a step was just added");
        for (group, counts) in added {
            let total = step.groups.entry(group.to_owned()).or_default();
            total.events_in += counts.events_in;
            total.events_out += counts.events_out;
        }
        let oldest = start - STEP_SECS * (STEPS as i64 - 1);
        while steps.len() > STEPS || steps.front().is_some_and(|step| step.start < oldest) {
            steps.pop_front();
        }
    }

    /// The rates of each group over the last hour as of `now`.
    pub fn series(&self, now: DateTime<Utc>) -> RateSeries {
        let current = step_of(now);
        let oldest_kept = current - STEP_SECS * (STEPS as i64 - 1);
        let steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        let kept: Vec<&Step> = steps
            .iter()
            .filter(|step| step.start >= oldest_kept)
            .collect();
        let names: BTreeSet<&String> = kept.iter().flat_map(|step| step.groups.keys()).collect();
        let first = kept.first().map_or(current, |step| step.start);
        let groups = names
            .into_iter()
            .map(|name| GroupRates {
                group: name.clone(),
                points: (first..=current)
                    .step_by(STEP_SECS as usize)
                    .map(|start| {
                        let counts = kept
                            .iter()
                            .find(|step| step.start == start)
                            .and_then(|step| step.groups.get(name))
                            .copied()
                            .unwrap_or_default();
                        // The step in progress has lasted only this long.
                        let secs = match start == current {
                            true => (now.timestamp() - start).max(1),
                            false => STEP_SECS,
                        } as f64;
                        RatePoint {
                            time: DateTime::from_timestamp(start, 0)
                                .unwrap_or_default()
                                .to_rfc3339_opts(SecondsFormat::Secs, true),
                            events_in_per_sec: counts.events_in as f64 / secs,
                            events_out_per_sec: counts.events_out as f64 / secs,
                        }
                    })
                    .collect(),
            })
            .collect();
        RateSeries {
            step_secs: STEP_SECS,
            groups,
        }
    }
}

/// Records the counters of a standalone node's own worker, which sends no
/// heartbeats, once a step until `stop`.
pub async fn sample_local(
    worker: Arc<dyn LocalDataflows>,
    registry: Arc<WorkerRegistry>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(STEP_SECS.unsigned_abs()));
    let mut previous = worker.reports().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let current = worker.reports().await;
                registry.rates().record(&previous, &current, Utc::now());
                previous = current;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datascale_protocol::DataflowState;

    fn report(group: &str, name: &str, events_in: u64, events_out: u64) -> DataflowReport {
        DataflowReport {
            group: group.to_owned(),
            name: name.to_owned(),
            state: DataflowState::Running,
            revision: Some(1),
            document_sha256: None,
            wanted_revision: 1,
            last_error: None,
            restarting: 0,
            events_in,
            events_out,
            errors: 0,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn rates(series: &RateSeries, group: &str) -> Vec<(f64, f64)> {
        series
            .groups
            .iter()
            .find(|rates| rates.group == group)
            .unwrap()
            .points
            .iter()
            .map(|point| (point.events_in_per_sec, point.events_out_per_sec))
            .collect()
    }

    #[test]
    fn growth_since_the_previous_report_is_counted_per_group_and_step() {
        let history = RateHistory::default();
        let first = [report("edge", "a", 100, 90), report("core", "b", 5, 5)];
        let second = [report("edge", "a", 300, 290), report("core", "b", 5, 5)];
        // A dataflow missing before counts from zero; one restarted from
        // its new counters.
        let third = [
            report("edge", "a", 20, 10),
            report("edge", "new", 40, 40),
            report("core", "b", 5, 5),
        ];
        history.record(&[], &first[..1], at(0));
        history.record(&first, &second, at(5));
        history.record(&second, &third, at(15));
        let series = history.series(at(25));
        assert_eq!(series.step_secs, STEP_SECS);
        let edge = rates(&series, "edge");
        // Steps at 0, 10 and 20 (in progress for 5 s).
        assert_eq!(edge, [(30.0, 29.0), (6.0, 5.0), (0.0, 0.0)]);
        assert_eq!(rates(&series, "core"), [(0.0, 0.0); 3]);
        assert_eq!(series.groups[0].points[1].time, "2027-01-15T08:00:10Z");
    }

    #[test]
    fn only_the_last_hour_is_kept() {
        let history = RateHistory::default();
        let mut previous = vec![report("edge", "a", 0, 0)];
        for step in 0..(STEPS as i64 + 50) {
            let current = vec![report("edge", "a", step as u64 * 10 + 10, 0)];
            history.record(&previous, &current, at(step * STEP_SECS));
            previous = current;
        }
        assert_eq!(history.steps.lock().unwrap().len(), STEPS);
        let last = at((STEPS as i64 + 49) * STEP_SECS + 5);
        let series = history.series(last);
        let edge = rates(&series, "edge");
        assert_eq!(edge.len(), STEPS);
        assert_eq!(edge[0], (1.0, 0.0));
        assert_eq!(edge[STEPS - 1], (2.0, 0.0));
        // An hour of silence later, nothing is left to show.
        let silent = at((2 * STEPS as i64 + 50) * STEP_SECS);
        assert!(history.series(silent).groups.is_empty());
    }
}
