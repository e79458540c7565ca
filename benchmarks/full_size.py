"""Full-size configs of the three models' components (random weights are built from these; nothing is downloaded).

Sources: diffusers' conversion scripts, the official repos, the published config.json files (shared/research/models.md
§4 and Appendix B.full_size_configs.py). Shared by gpu_models.py (whole pipelines) and gpu_clip.py (transformers).
"""

# Full-size configs (diffusers' conversion scripts, the official repos, the published config.json files).
WAN_TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                       out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True,
                       qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
                       rope_max_seq_len=1024)  # fmt: skip
WAN_VAE = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
               temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
               patch_size=2, scale_factor_temporal=4, scale_factor_spatial=16, latents_mean=[0.0] * 48,
               latents_std=[1.0] * 48)  # fmt: skip
UMT5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32,
                relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                tie_word_embeddings=False)  # fmt: skip
HUNYUAN_TRANSFORMER = dict(in_channels=16, out_channels=16, num_attention_heads=24, attention_head_dim=128,
                           num_layers=20, num_single_layers=40, num_refiner_layers=2, mlp_ratio=4.0, patch_size=2,
                           patch_size_t=1, qk_norm="rms_norm", guidance_embeds=True, text_embed_dim=4096,
                           pooled_projection_dim=768, rope_theta=256.0, rope_axes_dim=(16, 56, 56),
                           image_condition_type="token_replace")  # fmt: skip
HUNYUAN_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                   layers_per_block=2, act_fn="silu", norm_num_groups=32, scaling_factor=0.476986,
                   spatial_compression_ratio=8, temporal_compression_ratio=4, mid_block_add_attention=True)  # fmt: skip
LLAMA3_8B = dict(vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
                 rms_norm_eps=1e-5)  # fmt: skip
CLIP_L14_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14, projection_dim=768)  # fmt: skip
CLIP_TEXT_L14 = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
                     hidden_act="quick_gelu")  # fmt: skip
COG_TRANSFORMER = dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16,
                       time_embed_dim=512, ofs_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=300,
                       sample_height=300, sample_frames=81, patch_size=2, patch_size_t=2, temporal_compression_ratio=4,
                       max_text_seq_length=226, use_rotary_positional_embeddings=True,
                       use_learned_positional_embeddings=False, patch_bias=False)  # fmt: skip
COG_VAE = dict(latent_channels=16, block_out_channels=(128, 256, 256, 512), layers_per_block=3,
               temporal_compression_ratio=4, scaling_factor=0.7, invert_scale_latents=True)  # fmt: skip
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, feed_forward_proj="gated-gelu")  # fmt: skip
