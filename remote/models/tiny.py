"""Tiny random-weight pipelines of the three real diffusers classes, built offline, in the HF cache layout.

    python -m remote.models.tiny HF_HOME [MODEL_ID ...]     (default: all three)

Each is saved under its real repo id, as if downloaded: HF_HOME/hub/models--<org>--<name>/refs/main and
snapshots/<commit>/, where <commit> is a hash of the saved files. The adapters load them through the same code
as the real weights (remote/models/hf.py; `model_source: tiny`), so a test or a fresh GPU box runs the real
path in seconds before a 30 GB download. Everything is small (under 1 MB each) but keeps what the pipelines'
code depends on: Wan's 48-channel Wan2.2 VAE and 2×2 patch, Hunyuan's Llama-3 chat template with `<image>` as
token 5 and a 336-px vision tower (576 image tokens), CogVideoX1.5's temporal patch and ofs embedding.
Tokenizers are built from made-up vocabularies; the labels are the real repos' (Hunyuan's tokenizer is
labelled LlamaTokenizerFast, which reproduces the transformers 5 tokenizer trap the adapter guards against).
The output of random weights is noise: a tiny run checks the plumbing, never the pictures.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import string
import sys
import tempfile
from pathlib import Path

from jobspecs.config import architectures

WORDS = [
    "the",
    "a",
    "cup",
    "cat",
    "dog",
    "man",
    "walks",
    "on",
    "in",
    "of",
    "and",
    "camera",
    "light",
    "slowly",
    "moves",
    "red",
    "blue",
    "steam",
    "counter",
    "wooden",
    "warm",
    "style",
    "lens",
    "setting",
]
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<image>",
    "<pad>",
]


def t5_encoder(encoder_class, config_class, tokenizer, **config):
    """A two-layer T5-family text encoder (Wan's UMT5, CogVideoX's T5) over `tokenizer`'s vocabulary."""
    return encoder_class(
        config_class(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
            **config,
        )
    )


# The size of both tiny CLIP towers (Hunyuan's image encoder inside LLaVA, and its CLIP text encoder).
TINY_CLIP = {
    "hidden_size": 8,
    "intermediate_size": 16,
    "projection_dim": 8,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
}


def special_tokens(tokenizer) -> dict[str, int]:
    """The token ids a text model's config names: beginning, end and padding."""
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def t5_tokenizer(model_max_length: int):
    """A T5/UMT5-style Unigram tokenizer from a made-up vocabulary (transformers 5 builds it from the list)."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces = ["\u2581" + w for w in WORDS]
    for ch in string.ascii_letters + string.digits + string.punctuation:
        pieces += ["\u2581" + ch, ch]
    seen = {piece for piece, _ in vocab}
    for i, piece in enumerate(pieces):
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, -3.0 - 0.01 * i))
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def clip_tokenizer():
    """A CLIP-style byte-level BPE with <|startoftext|>/<|endoftext|>."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for ch in bytes_to_unicode().values():
            vocab.setdefault(ch + suffix, len(vocab))
    merges = []
    for word in ("the", "cup", "cat"):
        current = word[0]
        for ch in word[1:-1]:
            merges.append((current, ch))
            current += ch
            vocab.setdefault(current, len(vocab))
        merges.append((current, word[-1] + "</w>"))
        vocab.setdefault(word + "</w>", len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def llama3_tokenizer(template: str):
    """A byte-level BPE trained on Hunyuan's prompt template (so `<image>` is token 5), Llama-3 specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=LLAMA3_SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator([template] * 4 + WORDS, trainer=trainer)
    bos = backend.token_to_id("<|begin_of_text|>")
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<pad>",
        padding_side="right",
        model_max_length=4096,
    )


def wan22_ti2v():
    """Wan-AI/Wan2.2-TI2V-5B-Diffusers in small: saved as WanPipeline with expand_timesteps, like the repo."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = t5_tokenizer(model_max_length=architectures()["wan22_ti2v_5b"].text_window)
    text_encoder = t5_encoder(UMT5EncoderModel, UMT5Config, tokenizer, relative_attention_max_distance=32)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=48,
        out_channels=48,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0
    )
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder.eval(),
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        expand_timesteps=True,
    )


