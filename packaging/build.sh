#!/usr/bin/env bash
# Builds the release binary and writes into dist/:
#   datascale-X.Y.Z-<arch>-linux.tar.gz   the agent, for an offline install
#   datascale-ansible-X.Y.Z.tar.gz        the Ansible toolkit
#   SHA256SUMS
# The same sources give the same bytes: files are sorted, owned by 0:0 and
# dated SOURCE_DATE_EPOCH (default: the time of the last commit).
#
# Usage: packaging/build.sh [--binary PATH] [--out DIR]
#   --binary PATH  package this binary instead of building one
#   --out DIR      write there instead of dist/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

binary=""
out="$root/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "error: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release --locked --bin datascale)
    binary="${CARGO_TARGET_DIR:-$root/target}/release/datascale"
fi
[ -x "$binary" ] || { echo "error: $binary is not an executable" >&2; exit 1; }

version=$("$binary" version | awk '{ print $2 }')
arch=$(uname -m)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null) || {
        echo "error: not a git checkout: set SOURCE_DATE_EPOCH (seconds since 1970) to date the files" >&2
        exit 1
    }
fi

# The glibc the binary needs: the highest GLIBC_ version among its symbols.
glibc=$(objdump -T "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 || true)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The files of the repository under these paths (tracked ones in a git checkout).
sources() {
    if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$root" ls-files -- "$@"
    else
        (cd "$root" && find "$@" -type f)
    fi
}

# Copies repository files, keeping their paths, into directory $1.
copy_sources() {
    local dest=$1
    shift
    sources "$@" | while IFS= read -r file; do
        mkdir -p "$dest/$(dirname "$file")"
        cp "$root/$file" "$dest/$file"
    done
}

# Packs directory $2 of the stage into $1, byte for byte the same every time.
pack() {
    tar --sort=name --format=gnu --mtime="@$SOURCE_DATE_EPOCH" \
        --owner=0 --group=0 --numeric-owner --mode='u=rwX,go=rX' \
        -C "$stage" -cf - "$2" | gzip -n -6 >"$1"
}

# The agent.
agent="$stage/datascale"
mkdir -p "$agent/bin" "$agent/config" "$agent/init/systemd" "$agent/collectors"
cp "$binary" "$agent/bin/datascale"
chmod 0755 "$agent/bin/datascale"
cp "$root/config/datascale.toml" "$agent/config/datascale.toml"
cp "$root/packaging/init/systemd/datascale.service.template" "$agent/init/systemd/"
cat >"$agent/collectors/README" <<'TEXT'
Custom collectors live here. A worker unpacks each version its dataflows
use into <name>/<version>/ (service.collectors_dir) and removes it when no
dataflow uses it any more. examples/ holds collectors to start from: upload
one with `bin/datascale collector install collectors/examples/disk_usage`.
TEXT
copy_sources "$agent" collectors/examples
{
    echo "DataScale $version ($arch Linux)"
    echo
    echo "  bin/datascale                              the agent"
    echo "  config/datascale.toml                      its configuration"
    echo "  init/systemd/datascale.service.template    the systemd unit template"
    echo "  collectors/                                custom collectors"
    echo
    echo "Install as a service (root, systemd): bin/datascale service install"
    echo "Run in the foreground:                     bin/datascale start"
    echo "Remove the service (data kept):            bin/datascale service uninstall"
    [ -z "$glibc" ] || echo "Needs glibc $glibc or newer (ldd --version shows the host's)."
} >"$agent/README"

# The Ansible toolkit.
toolkit="$stage/datascale-ansible"
mkdir -p "$toolkit"
copy_sources "$toolkit" config playbook hosts vars.yaml
cp "$root/packaging/ansible/README.md" "$toolkit/README.md"

chmod -R u=rwX,go=rX "$stage"
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
agent_tarball="datascale-$version-$arch-linux.tar.gz"
toolkit_tarball="datascale-ansible-$version.tar.gz"
pack "$out/$agent_tarball" datascale
pack "$out/$toolkit_tarball" datascale-ansible
(cd "$out" && sha256sum "$agent_tarball" "$toolkit_tarball" >SHA256SUMS)

echo "Wrote into $out:"
(cd "$out" && cat SHA256SUMS)
[ -z "$glibc" ] || echo "The binary needs glibc $glibc or newer."
