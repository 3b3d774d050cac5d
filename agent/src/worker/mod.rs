//! The local worker: the dataflows this process runs, and changing them
//! one at a time while the others go on.
//!
//! Applying a dataflow that is already running with the same document
//! changes nothing. A changed one is stopped (its sources write their
//! checkpoints as they drain) and its new version started; when the new
//! version cannot start (a path that cannot be used, a port taken), the
//! previous version is started again, so a bad change never takes a
//! working dataflow down, and the failure is kept with the revision that
//! failed.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Serialize;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{
    dataflow::Dataflow,
    metrics::ComponentReport,
    runtime::{self, BuildError, Environment, RunningDataflow},
};

/// Why a dataflow could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("revision {revision} of dataflow `{name}` cannot start: {source}{}", match .previous_kept {
    true => "; the previous revision keeps running",
    false => "",
})]
pub struct ApplyError {
    /// The dataflow's name.
    pub name: String,
    /// The revision that failed.
    pub revision: u64,
    /// Whether an earlier revision was running and runs again.
    pub previous_kept: bool,
    /// Why it cannot start.
    pub source: BuildError,
}

/// What applying a dataflow did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// It was not running and now runs.
    Started,
    /// It ran another document and now runs this one.
    Restarted,
    /// It already ran this document; nothing was touched.
    Unchanged,
}

/// A dataflow of the local worker, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DataflowStatus {
    /// The dataflow's name.
    pub name: String,
    /// The revision running: 1 for the first document, one more for each change.
    pub revision: u64,
    /// The document running.
    pub document: Dataflow,
    /// The last revision that failed to start, and why, if one did since.
    pub last_failure: Option<Failure>,
    /// Each component's state and counters.
    pub components: Vec<ComponentReport>,
}

/// A revision that could not start.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The revision.
    pub revision: u64,
    /// Why.
    pub error: String,
}

#[derive(Debug)]
struct Deployed {
    revision: u64,
    dataflow: Dataflow,
    running: RunningDataflow,
    last_failure: Option<Failure>,
}

/// The dataflows this process runs.
#[derive(Debug)]
pub struct LocalWorker {
    environment: Environment,
    drain_deadline: Duration,
    dataflows: Mutex<BTreeMap<String, Deployed>>,
}

impl LocalWorker {
    /// A worker with no dataflow yet; a stopped dataflow gets at most
    /// `drain_deadline` to deliver what it has in flight.
    pub fn new(environment: Environment, drain_deadline: Duration) -> Arc<Self> {
        Arc::new(Self {
            environment,
            drain_deadline,
            dataflows: Mutex::new(BTreeMap::new()),
        })
    }

    /// The environment its dataflows run in.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// Runs `dataflow`, replacing the running version of the same name.
    pub async fn apply(&self, dataflow: Dataflow) -> Result<(Applied, u64), ApplyError> {
        let mut dataflows = self.dataflows.lock().await;
        let name = dataflow.name.clone();
        let Some(previous) = dataflows.remove(&name) else {
            let running =
                runtime::start(&dataflow, &self.environment).map_err(|source| ApplyError {
                    name: name.clone(),
                    revision: 1,
                    previous_kept: false,
                    source,
                })?;
            dataflows.insert(
                name,
                Deployed {
                    revision: 1,
                    dataflow,
                    running,
                    last_failure: None,
                },
            );
            return Ok((Applied::Started, 1));
        };
        if previous.dataflow == dataflow {
            let revision = previous.revision;
            dataflows.insert(name, previous);
            return Ok((Applied::Unchanged, revision));
        }
        let revision = previous.revision + 1;
        previous.running.stop(self.drain_deadline).await;
        match runtime::start(&dataflow, &self.environment) {
            Ok(running) => {
                info!(dataflow = %name, revision, "Dataflow replaced by a new revision.");
                dataflows.insert(
                    name,
                    Deployed {
                        revision,
                        dataflow,
                        running,
                        last_failure: None,
                    },
                );
                Ok((Applied::Restarted, revision))
            }
            Err(source) => {
                warn!(dataflow = %name, revision, error = %source, "The new revision cannot start; starting the previous one again.");
                let mut error = ApplyError {
                    name: name.clone(),
                    revision,
                    previous_kept: false,
                    source,
                };
                // It ran before with the same configuration, and what it
                // held (ports, files) has been let go by the stop.
                match runtime::start(&previous.dataflow, &self.environment) {
                    Ok(running) => {
                        error.previous_kept = true;
                        let last_failure = Some(Failure {
                            revision,
                            error: error.to_string(),
                        });
                        dataflows.insert(
                            name,
                            Deployed {
                                running,
                                last_failure,
                                ..previous
                            },
                        );
                    }
                    Err(again) => {
                        warn!(dataflow = %name, error = %again, "The previous revision cannot start again either.");
                    }
                }
                Err(error)
            }
        }
    }

    /// Stops and forgets a dataflow; `false` when there was none of that name.
    pub async fn remove(&self, name: &str) -> bool {
        let removed = self.dataflows.lock().await.remove(name);
        match removed {
            Some(deployed) => {
                deployed.running.stop(self.drain_deadline).await;
                true
            }
            None => false,
        }
    }

    /// One dataflow's status.
    pub async fn status(&self, name: &str) -> Option<DataflowStatus> {
        let dataflows = self.dataflows.lock().await;
        dataflows
            .get(name)
            .map(|deployed| self.status_of(name, deployed))
    }

    /// Every dataflow's status, by name.
    pub async fn statuses(&self) -> Vec<DataflowStatus> {
        let dataflows = self.dataflows.lock().await;
        dataflows
            .iter()
            .map(|(name, deployed)| self.status_of(name, deployed))
            .collect()
    }

    fn status_of(&self, name: &str, deployed: &Deployed) -> DataflowStatus {
        DataflowStatus {
            name: name.to_owned(),
            revision: deployed.revision,
            document: deployed.dataflow.clone(),
            last_failure: deployed.last_failure.clone(),
            components: self.environment.metrics.reports(name),
        }
    }

    /// Stops every dataflow at once, each with the drain deadline.
    pub async fn stop_all(&self) {
        let dataflows = std::mem::take(&mut *self.dataflows.lock().await);
        let mut stopping = tokio::task::JoinSet::new();
        for deployed in dataflows.into_values() {
            stopping.spawn(deployed.running.stop(self.drain_deadline));
        }
        stopping.join_all().await;
    }
}
