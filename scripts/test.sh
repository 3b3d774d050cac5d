#!/usr/bin/env bash
# Runs the whole test suite. Tests start real processes on loopback ports;
# everything they need beyond the Rust toolchain is installed from here.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked --no-fail-fast
