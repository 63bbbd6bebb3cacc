#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this file and nothing else).
# Runs on a fresh Debian 12 machine as root: installs the Debian packages the tests need,
# then checks formatting and lints, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/../.."

source harness/scripts/install-deps.sh

export CARGO_TERM_COLOR=never
# A fresh clone has nothing beside it: no tracked file may read a path outside the repository.
bash harness/scripts/check-standalone.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Every failing test in one run, not only the first failing test binary.
cargo test --workspace --release --no-fail-fast
