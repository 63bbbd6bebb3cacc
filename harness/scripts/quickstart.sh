#!/usr/bin/env bash
# Quick start: ONE command on a fresh Debian 12 machine, as root. Installs the Debian
# packages faultline needs, builds it in release mode, and runs a 30 s register test against
# our Raft store on the local cluster (network-namespace hosts on this machine) under
# partitions, kills, pauses and clock faults. Raft is correct, so the verdict is valid; the
# summary ends with the report's path and how to open it.
#
#     bash harness/scripts/quickstart.sh [extra faultline run options, e.g. --bug stale-read]
#
# The local cluster is brought up for the run and down again afterwards (unless it was
# already up). Exit code: faultline's (0 valid, 1 invalid, 2 unknown, 3 harness failure).
# FAULTLINE_BIN names an already built `faultline` (with `faultline-node` beside it) to use
# instead of building; the test of this script sets it.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: run as root (the local cluster makes network namespaces)" >&2
    exit 3
fi
source harness/scripts/install-deps.sh

faultline="${FAULTLINE_BIN:-}"
if [ -z "$faultline" ]; then
    if ! command -v cargo >/dev/null 2>&1; then
        echo "quickstart: cargo is missing; install a Rust toolchain (e.g. rustup) first" >&2
        exit 3
    fi
    cargo build --release -p faultline -p faultline-node
    faultline="${CARGO_TARGET_DIR:-target}/release/faultline"
fi

# Every fault family the local hosts support, each on its own schedule (so every family
# plays, and faults of different families coincide), every 3 s on average.
# The summary goes to stdout (and is kept to find the run folder); the log to stderr.
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
set +e
"$faultline" run --db raft --workload register --time-limit 30 \
    --nemesis partition,kill,pause,clock --nemesis-overlap --nemesis-interval 3 \
    "$@" | tee "$out"
status=${PIPESTATUS[0]}
set -e
run_dir="$(sed -n 's/^run folder: //p' "$out" | tail -n 1)"
echo
echo "quickstart: faultline run exited with $status (0 valid, 1 invalid, 2 unknown, 3 failed)"
if [ -n "$run_dir" ] && [ -f "$run_dir/report.html" ]; then
    results_root="$(dirname "$(dirname "$run_dir")")"
    rel="${run_dir#"$results_root"/}"
    echo "quickstart: report: $run_dir/report.html"
    echo "quickstart: open it: $faultline serve $results_root"
    echo "            then http://127.0.0.1:8080/$rel/report.html (or open the file in a browser)"
fi
exit "$status"
