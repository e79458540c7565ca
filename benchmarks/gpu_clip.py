"""GPU benchmark of the denoising transformers: stock diffusers next to faster variants of the same math.

    python benchmarks/gpu_clip.py MODEL [--shape native|fast] [--reps 3] [--cap-gib 24] [--variants LIST]
                                  [--offload-check] [--profile] [--fp32-ref] [--out DIR]
    python benchmarks/gpu_clip.py MODEL --dry-run            (tiny configs on the CPU: this script's plumbing)
    python benchmarks/gpu_clip.py --summarize [--out DIR]    (efficiency.json + the README table from the JSONs)

One model and one clip shape per process. The transformer is built at full size from its config (full_size.py) with
random bf16 weights directly on the GPU (nothing is downloaded; speed and memory don't depend on the values), with
the modules diffusers keeps in float32 in float32 as from_pretrained leaves them. The inputs are the ones the
pipeline hands the transformer at that clip shape (latents, prompt embeddings of the pipeline's length, Wan 2.2's
per-token timesteps, CogVideoX's RoPE and ofs, Hunyuan's padded prompt with its mask), seeded, and the same for
every variant. Variants are applied one after another to the same module (each keeps the previous one's changes):

  stock            diffusers 0.42.1 as it comes: SDPA picks its kernel (torch 2.11 on an H100 already picks cuDNN
                   for all three, Hunyuan's masked attention included: see attention_probe in the results).
  cudnn            the same forward under torch.nn.attention.sdpa_kernel([CUDNN, FLASH, EFFICIENT, MATH],
                   set_priority=True): cuDNN's fused attention first, whatever torch's default order. Works for all
                   three processors (CogVideoX's calls F.scaled_dot_product_attention itself, so diffusers'
                   set_attention_backend can't reach it).
  cudnn+trim       (Hunyuan) batch 1: the prompt's padding tokens are cut off before the forward and the blocks'
                   attention gets no mask — the same math (diffusers' own mask only hides that padded tail), but
                   unmasked, cuDNN runs its faster kernel (~590 instead of ~400 TFLOP/s at these lengths).
  ...+compile      regional torch.compile (fullgraph, static shapes) of every repeated block — the regions
                   diffusers' compile_repeated_blocks() picks, compiled on the block's forward so that cache hooks
                   can wrap the compiled block: fuses the float32 norms, AdaLN modulation, RoPE and gates.
  ...+fqkv         (Wan, CogVideoX) fused QKV projections (diffusers' fuse_qkv_projections; the unfused weights
                   are dropped so memory is not double-counted), compiled again.
  ...+autotune     the same compiled with mode max-autotune-no-cudagraphs (Triton GEMM templates, fused epilogues).
  ...+xattn        (Wan) cross-attention (video tokens x 512 prompt tokens) on the SDPA backend that is fastest for
                   that shape in this process, set per processor through diffusers' attention dispatcher.
  fa4, fa4+compile the attention through FlashAttention-4 (flash-attn-4's CuTe DSL kernels; their SM90 forward
                   on Hopper) instead of SDPA, routed as the product does it (remote/models/fa4.py: a torch custom
                   op, opaque to compile, so fullgraph still holds); calls with a mask, dropout or another dtype
                   stay on SDPA. Needs the flash-attn-4 wheels (README). Only with --variants. Each keeps what the
                   variants before it did (after a compiled variant, `fa4` runs compiled too).
  fbc              the fast profile's First Block Cache on top of the best compiled model: seconds per forward when
                   the forward is computed (its first call in a cache context) and when it is served from the cache
                   (threshold so high that every later call is). How many forwards hit depends on real weights.
  adapter          the product's own code on a fresh (stock) module: the knobs of jobspecs/<model>.yaml's baseline
                   profile applied by remote/models (hf.apply_speed_knobs: compile_repeated_blocks, fullgraph;
                   Hunyuan: hunyuan.PromptTrim, fed the padded prompt and mask as the pipeline gives them; then a
                   second, shorter prompt: the recompile it costs and the speed after it).
  adapter+fbc      the same with the fast profile's First Block Cache as the adapter applies it (cache hooks first,
                   then compile_repeated_blocks with fullgraph=False), threshold 1.0 (repeated inputs: every call
                   after a context's first is a hit): computed and cached seconds per forward.
                   One adapter variant per process, after stock only (they need the unmodified module).

Per variant: seconds per forward (median of --reps after a warm-up, CUDA events), the first call (compile
included), peak allocated/reserved GiB, max |out − stock| and ‖out − stock‖/‖stock‖ on the same inputs, TFLOP/s
and MFU (FLOPs of the stock forward by torch.utils.flop_counter: matmuls + attention), against the datasheet's
dense bf16 peak and against an 8192³ bf16 matmul measured in the same process. Wan and CogVideoX run every variant
under the 24 GiB cap (torch.cuda.set_per_process_memory_fraction) with the 24gb plan's resident VAE on the GPU.
Hunyuan's DiT (23.9 GiB) cannot be resident under the cap: its variants run uncapped, and --offload-check then
measures the memory plan (block-level group offload with CUDA streams, VAE resident) under the cap with the best
eager variant. --profile: device time by kernel kind (attention / GEMM / fused Triton) of one forward of the last
baseline variant. --fp32-ref: every kept output's error against the same weights and inputs run in float32 (no
TF32), which tells bf16 rounding (stock's own error) from a change of math. Results: one JSON per model and GPU,
one entry per shape (each with its command and the matmul measured on its machine), merged into an existing file
in --out; --summarize writes efficiency.json for the planner (jobspecs/) and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import platform
import re
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.full_size import (  # noqa: E402
    COG_TRANSFORMER,
    COG_VAE,
    HUNYUAN_TRANSFORMER,
    HUNYUAN_VAE,
    WAN_TRANSFORMER,
    WAN_VAE,
)
from remote.models import fp8, sage  # noqa: E402
from remote.models.attention import attention_by  # noqa: E402
from remote.models.fa4 import flash_attention_op, unavailable  # noqa: E402

GIB = 2**30
RESULTS = REPO / "benchmarks" / "results"
MODELS = ("wan22_ti2v_5b", "cogvideox15_5b_i2v", "hunyuan_i2v")
# Dense bf16 tensor-core peaks (vendor datasheets, no sparsity), TFLOP/s. Matched on the device name.
DATASHEET_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("4090", 165.2),
)
VARIANT_ORDER = (
    "stock",
    "cudnn",
    "cudnn+trim",
    "cudnn+compile",
    "cudnn+trim+compile",
    "cudnn+fqkv+compile",
    "cudnn+fqkv+autotune",
    "cudnn+fqkv+xattn+compile",
    "fa4",
    "fa4+compile",
    "sage",
    "sage+compile",
    "fp8+compile",
    "quantized",
    "fbc",
    "adapter",
    "adapter+fbc",
)
ADAPTER_VARIANTS = ("adapter", "adapter+fbc")
ADAPTER_SPECS = {"wan22_ti2v_5b": "wan.yaml", "cogvideox15_5b_i2v": "cogvideox.yaml", "hunyuan_i2v": "hunyuan.yaml"}
AUTOTUNE_MODE = "max-autotune-no-cudagraphs"
DENSE_VARIANTS = ("stock", "cudnn", "cudnn+compile", "cudnn+fqkv+compile", "cudnn+fqkv+autotune", "fbc")
WAN_VARIANTS = DENSE_VARIANTS[:-1] + ("cudnn+fqkv+xattn+compile", "fbc")
FA4_VARIANTS = ("fa4", "fa4+compile")  # only when asked for (--variants): they need the flash-attn-4 wheels
# only when asked for: the 8-bit levers (sage: Triton; fp8: torchao). fp8 quantizes the module in place, so its
# variants come last (and --fp32-ref runs before the first of them)
QUANT_VARIANTS = ("sage", "sage+compile", "fp8+compile", "quantized")
# Hunyuan's prompt: 144 image tokens (576 / interleave 4) + 256 text tokens padded, of which a short prompt uses ~80.
HUNYUAN_TEXT_TOKENS, HUNYUAN_VALID_TOKENS = 400, 224


@dataclasses.dataclass
class Model:
    name: str
    shapes: dict[str, tuple[int, int, int]]  # profile -> (width, height, frames)
    forwards_per_clip: int
    forwards_note: str
    make: Callable[[dict], torch.nn.Module]
    config: dict
    tiny: dict  # config overrides for --dry-run
    inputs: Callable[..., dict]
    block_lists: tuple[str, ...]  # the transformer's ModuleLists of repeated blocks
    variants: tuple[str, ...]
    resident: bool  # the 24gb plan keeps the DiT on the GPU
    vae: tuple[Callable[[], torch.nn.Module], torch.dtype] | None
    plan: str


def _randn(shape, gen, device, dtype):
    return torch.randn(shape, generator=gen, device="cpu", dtype=torch.float32).to(device, dtype)


def wan_inputs(t, shape, device, dtype, gen) -> dict:
    width, height, frames = shape
    lat_t, lat_h, lat_w = (frames - 1) // 4 + 1, height // 16, width // 16
    mask = torch.ones(1, 1, lat_t, lat_h, lat_w, device=device)
    mask[:, :, 0] = 0  # expand_timesteps: the conditioning frame gets timestep 0 (pipeline_wan_i2v.py)
    timestep = (mask[0][0][:, ::2, ::2] * 999.0).flatten().unsqueeze(0)
    return {
        "hidden_states": _randn((1, t.config.in_channels, lat_t, lat_h, lat_w), gen, device, dtype),
        "timestep": timestep,
        "encoder_hidden_states": _randn((1, 512, t.config.text_dim), gen, device, dtype),
    }


def cog_inputs(t, shape, device, dtype, gen) -> dict:
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    width, height, frames = shape
    lat_f = (frames - 1) // 4 + 1
    lat_f += lat_f % t.config.patch_size_t  # CogVideoX 1.5 pads the latent frames to a multiple of patch_size_t
    p = t.config.patch_size
    rope = get_3d_rotary_pos_embed(  # pipeline_cogvideox_image2video._prepare_rotary_positional_embeddings, 1.5 branch
        embed_dim=t.config.attention_head_dim,
        crops_coords=None,
        grid_size=(height // 8 // p, width // 8 // p),
        temporal_size=(lat_f + t.config.patch_size_t - 1) // t.config.patch_size_t,
        grid_type="slice",
        max_size=(t.config.sample_height // p, t.config.sample_width // p),
        device=device,
    )
    return {
        "hidden_states": _randn((1, lat_f, t.config.in_channels, height // 8, width // 8), gen, device, dtype),
        "encoder_hidden_states": _randn((1, 226, t.config.text_embed_dim), gen, device, dtype),
        "timestep": torch.tensor([999], device=device),
        "ofs": torch.full((1,), 2.0, device=device, dtype=dtype),
        "image_rotary_emb": rope,
    }


def hunyuan_inputs(t, shape, device, dtype, gen) -> dict:
    width, height, frames = shape
    mask = torch.zeros(1, HUNYUAN_TEXT_TOKENS, device=device, dtype=dtype)
    mask[:, :HUNYUAN_VALID_TOKENS] = 1  # image tokens, then the prompt, then padding: a contiguous valid prefix
    return {
        "hidden_states": _randn(
            (1, t.config.in_channels, (frames - 1) // 4 + 1, height // 8, width // 8), gen, device, dtype
        ),
        "timestep": torch.tensor([999.0], device=device),
        "encoder_hidden_states": _randn((1, HUNYUAN_TEXT_TOKENS, t.config.text_embed_dim), gen, device, dtype),
        "encoder_attention_mask": mask,
        "pooled_projections": _randn((1, t.config.pooled_projection_dim), gen, device, dtype),
        "guidance": torch.tensor([6.0 * 1000.0], device=device, dtype=dtype),
    }


def _make(cls_name: str):
    def make(config: dict) -> torch.nn.Module:
        import diffusers

        return getattr(diffusers, cls_name)(**config)

    return make


def _vae(cls_name: str, config: dict):
    return lambda: _make(cls_name)(config)


MODEL_SPECS = {
    "wan22_ti2v_5b": Model(
        "wan22_ti2v_5b",
        {"native": (1280, 704, 121), "fast": (1280, 704, 121)},
        100,
        "50 steps x CFG (separate cond and uncond forwards)",
        _make("WanTransformer3DModel"),
        WAN_TRANSFORMER,
        dict(num_attention_heads=2, attention_head_dim=32, ffn_dim=128, num_layers=3, text_dim=64),
        wan_inputs,
        ("blocks",),
        WAN_VARIANTS,
        True,
        (_vae("AutoencoderKLWan", WAN_VAE), torch.float32),
        "24gb: prompts pre-encoded (UMT5 dropped); DiT bf16 + VAE fp32 resident on the GPU",
    ),
    "cogvideox15_5b_i2v": Model(
        "cogvideox15_5b_i2v",
        {"native": (1360, 768, 81), "fast": (1360, 768, 81)},
        100,
        "50 steps x CFG (the pipeline batches cond + uncond: 50 calls of batch 2; measured here as batch 1)",
        _make("CogVideoXTransformer3DModel"),
        COG_TRANSFORMER,
        dict(num_attention_heads=2, num_layers=2, text_embed_dim=64, time_embed_dim=32, ofs_embed_dim=32),
        cog_inputs,
        ("transformer_blocks",),
        DENSE_VARIANTS,
        True,
        (_vae("AutoencoderKLCogVideoX", COG_VAE), torch.bfloat16),
        "24gb: prompts pre-encoded (T5 dropped); DiT + VAE bf16 resident on the GPU",
    ),
    "hunyuan_i2v": Model(
        "hunyuan_i2v",
        {"native": (1280, 720, 129), "fast": (1248, 704, 65)},
        50,
        "50 steps, guidance-distilled (one forward per step)",
        _make("HunyuanVideoTransformer3DModel"),
        HUNYUAN_TRANSFORMER,
        dict(
            num_attention_heads=2,
            attention_head_dim=16,
            rope_axes_dim=(4, 6, 6),
            num_layers=2,
            num_single_layers=2,
            num_refiner_layers=1,
            text_embed_dim=64,
            pooled_projection_dim=32,
        ),
        hunyuan_inputs,
        ("transformer_blocks", "single_transformer_blocks"),
        ("stock", "cudnn", "cudnn+trim", "cudnn+trim+compile", "fbc"),
        False,
        (_vae("AutoencoderKLHunyuanVideo", HUNYUAN_VAE), torch.float16),
        "24gb: DiT bf16 block-level group offload (1 block per group, CUDA streams); VAE fp16 resident",
    ),
}


# ----------------------------------------------------------------------------------------------------------------
# helpers


def build_on(device, make: Callable[[], torch.nn.Module], dtype: torch.dtype) -> torch.nn.Module:
    """Default (random) init directly on `device` in `dtype`; `_keep_in_fp32_modules` in float32 (from_pretrained)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            module = make()
    finally:
        torch.set_default_dtype(previous)
    module.eval().requires_grad_(False)
    keep = getattr(module, "_keep_in_fp32_modules", None) or ()
    for name, param in module.named_parameters():
        if any(part in name.split(".") for part in keep):
            param.data = param.data.float()
    return module


