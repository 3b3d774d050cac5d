//! The workers a manager knows: their records (from the store, cached here),
//! the credentials issued to them, what their last heartbeat said, and
//! whether they are alive (`phi`: a phi-accrual detector per worker). Also
//! what each worker should run: its desired state and that state's revision.
//!
//! Thousands of workers heartbeat and wait on a sync at once, so neither
//! asks the store: each group's dataflows and newest revision are kept here
//! as of the store's current cluster revision, read once when it moves on;
//! each heartbeat locks only its own worker's status; and a worker's
//! record can be followed on its own, so that a change to one worker wakes
//! only the sync that waits for it. Heartbeats also feed the groups'
//! recent event rates (`rates`) and each worker's CPU use. The enrollment
//! tokens made through the API are in `enrollment`.

pub mod enrollment;
pub mod phi;
pub mod rates;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use datascale_http::auth::{WorkerCredentials, new_token};
use datascale_protocol::{
    DesiredCollector, DesiredDataflow, DesiredState, Enrolled, Heartbeat, Identity, TapRequests,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, watch};
use utoipa::ToSchema;

use self::{phi::PhiDetector, rates::RateHistory};
use super::{
    collectors::desired_collectors,
    store::{Change, Grant, Store, StoreError, WorkerRecord, WorkerUpdate, Written},
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
    /// Its process's CPU use between its last two heartbeats, in percent
    /// of one core.
    pub cpu_percent: Option<f64>,
}

#[derive(Debug)]
struct Entry {
    /// The record, which the syncs waiting for this worker follow.
    record: watch::Sender<WorkerRecord>,
    /// What its heartbeats tell, behind a lock of its own.
    status: Mutex<Status>,
}

#[derive(Debug)]
struct Status {
    detector: PhiDetector,
    last_heartbeat: Option<(String, Heartbeat)>,
    cpu_percent: Option<f64>,
}

/// What the workers of one group run, as of one cluster revision.
#[derive(Debug)]
struct GroupState {
    /// The revision of the newest change to its dataflows, or of the newest
    /// upload of a collector version they run (0: none).
    revision: u64,
    /// Its dataflows.
    dataflows: Vec<DesiredDataflow>,
    /// The collector versions its dataflows run.
    collectors: Vec<DesiredCollector>,
}

/// The groups read from the store, current while the store is at
/// `revision`. Each is read once: the first who asks reads it, and those who
/// ask meanwhile wait for that reading.
#[derive(Debug, Default)]
struct GroupCache {
    revision: u64,
    groups: HashMap<String, Arc<OnceCell<Arc<GroupState>>>>,
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
    /// The store's cluster revision, which tells whether `groups` is current.
    revision: watch::Receiver<u64>,
    /// The groups workers asked for.
    groups: RwLock<GroupCache>,
    /// The groups' recent event rates.
    rates: RateHistory,
    /// Desired states as served, by what makes them, so that the workers
    /// of the same groups share one body instead of holding one each.
    bodies: Mutex<HashMap<BodyKey, Bytes>>,
}

/// What a served desired state is made of: the store's epoch and the
/// revision (which changes with any change to the groups or the worker's
/// assignment), the groups, and the version of the live taps it carries.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BodyKey {
    epoch: u64,
    revision: u64,
    groups: Vec<String>,
    taps: Option<u64>,
}

