//! What a node says of a dataflow it runs: which revision runs, the last
//! one that could not start, and each component's state and counters.

use datascale_core::metrics::ComponentReport;
use datascale_protocol::DataflowState;
use serde::Serialize;
use utoipa::ToSchema;

/// A dataflow of the local worker, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataflowStatus {
    /// The group it comes from.
    pub group: String,
    /// The dataflow's name.
    pub name: String,
    /// Whether it runs.
    pub state: DataflowState,
    /// The revision running; none when none could start.
    pub revision: Option<u64>,
    /// The revision last asked for: the one running, or one that failed.
    pub wanted_revision: u64,
    /// The last revision that failed to start, and why, if one did since.
    pub last_failure: Option<Failure>,
    /// Each component's state and counters.
    pub components: Vec<ComponentReport>,
}

/// A revision that could not start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Failure {
    /// The revision.
    pub revision: u64,
    /// Why.
    pub error: String,
}
