//! The `console` sink (events to standard output or error) and the
//! `blackhole` sink (events accepted and discarded).

use datascale_core::{
    ack::Delivery,
    component::{ComponentError, SinkContext},
};
use tokio::io::AsyncWriteExt;

use super::{ConsoleConfig, ConsoleTarget};

/// Writes each batch with one write and acknowledges it once written.
pub async fn run(config: ConsoleConfig, mut context: SinkContext) -> Result<(), ComponentError> {
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

/// Accepts every batch and discards it.
pub async fn discard(mut context: SinkContext) -> Result<(), ComponentError> {
    while let Some(batch) = context.input.recv().await {
        context.metrics.sent(batch.events.len(), 0);
        batch.finish(Delivery::Delivered);
    }
    Ok(())
}
