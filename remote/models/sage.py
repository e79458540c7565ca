"""8-bit attention for a transformer's unmasked attention: the `sage_attention` speed knob (the `quantized` profile).

SageAttention quantises Q and K to int8 with one scale per block of rows (after subtracting K's mean over the
tokens, which softmax doesn't see) and runs P·V in fp16: on an RTX 4090 its authors chart 322 TOPS for this
version against FlashAttention 2's 164 (head dim 128, 32K tokens; thu-ml/SageAttention). Not the same math as
bf16 attention: benchmarks/README.md states how far its outputs are from stock bf16 and from float32.

Which SageAttention, and how the box gets it: PyPI has only sageattention 1.0.6 (Triton kernels, no compiled code);
2.x (int8 QK with fp8 P·V, 431–493 TOPS on a 4090) must be built from source with nvcc ≥ 12.4/12.8 and the box's
torch, minutes per rented box and impossible on a runtime image without nvcc. 1.0.6's two kernels are vendored in
sage_kernels.py with a fix (its attention kernel lets the padding keys of the last partial 64-key block into the
softmax: every output row shrinks by up to n_pad / length, at every length that is not a multiple of 64, i.e. all
three of ours). They need only Triton, which the box's CUDA torch wheel brings, so there is nothing to install and
nothing that can fail to install; a box without Triton (or a GPU below sm_80) runs torch SDPA and says why.

Where it is slower than the attention it would replace it stays off: on Hopper (sm_90) this Triton kernel runs
442 TFLOP/s against cuDNN's 638 and FlashAttention-4's 773 (benchmarks/README.md), so it is for Ampere and Ada,
the 4090 above all; jobspecs/throughput.yaml's `kernel_speedup` (below 1 on sm_90) decides, for the box and the
planner alike. The kernel is a torch custom op, so regional torch.compile keeps it as one opaque call.
"""

from __future__ import annotations

import functools

import torch

from jobspecs.config import throughput
from remote.models.attention import route_forward
from remote.models.hf import cuda_refusal

MIN_CAPABILITY = (8, 0)  # int8 tensor-core dot products in Triton: Ampere and newer
HEAD_DIMS = (64, 128)  # the vendored kernels' (CogVideoX: 64; Wan, Hunyuan: 128); other calls stay on SDPA
ON = "on: 8-bit attention (SageAttention 1.0.6's kernels, padding keys masked) for the unmasked attention"
FA4_ON = "skipped: FlashAttention-4 runs the attention here, and is faster"


def unavailable(device: torch.device) -> str | None:
    """Why the 8-bit attention can't run (or would be slower) on `device`, or None when it can."""
    if reason := cuda_refusal(device, MIN_CAPABILITY, "needs sm_80+ (int8 tensor cores)"):
        return reason
    capability = torch.cuda.get_device_capability(device)
    speedup = throughput().knobs.sage_attention.kernel_speedup.get(float(f"{capability[0]}.{capability[1]}"))
    if speedup is not None and speedup < 1:
        return (
            f"skipped on sm_{capability[0]}{capability[1]}: slower here than torch SDPA's attention kernel "
            f"({speedup:g}×, jobspecs/throughput.yaml)"
        )
    try:
        import triton  # noqa: F401
    except ImportError:
        return "skipped: Triton is not installed (the CUDA torch wheels bring it)"
    return None


def smoothed_int8_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """SageAttention on (B, S, H, D) tensors: K smoothed (its mean over the tokens subtracted, out of place: the
    scores change by a constant per row, which softmax ignores), Q and K int8 per block, V fp16."""
    from remote.models import sage_kernels

    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    k = k - k.mean(dim=1, keepdim=True)
    q_int8, q_scale, k_int8, k_scale = sage_kernels.per_block_int8(q, k, sm_scale=scale)
    return sage_kernels.forward(q_int8, k_int8, v.to(torch.float16), q_scale, k_scale, output_dtype=q.dtype)


@functools.cache
def sage_attention_op():
    """smoothed_int8_attention as the custom op shootout::sage_attention on (B, S, H, D)."""

    @torch.library.custom_op("shootout::sage_attention", mutates_args=())
    def sage_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        return smoothed_int8_attention(q, k, v, scale)

    @sage_attention.register_fake
    def _(q, k, v, scale):
        return torch.empty(q.shape, dtype=q.dtype, device=q.device)

    return sage_attention


def route_attention(transformer: torch.nn.Module, device: torch.device, fa4: bool, kernel=None) -> str:
    """Run `transformer`'s unmasked attention (head dims 64 and 128) by the 8-bit kernel where the device has it (or
    by `kernel`, for tests) and FlashAttention-4 is not routed already (`fa4`); returns what was done."""
    if fa4:
        return FA4_ON
    if kernel is None:
        reason = unavailable(device)
        if reason:
            return f"{reason}; torch SDPA used"
        kernel = sage_attention_op()
    route_forward(transformer, kernel, HEAD_DIMS)
    return ON
