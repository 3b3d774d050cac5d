//! A worker's link to its managers: its identity (a stable id in
//! `data_dir/worker.id`), enrollment with the enrollment token for a
//! credential of its own (`data_dir/secrets/worker.credential`, 0600),
//! heartbeats, and the long-polled sync of its desired state, applied one
//! dataflow at a time. The last desired state is kept on disk
//! (`data_dir/desired.json`) and run at start, so a worker keeps working
//! while no manager answers; it fails over between managers and retries
//! with backoff. The packages of the custom collectors the desired state
//! names are downloaded with the worker's credential.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use datascale_core::{backoff::Backoff, component::host_name, durable, metrics::ProcessUsage};
use datascale_http::{
    LocalDataflows, VERSION,
    auth::{read_token, store_token},
};
use datascale_protocol::{
    CLUSTER_HEADER, DesiredCollector, DesiredState, Enrolled, Heartbeat, HeartbeatReply, Identity,
    SYNC_WAIT_SECS, TapDelivered, TapRequests, TappedEvents,
};
use reqwest::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};
use sysinfo::System;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    LocalWorker, PackageSource,
    tap_relay::{ExchangeError, TapExchange, Watched, relay_taps},
};

/// The longest wait between attempts to reach a manager.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a worker needs to follow its managers.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The managers' base URLs, in failover order, without a trailing `/`.
    pub managers: Vec<String>,
    /// The token it enrolls with.
    pub enrollment_token: String,
    /// The cluster it belongs to, sent with every request.
    pub cluster_name: String,
    /// The groups of its own configuration.
    pub groups: Vec<String>,
    /// The address its local API serves on.
    pub address: SocketAddr,
    /// Where it keeps its credential and its desired state.
    pub data_dir: PathBuf,
    /// How often it sends a heartbeat.
    pub heartbeat_interval: Duration,
}

impl SyncSettings {
    fn credential_path(&self) -> PathBuf {
        credential_path(&self.data_dir)
    }

    fn desired_path(&self) -> PathBuf {
        self.data_dir.join("desired.json")
    }
}

/// Where a worker keeps its own credential.
pub fn credential_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets").join("worker.credential")
}

/// Why a request to a manager did not get the answer it wanted.
#[derive(Debug, Clone, thiserror::Error)]
enum LinkError {
    /// No manager answered.
    #[error("no manager answers ({0})")]
    Unreachable(String),
    /// A manager answered with an error.
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: StatusCode,
        message: String,
    },
    /// A local file could not be used.
    #[error("{0}")]
    Local(String),
}

/// The managers, the one in use, and this worker's credential.
#[derive(Debug)]
struct Link {
    settings: SyncSettings,
    identity: Identity,
    client: reqwest::Client,
    current: AtomicUsize,
    credential: Mutex<Credential>,
}

/// This worker's credential, once known, and the manager's last refusal to
/// enroll it.
#[derive(Debug, Default)]
struct Credential {
    known: Option<String>,
    refused: Option<Refused>,
}

/// A refused enrollment: the answer, and when to ask again. The waits
/// double (with jitter) up to [`MAX_BACKOFF`], so that a worker the manager keeps out
/// (its id is taken, its token expired) asks only now and then, each
/// attempt a line in the manager's audit log, and enrolls soon after an
/// admin lets it.
#[derive(Debug)]
struct Refused {
    error: LinkError,
    retry_at: Instant,
    backoff: Backoff,
}

