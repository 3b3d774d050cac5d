//! `remap`: changes each event with a VRL program. Here too: its `conf`,
//! with its defaults, and its build.

use datascale_core::{
    component::{BuildError, ComponentError, ComponentTask, PipelineContext},
    event::Event,
};
use serde::{Deserialize, Serialize};
use tracing::warn;
use vrl::compiler::{Program, runtime::Terminate};

use super::{
    PipelineType, VrlRole, default_true, forward,
    vrl_programs::{self, Vrl},
};
use crate::{TypeConf, invalid};

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

impl PipelineType for RemapConfig {
    fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        let program = vrl_programs::compile(&self.source).map_err(invalid(name))?;
        Ok(Box::pin(run(self.clone(), program, context)))
    }

    fn vrl_programs(&self) -> Vec<(String, &str, VrlRole)> {
        vec![("source".to_owned(), self.source.as_str(), VrlRole::Program)]
    }
}

impl TypeConf for RemapConfig {}

/// `remap`: an event whose program fails is passed on unchanged (or dropped
/// with `drop_on_error`); one that aborts is dropped with `drop_on_abort`.
async fn run(
    config: RemapConfig,
    program: Program,
    mut context: PipelineContext,
) -> Result<(), ComponentError> {
    let mut vrl = Vrl::new();
    let keep_original = !config.drop_on_error && program.info().fallible;
    while let Some(mut batch) = context.input.recv().await {
        let mut errors = 0usize;
        let events = std::mem::take(&mut batch.events);
        let received = events.len();
        batch.events = events
            .into_iter()
            .filter_map(|event| {
                let original = keep_original.then(|| event.clone());
                let (value, result) = vrl.run(&program, event.value);
                match result {
                    Ok(_) => Some(Event { value }),
                    Err(Terminate::Abort(_)) => (!config.drop_on_abort).then_some(Event { value }),
                    Err(_) => {
                        errors += 1;
                        original
                    }
                }
            })
            .collect();
        if errors > 0 {
            context.metrics.error(errors);
            warn!(component = %context.name, errors, "VRL failed on events of a batch.");
        }
        context.metrics.discard(received - batch.events.len());
        if forward(&context.output, batch).await.is_err() {
            break;
        }
    }
    Ok(())
}
