//! Live taps through the manager. A person opens a watch on one component
//! of a dataflow; workers long-poll the list of open watches, send copies
//! of that component's events to the watches of dataflows they run, and the
//! manager passes them on to the person. A watch closes when the person
//! goes away. Taps are for looking, not for delivery: what a slow watcher
//! has no room for is left out.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use datascale_protocol::{TapRequest, TapRequests};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// A copy of an event, and the worker that saw it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TappedEvent {
    /// The worker's id (the host name for a standalone node's own worker).
    pub worker: String,
    /// The event.
    #[schema(value_type = Object)]
    pub event: Value,
}

/// The watches open on this manager.
#[derive(Debug)]
pub struct TapHub {
    open: Mutex<BTreeMap<String, OpenTap>>,
    version: watch::Sender<u64>,
    /// Ends every watch when the manager shuts down.
    shutdown: CancellationToken,
}

#[derive(Debug)]
struct OpenTap {
    request: TapRequest,
    events: mpsc::Sender<TappedEvent>,
}

/// An open watch; dropping it closes it.
#[derive(Debug)]
pub struct TapWatch {
    hub: Arc<TapHub>,
    id: String,
    events: mpsc::Receiver<TappedEvent>,
}

impl TapWatch {
    /// The next copy of the component's events, from any worker that runs
    /// it; `None` once the manager shuts down.
    pub async fn next(&mut self) -> Option<TappedEvent> {
        tokio::select! {
            copy = self.events.recv() => copy,
            () = self.hub.shutdown.cancelled() => None,
        }
    }
}

impl Drop for TapWatch {
    fn drop(&mut self) {
        if self
            .hub
            .open
            .lock()
            .expect("the tap hub lock is not poisoned")
            .remove(&self.id)
            .is_some()
        {
            self.hub.version.send_modify(|version| *version += 1);
        }
    }
}

impl TapHub {
    /// No watch open; every watch ends when `shutdown` is cancelled.
    /// Versions start at a random number, so that a worker that followed
    /// another manager (or this one before a restart) asks again at once.
    pub fn new(shutdown: CancellationToken) -> Arc<Self> {
        let mut start = [0u8; 4];
        getrandom::fill(&mut start).expect("the operating system provides random bytes");
        Arc::new(Self {
            open: Mutex::new(BTreeMap::new()),
            version: watch::Sender::new(u64::from(u32::from_le_bytes(start))),
            shutdown,
        })
    }

    /// Opens a watch on `component` of `dataflow` of `group`, taking up to
    /// `rate` events a second from each worker.
    pub fn open(
        self: &Arc<Self>,
        group: &str,
        dataflow: &str,
        component: &str,
        rate: u32,
    ) -> TapWatch {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).expect("the operating system provides random bytes");
        let id = format!("tap-{}", hex::encode(id));
        // Room for a few seconds of a few workers' events.
        let (sender, events) = mpsc::channel((rate as usize * 4).clamp(16, 4_096));
        let request = TapRequest {
            id: id.clone(),
            group: group.to_owned(),
            dataflow: dataflow.to_owned(),
            component: component.to_owned(),
            rate,
        };
        self.open
            .lock()
            .expect("the tap hub lock is not poisoned")
            .insert(
                id.clone(),
                OpenTap {
                    request,
                    events: sender,
                },
            );
        self.version.send_modify(|version| *version += 1);
        TapWatch {
            hub: self.clone(),
            id,
            events,
        }
    }

    /// The watches open now.
    pub fn requests(&self) -> TapRequests {
        let open = self.open.lock().expect("the tap hub lock is not poisoned");
        TapRequests {
            version: *self.version.borrow(),
            taps: open.values().map(|tap| tap.request.clone()).collect(),
        }
    }

    /// Follows the version of the open watches.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The watches open, once their version is no longer `known` (at once
    /// when it already is not).
    pub async fn requests_after(&self, known: Option<u64>) -> TapRequests {
        let mut version = self.subscribe();
        // The sender lives as long as `self`.
        let _ = version.wait_for(|now| Some(*now) != known).await;
        self.requests()
    }

    /// Passes events `worker` saw to watch `id`, as many as it has room
    /// for; `None` when no such watch is open.
    pub fn deliver(&self, id: &str, worker: &str, events: Vec<Value>) -> Option<usize> {
        let sender = self
            .open
            .lock()
            .expect("the tap hub lock is not poisoned")
            .get(id)
            .map(|tap| tap.events.clone())?;
        let mut accepted = 0;
        for event in events {
            let copy = TappedEvent {
                worker: worker.to_owned(),
                event,
            };
            if sender.try_send(copy).is_err() {
                break;
            }
            accepted += 1;
        }
        Some(accepted)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_watch_is_listed_while_open_and_gets_what_workers_send() {
        let hub = TapHub::new(CancellationToken::new());
        let before = hub.requests();
        assert!(before.taps.is_empty());
        let mut watch = hub.open("default", "flow", "parse", 10);
        let open = hub.requests_after(Some(before.version)).await;
        assert_eq!(open.taps.len(), 1);
        assert_eq!(open.taps[0].component, "parse");
        let id = open.taps[0].id.clone();
        assert_eq!(
            hub.deliver(&id, "w-1", vec![json!({"n": 1}), json!({"n": 2})]),
            Some(2)
        );
        let first = watch.next().await.unwrap();
        assert_eq!(
            (first.worker.as_str(), &first.event),
            ("w-1", &json!({"n": 1}))
        );
        drop(watch);
        let closed = hub.requests_after(Some(open.version)).await;
        assert!(closed.taps.is_empty());
        assert_eq!(hub.deliver(&id, "w-1", vec![json!({})]), None);
    }
}
