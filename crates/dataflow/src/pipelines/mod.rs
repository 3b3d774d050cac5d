//! Pipeline types and their configurations (`conf`), with Vector's field
//! names where Vector has the same transform.

use std::collections::BTreeMap;

use datascale_core::{
    ack::Delivery,
    component::{BuildError, ComponentError, ComponentTask, Output, OutputClosed, PipelineContext},
    event::{Batch, Event},
};
use serde::{Deserialize, Serialize};
use vrl::path::OwnedValuePath;

use super::ComponentConfig;

mod dedupe;
mod route;
mod sample;
mod throttle;
mod vrl_programs;

/// A pipeline: its `type` and, inside, its `conf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "conf",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum PipelineConfig {
    /// Changes events with a VRL program.
    Remap(RemapConfig),
    /// Keeps the events for which a VRL condition is true.
    Filter(FilterConfig),
    /// Sends events to named outputs by VRL conditions.
    Route(RouteConfig),
    /// Keeps one event in `rate`.
    Sample(SampleConfig),
    /// Drops events already seen.
    Dedupe(DedupeConfig),
    /// Limits events per time window.
    Throttle(ThrottleConfig),
}

/// Name of the output of a `route` that takes what no route matched.
pub const UNMATCHED_OUTPUT: &str = "_unmatched";

impl PipelineConfig {
    /// The VRL programs in this configuration, with their field paths below `conf`.
    pub fn vrl_programs(&self) -> Vec<(String, &str, VrlRole)> {
        match self {
            PipelineConfig::Remap(remap) => {
                vec![("source".to_owned(), remap.source.as_str(), VrlRole::Program)]
            }
            PipelineConfig::Filter(filter) => {
                vec![(
                    "condition".to_owned(),
                    filter.condition.as_str(),
                    VrlRole::Condition,
                )]
            }
            PipelineConfig::Route(route) => route
                .route
                .iter()
                .map(|(name, condition)| {
                    (
                        format!("route.{name}"),
                        condition.as_str(),
                        VrlRole::Condition,
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
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

/// `remap`: changes events with a VRL program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemapConfig {
    /// The VRL program.
    pub source: String,
    /// Drop an event whose program fails at run time, instead of passing it on unchanged.
    #[serde(default)]
    pub drop_on_error: bool,
    /// Drop an event whose program calls `abort`.
    #[serde(default = "default_true")]
    pub drop_on_abort: bool,
}

/// `filter`: keeps the events for which `condition` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// A VRL expression returning a boolean.
    pub condition: String,
}

/// `route`: sends each event to every output whose condition is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Output name → VRL condition. Downstream inputs name `component.output`.
    pub route: BTreeMap<String, String>,
    /// Send events that match no condition to the output `_unmatched`.
    #[serde(default = "default_true")]
    pub reroute_unmatched: bool,
}

/// `sample`: keeps one event in `rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Keep one event in this many (1 keeps all).
    pub rate: u64,
    /// Sample by the value of this field, so that events with the same value are kept or dropped together.
    #[serde(default)]
    pub key_field: Option<String>,
}

/// `dedupe`: drops events whose fields were seen in the last `cache.num_events` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Which fields make two events the same.
    pub fields: DedupeFields,
    /// How many recent events are remembered.
    #[serde(default)]
    pub cache: DedupeCache,
}

/// `dedupe.fields`: compare these fields, or all but these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DedupeFields {
    /// Only these fields.
    Match(Vec<String>),
    /// All fields but these.
    Ignore(Vec<String>),
}

/// `dedupe.cache`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeCache {
    /// How many recent events are remembered.
    #[serde(default = "default_dedupe_cache_events")]
    pub num_events: usize,
}

impl Default for DedupeCache {
    fn default() -> Self {
        Self {
            num_events: default_dedupe_cache_events(),
        }
    }
}

/// `throttle`: passes at most `threshold` events per `window_secs` (per key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Events allowed per window.
    pub threshold: u64,
    /// Length of the window in seconds.
    pub window_secs: f64,
    /// Count separately per value of this field.
    #[serde(default)]
    pub key_field: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_dedupe_cache_events() -> usize {
    5_000
}

