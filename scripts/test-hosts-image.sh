#!/usr/bin/env bash
# Builds the base image of the test hosts that the Ansible tests roll
# DataScale out to: Debian bookworm (debootstrap --variant=minbase) with
# systemd as init, sshd, python3 and sudo, imported with `docker import`
# (no image registry is needed). Prints the image's tag.
#
# The tag is a hash of this script, so an unchanged script reuses the image:
# first from Docker, then from the root file system kept in the cache
# directory (DATASCALE_CACHE_DIR, default ~/.cache/datascale), and only
# then by running debootstrap (a few minutes; needs root and
# deb.debian.org, or DEBIAN_MIRROR).
#
# Usage: scripts/test-hosts-image.sh
set -euo pipefail

suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=systemd,systemd-sysv,dbus,openssh-server,python3,sudo,iproute2,procps

hash=$(cat "$0" | sha256sum | cut -c1-16)
tag="datascale-test-host:$hash"
cache="${DATASCALE_CACHE_DIR:-$HOME/.cache/datascale}/test-hosts"
rootfs="$cache/rootfs-$hash.tar.gz"

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

if [ ! -s "$rootfs" ]; then
    root=$(mktemp -d)
    trap '$sudo rm -rf "$root"' EXIT
    echo "Building the test host's root file system with debootstrap ($suite)…" >&2
    $sudo debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2

    # systemd makes a machine ID on the first boot of each container.
    $sudo truncate -s 0 "$root/etc/machine-id"
    $sudo rm -f "$root/var/lib/dbus/machine-id"
    # Nothing here talks to a console or to hardware.
    for unit in getty.target console-getty.service systemd-udevd.service \
        systemd-udev-trigger.service systemd-modules-load.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-fs-fuse-connections.mount; do
        $sudo ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # Root logs in with a key only; the tests put theirs in at start.
    $sudo mkdir -p -m 0700 "$root/root/.ssh"
    echo 'PermitRootLogin prohibit-password' | $sudo tee "$root/etc/ssh/sshd_config.d/test-host.conf" >/dev/null
    $sudo rm -rf "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin "$root/var/cache/apt/archives"/*.deb

    mkdir -p "$cache"
    $sudo tar --numeric-owner -C "$root" -czf "$rootfs.tmp" .
    $sudo chown "$(id -u):$(id -g)" "$rootfs.tmp"
    mv "$rootfs.tmp" "$rootfs"
    # Images of older versions of this script are not needed any more.
    find "$cache" -name 'rootfs-*.tar.gz' ! -name "rootfs-$hash.tar.gz" -delete
fi

# systemd runs as PID 1 and is told it is in a container. (`docker import`
# cannot set a stop signal: containers are run with --stop-signal SIGRTMIN+3,
# on which systemd shuts down cleanly.)
docker import \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=docker' \
    "$rootfs" "$tag" >/dev/null
# Images of older versions of this script are not needed any more.
docker images --format '{{.Repository}}:{{.Tag}}' datascale-test-host |
    grep -vxF "$tag" | xargs -r docker rmi >/dev/null || true
echo "$tag"
