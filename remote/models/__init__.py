"""The model adapter interface and the registry of adapters by model id.

An adapter is loaded once per run and then generates clip after clip:
    adapter = load_adapter(spec); adapter.load()
    result = adapter.generate(prompt, image, clip, seed)   # result.frames: (F, H, W, 3) uint8 RGB
    (with on_step=report: report(step, steps, seconds) at each denoising step's end, for the run's status)

One file per model. kenburns.py renders on the CPU. The three diffusers models (wan22.py, cogvideox.py, hunyuan.py)
subclass hf.DiffusersAdapter, which does what they share (the weights from the local cache, the memory plan's
choice, the speed knobs, the timed call, the log's params, info()); each model's file keeps only what is its own:
the pipeline class and dtypes it loads, its scheduler's options, where its memory plan puts the parts, its call
arguments and what it logs of them (and Hunyuan's PromptTrim). Their text window and the memory their full plan
needs are jobspecs/architectures.yaml's, which the planner reads too. The speed knobs that replace kernels:
attention.py routes a transformer's unmasked attention to a kernel, fa4.py's (FlashAttention-4, Hopper) or sage.py's
(8-bit attention, its Triton kernels in sage_kernels.py); fp8.py puts the blocks' linear layers in fp8 (torchao).
tiny.py builds the random-weight pipelines of `model_source: tiny`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from jobspecs import ClipPlan, JobSpec

# model id -> "module:class", one for every model of jobspecs/baselines.yaml.
ADAPTERS: dict[str, str] = {
    "kenburns": "remote.models.kenburns:KenBurns",
    "wan22_ti2v_5b": "remote.models.wan22:Wan22",
    "hunyuan_i2v": "remote.models.hunyuan:HunyuanI2V",
    "cogvideox15_5b_i2v": "remote.models.cogvideox:CogVideoX15",
}


# Called at each denoising step's end: (steps finished, the clip's steps, that step's seconds). Models without steps
# (kenburns) never call it.
StepCallback = Callable[[int, int, float], None]


@dataclass
class Generated:
    frames: np.ndarray  # (frames, height, width, 3) uint8 RGB; frames[0] shows the input image
    timings_s: dict[str, float] = field(default_factory=dict)  # the adapter's own phases
    peak_vram_bytes: int | None = None  # None where no GPU is used
    params: dict = field(default_factory=dict)  # every generation parameter actually used


class ModelAdapter(Protocol):
    id: str

    def load(self) -> None:
        """Load weights (once per run)."""

    def generate(
        self, prompt: str, image: Image.Image, clip: ClipPlan, seed: int, on_step: StepCallback | None = None
    ) -> Generated:
        """One clip from `image` (already at the clip's size), deterministic for `seed`; `on_step` is called at
        each denoising step's end."""

    def info(self) -> dict:
        """id, repo, revision and `libraries` (versions), for the logs; every other key (the weights' source,
        the memory plan, ...) goes into the logs' and the manifest's `model` too."""


def load_adapter(spec: JobSpec) -> ModelAdapter:
    module_name, _, class_name = ADAPTERS[spec.model].partition(":")
    adapter_class = getattr(importlib.import_module(module_name), class_name)
    return adapter_class(spec)
