//! `route`: sends each event to every named output whose VRL condition
//! holds, and what no condition matched to `_unmatched`.
//!
//! Here too: the `route` `conf`, with its defaults, its checks and its build.

use std::collections::BTreeMap;

use datascale_core::{
    ack::Delivery,
    component::{BuildError, ComponentError, ComponentTask, PipelineContext},
    event::{Batch, Event},
};
use serde::{Deserialize, Serialize};
use vrl::compiler::Program;

use super::{
    PipelineType, VrlRole, default_true,
    vrl_programs::{self, Vrl, holds},
};
use crate::{Problems, TypeConf, invalid};

/// Name of the output of a `route` that takes what no route matched.
pub const UNMATCHED_OUTPUT: &str = "_unmatched";

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

impl PipelineType for RouteConfig {
    fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        let router = Router::new(self).map_err(invalid(name))?;
        Ok(Box::pin(router.run(context)))
    }

    fn vrl_programs(&self) -> Vec<(String, &str, VrlRole)> {
        self.route
            .iter()
            .map(|(name, condition)| {
                (
                    format!("route.{name}"),
                    condition.as_str(),
                    VrlRole::Condition,
                )
            })
            .collect()
    }
}

impl TypeConf for RouteConfig {
    fn named_outputs(&self) -> Vec<String> {
        let mut outputs: Vec<String> = self.route.keys().cloned().collect();
        if self.reroute_unmatched {
            outputs.push(UNMATCHED_OUTPUT.to_owned());
        }
        outputs
    }

    fn check(&self, problems: &mut Problems) {
        if self.route.is_empty() {
            problems.add("route", "name at least one output with its condition");
        }
        for name in self.route.keys() {
            if name == UNMATCHED_OUTPUT {
                problems.add(
                    format!("route.{name}"),
                    "`_unmatched` is the output of what no route matched; choose another name",
                );
            } else if datascale_core::names::check_name(name).is_err() || name.contains('.') {
                problems.add(
                    format!("route.{name}"),
                    "an output name has letters, digits, `_` and `-`",
                );
            }
        }
    }
}

/// A `route` with its conditions compiled.
struct Router {
    /// Output name and its condition, in name order.
    conditions: Vec<(String, Program)>,
    reroute_unmatched: bool,
}

