#!/usr/bin/env bash
# The opt-in VM suite (harness/cli/tests/vm.rs): installs the Debian packages the VM cluster and
# the Vagrant/libvirt path need, then runs the suite with FAULTLINE_VM_TESTS=1, one test at a
# time (never more than 3 VMs at once). Needs root and ~3 GB of free memory; about half an hour
# under software emulation, including the first image build (~3 min, cached afterwards).
#
#   harness/scripts/vm-tests.sh            everything
#   harness/scripts/vm-tests.sh vm_cluster only the tests whose name contains vm_cluster
set -euo pipefail
cd "$(dirname "$0")/../.."

# The VM cluster's packages, with qemu-utils of qemu-system-x86's version (see the
# script), then the Vagrant/libvirt path's.
bash harness/scripts/install-vm-deps.sh
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    vagrant vagrant-libvirt libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
    libvirt-daemon-system dnsmasq-base binutils >/dev/null

# Every run uploads the node to each VM: without debug info it is 22 MB instead of 105 MB,
# which saves most of a minute per run on emulated VMs.
cargo build -p faultline-node
node=$(mktemp /tmp/faultline-node-vm.XXXXXX)
trap 'rm -f "$node"' EXIT
objcopy --strip-debug "${CARGO_TARGET_DIR:-target}/debug/faultline-node" "$node"
export FAULTLINE_NODE_BINARY=$node
FAULTLINE_VM_TESTS=1 cargo test -p faultline --test vm -- --test-threads 1 --nocapture "$@"
