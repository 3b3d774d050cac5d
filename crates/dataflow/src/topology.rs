//! Running dataflows: every component a task, every edge a bounded channel
//! of batches (a full channel pauses its producer instead of growing
//! memory), fan-out by cloning, fan-in by sharing a channel. A component
//! that fails is reported and started again with backoff while its
//! neighbours go on (a full channel holds its producers meanwhile).
//! Stopping a dataflow stops its sources; the rest drain what is in flight
//! and end.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use datascale_core::{
    backoff::Backoff,
    buffer::{BufferType, DiskBuffer},
    component::{
        BuildError, CHANNEL_BATCHES, ComponentTask, FIRST_RESTART_BACKOFF, Input,
        MAX_RESTART_BACKOFF, ManagerTarget, Output, PipelineContext, SinkContext, SourceContext,
        host_name,
    },
    event::{Batch, Origin},
    metrics::{ChannelFill, ComponentMetrics, ComponentState, Registered, Registry},
    tap::Taps,
};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{ComponentConfig, Dataflow, collector::shelf::Shelf};

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
    let mut register = |name: &str, kind: &str| {
        let fill = senders
            .get(name)
            .map(|sender| Arc::new(EdgeFill(sender.downgrade())) as Arc<dyn ChannelFill>);
        let component = environment
            .metrics
            .register((group, &dataflow.name), name, kind, fill);
        let metrics = component.metrics.clone();
        registered.push(component);
        metrics
    };
    let tap_of = |component: &str| environment.taps.point(group, &dataflow.name, component);
    // A route's named outputs are watched with the route itself.
    let output_of = |producer: &str, tapped: &str, metrics: &Arc<ComponentMetrics>, is_source| {
        let consumers = takes_from
            .iter()
            .filter(|(_, inputs)| inputs.iter().any(|input| input == producer))
            .map(|(consumer, _)| senders[consumer].clone())
            .collect();
        Output::watched(consumers, metrics.clone(), is_source, tap_of(tapped))
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
        let metrics = register(&source.name, source.config.type_name());
        let context = SourceContext {
            origin: Arc::new(Origin::new(&environment.host, &dataflow.name, &source.name)),
            output: output_of(&source.name, &source.name, &metrics, true),
            shutdown: shutdown.child_token(),
            state_dir: environment.dataflow_dir("state", group, &dataflow.name),
            metrics: metrics.clone(),
            registry: environment.metrics.clone(),
        };
        let (name, config) = (source.name.clone(), source.config.clone());
        let collectors = environment.collectors.clone();
        supervised.push(Supervised::new(&source.name, metrics, move || {
            config.build(&name, context.clone(), &collectors)
        })?);
    }
    for pipeline in &dataflow.pipelines {
        let metrics = register(&pipeline.name, pipeline.config.type_name());
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
        let metrics = register(&sink.name, sink.config.type_name());
        let input = input_of(&sink.name, &metrics).tapped(tap_of(&sink.name));
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
    /// after a failure, waits (doubling the wait, with jitter, for failures in a row) and
    /// starts it again.
    async fn run(mut self, dataflow: String, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(FIRST_RESTART_BACKOFF, MAX_RESTART_BACKOFF);
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
                backoff.reset();
            }
            let wait = backoff.next_wait();
            warn!(
                dataflow = %dataflow,
                component = %self.name,
                error = %error,
                restart_in_ms = wait.as_millis() as u64,
                "Component failed; starting it again after a pause."
            );
            self.metrics.failed(error);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {
                    self.metrics.set_state(ComponentState::Finished);
                    return;
                }
            }
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
