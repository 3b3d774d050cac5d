//! `filter`: keeps the events for which a VRL condition is true. Here too:
//! its `conf` and its build.

use datascale_core::{
    component::{BuildError, ComponentError, ComponentTask, PipelineContext},
    event::Event,
};
use serde::{Deserialize, Serialize};
use vrl::compiler::Program;

use super::{
    PipelineType, VrlRole, keep_events,
    vrl_programs::{self, Vrl, holds},
};
use crate::{TypeConf, invalid};

/// `filter`: keeps the events for which `condition` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// A VRL expression returning a boolean.
    pub condition: String,
}

impl PipelineType for FilterConfig {
    fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        let condition = vrl_programs::compile(&self.condition).map_err(invalid(name))?;
        Ok(Box::pin(run(condition, context)))
    }

    fn vrl_programs(&self) -> Vec<(String, &str, VrlRole)> {
        vec![(
            "condition".to_owned(),
            self.condition.as_str(),
            VrlRole::Condition,
        )]
    }
}

impl TypeConf for FilterConfig {}

/// `filter`: keeps the events whose condition is `true`.
async fn run(condition: Program, context: PipelineContext) -> Result<(), ComponentError> {
    let mut vrl = Vrl::new();
    keep_events(context, move |event| {
        let (value, result) = vrl.run(&condition, event.value);
        holds(&result).then_some(Event { value })
    })
    .await
}
