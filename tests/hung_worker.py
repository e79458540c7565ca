"""The real worker, with a model whose clip 1 blocks inside C (libc sleep): a stand-in for a hung CUDA kernel.

    python tests/hung_worker.py JOB_DIR

Clip 0 is a still (fast); clip 1 calls sleep(600) in C, where no Python signal handler or Prefect timeout
can reach it. Only the supervisor's SIGKILL ends it."""

import ctypes
import sys

import numpy as np

import remote.models
from remote.models import Generated
from remote.models.kenburns import KenBurns
from remote.worker import main


class HungOnSecondClip(KenBurns):
    def generate(self, prompt, image, clip, seed):
        if clip.index >= 1:
            ctypes.CDLL(None).sleep(600)
        frames = np.repeat(np.asarray(image)[None], clip.frames, axis=0)
        return Generated(frames=frames, timings_s={"render": 0.0})


remote.models.ADAPTERS["kenburns"] = "__main__:HungOnSecondClip"
sys.exit(main())