def now(device) -> Callable[[], float]:
    """A stopwatch: CUDA events on the GPU (device time of the region), the host clock on the CPU."""
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()

        def stop() -> float:
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000

        return stop
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


def sdpa_cudnn_first():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel(order, set_priority=True)


def sdpa_through_fa4(device: torch.device):
    """SDPA answered by FlashAttention-4 where it can be: the product's own routing (remote/models/fa4.py)."""
    if reason := unavailable(device):
        raise RuntimeError(f"FlashAttention-4 {reason} (benchmarks/README.md: the FA4 wheels)")
    return attention_by(flash_attention_op())


def sdpa_through_sage(device: torch.device):
    """SDPA answered by the 8-bit attention where it can be: the product's routing (remote/models/sage.py), here
    also where the product leaves it off for being slower (Hopper), to measure it."""
    if device.type != "cuda":
        raise RuntimeError("8-bit attention: a CUDA kernel")
    return attention_by(sage.sage_attention_op(), sage.HEAD_DIMS)


def gib(n: float) -> float:
    return round(n / GIB, 2)


def peak_tflops(gpu: str) -> float | None:
    for key, value in DATASHEET_BF16_TFLOPS:
        if key in gpu:
            return value
    return None


def matmul_tflops(device, n: int = 8192, reps: int = 20) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    stop = now(device)
    for _ in range(reps):
        a @ b
    seconds = stop() / reps
    return round(2 * n**3 / seconds / 1e12, 1)


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__}
    # the distributions whose code can run here (flash-attn-4 is the one that provides flash_attn.cute)
    for name in (
        "diffusers",
        "transformers",
        "triton",
        "flash-attn-4",
        "nvidia-cutlass-dsl",
        "torchao",
        "sageattention",
    ):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
    return out


