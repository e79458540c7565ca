"""GPU check: each adapter's pipeline at full size (random weights), one clip at its 720p baseline, 2 denoising
steps + the VAE decode, under a 24 GiB cap, with the adapter's own `24gb` memory plan; with --steps 0, one whole
clip (the profile's steps, its longest clip) next to the planner's prediction for it on this GPU.

    python benchmarks/gpu_models.py [MODEL ...] [--profile baseline|quantized|cached|fast] [--cap-gib 24] [--steps 2|0]
                                    [--frames N] [--memory 24gb] [--out DIR]
    python benchmarks/gpu_models.py --dry-run [MODEL ...]   (this script's plumbing on tiny pipelines, CPU)

No weights are downloaded (none can be on the benchmark machine, and speed and memory don't depend on their
values). Each component is built from its full-size config (the real repos' configs: benchmarks/full_size.py)
directly on the GPU in its run dtype, then moved to the CPU, where from_pretrained leaves a pipeline; then
the adapter's setup() (scheduler, prompt pre-encoding, memory plan) and generate() run exactly as on the rented
RTX 4090. The cap (torch.cuda.set_per_process_memory_fraction) is set before setup(), so prompt encoding counts.
Tokenizers are the tiny ones (remote/models/tiny.py): only their ids matter here. One JSON per model:
GPU, versions, command, settings, peak VRAM (allocated and reserved), s/step, each step's seconds, denoise and
decode seconds, and (on a GPU the planner knows) the planner's phases for the same clip with the measured ones.
Results: gpu_models_<model>_<gpu>.json for the 2-step check, gpu_clip_run_<model>_<profile>[-fa4]_<gpu>.json for a
clip (-fa4: FlashAttention-4 ran).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import re
import resource
import shlex
import sys
import time
import traceback
from pathlib import Path

import torch
import yaml
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.full_size import (  # noqa: E402
    CLIP_L14_336,
    CLIP_TEXT_L14,
    COG_TRANSFORMER,
    COG_VAE,
    HUNYUAN_TRANSFORMER,
    HUNYUAN_VAE,
    LLAMA3_8B,
    T5_XXL,
    UMT5_XXL,
    WAN_TRANSFORMER,
    WAN_VAE,
)
from jobspecs import plan_clips, validate  # noqa: E402
from jobspecs.config import architectures  # noqa: E402
from jobspecs.plan import cache_hits, predict_clip, with_generation  # noqa: E402
from remote.models import load_adapter  # noqa: E402
from remote.models.hf import library_versions  # noqa: E402
from remote.models.tiny import TINY, clip_tokenizer, llama3_tokenizer, t5_tokenizer  # noqa: E402

GIB = 2**30
MODELS = ("wan22_ti2v_5b", "cogvideox15_5b_i2v", "hunyuan_i2v")


def on_gpu_then_cpu(make, dtype: torch.dtype):
    """Build a module with its default (random) init directly on the GPU in `dtype` (its float32 modules in
    float32, as from_pretrained loads them), then move it to the CPU."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("cuda"):
            module = make()
    finally:
        torch.set_default_dtype(previous)
    module = module.to("cpu").eval()
    for name, param in module.named_parameters():  # what from_pretrained(dtype=...) keeps in float32
        if any(part in name.split(".") for part in getattr(module, "_keep_in_fp32_modules", None) or ()):
            param.data = param.data.float()
    gc.collect()
    torch.cuda.empty_cache()
    return module


def build_wan():
    import diffusers
    import transformers

    tokenizer = t5_tokenizer(model_max_length=architectures()["wan22_ti2v_5b"].text_window)
    umt5 = transformers.UMT5Config(vocab_size=256384, **UMT5_XXL)
    return diffusers.WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=on_gpu_then_cpu(lambda: transformers.UMT5EncoderModel(umt5), torch.bfloat16),
        vae=on_gpu_then_cpu(lambda: diffusers.AutoencoderKLWan(**WAN_VAE), torch.float32),
        scheduler=diffusers.UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0
        ),
        transformer=on_gpu_then_cpu(lambda: diffusers.WanTransformer3DModel(**WAN_TRANSFORMER), torch.bfloat16),
        expand_timesteps=True,
    )


