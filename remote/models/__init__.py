"""The model adapter interface and the registry of adapters by model id.

An adapter is loaded once per run and then generates clip after clip:
    adapter = load_adapter(spec); adapter.load()
    result = adapter.generate(prompt, image, clip, seed)   # result.frames: (F, H, W, 3) uint8 RGB
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from jobspecs import ClipPlan, JobSpec

# model id -> "module:class". Only built models are listed; jobspecs refuses the others at validation.
ADAPTERS: dict[str, str] = {
    "kenburns": "remote.models.kenburns:KenBurns",
    "wan22_ti2v_5b": "remote.models.wan22:Wan22",
    "hunyuan_i2v": "remote.models.hunyuan:HunyuanI2V",
    "cogvideox15_5b_i2v": "remote.models.cogvideox:CogVideoX15",
}


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

    def generate(self, prompt: str, image: Image.Image, clip: ClipPlan, seed: int) -> Generated:
        """One clip from `image` (already at the clip's size), deterministic for `seed`."""

    def info(self) -> dict:
        """id, repo, revision and `libraries` (versions), for the logs; every other key (the weights' source,
        the memory plan, ...) goes into the logs' and the manifest's `model` too."""


def load_adapter(spec: JobSpec) -> ModelAdapter:
    module_name, _, class_name = ADAPTERS[spec.model].partition(":")
    adapter_class = getattr(importlib.import_module(module_name), class_name)
    return adapter_class(spec)
