#!/usr/bin/env bash
# Installs the Debian packages the VM cluster (`faultline cluster up --vm`) needs: QEMU, the
# image builder and the network tools. Run as root; idempotent.
#
# qemu-utils and qemu-system-x86 must be of one QEMU version: a newer qemu-utils already on
# the machine (e.g. 10.0 from bookworm-backports) Breaks bookworm's qemu-system-common 7.2, and
# `apt-get install qemu-system-x86 qemu-utils` is then refused. So: when qemu-system-x86 of
# the installed qemu-utils' version can be had, that one is installed (what is there is
# used); otherwise qemu-utils is replaced by qemu-system-x86's own version (a downgrade,
# said on stderr).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
qemu=(qemu-system-x86 qemu-utils)
extra=()
utils_installed="$(dpkg-query -W -f='${Status} ${Version}' qemu-utils 2>/dev/null \
    | sed -n 's/^install ok installed //p')"
system_candidate="$(apt-cache policy qemu-system-x86 | sed -n 's/^  Candidate: //p')"
if [ -n "$utils_installed" ] && [ -n "$system_candidate" ] \
    && [ "$utils_installed" != "$system_candidate" ]; then
    if apt-cache madison qemu-system-x86 | awk -F'|' '{gsub(/ /, "", $2); print $2}' \
        | grep -qxF "$utils_installed"; then
        qemu=("qemu-system-x86=$utils_installed" "qemu-system-common=$utils_installed"
            "qemu-utils=$utils_installed")
    else
        echo "install-vm-deps: qemu-utils $utils_installed does not match qemu-system-x86" \
            "$system_candidate (the only one apt has); installing qemu-utils $system_candidate" >&2
        qemu=(qemu-system-x86 "qemu-utils=$system_candidate")
        extra=(--allow-downgrades)
    fi
fi
apt-get install -y -qq --no-install-recommends "${extra[@]}" \
    "${qemu[@]}" mmdebstrap e2fsprogs iproute2 iptables openssh-client >/dev/null