def build_hunyuan():
    import diffusers
    import transformers
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

    tokenizer = llama3_tokenizer(DEFAULT_PROMPT_TEMPLATE["template"])
    tokenizer_2 = clip_tokenizer()
    llava = transformers.LlavaConfig(
        text_config=transformers.LlamaConfig(
            **LLAMA3_8B,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=transformers.CLIPVisionConfig(**CLIP_L14_336),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    ids = {
        "bos_token_id": tokenizer_2.bos_token_id,
        "eos_token_id": tokenizer_2.eos_token_id,
        "pad_token_id": tokenizer_2.pad_token_id,
    }
    clip_text = transformers.CLIPTextConfig(**CLIP_TEXT_L14, **ids)
    image_processor = transformers.CLIPImageProcessor(
        crop_size={"height": 336, "width": 336},
        size={"shortest_edge": 336},
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    return diffusers.HunyuanVideoImageToVideoPipeline(
        text_encoder=on_gpu_then_cpu(lambda: transformers.LlavaForConditionalGeneration(llava), torch.float16),
        tokenizer=tokenizer,
        transformer=on_gpu_then_cpu(
            lambda: diffusers.HunyuanVideoTransformer3DModel(**HUNYUAN_TRANSFORMER), torch.bfloat16
        ),
        vae=on_gpu_then_cpu(lambda: diffusers.AutoencoderKLHunyuanVideo(**HUNYUAN_VAE), torch.float16),
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=on_gpu_then_cpu(lambda: transformers.CLIPTextModel(clip_text), torch.float16),
        tokenizer_2=tokenizer_2,
        image_processor=image_processor,
    )


def build_cogvideox():
    import diffusers
    import transformers

    t5 = transformers.T5Config(**T5_XXL)
    return diffusers.CogVideoXImageToVideoPipeline(
        tokenizer=t5_tokenizer(model_max_length=architectures()["cogvideox15_5b_i2v"].text_window),
        text_encoder=on_gpu_then_cpu(lambda: transformers.T5EncoderModel(t5), torch.bfloat16),
        vae=on_gpu_then_cpu(lambda: diffusers.AutoencoderKLCogVideoX(**COG_VAE), torch.bfloat16),
        transformer=on_gpu_then_cpu(lambda: diffusers.CogVideoXTransformer3DModel(**COG_TRANSFORMER), torch.bfloat16),
        scheduler=diffusers.CogVideoXDDIMScheduler(
            snr_shift_scale=1.0,
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            clip_sample=False,
            prediction_type="v_prediction",
            rescale_betas_zero_snr=True,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
        ),
    )


BUILDERS = {"wan22_ti2v_5b": build_wan, "hunyuan_i2v": build_hunyuan, "cogvideox15_5b_i2v": build_cogvideox}


def params_b(module) -> float:
    return round(sum(p.numel() for p in module.parameters()) / 1e9, 3)


def planner_gpu(name: str) -> str | None:
    """The planner's name (jobspecs/throughput.yaml) for a torch device name where its figures were measured:
    NVIDIA H100 80GB HBM3 → H100 (the SXM part), NVIDIA H200 → H200."""
    for key in ("H100", "H200"):
        if key in name and not any(other in name for other in ("PCIe", "NVL")):
            return key
    return None


def ran(result: dict, knob: str) -> bool:
    """Whether the adapter turned `knob` on in this run (flash_attn_4, sage_attention, fp8_linear are skipped where
    they can't run, and say so)."""
    return result.get("settings", {}).get("speed", {}).get(knob, "off").startswith("on")


def planner_check(spec, clip, gpu: str, measured: dict) -> dict:
    """The planner's phases for this clip on `gpu` (the first clip of its shape: compile included) against the
    measured ones. The GPU part of a clip is prep + denoise (+ compile, inside the first steps) + decode; the
    interpolation and encode run on the CPU afterwards and are not measured here. FlashAttention-4, the 8-bit
    attention and fp8 as they ran (the
    knob is skipped where the package or the GPU is missing)."""
    on_gpu = ("prep", "denoise", "compile", "decode")
    spec = with_generation(
        spec, **{knob: ran(measured, knob) for knob in ("flash_attn_4", "sage_attention", "fp8_linear")}
    )
    predicted = predict_clip(spec, clip, gpu, first_of_shape=True)
    no_hits = predict_clip(with_generation(spec, first_block_cache=0.0), clip, gpu, first_of_shape=True)
    total = sum(predicted.phases[k] for k in on_gpu)
    total_no_hits = sum(no_hits.phases[k] for k in on_gpu)
    got = measured["denoise_s"] + measured["decode_s"]
    return {
        "gpu": gpu,
        "forwards": predicted.forwards,
        "first_block_cache_hits_assumed": round(cache_hits(spec.effective("first_block_cache") or 0.0), 3),
        "predicted_phases_s": {k: round(predicted.phases[k], 1) for k in on_gpu},
        "predicted_gpu_s": round(total, 1),
        "predicted_gpu_s_if_no_cache_hit": round(total_no_hits, 1),
        "measured_gpu_s": round(got, 1),
        "measured_phases_s": {"prep + denoise + compile": measured["denoise_s"], "decode": measured["decode_s"]},
        "error_vs_predicted": round(got / total - 1, 4),
        "error_vs_predicted_if_no_cache_hit": round(got / total_no_hits - 1, 4),
        "note": "the GPU part of the clip (preparation, denoising with the compile of the first clip, VAE decode); "
        "interpolation and encode are CPU work after it",
    }


def run(model: str, args: argparse.Namespace) -> dict:
    data = yaml.safe_load((REPO / "jobspecs" / "demo.yaml").read_text())
    data["model"] = model
    data["generation"] = {"memory": args.memory, "profile": args.profile}
    if args.steps:
        data["generation"]["steps"] = args.steps
    if args.dry_run:  # tiny pipelines at a tiny size on the CPU
        data["model_source"] = "tiny"
        data["generation"] |= {"width": 64, "height": 64}
    spec = validate(data)
    first = plan_clips(spec)[0]
    clip = dataclasses.replace(first, frames=args.frames or spec.max_frames)  # the longest clip the profile allows
    image = ImageOps.fit(
        Image.open(REPO / "jobspecs" / "espresso.png").convert("RGB"),
        (clip.width, clip.height),
        Image.Resampling.LANCZOS,
    )
    cuda = not args.dry_run
    device = torch.device("cuda" if cuda else "cpu")
    total = torch.cuda.get_device_properties(0).total_memory if cuda else 0
    result = {
        "model": model,
        "gpu": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
        "gpu_memory_gib": round(total / GIB, 1),
        "cap_gib": args.cap_gib,
        "profile": args.profile,
        "clip": {
            "width": clip.width,
            "height": clip.height,
            "frames": clip.frames,
            "fps": clip.fps,
            "steps": spec.effective("steps"),
        },
        "command": "python " + shlex.join(sys.argv),
        "libraries": library_versions() | {"python": platform.python_version()},
    }
    start = time.monotonic()
    pipe = BUILDERS[model]() if cuda else TINY[model][1]()
    if type(pipe).__name__ == "WanPipeline":  # the tiny repo is saved like the real one, as text-to-video
        from diffusers import WanImageToVideoPipeline

        pipe = WanImageToVideoPipeline.from_pipe(pipe)
    result["build_s"] = round(time.monotonic() - start, 1)
    result["params_b"] = {name: params_b(c) for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        result["allocated_after_build_gib"] = round(torch.cuda.memory_allocated() / GIB, 2)
        if result["allocated_after_build_gib"] > 0.5:
            raise RuntimeError(f"{result['allocated_after_build_gib']} GiB still on the GPU after the build")
        torch.cuda.set_per_process_memory_fraction(args.cap_gib * GIB / total)
        torch.cuda.reset_peak_memory_stats()
    adapter = load_adapter(spec)
    try:
        start = time.monotonic()
        adapter.setup(pipe, device)
        if cuda:
            torch.cuda.synchronize()
            result["setup_peak_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        result["setup_s"] = round(time.monotonic() - start, 1)
        generated = adapter.generate(clip.prompt, image, clip, clip.seed)
    except torch.OutOfMemoryError as exc:
        where = [
            f"{frame.name} ({Path(frame.filename).name}:{frame.lineno})"
            for frame in traceback.extract_tb(exc.__traceback__)
        ]
        result["error"] = f"OutOfMemoryError under the {args.cap_gib} GiB cap: {str(exc).splitlines()[0]}"
        result["error_at"] = where[-6:]
        result["memory"] = adapter.memory
        return result
    params = generated.params
    result |= {
        "ok": generated.frames.shape == (clip.frames, clip.height, clip.width, 3),
        "frames_shape": list(generated.frames.shape),
        "peak_allocated_gib": round((generated.peak_vram_bytes or 0) / GIB, 2),
        "peak_reserved_gib": round((params["peak_vram_reserved_bytes"] or 0) / GIB, 2),
        "s_per_step": params["s_per_step"],
        "step_s": params["step_s"],
        "denoise_s": round(generated.timings_s["denoise"], 2),
        "decode_s": round(generated.timings_s["decode"], 2),
        "host_peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 1),
        "memory": adapter.memory,
        "settings": {
            k: v for k, v in params.items() if k not in ("memory", "peak_vram_reserved_bytes", "s_per_step", "step_s")
        },
    }
    gpu = "H100" if args.dry_run else planner_gpu(result["gpu"])  # dry run: the plumbing, full-size figures
    if not args.steps and gpu:
        result["planner"] = planner_check(spec, clip, gpu, result)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--cap-gib", type=float, default=24.0)
    parser.add_argument("--profile", default="baseline", choices=["baseline", "quantized", "cached", "fast"])
    parser.add_argument("--steps", type=int, default=2, help="denoising steps; 0: the profile's (a whole clip)")
    parser.add_argument("--frames", type=int, default=None, help="default: the longest clip the profile allows")
    parser.add_argument("--memory", default="24gb", choices=["24gb", "full", "auto"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--dry-run", action="store_true", help="tiny pipelines on the CPU: checks this script")
    args = parser.parse_args()
    args.models = args.models or list(MODELS)
    if unknown := set(args.models) - set(MODELS):
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}; the models are {', '.join(MODELS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        try:
            result = run(model, args)
        except Exception:
            result = {"model": model, "error": traceback.format_exc()}
        gpu = re.sub(r"[^A-Za-z0-9._-]+", "-", result.get("gpu", "gpu")).strip("-")
        label = f"{args.profile}-fa4" if ran(result, "flash_attn_4") else args.profile
        name = f"gpu_models_{model}_{gpu}.json" if args.steps else f"gpu_clip_run_{model}_{label}_{gpu}.json"
        path = args.out / name
        path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        keys = ("peak_allocated_gib", "peak_reserved_gib", "s_per_step", "denoise_s", "decode_s", "planner", "error")
        print(model, {k: result.get(k) for k in keys}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
