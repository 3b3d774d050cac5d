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
//!
//! The custom collectors the dataflows use are unpacked before the
//! dataflows are applied, and the versions no dataflow uses any more are
//! removed after; a source that names no version runs the highest one
//! wanted, so that a newer upload restarts the dataflows that use it.

pub mod sync;
pub mod tap_relay;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use datascale_core::{component::BuildError, metrics::ComponentState};
use datascale_dataflow::{
    Dataflow,
    collector::{self, shelf::Shelf},
    sources::SourceConfig,
    status::{DataflowStatus, Failure},
    topology::{self, Environment, RunningDataflow},
};
use datascale_http::LocalDataflows;
use datascale_protocol::{DataflowKey, DataflowReport, DataflowState, DesiredCollector};
use tokio::sync::{Mutex, mpsc, watch};
use tracing::{info, warn};

/// Why a dataflow could not be applied, as its status reports it.
#[derive(Debug, thiserror::Error)]
#[error("revision {revision} of dataflow `{name}` cannot start: {source}{}", match .previous_kept {
    true => "; the previous revision keeps running",
    false => "",
})]
struct ApplyError {
    name: String,
    revision: u64,
    /// Whether an earlier revision was running and runs again.
    previous_kept: bool,
    source: BuildError,
}

/// A dataflow a worker should run, at a revision.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The group it comes from.
    pub group: String,
    /// The revision of its document.
    pub revision: u64,
    /// The document, with the version of each collector it runs.
    pub dataflow: Dataflow,
    /// What it runs: its document as read here, and whether each collector
    /// it runs is unpacked; a dataflow whose fingerprint changes is applied
    /// again even at the same revision.
    fingerprint: String,
}

/// Where a worker gets the packages of collectors.
#[async_trait::async_trait]
pub trait PackageSource: Send + Sync {
    /// The package of `collector`, or why it cannot be had.
    async fn package(&self, collector: &DesiredCollector) -> Result<Vec<u8>, String>;
}

/// The dataflows to run, from `(group, name, revision, document)`, each
/// collector source given the version it runs among `collectors`. A
/// document that does not validate with this version is left out and logged.
fn desired_set<'a>(
    dataflows: impl IntoIterator<Item = (&'a str, &'a str, u64, &'a serde_json::Value)>,
    collectors: &[DesiredCollector],
    shelf: &Shelf,
) -> BTreeMap<DataflowKey, Desired> {
    let mut desired = BTreeMap::new();
    for (group, name, revision, document) in dataflows {
        match datascale_dataflow::parse(document) {
            Ok(mut dataflow) => {
                let mut fingerprint = String::new();
                for source in &mut dataflow.sources {
                    if let SourceConfig::Collector(config) = &mut source.config {
                        let versions = collectors
                            .iter()
                            .filter(|c| c.name == config.collector)
                            .map(|c| c.version.as_str());
                        let chosen = collector::resolve(versions, config.version.as_deref());
                        let unpacked = collectors.iter().find(|c| {
                            c.name == config.collector && Some(c.version.as_str()) == chosen
                        });
                        fingerprint.push_str(match unpacked {
                            Some(found) if shelf.has(found) => &found.sha256,
                            _ => "missing",
                        });
                        config.version = config.version.take().or(chosen.map(str::to_owned));
                    }
                }
                fingerprint.insert_str(0, &document_sha256(&dataflow));
                desired.insert(
                    DataflowKey::new(group, name),
                    Desired {
                        group: group.to_owned(),
                        revision,
                        dataflow,
                        fingerprint,
                    },
                );
            }
            Err(errors) => warn!(
                dataflow = %name,
                group = %group,
                revision,
                errors = %errors,
                "A dataflow is not valid for this version; it is not run."
            ),
        }
    }
    desired
}

#[derive(Debug)]
struct Running {
    revision: u64,
    dataflow: Dataflow,
    /// The SHA-256 of the document as this worker reads it, in hex.
    document_sha256: String,
    handle: RunningDataflow,
}

/// The SHA-256 of a dataflow's document, in hex.
fn document_sha256(dataflow: &Dataflow) -> String {
    use sha2::Digest;
    let text = serde_json::to_vec(dataflow).expect("a dataflow serializes");
    hex::encode(sha2::Sha256::digest(text))
}

/// One dataflow's place on this worker.
#[derive(Debug)]
struct Deployed {
    /// The revision last asked for: running, or failed to start.
    wanted: u64,
    /// The fingerprint of what was last asked for.
    fingerprint: String,
    running: Option<Running>,
    last_failure: Option<Failure>,
}

/// The dataflows this process runs.
#[derive(Debug)]
pub struct LocalWorker {
    environment: Environment,
    drain_deadline: Duration,
    dataflows: Mutex<BTreeMap<DataflowKey, Deployed>>,
    /// The last configuration revision fully applied.
    applied: watch::Sender<u64>,
}

