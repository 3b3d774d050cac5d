//! Running dataflows: every component a task, every edge a bounded channel
//! of batches (a full channel pauses its producer instead of growing
//! memory), fan-out by cloning, fan-in by sharing a channel. A component
//! that fails is reported and started again with backoff while its
//! neighbours go on (a full channel holds its producers meanwhile).
//! Stopping a dataflow stops its sources; the rest drain what is in flight
//! and end.

pub mod ack;
mod buffer;
pub mod saving;
pub mod tap;

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::{Mutex, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::buffer::DiskBuffer;
use crate::{
    collector::shelf::Shelf,
    dataflow::{ComponentConfig, Dataflow, sinks::BufferType, type_name},
    event::{Batch, Origin},
    metrics::{ChannelFill, ComponentMetrics, ComponentState, Registered, Registry},
    runtime::{
        ack::Delivery,
        tap::{TapPoint, Taps},
    },
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
    fn uncounted(receiver: mpsc::Receiver<Batch>) -> Self {
        Self {
            receiver: Arc::new(Mutex::new(receiver)),
            metrics: None,
            tap: None,
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

/// Reads how full a channel is through a weak sender, which does not keep
/// the channel open.
#[derive(Debug)]
struct EdgeFill(mpsc::WeakSender<Batch>);

impl ChannelFill for EdgeFill {
    fn fill(&self) -> Option<(usize, usize)> {
        let sender = self.0.upgrade()?;
        Some((
            sender.max_capacity() - sender.capacity(),
            sender.max_capacity(),
        ))
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
    /// The custom collectors unpacked on this node, for `collector`.
    pub collectors: Shelf,
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

/// What every dataflow of a process runs with.
#[derive(Debug, Clone)]
pub struct Environment {
    /// This host's name, stamped on events.
    pub host: String,
    /// Sources keep their state below `data_dir/state/`, disk buffers theirs
    /// below `data_dir/buffers/`.
    pub data_dir: PathBuf,
    /// Where the components' counters are registered.
    pub metrics: Arc<Registry>,
    /// This node's managers, when it has any.
    pub managers: Option<ManagerTarget>,
    /// Where the components of its dataflows can be watched.
    pub taps: Arc<Taps>,
    /// The custom collectors unpacked on this node.
    pub collectors: Shelf,
}

impl Environment {
    /// Where a dataflow of `group` keeps its files of one kind (`state`,
    /// `buffers`): `data_dir/<kind>/[<group>/]<dataflow>/`.
    fn dataflow_dir(&self, kind: &str, group: &str, dataflow: &str) -> PathBuf {
        self.data_dir.join(kind).join(group).join(dataflow)
    }

    /// The environment of a process keeping its state in `data_dir`, with
    /// custom collectors unpacked in `collectors_dir`.
    pub fn new(data_dir: &Path, collectors_dir: &Path) -> Self {
        Self {
            host: host_name(),
            data_dir: data_dir.to_owned(),
            collectors: Shelf::new(collectors_dir),
            metrics: Registry::new(),
            managers: None,
            taps: Taps::new(),
        }
    }
}

/// A started dataflow.
#[derive(Debug)]
pub struct RunningDataflow {
    name: String,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    /// Keeps the components' series registered while the dataflow runs.
    _registered: Vec<Arc<Registered>>,
}

/// Builds every component of `dataflow` of `group` (empty for a dataflow
/// run outside any group), and only when all of them build, starts them,
/// each under a supervisor that starts it again after a failure. Its
/// sources keep their state below `data_dir/state/[<group>/]<name>/`.
pub fn start(
    dataflow: &Dataflow,
    group: &str,
    environment: &Environment,
) -> Result<RunningDataflow, BuildError> {
    let mut senders: BTreeMap<&str, mpsc::Sender<Batch>> = BTreeMap::new();
    let mut receivers: BTreeMap<&str, mpsc::Receiver<Batch>> = BTreeMap::new();
    let consumers = dataflow
        .pipelines
        .iter()
        .map(|p| (p.name.as_str(), &p.inputs))
        .chain(dataflow.sinks.iter().map(|s| (s.name.as_str(), &s.inputs)));
    let mut takes_from: Vec<(&str, &Vec<String>)> = Vec::new();
    for (name, component_inputs) in consumers {
        let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
        senders.insert(name, sender);
        receivers.insert(name, receiver);
        takes_from.push((name, component_inputs));
    }
    let mut registered = Vec::new();
    let mut register = |name: &str, kind: String| {
        let fill = senders
            .get(name)
            .map(|sender| Arc::new(EdgeFill(sender.downgrade())) as Arc<dyn ChannelFill>);
        let component = environment
            .metrics
            .register((group, &dataflow.name), name, &kind, fill);
        let metrics = component.metrics.clone();
        registered.push(component);
        metrics
    };
    let tap_of = |component: &str| environment.taps.point(group, &dataflow.name, component);
    // A route's named outputs are watched with the route itself.
    let output_of =
        |producer: &str, tapped: &str, metrics: &Arc<ComponentMetrics>, is_source| Output {
            consumers: takes_from
                .iter()
                .filter(|(_, inputs)| inputs.iter().any(|input| input == producer))
                .map(|(consumer, _)| senders[consumer].clone())
                .collect(),
            metrics: Some((metrics.clone(), is_source)),
            tap: Some(tap_of(tapped)),
        };
    let mut input_of = |consumer: &str, metrics: &Arc<ComponentMetrics>| {
        let receiver = receivers
            .remove(consumer)
            .expect("every pipeline and sink has a channel");
        Input::new(receiver, metrics.clone())
    };

    let shutdown = CancellationToken::new();
    let mut supervised: Vec<Supervised> = Vec::new();
    for source in &dataflow.sources {
        let metrics = register(&source.name, type_name(&source.config));
        let context = SourceContext {
            origin: Arc::new(Origin::new(&environment.host, &dataflow.name, &source.name)),
            output: output_of(&source.name, &source.name, &metrics, true),
            shutdown: shutdown.child_token(),
            state_dir: environment.dataflow_dir("state", group, &dataflow.name),
            metrics: metrics.clone(),
            registry: environment.metrics.clone(),
            collectors: environment.collectors.clone(),
        };
        let (name, config) = (source.name.clone(), source.config.clone());
        supervised.push(Supervised::new(&source.name, metrics, move || {
            config.build(&name, context.clone())
        })?);
    }
    for pipeline in &dataflow.pipelines {
        let metrics = register(&pipeline.name, type_name(&pipeline.config));
        let outputs = pipeline
            .config
            .named_outputs()
            .into_iter()
            .map(|output| {
                let producer = format!("{}.{output}", pipeline.name);
                let consumers = output_of(&producer, &pipeline.name, &metrics, false);
                (output, consumers)
            })
            .collect();
        let context = PipelineContext {
            name: pipeline.name.clone(),
            input: input_of(&pipeline.name, &metrics),
            output: output_of(&pipeline.name, &pipeline.name, &metrics, false),
            outputs,
            metrics: metrics.clone(),
        };
        let (name, config) = (pipeline.name.clone(), pipeline.config.clone());
        supervised.push(Supervised::new(&pipeline.name, metrics, move || {
            config.build(&name, context.clone())
        })?);
    }
    let mut buffers: Vec<ComponentTask> = Vec::new();
    for sink in &dataflow.sinks {
        let metrics = register(&sink.name, type_name(&sink.config));
        let input = Input {
            tap: Some(tap_of(&sink.name)),
            ..input_of(&sink.name, &metrics)
        };
        let input = match sink.buffer.kind {
            BufferType::Memory => input,
            BufferType::Disk => {
                let dir = environment
                    .dataflow_dir("buffers", group, &dataflow.name)
                    .join(&sink.name);
                let buffer =
                    DiskBuffer::open(&dir, &sink.buffer, metrics.clone()).map_err(|err| {
                        BuildError::Invalid {
                            component: sink.name.clone(),
                            message: format!(
                                "cannot open its disk buffer in {}: {err}",
                                dir.display()
                            ),
                        }
                    })?;
                let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
                buffers.extend(buffer.tasks(&sink.name, input, sender, shutdown.child_token()));
                Input::uncounted(receiver)
            }
        };
        let context = SinkContext {
            name: sink.name.clone(),
            input,
            metrics: metrics.clone(),
            managers: environment.managers.clone(),
        };
        let (name, config) = (sink.name.clone(), sink.config.clone());
        supervised.push(Supervised::new(&sink.name, metrics, move || {
            config.build(&name, context.clone())
        })?);
    }
    // Only the components' own copies of the senders keep channels open.
    drop(senders);

    let mut tasks = JoinSet::new();
    for component in supervised {
        tasks.spawn(component.run(dataflow.name.clone(), shutdown.clone()));
    }
    for buffer in buffers {
        tasks.spawn(async move {
            let _ = buffer.await;
        });
    }
    info!(dataflow = %dataflow.name, "Dataflow started.");
    Ok(RunningDataflow {
        name: dataflow.name.clone(),
        shutdown,
        tasks,
        _registered: registered,
    })
}

/// Builds a component's task; called again for each restart.
type Builder = Box<dyn FnMut() -> Result<ComponentTask, BuildError> + Send>;

/// A component and the means to start it again.
struct Supervised {
    name: String,
    metrics: Arc<ComponentMetrics>,
    first: ComponentTask,
    build: Builder,
}

impl Supervised {
    /// Builds the component's first run, so that a configuration that
    /// cannot run stops the dataflow's start.
    fn new(
        name: &str,
        metrics: Arc<ComponentMetrics>,
        mut build: impl FnMut() -> Result<ComponentTask, BuildError> + Send + 'static,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            name: name.to_owned(),
            metrics,
            first: build()?,
            build: Box::new(build),
        })
    }

    /// Runs the component until it ends by itself or the dataflow stops;
    /// after a failure, waits (doubling the wait for failures in a row) and
    /// starts it again.
    async fn run(mut self, dataflow: String, shutdown: CancellationToken) {
        let mut backoff = FIRST_RESTART_BACKOFF;
        let mut task = Some(self.first);
        loop {
            let started = tokio::time::Instant::now();
            let outcome = match task.take() {
                Some(task) => task.await.map_err(|err| err.to_string()),
                None => match (self.build)() {
                    Ok(task) => task.await.map_err(|err| err.to_string()),
                    Err(err) => Err(err.to_string()),
                },
            };
            let error = match outcome {
                Ok(()) => {
                    self.metrics.set_state(ComponentState::Finished);
                    return;
                }
                Err(error) => error,
            };
            if started.elapsed() > MAX_RESTART_BACKOFF {
                backoff = FIRST_RESTART_BACKOFF;
            }
            warn!(
                dataflow = %dataflow,
                component = %self.name,
                error = %error,
                restart_in_secs = backoff.as_secs(),
                "Component failed; starting it again after a pause."
            );
            self.metrics.failed(error);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => {
                    self.metrics.set_state(ComponentState::Finished);
                    return;
                }
            }
            backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
            self.metrics
                .restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.metrics.set_state(ComponentState::Running);
        }
    }
}

impl RunningDataflow {
    /// The dataflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until every component has ended by itself (finite sources).
    pub async fn finished(&mut self) {
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(err) = joined {
                warn!(dataflow = %self.name, error = %err, "Component task panicked.");
            }
        }
    }

    /// Stops the sources and lets the rest deliver what is in flight, for
    /// at most `deadline`; what is still running then is aborted.
    pub async fn stop(mut self, deadline: Duration) {
        self.shutdown.cancel();
        if tokio::time::timeout(deadline, self.finished())
            .await
            .is_err()
        {
            warn!(
                dataflow = %self.name,
                deadline_secs = deadline.as_secs(),
                "Dataflow did not drain before the deadline; stopping it anyway."
            );
            self.tasks.abort_all();
        }
        info!(dataflow = %self.name, "Dataflow stopped.");
    }
}
