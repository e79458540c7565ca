"""HunyuanVideo-I2V (hunyuanvideo-community/HunyuanVideo-I2V) through diffusers' HunyuanVideoImageToVideoPipeline.

The 16-channel "token_replace" weights: guidance-distilled, so one forward per step with the guidance scale
(6.0) as an input of the model (`guidance_scale`; the pipeline's default 1.0 is wrong) and no negative
prompt. The prompt goes through LLaVA-Llama-3 together with the input image, so it can't be encoded ahead.
The tokenizer is checked against its tokenizer.json first (transformers 5 rebuilds a byte-level Llama-3
tokenizer labelled LlamaTokenizerFast with the wrong pre-tokenizer, and nothing fails: remote/models/hf.py).
Dtypes as in diffusers' example: transformer bf16, text encoders and VAE fp16.

`prompt_trim` (on in the baseline): diffusers pads the prompt embeddings (144 image tokens + the prompt, padded to
256 tokens) and masks the padded tail in every block's attention; masked attention kernels are slow (cuDNN on an
H100: ~400 against ~590 TFLOP/s unmasked). With batch 1 the mask is a contiguous valid prefix, so the adapter cuts
the embeddings and the mask to that prefix before every transformer forward and runs the blocks' attention
unmasked: the same math (the padded keys had zero weight; only video tokens leave the model), 1.40× on an H100.

Memory plans (`generation.memory`):
  full   everything on the GPU (transformer 23.9 GiB, LLaVA 15.6 GiB, 12 GiB of activations at 1280×720×129,
         51 GiB for the untiled VAE decode): cards of 110 GB and more (`auto` picks it from
         jobspecs/architectures.yaml's full_plan_needs_gib).
  24gb   the transformer and the LLaVA text encoder stay in (pinned) CPU memory and stream to the GPU block by
         block / layer by layer on a side CUDA stream (group offload: weights arrive while the previous block
         computes, bf16 kept exact); CLIP and the VAE stay on the GPU; the VAE decodes in tiles. Host RAM: about
         twice the offloaded weights (80 GB) while the pinned copies are made. With fp8_linear (where the GPU runs
         fp8 and jobspecs/architectures.yaml says it fits), the transformer's blocks are quantized to fp8 one by one
         on the GPU and stay there (12.8 GB of weights) instead of streaming.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from remote.models.hf import DiffusersAdapter

IMAGE_EMBED_INTERLEAVE = 4  # keep every 4th of the 576 image tokens (token_replace)


@functools.cache
def unmasked_processor_class() -> type:
    """diffusers' HunyuanVideoAttnProcessor2_0 with the attention mask dropped: only right where the prompt was cut
    to its valid tokens first (then the mask the transformer builds is all True). One class for every block: a
    class per block would give torch.compile a graph per block (its guards check the processor's type)."""
    from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoAttnProcessor2_0

    class UnmaskedHunyuanAttnProcessor(HunyuanVideoAttnProcessor2_0):
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
            return super().__call__(attn, hidden_states, encoder_hidden_states, None, image_rotary_emb)

    return UnmaskedHunyuanAttnProcessor


class PromptTrim:
    """The prompt's padded tail cut before every forward of `transformer` (batch 1), and its blocks' attention
    unmasked. The token refiner keeps its (now all-True) mask. A mask that is not one contiguous valid prefix, or a
    batch above 1, is refused rather than computed wrong."""

    what = "padded prompt tail cut before each forward, blocks' attention unmasked (batch 1; the same math)"

    def __init__(self, transformer) -> None:
        self.tokens: dict | None = None  # the last forward's prompt tokens: {"padded": n, "kept": n}
        transformer.register_forward_pre_hook(self.trim, with_kwargs=True)
        for block in (*transformer.transformer_blocks, *transformer.single_transformer_blocks):
            block.attn.set_processor(unmasked_processor_class()())

    def trim(self, module, args, kwargs):
        mask = kwargs["encoder_attention_mask"]
        if mask.shape[0] != 1:
            raise ValueError(f"prompt_trim is for batch 1; the transformer got a batch of {mask.shape[0]}")
        valid = mask[0] > 0
        kept = int(valid.sum())  # one sync per forward
        if not bool(valid[:kept].all()):
            raise ValueError("prompt_trim: the prompt mask is not one contiguous valid prefix")
        self.tokens = {"padded": int(mask.shape[1]), "kept": kept}
        kwargs = dict(
            kwargs,
            encoder_hidden_states=kwargs["encoder_hidden_states"][:, :kept],
            encoder_attention_mask=mask[:, :kept],
        )
        return args, kwargs


class HunyuanI2V(DiffusersAdapter):
    id = "hunyuan_i2v"
    trim: PromptTrim | None = None  # prompt_trim, once set up

    def load_pipeline(self, snapshot: Path, tokenizer, device):
        from diffusers import HunyuanVideoImageToVideoPipeline, HunyuanVideoTransformer3DModel

        cuda = device.type == "cuda"
        transformer = HunyuanVideoTransformer3DModel.from_pretrained(
            snapshot, subfolder="transformer", dtype=torch.bfloat16 if cuda else torch.float32, local_files_only=True
        )
        return HunyuanVideoImageToVideoPipeline.from_pretrained(
            snapshot,
            transformer=transformer,
            tokenizer=tokenizer,
            dtype=torch.float16 if cuda else torch.float32,
            local_files_only=True,
        )

    def place(self, pipe, device, plan: str) -> dict:
        """`full`: everything on the GPU. `24gb`: LLaVA group-offloaded (leaf level), CLIP and the VAE on the GPU,
        the VAE decoding in tiles, and the transformer group-offloaded (block level) or, with fp8 linear layers
        where they run and fit (architectures.yaml fp8_resident_in_24gb), quantized block by block onto the GPU and
        resident. The prompt can't be encoded ahead (LLaVA reads it with the image)."""
        from diffusers.hooks import apply_group_offloading

        from remote.models import fp8

        stream = device.type == "cuda"  # CUDA streams overlap the copies with compute; none on the CPU
        streamed = f"group offload to cpu, {'with' if stream else 'without'} CUDA streams"
        if plan == "full":
            pipe.to(device)
            transformer = text_encoder = "on the GPU"
        else:
            if (
                self.architecture.fp8_resident_in_24gb
                and self.spec.effective("fp8_linear")
                and not fp8.unavailable(device)
            ):
                fp8.quantize_transformer(pipe.transformer, device, block_by_block=True)
                transformer = "linear layers of the blocks in fp8, on the GPU"
            else:
                pipe.transformer.enable_group_offload(
                    onload_device=device,
                    offload_device=torch.device("cpu"),
                    offload_type="block_level",
                    num_blocks_per_group=1,
                    use_stream=stream,
                    record_stream=stream,
                )
                transformer = f"block-level {streamed}, 1 block per group"
            apply_group_offloading(
                pipe.text_encoder,
                onload_device=device,
                offload_device=torch.device("cpu"),
                offload_type="leaf_level",
                use_stream=stream,
                record_stream=stream,
            )
            text_encoder = f"leaf-level {streamed}"
            pipe.text_encoder_2.to(device)
            pipe.vae.to(device)
            pipe.vae.enable_tiling()
        resident = torch.cuda.memory_allocated() / 2**30 if device.type == "cuda" else None
        return {
            "setting": self.spec.generation.memory,
            "plan": plan,
            "transformer": f"{pipe.transformer.dtype}, {transformer}",
            "text_encoder": f"{pipe.text_encoder.dtype}, {text_encoder}",
            "text_encoder_2": f"{pipe.text_encoder_2.dtype}, on {device.type}",
            "vae": f"{pipe.vae.dtype}, on {device.type}, {'untiled' if plan == 'full' else 'tiled'} decode",
            "resident_gib": round(resident, 2) if resident is not None else None,
        }

    def speed_knobs(self, pipe, device) -> dict:
        self.trim = PromptTrim(pipe.transformer) if self.spec.effective("prompt_trim") else None
        speed = super().speed_knobs(pipe, device)  # after the trim: its processors get the backend
        speed["prompt_trim"] = PromptTrim.what if self.trim else "off"
        return speed

    def cache_context(self):
        # First Block Cache needs a cache context, which this pipeline (unlike Wan's and CogVideoX's) never sets
        if self.spec.effective("first_block_cache"):
            return self.pipe.transformer.cache_context("cond")
        return super().cache_context()

    def call_kwargs(self, prompt: str) -> dict:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

        return {
            "prompt": prompt,
            "prompt_2": prompt,
            "negative_prompt": None,
            "true_cfg_scale": 1.0,
            "prompt_template": DEFAULT_PROMPT_TEMPLATE,
            "image_embed_interleave": IMAGE_EMBED_INTERLEAVE,
        }

    def own_params(self, prompt: str) -> dict:
        return {
            "guidance": "embedded (distilled); true_cfg_scale 1.0, no negative prompt",
            "prompt_template": "diffusers DEFAULT_PROMPT_TEMPLATE (Llama-3 chat, <image> at 5, crop_start 103)",
            "image_embed_interleave": IMAGE_EMBED_INTERLEAVE,
            "shift": self.pipe.scheduler.config.get("shift"),
            "prompt_tokens": self.trim.tokens if self.trim else None,  # into the transformer: padded, kept
        }
