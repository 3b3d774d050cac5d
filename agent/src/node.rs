//! A running node: sets up the data directory and credentials, binds the
//! listeners its mode needs, serves the API (and, on a manager, the Web UI),
//! and on shutdown stops them within `service.shutdown_timeout_secs`.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use datascale_connections::{ConnectionLimits, ConnectionTable};
use datascale_core::component::{ManagerTarget, TokenSource, host_name};
use datascale_dataflow::topology::Environment;
use datascale_http::{
    ApiState, LocalDataflows, NodeInfo,
    auth::{AuthError, GeneratedToken, ManagerTokens, Tokens, token_path},
};
use datascale_manager::{
    api::ManagerState,
    audit::AuditLog,
    collectors::PackageFiles,
    event_sets::{EventSetError, EventSets, Retention},
    store::{SqliteStore, Store, StoreError},
    taps::TapHub,
    workers::{Liveness, WorkerRegistry, enrollment::EnrollmentTokenRegistry, rates},
};
use datascale_protocol::Mode;
use datascale_worker::{LocalWorker, sync::SyncSettings, tap_relay::relay_taps};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    config::Config,
    resources::Placement,
    standalone::{LocalTaps, follow_store},
};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path} (service.data_dir): {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A listener could not be bound.
    #[error(
        "cannot listen on {address} ({key}): {source}; is another process using it? Set {key} to a free address"
    )]
    Bind {
        /// The configuration key of the address.
        key: &'static str,
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// The credentials could not be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The manager's store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event sets could not be opened.
    #[error(transparent)]
    EventSets(#[from] EventSetError),
    /// The audit log could not be opened.
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A server stopped with an error.
    #[error("the {server} server failed: {source}")]
    Serve {
        /// `API` or `Web UI`.
        server: &'static str,
        /// The I/O error.
        source: io::Error,
    },
}

/// Runs a node with `config`, under the limits of `resources`, until
/// `shutdown` completes.
pub async fn run(
    config: &Config,
    resources: Placement,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let service = &config.service;
    std::fs::create_dir_all(&service.data_dir).map_err(|source| NodeError::DataDir {
        path: service.data_dir.clone(),
        source,
    })?;
    let mut tokens = if service.mode.runs_manager() {
        let (tokens, generated) = Tokens::for_manager(&ManagerTokens {
            data_dir: service.data_dir.clone(),
            admin_token: service.manager.admin_token.clone(),
            worker_token: service.manager.worker_token.clone(),
            named_admin_tokens: service.manager.named_admin_tokens(),
        })?;
        show_generated_tokens(&generated);
        tokens
    } else {
        Tokens::for_worker(&service.worker.token)
    };
    let manager_parts = match service.mode.runs_manager() {
        true => {
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open(&service.data_dir.join("store.db"))?);
            let audit_path = service.data_dir.join("audit.log");
            let audit = AuditLog::open(&audit_path).map_err(|source| NodeError::Audit {
                path: audit_path,
                source,
            })?;
            let registry = WorkerRegistry::load(store.clone(), liveness(config)).await?;
            let enrollment = EnrollmentTokenRegistry::load(store.clone()).await?;
            tokens = tokens
                .with_worker_credentials(registry.clone())
                .with_enrollment_tokens(enrollment.clone());
            let retention = Retention {
                max_age_days: config.event_sets.max_age_days,
                max_size_mb: config.event_sets.max_size_mb,
            };
            let event_sets = EventSets::open(&service.data_dir.join("event_sets"), retention)?;
            Some((store, Arc::new(audit), registry, enrollment, event_sets))
        }
        false => None,
    };

    let api_listener = bind("service.address", service.address).await?;
    let ui_listener = match service.mode.runs_manager() {
        true => Some(bind("service.ui_address", service.ui_address).await?),
        false => None,
    };
    let api_address = local_address(&api_listener, "service.address")?;
    let ui_address = ui_listener
        .as_ref()
        .map(|listener| local_address(listener, "service.ui_address"))
        .transpose()?;

    let node = NodeInfo {
        mode: service.mode,
        cluster_name: service.cluster_name.clone(),
        api_address,
        ui_address,
        worker_groups: service.worker.groups.clone(),
        manager_addresses: service.worker.manager_address.clone(),
        started: Instant::now(),
        resources: Arc::new(resources),
    };
    let mut environment = Environment::new(&service.data_dir, &service.collectors_dir);
    environment.managers = manager_target(config, api_address);
    let metrics = environment.metrics.clone();
    let deadline = Duration::from_secs(service.shutdown_timeout_secs);
    let worker = service
        .mode
        .runs_worker()
        .then(|| LocalWorker::new(environment, deadline));
    let api_state = ApiState {
        node: Arc::new(node),
        tokens: Arc::new(tokens),
        worker: worker
            .clone()
            .map(|worker| worker as Arc<dyn LocalDataflows>),
        metrics,
    };
    let stop = CancellationToken::new();
    let mut servers = JoinSet::new();
    let mut manager_routes = None;
    if let Some((store, audit, workers, enrollment, event_sets)) = manager_parts {
        tokio::spawn(keep_retention(event_sets.clone(), stop.clone()));
        let taps = TapHub::new(stop.clone());
        let packages = PackageFiles::new(&service.data_dir.join("collectors"));
        if let Some(worker) = &worker {
            tokio::spawn(rates::sample_local(
                worker.clone() as Arc<dyn LocalDataflows>,
                workers.clone(),
                stop.clone(),
            ));
            tokio::spawn(follow_store(
                worker.clone(),
                store.clone(),
                packages.clone(),
                service.worker.groups.clone(),
                stop.clone(),
            ));
            let local_taps = Arc::new(LocalTaps {
                hub: taps.clone(),
                worker: host_name(),
            });
            let relay = relay_taps(worker.clone(), local_taps);
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = relay => {}
                }
            });
        }
        let state = ManagerState {
            api: api_state.clone(),
            store,
            workers,
            enrollment,
            event_sets,
            ingest_limit: config.event_sets.max_body_mb.saturating_mul(1024 * 1024),
            taps,
            packages,
            collector_limit: service.manager.max_collector_mb.saturating_mul(1024 * 1024),
        };
        manager_routes = Some(datascale_manager::api::router(
            state,
            audit,
            service.manager.max_body_bytes,
        ));
    } else if let Some(worker) = &worker {
        tokio::spawn(datascale_worker::sync::follow_manager(
            worker.clone(),
            sync_settings(config, api_address),
            stop.clone(),
        ));
    }
    let api = datascale_http::node_router(api_state, manager_routes);

    let http = Http {
        connections: connection_table(config),
        body_read_timeout: Duration::from_secs(service.http.body_read_timeout_secs),
        stop: stop.clone(),
    };
    if let Some(listener) = ui_listener {
        let router = datascale_manager::ui_router(api.clone());
        servers.spawn(http.clone().serve("Web UI", listener, router));
    }
    servers.spawn(http.serve("API", api_listener, api));
    info!(
        mode = %service.mode,
        api_address = %api_address,
        ui_address = ui_address.map(|a| a.to_string()).unwrap_or_default(),
        data_dir = %service.data_dir.display(),
        version = datascale_http::VERSION,
        "DataScale started."
    );

    let failure = tokio::select! {
        () = shutdown => None,
        Some(joined) = servers.join_next() => Some(joined.expect("a server task does not panic")),
    };
    info!("Shutting down.");
    stop.cancel();
    if let Some(worker) = &worker {
        worker.stop_all().await;
    }
    let drained = tokio::time::timeout(deadline, async {
        let mut first_error = failure.and_then(Result::err);
        while let Some(joined) = servers.join_next().await {
            if let Err(err) = joined.expect("a server task does not panic") {
                first_error.get_or_insert(err);
            }
        }
        first_error
    })
    .await;
    match drained {
        Ok(Some(err)) => Err(err),
        Ok(None) => {
            info!("DataScale stopped.");
            Ok(())
        }
        Err(_) => {
            warn!(
                deadline_secs = deadline.as_secs(),
                "Shutdown deadline passed with requests still in flight; stopping anyway."
            );
            Ok(())
        }
    }
}

