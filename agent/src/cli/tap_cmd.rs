//! `datascale tap GROUP/DATAFLOW/COMPONENT`: watches the events of one
//! component live, through the manager, from every worker that runs its
//! dataflow; one JSON object a line: `{"worker": …, "event": {…}}`.

use std::{ops::ControlFlow, process::ExitCode};

use clap::Args;

use super::{
    GlobalArgs,
    client::{NodeArgs, Output},
    emit,
};

/// Arguments of `datascale tap`.
#[derive(Debug, Args)]
pub struct TapArgs {
    /// The component to watch: its group, dataflow and name.
    #[arg(value_name = "GROUP/DATAFLOW/COMPONENT", value_parser = parse_component)]
    component: [String; 3],
    /// The most events a second from each worker, 1 to 1000.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rate: u32,
    /// Stop after this many events [default: run until interrupted].
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    node: NodeArgs,
}

/// Checks `GROUP/DATAFLOW/COMPONENT`.
fn parse_component(text: &str) -> Result<[String; 3], String> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [group, dataflow, component] if parts.iter().all(|part| !part.is_empty()) => Ok([
            (*group).to_owned(),
            (*dataflow).to_owned(),
            (*component).to_owned(),
        ]),
        _ => Err("expected GROUP/DATAFLOW/COMPONENT, such as default/nginx/parse".to_owned()),
    }
}

/// Prints the component's events as they come.
pub fn run(global: &GlobalArgs, args: TapArgs) -> ExitCode {
    let [group, dataflow, component] = args.component;
    args.node.run(global, Output::Json, |client| {
        let mut url = client.url(&[
            "groups",
            &group,
            "dataflows",
            &dataflow,
            "components",
            &component,
            "tap",
        ]);
        url.query_pairs_mut()
            .append_pair("rate", &args.rate.to_string());
        let mut shown = 0;
        client.follow_events(url, |data| {
            emit(&format!("{data}\n"));
            shown += 1;
            match args.limit {
                Some(limit) if shown >= limit => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_named_by_three_parts() {
        assert_eq!(
            parse_component("default/nginx/parse").unwrap(),
            ["default", "nginx", "parse"].map(str::to_owned)
        );
        for wrong in ["default/nginx", "a/b/c/d", "default//parse", ""] {
            assert!(parse_component(wrong).is_err(), "{wrong}");
        }
    }
}
