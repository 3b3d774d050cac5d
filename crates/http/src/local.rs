//! What the API of a node asks of the worker in its own process (a
//! standalone node's): the one narrow door between the HTTP layer, the
//! manager and the worker, so that neither the manager nor the plumbing
//! imports the worker.

use std::time::Duration;

use datascale_dataflow::status::DataflowStatus;
use datascale_protocol::{DataflowKey, DataflowReport};

/// The dataflows the worker of this process runs.
#[async_trait::async_trait]
pub trait LocalDataflows: Send + Sync + std::fmt::Debug {
    /// The revision of the cluster whose dataflows run now.
    fn applied_revision(&self) -> u64;

    /// Waits until `revision` (or a later one) runs, for at most `timeout`;
    /// whether it does.
    async fn wait_applied(&self, revision: u64, timeout: Duration) -> bool;

    /// One dataflow's status, when it runs here.
    async fn status(&self, key: &DataflowKey) -> Option<DataflowStatus>;

    /// Every dataflow's status, by group and name.
    async fn statuses(&self) -> Vec<DataflowStatus>;

    /// Every dataflow as a heartbeat reports it.
    async fn reports(&self) -> Vec<DataflowReport>;
}
