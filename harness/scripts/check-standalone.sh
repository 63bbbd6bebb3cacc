#!/usr/bin/env bash
# Fails when a tracked file refers to a path outside the repository: a fresh clone has
# nothing beside it (no sibling folders, no developer's own tree), so such a file would break
# for every user. Run by test-all.sh before the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
pattern='\.\./s''hared|/w''ork/|\.\./\.\./\.\./'
# The patterns above are split by '' so that this file does not match them itself.
hits=$(git ls-files -z | xargs -0 grep -nIE "$pattern" -- 2>/dev/null || true)
if [ -n "$hits" ]; then
    echo "these tracked files refer outside the repository:" >&2
    echo "$hits" >&2
    exit 1
fi
