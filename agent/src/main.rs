//! The `datascale` binary: parses the command line and runs the subcommand.

/// mimalloc rather than the C library's allocator: events are many small
/// allocations freed on other threads, where glibc's per-thread arenas cost
/// both time and resident memory (measured by `cargo bench --bench pipeline`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    datascale::cli::main()
}
