//! The `stdin` source: one event per line of standard input, until it ends.
//!
//! Here too: the `stdin` `conf`, with its defaults, its checks and its build.

use bytes::Bytes;
use datascale_core::{
    component::{BuildError, ComponentError, ComponentTask, MAX_BATCH_EVENTS, SourceContext},
    event::{Batch, Event},
};
use serde::{Deserialize, Serialize};
use tokio::io::BufReader;
use tracing::warn;

use super::{SourceBuild, SourceType, default_max_line_bytes, lines::read_line};
use crate::{Problems, TypeConf};

/// `stdin`: reads lines from standard input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Longest line, in bytes; longer ones are truncated and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_length: usize,
}

impl SourceType for StdinConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        Ok(Box::pin(run(self.clone(), build.context)))
    }
}

impl TypeConf for StdinConfig {
    fn check(&self, problems: &mut Problems) {
        if self.max_length == 0 {
            problems.add("max_length", "must be at least 1");
        }
    }
}

/// Reads lines until standard input ends or the source is stopped. Lines
/// already buffered travel together in one batch.
async fn run(config: StdinConfig, context: SourceContext) -> Result<(), ComponentError> {
    let mut reader = BufReader::with_capacity(64 * 1024, tokio::io::stdin());
    let mut line = Vec::new();
    let mut events = Vec::new();
    loop {
        let read = tokio::select! {
            read = read_line(&mut reader, &mut line, config.max_length) => read,
            () = context.shutdown.cancelled() => break,
        }
        .map_err(|source| ComponentError::Io {
            context: "cannot read standard input".to_owned(),
            source,
        })?;
        let Some(cut) = read else { break };
        if cut {
            warn!(source = %context.origin.source(), max_length = config.max_length, "Truncated a line longer than max_length.");
        }
        events.push(Event::from_message(
            Bytes::copy_from_slice(&line),
            &context.origin,
        ));
        let batch_complete = events.len() >= MAX_BATCH_EVENTS || reader.buffer().is_empty();
        if batch_complete
            && context
                .output
                .send(Batch::unacknowledged(std::mem::take(&mut events)))
                .await
                .is_err()
        {
            return Ok(());
        }
    }
    if !events.is_empty() {
        let _ = context.output.send(Batch::unacknowledged(events)).await;
    }
    Ok(())
}
