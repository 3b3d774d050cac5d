//! The `blackhole` sink: events accepted and discarded. Here too: its
//! `conf` and its build.

use datascale_core::{
    ack::Delivery,
    component::{BuildError, ComponentError, ComponentTask, SinkContext},
};
use serde::{Deserialize, Serialize};

use super::SinkType;
use crate::TypeConf;

/// `blackhole`: accepts and discards events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {}

impl SinkType for BlackholeConfig {
    fn build(&self, _name: &str, context: SinkContext) -> Result<ComponentTask, BuildError> {
        Ok(Box::pin(discard(context)))
    }
}

impl TypeConf for BlackholeConfig {}

/// Accepts every batch and discards it.
async fn discard(mut context: SinkContext) -> Result<(), ComponentError> {
    while let Some(batch) = context.input.recv().await {
        context.metrics.sent(batch.events.len(), 0);
        batch.finish(Delivery::Delivered);
    }
    Ok(())
}