def attention_probe(heads: int, tokens: int, head_dim: int, mask_tokens: int | None, device, dtype) -> dict:
    """One attention call at the model's self-attention shape, laid out as diffusers passes it (B, S, H, D permuted),
    per SDPA backend: the kernel SDPA picks by default and each backend's time and TFLOP/s."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gen = torch.Generator().manual_seed(1)
    q, k, v = (_randn((1, tokens, heads, head_dim), gen, device, dtype).permute(0, 2, 1, 3) for _ in range(3))
    mask = None
    if mask_tokens is not None:
        mask = torch.ones(1, 1, 1, tokens, device=device, dtype=torch.bool)
        mask[..., tokens - mask_tokens :] = False
    result: dict = {"heads": heads, "tokens": tokens, "head_dim": head_dim, "masked_tail": mask_tokens}
    try:
        choice = torch._fused_sdp_choice(q, k, v, mask, 0.0, False)
        result["default_choice"] = SDPBackend(choice).name
        with sdpa_cudnn_first():
            result["cudnn_first_choice"] = SDPBackend(torch._fused_sdp_choice(q, k, v, mask, 0.0, False)).name
    except Exception as exc:  # private API: best effort
        result["choice_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    flop = 4 * heads * tokens * tokens * head_dim
    backends = {
        "default": None,
        "cudnn": [SDPBackend.CUDNN_ATTENTION],
        "flash": [SDPBackend.FLASH_ATTENTION],
        "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    }
    if device.type != "cuda":
        backends = {"default": None}
    for name, allowed in backends.items():
        ctx = sdpa_kernel(allowed) if allowed else contextlib.nullcontext()
        try:
            with ctx, torch.no_grad():
                torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                times = []
                for _ in range(2):
                    stop = now(device)
                    torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                    times.append(stop())
            s = min(times)
            result[name] = {"ms": round(s * 1e3, 2), "tflops": round(flop / s / 1e12, 1)}
        except Exception as exc:
            result[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    if device.type == "cuda" and mask is None and unavailable(device) is None:
        try:
            with sdpa_through_fa4(device), torch.no_grad():
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                times = []
                for _ in range(2):
                    stop = now(device)
                    torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    times.append(stop())
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]), torch.no_grad():
                ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            s = min(times)
            result["fa4"] = {
                "ms": round(s * 1e3, 2),
                "tflops": round(flop / s / 1e12, 1),
                "max_abs_diff_vs_cudnn": float((out.float() - ref.float()).abs().max()),
            }
            del out, ref
        except Exception as exc:
            result["fa4"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    if device.type == "cuda" and mask is None and head_dim in sage.HEAD_DIMS:
        result["sage"] = sage_probe(heads, tokens, head_dim, device, dtype)
    del q, k, v
    return result


def exact_rows(q, k, v, rows: torch.Tensor) -> torch.Tensor:
    """float64-accumulated softmax attention of the query rows `rows` over every key, head by head: (B, H, R, D)."""
    out = []
    for h in range(q.shape[1]):
        scores = (q[:, h, rows].double() @ k[:, h].double().transpose(-1, -2)) * q.shape[-1] ** -0.5
        out.append(scores.softmax(-1) @ v[:, h].double())
    return torch.stack(out, dim=1)


def sage_probe(heads: int, tokens: int, head_dim: int, device, dtype) -> dict:
    """The 8-bit attention (remote/models/sage.py: SageAttention 1.0.6's kernels with the padding keys masked) at
    the model's length and at the nearest multiple of 64 below it, against exact attention (float64 on 512 sampled
    query rows) and torch SDPA's default kernel, on random normal q, k, v; the sageattention 1.0.6 wheel as it is
    published too, where it is importable (the length that is not a multiple of 64 shows its padding bug)."""
    try:
        from sageattention import sageattn
    except ImportError:
        sageattn = None
    results = {}
    for length in (tokens, tokens // 64 * 64):
        gen = torch.Generator().manual_seed(2)
        q, k, v = (_randn((1, length, heads, head_dim), gen, device, dtype).permute(0, 2, 1, 3) for _ in range(3))
        rows = torch.randperm(length, generator=gen)[:512].to(device)
        exact = exact_rows(q, k, v, rows)
        flop = 4 * heads * length * length * head_dim
        entry: dict = {"padding_keys_in_last_block": (-length) % 64}
        kernels = {
            "sdpa_default": torch.nn.functional.scaled_dot_product_attention,
            "sage_product": lambda q, k, v: sage.sage_attention_op()(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), head_dim**-0.5
            ).transpose(1, 2),
        }
        if sageattn is not None:  # it subtracts k's mean from k in place: a copy each call
            kernels["sageattention_1_0_6_wheel"] = lambda q, k, v: sageattn(q, k.clone(), v, tensor_layout="HND")
        for name, kernel in kernels.items():
            try:
                with torch.no_grad():
                    out = kernel(q, k, v)
                    times = []
                    for _ in range(3):
                        stop = now(device)
                        kernel(q, k, v)
                        times.append(stop())
                diff = out[:, :, rows].double() - exact
                norms = out[:, :, rows].double().norm(dim=-1) / exact.norm(dim=-1)
                entry[name] = {
                    "ms": round(min(times) * 1e3, 2),
                    "tflops": round(flop / min(times) / 1e12, 1),
                    "rel_l2_vs_exact": float(diff.norm() / exact.norm()),
                    "max_abs_vs_exact": float(diff.abs().max()),
                    "row_norm_ratio_mean": float(norms.mean()),  # < 1: rows shrunk (the wheel's padding keys)
                }
                del out
            except Exception as exc:
                entry[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
        results[str(length)] = entry
        del q, k, v, exact
    return results


def stand_in_for_ffmpeg() -> None:
    """remote.models imports remote.bundle, whose encoder helper needs imageio_ffmpeg, which the GPU machine lacks;
    nothing here encodes video: an empty stand-in module where it is missing."""
    import importlib.util
    import types

    if importlib.util.find_spec("imageio_ffmpeg") is None:
        sys.modules["imageio_ffmpeg"] = types.ModuleType("imageio_ffmpeg")


def trim_prompt(inputs: dict) -> dict:
    """Cut the padded tail of Hunyuan's prompt (batch 1; diffusers' mask only ever hides a contiguous tail)."""
    mask = inputs["encoder_attention_mask"]
    if mask.shape[0] != 1:
        raise ValueError("prompt trimming is for batch 1")
    n = int(mask[0].sum().item())
    if not bool(mask[0, :n].all()) or bool(mask[0, n:].any()):
        raise ValueError("the prompt mask is not a contiguous valid prefix")
    out = dict(inputs)
    out["encoder_hidden_states"] = inputs["encoder_hidden_states"][:, :n]
    out["encoder_attention_mask"] = mask[:, :n]
    return out


def wan_cross_attention(blocks, device, dtype, inputs) -> dict:
    """Wan's cross-attention (every video token against the 512 prompt tokens): time it per SDPA backend at the
    clip's shape and give attn2 the fastest through diffusers' per-processor backend (attn1 keeps cuDNN)."""
    from diffusers.models.attention_dispatch import AttentionBackendName
    from diffusers.models.transformers.transformer_wan import WanAttnProcessor
    from torch.nn.attention import SDPBackend, sdpa_kernel

    attn = blocks[0].attn2
    hs = inputs["hidden_states"]
    tokens = hs.shape[2] * (hs.shape[3] // 2) * (hs.shape[4] // 2)
    heads, head_dim = attn.heads, attn.inner_dim // attn.heads if hasattr(attn, "inner_dim") else None
    head_dim = head_dim or blocks[0].attn1.to_out[0].in_features // heads
    gen = torch.Generator().manual_seed(2)
    q = _randn((1, tokens, heads, head_dim), gen, device, dtype).permute(0, 2, 1, 3)
    k, v = (
        _randn((1, inputs["encoder_hidden_states"].shape[1], heads, head_dim), gen, device, dtype).permute(0, 2, 1, 3)
        for _ in range(2)
    )
    choices = {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }
    probe = {}
    for name, backend in choices.items():
        try:
            with sdpa_kernel([backend]), torch.no_grad():
                torch.nn.functional.scaled_dot_product_attention(q, k, v)
                times = []
                for _ in range(3):
                    stop = now(device)
                    torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    times.append(stop())
            probe[name] = round(min(times) * 1e3, 3)
        except Exception as exc:
            probe[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    timed = {k: v for k, v in probe.items() if isinstance(v, float)}
    best = min(timed, key=timed.get)
    diffusers_name = {
        "cudnn": "_native_cudnn",
        "flash": "_native_flash",
        "efficient": "_native_efficient",
        "math": "_native_math",
    }[best]
    for block in blocks:
        processor = WanAttnProcessor()
        processor._attention_backend = AttentionBackendName(diffusers_name)
        block.attn2.set_processor(processor)
    return {"cross_attention_probe_ms": probe, "cross_attention_backend": diffusers_name}


def blocks_of(transformer, spec: Model) -> list[torch.nn.Module]:
    return [block for name in spec.block_lists for block in getattr(transformer, name)]


def compile_blocks(blocks, backend: str, mode: str | None, fullgraph: bool = True) -> None:
    """Regional compile: each repeated block's forward (one graph per block class, shared by all its instances)."""
    for block in blocks:
        block.__dict__.pop("forward", None)
        bound = type(block).forward.__get__(block)
        block.forward = torch.compile(bound, fullgraph=fullgraph, dynamic=False, backend=backend, mode=mode)


