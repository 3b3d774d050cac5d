#!/usr/bin/env bash
# Runs the whole test suite. Tests start real processes on loopback ports;
# everything they need beyond the Rust toolchain is installed from here.
# Ends with one line that totals every test binary: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i - 1); if ($(i) ~ /^failed;?$/) f += $(i - 1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
