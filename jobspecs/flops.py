"""FLOPs of one transformer forward, from the model's architecture config and the clip's latent shape.

Every matrix product of diffusers 0.42.1's three video transformers, layer by layer (2 FLOPs per multiply-add;
attention 4·q·k·head_dims per call: QKᵀ and the product with V), batch 1. Element-wise work (norms, RoPE,
activations, softmax) is left out, like torch.utils.flop_counter does. The configs use diffusers' own key
names, so the same functions count the tiny test transformers (tests/test_planner.py checks them against
FlopCounterMode) and the full-size ones (jobspecs/architectures.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobspecs.config import Architecture


@dataclass(frozen=True)
class Forward:
    tokens: int  # video tokens after patching
    text_tokens: int
    total: float  # FLOPs of one full forward, batch 1
    cached: float  # what a First Block Cache hit still computes: embeddings, the first block, the output head


def linear(tokens: int, d_in: int, d_out: int) -> int:
    return 2 * tokens * d_in * d_out


def attention(q_tokens: int, kv_tokens: int, dim: int) -> int:
    return 4 * q_tokens * kv_tokens * dim


def timestep_mlp(tokens: int, d_in: int, d: int) -> int:
    """diffusers' TimestepEmbedding / PixArtAlphaTextProjection: Linear(d_in → d), Linear(d → d)."""
    return linear(tokens, d_in, d) + linear(tokens, d, d)


def latent_grid(frames: int, width: int, height: int, spatial: int, temporal: int) -> tuple[int, int, int]:
    """(latent frames, latent height, latent width) of a clip through the VAE."""
    return (frames - 1) // temporal + 1, height // spatial, width // spatial