#[async_trait::async_trait]
impl LocalDataflows for LocalWorker {
    fn applied_revision(&self) -> u64 {
        *self.applied.borrow()
    }

    async fn wait_applied(&self, revision: u64, timeout: Duration) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(timeout, applied.wait_for(|done| *done >= revision))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    async fn status(&self, key: &DataflowKey) -> Option<DataflowStatus> {
        let dataflows = self.dataflows.lock().await;
        dataflows
            .get(key)
            .map(|deployed| self.status_of(key, deployed))
    }

    async fn statuses(&self) -> Vec<DataflowStatus> {
        let dataflows = self.dataflows.lock().await;
        dataflows
            .iter()
            .map(|(key, deployed)| self.status_of(key, deployed))
            .collect()
    }

    async fn reports(&self) -> Vec<DataflowReport> {
        let dataflows = self.dataflows.lock().await;
        dataflows
            .iter()
            .map(|(key, deployed)| {
                let components = self.environment.metrics.reports(&key.group, &key.name);
                let running = deployed.running.as_ref();
                let sent_by = |names: &[&str]| {
                    components
                        .iter()
                        .filter(|report| names.contains(&report.component.as_str()))
                        .map(|report| report.events_out)
                        .sum()
                };
                let (sources, sinks) = running.map_or_else(Default::default, |running| {
                    let flow = &running.dataflow;
                    (
                        flow.sources
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>(),
                        flow.sinks
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>(),
                    )
                });
                DataflowReport {
                    group: key.group.clone(),
                    name: key.name.clone(),
                    state: match running {
                        Some(_) => DataflowState::Running,
                        None => DataflowState::Failed,
                    },
                    revision: running.map(|running| running.revision),
                    document_sha256: running.map(|running| running.document_sha256.clone()),
                    wanted_revision: deployed.wanted,
                    last_error: deployed.last_failure.as_ref().map(|f| f.error.clone()),
                    restarting: components
                        .iter()
                        .filter(|report| report.state == ComponentState::Restarting)
                        .count(),
                    events_in: sent_by(&sources),
                    events_out: sent_by(&sinks),
                    errors: components.iter().map(|report| report.errors).sum(),
                }
            })
            .collect()
    }
}

impl LocalWorker {
    /// A worker with no dataflow yet; a stopped dataflow gets at most
    /// `drain_deadline` to deliver what it has in flight.
    pub fn new(environment: Environment, drain_deadline: Duration) -> Arc<Self> {
        Arc::new(Self {
            environment,
            drain_deadline,
            dataflows: Mutex::new(BTreeMap::new()),
            applied: watch::Sender::new(0),
        })
    }

    /// Records that the configuration at `revision` has been applied.
    pub fn mark_applied(&self, revision: u64) {
        self.applied.send_replace(revision);
    }

    /// Runs a dataflow at its revision, replacing the running version of the
    /// same name. When it cannot start, the previous version (if any) runs
    /// again and the failure is kept for [`LocalWorker::status`].
    async fn apply(&self, desired: Desired) {
        let Desired {
            group,
            revision,
            dataflow,
            fingerprint,
        } = desired;
        let mut dataflows = self.dataflows.lock().await;
        let key = DataflowKey::new(&group, &dataflow.name);
        let name = dataflow.name.clone();
        let mut previous = dataflows.remove(&key).and_then(|deployed| deployed.running);
        if let Some(running) = previous
            .as_mut()
            .filter(|running| running.dataflow == dataflow)
        {
            running.revision = revision;
            dataflows.insert(
                key,
                Deployed {
                    wanted: revision,
                    fingerprint,
                    running: previous,
                    last_failure: None,
                },
            );
            return;
        }
        let previous = match previous {
            Some(running) => {
                running.handle.stop(self.drain_deadline).await;
                Some((running.revision, running.dataflow, running.document_sha256))
            }
            None => None,
        };
        let started = topology::start(&dataflow, &group, &self.environment);
        let source = match started {
            Ok(handle) => {
                info!(dataflow = %name, revision, "Dataflow started.");
                let running = Running {
                    revision,
                    document_sha256: document_sha256(&dataflow),
                    dataflow,
                    handle,
                };
                dataflows.insert(
                    key,
                    Deployed {
                        wanted: revision,
                        fingerprint,
                        running: Some(running),
                        last_failure: None,
                    },
                );
                return;
            }
            Err(source) => source,
        };
        warn!(dataflow = %name, revision, error = %source, "The dataflow cannot start.");
        // The previous version ran with the same configuration, and what it
        // held (ports, files) has been let go by the stop.
        let restarted = previous.and_then(|(revision, dataflow, document_sha256)| {
            match topology::start(&dataflow, &group, &self.environment) {
                Ok(handle) => Some(Running {
                    revision,
                    document_sha256,
                    dataflow,
                    handle,
                }),
                Err(again) => {
                    warn!(dataflow = %name, error = %again, "The previous revision cannot start again either.");
                    None
                }
            }
        });
        let error = ApplyError {
            name: name.clone(),
            revision,
            previous_kept: restarted.is_some(),
            source,
        };
        dataflows.insert(
            key,
            Deployed {
                wanted: revision,
                fingerprint,
                running: restarted,
                last_failure: Some(Failure {
                    revision,
                    error: error.to_string(),
                }),
            },
        );
    }