def fuse_qkv(transformer) -> int:
    """diffusers' fuse_qkv_projections, then drop the unfused weights (the fused processors don't read them)."""
    transformer.fuse_qkv_projections()
    dropped = 0
    for module in transformer.modules():
        if not getattr(module, "fused_projections", False):
            continue
        names = []
        if hasattr(module, "to_qkv"):
            names = ["to_q", "to_k", "to_v"]
        elif hasattr(module, "to_kv"):
            names = ["to_k", "to_v"]
        for name in names:
            if isinstance(getattr(module, name, None), torch.nn.Module):
                delattr(module, name)
                dropped += 1
    return dropped


def dynamo_counts() -> dict:
    from torch._dynamo.utils import counters

    return {"frames_ok": counters["frames"]["ok"], "unique_graphs": counters["stats"]["unique_graphs"]}


# ----------------------------------------------------------------------------------------------------------------
# one model, one shape


class Bench:
    def __init__(self, spec: Model, args, device, dtype):
        self.spec, self.args, self.device, self.dtype = spec, args, device, dtype
        self.cuda = device.type == "cuda"
        self.result: dict = {}
        self.ref: torch.Tensor | None = None
        self.attention = "default"
        self.trim = False
        self.fused = False
        self.xattn = False
        self.outputs: dict[str, torch.Tensor] = {}  # each variant's output, on the CPU
        self.ref32: torch.Tensor | None = None  # the float32 forward's output (--fp32-ref), on the CPU

    def call(self, transformer, inputs) -> Callable[[], torch.Tensor]:
        kwargs = trim_prompt(inputs) if self.trim else inputs
        attention = {
            "cudnn": sdpa_cudnn_first,
            "fa4": lambda: sdpa_through_fa4(self.device),
            "sage": lambda: sdpa_through_sage(self.device),
        }.get(self.attention, contextlib.nullcontext)

        def run() -> torch.Tensor:
            with torch.no_grad(), attention():
                return transformer(**kwargs, return_dict=False)[0]

        return run

    def compare(self, out: torch.Tensor) -> dict:
        finite = bool(torch.isfinite(out).all())
        if self.ref is None:
            return {"finite": finite, "out_max_abs": float(out.float().abs().max())}
        diff = out.float() - self.ref.float()
        result = {
            "finite": finite,
            "max_abs_diff_vs_stock": float(diff.abs().max()),
            "rel_l2_vs_stock": float(diff.norm() / self.ref.float().norm()),
        }
        if self.ref32 is not None:  # taken before fp8 changed the module (fp32_reference)
            diff32 = out.float().cpu() - self.ref32
            result["max_abs_err_vs_fp32"] = float(diff32.abs().max())
            result["rel_l2_err_vs_fp32"] = float(diff32.norm() / self.ref32.norm())
        return result

    def measure(self, fn: Callable[[], torch.Tensor], reps: int, flops: bool = False) -> tuple[dict, torch.Tensor]:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        info: dict = {}
        stop = now(self.device)
        if flops:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                out = fn()
            info["flop"] = counter.get_total_flops()
        else:
            out = fn()
        info["first_call_s"] = round(stop(), 3)
        times = []
        for _ in range(reps):
            del out
            stop = now(self.device)
            out = fn()
            times.append(stop())
        info["s_all"] = [round(s, 4) for s in times]
        info["s_per_forward"] = round(statistics.median(times), 4)
        if self.cuda:
            info["peak_allocated_gib"] = gib(torch.cuda.max_memory_allocated())
            info["peak_reserved_gib"] = gib(torch.cuda.max_memory_reserved())
        return info, out


