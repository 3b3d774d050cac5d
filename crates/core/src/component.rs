//! The API components are written against: what a source, a pipeline or
//! a sink runs with (its context), where it takes batches from and sends
//! them to (`Input`, `Output`), the task it runs as and why it fails or
//! cannot be built, and how it does blocking work.

use std::{
    collections::BTreeMap, future::Future, path::PathBuf, pin::Pin, sync::Arc, time::Duration,
};

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    ack::Delivery,
    event::{Batch, Origin},
    metrics::{ComponentMetrics, Registry},
    tap::TapPoint,
};

/// First wait before a failed component is started again; it doubles with
/// each failure in a row, up to [`MAX_RESTART_BACKOFF`].
pub const FIRST_RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// Longest wait before a failed component is started again.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);

/// Batches a channel holds before its producer waits.
pub const CHANNEL_BATCHES: usize = 2;

/// Most events a source puts in one batch.
pub const MAX_BATCH_EVENTS: usize = 256;

/// Runs blocking work (a file read, a scrape of the host) from a task. On a
/// multi-threaded runtime the worker first hands its other tasks to another
/// thread; on the single-threaded runtime of `datascale run`, which has no
/// other worker to hand them to, the work runs in place.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => work(),
        _ => tokio::task::block_in_place(work),
    }
}

/// A component's running task.
pub type ComponentTask = Pin<Box<dyn Future<Output = Result<(), ComponentError>> + Send>>;

/// Why a component stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file or stream.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a dataflow could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration cannot be put to work (a VRL program that does not
    /// compile, a path template with an unknown strftime part, …).
    #[error("component `{component}`: {message}")]
    Invalid {
        /// The component's name.
        component: String,
        /// What is wrong.
        message: String,
    },
}

/// Where a component sends its batches: every consumer of its output.
#[derive(Debug, Clone, Default)]
pub struct Output {
    consumers: Vec<mpsc::Sender<Batch>>,
    /// The sending component's counters; a source's count as read, too.
    metrics: Option<(Arc<ComponentMetrics>, bool)>,
    /// Where the sending component can be watched.
    tap: Option<Arc<TapPoint>>,
}

/// Every consumer of an output has stopped.
#[derive(Debug, thiserror::Error)]
#[error("no component takes this output any more")]
pub struct OutputClosed;

impl Output {
    /// An output to these consumers' channels.
    pub fn new(consumers: Vec<mpsc::Sender<Batch>>) -> Self {
        Self {
            consumers,
            metrics: None,
            tap: None,
        }
    }

    /// An output to these consumers' channels that counts into `metrics`
    /// (what it sends; a source's, what it read too) and offers what it
    /// sends to `tap`.
    pub fn watched(
        consumers: Vec<mpsc::Sender<Batch>>,
        metrics: Arc<ComponentMetrics>,
        is_source: bool,
        tap: Arc<TapPoint>,
    ) -> Self {
        Self {
            consumers,
            metrics: Some((metrics, is_source)),
            tap: Some(tap),
        }
    }

    /// Sends a batch to every consumer, waiting while their channels are
    /// full. With no consumer, the batch is dropped on purpose.
    pub async fn send(&self, batch: Batch) -> Result<(), OutputClosed> {
        if let Some((metrics, is_source)) = &self.metrics {
            if *is_source {
                metrics.received(batch.events.len(), 0);
            }
            metrics.sent(batch.events.len(), 0);
        }
        if let Some(tap) = &self.tap {
            tap.offer(&batch.events);
        }
        let Some((last, others)) = self.consumers.split_last() else {
            batch.finish(Delivery::Dropped);
            return Ok(());
        };
        for consumer in others {
            consumer
                .send(batch.clone())
                .await
                .map_err(|_| OutputClosed)?;
        }
        last.send(batch).await.map_err(|_| OutputClosed)
    }
}

/// Where a pipeline or sink takes its batches from. Shared by the runs of a
/// component, so that one started again after a failure reads on from the
/// same channel.
#[derive(Debug, Clone)]
pub struct Input {
    receiver: Arc<Mutex<mpsc::Receiver<Batch>>>,
    /// Counts what comes in; `None` behind a disk buffer, which counted it.
    metrics: Option<Arc<ComponentMetrics>>,
    /// Where a sink can be watched: what it takes in.
    tap: Option<Arc<TapPoint>>,
}