/// How the API and the Web UI are served: one table of connections for
/// both, with the limits of `[service.http]`, until `stop`.
#[derive(Clone)]
struct Http {
    connections: ConnectionTable,
    body_read_timeout: Duration,
    stop: CancellationToken,
}

impl Http {
    async fn serve(
        self,
        server: &'static str,
        listener: TcpListener,
        router: axum::Router,
    ) -> Result<(), NodeError> {
        datascale_connections::serve(
            listener,
            router,
            self.connections,
            self.body_read_timeout,
            self.stop,
        )
        .await
        .map_err(|source| NodeError::Serve { server, source })
    }
}

/// The connections of the API and the Web UI, which share the limits of
/// `[service.http]`.
fn connection_table(config: &Config) -> ConnectionTable {
    let http = &config.service.http;
    ConnectionTable::new(
        "API and Web UI",
        ConnectionLimits {
            max_connections: usize::try_from(http.max_connections).unwrap_or(usize::MAX),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs),
            read_timeout: Duration::from_secs(http.header_read_timeout_secs),
        },
    )
}

async fn bind(key: &'static str, address: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| NodeError::Bind {
            key,
            address,
            source,
        })
}

fn local_address(listener: &TcpListener, key: &'static str) -> Result<SocketAddr, NodeError> {
    listener.local_addr().map_err(|source| NodeError::Bind {
        key,
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Where this node's `yh` sinks send by default: a worker to its managers
/// with its own credential; a standalone node to itself with the
/// enrollment token; a manager runs no dataflows.
fn manager_target(config: &Config, api_address: SocketAddr) -> Option<ManagerTarget> {
    let service = &config.service;
    let (urls, token) = match service.mode {
        Mode::Manager => return None,
        Mode::Worker => (
            service.worker.manager_address.clone(),
            TokenSource::File(datascale_worker::sync::credential_path(&service.data_dir)),
        ),
        Mode::Standalone => (
            vec![datascale_http::local_url(api_address)],
            match service.manager.worker_token.as_str() {
                "" => TokenSource::File(token_path(&service.data_dir, "worker")),
                configured => TokenSource::Static(configured.to_owned()),
            },
        ),
    };
    Some(ManagerTarget {
        urls,
        token,
        cluster_name: service.cluster_name.clone(),
    })
}

/// Applies the event sets' retention every minute until `stop`.
async fn keep_retention(event_sets: Arc<EventSets>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                if let Err(err) = event_sets.enforce_retention().await {
                    warn!(error = %err, "Cannot apply the event sets' retention.");
                }
            }
        }
    }
}

