#!/usr/bin/env bash
# Installs the pinned AsyncAPI parser (package-lock.json) into the user's cache, once per lock
# change, for tests/ops/test_asyncapi.py. Offline after the first run; bootstrap calls it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="${MOTCUA_ASYNCAPI_PARSER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/motcua/asyncapi-parser}"

# The lock's copy in the cache doubles as the stamp: equal means installed from this lock.
if [ -d "$target/node_modules/@asyncapi/parser" ] && cmp -s "$here/package-lock.json" "$target/package-lock.json"; then
    exit 0
fi
command -v npm >/dev/null || { echo "npm (Node.js 20) is needed to validate the AsyncAPI documents" >&2; exit 1; }
mkdir -p "$target"
cp "$here/package.json" "$here/package-lock.json" "$target/"
# --ignore-scripts: nothing from the registry runs at install time.
npm ci --prefix "$target" --ignore-scripts --no-audit --no-fund --loglevel=error
echo "AsyncAPI parser installed in $target"
