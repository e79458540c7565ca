"""CogVideoX1.5-5B-I2V (THUDM/CogVideoX1.5-5B-I2V) through diffusers' CogVideoXImageToVideoPipeline.

THUDM's own recipe (CogVideo inference/cli_demo.py): CogVideoXDPMScheduler with trailing timesteps (the repo
ships DDIM), dynamic CFG, 1360×768 at 16 fps, 81 frames (8k+1 gives exactly that many frames). Height and width
are always passed: left out, the pipeline asks for 2400×2400.

Memory plans (`generation.memory`):
  both   every clip's prompt and the negative prompt are encoded once at load, then the T5-XXL text encoder
         (8.9 GiB in bf16) is dropped; transformer (10.4 GiB) and VAE (0.4 GiB) stay on the GPU, bf16.
  full   the VAE decodes untiled (45 GiB peak at 1360×768×81): cards of 64 GB and more (`auto` picks it from
         jobspecs/architectures.yaml's full_plan_needs_gib).
  24gb   the VAE decodes in tiles (4.6 GiB peak; THUDM: tiling is a must below that): an RTX 4090.
"""

from __future__ import annotations

from pathlib import Path

import torch

from remote.models.hf import DiffusersAdapter

USE_DYNAMIC_CFG = True


class CogVideoX15(DiffusersAdapter):
    id = "cogvideox15_5b_i2v"
    scheduler_options = {"timestep_spacing": "trailing"}  # THUDM's cli_demo: the DPM scheduler, trailing timesteps

    def load_pipeline(self, snapshot: Path, tokenizer, device):
        from diffusers import CogVideoXImageToVideoPipeline

        return CogVideoXImageToVideoPipeline.from_pretrained(
            snapshot,
            tokenizer=tokenizer,
            dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
            local_files_only=True,
        )

    def call_kwargs(self, prompt: str) -> dict:
        prompt_embeds, negative_prompt_embeds = self.encoded(prompt)
        return {
            "prompt_embeds": prompt_embeds,
            "negative_prompt_embeds": negative_prompt_embeds,
            "use_dynamic_cfg": USE_DYNAMIC_CFG,
            "eta": 0.0,
        }

    def own_params(self, prompt: str) -> dict:
        return {
            "use_dynamic_cfg": USE_DYNAMIC_CFG,
            "eta": 0.0,
            "negative_prompt": self.negative_prompt,
            "prompt_window": self.windows[prompt],  # what the text encoder read of the prompt, and what it cut
            "timestep_spacing": self.pipe.scheduler.config.get("timestep_spacing"),
        }