impl Input {
    /// An input reading `receiver`, counting into `metrics`.
    pub fn new(receiver: mpsc::Receiver<Batch>, metrics: Arc<ComponentMetrics>) -> Self {
        Self {
            receiver: Arc::new(Mutex::new(receiver)),
            metrics: Some(metrics),
            tap: None,
        }
    }

    /// An input reading `receiver` that counts nothing: a sink's behind its
    /// disk buffer, whose own input counted the events once.
    pub fn uncounted(receiver: mpsc::Receiver<Batch>) -> Self {
        Self {
            receiver: Arc::new(Mutex::new(receiver)),
            metrics: None,
            tap: None,
        }
    }

    /// This input, offering what it takes in to `tap`.
    pub fn tapped(self, tap: Arc<TapPoint>) -> Self {
        Self {
            tap: Some(tap),
            ..self
        }
    }

    /// The next batch; `None` once every input has stopped and the channel
    /// is empty. Batches their source abandoned (it sends them again) are
    /// let go here, so no component handles them twice.
    pub async fn recv(&mut self) -> Option<Batch> {
        let mut receiver = self.receiver.lock().await;
        loop {
            let batch = receiver.recv().await?;
            if let Some(batch) = self.accept(batch) {
                return Some(batch);
            }
        }
    }

    /// A batch already waiting, if there is one; never waits.
    pub fn try_recv(&mut self) -> Option<Batch> {
        let mut receiver = self.receiver.try_lock().ok()?;
        loop {
            let batch = receiver.try_recv().ok()?;
            if let Some(batch) = self.accept(batch) {
                return Some(batch);
            }
        }
    }

    /// Counts a batch in, or lets it go when its source abandoned it.
    fn accept(&self, batch: Batch) -> Option<Batch> {
        if batch.is_abandoned() {
            batch.finish(Delivery::Dropped);
            return None;
        }
        if let Some(metrics) = &self.metrics {
            metrics.received(batch.events.len(), 0);
        }
        if let Some(tap) = &self.tap {
            tap.offer(&batch.events);
        }
        Some(batch)
    }
}

/// What a source runs with.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Stamped on every event.
    pub origin: Arc<Origin>,
    /// Where its batches go.
    pub output: Output,
    /// Cancelled when the source must stop.
    pub shutdown: CancellationToken,
    /// Where the source keeps its state (checkpoints); created on demand.
    pub state_dir: PathBuf,
    /// Its counters.
    pub metrics: Arc<ComponentMetrics>,
    /// Every component's counters, for `internal_metrics`.
    pub registry: Arc<Registry>,
}

/// What a pipeline runs with.
#[derive(Debug, Clone)]
pub struct PipelineContext {
    /// The component's name, for logs.
    pub name: String,
    /// Batches from its inputs; ends when they all have stopped.
    pub input: Input,
    /// Where its batches go.
    pub output: Output,
    /// Its named outputs (a `route`'s), by name: what consumers that take
    /// `component.output` receive.
    pub outputs: BTreeMap<String, Output>,
    /// Its counters.
    pub metrics: Arc<ComponentMetrics>,
}

/// What a sink runs with.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The component's name, for logs.
    pub name: String,
    /// Batches from its inputs; ends when they all have stopped.
    pub input: Input,
    /// Its counters: a sink counts what it wrote.
    pub metrics: Arc<ComponentMetrics>,
    /// This node's managers, for sinks that send to them.
    pub managers: Option<ManagerTarget>,
}

/// Where events bound for this node's managers go (a `yh` sink without an
/// endpoint): their API URLs, in failover order, and the token to present.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerTarget {
    /// Base URLs such as `http://master1:7881`.
    pub urls: Vec<String>,
    /// The token: a worker's own credential, or a standalone node's
    /// enrollment token.
    pub token: TokenSource,
    /// `service.cluster_name`, sent along so a manager of another cluster refuses.
    pub cluster_name: String,
}

/// A bearer token, given, or read from a file at each use because it may be
/// replaced while the process runs (a worker enrolling again).
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// This token.
    Static(String),
    /// The token in this file, trimmed.
    File(PathBuf),
}

impl TokenSource {
    /// The token now; none when its file is missing or empty.
    pub fn current(&self) -> Option<String> {
        match self {
            TokenSource::Static(token) => Some(token.clone()),
            TokenSource::File(path) => std::fs::read_to_string(path)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|token| !token.is_empty()),
        }
    }
}

/// This host's name: `HOSTNAME` when set, else the kernel's.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}