impl PipelineConfig {
    /// The running pipeline, or why its configuration cannot be put to work.
    pub fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        let invalid = |message| BuildError::Invalid {
            component: name.to_owned(),
            message,
        };
        match self {
            PipelineConfig::Remap(config) => {
                let program = vrl_programs::compile(&config.source).map_err(invalid)?;
                Ok(Box::pin(vrl_programs::remap(
                    config.clone(),
                    program,
                    context,
                )))
            }
            PipelineConfig::Filter(config) => {
                let condition = vrl_programs::compile(&config.condition).map_err(invalid)?;
                Ok(Box::pin(vrl_programs::filter(condition, context)))
            }
            PipelineConfig::Route(config) => {
                let router = route::Router::new(config).map_err(invalid)?;
                Ok(Box::pin(router.run(context)))
            }
            PipelineConfig::Sample(config) => {
                let mut sampler = sample::Sampler::new(config).map_err(invalid)?;
                Ok(Box::pin(keep_events(context, move |event| {
                    sampler.keep(&event).then_some(event)
                })))
            }
            PipelineConfig::Dedupe(config) => {
                let mut deduper = dedupe::Deduper::new(config).map_err(invalid)?;
                Ok(Box::pin(keep_events(context, move |event| {
                    deduper.keep(&event).then_some(event)
                })))
            }
            PipelineConfig::Throttle(config) => {
                let mut throttler = throttle::Throttler::new(config).map_err(invalid)?;
                Ok(Box::pin(keep_events(context, move |event| {
                    let now = tokio::time::Instant::now();
                    throttler.keep(&event, now).then_some(event)
                })))
            }
        }
    }

    /// The event field paths this configuration names, with their paths below `conf`.
    fn field_paths(&self) -> Vec<(String, &str)> {
        match self {
            PipelineConfig::Sample(SampleConfig {
                key_field: Some(field),
                ..
            })
            | PipelineConfig::Throttle(ThrottleConfig {
                key_field: Some(field),
                ..
            }) => vec![("key_field".to_owned(), field.as_str())],
            PipelineConfig::Dedupe(dedupe) => {
                let (kind, fields) = match &dedupe.fields {
                    DedupeFields::Match(fields) => ("match", fields),
                    DedupeFields::Ignore(fields) => ("ignore", fields),
                };
                fields
                    .iter()
                    .enumerate()
                    .map(|(index, field)| (format!("fields.{kind}[{index}]"), field.as_str()))
                    .collect()
            }
            _ => Vec::new(),
        }
    }
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

/// Sends a batch on, or, when nothing is left of it, settles its delivery
/// as dropped so that its source does not wait for it.
async fn forward(output: &Output, batch: Batch) -> Result<(), OutputClosed> {
    if batch.events.is_empty() {
        batch.finish(Delivery::Dropped);
        return Ok(());
    }
    output.send(batch).await
}

impl ComponentConfig for PipelineConfig {
    fn type_name(&self) -> &'static str {
        match self {
            PipelineConfig::Remap(_) => "remap",
            PipelineConfig::Filter(_) => "filter",
            PipelineConfig::Route(_) => "route",
            PipelineConfig::Sample(_) => "sample",
            PipelineConfig::Dedupe(_) => "dedupe",
            PipelineConfig::Throttle(_) => "throttle",
        }
    }

    fn named_outputs(&self) -> Vec<String> {
        match self {
            PipelineConfig::Route(route) => {
                let mut outputs: Vec<String> = route.route.keys().cloned().collect();
                if route.reroute_unmatched {
                    outputs.push(UNMATCHED_OUTPUT.to_owned());
                }
                outputs
            }
            _ => Vec::new(),
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (path, field) in self.field_paths() {
            if let Err(message) = field_path(field) {
                problems.push((path, message));
            }
        }
        let mut add = |path: String, message: &str| problems.push((path, message.to_owned()));
        match self {
            PipelineConfig::Route(route) => {
                if route.route.is_empty() {
                    add(
                        "route".to_owned(),
                        "name at least one output with its condition",
                    );
                }
                for name in route.route.keys() {
                    if name == UNMATCHED_OUTPUT {
                        add(
                            format!("route.{name}"),
                            "`_unmatched` is the output of what no route matched; choose another name",
                        );
                    } else if datascale_core::names::check_name(name).is_err() || name.contains('.')
                    {
                        add(
                            format!("route.{name}"),
                            "an output name has letters, digits, `_` and `-`",
                        );
                    }
                }
            }
            PipelineConfig::Sample(SampleConfig { rate: 0, .. }) => {
                add("rate".to_owned(), "must be at least 1")
            }
            PipelineConfig::Dedupe(dedupe) => {
                let (DedupeFields::Match(fields) | DedupeFields::Ignore(fields)) = &dedupe.fields;
                if matches!(dedupe.fields, DedupeFields::Match(_)) && fields.is_empty() {
                    add("fields.match".to_owned(), "name at least one field");
                }
                if dedupe.cache.num_events == 0 {
                    add("cache.num_events".to_owned(), "must be at least 1");
                }
            }
            PipelineConfig::Throttle(throttle) => {
                if throttle.threshold == 0 {
                    add("threshold".to_owned(), "must be at least 1");
                }
                if !(throttle.window_secs.is_finite() && throttle.window_secs > 0.0) {
                    add("window_secs".to_owned(), "must be more than 0");
                }
            }
            _ => {}
        }
        problems
    }
}

#[cfg(test)]
mod tests {
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