impl Link {
    /// Sends a request to the manager in use, failing over to the next one
    /// when it cannot be reached, and returns its successful answer. `None`
    /// answers 304.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<Option<(String, reqwest::Response)>, LinkError> {
        let count = self.settings.managers.len().max(1);
        let mut last_error = String::from("no manager_address is configured");
        for _ in 0..count {
            let index = self.current.load(Ordering::Relaxed) % count;
            let Some(base) = self.settings.managers.get(index) else {
                break;
            };
            let url = format!("{base}{path}");
            let mut request = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(token)
                .header(CLUSTER_HEADER, &self.settings.cluster_name)
                .timeout(timeout);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) => {
                    last_error = format!("{url}: {err}");
                    self.current.store(index + 1, Ordering::Relaxed);
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED {
                return Ok(None);
            }
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                return Err(LinkError::Refused {
                    url,
                    status,
                    message,
                });
            }
            return Ok(Some((url, response)));
        }
        Err(LinkError::Unreachable(last_error))
    }

    /// This worker's credential: the one it keeps (in memory, else on
    /// disk), or a new one from enrolling. After a refused enrollment, the
    /// refusal stands until its wait is over.
    async fn credential(&self) -> Result<String, LinkError> {
        let mut credential = self.credential.lock().await;
        if let Some(known) = credential.known.as_ref() {
            return Ok(known.clone());
        }
        let path = self.settings.credential_path();
        if let Some(stored) = read_token("worker credential", &path)
            .map_err(|err| LinkError::Local(err.to_string()))?
        {
            return Ok(credential.known.insert(stored).clone());
        }
        if let Some(refused) = &credential.refused
            && Instant::now() < refused.retry_at
        {
            return Err(refused.error.clone());
        }
        let enrolled = match self.enroll().await {
            Ok(enrolled) => enrolled,
            Err(error @ LinkError::Refused { .. }) => {
                let mut backoff = credential.refused.take().map_or_else(
                    || Backoff::new(Duration::from_secs(1), MAX_BACKOFF),
                    |last| last.backoff,
                );
                credential.refused = Some(Refused {
                    error: error.clone(),
                    retry_at: Instant::now() + backoff.next_wait(),
                    backoff,
                });
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        store_token("worker", &path, &enrolled.credential)
            .map_err(|err| LinkError::Local(err.to_string()))?;
        info!(worker_id = %enrolled.id, "Enrolled with the manager; the credential is kept in the data directory.");
        credential.refused = None;
        Ok(credential.known.insert(enrolled.credential).clone())
    }

    /// Enrolls this worker with the enrollment token.
    async fn enroll(&self) -> Result<Enrolled, LinkError> {
        let answer = self
            .exchange(
                Method::POST,
                "/api/v1/workers/enroll",
                &self.settings.enrollment_token,
                Some(&self.identity),
                Duration::from_secs(10),
            )
            .await?;
        read_json(answer)
            .await?
            .ok_or_else(|| LinkError::Unreachable("an empty answer to enrollment".to_owned()))
    }

    /// Forgets a credential the manager no longer knows, so that the next
    /// request enrolls again.
    async fn forget_credential(&self) {
        self.credential.lock().await.known = None;
        let path = self.settings.credential_path();
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != io::ErrorKind::NotFound
        {
            warn!(path = %path.display(), error = %err, "Cannot remove the worker credential.");
        }
    }

    /// A request with this worker's credential, its answer read as JSON;
    /// on 401 the credential is forgotten, to enroll again on the next
    /// attempt.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<Option<T>, LinkError> {
        let credential = self.credential().await?;
        let answer = self
            .exchange(method, path, &credential, body, timeout)
            .await;
        self.forget_refused(&answer).await;
        read_json(answer?).await
    }

    /// Forgets the credential when `answer` says the manager refused it.
    async fn forget_refused<T>(&self, answer: &Result<T, LinkError>) {
        if let Err(LinkError::Refused {
            status: StatusCode::UNAUTHORIZED,
            ..
        }) = answer
        {
            self.forget_credential().await;
        }
    }
}

/// The JSON of an answer from [`Link::exchange`]; `None` for 304.
async fn read_json<T: DeserializeOwned>(
    answer: Option<(String, reqwest::Response)>,
) -> Result<Option<T>, LinkError> {
    let Some((url, response)) = answer else {
        return Ok(None);
    };
    response
        .json()
        .await
        .map(Some)
        .map_err(|err| LinkError::Unreachable(format!("{url} sent an unexpected answer: {err}")))
}

/// This worker's stable id: the one in `data_dir/worker.id`, created once.
fn worker_id(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join("worker.id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    let id = format!("w-{}", hex::encode(bytes));
    durable::write_atomic(&path, format!("{id}\n").as_bytes(), 0o644)?;
    Ok(id)
}

/// Runs the desired state kept on disk, if any, and returns its epoch.
async fn run_cached(worker: &LocalWorker, link: &Link) -> Option<u64> {
    let path = link.settings.desired_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "Cannot read the kept desired state.");
            return None;
        }
    };
    match serde_json::from_str::<DesiredState>(&text) {
        Ok(desired) => {
            info!(
                revision = desired.revision,
                "Running the desired state kept from the last sync."
            );
            apply(worker, &desired, link).await;
            Some(desired.epoch)
        }
        Err(err) => {
            warn!(path = %path.display(), error = %err, "The kept desired state is not readable; waiting for the manager.");
            None
        }
    }
}