def rates(entry: dict, flop: float | None, forwards: int, peak: float | None, matmul: float | None) -> None:
    s = entry.get("s_per_forward")
    if not s:
        return
    entry["denoise_s_per_clip"] = round(s * forwards, 1)
    if flop:
        tflops = flop / s / 1e12
        entry["tflops"] = round(tflops, 1)
        entry["mfu"] = round(tflops / peak, 4) if peak else None
        entry["mfu_vs_measured_matmul"] = round(tflops / matmul, 4) if matmul else None


def run_shape(spec: Model, args) -> dict:
    cuda = not args.dry_run
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    shape = spec.shapes[args.shape] if cuda else (64, 64, 9)
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    total = torch.cuda.get_device_properties(0).total_memory if cuda else 0
    peak = peak_tflops(gpu) if cuda else None
    if not set(args.variants or ()) & set(ADAPTER_VARIANTS):  # the adapter variants run with torch's defaults
        torch._dynamo.config.cache_size_limit = 64
        if hasattr(torch._dynamo.config, "recompile_limit"):
            torch._dynamo.config.recompile_limit = 64
        torch._dynamo.config.accumulated_cache_size_limit = 512
    compile_backend = "aot_eager" if args.dry_run else "inductor"

    result: dict = {
        "profile": args.shape,
        "width": shape[0],
        "height": shape[1],
        "frames": shape[2],
        "forwards_per_clip": spec.forwards_per_clip,
        "forwards_note": spec.forwards_note,
        "cap_gib": args.cap_gib if spec.resident else None,
        "memory_plan": spec.plan,
        "variants": {},
    }
    header = {
        "model": spec.name,
        "gpu": gpu,
        "gpu_memory_gib": gib(total),
        "datasheet_bf16_tflops": peak,
        "command": "python " + shlex.join(sys.argv),
        "libraries": library_versions(),
        "date": time.strftime("%Y-%m-%d"),
    }
    bench = Bench(spec, args, device, dtype)
    save = args.save

    if cuda:
        header["matmul_bf16_tflops_measured"] = matmul_tflops(device)
        print(f"8192^3 bf16 matmul: {header['matmul_bf16_tflops_measured']} TFLOP/s", flush=True)
    matmul = header.get("matmul_bf16_tflops_measured")

    torch.manual_seed(0)
    start = time.monotonic()
    config = spec.config | (spec.tiny if args.dry_run else {})
    transformer = build_on(device, lambda: spec.make(config), dtype)
    result["params_b"] = round(sum(p.numel() for p in transformer.parameters()) / 1e9, 3)
    result["transformer_gib"] = gib(sum(p.numel() * p.element_size() for p in transformer.parameters()))
    vae = None
    if cuda and spec.vae is not None and spec.resident:
        vae = build_on(device, spec.vae[0], spec.vae[1])
        result["vae_resident_gib"] = gib(sum(p.numel() * p.element_size() for p in vae.parameters()))
    result["build_s"] = round(time.monotonic() - start, 1)
    gen = torch.Generator().manual_seed(0)
    inputs = spec.inputs(transformer, shape, device, dtype, gen)
    hs = inputs["hidden_states"]
    if spec.name == "cogvideox15_5b_i2v":
        video_tokens = hs.shape[1] // 2 * (hs.shape[3] // 2) * (hs.shape[4] // 2)
    else:
        video_tokens = hs.shape[2] * (hs.shape[3] // 2) * (hs.shape[4] // 2)
    result["latent_shape"] = list(hs.shape)
    result["video_tokens"] = video_tokens
    result["text_tokens"] = inputs["encoder_hidden_states"].shape[1]
    if spec.name == "hunyuan_i2v":
        result["text_tokens_valid"] = HUNYUAN_VALID_TOKENS
    save(header, result)

    heads = config["num_attention_heads"]
    head_dim = config["attention_head_dim"]
    if spec.name == "wan22_ti2v_5b":
        probe = (heads, video_tokens, head_dim, None)
    elif spec.name == "cogvideox15_5b_i2v":
        probe = (heads, video_tokens + 226, head_dim, None)
    else:
        probe = (heads, video_tokens + HUNYUAN_TEXT_TOKENS, head_dim, HUNYUAN_TEXT_TOKENS - HUNYUAN_VALID_TOKENS)
    result["attention_probe"] = attention_probe(*probe, device, dtype)
    if spec.name == "hunyuan_i2v":  # the trimmed variant's attention: no padding, no mask
        result["attention_probe_trimmed"] = attention_probe(
            heads, video_tokens + HUNYUAN_VALID_TOKENS, head_dim, None, device, dtype
        )
    print("attention probe:", json.dumps(result["attention_probe"]), flush=True)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        if spec.resident and args.cap_gib:
            torch.cuda.set_per_process_memory_fraction(args.cap_gib * GIB / total)
            result["resident_before_forward_gib"] = gib(torch.cuda.memory_allocated())

    if args.variants:  # the adapter and FA4 variants run only when named
        wanted = [
            v
            for v in VARIANT_ORDER
            if v in args.variants and (v in spec.variants or v in ADAPTER_VARIANTS + FA4_VARIANTS + QUANT_VARIANTS)
        ]
    else:
        wanted = [v for v in VARIANT_ORDER if v in spec.variants]
    adapters = [v for v in wanted if v in ADAPTER_VARIANTS]
    if adapters and (len(adapters) > 1 or not set(wanted) <= {"stock", *adapters}):
        raise SystemExit(f"--variants {','.join(wanted)}: one adapter variant per process, after stock only")
    blocks = blocks_of(transformer, spec)
    flop = None
    last_baseline = None
    for variant in wanted:
        entry: dict = {}
        result["variants"][variant] = entry
        t0 = time.monotonic()
        try:
            if variant == "stock":
                entry["what"] = "diffusers 0.42.1 defaults: SDPA picks the kernel"
            elif variant.startswith("cudnn"):
                bench.attention = "cudnn"
                entry["what"] = "SDPA with cuDNN attention first (sdpa_kernel set_priority)"
            elif variant.startswith("fa4"):
                bench.attention = "fa4"
                entry["what"] = "unmasked attention by FlashAttention-4 (remote/models/fa4.py); the rest SDPA"
            elif variant in QUANT_VARIANTS:
                if "fp8" in variant or variant == "quantized":
                    if args.fp32_ref and bench.ref32 is None:  # before fp8 changes the weights
                        result["fp32_reference"] = fp32_reference(bench, transformer, inputs, blocks, restore=True)
                        if cuda and spec.resident and args.cap_gib:
                            torch.cuda.set_per_process_memory_fraction(args.cap_gib * GIB / total)
                    entry["fp8_linear"] = fp8.quantize_transformer(transformer, device)
                bench.attention = "sage" if variant.startswith("sage") or variant == "quantized" else "default"
                entry["what"] = {
                    "sage": "unmasked attention by the 8-bit kernel (remote/models/sage.py); the rest SDPA",
                    "default": "torch SDPA's default kernel",
                }[bench.attention]
                if "fp8_linear" in entry:
                    entry["what"] += "; linear layers of the blocks in fp8 (remote/models/fp8.py)"
                if variant == "quantized":
                    entry["what"] += "; regional compile"
            if "trim" in variant and not bench.trim:
                stand_in_for_ffmpeg()
                from remote.models.hunyuan import unmasked_processor_class  # the product's: one class for all

                for block in blocks:
                    block.attn.set_processor(unmasked_processor_class()())
                bench.trim = True
            if "trim" in variant:
                entry["what"] += "; prompt padding cut, blocks' attention unmasked"
            if "fqkv" in variant and not bench.fused:
                entry["fused_weights_dropped"] = fuse_qkv(transformer)
                bench.fused = True
            if "fqkv" in variant:
                entry["what"] += "; fused QKV projections"
            if "xattn" in variant and not bench.xattn:
                entry |= wan_cross_attention(blocks, device, dtype, inputs)
                bench.xattn = True
            if "xattn" in variant:
                entry["what"] += f"; cross-attention on {entry.get('cross_attention_backend', 'the same')} backend"
            mode = AUTOTUNE_MODE if "autotune" in variant else args.compile_mode
            if "compile" in variant or "autotune" in variant or variant == "quantized":
                compile_blocks(blocks, compile_backend, mode)
                entry["what"] += f"; regional torch.compile of {len(blocks)} blocks (fullgraph, static shapes"
                entry["what"] += f", mode {mode})" if mode else ")"
            if variant in ADAPTER_VARIANTS:
                bench.attention, bench.trim = "default", False  # the module's own knobs; the pipeline's inputs
                entry["speed"], trim = apply_adapter_knobs(spec.name, transformer, device, fbc=variant != "adapter")
                entry["what"] = "remote/models' knobs of the baseline profile" + (
                    " + First Block Cache 1.0" if variant != "adapter" else ""
                )
            if variant == "adapter+fbc":
                entry |= measure_fbc(bench, transformer, inputs, args.reps, enable=False)
                entry["dynamo"] = dynamo_counts()
            elif variant == "adapter":
                info, out = bench.measure(bench.call(transformer, inputs), args.reps)
                entry |= info | bench.compare(out) | {"dynamo": dynamo_counts()}
                bench.outputs[variant] = out.to("cpu", copy=True)
                del out
                if trim is not None:
                    entry["prompt_tokens"] = trim.tokens
                    shorter = dict(inputs, encoder_attention_mask=inputs["encoder_attention_mask"].clone())
                    shorter["encoder_attention_mask"][:, HUNYUAN_VALID_TOKENS - 24 :] = 0
                    info, out = bench.measure(bench.call(transformer, shorter), args.reps)
                    entry["second_prompt"] = info | {
                        "prompt_tokens": trim.tokens,
                        "dynamo": dynamo_counts(),
                        "what": "24 tokens shorter: the compiled blocks see a new shape",
                    }
                    del out
            if variant == "fbc" and args.profile and "kernel_profile" not in result:
                result["kernel_profile"] = profile_forward(bench.call(transformer, inputs), last_baseline, device)
                save(header, result)
            if variant == "fbc":
                entry |= measure_fbc(bench, transformer, inputs, args.reps)
            elif variant in ADAPTER_VARIANTS:
                pass
            else:
                fn = bench.call(transformer, inputs)
                try:
                    info, out = bench.measure(fn, args.reps, flops=variant == "stock")
                except Exception as exc:
                    if "compile" not in variant:
                        raise
                    entry["fullgraph_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                    compile_blocks(blocks, compile_backend, mode, fullgraph=False)
                    entry["what"] += " (fell back to fullgraph=False)"
                    info, out = bench.measure(fn, args.reps)
                if variant == "stock":
                    flop = info.pop("flop")
                    result["tflop_per_forward"] = round(flop / 1e12, 2)
                    result["flop_source"] = "torch.utils.flop_counter on the stock forward (matmuls + attention)"
                entry |= info
                entry |= bench.compare(out)
                if variant == "stock":
                    bench.ref = out
                bench.outputs[variant] = out.to("cpu", copy=True)
                del out
                last_baseline = variant
                if "compile" in variant or "autotune" in variant or variant == "quantized":
                    entry["dynamo"] = dynamo_counts()
            rates(entry, flop, spec.forwards_per_clip, peak, matmul)
            stock_s = result["variants"].get("stock", {}).get("s_per_forward")
            if stock_s and entry.get("s_per_forward"):
                entry["speedup_vs_stock"] = round(stock_s / entry["s_per_forward"], 3)
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:600]}"
            entry["traceback"] = traceback.format_exc()[-2000:]
            if isinstance(exc, torch.OutOfMemoryError):
                entry["error"] = f"OutOfMemoryError under the {args.cap_gib} GiB cap: {str(exc).splitlines()[0]}"
        entry["wall_s"] = round(time.monotonic() - t0, 1)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        print(
            variant,
            {
                k: entry.get(k)
                for k in (
                    "s_per_forward",
                    "first_call_s",
                    "mfu",
                    "peak_allocated_gib",
                    "max_abs_diff_vs_stock",
                    "rel_l2_vs_stock",
                    "error",
                )
            },
            flush=True,
        )
        save(header, result)

    if args.profile and "kernel_profile" not in result and last_baseline:
        result["kernel_profile"] = profile_forward(bench.call(transformer, inputs), last_baseline, device)
    baseline = {k: v for k, v in result["variants"].items() if "fbc" not in k and v.get("s_per_forward")}
    ok = {k: v for k, v in baseline.items() if v.get("finite") and v.get("rel_l2_vs_stock", 0.0) < 0.03}
    if ok:
        best = min(ok, key=lambda k: ok[k]["s_per_forward"])
        result["best_baseline_variant"] = best
        result["best_s_per_forward"] = ok[best]["s_per_forward"]
        result["best_mfu"] = ok[best].get("mfu")
        result["stock_mfu"] = result["variants"].get("stock", {}).get("mfu")
    save(header, result)

    if args.fp32_ref and "fp32_reference" not in result:
        t0 = time.monotonic()
        try:
            result["fp32_reference"] = fp32_reference(bench, transformer, inputs, blocks)
        except Exception as exc:
            result["fp32_reference"] = {
                "error": f"{type(exc).__name__}: {str(exc)[:600]}",
                "traceback": traceback.format_exc()[-2000:],
            }
        result["fp32_reference"]["wall_s"] = round(time.monotonic() - t0, 1)
        print("fp32 reference:", {k: v for k, v in result["fp32_reference"].items() if k != "traceback"}, flush=True)
        save(header, result)
    if args.offload_check:
        t0 = time.monotonic()
        try:
            result["offload_check"] = offload_check(spec, bench, transformer, inputs, blocks, args, total)
        except Exception as exc:
            result["offload_check"] = {
                "error": f"{type(exc).__name__}: {str(exc)[:600]}",
                "traceback": traceback.format_exc()[-2000:],
            }
        result["offload_check"]["wall_s"] = round(time.monotonic() - t0, 1)
        print("offload check:", {k: v for k, v in result["offload_check"].items() if k != "traceback"}, flush=True)
        save(header, result)
    del vae
    return result


