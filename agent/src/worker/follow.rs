//! Keeps the local worker of a standalone node in step with the store in the
//! same process: at start and after every new cluster revision, it runs
//! exactly the dataflows of its groups, restarting only those that changed.
//! Its live taps go to the manager in the same process, too.

use std::{collections::BTreeMap, sync::Arc};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{
    DataflowKey, Desired, LocalWorker, desired_set,
    tap_relay::{ExchangeError, TapExchange, Watched},
};
use crate::{
    cluster::TapRequests,
    manager::{
        store::{Store, StoreError},
        taps::TapHub,
    },
};

/// The taps of the manager in this process, for its own worker, whose
/// copies are marked with `worker`.
#[derive(Debug)]
pub struct LocalTaps {
    /// The manager's open watches.
    pub hub: Arc<TapHub>,
    /// The name the copies carry: this host's.
    pub worker: String,
}

#[async_trait::async_trait]
impl TapExchange for LocalTaps {
    async fn requests(&self, known: Option<u64>) -> Result<TapRequests, ExchangeError> {
        Ok(self.hub.requests_after(known).await)
    }

    async fn deliver(
        &self,
        id: &str,
        events: Vec<serde_json::Value>,
    ) -> Result<Watched, ExchangeError> {
        Ok(match self.hub.deliver(id, &self.worker, events) {
            Some(_) => Watched::Yes,
            None => Watched::Closed,
        })
    }
}

/// Follows `store` until `stop` is cancelled.
pub async fn follow_store(
    worker: Arc<LocalWorker>,
    store: Arc<dyn Store>,
    groups: Vec<String>,
    stop: CancellationToken,
) {
    let mut revisions = store.subscribe();
    loop {
        let revision = *revisions.borrow_and_update();
        match desired(store.as_ref(), &groups).await {
            Ok(desired) => {
                worker.reconcile(desired).await;
                worker.mark_applied(revision);
            }
            Err(err) => warn!(error = %err, "Cannot read the dataflows of this worker's groups."),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = revisions.changed() => if changed.is_err() { return },
        }
    }
}

async fn desired(
    store: &dyn Store,
    groups: &[String],
) -> Result<BTreeMap<DataflowKey, Desired>, StoreError> {
    let mut stored = Vec::new();
    for group in groups {
        stored.extend(store.dataflows(Some(group)).await?);
    }
    Ok(desired_set(stored.iter().map(|dataflow| {
        (
            dataflow.group.as_str(),
            dataflow.name.as_str(),
            dataflow.revision,
            &dataflow.document,
        )
    })))
}
