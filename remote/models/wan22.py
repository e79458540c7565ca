"""Wan 2.2 TI2V-5B (Wan-AI/Wan2.2-TI2V-5B-Diffusers) through diffusers' WanImageToVideoPipeline.

The repo's model_index names WanPipeline (text-to-video, `expand_timesteps=True`): DiffusionPipeline would load
the wrong class, so the I2V class is loaded by name; it has no image encoder (the image enters as the clean
first latent frame). Every call passes every setting: the pipeline's defaults (480×832, 81 frames, an empty
negative prompt) are wrong for this checkpoint.

Memory plans (`generation.memory`):
  both   the prompts of every clip and the negative prompt are encoded once at load, then the 5.7 B-parameter
         UMT5 text encoder (10.6 GiB in bf16) is dropped; transformer (bf16, 9.3 GiB) and VAE (fp32, as the
         diffusers docs advise, 2.6 GiB) stay on the GPU.
  full   the VAE decodes untiled (23.7 GiB peak at 1280×704×121 on its own): cards of 40 GB and more
         (`auto` picks it from jobspecs/architectures.yaml's full_plan_needs_gib).
  24gb   the VAE decodes in tiles (8.3 GiB peak, ~1.8× the decode time): an RTX 4090.
"""

from __future__ import annotations

from pathlib import Path

import torch

from remote.models.hf import DiffusersAdapter


class Wan22(DiffusersAdapter):
    id = "wan22_ti2v_5b"

    def load_pipeline(self, snapshot: Path, tokenizer, device):
        from diffusers import AutoencoderKLWan, WanImageToVideoPipeline

        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        vae = AutoencoderKLWan.from_pretrained(snapshot, subfolder="vae", dtype=torch.float32, local_files_only=True)
        return WanImageToVideoPipeline.from_pretrained(
            snapshot, vae=vae, tokenizer=tokenizer, dtype=dtype, local_files_only=True
        )

    def call_kwargs(self, prompt: str) -> dict:
        prompt_embeds, negative_prompt_embeds = self.encoded(prompt)
        return {
            "prompt_embeds": prompt_embeds,
            "negative_prompt_embeds": negative_prompt_embeds,
            "guidance_scale_2": None,  # the second (low-noise) expert's guidance: the 5B has one transformer
        }

    def own_params(self, prompt: str) -> dict:
        return {
            "negative_prompt": self.negative_prompt,
            "prompt_window": self.windows[prompt],  # what the text encoder read of the prompt, and what it cut
            "flow_shift": self.pipe.scheduler.config.get("flow_shift"),
        }
