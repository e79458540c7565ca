"""The prefetch stage against a Hugging Face cache (offline here): the pinned revision, only pipeline files."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

from jobspecs import baselines


def test_prefetch_finds_the_pinned_revision_in_the_cache_offline(tmp_path) -> None:
    base = baselines()["wan22_ti2v_5b"]
    snapshot = tmp_path / "hub" / f"models--{base.repo.replace('/', '--')}" / "snapshots" / base.revision
    (snapshot / "transformer").mkdir(parents=True)
    (snapshot / "model_index.json").write_text('{"_class_name": "WanPipeline"}')
    (snapshot / "transformer" / "config.json").write_text("{}")
    (snapshot / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 1000)
    env = {
        "HF_HOME": str(tmp_path),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
    }
    # the token as the laptop sends it (tasks/box.prefetch_model): on standard input
    done = subprocess.run(
        [sys.executable, "-m", "remote.prefetch", "wan22_ti2v_5b", "--token-on-stdin"],
        input="hf_never_printed\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result | {"seconds": 0} == {
        "model": "wan22_ti2v_5b",
        "repo": base.repo,
        "revision": base.revision,
        "files": 3,
        "bytes": 1000 + 2 + 30,
        "seconds": 0,
    }
    assert "hf_never_printed" not in done.stdout + done.stderr


def test_prefetch_of_kenburns_downloads_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "remote.prefetch", "kenburns"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert json.loads(done.stdout)["bytes"] == 0
