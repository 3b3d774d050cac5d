//! The workers a manager knows: their records (from the store, cached here),
//! the credentials issued to them, what their last heartbeat said, and
//! whether they are alive (`phi`: a phi-accrual detector per worker). Also
//! what each worker should run: its desired state and that state's revision.

pub mod phi;

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use utoipa::ToSchema;

use self::phi::PhiDetector;
use super::store::{Change, Store, StoreError, WorkerRecord, Written};
use crate::{
    auth::WorkerCredentials,
    cluster::{DesiredDataflow, DesiredState, Enrolled, Heartbeat, Identity},
};

/// How the manager judges whether workers are alive.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// The interval workers heartbeat at, the detector's first estimate.
    pub heartbeat_interval: Duration,
    /// Phi at and above which a worker is suspect.
    pub phi_threshold: f64,
    /// The least spread of heartbeat intervals the detector assumes.
    pub min_std_dev: Duration,
    /// Silence after which a worker is offline.
    pub offline_after: Duration,
    /// Silence after which an offline worker leaves the list.
    pub expire_after: Duration,
}

/// Whether a worker is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Its heartbeats come as expected.
    Online,
    /// Its heartbeat is overdue (phi at or above the threshold).
    Suspect,
    /// Nothing heard for `offline_after`, or not since this manager started.
    Offline,
}

/// A worker as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerView {
    /// Its record: identity and groups.
    #[serde(flatten)]
    pub record: WorkerRecord,
    /// The groups whose dataflows it runs.
    pub groups: Vec<String>,
    /// Whether it is alive.
    pub state: WorkerState,
    /// The detector's phi now.
    pub phi: f64,
    /// When its last heartbeat arrived (RFC 3339), if one did since this
    /// manager started.
    pub last_heartbeat: Option<String>,
    /// The revision of the state it should run.
    pub desired_revision: u64,
    /// What its last heartbeat said, if one came.
    pub status: Option<Heartbeat>,
}

#[derive(Debug)]
struct Entry {
    record: WorkerRecord,
    detector: PhiDetector,
    last_heartbeat: Option<(String, Heartbeat)>,
}

/// The workers of this manager.
#[derive(Debug)]
pub struct WorkerRegistry {
    store: Arc<dyn Store>,
    liveness: Liveness,
    started: Instant,
    workers: RwLock<HashMap<String, Entry>>,
    /// SHA-256 of each live credential → worker id.
    credentials: RwLock<HashMap<String, String>>,
    /// Counts changes to the records, for those who wait on them.
    records_changed: watch::Sender<u64>,
}

