"""fp8 linear layers for a transformer's blocks: the `fp8_linear` speed knob (the `quantized` profile).

torchao's float8 dynamic activation + weight quantisation with rowwise scales (Float8DynamicActivationFloat8WeightConfig
with PerRow): each Linear of the repeated blocks keeps its weight in float8 e4m3 with one scale per output row, and
quantises its input per row on the fly, so the matmul runs on fp8 tensor cores (torch._scaled_mm): twice bf16's peak
on Ada (sm_89: an RTX 4090's 330 against 165 TFLOP/s) and Hopper. It pays with torch.compile, which fuses the
activation's quantisation into the kernels around it (uncompiled, the extra passes eat the gain: CogVideoX-5B on an
H100, sayakpaul/diffusers-torchao). The weights take half the memory: that lets Hunyuan's 13B transformer (25.6 GB
in bf16) stay on a 24 GB card (remote/models/hunyuan.py). Not the same math as bf16: benchmarks/README.md states
how far its outputs are from stock bf16 and from float32.

Only the blocks' Linear layers whose dims are multiples of 16 (what _scaled_mm takes); the patch embedding, the
time and text embeddings and the output head stay in their dtype.
"""

from __future__ import annotations

import importlib.metadata

import torch

from remote.models.hf import BLOCK_LISTS, cuda_refusal

MIN_CAPABILITY = (8, 9)  # fp8 tensor cores: Ada and Hopper and newer
DONE = "quantized_to_fp8"  # set on a transformer once quantized (the 24gb plan of Hunyuan does it while placing)


def unavailable(device: torch.device) -> str | None:
    """Why fp8 linear layers can't run on `device`, or None when they can."""
    if reason := cuda_refusal(device, MIN_CAPABILITY, "fp8 tensor cores are sm_89+ (Ada, Hopper)"):
        return reason
    try:
        import torchao  # noqa: F401
    except ImportError:
        return "skipped: torchao is not installed (remote/setup.sh installs it on sm_89+ boxes)"
    return None


def takes(module: torch.nn.Module) -> bool:
    """A Linear that fp8 takes: bf16 weights (rowwise scales need them: torchao refuses others, and the modules
    diffusers keeps in fp32 stay so), both dims multiples of 16 (what _scaled_mm takes; torchao would leave the
    others in bf16 without a word)."""
    return (
        isinstance(module, torch.nn.Linear)
        and module.weight.dtype == torch.bfloat16
        and not module.in_features % 16
        and not module.out_features % 16
    )


def block_linears(transformer: torch.nn.Module) -> list[str]:
    """The qualified names of the Linear layers fp8 takes (`takes`) in the transformer's block lists."""
    names = []
    for list_name in BLOCK_LISTS:
        for index, block in enumerate(getattr(transformer, list_name, None) or []):
            names += [f"{list_name}.{index}.{name}" for name, module in block.named_modules() if takes(module)]
    return names


def quantize_transformer(transformer: torch.nn.Module, device: torch.device, block_by_block: bool = False) -> str:
    """The blocks' Linear layers to fp8 (torchao, rowwise), where the device can run them; returns what was done.
    `block_by_block`: the transformer is on the CPU and too large for the GPU in bf16: each block is moved to
    `device` and quantized there in turn, then the rest of the module follows (it ends up on `device`)."""
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    if getattr(transformer, DONE, None):
        return getattr(transformer, DONE)
    reason = unavailable(device)
    if reason:
        return f"{reason}; bf16 linear layers used"
    if _is_group_offload_enabled(transformer):  # its hooks hold the bf16 weights it streams: quantize before, or not
        return "skipped: the transformer is group-offloaded; bf16 linear layers used"
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    # set_inductor_config=False: torchao would otherwise switch on coordinate-descent tuning for every later
    # compile in the process (longer compiles than the planner's measured warm-up)
    config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False)
    chosen = set(block_linears(transformer))
    if block_by_block:
        for list_name in BLOCK_LISTS:
            for index, block in enumerate(getattr(transformer, list_name, None) or []):
                block.to(device)
                prefix = f"{list_name}.{index}."
                quantize_(block, config, filter_fn=lambda module, name, p=prefix: p + name in chosen)
        transformer.to(device)
    else:
        quantize_(transformer, config, filter_fn=lambda module, name: name in chosen)
    version = importlib.metadata.version("torchao")
    done = (
        f"on: {len(chosen)} linear layers of the blocks in float8 e4m3, dynamic activation + weight with rowwise "
        f"scales (torchao {version})"
    )
    setattr(transformer, DONE, done)
    return done
