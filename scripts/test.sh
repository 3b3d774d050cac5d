#!/usr/bin/env bash
# Runs the whole test suite. Tests start real processes on loopback ports;
# everything they need beyond the Rust toolchain is installed from here.
# Ends with one line that totals every test binary: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages some tests run, installed when their command is missing.
# Each line: the command a test runs, and the package that provides it.
missing=()
while read -r command package; do
    command -v "$command" >/dev/null 2>&1 || missing+=("$package")
done <<'PACKAGES'
objdump binutils
chromium chromium
chromedriver chromium-driver
debootstrap debootstrap
ssh openssh-client
ssh-keygen openssh-client
PACKAGES
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python tools some tests run (OpenAPI validation, API fuzzing, Ansible), in a virtual
# environment outside the clone, rebuilt only when their pinned list changes.
requirements=agent/tests/requirements.txt
venv="$HOME/.cache/datascale/venv-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -x "$venv/bin/schemathesis" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
fi
export TEST_TOOLS_BIN="$venv/bin"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i - 1); if ($(i) ~ /^failed;?$/) f += $(i - 1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
