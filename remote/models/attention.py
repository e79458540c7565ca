"""Routing a transformer's attention to a faster kernel: what fa4.py (FlashAttention-4) and sage.py (8-bit
attention) share.

While the transformer runs, torch.nn.functional.scaled_dot_product_attention is answered by the kernel wherever the
call allows it (no mask, no dropout, not causal, bf16 or fp16, a head dim the kernel takes, as many key as query
heads); every other call (Hunyuan's masked token refiner, a float32 model) goes to SDPA as before. diffusers'
processors hand SDPA (B, H, S, D) views of their (B, S, H, D) projections, which is the kernels' layout: the
transposes back are free. CogVideoX's processor calls SDPA itself, so diffusers' attention backends can't reach it;
this route does.
"""

from __future__ import annotations

import contextlib
import functools

import torch


def sdpa_or_kernel(sdpa, kernel, head_dims: tuple[int, ...] | None = None):
    """An SDPA with torch's signature that sends the calls `kernel` can take to it: kernel(q, k, v, scale) on
    (B, S, H, D) tensors, returning (B, S, H, D). `head_dims`: the head dims the kernel takes (None: multiples of 8)."""

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        head_dim = query.shape[-1]
        if (
            attn_mask is not None
            or dropout_p
            or is_causal
            or enable_gqa
            or (head_dim % 8 if head_dims is None else head_dim not in head_dims)
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
        scale = scale if scale is not None else head_dim**-0.5
        return kernel(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), scale).transpose(1, 2)

    return attention


@contextlib.contextmanager
def attention_by(kernel, head_dims: tuple[int, ...] | None = None):
    """torch.nn.functional.scaled_dot_product_attention routed through `kernel` where it can (sdpa_or_kernel)."""
    functional = torch.nn.functional
    sdpa = functional.scaled_dot_product_attention
    functional.scaled_dot_product_attention = sdpa_or_kernel(sdpa, kernel, head_dims)
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = sdpa


def route_forward(transformer: torch.nn.Module, kernel, head_dims: tuple[int, ...] | None = None) -> None:
    """Run `transformer`'s forward with its attention routed through `kernel` (attention_by)."""
    forward = transformer.forward

    @functools.wraps(forward)
    def forward_with_kernel(*args, **kwargs):
        with attention_by(kernel, head_dims):
            return forward(*args, **kwargs)

    transformer.forward = forward_with_kernel
