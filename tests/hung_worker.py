"""The real worker, with a model whose clip 1 blocks inside C (libc sleep): a stand-in for a hung CUDA kernel.

    python tests/hung_worker.py JOB_DIR [--rank-1-fails]
    python -m torch.distributed.run --standalone --nproc-per-node=2 tests/hung_worker.py JOB_DIR [--rank-1-fails]

Clip 0 is a still (fast); clip 1 calls sleep(600) in C, where no Python signal handler or Prefect timeout
can reach it. Only the supervisor's SIGKILL ends it. Under torchrun every rank runs it (rank 0 writes, the others
follow, as on several GPUs) and writes its pid to status/pid_rank_<rank>; with --rank-1-fails, rank 1 raises at
clip 1 instead of hanging."""

import ctypes
import os
import sys
from pathlib import Path

import numpy as np

import remote.models
from remote.layout import JobPaths
from remote.models import Generated
from remote.models.kenburns import KenBurns
from remote.worker import main

RANK = int(os.environ.get("RANK", "0"))
RANK_1_FAILS = "--rank-1-fails" in sys.argv


class HungOnSecondClip(KenBurns):
    def generate(self, prompt, image, clip, seed, on_step=None):
        if clip.index >= 1:
            if RANK_1_FAILS and RANK == 1:
                raise RuntimeError("rank 1 lost its GPU at clip 1")
            ctypes.CDLL(None).sleep(600)
        frames = np.repeat(np.asarray(image)[None], clip.frames, axis=0)
        return Generated(frames=frames, timings_s={"render": 0.0})


args = [arg for arg in sys.argv[1:] if arg != "--rank-1-fails"]
if "WORLD_SIZE" in os.environ:
    paths = JobPaths(Path(args[0]).resolve())
    (paths.run_dir / "status").mkdir(parents=True, exist_ok=True)
    (paths.run_dir / "status" / f"pid_rank_{RANK}").write_text(str(os.getpid()))
remote.models.ADAPTERS["kenburns"] = "__main__:HungOnSecondClip"
sys.exit(main(args))
