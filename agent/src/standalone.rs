//! The glue of a standalone node, the one place that knows both the manager
//! and the worker of a process: it keeps the local worker in step with the
//! store in the same process: at start and after every new cluster revision, it runs
//! exactly the dataflows of its groups, restarting only those that changed,
//! with the custom collectors they use unpacked from the manager's package
//! files. Its live taps go to the manager in the same process, too.

use std::sync::Arc;

use datascale_manager::{
    collectors::{PackageFiles, desired_collectors},
    store::{Store, StoreError},
    taps::TapHub,
};
use datascale_protocol::{DesiredCollector, TapRequests};
use datascale_worker::{
    LocalWorker, PackageSource,
    tap_relay::{ExchangeError, TapExchange, Watched},
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

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

/// The manager's package files, where the worker of the same process takes
/// its packages from straight.
struct ManagerPackages<'a>(&'a PackageFiles);

#[async_trait::async_trait]
impl PackageSource for ManagerPackages<'_> {
    async fn package(&self, collector: &DesiredCollector) -> Result<Vec<u8>, String> {
        let files = self.0.clone();
        let sha256 = collector.sha256.clone();
        tokio::task::spawn_blocking(move || files.read(&sha256))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| format!("cannot read the package: {err}"))
    }
}

/// Follows `store` until `stop` is cancelled, with the collectors'
/// packages from `packages`.
pub async fn follow_store(
    worker: Arc<LocalWorker>,
    store: Arc<dyn Store>,
    packages: PackageFiles,
    groups: Vec<String>,
    stop: CancellationToken,
) {
    let mut revisions = store.subscribe();
    loop {
        let revision = *revisions.borrow_and_update();
        match converge(&worker, store.as_ref(), &packages, &groups).await {
            Ok(true) => worker.mark_applied(revision),
            Ok(false) => {}
            Err(err) => warn!(error = %err, "Cannot read the dataflows of this worker's groups."),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = revisions.changed() => if changed.is_err() { return },
        }
    }
}

/// Runs the dataflows of `groups` and the collectors they use; `false`
/// when a collector could not be had.
async fn converge(
    worker: &LocalWorker,
    store: &dyn Store,
    packages: &PackageFiles,
    groups: &[String],
) -> Result<bool, StoreError> {
    let mut stored = Vec::new();
    for group in groups {
        stored.extend(store.dataflows(Some(group)).await?);
    }
    let (collectors, _) = desired_collectors(
        stored.iter().map(|dataflow| &dataflow.document),
        &store.collectors().await?,
    );
    let dataflows = stored.iter().map(|dataflow| {
        (
            dataflow.group.as_str(),
            dataflow.name.as_str(),
            dataflow.revision,
            &dataflow.document,
        )
    });
    Ok(worker
        .converge(dataflows, &collectors, &ManagerPackages(packages))
        .await)
}