/// Applies a desired state, with the collectors' packages from `packages`;
/// it counts as applied once every collector could be had.
async fn apply(worker: &LocalWorker, desired: &DesiredState, packages: &dyn PackageSource) -> bool {
    let dataflows = desired.dataflows.iter().map(|dataflow| {
        (
            dataflow.group.as_str(),
            dataflow.name.as_str(),
            dataflow.revision,
            &dataflow.document,
        )
    });
    let complete = worker
        .converge(dataflows, &desired.collectors, packages)
        .await;
    if complete {
        worker.mark_applied(desired.revision);
    }
    complete
}

/// Packages come from the managers, with this worker's credential.
#[async_trait::async_trait]
impl PackageSource for Link {
    async fn package(&self, collector: &DesiredCollector) -> Result<Vec<u8>, String> {
        let path = format!(
            "/api/v1/collectors/{}/{}/package",
            collector.name, collector.version
        );
        let credential = self.credential().await.map_err(|err| err.to_string())?;
        let answer = self
            .exchange(
                Method::GET,
                &path,
                &credential,
                None::<&()>,
                Duration::from_secs(300),
            )
            .await;
        self.forget_refused(&answer).await;
        let (url, response) = answer
            .map_err(|err| err.to_string())?
            .ok_or_else(|| format!("{path} answered 304"))?;
        let bytes = response
            .bytes()
            .await
            .map_err(|err| format!("{url}: {err}"))?;
        Ok(bytes.to_vec())
    }
}

