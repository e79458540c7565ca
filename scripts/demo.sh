#!/usr/bin/env bash
# The demo: jobspecs/demo.yaml (six chained kenburns clips, local provider, Prefect's own server) → a verified
# bundle in outputs/. Extra arguments go to `shootout run`, e.g. --set seed=7.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/shootout run jobspecs/demo.yaml --out outputs "$@"
