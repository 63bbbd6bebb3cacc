#!/usr/bin/env bash
# Quick start: ONE command on a fresh Debian 12 machine, as root. Installs the Debian
# packages faultline needs, builds it in release mode, runs a 30 s register test against
# our Raft store on the local cluster (network-namespace hosts on this machine), then
# prints the summary and the report's path.
#
#     bash harness/scripts/quickstart.sh [extra faultline run options, e.g. --bug stale-read]
#
# The local cluster is brought up for the run and down again afterwards (unless it was
# already up). Exit code: faultline's (0 valid, 1 invalid, 2 unknown, 3 harness failure).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: run as root (the local cluster makes network namespaces)" >&2
    exit 3
fi
source harness/scripts/install-deps.sh

if ! command -v cargo >/dev/null 2>&1; then
    echo "quickstart: cargo is missing; install a Rust toolchain (e.g. rustup) first" >&2
    exit 3
fi
cargo build --release -p faultline -p faultline-node

# The summary (and the report's path) goes to stdout; the controller's log to stderr.
status=0
"${CARGO_TARGET_DIR:-target}/release/faultline" run --db raft --workload register \
    --time-limit 30 "$@" || status=$?
echo "quickstart: faultline run exited with $status; results are under results/raft-register/latest/"
exit "$status"
