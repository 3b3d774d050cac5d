//! A worker's side of live taps: it follows the watches open on its
//! manager and, for each one on a dataflow it has, sends copies of the
//! watched component's events there, gathered for a moment into one
//! request. Taps are for looking: a copy that cannot be sent is dropped,
//! and a dataflow never waits for a watcher.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use datascale_core::backoff::Backoff;
use datascale_protocol::{DataflowKey, TapRequests};
use serde_json::Value;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{debug, warn};

use super::LocalWorker;

/// How long copies are gathered before they are sent.
const GATHER: Duration = Duration::from_millis(200);

/// The most copies sent in one request.
const MOST_PER_SEND: usize = 500;

/// The longest wait before asking a manager that failed again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why the manager could not be asked or told.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExchangeError(pub String);

/// Whether a watch still takes copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// It took them (or had no room, which is the same to the worker).
    Yes,
    /// It has been closed: stop sending.
    Closed,
}

/// The manager's side of taps, as a worker sees it: over HTTP for a
/// worker, in process for a standalone node.
#[async_trait::async_trait]
pub trait TapExchange: Send + Sync + 'static {
    /// The watches open, once they are no longer those of version `known`
    /// (at once when `known` is `None`).
    async fn requests(&self, known: Option<u64>) -> Result<TapRequests, ExchangeError>;

    /// Sends copies of events to watch `id`.
    async fn deliver(&self, id: &str, events: Vec<Value>) -> Result<Watched, ExchangeError>;
}

/// Relays the taps of `worker` through `exchange`, for as long as it runs.
/// A watch on a dataflow this worker does not have is left alone.
pub async fn relay_taps(worker: Arc<LocalWorker>, exchange: Arc<dyn TapExchange>) {
    let mut relays: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    let mut known = None;
    let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
    let mut last_failure = None;
    loop {
        let requests = match exchange.requests(known).await {
            Ok(requests) => requests,
            Err(err) => {
                let message = err.to_string();
                if last_failure.as_ref() != Some(&message) {
                    warn!(error = %message, "Cannot follow the live taps of the manager; retrying.");
                    last_failure = Some(message);
                }
                tokio::time::sleep(backoff.next_wait()).await;
                continue;
            }
        };
        backoff.reset();
        last_failure = None;
        known = Some(requests.version);
        relays.retain(|id, relay| {
            let open = requests.taps.iter().any(|tap| &tap.id == id);
            if !open {
                relay.abort();
            }
            open && !relay.is_finished()
        });
        for tap in requests.taps {
            if relays.contains_key(&tap.id) {
                continue;
            }
            let key = DataflowKey::new(&tap.group, &tap.dataflow);
            if let Some(copies) = worker.watch(&key, &tap.component, tap.rate).await {
                debug!(tap = %tap.id, group = %tap.group, dataflow = %tap.dataflow, component = %tap.component, "Relaying a live tap.");
                let relay = tokio::spawn(forward(copies, exchange.clone(), tap.id.clone()));
                relays.insert(tap.id, relay);
            }
        }
    }
}

/// Sends the copies of one watch until it is closed or its dataflow removed.
async fn forward(mut copies: mpsc::Receiver<Value>, exchange: Arc<dyn TapExchange>, id: String) {
    while let Some(first) = copies.recv().await {
        let mut gathered = vec![first];
        let until = tokio::time::Instant::now() + GATHER;
        while gathered.len() < MOST_PER_SEND {
            match tokio::time::timeout_at(until, copies.recv()).await {
                Ok(Some(copy)) => gathered.push(copy),
                Ok(None) | Err(_) => break,
            }
        }
        match exchange.deliver(&id, gathered).await {
            Ok(Watched::Yes) => {}
            Ok(Watched::Closed) => return,
            Err(err) => debug!(tap = %id, error = %err, "Copies for a live tap were dropped."),
        }
    }
}
