"""CogVideoX1.5-5B-I2V (THUDM/CogVideoX1.5-5B-I2V) through diffusers' CogVideoXImageToVideoPipeline.

THUDM's own recipe (CogVideo inference/cli_demo.py): CogVideoXDPMScheduler with trailing timesteps (the repo
ships DDIM), dynamic CFG, 1360×768 at 16 fps, 81 frames (8k+1 gives exactly that many frames). Height and width
are always passed: left out, the pipeline asks for 2400×2400.

Memory plans (`generation.memory`):
  both   every clip's prompt and the negative prompt are encoded once at load, then the T5-XXL text encoder
         (8.9 GiB in bf16) is dropped; transformer (10.4 GiB) and VAE (0.4 GiB) stay on the GPU, bf16.
  full   the VAE decodes untiled (45 GiB peak at 1360×768×81): cards of 64 GB and more.
  24gb   the VAE decodes in tiles (4.6 GiB peak; THUDM: tiling is a must below that): an RTX 4090.
"""

from __future__ import annotations

import time

import torch
from PIL import Image

from jobspecs import ClipPlan, JobSpec, plan_clips
from remote.models import Generated
from remote.models.hf import (
    CacheCounter,
    adapter_info,
    apply_speed_knobs,
    encode_prompts_once,
    faithful_tokenizer,
    find_weights,
    make_scheduler,
    pick_device,
    pick_memory_plan,
    prompt_window,
    resident_plan,
    seeded,
    timed_call,
)

MAX_SEQUENCE_LENGTH = 226  # T5 tokens (the transformer's max_text_seq_length)
USE_DYNAMIC_CFG = True
FULL_NEEDS_GIB = 64


class CogVideoX15:
    id = "cogvideox15_5b_i2v"

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.steps = spec.effective("steps")
        self.guidance = spec.effective("guidance")
        self.negative_prompt = spec.effective("negative_prompt")
        self.pipe = None
        self.device = None
        self.embeds: dict[str, tuple] = {}  # prompt -> (prompt_embeds, negative_prompt_embeds)
        self.windows: dict[str, dict] = {}  # prompt -> what of it the text encoder reads (hf.prompt_window)
        self.weights = None
        self.memory: dict = {}
        self.speed: dict = {}  # the speed knobs as applied (remote/models/hf.py)
        self.cache = None
        self.tokenizer_check = None

    def load(self) -> None:
        from diffusers import CogVideoXImageToVideoPipeline

        self.weights = find_weights(self.spec)
        device = pick_device()
        snapshot = self.weights.snapshot
        tokenizer, self.tokenizer_check = faithful_tokenizer(snapshot, "tokenizer")
        pipe = CogVideoXImageToVideoPipeline.from_pretrained(
            snapshot,
            tokenizer=tokenizer,
            dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
            local_files_only=True,
        )
        self.setup(pipe, device)

    def setup(self, pipe, device) -> None:
        """Scheduler, prompt embeddings and memory plan on a loaded pipeline (also used by the GPU benchmark)."""
        pipe.scheduler = make_scheduler(
            pipe.scheduler, self.spec.effective("scheduler"), None, timestep_spacing="trailing"
        )
        pipe.set_progress_bar_config(disable=True)
        plan = pick_memory_plan(self.spec.generation.memory, FULL_NEEDS_GIB)
        start = time.monotonic()
        prompts = [clip.prompt for clip in plan_clips(self.spec)]
        self.windows = {prompt: prompt_window(pipe.tokenizer, prompt, MAX_SEQUENCE_LENGTH) for prompt in prompts}
        self.embeds = encode_prompts_once(
            pipe, device, prompts, self.negative_prompt, self.guidance, MAX_SEQUENCE_LENGTH
        )
        self.memory = resident_plan(
            pipe, device, plan, self.spec.generation.memory, len(self.embeds), time.monotonic() - start
        )
        self.speed = apply_speed_knobs(pipe, device, self.spec)
        self.cache = CacheCounter(pipe, self.spec, device)
        self.pipe, self.device = pipe, device

    def generate(self, prompt: str, image: Image.Image, clip: ClipPlan, seed: int) -> Generated:
        if image.size != (clip.width, clip.height):
            raise ValueError(f"input image is {image.size}, the clip is {clip.width}x{clip.height}")
        if prompt not in self.embeds:
            raise RuntimeError("this prompt was not encoded at load (prompts come from the spec's plan)")
        prompt_embeds, negative_prompt_embeds = self.embeds[prompt]
        self.cache.start(self.pipe)
        call = timed_call(
            self.pipe,
            self.device,
            image=image,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            height=clip.height,
            width=clip.width,
            num_frames=clip.frames,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            use_dynamic_cfg=USE_DYNAMIC_CFG,
            eta=0.0,
            generator=seeded(seed),
            max_sequence_length=MAX_SEQUENCE_LENGTH,
        )
        params = {
            "pipeline": type(self.pipe).__name__,
            "height": clip.height,
            "width": clip.width,
            "num_frames": clip.frames,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "use_dynamic_cfg": USE_DYNAMIC_CFG,
            "eta": 0.0,
            "negative_prompt": self.negative_prompt,
            "max_sequence_length": MAX_SEQUENCE_LENGTH,
            "prompt_window": self.windows[prompt],  # what the text encoder read of the prompt, and what it cut
            "scheduler": type(self.pipe.scheduler).__name__,
            "timestep_spacing": self.pipe.scheduler.config.get("timestep_spacing"),
            "generator": f"cpu, seed {seed}",
            "s_per_step": call.s_per_step,
            "step_s": call.step_s,
            "peak_vram_reserved_bytes": call.peak_vram_reserved_bytes,
            "memory": self.memory,
            "speed": self.speed,
            "first_block_cache_hits": self.cache.result(),
        }
        return Generated(
            frames=call.frames, timings_s=call.timings_s, peak_vram_bytes=call.peak_vram_bytes, params=params
        )

    def info(self) -> dict:
        return adapter_info(self)
