//! Lays out the release binary's machine code so that an idle agent maps
//! little of it: the functions listed in `startup-symbols.txt` (what an idle
//! `datascale run` and an idle standalone `datascale start` execute, gathered
//! by `scripts/startup-symbols.py`) go side by side at the front of `.text`,
//! instead of spread over all of it. This took the idle resident memory of a
//! demo → blackhole dataflow from about 12.7 MB to 7.3–7.6 MB, and that of an
//! idle standalone node from 19.2 MB to about 12 MB.
//!
//! It relies on rustc's default linker for x86_64 GNU/Linux, LLD (since Rust
//! 1.90), and on functions in sections of their own (rustc's default). Names
//! the binary no longer has are skipped, so a stale list costs memory, never
//! a build.

use std::env;

const ORDER_FILE: &str = "startup-symbols.txt";

fn main() {
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-changed=build.rs");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target = env::var("TARGET").unwrap_or_default();
    if release && target == "x86_64-unknown-linux-gnu" {
        let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!(
            "cargo:rustc-link-arg-bin=datascale=-Wl,--symbol-ordering-file={manifest_dir}/{ORDER_FILE}"
        );
        println!("cargo:rustc-link-arg-bin=datascale=-Wl,--no-warn-symbol-ordering");
    }
}
