//! The protocol between workers and managers: what a worker sends to enroll,
//! in its heartbeats and when it asks for its desired state, and what the
//! manager answers; the header that names the cluster; which dataflow is
//! which; what a node says of itself (its mode and its resource limits). Both sides use these types, so they cannot drift apart. It
//! imports no other crate of the workspace.

mod node;

pub use node::{CgroupVersion, EffectiveLimits, LimitSource, Mode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{
    ToSchema,
    openapi::{Ref, RefOr, Schema},
};

/// The header naming the cluster a request is meant for.
pub const CLUSTER_HEADER: &str = "x-datascale-cluster";

/// A name of the safe charset (a group, a dataflow, an event set, a
/// worker, a collector): letters, digits, `_`, `-` and `.`, starting with a
/// letter or a digit; at most 64 characters.
#[derive(Debug, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
pub struct Name(pub String);

/// Whether a dataflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataflowState {
    /// A revision of it runs.
    Running,
    /// No revision of it could start.
    Failed,
}

/// Which dataflow: its group and its name. The same name in two groups is
/// two dataflows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DataflowKey {
    /// The group.
    pub group: String,
    /// The dataflow's name.
    pub name: String,
}

impl DataflowKey {
    /// The key of the dataflow `name` of `group`.
    pub fn new(group: &str, name: &str) -> Self {
        Self {
            group: group.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// How long a sync request waits for a change before answering "no change".
pub const SYNC_WAIT_SECS: u64 = 30;

/// A worker's identity, sent when it enrolls and with every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Its stable id, kept in its data directory.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: String,
    /// Its host name.
    pub hostname: String,
    /// Its DataScale version.
    pub version: String,
    /// The groups of its own configuration (`service.worker.groups`).
    #[schema(value_type = Vec<Name>)]
    pub groups: Vec<String>,
    /// The address its local API serves on.
    pub address: String,
}

/// `POST /api/v1/workers/enroll`, with the enrollment token.
pub type EnrollRequest = Identity;

/// The answer to an enrollment: the worker's own credential.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Enrolled {
    /// The worker's id.
    pub id: String,
    /// The credential the worker presents from now on, instead of the
    /// enrollment token. Shown once; the manager keeps only its hash.
    pub credential: String,
}

/// One dataflow as a worker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DataflowReport {
    /// Its group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Whether it runs.
    pub state: DataflowState,
    /// The revision running, if any.
    pub revision: Option<u64>,
    /// The SHA-256 (hex) of the document running, as this worker reads it.
    pub document_sha256: Option<String>,
    /// The revision it was last asked to run.
    pub wanted_revision: u64,
    /// Why the wanted revision does not run, when it does not.
    pub last_error: Option<String>,
    /// Components that are restarting after a failure.
    #[schema(maximum = 18446744073709551615_u64)]
    pub restarting: usize,
    /// Events its sources took in.
    pub events_in: u64,
    /// Events its sinks wrote.
    pub events_out: u64,
    /// Errors of its components.
    pub errors: u64,
}

/// `POST /api/v1/heartbeat`: how a worker is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    /// Who it is.
    pub identity: Identity,
    /// The revision of the desired state it has applied.
    pub applied_revision: u64,
    /// Each dataflow it runs.
    pub dataflows: Vec<DataflowReport>,
    /// Its process's CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Its process's resident memory, in bytes.
    pub resident_bytes: u64,
    /// The host's load average over one minute.
    pub load1: f64,
}

/// The manager's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReply {
    /// The groups whose dataflows the worker runs.
    pub groups: Vec<String>,
    /// The revision of the worker's desired state.
    pub revision: u64,
}

/// One dataflow a worker should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DesiredDataflow {
    /// Its group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// The revision of its document.
    pub revision: u64,
    /// The dataflow document.
    #[schema(schema_with = dataflow_document)]
    pub document: Value,
}

/// The schema of a dataflow document, which the manager's OpenAPI document
/// holds under this name.
fn dataflow_document() -> RefOr<Schema> {
    let mut document = Ref::from_schema_name("DataflowDocument");
    document.description = "The dataflow document.".to_owned();
    RefOr::Ref(document)
}

/// The answer to `GET /api/v1/sync`: everything a worker should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DesiredState {
    /// The epoch of the manager's store: revisions compare only within one.
    pub epoch: u64,
    /// The revision of this state; a worker asks again with it.
    pub revision: u64,
    /// The groups whose dataflows it runs.
    pub groups: Vec<String>,
    /// The dataflows of those groups.
    pub dataflows: Vec<DesiredDataflow>,
    /// The custom collectors those dataflows use, each version once; a
    /// source that names no version runs the highest of its collector here.
    #[serde(default)]
    pub collectors: Vec<DesiredCollector>,
    /// The live taps open on the manager, for a worker that asked with
    /// `taps`; not kept with the rest, since they end with their watchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taps: Option<TapRequests>,
}

/// One version of a custom collector a worker should have unpacked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct DesiredCollector {
    /// The collector's name.
    pub name: String,
    /// The version.
    pub version: String,
    /// The SHA-256 (hex) of its package, from
    /// `GET /api/v1/collectors/{name}/{version}/package`.
    pub sha256: String,
}

/// A person watching one component of a dataflow through the manager: the
/// workers that run the dataflow send it a copy of the component's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TapRequest {
    /// The watch's id, to send its events to.
    pub id: String,
    /// The dataflow's group.
    pub group: String,
    /// The dataflow.
    pub dataflow: String,
    /// The component watched.
    pub component: String,
    /// The most events a second each worker sends.
    pub rate: u32,
}

/// The watches open on a manager, sent with a worker's desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TapRequests {
    /// Changes with every watch opened or closed.
    pub version: u64,
    /// The watches open now.
    pub taps: Vec<TapRequest>,
}

/// `POST /api/v1/taps/{id}/events`: copies of a component's events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TappedEvents {
    /// The events, as JSON objects.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// The answer to [`TappedEvents`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TapDelivered {
    /// How many of the events the watcher had room for.
    pub accepted: usize,
}
