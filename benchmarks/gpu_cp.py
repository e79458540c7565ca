"""GPU check of context parallelism (remote/models/parallel.py) at full size, random weights: one transformer forward
at a model's native 720p clip with the adapter's own speed knobs (hf.apply_speed_knobs: the profile's attention
backend, fp8 linear layers, compile, FlashAttention-4 where carried), first on each rank alone, then split across the
ranks with the same weights and inputs. Reports the split output against the unsplit one (relative L2), s/forward
both ways, the scaling efficiency (1-rank time / (N × N-rank time)) and peak GiB per rank.

    torchrun --standalone --nproc-per-node=N benchmarks/gpu_cp.py MODEL [--profile baseline|quantized]
             [--frames F] [--out DIR]

One GPU per rank over NCCL: the measurement of issue #15, run so far only at N = 1 on one H200 (the one-GPU side;
no machine with several GPUs was lent). Two
ranks sharing one GPU over gloo crashed in gloo's CUDA all-gather (benchmarks/results/experiments/
gpu_cp_one_gpu_gloo_attempt_h200.json); NCCL refuses two ranks on one GPU. Hunyuan runs prompt_trim as in its
baseline (context parallelism needs it). Results: gpu_cp_<model>_<profile>_<N>x<gpu>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.gpu_clip import MODEL_SPECS, build_on, gpu_slug, library_versions  # noqa: E402
from jobspecs.load import load_spec  # noqa: E402
from remote.models import parallel  # noqa: E402
from remote.models.hf import apply_speed_knobs  # noqa: E402
from remote.models.hunyuan import PromptTrim  # noqa: E402

GIB = 2**30


def build(model: str, device):
    """The full-size transformer in bf16 from seed 0: the same weights on every rank and for both runs."""
    spec = MODEL_SPECS[model]
    torch.manual_seed(0)
    transformer = build_on(device, lambda: spec.make(spec.config), torch.bfloat16)
    if model == "hunyuan_i2v":
        PromptTrim(transformer)  # the baseline's trim: its blocks' attention unmasked (context parallelism needs it)
    return transformer


def forward_s(transformer, inputs: dict, reps: int) -> tuple[torch.Tensor, float]:
    """The output and the mean seconds of `reps` forwards after one warm-up (which compiles)."""
    with torch.no_grad():
        out = transformer(**inputs, return_dict=False)[0]
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            out = transformer(**inputs, return_dict=False)[0]
        torch.cuda.synchronize()
    return out, (time.perf_counter() - start) / reps


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", choices=sorted(MODEL_SPECS))
    parser.add_argument("--profile", default="quantized", choices=["baseline", "quantized"])
    parser.add_argument("--frames", type=int, default=None, help="fewer frames than the native clip")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    ranks, rank = parallel.world_size(), parallel.rank()
    device = parallel.device_of_rank()
    parallel.start(device)
    spec_file = {"wan22_ti2v_5b": "wan.yaml", "cogvideox15_5b_i2v": "cogvideox.yaml", "hunyuan_i2v": "hunyuan.yaml"}
    overrides = [f"generation.profile={args.profile}", f"infrastructure.num_gpus={ranks}", "guardrails.plan_check=warn"]
    spec = load_spec(REPO / "jobspecs" / spec_file[args.model], overrides).spec
    model = MODEL_SPECS[args.model]
    width, height, frames = model.shapes["native"]
    shape = (width, height, args.frames or frames)

    def inputs_for(transformer) -> dict:
        generator = torch.Generator("cpu").manual_seed(1)
        return model.inputs(transformer, shape, device, torch.bfloat16, generator)

    # 1. each rank alone: the knobs without the split (parallel.world_size() reads WORLD_SIZE when they're applied)
    os.environ["WORLD_SIZE"] = "1"
    alone = build(args.model, device)
    knobs_alone = apply_speed_knobs(SimpleNamespace(transformer=alone), device, spec)
    os.environ["WORLD_SIZE"] = str(ranks)
    inputs = inputs_for(alone)
    torch.cuda.reset_peak_memory_stats(device)
    reference, alone_s = forward_s(alone, inputs, args.reps)
    alone_peak = torch.cuda.max_memory_allocated(device) / GIB
    reference = reference.float().cpu()
    del alone
    gc.collect()
    torch.cuda.empty_cache()

    # 2. split across the ranks: the same weights, inputs and knobs, plus context parallelism
    split = build(args.model, device)
    knobs_split = apply_speed_knobs(SimpleNamespace(transformer=split), device, spec)
    torch.cuda.reset_peak_memory_stats(device)
    out, split_s = forward_s(split, inputs_for(split), args.reps)
    split_peak = torch.cuda.max_memory_allocated(device) / GIB
    out = out.float().cpu()
    rel_l2 = float((out - reference).norm() / reference.norm())

    per_rank = [None] * ranks
    dist.all_gather_object(per_rank, {"rank": rank, "peak_gib_alone": alone_peak, "peak_gib_split": split_peak})
    if rank == 0:
        gpu = torch.cuda.get_device_name(device)
        result = {
            "model": args.model,
            "profile": args.profile,
            "ranks": ranks,
            "gpu": gpu,
            "gpus_on_box": torch.cuda.device_count(),
            "shape": {"width": shape[0], "height": shape[1], "frames": shape[2]},
            "s_per_forward_one_rank": round(alone_s, 4),
            "s_per_forward_split": round(split_s, 4),
            "scaling_efficiency": round(alone_s / (ranks * split_s), 4),
            "rel_l2_split_vs_one_rank": rel_l2,
            "per_rank": per_rank,
            "knobs_one_rank": knobs_alone,
            "knobs_split": knobs_split,
            "command": "torchrun --standalone --nproc-per-node=" + str(ranks) + " " + shlex.join(sys.argv),
            "libraries": library_versions(),
        }
        name = f"gpu_cp_{args.model}_{args.profile}_{ranks}x{gpu_slug(gpu)}"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if not k.startswith("knobs")}, indent=2))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