def hunyuan_i2v():
    """hunyuanvideo-community/HunyuanVideo-I2V in small (token_replace, embedded guidance)."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoImageToVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    tokenizer = llama3_tokenizer(DEFAULT_PROMPT_TEMPLATE["template"])
    tokenizer_2 = clip_tokenizer()
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        **special_tokens(tokenizer),
    )
    vision_config = CLIPVisionConfig(**TINY_CLIP, image_size=336, patch_size=14)
    text_encoder = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=vision_config,
            text_config=text_config,
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            pad_token_id=tokenizer.pad_token_id,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        )
    )
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            **TINY_CLIP, vocab_size=len(tokenizer_2), max_position_embeddings=77, **special_tokens(tokenizer_2)
        )
    )
    image_processor = CLIPImageProcessor(
        crop_size={"height": 336, "width": 336},
        size={"shortest_edge": 336},
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=10,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        patch_size=2,
        patch_size_t=1,
        qk_norm="rms_norm",
        guidance_embeds=True,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_theta=256.0,
        rope_axes_dim=(2, 4, 4),
        image_condition_type="token_replace",
    )
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        act_fn="silu",
        norm_num_groups=4,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=True,
    )
    return HunyuanVideoImageToVideoPipeline(
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer_2=tokenizer_2,
        image_processor=image_processor,
    )


def cogvideox15_i2v():
    """THUDM/CogVideoX1.5-5B-I2V in small (patch_size_t 2, ofs embedding, RoPE; the repo ships DDIM)."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer(model_max_length=architectures()["cogvideox15_5b_i2v"].text_window)
    text_encoder = t5_encoder(T5EncoderModel, T5Config, tokenizer)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=8,
        out_channels=4,
        time_embed_dim=4,
        ofs_embed_dim=4,
        text_embed_dim=32,
        num_layers=2,
        sample_width=300,
        sample_height=300,
        sample_frames=81,
        patch_size=2,
        patch_size_t=2,
        temporal_compression_ratio=4,
        max_text_seq_length=226,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=False,
        patch_bias=False,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        scaling_factor=0.7,
        invert_scale_latents=True,
    )
    scheduler = CogVideoXDDIMScheduler(
        snr_shift_scale=1.0,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        clip_sample=False,
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    return CogVideoXImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder.eval(), vae=vae, transformer=transformer, scheduler=scheduler
    )


# model id -> (repo id, builder, {component: class label the real repo's model_index.json names})
TINY = {
    "wan22_ti2v_5b": ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", wan22_ti2v, {"tokenizer": "T5TokenizerFast"}),
    "hunyuan_i2v": ("hunyuanvideo-community/HunyuanVideo-I2V", hunyuan_i2v, {"tokenizer": "LlamaTokenizerFast"}),
    "cogvideox15_5b_i2v": ("THUDM/CogVideoX1.5-5B-I2V", cogvideox15_i2v, {"tokenizer": "T5Tokenizer"}),
}


def relabel(folder: Path, labels: dict[str, str]) -> None:
    """Write the real repos' tokenizer class labels into model_index.json and tokenizer_config.json."""
    index_file = folder / "model_index.json"
    index = json.loads(index_file.read_text())
    for component, class_name in labels.items():
        index[component] = ["transformers", class_name]
        config_file = folder / component / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config["tokenizer_class"] = class_name
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True))


def content_commit(folder: Path) -> str:
    """A 40-hex 'commit' that names the saved files' content."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def install(hf_home: Path, model_ids: list[str] | None = None) -> dict[str, str]:
    """Build, save and install each tiny pipeline into hf_home/hub under its real repo id; returns id → commit."""
    import torch

    commits = {}
    hub = Path(hf_home) / "hub"
    for model_id in model_ids or list(TINY):
        repo, build, labels = TINY[model_id]
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory(prefix="tiny-") as tmp:
            saved = Path(tmp) / "pipeline"
            build().save_pretrained(saved)
            relabel(saved, labels)
            commit = content_commit(saved)
            repo_dir = hub / f"models--{repo.replace('/', '--')}"
            shutil.rmtree(repo_dir, ignore_errors=True)
            shutil.copytree(saved, repo_dir / "snapshots" / commit)
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(commit)
        commits[model_id] = commit
    return commits


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    unknown = [a for a in args[1:] if a not in TINY]
    if not args or unknown:
        print(f"usage: python -m remote.models.tiny HF_HOME [{' | '.join(TINY)} ...]", file=sys.stderr)
        return 2
    for model_id, commit in install(Path(args[0]), args[1:] or None).items():
        print(f"{model_id}: {TINY[model_id][0]} @ {commit} in {Path(args[0]) / 'hub'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
