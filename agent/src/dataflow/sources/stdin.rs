//! The `stdin` source: one event per line of standard input, until it ends.

use tokio::io::{AsyncBufReadExt, BufReader};
use tracing::warn;

use super::StdinConfig;
use crate::{
    event::{Batch, Event},
    runtime::{ComponentError, MAX_BATCH_EVENTS, SourceContext},
};

/// Reads lines until standard input ends or the source is stopped. Lines
/// already buffered travel together in one batch.
pub async fn run(config: StdinConfig, context: SourceContext) -> Result<(), ComponentError> {
    let mut reader = BufReader::with_capacity(64 * 1024, tokio::io::stdin());
    let mut line = Vec::new();
    let mut events = Vec::new();
    loop {
        line.clear();
        let read = tokio::select! {
            read = reader.read_until(b'\n', &mut line) => read,
            () = context.shutdown.cancelled() => break,
        }
        .map_err(|source| ComponentError::Io {
            context: "cannot read standard input".to_owned(),
            source,
        })?;
        if read == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let kept = if text.len() > config.max_length {
            warn!(source = %context.origin.source, bytes = text.len(), max_length = config.max_length, "Truncated a line longer than max_length.");
            &text[..config.max_length]
        } else {
            text
        };
        events.push(Event::from_message(
            bytes::Bytes::copy_from_slice(kept),
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