/// The SHA-256 of a credential, in hex: all the manager keeps of it.
fn credential_hash(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

impl WorkerRegistry {
    /// The registry of the workers in `store`.
    pub async fn load(store: Arc<dyn Store>, liveness: Liveness) -> Result<Arc<Self>, StoreError> {
        let registry = Arc::new(Self {
            store: store.clone(),
            liveness,
            started: Instant::now(),
            workers: RwLock::default(),
            credentials: RwLock::default(),
            records_changed: watch::Sender::new(0),
        });
        for record in store.workers().await? {
            registry.remember(record);
        }
        Ok(registry)
    }

    fn remember(&self, record: WorkerRecord) {
        let mut credentials = self
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        credentials.retain(|_, id| *id != record.id);
        if !record.revoked {
            credentials.insert(record.credential_sha256.clone(), record.id.clone());
        }
        drop(credentials);
        let mut workers = self.workers.write().unwrap_or_else(PoisonError::into_inner);
        match workers.get_mut(&record.id) {
            Some(entry) => entry.record = record,
            None => {
                let detector =
                    PhiDetector::new(self.liveness.heartbeat_interval, self.liveness.min_std_dev);
                workers.insert(
                    record.id.clone(),
                    Entry {
                        record,
                        detector,
                        last_heartbeat: None,
                    },
                );
            }
        }
        drop(workers);
        self.records_changed.send_modify(|count| *count += 1);
    }

    /// Follows changes to the workers' records (enrollment, assignment,
    /// revocation, deletion).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.records_changed.subscribe()
    }

    fn forget(&self, id: &str) {
        self.workers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        self.credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, known| known != id);
        self.records_changed.send_modify(|count| *count += 1);
    }

    /// Enrolls a worker (again): issues it a new credential, which replaces
    /// any earlier one.
    pub async fn enroll(&self, identity: &Identity) -> Result<Enrolled, StoreError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system provides random bytes");
        let credential = format!("dsc_{}", hex::encode(secret));
        let record = self
            .store
            .enroll_worker(WorkerRecord {
                id: identity.id.clone(),
                hostname: identity.hostname.clone(),
                version: identity.version.clone(),
                own_groups: identity.groups.clone(),
                assigned_groups: None,
                groups_revision: 0,
                revoked: false,
                enrolled_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                credential_sha256: credential_hash(&credential),
            })
            .await?;
        self.remember(record);
        Ok(Enrolled {
            id: identity.id.clone(),
            credential,
        })
    }

    /// The record of a worker.
    pub fn record(&self, id: &str) -> Option<WorkerRecord> {
        self.workers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|entry| entry.record.clone())
    }

    /// Records a heartbeat; a worker whose own groups, host name or version
    /// changed is recorded anew. `None` when the worker is not enrolled.
    pub async fn heartbeat(
        &self,
        heartbeat: Heartbeat,
    ) -> Result<Option<WorkerRecord>, StoreError> {
        let identity = &heartbeat.identity;
        let Some(mut record) = self.record(&identity.id) else {
            return Ok(None);
        };
        if record.own_groups != identity.groups
            || record.hostname != identity.hostname
            || record.version != identity.version
        {
            record.own_groups = identity.groups.clone();
            record.hostname = identity.hostname.clone();
            record.version = identity.version.clone();
            record = self.store.enroll_worker(record).await?;
            self.remember(record.clone());
        }
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut workers = self.workers.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = workers.get_mut(&identity.id) {
            entry.detector.heartbeat(Instant::now());
            entry.last_heartbeat = Some((now, heartbeat));
        }
        Ok(Some(record))
    }

    /// The revision of what a worker should run: the newest change to the
    /// dataflows of its groups, or to its groups themselves.
    pub async fn desired_revision(&self, record: &WorkerRecord) -> Result<u64, StoreError> {
        let dataflows = self.store.dataflows_revision(record.groups()).await?;
        Ok(dataflows.max(record.groups_revision))
    }

    /// Everything a worker should run.
    pub async fn desired_state(&self, record: &WorkerRecord) -> Result<DesiredState, StoreError> {
        let revision = self.desired_revision(record).await?;
        let mut dataflows = Vec::new();
        for group in record.groups() {
            for stored in self.store.dataflows(Some(group)).await? {
                dataflows.push(DesiredDataflow {
                    group: stored.group,
                    name: stored.name,
                    revision: stored.revision,
                    document: stored.document,
                });
            }
        }
        Ok(DesiredState {
            epoch: self.store.epoch(),
            revision,
            groups: record.groups().to_vec(),
            dataflows,
        })
    }

    /// Assigns a worker's groups (none: back to its own).
    pub async fn assign(
        &self,
        id: &str,
        groups: Option<Vec<String>>,
        change: &Change,
    ) -> Result<Written<WorkerRecord>, StoreError> {
        let written = self.store.assign_groups(id, groups, change).await?;
        self.remember(written.value.clone());
        Ok(written)
    }

    /// Revokes a worker's credential.
    pub async fn revoke(&self, id: &str) -> Result<WorkerRecord, StoreError> {
        let record = self.store.revoke_worker(id).await?;
        self.remember(record.clone());
        Ok(record)
    }

    /// Forgets a worker; it may enroll again.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete_worker(id).await?;
        self.forget(id);
        Ok(())
    }

    /// Every worker as the API shows it, by id. Workers offline for longer
    /// than `expire_after` are forgotten first.
    pub async fn views(&self) -> Result<Vec<WorkerView>, StoreError> {
        let now = Instant::now();
        let expired: Vec<String> = {
            let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
            workers
                .values()
                .filter(|entry| self.silence(entry, now) > self.liveness.expire_after)
                .map(|entry| entry.record.id.clone())
                .collect()
        };
        for id in expired {
            self.delete(&id).await?;
        }
        let mut views: Vec<WorkerView> = {
            let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
            workers
                .values()
                .map(|entry| {
                    let (state, phi) = self.judge(entry, now);
                    let (last_heartbeat, status) = entry.last_heartbeat.clone().unzip();
                    WorkerView {
                        groups: entry.record.groups().to_vec(),
                        record: entry.record.clone(),
                        state,
                        phi,
                        last_heartbeat,
                        desired_revision: 0,
                        status,
                    }
                })
                .collect()
        };
        views.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        for view in &mut views {
            view.desired_revision = self.desired_revision(&view.record).await?;
        }
        Ok(views)
    }

    /// How long nothing was heard from a worker: since its last heartbeat,
    /// or since this manager started.
    fn silence(&self, entry: &Entry, now: Instant) -> Duration {
        now.saturating_duration_since(entry.detector.last_heartbeat().unwrap_or(self.started))
    }

    fn judge(&self, entry: &Entry, now: Instant) -> (WorkerState, f64) {
        let phi = entry.detector.phi(now);
        let state = if entry.detector.last_heartbeat().is_none()
            || self.silence(entry, now) >= self.liveness.offline_after
        {
            WorkerState::Offline
        } else if phi >= self.liveness.phi_threshold {
            WorkerState::Suspect
        } else {
            WorkerState::Online
        };
        (state, phi)
    }
}

impl WorkerCredentials for WorkerRegistry {
    fn worker_of(&self, presented: &str) -> Option<String> {
        self.credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&credential_hash(presented))
            .cloned()
    }
}