impl Router {
    /// Compiles every condition; the error names the route that does not compile.
    pub fn new(config: &RouteConfig) -> Result<Self, String> {
        let conditions = config
            .route
            .iter()
            .map(|(output, condition)| {
                vrl_programs::compile(condition)
                    .map(|program| (output.clone(), program))
                    .map_err(|diagnostic| format!("route `{output}`: {diagnostic}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            conditions,
            reroute_unmatched: config.reroute_unmatched,
        })
    }

    /// Routes batches until the input ends. Each output receives one batch
    /// per input batch that had events for it, carrying a share of the input
    /// batch's delivery token; a batch that goes nowhere settles as dropped.
    pub async fn run(self, mut context: PipelineContext) -> Result<(), ComponentError> {
        let mut vrl = Vrl::new();
        while let Some(batch) = context.input.recv().await {
            let routed = self.split(&mut vrl, batch.events);
            if routed.is_empty() {
                if let Some(token) = batch.delivery {
                    token.finish(Delivery::Dropped);
                }
                continue;
            }
            for (output, events) in routed {
                let part = Batch {
                    events,
                    delivery: batch.delivery.clone(),
                };
                let output = context
                    .outputs
                    .get(output)
                    .expect("the runtime wires every named output");
                if output.send(part).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The events of each output, in input order. Conditions run one after
    /// the other on the event, as in `filter`: what a condition assigns stays.
    fn split<'a>(&'a self, vrl: &mut Vrl, events: Vec<Event>) -> BTreeMap<&'a str, Vec<Event>> {
        let mut routed: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
        for event in events {
            let mut value = event.value;
            let mut matched = Vec::new();
            for (output, condition) in &self.conditions {
                let (after, result) = vrl.run(condition, value);
                value = after;
                if holds(&result) {
                    matched.push(output.as_str());
                }
            }
            if matched.is_empty() && self.reroute_unmatched {
                matched.push(UNMATCHED_OUTPUT);
            }
            if let Some((last, others)) = matched.split_last() {
                for output in others {
                    routed.entry(output).or_default().push(Event {
                        value: value.clone(),
                    });
                }
                routed.entry(last).or_default().push(Event { value });
            }
        }
        routed
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use datascale_core::{
        ack::DeliveryToken,
        component::{Input, Output},
        event::Origin,
    };

    fn event(message: &str) -> Event {
        let origin = Origin::new("h", "d", "s");
        Event::from_message(message.to_owned(), &origin)
    }

    fn messages(batch: &Batch) -> Vec<String> {
        batch
            .events
            .iter()
            .map(|event| event.message().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn events_reach_every_matching_output_with_the_batch_token() {
        let config = RouteConfig {
            route: BTreeMap::from([
                (
                    "a".to_owned(),
                    r#"contains(string!(.message), "a")"#.to_owned(),
                ),
                (
                    "b".to_owned(),
                    r#"contains(string!(.message), "b")"#.to_owned(),
                ),
            ]),
            reroute_unmatched: true,
        };
        let router = Router::new(&config).unwrap();
        let (input, receiver) = mpsc::channel(4);
        let mut outputs = BTreeMap::new();
        let mut received = BTreeMap::new();
        for name in ["a", "b", UNMATCHED_OUTPUT] {
            let (sender, receiver) = mpsc::channel(4);
            outputs.insert(name.to_owned(), Output::new(vec![sender]));
            received.insert(name, receiver);
        }
        let context = PipelineContext {
            name: "r".into(),
            input: Input::new(receiver, Default::default()),
            metrics: Default::default(),
            output: Output::default(),
            outputs,
        };
        let task = tokio::spawn(router.run(context));
        let (token, receipt) = DeliveryToken::new();
        let batch = Batch {
            events: vec![event("ab"), event("a"), event("c")],
            delivery: Some(token),
        };
        input.send(batch).await.unwrap();
        drop(input);
        task.await.unwrap().unwrap();

        let mut parts = Vec::new();
        for (name, expected) in [
            ("a", vec!["ab", "a"]),
            ("b", vec!["ab"]),
            (UNMATCHED_OUTPUT, vec!["c"]),
        ] {
            let part = received.get_mut(name).unwrap().recv().await.unwrap();
            assert_eq!(messages(&part), expected, "output {name}");
            parts.push(part);
        }
        for part in parts {
            part.finish(Delivery::Delivered);
        }
        assert_eq!(receipt.outcome().await, Delivery::Delivered);
    }

    #[tokio::test]
    async fn a_batch_that_goes_nowhere_settles_as_dropped() {
        let config = RouteConfig {
            route: BTreeMap::from([("never".to_owned(), "false".to_owned())]),
            reroute_unmatched: false,
        };
        let router = Router::new(&config).unwrap();
        let (input, receiver) = mpsc::channel(4);
        let (sender, mut never) = mpsc::channel(4);
        let context = PipelineContext {
            name: "r".into(),
            input: Input::new(receiver, Default::default()),
            metrics: Default::default(),
            output: Output::default(),
            outputs: BTreeMap::from([("never".to_owned(), Output::new(vec![sender]))]),
        };
        let task = tokio::spawn(router.run(context));
        let (token, receipt) = DeliveryToken::new();
        input
            .send(Batch {
                events: vec![event("x")],
                delivery: Some(token),
            })
            .await
            .unwrap();
        assert_eq!(receipt.outcome().await, Delivery::Delivered);
        drop(input);
        task.await.unwrap().unwrap();
        assert!(never.recv().await.is_none(), "nothing was routed");
    }

    #[test]
    fn a_condition_that_does_not_compile_names_its_route() {
        let config = RouteConfig {
            route: BTreeMap::from([("bad".to_owned(), "this is not vrl(".to_owned())]),
            reroute_unmatched: true,
        };
        let Err(message) = Router::new(&config) else {
            panic!("compiled");
        };
        assert!(message.starts_with("route `bad`:"), "{message}");
    }
}