def apply_adapter_knobs(model: str, transformer, device, fbc: bool) -> tuple[dict, object]:
    """The speed knobs as the product applies them (remote/models), from the model's spec in jobspecs/ at its baseline
    profile (with `fbc`: First Block Cache at threshold 1.0 on top). Returns (what was done, Hunyuan's PromptTrim)."""
    import types

    stand_in_for_ffmpeg()
    from jobspecs import load_spec
    from remote.models import load_adapter

    overrides = ("generation.first_block_cache=1.0",) if fbc else ()
    adapter = load_adapter(load_spec(REPO / "jobspecs" / ADAPTER_SPECS[model], overrides).spec)
    done = adapter.speed_knobs(types.SimpleNamespace(transformer=transformer), device)
    return done, getattr(adapter, "trim", None)


def measure_fbc(bench: Bench, transformer, inputs: dict, reps: int, enable: bool = True) -> dict:
    from diffusers import FirstBlockCacheConfig

    if enable:  # after a context's first call, always cached
        transformer.enable_cache(FirstBlockCacheConfig(threshold=1e9))
    fn = bench.call(transformer, inputs)
    computed, cached = [], []
    out = None
    if bench.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i in range(reps + 1):  # computed: the first call in a fresh cache context
        transformer._reset_stateful_cache()
        with transformer.cache_context("cond"):
            stop = now(bench.device)
            out = fn()
            seconds = stop()
            if i:  # the first one warms up the hooks
                computed.append(seconds)
    what = (
        (
            f"First Block Cache (threshold 1e9: every call after a context's first is cached) on the "
            f"{bench.attention}{'+trim' if bench.trim else ''} compiled model"
        )
        if enable
        else "computed and cached"
    )
    info = {"what": what, "computed_s_all": [round(s, 4) for s in computed]}
    info |= {k: v for k, v in bench.compare(out).items() if k != "finite"}
    del out
    with transformer.cache_context("cond"):  # the state of the last computed call: every call now hits
        for i in range(reps + 1):
            stop = now(bench.device)
            fn()
            seconds = stop()
            if i:
                cached.append(seconds)
    info["cached_s_all"] = [round(s, 4) for s in cached]
    info["s_per_forward"] = info["computed_s_per_forward"] = round(statistics.median(computed), 4)
    info["cached_s_per_forward"] = round(statistics.median(cached), 4)
    info["note"] = (
        "per-clip time = computed forwards x computed_s + cached forwards x cached_s; the hit rate "
        "depends on the real weights and the threshold (random weights can't tell)"
    )
    if bench.cuda:
        info["peak_allocated_gib"] = gib(torch.cuda.max_memory_allocated())
        info["peak_reserved_gib"] = gib(torch.cuda.max_memory_reserved())
    transformer._reset_stateful_cache()
    transformer.disable_cache()
    return info