/// Follows the managers until `stop` is cancelled: runs the kept desired
/// state, then heartbeats and syncs.
pub async fn follow_manager(
    worker: Arc<LocalWorker>,
    settings: SyncSettings,
    stop: CancellationToken,
) {
    let id = match worker_id(&settings.data_dir) {
        Ok(id) => id,
        Err(err) => {
            error!(error = %err, "Cannot keep this worker's id in the data directory; not following the manager.");
            return;
        }
    };
    let identity = Identity {
        id,
        hostname: host_name(),
        version: VERSION.to_owned(),
        groups: settings.groups.clone(),
        address: settings.address.to_string(),
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("the HTTP client builds");
    let link = Arc::new(Link {
        settings,
        identity,
        client,
        current: AtomicUsize::new(0),
        credential: Mutex::default(),
    });
    let epoch = run_cached(&worker, &link).await;
    let (open_taps, open) = watch::channel(None);
    let taps = Arc::new(RemoteTaps {
        link: link.clone(),
        open,
    });
    tokio::select! {
        () = stop.cancelled() => {}
        () = heartbeats(&worker, &link) => {}
        () = syncs(&worker, &link, epoch, &open_taps) => {}
        () = relay_taps(worker.clone(), taps) => {}
    }
}

/// The manager's live taps, as the sync brings them; copies go to the
/// manager in use.
struct RemoteTaps {
    link: Arc<Link>,
    open: watch::Receiver<Option<TapRequests>>,
}

#[async_trait::async_trait]
impl TapExchange for RemoteTaps {
    async fn requests(&self, known: Option<u64>) -> Result<TapRequests, ExchangeError> {
        let mut open = self.open.clone();
        let differs = |taps: &Option<TapRequests>| {
            taps.as_ref()
                .is_some_and(|taps| Some(taps.version) != known)
        };
        match open.wait_for(differs).await {
            Ok(taps) => Ok(taps.clone().expect("only a list differs")),
            Err(_) => Err(ExchangeError(
                "the sync with the manager stopped".to_owned(),
            )),
        }
    }

    async fn deliver(
        &self,
        id: &str,
        events: Vec<serde_json::Value>,
    ) -> Result<Watched, ExchangeError> {
        let copies = TappedEvents { events };
        let path = format!("/api/v1/taps/{id}/events");
        match self
            .link
            .call::<TapDelivered>(Method::POST, &path, Some(&copies), Duration::from_secs(10))
            .await
        {
            Ok(_) => Ok(Watched::Yes),
            Err(LinkError::Refused {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(Watched::Closed),
            Err(err) => Err(ExchangeError(err.to_string())),
        }
    }
}

/// Logs a failed exchange once per kind of failure, not on every retry.
fn report(what: &str, err: &LinkError, last: &mut Option<String>) {
    let message = err.to_string();
    if last.as_deref() != Some(message.as_str()) {
        match err {
            LinkError::Refused { status, .. } if *status == StatusCode::CONFLICT => {
                error!(error = %message, "The manager refused this worker; its answer says why.");
            }
            LinkError::Refused { status, .. }
                if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN =>
            {
                error!(error = %message, "The manager refused this worker's token; check service.worker.token, or whether this worker was revoked.");
            }
            _ => warn!(error = %message, "{what} failed; retrying."),
        }
        *last = Some(message);
    }
}

async fn heartbeats(worker: &LocalWorker, link: &Link) {
    let mut system = System::new();
    let mut last_failure = None;
    let mut ticks = tokio::time::interval(link.settings.heartbeat_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        system.refresh_cpu_usage();
        let usage = ProcessUsage::now();
        let beat = Heartbeat {
            identity: link.identity.clone(),
            applied_revision: worker.applied_revision(),
            dataflows: worker.reports().await,
            cpu_seconds: usage.cpu_seconds,
            resident_bytes: usage.resident_bytes,
            load1: System::load_average().one,
        };
        let sent = link
            .call::<HeartbeatReply>(
                Method::POST,
                "/api/v1/heartbeat",
                Some(&beat),
                Duration::from_secs(10),
            )
            .await;
        match sent {
            Ok(_) => {
                if last_failure.take().is_some() {
                    info!("The manager answers heartbeats again.");
                }
            }
            Err(err) => report("A heartbeat", &err, &mut last_failure),
        }
    }
}

/// Syncs with the managers; `epoch` is that of the state running, if any.
/// The live taps that come with the desired state go to `open_taps`.
async fn syncs(
    worker: &LocalWorker,
    link: &Link,
    mut epoch: Option<u64>,
    open_taps: &watch::Sender<Option<TapRequests>>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
    let mut last_failure = None;
    loop {
        let running = worker.applied_revision();
        let taps = open_taps.borrow().as_ref().map_or(0, |taps| taps.version);
        let mut path = format!(
            "/api/v1/sync?worker_id={}&revision={running}&taps={taps}",
            link.identity.id
        );
        if let Some(epoch) = epoch {
            path.push_str(&format!("&epoch={epoch}"));
        }
        let answer = link
            .call::<DesiredState>(
                Method::GET,
                &path,
                None::<&()>,
                Duration::from_secs(SYNC_WAIT_SECS + 10),
            )
            .await;
        match answer {
            Ok(None) => {}
            Ok(Some(desired)) if Some(desired.epoch) == epoch && desired.revision < running => {
                warn!(
                    offered = desired.revision,
                    running,
                    "The manager offers an older revision than the one running; keeping it."
                );
                tokio::time::sleep(MAX_BACKOFF).await;
            }
            Ok(Some(mut desired)) => {
                if let Some(taps) = desired.taps.take() {
                    open_taps.send_replace(Some(taps));
                }
                // An answer for the live taps alone changes nothing else.
                if Some(desired.epoch) != epoch || desired.revision != running {
                    let path = link.settings.desired_path();
                    let text = serde_json::to_vec(&desired).expect("a desired state serializes");
                    if let Err(err) = durable::write_atomic(&path, &text, 0o600) {
                        warn!(path = %path.display(), error = %err, "Cannot keep the desired state on disk; it is run all the same.");
                    }
                    info!(
                        revision = desired.revision,
                        dataflows = desired.dataflows.len(),
                        "Applying the desired state from the manager."
                    );
                    epoch = Some(desired.epoch);
                    if !apply(worker, &desired, link).await {
                        // The dataflows waiting for a collector get it on a later try.
                        tokio::time::sleep(backoff.next_wait()).await;
                        continue;
                    }
                }
            }
            Err(err) => {
                report("Syncing with the manager", &err, &mut last_failure);
                tokio::time::sleep(backoff.next_wait()).await;
                continue;
            }
        }
        if last_failure.take().is_some() {
            info!("Synced with the manager again.");
        }
        backoff.reset();
    }
}
