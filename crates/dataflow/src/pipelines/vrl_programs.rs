//! The runner of VRL programs that `remap`, `filter` and `route` share:
//! programs compiled once and run on each event in place.

use vrl::{
    compiler::{
        Program, TargetValue, TimeZone,
        runtime::{Runtime, Terminate},
        state::RuntimeState,
    },
    value::{Secrets, Value},
};

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

/// Whether a condition's result lets the event through: only `true` does;
/// other values and errors do not.
pub(super) fn holds(result: &Result<Value, Terminate>) -> bool {
    matches!(result, Ok(Value::Boolean(true)))
}
