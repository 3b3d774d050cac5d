//! `remap` and `filter`, and the runner of VRL programs that they and
//! `route` share: programs run on each event in place.

use datascale_core::{
    component::{ComponentError, PipelineContext},
    event::Event,
};
use tracing::warn;
use vrl::{
    compiler::{
        Program, TargetValue, TimeZone,
        runtime::{Runtime, Terminate},
        state::RuntimeState,
    },
    value::{Secrets, Value},
};

use super::{RemapConfig, forward, keep_events};

/// Compiles a VRL program, or returns VRL's diagnostic.
pub fn compile(source: &str) -> Result<Program, String> {
    vrl::compiler::compile(source, &vrl::stdlib::all())
        .map(|compiled| compiled.program)
        .map_err(|diagnostics| vrl::diagnostic::Formatter::new(source, diagnostics).to_string())
}

/// Runs VRL programs against events, reusing one runtime.
pub(super) struct Vrl {
    runtime: Runtime,
    timezone: TimeZone,
}

impl Vrl {
    pub(super) fn new() -> Self {
        Self {
            runtime: Runtime::new(RuntimeState::default()),
            timezone: TimeZone::default(),
        }
    }

    /// Runs `program` on `value`, which it may change; returns the program's result.
    pub(super) fn run(
        &mut self,
        program: &Program,
        value: Value,
    ) -> (Value, Result<Value, Terminate>) {
        let mut target = TargetValue {
            value,
            metadata: Value::Object(Default::default()),
            secrets: Secrets::default(),
        };
        let result = self.runtime.resolve(&mut target, program, &self.timezone);
        self.runtime.clear();
        (target.value, result)
    }
}

/// `remap`: an event whose program fails is passed on unchanged (or dropped
/// with `drop_on_error`); one that aborts is dropped with `drop_on_abort`.
pub async fn remap(
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

/// Whether a condition's result lets the event through: only `true` does;
/// other values and errors do not.
pub(super) fn holds(result: &Result<Value, Terminate>) -> bool {
    matches!(result, Ok(Value::Boolean(true)))
}

/// `filter`: keeps the events whose condition is `true`.
pub async fn filter(condition: Program, context: PipelineContext) -> Result<(), ComponentError> {
    let mut vrl = Vrl::new();
    keep_events(context, move |event| {
        let (value, result) = vrl.run(&condition, event.value);
        holds(&result).then_some(Event { value })
    })
    .await
}
