#!/usr/bin/env bash
# Set up a box for the worker: a venv with this project (the wheel built at the run's commit) and its `remote`
# extra at pinned versions, plus the `hopper` extra (FlashAttention-4) where the GPU is sm_90+ and the `fp8` extra
# (torchao) where it is sm_89+; a box where fp8 fails to install still runs, without it. (The 8-bit attention's
# Triton kernels are in the project: remote/models/sage.py.) Idempotent: an
# existing venv is reused, satisfied requirements are not reinstalled, and the project's own code is always replaced
# by the given wheel. ffmpeg comes pinned in the imageio-ffmpeg wheel.
# Runs that share a venv (several runs on one box you have) set it up one at a time (flock).
#
#   bash setup.sh WHEEL VENV LOG
set -euo pipefail
wheel=$1 venv=$2 log=$3
mkdir -p "$(dirname "$log")"
exec >>"$log" 2>&1
echo "== setup $(date -u +%FT%TZ) wheel=$(basename "$wheel") venv=$venv"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.setup.lock"
flock 9
python=$(command -v python3.11 || command -v python3)
"$python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' || { echo "python >= 3.11 needed"; exit 1; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
extras=remote optional=
capability=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 || true)
if [[ "$capability" =~ ^([0-9]+)\.([0-9]+)$ ]]; then
  major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
  if (( major >= 9 )); then
    extras=remote,hopper  # FlashAttention-4: measured and used on sm_90+ only (remote/models/fa4.py)
  fi
  if (( major > 8 || (major == 8 && minor >= 9) )); then
    optional=fp8  # torchao's fp8 linear layers need fp8 tensor cores: sm_89+ (remote/models/fp8.py)
  fi
fi
echo "gpu compute capability: ${capability:-none}; extras: $extras${optional:+, optional: $optional}"
stamp="$venv/.shootout-wheel-$(sha256sum "$wheel" | cut -c1-16)-$extras${optional:+-$optional}"  # same code, same hash
if [ -f "$stamp" ]; then
  echo "this wheel is installed already"
else
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel[$extras]"
  if [ -n "$optional" ] && ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel[$optional]"; then
    echo "WARNING: the $optional extra did not install; the runs on this box skip fp8_linear and say why"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
  rm -f "$venv"/.shootout-wheel-* && touch "$stamp"
fi
"$venv/bin/python" -c 'import remote.worker, remote.ffmpeg; print("ffmpeg:", remote.ffmpeg.ffmpeg_build()["version"])'
echo "== setup ok"