def offload_check(spec: Model, bench: Bench, transformer, inputs, blocks, args, total) -> dict:
    """Hunyuan's 24gb plan under the cap: DiT block-level group offload with streams, VAE resident; the best
    eager attention variant (compiled forwards are dropped first: this is the memory's upper bound)."""
    device, cuda = bench.device, bench.cuda
    for block in blocks:
        block.__dict__.pop("forward", None)
    transformer.to("cpu")
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    transformer.enable_group_offload(
        onload_device=device,
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=cuda,
        record_stream=cuda,
    )
    vae = build_on(device, spec.vae[0], spec.vae[1]) if cuda else None
    info: dict = {
        "cap_gib": args.cap_gib,
        "attention": bench.attention + ("+trim" if bench.trim else ""),
        "note": "text_encoder_2 (CLIP-L, 0.23 GiB fp16) is resident too in the adapter: add it; "
        "LLaVA runs before the denoise loop and is offloaded leaf by leaf",
    }
    if cuda:
        torch.cuda.set_per_process_memory_fraction(args.cap_gib * GIB / total)
        info["resident_gib"] = gib(torch.cuda.memory_allocated())
        info["vae_resident_gib"] = gib(sum(p.numel() * p.element_size() for p in vae.parameters()))
    m, out = bench.measure(bench.call(transformer, inputs), reps=1)
    info |= m
    info |= bench.compare(out)
    del out, vae
    return info


def kernel_kind(name: str) -> str:
    low = name.lower()
    if any(k in low for k in ("fmha", "flash", "attention", "sdpa", "cudnn_generated_fort_native_sdpa")):
        return "attention"
    if any(k in low for k in ("gemm", "xmma", "cutlass", "nvjet", "wgmma", "triton_tem", "cublas")):
        return "gemm"
    if "triton" in low:
        return "triton (fused elementwise / norms)"
    if "memcpy" in low or "memset" in low:
        return "copies"
    return "other (eager elementwise, conv, ...)"


