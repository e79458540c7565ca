#!/usr/bin/env bash
# Everything CI checks: lint, format, and the whole test suite (real Prefect server, real ffmpeg, real worker,
# real sshd, the real vastai client against tests/fakes/vast_api.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The SSH tests run a real OpenSSH server on 127.0.0.1 (Debian's openssh-server); install it once.
if [ ! -x /usr/sbin/sshd ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q openssh-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q openssh-server >/dev/null; }
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest -q "$@"
