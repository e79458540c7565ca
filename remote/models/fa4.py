"""FlashAttention-4 for a transformer's attention on Hopper (sm_90) and newer GPUs: the `flash_attn_4` speed knob.

On an H100, torch's fastest SDPA kernel (cuDNN's) runs 430 TFLOP/s at CogVideoX's head dim 64 and 620–650 at Wan's
and Hunyuan's 128; FlashAttention-4 (the flash-attn-4 package, CuTe DSL kernels, its SM90 forward) runs 580 and 770.
With regional compile that is 1.08× (Wan), 1.24× (CogVideoX) and 1.16× (Hunyuan) per forward, the same math
(benchmarks/README.md). remote/setup.sh installs the package (the `hopper` extra) only on a box whose GPU is sm_90+.
Not on a group-offloaded transformer (Hunyuan's 24gb plan): there it measured 10 % slower per step.

How: while the transformer runs, torch.nn.functional.scaled_dot_product_attention is answered by FlashAttention-4
wherever the call allows it (no mask, no dropout, not causal, bf16 or fp16, head dim a multiple of 8); every other
call (Hunyuan's masked token refiner, a float32 model) goes to SDPA as before. The kernel is a torch custom op, so
regional torch.compile keeps it as one opaque call. diffusers' processors hand SDPA (B, H, S, D) views of their
(B, S, H, D) projections, which is FlashAttention's layout: the transposes back are free.
"""

from __future__ import annotations

import contextlib
import functools

import torch

MIN_CAPABILITY = (9, 0)  # Hopper and newer: where it was measured and where setup.sh installs it
ON = "on: FlashAttention-4 (flash-attn-4) for the transformer's unmasked attention, torch SDPA for the rest"
# Hunyuan's fast profile under group offload on the H100: 3.19 s per step with it against 2.90 without
OFFLOADED = "skipped: the transformer is group-offloaded, where FlashAttention-4 measured slower"


def unavailable(device: torch.device) -> str | None:
    """Why FlashAttention-4 can't run on `device`, or None when it can."""
    if device.type != "cuda":
        return f"skipped on {device.type}: a CUDA kernel"
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        return f"skipped on sm_{capability[0]}{capability[1]}: used on sm_90+ (Hopper and newer) only"
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


def sdpa_or_kernel(sdpa, kernel):
    """An SDPA with torch's signature that sends the calls `kernel` can take to it: kernel(q, k, v, scale) on
    (B, S, H, D) tensors, returning (B, S, H, D)."""

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if (
            attn_mask is not None
            or dropout_p
            or is_causal
            or enable_gqa
            or query.shape[-1] % 8
            or query.dtype not in (torch.bfloat16, torch.float16)
            or query.shape[1] != key.shape[1]
        ):
            return sdpa(
                query,
                key,
                value,
                attn_mask=attn_mask,
                dropout_p=dropout_p,
                is_causal=is_causal,
                scale=scale,
                enable_gqa=enable_gqa,
            )
        scale = scale if scale is not None else query.shape[-1] ** -0.5
        return kernel(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), scale).transpose(1, 2)

    return attention


@contextlib.contextmanager
def attention_by(kernel):
    """torch.nn.functional.scaled_dot_product_attention routed through `kernel` where it can (sdpa_or_kernel)."""
    functional = torch.nn.functional
    sdpa = functional.scaled_dot_product_attention
    functional.scaled_dot_product_attention = sdpa_or_kernel(sdpa, kernel)
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = sdpa


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
    forward = transformer.forward

    @functools.wraps(forward)
    def forward_with_flash_attention(*args, **kwargs):
        with attention_by(kernel):
            return forward(*args, **kwargs)

    transformer.forward = forward_with_flash_attention
    return ON