    /// Makes the worker run exactly `desired`: dataflows not in it stop, and
    /// only those whose revision changed are applied again. A dataflow that
    /// cannot start is reported in its status.
    async fn reconcile(&self, desired: BTreeMap<DataflowKey, Desired>) {
        let current: Vec<(DataflowKey, u64, String)> = self
            .dataflows
            .lock()
            .await
            .iter()
            .map(|(key, deployed)| (key.clone(), deployed.wanted, deployed.fingerprint.clone()))
            .collect();
        for (key, _, _) in current
            .iter()
            .filter(|(key, _, _)| !desired.contains_key(key))
        {
            info!(group = %key.group, dataflow = %key.name, "Dataflow removed.");
            self.remove(key).await;
        }
        for (key, wanted) in desired {
            let seen = current.iter().any(|(known, at, fingerprint)| {
                *known == key && *at == wanted.revision && *fingerprint == wanted.fingerprint
            });
            if !seen {
                // A failure is kept in the dataflow's status.
                self.apply(wanted).await;
            }
        }
    }

    /// Makes the worker run `dataflows` (`(group, name, revision,
    /// document)`) with `collectors`: unpacks the collectors it lacks, from
    /// `packages`, applies the dataflows, then removes the collectors not
    /// wanted any more. `false` when a collector could not be had: the
    /// dataflows that use it are reported failed, and run once it is had.
    pub async fn converge<'a>(
        &self,
        dataflows: impl IntoIterator<Item = (&'a str, &'a str, u64, &'a serde_json::Value)>,
        collectors: &[DesiredCollector],
        packages: &dyn PackageSource,
    ) -> bool {
        let shelf = &self.environment.collectors;
        let mut complete = true;
        for collector in collectors.iter().filter(|c| !shelf.has(c)) {
            let installed = match packages.package(collector).await {
                Ok(bytes) => {
                    let (shelf, collector) = (shelf.clone(), collector.clone());
                    tokio::task::spawn_blocking(move || shelf.install(&collector, &bytes))
                        .await
                        .map_err(|err| err.to_string())
                        .and_then(|installed| installed.map_err(|err| err.to_string()))
                }
                Err(why) => Err(why),
            };
            if let Err(error) = installed {
                warn!(collector = %collector.name, version = %collector.version, error = %error, "Cannot install a collector; the dataflows that use it wait for it.");
                complete = false;
            }
        }
        self.reconcile(desired_set(dataflows, collectors, shelf))
            .await;
        let (shelf, wanted) = (shelf.clone(), collectors.to_vec());
        let _ = tokio::task::spawn_blocking(move || shelf.keep_only(&wanted)).await;
        complete
    }

    /// Stops and forgets a dataflow; `false` when there was none such.
    pub async fn remove(&self, key: &DataflowKey) -> bool {
        let removed = self.dataflows.lock().await.remove(key);
        match removed {
            Some(deployed) => {
                if let Some(running) = deployed.running {
                    running.handle.stop(self.drain_deadline).await;
                }
                self.environment.taps.forget(&key.group, &key.name);
                true
            }
            None => false,
        }
    }

    /// Watches `component` of a deployed dataflow at up to `rate` events a
    /// second, across restarts, until the dataflow is removed; `None` when
    /// this worker does not have that dataflow.
    pub async fn watch(
        &self,
        key: &DataflowKey,
        component: &str,
        rate: u32,
    ) -> Option<mpsc::Receiver<serde_json::Value>> {
        let dataflows = self.dataflows.lock().await;
        dataflows.contains_key(key).then(|| {
            self.environment
                .taps
                .watch(&key.group, &key.name, component, rate)
        })
    }

    fn status_of(&self, key: &DataflowKey, deployed: &Deployed) -> DataflowStatus {
        let revision = deployed.running.as_ref().map(|running| running.revision);
        DataflowStatus {
            group: key.group.clone(),
            name: key.name.clone(),
            state: match revision {
                Some(_) => DataflowState::Running,
                None => DataflowState::Failed,
            },
            revision,
            wanted_revision: deployed.wanted,
            last_failure: deployed.last_failure.clone(),
            components: self.environment.metrics.reports(&key.group, &key.name),
        }
    }

    /// Stops every dataflow at once, each with the drain deadline.
    pub async fn stop_all(&self) {
        let dataflows = std::mem::take(&mut *self.dataflows.lock().await);
        let mut stopping = tokio::task::JoinSet::new();
        for running in dataflows
            .into_values()
            .filter_map(|deployed| deployed.running)
        {
            stopping.spawn(running.handle.stop(self.drain_deadline));
        }
        stopping.join_all().await;
    }
}
