"""FlashAttention-4 for a transformer's attention on Hopper (sm_90) and newer GPUs: the `flash_attn_4` speed knob.

On an H100, torch's fastest SDPA kernel (cuDNN's) runs 430 TFLOP/s at CogVideoX's head dim 64 and 620–650 at Wan's
and Hunyuan's 128; FlashAttention-4 (the flash-attn-4 package, CuTe DSL kernels, its SM90 forward) runs 580 and 770.
With regional compile that is 1.08× (Wan), 1.24× (CogVideoX) and 1.16× (Hunyuan) per forward, the same math
(benchmarks/README.md). remote/setup.sh installs the package (the `hopper` extra) only on a box whose GPU is sm_90+.
Not on a group-offloaded transformer (Hunyuan's 24gb plan): there it measured 10 % slower per step.

How: remote/models/attention.py routes every unmasked SDPA call of the transformer (head dim a multiple of 8) to
it; the masked ones (Hunyuan's token refiner) stay on SDPA. The kernel is a torch custom op, so regional
torch.compile keeps it as one opaque call.
"""

from __future__ import annotations

import functools

import torch

from remote.models.attention import route_forward
from remote.models.hf import cuda_refusal

MIN_CAPABILITY = (9, 0)  # Hopper and newer: where it was measured and where setup.sh installs it
ON = "on: FlashAttention-4 (flash-attn-4) for the transformer's unmasked attention, torch SDPA for the rest"
# Hunyuan's fast profile under group offload on the H100: 3.19 s per step with it against 2.90 without
OFFLOADED = "skipped: the transformer is group-offloaded, where FlashAttention-4 measured slower"


def unavailable(device: torch.device) -> str | None:
    """Why FlashAttention-4 can't run on `device`, or None when it can."""
    if reason := cuda_refusal(device, MIN_CAPABILITY, "used on sm_90+ (Hopper and newer) only"):
        return reason
    try:
        import flash_attn.cute  # noqa: F401
    except ImportError:
        return "skipped: flash-attn-4 is not installed (remote/setup.sh installs it on sm_90+ boxes)"
    return None


@functools.cache
def flash_attention_op():
    """flash_attn.cute.flash_attn_func's forward as the custom op shootout::flash_attention_4 on (B, S, H, D)."""
    from flash_attn.cute import flash_attn_func

    @torch.library.custom_op("shootout::flash_attention_4", mutates_args=())
    def flash_attention_4(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
        out = flash_attn_func(q, k, v, softmax_scale=scale, causal=False)
        return out[0] if isinstance(out, tuple) else out

    @flash_attention_4.register_fake
    def _(q, k, v, scale):
        return torch.empty(q.shape, dtype=q.dtype, device=q.device)

    return flash_attention_4


def route_attention(transformer: torch.nn.Module, device: torch.device, kernel=None) -> str:
    """Run `transformer`'s forward with its attention by FlashAttention-4 where the device has it (or by `kernel`,
    for tests) and the transformer is not group-offloaded; returns what was done, for the logs and the manifest."""
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    if _is_group_offload_enabled(transformer):
        return f"{OFFLOADED}; torch SDPA used"
    if kernel is None:
        reason = unavailable(device)
        if reason:
            return f"{reason}; torch SDPA used"
        kernel = flash_attention_op()
    route_forward(transformer, kernel)
    return ON