/// What a worker needs to follow its managers, from `[service]` and
/// `[service.worker]`, serving its local API on `address`.
fn sync_settings(config: &Config, address: SocketAddr) -> SyncSettings {
    let service = &config.service;
    SyncSettings {
        managers: service
            .worker
            .manager_address
            .iter()
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect(),
        enrollment_token: service.worker.token.clone(),
        cluster_name: service.cluster_name.clone(),
        groups: service.worker.groups.clone(),
        address,
        data_dir: service.data_dir.clone(),
        heartbeat_interval: Duration::from_secs(service.worker.heartbeat_interval_secs),
    }
}

/// How the manager judges its workers' liveness, from `[service.manager]`.
fn liveness(config: &Config) -> Liveness {
    let manager = &config.service.manager;
    Liveness {
        heartbeat_interval: Duration::from_secs(config.service.worker.heartbeat_interval_secs),
        phi_threshold: f64::from(manager.phi_threshold),
        min_std_dev: Duration::from_millis(manager.phi_min_std_dev_ms),
        offline_after: Duration::from_secs(manager.worker_offline_secs),
        expire_after: Duration::from_secs(manager.worker_expire_minutes * 60),
    }
}

/// Shows tokens generated on this start, once, on standard output (not in
/// the log, which may be kept or shipped elsewhere).
fn show_generated_tokens(generated: &[GeneratedToken]) {
    for token in generated {
        println!(
            "Generated the {} token (shown once; stored in {} with mode 0600):\n  {}",
            token.kind,
            token.path.display(),
            token.token
        );
    }
}
