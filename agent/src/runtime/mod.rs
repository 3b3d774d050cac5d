//! Running dataflows: every component a task, every edge a bounded channel
//! of batches (a full channel pauses its producer instead of growing
//! memory), fan-out by cloning, fan-in by sharing a channel. Stopping a
//! dataflow stops its sources; the rest drain what is in flight and end.

pub mod ack;

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    dataflow::{ComponentConfig, Dataflow},
    event::{Batch, Origin},
    runtime::ack::Delivery,
};

/// Batches a channel holds before its producer waits.
pub const CHANNEL_BATCHES: usize = 8;

/// Most events a source puts in one batch.
pub const MAX_BATCH_EVENTS: usize = 1_000;

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
    /// The component's type is valid but this build cannot run it yet.
    #[error("component `{component}`: type `{kind}` cannot run in this version yet")]
    NotRunnable {
        /// The component's name.
        component: String,
        /// Its type.
        kind: String,
    },
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
}

/// Every consumer of an output has stopped.
#[derive(Debug, thiserror::Error)]
#[error("no component takes this output any more")]
pub struct OutputClosed;

impl Output {
    /// An output to these consumers' channels.
    pub fn new(consumers: Vec<mpsc::Sender<Batch>>) -> Self {
        Self { consumers }
    }

    /// Sends a batch to every consumer, waiting while their channels are
    /// full. With no consumer, the batch is dropped on purpose.
    pub async fn send(&self, batch: Batch) -> Result<(), OutputClosed> {
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

/// What a source runs with.
#[derive(Debug)]
pub struct SourceContext {
    /// Stamped on every event.
    pub origin: Arc<Origin>,
    /// Where its batches go.
    pub output: Output,
    /// Cancelled when the source must stop.
    pub shutdown: CancellationToken,
    /// Where the source keeps its state (checkpoints); created on demand.
    pub state_dir: PathBuf,
}

/// What a pipeline runs with.
#[derive(Debug)]
pub struct PipelineContext {
    /// The component's name, for logs.
    pub name: String,
    /// Batches from its inputs; ends when they all have stopped.
    pub input: mpsc::Receiver<Batch>,
    /// Where its batches go.
    pub output: Output,
    /// Its named outputs (a `route`'s), by name: what consumers that take
    /// `component.output` receive.
    pub outputs: BTreeMap<String, Output>,
}

/// What a sink runs with.
#[derive(Debug)]
pub struct SinkContext {
    /// The component's name, for logs.
    pub name: String,
    /// Batches from its inputs; ends when they all have stopped.
    pub input: mpsc::Receiver<Batch>,
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

/// A started dataflow.
#[derive(Debug)]
pub struct RunningDataflow {
    name: String,
    shutdown: CancellationToken,
    tasks: JoinSet<(String, Result<(), ComponentError>)>,
}

/// Builds every component of `dataflow`, and only when all of them build,
/// starts them. Sources keep their state below `data_dir/state/<dataflow>/`.
pub fn start(
    dataflow: &Dataflow,
    host: &str,
    data_dir: &Path,
) -> Result<RunningDataflow, BuildError> {
    let mut senders: BTreeMap<&str, mpsc::Sender<Batch>> = BTreeMap::new();
    let mut receivers: BTreeMap<&str, mpsc::Receiver<Batch>> = BTreeMap::new();
    let consumers = dataflow
        .pipelines
        .iter()
        .map(|p| (p.name.as_str(), &p.inputs))
        .chain(dataflow.sinks.iter().map(|s| (s.name.as_str(), &s.inputs)));
    let mut takes_from: Vec<(&str, &Vec<String>)> = Vec::new();
    for (name, inputs) in consumers {
        let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
        senders.insert(name, sender);
        receivers.insert(name, receiver);
        takes_from.push((name, inputs));
    }
    let output_of = |producer: &str| Output {
        consumers: takes_from
            .iter()
            .filter(|(_, inputs)| inputs.iter().any(|input| input == producer))
            .map(|(consumer, _)| senders[consumer].clone())
            .collect(),
    };

    let shutdown = CancellationToken::new();
    let mut built: Vec<(String, ComponentTask)> = Vec::new();
    for source in &dataflow.sources {
        let context = SourceContext {
            origin: Arc::new(Origin {
                host: host.to_owned(),
                dataflow: dataflow.name.clone(),
                source: source.name.clone(),
            }),
            output: output_of(&source.name),
            shutdown: shutdown.child_token(),
            state_dir: data_dir.join("state").join(&dataflow.name),
        };
        built.push((
            source.name.clone(),
            source.config.build(&source.name, context)?,
        ));
    }
    for pipeline in &dataflow.pipelines {
        let outputs = pipeline
            .config
            .named_outputs()
            .into_iter()
            .map(|output| {
                let consumers = output_of(&format!("{}.{output}", pipeline.name));
                (output, consumers)
            })
            .collect();
        let context = PipelineContext {
            name: pipeline.name.clone(),
            input: receivers
                .remove(pipeline.name.as_str())
                .expect("every pipeline has a channel"),
            output: output_of(&pipeline.name),
            outputs,
        };
        built.push((
            pipeline.name.clone(),
            pipeline.config.build(&pipeline.name, context)?,
        ));
    }
    for sink in &dataflow.sinks {
        let context = SinkContext {
            name: sink.name.clone(),
            input: receivers
                .remove(sink.name.as_str())
                .expect("every sink has a channel"),
        };
        built.push((sink.name.clone(), sink.config.build(&sink.name, context)?));
    }
    // Only the components' own copies of the senders keep channels open.
    drop(senders);

    let mut tasks = JoinSet::new();
    for (component, task) in built {
        tasks.spawn(async move { (component, task.await) });
    }
    info!(dataflow = %dataflow.name, "Dataflow started.");
    Ok(RunningDataflow {
        name: dataflow.name.clone(),
        shutdown,
        tasks,
    })
}

impl RunningDataflow {
    /// Waits until every component has ended by itself (finite sources),
    /// logging each failure.
    pub async fn finished(&mut self) {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((component, Err(err))) => {
                    warn!(dataflow = %self.name, component = %component, error = %err, "Component failed.");
                }
                Ok((_, Ok(()))) => {}
                Err(err) => warn!(dataflow = %self.name, error = %err, "Component task panicked."),
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
