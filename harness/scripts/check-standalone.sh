#!/usr/bin/env bash
# Fails when a tracked file refers to a path outside the repository: a fresh clone has
# nothing beside it (no ../shared, no developer's /work tree), so such a file would break
# for every user. Run by test-all.sh before the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
pattern='\.\./shared|/work/|\.\./\.\./\.\./'
# This script names the patterns it looks for, so it is the one file allowed to hold them.
hits=$(git ls-files -z | grep -zv '^harness/scripts/check-standalone.sh$' \
    | xargs -0 grep -nIE "$pattern" -- 2>/dev/null || true)
if [ -n "$hits" ]; then
    echo "these tracked files refer outside the repository:" >&2
    echo "$hits" >&2
    exit 1
fi
