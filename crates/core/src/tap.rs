//! Taps: a live copy of the events one component of a running dataflow
//! puts out (a sink: takes in), for a person to watch. A tap never slows a
//! dataflow down: each watcher gets at most its rate of events a second,
//! and what it is too slow to take is left out. A component nobody watches
//! pays one atomic load per batch.
//!
//! Tap points are kept per component of a dataflow for as long as that
//! dataflow is deployed, so a watcher goes on watching across a restart of
//! the component or a new revision of the dataflow.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::event::Event;

/// The most events a second one watcher may ask for.
pub const MAX_TAP_RATE: u32 = 1_000;

/// Where the events of one component can be watched.
#[derive(Debug, Default)]
pub struct TapPoint {
    watched: AtomicBool,
    watchers: Mutex<Vec<Watcher>>,
}

/// One watcher: its channel and what it was given this second.
#[derive(Debug)]
struct Watcher {
    sender: mpsc::Sender<serde_json::Value>,
    rate: u32,
    second_started: Instant,
    given: u32,
}

impl TapPoint {
    /// Copies events of `events` to each watcher, up to its rate this
    /// second and as far as its channel has room; forgets watchers that
    /// went away.
    pub fn offer(&self, events: &[Event]) {
        if !self.watched.load(Ordering::Relaxed) {
            return;
        }
        let mut watchers = self.watchers.lock().expect("the tap lock is not poisoned");
        let now = Instant::now();
        watchers.retain_mut(|watcher| {
            if now.duration_since(watcher.second_started) >= Duration::from_secs(1) {
                watcher.second_started = now;
                watcher.given = 0;
            }
            let room = watcher.rate.saturating_sub(watcher.given) as usize;
            for event in events.iter().take(room) {
                let copy =
                    serde_json::to_value(&event.value).expect("a VRL value serializes to JSON");
                match watcher.sender.try_send(copy) {
                    Ok(()) => watcher.given += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => break,
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            !watcher.sender.is_closed()
        });
        self.watched.store(!watchers.is_empty(), Ordering::Relaxed);
    }

    /// A new watcher taking at most `rate` events a second (1 to
    /// [`MAX_TAP_RATE`]); its channel ends when the dataflow is removed.
    fn watch(&self, rate: u32) -> mpsc::Receiver<serde_json::Value> {
        let rate = rate.clamp(1, MAX_TAP_RATE);
        let (sender, receiver) = mpsc::channel(rate as usize);
        let mut watchers = self.watchers.lock().expect("the tap lock is not poisoned");
        watchers.push(Watcher {
            sender,
            rate,
            second_started: Instant::now(),
            given: 0,
        });
        self.watched.store(true, Ordering::Relaxed);
        receiver
    }
}

/// A component of a dataflow of a group.
type ComponentKey = (String, String, String);

/// The tap points of every deployed dataflow of a process.
#[derive(Debug, Default)]
pub struct Taps {
    points: Mutex<BTreeMap<ComponentKey, Arc<TapPoint>>>,
}

impl Taps {
    /// No tap point yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The tap point of `component` of `dataflow` of `group`, made on first use.
    pub fn point(&self, group: &str, dataflow: &str, component: &str) -> Arc<TapPoint> {
        let key = (group.to_owned(), dataflow.to_owned(), component.to_owned());
        self.points
            .lock()
            .expect("the taps lock is not poisoned")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Watches `component` of `dataflow` of `group` at up to `rate` events
    /// a second.
    pub fn watch(
        &self,
        group: &str,
        dataflow: &str,
        component: &str,
        rate: u32,
    ) -> mpsc::Receiver<serde_json::Value> {
        self.point(group, dataflow, component).watch(rate)
    }

    /// Forgets the tap points of a dataflow no longer deployed; its
    /// watchers' channels end.
    pub fn forget(&self, group: &str, dataflow: &str) {
        self.points
            .lock()
            .expect("the taps lock is not poisoned")
            .retain(|(g, d, _), _| !(g == group && d == dataflow));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;

    fn events(count: usize) -> Vec<Event> {
        let origin = Origin::new("host", "flow", "source");
        (0..count)
            .map(|n| Event::from_message(format!("line {n}"), &origin))
            .collect()
    }

    #[test]
    fn a_watcher_gets_at_most_its_rate_in_a_second() {
        let taps = Taps::new();
        let mut receiver = taps.watch("g", "flow", "source", 5);
        let point = taps.point("g", "flow", "source");
        point.offer(&events(3));
        point.offer(&events(3));
        let mut received = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            received.push(event["message"].as_str().map(str::to_owned));
        }
        let expected: Vec<_> = ["line 0", "line 1", "line 2", "line 0", "line 1"]
            .map(|line| Some(line.to_owned()))
            .into();
        assert_eq!(received, expected);
    }

    #[test]
    fn a_point_nobody_watches_is_skipped_and_a_gone_watcher_is_forgotten() {
        let taps = Taps::new();
        let point = taps.point("g", "flow", "source");
        point.offer(&events(1));
        assert!(!point.watched.load(Ordering::Relaxed));
        let receiver = taps.watch("g", "flow", "source", 10);
        assert!(point.watched.load(Ordering::Relaxed));
        drop(receiver);
        point.offer(&events(1));
        assert!(!point.watched.load(Ordering::Relaxed));
    }

    #[test]
    fn forgetting_a_dataflow_ends_its_watchers() {
        let taps = Taps::new();
        let mut receiver = taps.watch("g", "flow", "source", 10);
        let point = taps.point("g", "flow", "source");
        taps.forget("g", "flow");
        drop(point);
        assert!(matches!(
            receiver.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