/// The most desired-state bodies kept; past it, the kept ones are let go.
const MOST_BODIES: usize = 64;

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
            revision: store.subscribe(),
            groups: RwLock::default(),
            rates: RateHistory::default(),
            bodies: Mutex::default(),
        });
        for record in store.workers().await? {
            registry.remember(record);
        }
        Ok(registry)
    }

    fn remember(&self, record: WorkerRecord) {
        let mut workers = self.workers.write().unwrap_or_else(PoisonError::into_inner);
        let mut credentials = self
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = workers.get(&record.id) {
            credentials.remove(&known.record.borrow().credential_sha256);
        }
        if !record.revoked {
            credentials.insert(record.credential_sha256.clone(), record.id.clone());
        }
        drop(credentials);
        match workers.get(&record.id) {
            Some(entry) => {
                entry.record.send_replace(record);
            }
            None => {
                let detector =
                    PhiDetector::new(self.liveness.heartbeat_interval, self.liveness.min_std_dev);
                workers.insert(
                    record.id.clone(),
                    Entry {
                        record: watch::Sender::new(record),
                        status: Mutex::new(Status {
                            detector,
                            last_heartbeat: None,
                            cpu_percent: None,
                        }),
                    },
                );
            }
        }
    }

    /// Follows the record of a worker: the receiver sees each change to it
    /// (enrollment, assignment, revocation), and closes when the worker is
    /// forgotten. `None` when it is not enrolled.
    pub fn follow(&self, id: &str) -> Option<watch::Receiver<WorkerRecord>> {
        self.workers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|entry| entry.record.subscribe())
    }

    fn forget(&self, id: &str) {
        let removed = self
            .workers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(entry) = removed {
            self.credentials
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&entry.record.borrow().credential_sha256);
        }
    }

    /// Enrolls a worker with `grant`: issues it a credential of its own.
    /// Refused when a worker of that id is enrolled (only its own
    /// credential renews it: [`WorkerRegistry::renew`]).
    pub async fn enroll(&self, identity: &Identity, grant: &Grant) -> Result<Enrolled, StoreError> {
        let credential = new_token("dsc_");
        let record = self
            .store
            .enroll_worker(
                WorkerRecord {
                    id: identity.id.clone(),
                    hostname: identity.hostname.clone(),
                    version: identity.version.clone(),
                    own_groups: identity.groups.clone(),
                    assigned_groups: None,
                    groups_revision: 0,
                    revoked: false,
                    enrolled_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                    enrollment_token: None,
                    allowed_groups: None,
                    credential_sha256: credential_hash(&credential),
                },
                grant,
            )
            .await?;
        self.remember(record);
        Ok(Enrolled {
            id: identity.id.clone(),
            credential,
        })
    }

    /// Renews the credential of an enrolled worker, which asks with its
    /// current one: issues a new one, which replaces it.
    pub async fn renew(&self, identity: &Identity) -> Result<Enrolled, StoreError> {
        let credential = new_token("dsc_");
        let record = self
            .store
            .update_worker(update_of(identity, Some(credential_hash(&credential))))
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
            .map(|entry| entry.record.borrow().clone())
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
            record = self.store.update_worker(update_of(identity, None)).await?;
            self.remember(record.clone());
        }
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = workers.get(&identity.id) {
            let mut status = entry.status.lock().unwrap_or_else(PoisonError::into_inner);
            let arrived = Instant::now();
            if let (Some((_, previous)), Some(then)) =
                (&status.last_heartbeat, status.detector.last_heartbeat())
            {
                let secs = arrived.saturating_duration_since(then).as_secs_f64();
                let busy = (heartbeat.cpu_seconds - previous.cpu_seconds).max(0.0);
                // Only the groups it runs count, so that the groups kept
                // are the cluster's, whatever a worker reports.
                let runs = heartbeat
                    .dataflows
                    .iter()
                    .filter(|report| record.groups().contains(&report.group));
                self.rates.record(&previous.dataflows, runs, Utc::now());
                status.cpu_percent = (secs > 0.0).then(|| busy / secs * 100.0);
            }
            status.detector.heartbeat(arrived);
            status.last_heartbeat = Some((now, heartbeat));
        }
        Ok(Some(record))
    }

    /// The state of each of `names`, as of the store's current revision:
    /// kept from an earlier call, or read from the store once the revision
    /// has moved on.
    async fn group_states(&self, names: &[String]) -> Result<Vec<Arc<GroupState>>, StoreError> {
        // The revision is read before the groups, so that what is kept is
        // never older than the revision it is kept for.
        let revision = *self.revision.borrow();
        let kept = {
            let cache = self.groups.read().unwrap_or_else(PoisonError::into_inner);
            if cache.revision == revision {
                names
                    .iter()
                    .map(|name| cache.groups.get(name).cloned())
                    .collect()
            } else {
                None
            }
        };
        let cells: Vec<_> = match kept {
            Some(cells) => cells,
            None => {
                let mut cache = self.groups.write().unwrap_or_else(PoisonError::into_inner);
                if cache.revision < revision {
                    *cache = GroupCache {
                        revision,
                        groups: HashMap::new(),
                    };
                }
                names
                    .iter()
                    .map(|name| cache.groups.entry(name.clone()).or_default().clone())
                    .collect()
            }
        };
        let mut states = Vec::with_capacity(names.len());
        for (name, cell) in names.iter().zip(cells) {
            states.push(
                cell.get_or_try_init(|| self.read_group(name))
                    .await?
                    .clone(),
            );
        }
        Ok(states)
    }

    /// Reads the state of a group from the store.
    async fn read_group(&self, name: &str) -> Result<Arc<GroupState>, StoreError> {
        let revision = self.store.dataflows_revision(&[name.to_owned()]).await?;
        let dataflows = self.store.dataflows(Some(name)).await?;
        let (collectors, uploaded) = desired_collectors(
            dataflows.iter().map(|stored| &stored.document),
            &self.store.collectors().await?,
        );
        Ok(Arc::new(GroupState {
            revision: revision.max(uploaded),
            collectors,
            dataflows: dataflows
                .into_iter()
                .map(|stored| DesiredDataflow {
                    group: stored.group,
                    name: stored.name,
                    revision: stored.revision,
                    document: stored.document,
                })
                .collect(),
        }))
    }

    /// The revision of what a worker should run: the newest change to the
    /// dataflows of its groups, or to its groups themselves.
    pub async fn desired_revision(&self, record: &WorkerRecord) -> Result<u64, StoreError> {
        let states = self.group_states(record.groups()).await?;
        Ok(revision_of(record, &states))
    }

    /// Everything a worker should run, with `taps` (the live taps open),
    /// as the JSON body of a sync's answer. Workers of the same groups at
    /// the same revision share one body.
    pub async fn desired_body(
        &self,
        record: &WorkerRecord,
        taps: Option<TapRequests>,
    ) -> Result<Bytes, StoreError> {
        let states = self.group_states(record.groups()).await?;
        let key = BodyKey {
            epoch: self.store.epoch(),
            revision: revision_of(record, &states),
            groups: record.groups().to_vec(),
            taps: taps.as_ref().map(|taps| taps.version),
        };
        if let Some(body) = self.kept_bodies().get(&key) {
            return Ok(body.clone());
        }
        let mut desired = self.desired_of(record, &states);
        desired.taps = taps;
        let body = Bytes::from(serde_json::to_vec(&desired).expect("a desired state serializes"));
        let mut kept = self.kept_bodies();
        if kept.len() >= MOST_BODIES {
            kept.clear();
        }
        kept.insert(key, body.clone());
        Ok(body)
    }

    fn kept_bodies(&self) -> std::sync::MutexGuard<'_, HashMap<BodyKey, Bytes>> {
        self.bodies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn desired_of(&self, record: &WorkerRecord, states: &[Arc<GroupState>]) -> DesiredState {
        DesiredState {
            epoch: self.store.epoch(),
            revision: revision_of(record, states),
            groups: record.groups().to_vec(),
            dataflows: states
                .iter()
                .flat_map(|state| state.dataflows.iter().cloned())
                .collect(),
            collectors: states
                .iter()
                .flat_map(|state| state.collectors.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            taps: None,
        }
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
                .iter()
                .filter(|(_, entry)| {
                    let status = entry.status.lock().unwrap_or_else(PoisonError::into_inner);
                    self.silence(&status, now) > self.liveness.expire_after
                })
                .map(|(id, _)| id.clone())
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
                    let record = entry.record.borrow().clone();
                    let heard = entry.status.lock().unwrap_or_else(PoisonError::into_inner);
                    let (state, phi) = self.judge(&heard, now);
                    let (last_heartbeat, status) = heard.last_heartbeat.clone().unzip();
                    let cpu_percent = heard.cpu_percent;
                    WorkerView {
                        groups: record.groups().to_vec(),
                        record,
                        state,
                        phi,
                        last_heartbeat,
                        desired_revision: 0,
                        status,
                        cpu_percent,
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

    /// The groups' recent event rates.
    pub fn rates(&self) -> &RateHistory {
        &self.rates
    }

    /// How long nothing was heard from a worker: since its last heartbeat,
    /// or since this manager started.
    fn silence(&self, status: &Status, now: Instant) -> Duration {
        now.saturating_duration_since(status.detector.last_heartbeat().unwrap_or(self.started))
    }

    fn judge(&self, status: &Status, now: Instant) -> (WorkerState, f64) {
        let phi = status.detector.phi(now);
        let state = if status.detector.last_heartbeat().is_none()
            || self.silence(status, now) >= self.liveness.offline_after
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

/// What a worker of `identity` changes of its record, with the hash of its
/// new credential when it renews it.
fn update_of(identity: &Identity, credential_sha256: Option<String>) -> WorkerUpdate {
    WorkerUpdate {
        id: identity.id.clone(),
        hostname: identity.hostname.clone(),
        version: identity.version.clone(),
        own_groups: identity.groups.clone(),
        credential_sha256,
    }
}

/// The revision of a worker's desired state, from the states of its groups.
fn revision_of(record: &WorkerRecord, states: &[Arc<GroupState>]) -> u64 {
    states
        .iter()
        .map(|state| state.revision)
        .fold(record.groups_revision, u64::max)
}

/// Who owns the secret `presented`, in `owners`: secrets' SHA-256 → the id
/// of their owner.
fn owner_of(owners: &RwLock<HashMap<String, String>>, presented: &str) -> Option<String> {
    owners
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&credential_hash(presented))
        .cloned()
}

impl WorkerCredentials for WorkerRegistry {
    fn worker_of(&self, presented: &str) -> Option<String> {
        owner_of(&self.credentials, presented)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{Precondition, SqliteStore};

    async fn registry() -> (tempfile::TempDir, Arc<dyn Store>, Arc<WorkerRegistry>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap());
        let liveness = Liveness {
            heartbeat_interval: Duration::from_secs(5),
            phi_threshold: 8.0,
            min_std_dev: Duration::from_millis(500),
            offline_after: Duration::from_secs(30),
            expire_after: Duration::from_secs(3600),
        };
        let registry = WorkerRegistry::load(store.clone(), liveness).await.unwrap();
        (dir, store, registry)
    }

    fn identity(id: &str) -> Identity {
        Identity {
            id: id.to_owned(),
            hostname: format!("{id}.example"),
            version: "1.0.0".to_owned(),
            groups: vec!["default".to_owned()],
            address: "127.0.0.1:7881".to_owned(),
        }
    }

    /// The desired state a worker is served, read back.
    async fn served(registry: &WorkerRegistry, record: &WorkerRecord) -> DesiredState {
        let body = registry.desired_body(record, None).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn admin() -> Change {
        Change::by("admin")
    }

    fn flow(marker: u64) -> serde_json::Value {
        json!({"name": "tail", "sources": [{"name": "s", "type": "demo", "conf": {"count": marker}}],
               "sinks": [{"name": "k", "type": "blackhole", "inputs": ["s"]}]})
    }

    #[tokio::test]
    async fn the_desired_state_follows_each_change_to_the_workers_groups_at_once() {
        let (_dir, store, registry) = registry().await;
        registry
            .enroll(&identity("w1"), &Grant::BuiltIn)
            .await
            .unwrap();
        let record = registry.record("w1").unwrap();
        // The enrollment itself is the first change to its groups.
        assert!(record.groups_revision > 0);
        assert_eq!(
            registry.desired_revision(&record).await.unwrap(),
            record.groups_revision
        );
        let written = store
            .put_dataflow("default", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap();
        let desired = served(&registry, &record).await;
        assert_eq!(desired.revision, written.value.revision);
        assert_eq!(desired.dataflows.len(), 1);
        assert_eq!(desired.dataflows[0].document, flow(1));
        // A change to another group moves the cluster on, not this worker.
        store
            .put_group("edge", "", Precondition::None, &admin())
            .await
            .unwrap();
        store
            .put_dataflow("edge", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap();
        assert_eq!(
            registry.desired_revision(&record).await.unwrap(),
            written.value.revision
        );
        let deleted = store
            .delete_dataflow("default", "tail", Precondition::None, &admin())
            .await
            .unwrap();
        let desired = served(&registry, &record).await;
        assert_eq!((desired.revision, desired.dataflows.len()), (deleted, 0));
        // An assignment counts, and brings the assigned group's dataflows.
        let assigned = registry
            .assign("w1", Some(vec!["edge".to_owned()]), &admin())
            .await
            .unwrap();
        let desired = served(&registry, &registry.record("w1").unwrap()).await;
        assert_eq!(desired.revision, assigned.value.groups_revision);
        assert_eq!(desired.dataflows[0].group, "edge");
    }

    #[tokio::test]
    async fn a_followed_record_sees_only_its_own_changes_and_closes_when_forgotten() {
        let (_dir, _store, registry) = registry().await;
        let first = registry
            .enroll(&identity("w1"), &Grant::BuiltIn)
            .await
            .unwrap();
        registry
            .enroll(&identity("w2"), &Grant::BuiltIn)
            .await
            .unwrap();
        let mut own = registry.follow("w1").unwrap();
        registry
            .assign("w2", Some(vec!["edge".to_owned()]), &admin())
            .await
            .unwrap();
        assert!(!own.has_changed().unwrap());
        // Enrolling again is refused; renewing replaces the credential.
        let taken = registry.enroll(&identity("w1"), &Grant::BuiltIn).await;
        assert!(matches!(taken, Err(StoreError::Enrollment(_))), "{taken:?}");
        assert!(!own.has_changed().unwrap());
        assert_eq!(registry.worker_of(&first.credential).as_deref(), Some("w1"));
        let again = registry.renew(&identity("w1")).await.unwrap();
        assert!(own.has_changed().unwrap());
        assert_eq!(registry.worker_of(&first.credential), None);
        assert_eq!(registry.worker_of(&again.credential).as_deref(), Some("w1"));
        registry.revoke("w1").await.unwrap();
        assert!(own.borrow_and_update().revoked);
        assert_eq!(registry.worker_of(&again.credential), None);
        registry.delete("w1").await.unwrap();
        assert!(own.changed().await.is_err());
        assert!(registry.follow("w1").is_none());
        assert!(registry.follow("w2").is_some());
    }
}