def profile_forward(fn: Callable[[], torch.Tensor], variant: str, device) -> dict:
    """One forward under torch.profiler (CUDA activity only): device time by kernel kind and the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    fn()
    if cuda:
        torch.cuda.synchronize()
    stop = now(device)
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    wall = stop()
    rows = []
    for event in prof.key_averages():
        us = max(getattr(event, a, 0) or 0 for a in ("device_time_total", "self_device_time_total", "cuda_time_total"))
        if us > 0:
            rows.append((event.key, us / 1e3, event.count))
    rows.sort(key=lambda r: -r[1])
    kinds: dict[str, float] = {}
    for name, ms, _ in rows:
        kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + ms
    return {
        "variant": variant,
        "forward_ms_under_profiler": round(wall * 1e3, 1),
        "kernel_ms_total": round(sum(r[1] for r in rows), 1),
        "ms_by_kind": {k: round(v, 1) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "top_kernels": [
            {"name": n[:140], "ms": round(ms, 2), "count": c, "kind": kernel_kind(n)} for n, ms, c in rows[:20]
        ],
    }


def fp32_reference(bench: Bench, transformer, inputs: dict, blocks, restore: bool = False) -> dict:
    """The same weights and inputs in float32 (no TF32, eager, default SDPA): each kept output's error against it,
    to tell bf16 rounding (stock's own error) from a change of math. `restore`: the module's dtypes are put back
    afterwards (each parameter and buffer its own: diffusers keeps some in float32) and the reference is kept
    (Bench.ref32) for the variants that follow (the fp8 ones, which change the weights)."""
    cuda = bench.cuda
    t0 = time.monotonic()
    for block in blocks:
        block.__dict__.pop("forward", None)
    if cuda:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    dtypes = {name: t.dtype for name, t in (*transformer.named_parameters(), *transformer.named_buffers())}
    transformer.float()
    inputs32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in inputs.items()}
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        stop = now(bench.device)
        with torch.no_grad():
            ref = transformer(**(trim_prompt(inputs32) if bench.trim else inputs32), return_dict=False)[0]
        seconds = stop()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    ref = ref.float().cpu()
    if restore:
        with torch.no_grad():
            for name, t in (*transformer.named_parameters(), *transformer.named_buffers()):
                t.data = t.data.to(dtypes[name])
        bench.ref32 = ref
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    out = {"s": round(seconds, 2), "ref_max_abs": float(ref.abs().max()), "variants": {}}
    for name, value in bench.outputs.items():
        diff = value.float() - ref
        out["variants"][name] = {"max_abs_err": float(diff.abs().max()), "rel_l2_err": float(diff.norm() / ref.norm())}
    out["wall_s"] = round(time.monotonic() - t0, 1)
    return out


# ----------------------------------------------------------------------------------------------------------------
# files


def gpu_slug(gpu: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", gpu).strip("-")


def saver(out_dir: Path, model: str):
    def save(header: dict, shape_result: dict) -> None:
        path = out_dir / f"gpu_clip_{model}_{gpu_slug(header['gpu'])}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        shapes = data.get("shapes", {})
        data = dict(header)
        machine = {k: header.get(k) for k in ("command", "date", "matmul_bf16_tflops_measured")}
        shapes[shape_result["profile"]] = dict(shape_result, **machine)  # each shape may come from another machine
        data["shapes"] = shapes
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return save


def vae_decode(out_dir: Path, model: str) -> dict | None:
    """The VAE decode of one clip as gpu_models.py measured it (tiled, under the cap), if its result is there."""
    for path in sorted(out_dir.glob(f"gpu_models_{model}_*.json")):
        data = json.loads(path.read_text())
        if data.get("decode_s"):
            return {"s": data["decode_s"], "gpu": data.get("gpu"), "source": path.name}
    return None


def summarize(out_dir: Path) -> int:
    """efficiency.json (the planner's figures come from it) and a markdown table, from every gpu_clip_<model>_*.json
    in out_dir and the FlashAttention-4 runs in out_dir/experiments (gpu_clip_<model>_fa4_*.json: a `flash_attn_4`
    entry per model)."""
    files = [p for p in sorted(out_dir.glob("gpu_clip_*.json")) if not p.name.startswith("gpu_clip_run_")]
    files += sorted((out_dir / "experiments").glob("gpu_clip_*_fa4_*.json"))
    if not files:
        print(f"no gpu_clip_*.json in {out_dir}", file=sys.stderr)
        return 1
    rows, eff, gpus = [], {}, set()
    for path in files:
        data = json.loads(path.read_text())
        model = data["model"]
        gpus.add(data["gpu"])
        for profile, res in sorted(data["shapes"].items(), key=lambda kv: kv[0] != "native"):
            clip = f"{profile} {res['width']}×{res['height']}×{res['frames']} ({res['video_tokens']:,} tok)"
            order = {name: i for i, name in enumerate(VARIANT_ORDER)}
            for name, v in sorted(res["variants"].items(), key=lambda kv: order.get(kv[0], 99)):
                if "error" in v or not v.get("s_per_forward"):
                    rows.append(f"| {model} | {clip} | {name} | error: {v.get('error', '?')[:60]} |" + " |" * 7)
                    continue
                cached = f" (cached {v['cached_s_per_forward']:.2f})" if "cached_s_per_forward" in v else ""
                diff = v.get("max_abs_diff_vs_stock")
                diff = "—" if diff is None else f"{diff:.3g} / {v['rel_l2_vs_stock']:.2g}"
                rows.append(
                    f"| {model} | {clip} | {name} | {v['s_per_forward']:.3f}{cached} | {v.get('tflops', 0):.0f} "
                    f"| {_pct(v.get('mfu'))} | {_pct(v.get('mfu_vs_measured_matmul'))} "
                    f"| {v.get('peak_allocated_gib', '—')} "
                    f"| {diff} "
                    f"| {v.get('denoise_s_per_clip', 0):,.0f} |"
                )
            if "best_baseline_variant" not in res:
                continue
            best = res["variants"][res["best_baseline_variant"]]
            stock = res["variants"]["stock"]
            entry = {
                "shape": f"{res['width']}x{res['height']}x{res['frames']}",
                "forwards_per_clip": res["forwards_per_clip"],
                "tflop_per_forward": res.get("tflop_per_forward"),
                "stock_mfu": res.get("stock_mfu"),
                "best_mfu": res.get("best_mfu"),
                "best_variant": res["best_baseline_variant"],
                "stock_mfu_vs_measured_matmul": stock.get("mfu_vs_measured_matmul"),
                "best_mfu_vs_measured_matmul": best.get("mfu_vs_measured_matmul"),
                "stock_s_per_forward": stock["s_per_forward"],
                "best_s_per_forward": res["best_s_per_forward"],
                "matmul_bf16_tflops_measured": res.get("matmul_bf16_tflops_measured"),
            }
            if "fbc" in res["variants"] and "cached_s_per_forward" in res["variants"]["fbc"]:
                entry["fbc_cached_s_per_forward"] = res["variants"]["fbc"]["cached_s_per_forward"]
            if "s_per_forward" in res.get("offload_check", {}):
                entry["offload_24gb"] = {
                    k: res["offload_check"].get(k)
                    for k in ("s_per_forward", "attention", "peak_allocated_gib", "peak_reserved_gib")
                }
            if "_fa4_" in path.name:
                eff.setdefault(model, {})["flash_attn_4"] = entry | {"source": f"experiments/{path.name}"}
            elif profile == "native":
                eff[model] = (
                    eff.get(model, {}) | entry | {"source": path.name, "vae_decode": vae_decode(out_dir, model)}
                )
            else:
                eff.setdefault(model, {})[profile] = entry
    gpu = ", ".join(sorted(gpus))
    efficiency = {
        "gpu": gpu,
        "peak_tflops_bf16_dense": peak_tflops(gpu),
        "mfu_definition": "stock forward FLOPs (torch.utils.flop_counter: matmuls + attention) / s per forward / the "
        "datasheet dense bf16 peak (mfu); *_vs_measured_matmul: / an 8192^3 bf16 matmul timed in the same process",
        "note": "per model: the native (baseline) shape; a 'fast' key where the fast profile's clip shape differs",
        "models": eff,
    }
    (out_dir / "efficiency.json").write_text(json.dumps(efficiency, indent=2, sort_keys=True) + "\n")
    print(
        "| model | clip | variant | s / forward | TFLOP/s | MFU (989) | MFU (measured matmul) | peak GiB "
        "| max abs / rel L2 diff vs stock | denoise s / clip |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nwrote {out_dir / 'efficiency.json'}")
    return 0


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", choices=MODELS)
    parser.add_argument("--shape", default="native", choices=["native", "fast"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cap-gib", type=float, default=24.0)
    parser.add_argument(
        "--variants",
        type=lambda s: [v for v in s.split(",") if v],
        default=None,
        help=f"a subset of {','.join(VARIANT_ORDER)} (applied in that order)",
    )
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode (default: inductor's default)")
    parser.add_argument("--offload-check", action="store_true", help="Hunyuan: the offload plan under the cap")
    parser.add_argument("--profile", action="store_true", help="kernel time by kind for the last baseline variant")
    parser.add_argument("--fp32-ref", action="store_true", help="every variant's error against a float32 forward")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--dry-run", action="store_true", help="tiny configs on the CPU: checks this script")
    parser.add_argument("--summarize", action="store_true", help="write efficiency.json and print the table")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summarize:
        return summarize(args.out)
    if not args.model:
        parser.error("a model is needed (or --summarize)")
    spec = MODEL_SPECS[args.model]
    args.save = saver(args.out, args.model)
    run_shape(spec, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
