//! `datascale dataflow …`: dataflow documents on this host.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use serde_json::json;

use super::emit;
use crate::dataflow;

#[derive(Debug, Subcommand)]
pub enum DataflowCommand {
    /// Check dataflow documents (JSON or YAML) without running them: their
    /// shape, each component's conf, names, inputs, cycles and VRL programs.
    /// Prints every problem with its JSON path; exits 1 when any is invalid.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A dataflow file; repeatable.
    #[arg(short, long = "file", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Print the result as JSON: one object per file with its errors.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DataflowCommand) -> ExitCode {
    let DataflowCommand::Validate(args) = command;
    let mut all_valid = true;
    let mut results = Vec::new();
    let mut out = String::new();
    for file in &args.files {
        let outcome = std::fs::read_to_string(file)
            .map_err(|err| {
                dataflow::ValidationErrors(vec![dataflow::ValidationError {
                    path: String::new(),
                    message: format!("cannot read the file: {err}"),
                }])
            })
            .and_then(|text| dataflow::parse_text(&text));
        let shown = file.display();
        match outcome {
            Ok(parsed) => {
                let (sources, pipelines, sinks) = parsed.counts();
                out.push_str(&format!(
                    "{shown}: dataflow `{}` is valid ({sources} source(s), {pipelines} pipeline(s), {sinks} sink(s))\n",
                    parsed.name
                ));
                results.push(json!({"file": shown.to_string(), "valid": true, "errors": []}));
            }
            Err(errors) => {
                all_valid = false;
                out.push_str(&format!("{shown}: {} problem(s)\n", errors.0.len()));
                for error in &errors.0 {
                    out.push_str(&format!("  {error}\n"));
                }
                results
                    .push(json!({"file": shown.to_string(), "valid": false, "errors": errors.0}));
            }
        }
    }
    if args.json {
        out = format!(
            "{}\n",
            serde_json::to_string_pretty(&results).expect("results serialize")
        );
    }
    emit(&out);
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
