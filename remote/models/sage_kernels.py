"""SageAttention 1.0.6's Triton kernels (int8 Q·Kᵀ with per-block scales, fp16 P·V), vendored with one fix.

From the sageattention 1.0.6 wheel on PyPI (thu-ml/SageAttention; files quant_per_block.py and
attn_qk_int8_per_block.py), BSD 3-Clause License, Copyright (c) 2024, Jintao Zhang, Haofeng Huang. All rights
reserved. Redistribution and use in source and binary forms, with or without modification, are permitted provided
that the following conditions are met: redistributions of source code must retain the above copyright notice, this
list of conditions and the following disclaimer; redistributions in binary form must reproduce the above copyright
notice, this list of conditions and the following disclaimer in the documentation and/or other materials provided
with the distribution; neither the name of the copyright holder nor the names of its contributors may be used to
endorse or promote products derived from this software without specific prior written permission. THIS SOFTWARE IS
PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO
EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY,
OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT,
STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE,
EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

What changed against the wheel (remote/models/sage.py says why):
- the fix: the attention kernel masks the padding keys of the last partial 64-key block out of the softmax
  (`qk + tl.where(k_mask, 0, -1.0e6)`, the wheel's own causal kernel's idiom). The wheel loads them as int8 zeros
  and lets their score 0 into the row max and the denominator, which shrinks every output row by up to
  n_pad / kv_len: wrong at every length that is not a multiple of 64 (all three of ours: 27,280, 45,106, 118,800);
- only the (B, S, H, D) layout ("NHD") and head dims 64 and 128; no causal, varlen or head-dim-96 variants;
- `forward` takes the output dtype, and the caller smooths K out of place (the wheel subtracts K's mean in place).
Importing this module needs Triton (the CUDA torch wheels bring it; the CPU ones don't).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_Q = 128  # query rows per quantisation block and per program
BLOCK_K = 64  # key rows per quantisation block and per inner step


@triton.jit
def quant_per_block_int8_kernel(
    Input,
    Output,
    Scale,
    L,
    stride_iz,
    stride_ih,
    stride_in,
    stride_oz,
    stride_oh,
    stride_on,
    stride_sz,
    stride_sh,
    sm_scale,
    C: tl.constexpr,
    BLK: tl.constexpr,
):
    off_blk = tl.program_id(0)
    off_h = tl.program_id(1)
    off_b = tl.program_id(2)
    offs_n = off_blk * BLK + tl.arange(0, BLK)
    offs_k = tl.arange(0, C)
    input_ptrs = Input + off_b * stride_iz + off_h * stride_ih + offs_n[:, None] * stride_in + offs_k[None, :]
    output_ptrs = Output + off_b * stride_oz + off_h * stride_oh + offs_n[:, None] * stride_on + offs_k[None, :]
    scale_ptrs = Scale + off_b * stride_sz + off_h * stride_sh + off_blk
    x = tl.load(input_ptrs, mask=offs_n[:, None] < L)
    x = x.to(tl.float32)
    x *= sm_scale
    scale = tl.max(tl.abs(x)) / 127.0
    x_int8 = x / scale
    x_int8 += 0.5 * tl.where(x_int8 >= 0, 1, -1)
    x_int8 = x_int8.to(tl.int8)
    tl.store(output_ptrs, x_int8, mask=offs_n[:, None] < L)
    tl.store(scale_ptrs, scale)


def per_block_int8(q: torch.Tensor, k: torch.Tensor, sm_scale: float):
    """q (scaled by sm_scale · log2 e, for the kernel's exp2) and k as int8 with one fp32 scale per block of
    BLOCK_Q / BLOCK_K rows per (batch, head); (B, S, H, D) tensors."""
    q_int8 = torch.empty(q.shape, dtype=torch.int8, device=q.device)
    k_int8 = torch.empty(k.shape, dtype=torch.int8, device=k.device)
    b, qo_len, h_qo, head_dim = q.shape
    _, kv_len, h_kv, _ = k.shape
    q_scale = torch.empty((b, h_qo, triton.cdiv(qo_len, BLOCK_Q), 1), device=q.device, dtype=torch.float32)
    k_scale = torch.empty((b, h_kv, triton.cdiv(kv_len, BLOCK_K), 1), device=q.device, dtype=torch.float32)
    for x, x_int8, scale, length, heads, block, factor in (
        (q, q_int8, q_scale, qo_len, h_qo, BLOCK_Q, sm_scale * 1.44269504),
        (k, k_int8, k_scale, kv_len, h_kv, BLOCK_K, 1.0),
    ):
        quant_per_block_int8_kernel[(triton.cdiv(length, block), heads, b)](
            x,
            x_int8,
            scale,
            length,
            x.stride(0),
            x.stride(2),
            x.stride(1),
            x_int8.stride(0),
            x_int8.stride(2),
            x_int8.stride(1),
            scale.stride(0),
            scale.stride(1),
            sm_scale=factor,
            C=head_dim,
            BLK=block,
        )
    return q_int8, q_scale, k_int8, k_scale


@triton.jit
def _attn_fwd_inner(
    acc,
    l_i,
    m_i,
    q,
    q_scale,
    kv_len,
    K_ptrs,
    K_scale_ptr,
    V_ptrs,
    stride_kn,
    stride_vn,
    BLOCK_N: tl.constexpr,
    offs_n: tl.constexpr,
):
    for start_n in range(0, kv_len, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        k_mask = offs_n[None, :] < (kv_len - start_n)
        k = tl.load(K_ptrs, mask=k_mask)
        k_scale = tl.load(K_scale_ptr)
        qk = tl.dot(q, k).to(tl.float32) * q_scale * k_scale
        qk = qk + tl.where(k_mask, 0, -1.0e6)  # the fix: padding keys out of the softmax
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        qk = qk - m_ij[:, None]
        p = tl.math.exp2(qk)
        l_ij = tl.sum(p, 1)
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + l_ij
        acc = acc * alpha[:, None]
        v = tl.load(V_ptrs, mask=offs_n[:, None] < (kv_len - start_n))
        p = p.to(tl.float16)
        acc += tl.dot(p, v, out_dtype=tl.float16)
        m_i = m_ij
        K_ptrs += BLOCK_N * stride_kn
        K_scale_ptr += 1
        V_ptrs += BLOCK_N * stride_vn
    return acc, l_i


@triton.jit
def _attn_fwd(
    Q,
    K,
    V,
    Q_scale,
    K_scale,
    Out,
    stride_qz,
    stride_qh,
    stride_qn,
    stride_kz,
    stride_kh,
    stride_kn,
    stride_vz,
    stride_vh,
    stride_vn,
    stride_oz,
    stride_oh,
    stride_on,
    qo_len,
    kv_len,
    H: tl.constexpr,
    num_kv_groups: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    start_m = tl.program_id(0)
    off_z = tl.program_id(2).to(tl.int64)
    off_h = tl.program_id(1).to(tl.int64)
    q_scale_offset = (off_z * H + off_h) * tl.cdiv(qo_len, BLOCK_M)
    k_scale_offset = (off_z * (H // num_kv_groups) + off_h // num_kv_groups) * tl.cdiv(kv_len, BLOCK_N)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, HEAD_DIM)
    Q_ptrs = Q + (off_z * stride_qz + off_h * stride_qh) + offs_m[:, None] * stride_qn + offs_k[None, :]
    Q_scale_ptr = Q_scale + q_scale_offset + start_m
    kv_head = off_h // num_kv_groups
    K_ptrs = K + (off_z * stride_kz + kv_head * stride_kh) + offs_n[None, :] * stride_kn + offs_k[:, None]
    K_scale_ptr = K_scale + k_scale_offset
    V_ptrs = V + (off_z * stride_vz + kv_head * stride_vh) + offs_n[:, None] * stride_vn + offs_k[None, :]
    O_block_ptr = Out + (off_z * stride_oz + off_h * stride_oh) + offs_m[:, None] * stride_on + offs_k[None, :]
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    q = tl.load(Q_ptrs, mask=offs_m[:, None] < qo_len)
    q_scale = tl.load(Q_scale_ptr)
    acc, l_i = _attn_fwd_inner(
        acc, l_i, m_i, q, q_scale, kv_len, K_ptrs, K_scale_ptr, V_ptrs, stride_kn, stride_vn, BLOCK_N, offs_n
    )
    acc = acc / l_i[:, None]
    tl.store(O_block_ptr, acc.to(Out.type.element_ty), mask=(offs_m[:, None] < qo_len))


def forward(q_int8, k_int8, v, q_scale, k_scale, output_dtype: torch.dtype) -> torch.Tensor:
    """The attention of int8 q, k (per_block_int8) and fp16 v, all (B, S, H, D); returns (B, S, H, D)."""
    o = torch.empty(q_int8.shape, dtype=output_dtype, device=q_int8.device)
    b, qo_len, h_qo, head_dim = q_int8.shape
    _, kv_len, h_kv, _ = k_int8.shape
    _attn_fwd[(triton.cdiv(qo_len, BLOCK_Q), h_qo, b)](
        q_int8,
        k_int8,
        v,
        q_scale,
        k_scale,
        o,
        q_int8.stride(0),
        q_int8.stride(2),
        q_int8.stride(1),
        k_int8.stride(0),
        k_int8.stride(2),
        k_int8.stride(1),
        v.stride(0),
        v.stride(2),
        v.stride(1),
        o.stride(0),
        o.stride(2),
        o.stride(1),
        qo_len,
        kv_len,
        h_qo,
        h_qo // h_kv,
        HEAD_DIM=head_dim,
        BLOCK_M=BLOCK_Q,
        BLOCK_N=BLOCK_K,
        num_warps=4 if head_dim == 64 else 8,
        num_stages=3 if head_dim == 64 else 4,
    )
    return o
