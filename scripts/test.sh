#!/usr/bin/env bash
# Everything CI checks: lint, format, and the whole test suite (real Prefect server, real ffmpeg, real worker).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest -q "$@"
