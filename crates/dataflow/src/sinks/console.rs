//! The `console` sink: events to standard output or error, one a line.
//!
//! Here too: the `console` `conf`, with its defaults, and its build.

use datascale_core::{
    ack::Delivery,
    component::{BuildError, ComponentError, ComponentTask, SinkContext},
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{Encoding, SinkType};
use crate::TypeConf;

/// `console`: writes events to standard output or standard error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How each event is written, one a line.
    #[serde(default)]
    pub encoding: Encoding,
    /// `stdout` or `stderr`.
    #[serde(default)]
    pub target: ConsoleTarget,
}

/// Where the `console` sink writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleTarget {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl SinkType for ConsoleConfig {
    fn build(&self, _name: &str, context: SinkContext) -> Result<ComponentTask, BuildError> {
        Ok(Box::pin(run(self.clone(), context)))
    }
}

impl TypeConf for ConsoleConfig {}

/// Writes each batch with one write and acknowledges it once written.
async fn run(config: ConsoleConfig, mut context: SinkContext) -> Result<(), ComponentError> {
    let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match config.target {
        ConsoleTarget::Stdout => Box::new(tokio::io::stdout()),
        ConsoleTarget::Stderr => Box::new(tokio::io::stderr()),
    };
    let mut buffer = Vec::new();
    while let Some(batch) = context.input.recv().await {
        buffer.clear();
        for event in &batch.events {
            config.encoding.codec.encode_line(event, &mut buffer);
        }
        let written = async {
            out.write_all(&buffer).await?;
            out.flush().await
        }
        .await;
        if written.is_ok() {
            context.metrics.sent(batch.events.len(), buffer.len());
        }
        batch.finish(if written.is_ok() {
            Delivery::Delivered
        } else {
            Delivery::Failed
        });
        written.map_err(|source| ComponentError::Io {
            context: format!("sink `{}` cannot write", context.name),
            source,
        })?;
    }
    Ok(())
}
