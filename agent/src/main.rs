//! The `datascale` binary: parses the command line and runs the subcommand.

fn main() -> std::process::ExitCode {
    datascale::cli::main()
}
