#!/usr/bin/env bash
# Detection benchmark: `mcpguard detect` against detect-secrets and presidio-analyzer (its
# pattern recognizers, no spaCy model) on the labeled corpus in bench/detect/.
#
#   bash scripts/bench_detect.sh [compare.py options]     e.g. --repeat 3, --budget 30
#
# Uses (and creates) a virtualenv at .venv-bench with the pinned peers, generates the corpus
# if it is missing, and prints markdown tables for BENCHMARKS.md. The binary is
# ${MCPGUARD:-target/release/mcpguard}; without it only the peers run. Takes about 2-3
# minutes (each peer scans the big input for at most --budget seconds, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

DETECT_SECRETS_VERSION=1.5.0
PRESIDIO_VERSION=2.2.366
venv=.venv-bench

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" - "$DETECT_SECRETS_VERSION" "$PRESIDIO_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if (version("detect-secrets"), version("presidio-analyzer")) == tuple(sys.argv[1:3]) else 1)
PY
then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "detect-secrets==$DETECT_SECRETS_VERSION" "presidio-analyzer==$PRESIDIO_VERSION"
fi

if [ ! -s bench/detect/corpus.jsonl ]; then
  "$venv/bin/python" bench/detect/make_corpus.py >&2
fi

bin=${MCPGUARD:-target/release/mcpguard}
extra=()
if [ ! -x "$bin" ]; then
  echo "no mcpguard binary at $bin: build it with 'cargo build --release -p mcpguard'" \
       "(or set MCPGUARD=PATH); running the peers only" >&2
  extra+=(--skip-mcpguard)
fi

exec "$venv/bin/python" bench/detect/compare.py --corpus bench/detect/corpus.jsonl \
  --mcpguard "$bin" "${extra[@]}" "$@"
