//! Keeps the local worker of a standalone node in step with the store in the
//! same process: at start and after every new cluster revision, it runs
//! exactly the dataflows of its groups, restarting only those that changed.

use std::{collections::BTreeMap, sync::Arc};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Desired, LocalWorker};
use crate::{dataflow, manager::store::Store};

/// Follows `store` until `stop` is cancelled. When two groups hold a
/// dataflow of the same name, the group listed first wins and the clash is
/// logged.
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
) -> Result<BTreeMap<String, Desired>, crate::manager::store::StoreError> {
    let mut desired = BTreeMap::new();
    for group in groups {
        for stored in store.dataflows(Some(group)).await? {
            if desired.contains_key(&stored.name) {
                warn!(dataflow = %stored.name, group = %group, "A dataflow of this name comes from an earlier group of this worker; this one is not run.");
                continue;
            }
            match dataflow::parse(&stored.document) {
                Ok(dataflow) => {
                    desired.insert(
                        stored.name,
                        Desired {
                            revision: stored.revision,
                            dataflow,
                        },
                    );
                }
                Err(errors) => warn!(
                    dataflow = %stored.name,
                    group = %group,
                    revision = stored.revision,
                    errors = %errors,
                    "A stored dataflow is not valid for this version; it is not run."
                ),
            }
        }
    }
    Ok(desired)
}