def wan(cfg: dict, grid: tuple[int, int, int], text_tokens: int, per_token_timestep: bool = True) -> Forward:
    """WanTransformer3DModel. Wan 2.2 TI2V (expand_timesteps) embeds a timestep per video token."""
    pt, ph, pw = cfg["patch_size"]
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    tokens = (grid[0] // pt) * (grid[1] // ph) * (grid[2] // pw)
    s = text_tokens
    steps = tokens if per_token_timestep else 1
    embed = (
        linear(tokens, cfg["in_channels"] * pt * ph * pw, d)  # patch_embedding (Conv3d, stride = kernel)
        + timestep_mlp(steps, cfg["freq_dim"], d)  # condition_embedder.time_embedder
        + linear(steps, d, 6 * d)  # condition_embedder.time_proj
        + timestep_mlp(s, cfg["text_dim"], d)  # condition_embedder.text_embedder
    )
    block = (
        4 * linear(tokens, d, d)
        + attention(tokens, tokens, d)  # attn1: q, k, v, out; self-attention
        + 2 * linear(tokens, d, d)
        + 2 * linear(s, d, d)
        + attention(tokens, s, d)  # attn2: cross-attention
        + linear(tokens, d, cfg["ffn_dim"])
        + linear(tokens, cfg["ffn_dim"], d)  # ffn
    )
    head = linear(tokens, d, cfg["out_channels"] * pt * ph * pw)  # proj_out
    layers = cfg["num_layers"]
    return Forward(tokens, s, embed + layers * block + head, embed + block + head)


def hunyuan(cfg: dict, grid: tuple[int, int, int], text_tokens: int) -> Forward:
    """HunyuanVideoTransformer3DModel: a token refiner on the text, dual-stream then single-stream blocks over
    video + text tokens (full attention over both, padding included)."""
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    tokens = (grid[0] // pt) * (grid[1] // p) * (grid[2] // p)
    s, n = text_tokens, tokens + text_tokens
    mlp = int(d * cfg["mlp_ratio"])
    text_dim = cfg["text_embed_dim"]
    token_replace = cfg.get("image_condition_type") == "token_replace"  # the modulation runs twice
    modulations = 2 if token_replace else 1
    embed = (
        linear(tokens, cfg["in_channels"] * pt * p * p, d)  # x_embedder (Conv3d)
        + modulations * timestep_mlp(1, 256, d)  # time_text_embed.timestep_embedder (+ the t=0 token_replace one)
        + (timestep_mlp(1, 256, d) if cfg.get("guidance_embeds") else 0)  # guidance_embedder
        + timestep_mlp(1, cfg["pooled_projection_dim"], d)  # time_text_embed.text_embedder
        + timestep_mlp(1, 256, d)
        + timestep_mlp(1, text_dim, d)  # context_embedder.time_text_embed
        + linear(s, text_dim, d)  # context_embedder.proj_in
    )
    refiner = 4 * linear(s, d, d) + attention(s, s, d) + linear(s, d, 4 * d) + linear(s, 4 * d, d) + linear(1, d, 2 * d)
    embed += cfg["num_refiner_layers"] * refiner
    joint = attention(n, n, d)
    dual = (
        modulations * linear(1, d, 6 * d)
        + linear(1, d, 6 * d)  # norm1 (video), norm1_context
        + 4 * linear(n, d, d)
        + joint  # q, k, v and out of both streams
        + linear(n, d, mlp)
        + linear(n, mlp, d)  # ff and ff_context
    )
    single = (
        modulations * linear(1, d, 3 * d)  # norm
        + 3 * linear(n, d, d)
        + joint  # q, k, v
        + linear(n, d, mlp)
        + linear(n, d + mlp, d)  # proj_mlp, proj_out
    )
    head = linear(1, d, 2 * d) + linear(tokens, d, pt * p * p * cfg["out_channels"])  # norm_out, proj_out
    total = embed + cfg["num_layers"] * dual + cfg["num_single_layers"] * single + head
    return Forward(tokens, s, total, embed + dual + head)


def cogvideox(cfg: dict, grid: tuple[int, int, int], text_tokens: int) -> Forward:
    """CogVideoXTransformer3DModel: text and video tokens through every block together. Per sample: the
    pipeline batches the conditional and unconditional passes into one call of batch 2."""
    p, pt = cfg["patch_size"], cfg.get("patch_size_t") or 1
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    frames = grid[0] + (-grid[0]) % pt  # CogVideoX1.5 pads the latent frames to a multiple of patch_size_t
    tokens = (frames // pt) * (grid[1] // p) * (grid[2] // p)
    s, n = text_tokens, tokens + text_tokens
    time_dim, ofs = cfg["time_embed_dim"], cfg.get("ofs_embed_dim") or 0
    embed = (
        linear(1, d, time_dim)
        + linear(1, time_dim, time_dim)  # time_embedding
        + (2 * linear(1, ofs, ofs) if ofs else 0)  # ofs_embedding
        + linear(s, cfg["text_embed_dim"], d)  # patch_embed.text_proj
        + linear(tokens, cfg["in_channels"] * p * p * pt, d)  # patch_embed.proj
    )
    block = (
        2 * linear(1, time_dim, 6 * d)  # norm1, norm2
        + 4 * linear(n, d, d)
        + attention(n, n, d)  # attn1 over text + video
        + linear(n, d, 4 * d)
        + linear(n, 4 * d, d)  # ff
    )
    head = linear(1, time_dim, 2 * d) + linear(tokens, d, p * p * pt * cfg["out_channels"])  # norm_out, proj_out
    return Forward(tokens, s, embed + cfg["num_layers"] * block + head, embed + block + head)


FAMILIES = {"wan": wan, "hunyuan": hunyuan, "cogvideox": cogvideox}


def clip_forward(arch: Architecture, frames: int, width: int, height: int) -> Forward:
    """One forward of a full-size model (an entry of architectures.yaml) at a clip's shape."""
    grid = latent_grid(frames, width, height, arch.vae.spatial, arch.vae.temporal)
    extra = {"per_token_timestep": arch.per_token_timestep} if arch.per_token_timestep is not None else {}
    return FAMILIES[arch.family](arch.transformer, grid, arch.text_tokens, **extra)


def splits_evenly(arch: Architecture, frames: int, width: int, height: int, ranks: int, trimmed_text: bool) -> bool:
    """Whether context parallelism on `ranks` GPUs splits every sequence of a clip's forward evenly: the video tokens
    (all three models), and the text tokens where the model splits them too (CogVideoX's 226; Hunyuan's, which
    prompt_trim makes the prompt's own length, unknown before the run). Even splits run diffusers' plain Ulysses,
    which torch.compile takes; uneven ones need `ulysses_anything`, which it does not (remote/models/parallel.py)."""
    forward = clip_forward(arch, frames, width, height)
    if forward.tokens % ranks:
        return False
    if arch.family == "wan":  # Wan's plan splits only the video tokens (its cross-attention reads the whole text)
        return True
    if arch.family == "hunyuan" and trimmed_text:
        return False
    return forward.text_tokens % ranks == 0
