//! Pipelines: the closed list of pipeline types (`PipelineConfig`, one
//! line a type) and what several of them share: the VRL runner
//! (`vrl_programs`), event field paths, and running a pipeline that keeps
//! or drops events one by one. Each type's module owns its `conf`, its
//! checks, its build and its running, with Vector's field names where
//! Vector has the same transform.

use datascale_core::{
    ack::Delivery,
    component::{BuildError, ComponentError, ComponentTask, Output, OutputClosed, PipelineContext},
    event::{Batch, Event},
};
use vrl::path::OwnedValuePath;

use crate::{Problems, TypeConf};

pub mod dedupe;
pub mod filter;
pub mod remap;
pub mod route;
pub mod sample;
pub mod throttle;
mod vrl_programs;

crate::component_types! {
    /// A pipeline: its `type` and, inside, its `conf`.
    pub enum PipelineConfig as PipelineType {
        /// Changes events with a VRL program.
        Remap(remap::RemapConfig) => "remap",
        /// Keeps the events for which a VRL condition is true.
        Filter(filter::FilterConfig) => "filter",
        /// Sends events to named outputs by VRL conditions.
        Route(route::RouteConfig) => "route",
        /// Keeps one event in `rate`.
        Sample(sample::SampleConfig) => "sample",
        /// Drops events already seen.
        Dedupe(dedupe::DedupeConfig) => "dedupe",
        /// Limits events per time window.
        Throttle(throttle::ThrottleConfig) => "throttle",
    }
}

/// What each pipeline type's `conf` does besides its checks: build the
/// running pipeline, and name its VRL programs.
trait PipelineType: TypeConf {
    /// The running pipeline, or why its configuration cannot be put to work.
    fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError>;

    /// The VRL programs in this configuration, with their field paths below `conf`.
    fn vrl_programs(&self) -> Vec<(String, &str, VrlRole)> {
        Vec::new()
    }
}

impl PipelineConfig {
    /// The VRL programs in this configuration, with their field paths below `conf`.
    pub fn vrl_programs(&self) -> Vec<(String, &str, VrlRole)> {
        self.conf().vrl_programs()
    }

    /// The running pipeline, or why its configuration cannot be put to work.
    pub fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        self.conf().build(name, context)
    }
}

/// What a VRL program is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrlRole {
    /// Changes the event.
    Program,
    /// Decides about the event: must return a boolean.
    Condition,
}

fn default_true() -> bool {
    true
}

/// Parses an event field path such as `message` or `http.status`.
fn field_path(field: &str) -> Result<OwnedValuePath, String> {
    vrl::path::parse_value_path(field)
        .map_err(|_| format!("`{field}` is not a field path such as `message` or `http.status`"))
}

/// Runs `keep` on every event of every batch and sends on what it returns.
async fn keep_events(
    mut context: PipelineContext,
    mut keep: impl FnMut(Event) -> Option<Event> + Send,
) -> Result<(), ComponentError> {
    while let Some(mut batch) = context.input.recv().await {
        let events = std::mem::take(&mut batch.events);
        let received = events.len();
        batch.events = events.into_iter().filter_map(&mut keep).collect();
        context.metrics.discard(received - batch.events.len());
        if forward(&context.output, batch).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// A pipeline that passes on the events for which `keep` is true.
fn keep_where(
    context: PipelineContext,
    mut keep: impl FnMut(&Event) -> bool + Send + 'static,
) -> ComponentTask {
    Box::pin(keep_events(context, move |event| {
        keep(&event).then_some(event)
    }))
}

/// Sends a batch on, or, when nothing is left of it, settles its delivery
/// as dropped so that its source does not wait for it.
async fn forward(output: &Output, batch: Batch) -> Result<(), OutputClosed> {
    if batch.events.is_empty() {
        batch.finish(Delivery::Dropped);
        return Ok(());
    }
    output.send(batch).await
}

/// Adds a problem for each (path below `conf`, field) whose field is not a
/// field path.
fn check_field_paths<'a>(
    fields: impl IntoIterator<Item = (String, &'a str)>,
    problems: &mut Problems,
) {
    for (path, field) in fields {
        if let Err(message) = field_path(field) {
            problems.add(path, message);
        }
    }
}

/// Adds the problem of a `key_field` that is not a field path.
fn check_key_field(key_field: Option<&str>, problems: &mut Problems) {
    check_field_paths(
        key_field.map(|field| ("key_field".to_owned(), field)),
        problems,
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::sync::mpsc;

    use super::*;
    use datascale_core::{ack::DeliveryToken, component::Input, event::Origin};

    #[tokio::test]
    async fn discarded_batches_settle_and_kept_events_carry_the_token_on() {
        let (input, receiver) = mpsc::channel(4);
        let (sender, mut downstream) = mpsc::channel(4);
        let context = PipelineContext {
            name: "keep".into(),
            input: Input::new(receiver, Default::default()),
            metrics: Default::default(),
            output: Output::new(vec![sender]),
            outputs: BTreeMap::new(),
        };
        let task = tokio::spawn(keep_events(context, |event: Event| {
            (event.message().as_deref() == Some("keep")).then_some(event)
        }));
        let origin = Origin::new("h", "d", "s");
        let batch = |messages: &[&str]| {
            let (token, receipt) = DeliveryToken::new();
            let events = messages
                .iter()
                .map(|message| Event::from_message(message.to_string(), &origin))
                .collect();
            (
                Batch {
                    events,
                    delivery: Some(token),
                },
                receipt,
            )
        };

        let (discarded, receipt) = batch(&["drop", "drop"]);
        input.send(discarded).await.unwrap();
        assert_eq!(receipt.outcome().await, Delivery::Delivered);

        let (mixed, receipt) = batch(&["drop", "keep"]);
        input.send(mixed).await.unwrap();
        let kept = downstream.recv().await.unwrap();
        assert_eq!(kept.events.len(), 1);
        kept.finish(Delivery::Failed);
        assert_eq!(receipt.outcome().await, Delivery::Failed);

        drop(input);
        task.await.unwrap().unwrap();
    }
}
