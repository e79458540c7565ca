#!/usr/bin/env bash
# Installs what the demo and the tests need into .venv (idempotent; re-runs pip only when pyproject.toml changes).
# Needs: python3 ≥ 3.11 with venv, and pip access to PyPI (or this machine's registry mirror). ffmpeg comes
# pinned inside the imageio-ffmpeg wheel. The remote extra brings the CPU torch wheel (torch==2.13.0) for the
# offline tiny-model tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "python3 >= 3.11 needed" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "setup: creating .venv/" >&2; python3 -m venv .venv; }
stamp=.venv/.installed-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  started=$(date +%s)
  echo "setup: installing the pinned dependencies into .venv/ (prefect, diffusers, the CPU torch wheel," \
    "ruff …): about 2–3 minutes the first time, then skipped until pyproject.toml changes" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev,remote]' 2> >(grep -v 'is ignored: it is neither' >&2)
  rm -f .venv/.installed-* && touch "$stamp"
  echo "setup: .venv/ ready in $(( $(date +%s) - started )) s" >&2
fi
