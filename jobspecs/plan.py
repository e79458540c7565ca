"""Shots → clips (frame counts on the model's rule, chained sub-clips, seeds, prompts), and the planner: the
predicted seconds of every clip on the target GPU, checked against the clip limit before anything is rented.

The prediction: transformer FLOPs per forward from the model's architecture (jobspecs/flops.py,
architectures.yaml) / the GPU's throughput (peak × stock efficiency × the knobs' speed-ups, compile and the rest
measured on an H100, the 8-bit levers by Amdahl's law on attention's share of the time: throughput.yaml) ×
forwards per clip (steps, CFG; MagCache's skips, known from its calibration, at a cached forward's measured cost;
no First Block Cache hit), plus the compile, the clip's preparation and VAE decode (measured on the reference GPU,
scaled by peak and clip size), frame interpolation and the encode on the CPU. On N GPUs (context parallelism) the
denoising alone is divided, by N × an assumed efficiency by interconnect. Every assumption is written next to its
number in those files. `generation.profile: auto` is resolved here too (pick_profile), and `infrastructure.gpu` /
`num_gpus: auto` (pick_offer: the offer shape with the lowest predicted dollars per film that fits, from
jobspecs/offers.py's shapes: on demand, or at the bid with `infrastructure.interruptible`, where the expected
preemptions' extra rented seconds are charged: expected_preemption_s).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from pydantic import BaseModel, ConfigDict, ValidationError

from jobspecs.config import architectures, offer_snapshot, throughput
from jobspecs.flops import clip_forward, splits_evenly
from jobspecs.offers import OfferShape, OfferSource, OfferVerdict, offer_shapes, snapshot_source
from jobspecs.schema import PROFILE_ORDER, Constants, JobSpec, Shot, SpecError, gpu_counts, total_seconds

PIXELS_720P = 1280 * 720

CAMERA_PHRASES = {
    "static": "static camera, locked off on a tripod",
    "pan left": "the camera pans slowly to the left",
    "pan right": "the camera pans slowly to the right",
    "tilt up": "the camera tilts slowly upward",
    "tilt down": "the camera tilts slowly downward",
    "dolly left": "the camera dollies slowly to the left, tracking sideways",
    "dolly right": "the camera dollies slowly to the right, tracking sideways",
    "push-in": "the camera pushes in slowly toward the subject",
    "pull-out": "the camera pulls out slowly, revealing more of the scene",
    "orbit left": "the camera orbits slowly to the left around the subject",
    "orbit right": "the camera orbits slowly to the right around the subject",
}


@dataclass(frozen=True)
class ClipPlan:
    index: int  # position in the chain; clip 0 starts from the reference image
    shot_index: int
    part: int  # sub-clip of a shot longer than the model's native length
    parts: int
    frames: int  # including frame 0, the input image
    fps: int
    width: int
    height: int
    seed: int
    camera: str
    prompt: str

    @property
    def seconds(self) -> float:
        """Motion this clip adds to the film (frame 0 repeats the hand-off frame)."""
        return (self.frames - 1) / self.fps


def build_prompt(constants: Constants, shot: Shot) -> str:
    """prompt_i = shot card i + the global constants, in a fixed order and wording."""
    return (
        f"{shot.subject}. {shot.action}. {shot.environment}. {CAMERA_PHRASES[shot.camera].capitalize()}. "
        f"Style: {constants.style}. Setting: {constants.setting}. Lighting: {constants.lighting}. "
        f"Lens: {constants.lens}. Composition: {constants.composition}."
    )


def estimate_tokens(text: str) -> int:
    """A rough token count, without the model's tokenizer (not available offline): 1.3 per word, 1 per punctuation
    mark, 1 for the end-of-text token."""
    return math.ceil(1.3 * len(re.findall(r"\w+", text))) + len(re.findall(r"[^\w\s]", text)) + 1


def prompt_window_warnings(spec: JobSpec) -> list[str]:
    """A warning for each prompt (and the negative prompt) estimated longer than the model's text window
    (architectures.yaml `text_window`: the pipeline cuts a longer prompt without a word; kenburns reads none)."""
    arch = architectures()[spec.model]
    if arch.text_window is None:
        return []
    encoder, window = arch.text_encoder, arch.text_window
    texts = [
        (f"shots.{i} (its prompt: the shot card + constants)", build_prompt(spec.constants, shot))
        for i, shot in enumerate(spec.shots)
    ]
    if spec.generation.negative_prompt:
        texts.append(("generation.negative_prompt", spec.generation.negative_prompt))
    warnings = []
    for name, text in texts:
        tokens = estimate_tokens(text)
        if tokens > window:
            warnings.append(
                f"{name}: about {tokens} tokens (an estimate: 1.3 per word), above model {spec.model}'s {encoder} "
                f"window of {window} tokens; the text encoder reads the first {window} and never sees the rest "
                "(shorten the text)"
            )
    return warnings


def plan_clips(spec: JobSpec) -> list[ClipPlan]:
    width, height = spec.size
    clips: list[ClipPlan] = []
    for shot_index, shot in enumerate(spec.shots):
        prompt = build_prompt(spec.constants, shot)
        frame_counts = spec.shot_frames(shot)
        for part, frames in enumerate(frame_counts):
            index = len(clips)
            clips.append(
                ClipPlan(
                    index=index,
                    shot_index=shot_index,
                    part=part,
                    parts=len(frame_counts),
                    frames=frames,
                    fps=spec.fps,
                    width=width,
                    height=height,
                    seed=(spec.seed + index) % 2**32,  # a fresh seed per chained clip
                    camera=shot.camera,
                    prompt=prompt,
                )
            )
    return clips


def plan_table(spec: JobSpec) -> str:
    """Shots → clips as a text table (also what `shootout plan` prints)."""
    rows = [f"{spec.title!r}: model {spec.model}, {len(spec.shots)} shots → {spec.clip_count} clips"]
    rows.append(f"{'clip':>4} {'shot':>4} {'part':>5} {'camera':<12} {'frames':>6} {'fps':>3} {'seconds':>7}  size")
    for clip in plan_clips(spec):
        rows.append(
            f"{clip.index:>4} {clip.shot_index:>4} {clip.part + 1:>2}/{clip.parts:<2} {clip.camera:<12} "
            f"{clip.frames:>6} {clip.fps:>3} {clip.seconds:>7.2f}  {clip.width}x{clip.height}"
        )
    rows.append(f"film: {total_seconds(spec):.2f} s at 24 fps, 1280x720, transition {spec.stitch.transition}")
    rows.append(f"limits: {spec.guardrails.clip_limit_s:g} s per clip, {spec.run_limit_s:g} s per run")
    if spec.offer_choice:
        rows.append(spec.offer_choice)
    if spec.profile_choice:
        rows.append(spec.profile_choice)
    return "\n".join(rows)


# --- the planner -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipPrediction:
    index: int
    frames: int  # generated frames
    width: int
    height: int
    forwards: int  # transformer forwards of batch 1 (a batched CFG step counts 2); 0 for kenburns
    tflop: float  # transformer TFLOP of the clip, First Block Cache hits accounted
    seconds: float  # predicted time of the clip: what guardrails.clip_limit_s measures
    phases: dict[str, float]  # seconds by phase (prep, denoise, decode, interpolate, encode, compile / render)


@dataclass(frozen=True)
class RunPrediction:
    model: str
    profile: str
    gpu: str  # "cpu" for kenburns
    clips: list[ClipPrediction]
    load_s: float  # model load and setup, once per run (outside the clip limit, inside the run limit)
    total_s: float  # load + every clip
    clip_limit_s: float
    run_limit_s: float
    warnings: list[str] = field(default_factory=list)  # problems check_plan let through (plan_check: warn)
    # with First Block Cache on: the longest clip if it hit at the published rate (the prediction credits no hit)
    longest_with_published_hits_s: float | None = None
    num_gpus: int = 1  # the GPUs every clip runs on (1 for kenburns)

    @property
    def longest(self) -> ClipPrediction:
        return max(self.clips, key=lambda clip: clip.seconds)

    @property
    def device(self) -> str:
        """What the prediction is for, as messages name it: "RTX 4090", "2× H200", "cpu"."""
        return device_name(self.gpu, self.num_gpus)

    def estimate_usd(self, usd_per_hour: float) -> float:
        """The run's GPU time at `usd_per_hour` (provisioning and transfers not included)."""
        return self.total_s / 3600 * usd_per_hour


def device_name(gpu: str, num_gpus: int) -> str:
    """A box as messages name it: "RTX 4090" (one GPU), "2× H200"."""
    return gpu if num_gpus == 1 else f"{num_gpus}× {gpu}"


def plan_gpu(spec: JobSpec, gpu: str | None = None) -> str:
    """The device a plan is predicted for: kenburns renders on the CPU wherever it runs; the diffusers models on
    `gpu`, else infrastructure.gpu."""
    if architectures()[spec.model].family == "cpu":
        return "cpu"
    return concrete("gpu", gpu or spec.infrastructure.gpu)


def plan_num_gpus(spec: JobSpec, num_gpus: int | None = None) -> int:
    """The GPUs a plan's clips run on: 1 for kenburns; `num_gpus`, else infrastructure.num_gpus."""
    if architectures()[spec.model].family == "cpu":
        return 1
    return concrete("num_gpus", num_gpus or spec.infrastructure.num_gpus)


def concrete(name: str, value: str | int) -> str | int:
    """`value` of infrastructure.`name`, refused where it is still `auto` (a spec load.validate did not resolve)."""
    if value == "auto":
        raise SpecError(
            f"infrastructure.{name} = 'auto': not resolved yet; load the spec with jobspecs.load.validate, which "
            "picks the offer (pick_offer)"
        )
    return value


def gpu_throughput(model: str, gpu: str) -> tuple[float, float]:
    """(achieved TFLOP/s of the model's stock transformer, the GPU's peak) on `gpu`; SpecError for an unknown GPU."""
    table = throughput()
    card = table.gpus.get(gpu)
    if card is None:
        raise SpecError(
            f"infrastructure.gpu = {gpu!r}: the planner has no throughput figures for it; known: "
            f"{', '.join(table.gpus)} (add it to jobspecs/throughput.yaml)"
        )
    return card.peak_bf16_tflops * table.stock_efficiency(gpu)[model], card.peak_bf16_tflops


def offloaded(spec: JobSpec, gpu: str) -> bool:
    """Whether the box will group-offload the transformer: the 24gb plan of a model that offloads in it, asked for
    or picked by `auto` on a GPU with less memory than the model's full plan needs (architectures.yaml), unless
    fp8 linear layers keep it resident there."""
    arch = architectures()[spec.model]
    if not arch.offloads_in_24gb or spec.generation.memory == "full":
        return False
    if arch.fp8_resident_in_24gb and fp8_linear_on(spec, gpu):
        return False
    return spec.generation.memory == "24gb" or throughput().gpus[gpu].memory_gb < arch.full_plan_needs_gib


def flash_attn_4_on(spec: JobSpec, gpu: str) -> bool:
    """Whether the box runs FlashAttention-4 for this spec on `gpu`: asked for, a listed GPU, not offloaded."""
    return (
        bool(spec.effective("flash_attn_4"))
        and gpu in throughput().knobs.flash_attn_4.gpus
        and not offloaded(spec, gpu)
    )


def sage_attention_on(spec: JobSpec, gpu: str) -> bool:
    """Whether the box runs 8-bit attention for this spec on `gpu`: asked for, the GPU capable, the kernel faster
    there than the baseline's (not on Hopper), and FlashAttention-4 not running there (remote/models/sage.py)."""
    card, knob = throughput().gpus[gpu], throughput().knobs.sage_attention
    return (
        bool(spec.effective("sage_attention"))
        and card.capability >= knob.min_capability
        and knob.kernel_speedup.get(card.capability, 1.0) >= 1.0  # slower kernels stay off (remote/models/sage.py)
        and not flash_attn_4_on(spec, gpu)
    )


def fp8_linear_on(spec: JobSpec, gpu: str) -> bool:
    """Whether the box runs the transformer's linear layers in fp8 on `gpu` (fp8 tensor cores: sm_89+)."""
    return bool(spec.effective("fp8_linear")) and throughput().gpus[gpu].capability >= (
        throughput().knobs.fp8_linear.min_capability
    )


def precision_speedup(spec: JobSpec, gpu: str) -> float:
    """How much faster a forward runs with the 8-bit levers the box turns on (sage_attention, fp8_linear), by
    Amdahl's law: attention's share of the forward's time sped up by the 8-bit attention kernel's speed-up, the
    rest by the fp8 GEMMs' (throughput.yaml `attention_share`, `kernel_speedup` by compute capability)."""
    table = throughput()
    knobs, capability = table.knobs, table.gpus[gpu].capability
    attention = knobs.sage_attention.kernel_speedup.get(capability, 1.0) if sage_attention_on(spec, gpu) else 1.0
    gemm = knobs.fp8_linear.kernel_speedup.get(capability, 1.0) if fp8_linear_on(spec, gpu) else 1.0
    share = knobs.attention_share[spec.model]
    return 1.0 / (share / attention + (1.0 - share) / gemm)


def compile_runs(spec: JobSpec, num_gpus: int = 1) -> bool:
    """Whether the box compiles the transformer: compile on, and on several GPUs only where every clip's sequences
    split evenly across them (diffusers' uneven split, ulysses_anything, does not compile: remote/models/hf.py skips
    it; jobspecs.flops.splits_evenly). The tiny weights' shapes count as uneven, as on the box."""
    if not spec.effective("compile"):
        return False
    return num_gpus == 1 or every_clip_splits_evenly(spec, num_gpus)


def every_clip_splits_evenly(spec: JobSpec, num_gpus: int) -> bool:
    """Whether every clip of `spec` splits evenly across `num_gpus` (jobspecs.flops.splits_evenly), which decides
    plain Ulysses (compiled) against `ulysses_anything` on the box (remote/models/parallel.py) and in the planner. The
    tiny weights' shapes are not the full-size ones the architecture describes: they count as uneven."""
    if spec.model_source == "tiny":
        return False
    arch, trimmed = architectures()[spec.model], bool(spec.effective("prompt_trim"))
    return all(
        splits_evenly(arch, clip.frames, clip.width, clip.height, num_gpus, trimmed) for clip in plan_clips(spec)
    )


def parallel_speedup(gpu: str, num_gpus: int) -> float:
    """How much faster the denoising runs on `num_gpus` of `gpu` than on one: N × the assumed efficiency over the
    GPU's interconnect (throughput.yaml `context_parallel`)."""
    efficiency = throughput().parallel_efficiency(gpu, num_gpus)
    if efficiency is None:
        interconnect = throughput().gpus[gpu].interconnect
        raise SpecError(
            f"infrastructure.num_gpus = {num_gpus}: jobspecs/throughput.yaml context_parallel has no efficiency for "
            f"{num_gpus} GPUs over {interconnect} ({gpu})"
        )
    return num_gpus * efficiency


def knob_speedup(spec: JobSpec, gpu: str, num_gpus: int = 1) -> float:
    """How much faster than stock diffusers the spec's knobs make a forward on `gpu` (throughput.yaml `knobs`; each
    only where the box turns it on): compile, prompt_trim, FlashAttention-4, then the 8-bit levers."""
    table, speedup = throughput(), 1.0
    knobs, card = table.knobs, table.gpus[gpu]
    if compile_runs(spec, num_gpus):
        speedup *= (card.compile_speedup or knobs.compile.speedup)[spec.model]
    if spec.effective("prompt_trim"):
        speedup *= knobs.prompt_trim.speedup[spec.model]
    if flash_attn_4_on(spec, gpu):
        speedup *= knobs.flash_attn_4.speedup[spec.model]
    if spec.effective("attention_backend") not in (None, "native"):
        speedup *= knobs.attention_backend.speedup
    return speedup * precision_speedup(spec, gpu)


def cache_hits(threshold: float) -> float:
    """The published share of the forwards after the first step that First Block Cache skips (throughput.yaml):
    not in a prediction (unmeasured on our models), only in the range the plan shows."""
    knob = throughput().knobs.first_block_cache
    return knob.hits_at_reference * min(threshold / knob.reference_threshold, 1.0) if threshold else 0.0


def predict_clip(
    spec: JobSpec,
    clip: ClipPlan,
    gpu: str,
    first_of_shape: bool = False,
    new_prompt: bool = False,
    published_hits: bool = False,
    num_gpus: int = 1,
) -> ClipPrediction:
    """Predicted seconds of one clip of `spec` on `gpu` ("cpu" for kenburns). With compile on, `first_of_shape`: the
    first clip of its shape, which pays for the compile; `new_prompt`: a later one whose prompt is new to that shape,
    which pays for a recompile where the prompt's length is an input shape (prompt_trim). First Block Cache gets no
    hit (none was measured on these models) unless `published_hits`: the published rate, for the plan's range. On
    `num_gpus` GPUs (context parallelism) the denoising alone is divided (parallel_speedup): every GPU prepares the
    clip and decodes it whole, and the compile is the same (or skipped: compile_runs)."""
    arch, table = architectures()[spec.model], throughput()
    cpu = table.cpu
    pixels = clip.width * clip.height / PIXELS_720P
    written, written_fps = spec.clip_frames_written(clip.frames)
    encode = written * cpu.encode_s_per_frame * pixels
    if arch.family == "cpu":
        render = clip.frames * cpu.kenburns_s_per_frame * pixels
        phases = {"render": render, "encode": encode}
        return ClipPrediction(clip.index, clip.frames, clip.width, clip.height, 0, 0.0, render + encode, phases)
    stock, peak = gpu_throughput(spec.model, gpu)
    knobs = table.knobs
    forward = clip_forward(arch, clip.frames, clip.width, clip.height)
    forward_s = forward.total / 1e12 / (stock * knob_speedup(spec, gpu, num_gpus))  # one computed forward
    steps = spec.effective("steps")
    per_step = 2 if spec.baseline.guidance_kind == "cfg" and spec.effective("guidance") > 1 else 1
    forwards = steps * per_step
    hits = cache_hits(spec.effective("first_block_cache")) * (steps - 1) * per_step if published_hits else 0.0
    if spec.effective("mag_cache"):  # its skips follow from the published calibration alone: known in advance
        hits = spec.baseline.mag_cache_calibration.skipped_steps(steps) * per_step
    flop = (forwards - hits) * forward.total + hits * forward.cached  # the work; a hit's time is measured apart
    # a hit's seconds over a computed forward's: First Block Cache's, measured; MagCache skips the first block too,
    # so its skips cost at most that (ASSUMED equal)
    cached_cost = knobs.first_block_cache.cached_cost[spec.model] if hits else 0.0
    reference = arch.reference
    slower = table.gpus[table.reference].peak_bf16_tflops / peak  # reference-GPU seconds → this GPU
    volume = clip.frames * clip.width * clip.height / (reference.frames * reference.width * reference.height)
    compile_s, compiled = 0.0, compile_runs(spec, num_gpus)
    if compiled and first_of_shape:
        compile_s = knobs.compile.warmup_s[spec.model]
    elif compiled and new_prompt and spec.effective("prompt_trim"):
        compile_s = knobs.compile.recompile_s[spec.model]
    phases = {
        "prep": reference.prep_s * slower,
        "denoise": ((forwards - hits) + hits * cached_cost) * forward_s / parallel_speedup(gpu, num_gpus),
        "decode": reference.decode_s * slower * volume,
        "interpolate": written * cpu.interpolate_s_per_frame * pixels if written_fps != clip.fps else 0.0,
        "encode": encode,
        "compile": compile_s,
    }
    return ClipPrediction(
        clip.index, clip.frames, clip.width, clip.height, forwards, flop / 1e12, sum(phases.values()), phases
    )


def predict_run(spec: JobSpec, gpu: str | None = None, num_gpus: int | None = None) -> RunPrediction:
    """Predicted seconds of every clip and of the run on `num_gpus` × `gpu` (default: infrastructure.gpu and
    num_gpus; kenburns: "cpu", 1). The model's load is the same on any number of GPUs (every GPU loads it at once)."""
    gpu, num_gpus = plan_gpu(spec, gpu), plan_num_gpus(spec, num_gpus)
    clips, with_hits, seen = [], [], set()
    for clip in plan_clips(spec):
        # a compiled model compiles once per clip shape; with prompt_trim the prompt's length is an input shape too
        # (the planner can't count tokens: a recompile is charged per prompt new to the shape)
        shape = (clip.frames, clip.width, clip.height)
        first, new_prompt = shape not in seen, (shape, clip.prompt) not in seen
        clips.append(predict_clip(spec, clip, gpu, first_of_shape=first, new_prompt=new_prompt, num_gpus=num_gpus))
        if spec.effective("first_block_cache"):  # the range: at the published hit rate
            with_hits.append(predict_clip(spec, clip, gpu, first, new_prompt, True, num_gpus).seconds)
        seen |= {shape, (shape, clip.prompt)}
    load_s = float(architectures()[spec.model].load_s)
    return RunPrediction(
        model=spec.model,
        profile=spec.generation.profile,
        gpu=gpu,
        clips=clips,
        load_s=load_s,
        total_s=load_s + sum(clip.seconds for clip in clips),
        clip_limit_s=spec.guardrails.clip_limit_s,
        run_limit_s=spec.run_limit_s,
        longest_with_published_hits_s=max(with_hits) if with_hits else None,
        num_gpus=num_gpus,
    )


def with_generation(spec: JobSpec, **settings) -> JobSpec:
    """`spec` with generation settings changed, for arithmetic only (not validated again)."""
    return spec.model_copy(update={"generation": spec.generation.model_copy(update=settings)})


def respec(spec: JobSpec, section: str, **settings) -> JobSpec | None:
    """`spec` with settings of one section changed, validated again (no `auto` resolved); None where the change
    makes it invalid."""
    data = spec.model_dump(mode="json")
    data[section].update(settings)
    try:
        return JobSpec.model_validate(data)
    except ValidationError:
        return None


def pick_profile(spec: JobSpec) -> JobSpec:
    """`generation.profile: auto` resolved: the first profile of PROFILE_ORDER the model has whose every clip the
    planner fits inside guardrails.clip_limit_s on infrastructure.gpu (× num_gpus; the last one when none fits:
    check_plan then refuses it, saying why). The spec's own generation overrides apply under each; a profile they
    make invalid (a cache on top of the cached profile's) is passed over. The returned spec names the profile
    picked; its `profile_choice` says why, with what the better profiles would have needed."""
    from jobspecs.load import validate  # load imports this module

    gpu, num_gpus = plan_gpu(spec), plan_num_gpus(spec)
    limit = spec.guardrails.clip_limit_s
    candidates = []  # baseline is always one: a spec with `auto` validated as the baseline (no profile settings)
    for name in PROFILE_ORDER:
        if name != "baseline" and name not in spec.baseline.profiles:
            continue
        data = spec.model_dump(mode="json")
        data["generation"]["profile"] = name
        try:
            candidates.append((name, validate(data, source=f"the spec with generation.profile {name}")))
        except SpecError:
            continue
    missed = []
    for name, picked in candidates:
        longest = predict_run(picked, gpu, num_gpus).longest.seconds
        if longest <= limit or name == candidates[-1][0]:
            break
        missed.append(f"{name} {longest:.0f} s")
    verdict = "inside" if longest <= limit else "over"
    why = f"; the better profiles' longest clips: {', '.join(missed)}" if missed else ""
    picked._profile_choice = (
        f"generation.profile auto → {name} on {device_name(gpu, num_gpus)}: longest clip predicted at {longest:.0f} s, "
        f"{verdict} the {limit:g} s clip limit{why}"
    )
    return picked


def what_fits(spec: JobSpec, gpu: str, num_gpus: int = 1) -> list[str]:
    """Settings under which every clip of `spec` is predicted inside its clip limit on `num_gpus` × `gpu` (the
    refusal's advice): a later profile, fewer steps, shorter sub-clips, more GPUs, another offer."""
    limit = spec.guardrails.clip_limit_s
    fits = []

    def longest(candidate: JobSpec) -> float:
        return predict_run(candidate, gpu, num_gpus).longest.seconds

    order = PROFILE_ORDER
    if spec.generation.profile in order:  # the profiles after this one, the first that fits
        for name in order[order.index(spec.generation.profile) + 1 :]:
            if name in spec.baseline.profiles and longest(other := with_generation(spec, profile=name)) <= limit:
                fits.append(f"--set generation.profile={name} (longest clip {longest(other):.0f} s)")
                break
    steps = spec.effective("steps")
    if steps:
        fitting = [n for n in range(steps - 1, 0, -1) if longest(with_generation(spec, steps=n)) <= limit]
        if fitting:
            fits.append(f"--set generation.steps={fitting[0]} (or fewer)")
    step = spec.baseline.frame_step
    for frames in range(spec.max_frames - step, step, -step):
        shorter = with_generation(spec, max_frames=frames)
        if longest(shorter) <= limit:
            fits.append(f"--set generation.max_frames={frames} (shorter sub-clips: {shorter.clip_count} in all)")
            break
    more = more_gpus_advice(spec, gpu, num_gpus)
    if more:
        fits.append(more)
    if spec.infrastructure.provider == "vast":
        other = other_offer_advice(spec)
        if other:
            fits.append(other)
    return fits


def more_gpus_advice(spec: JobSpec, gpu: str, num_gpus: int) -> str | None:
    """The fewest GPUs of `gpu` above `num_gpus` on which every clip fits (where the spec may run on that many)."""
    if gpu == "cpu":
        return None
    for count in (n for n in gpu_counts(spec.model) if n > num_gpus):
        candidate = respec(spec, "infrastructure", num_gpus=count)
        if candidate is None:
            continue
        longest = predict_run(candidate, gpu, count).longest.seconds
        if longest <= spec.guardrails.clip_limit_s:
            return f"--set infrastructure.num_gpus={count} (longest clip {longest:.0f} s on {count}× {gpu})"
    return None


def other_offer_advice(spec: JobSpec) -> str | None:
    """The cheapest offer shape on which every clip fits (offer_shapes, the price cap aside), as the settings that
    pick it."""
    candidate = respec(spec, "infrastructure", gpu="auto", num_gpus="auto", max_usd_per_hour=None)
    best = best_offer(candidate, offer_shapes(candidate)) if candidate else None
    if best is None:
        return None
    verdict, cap = best.verdict, spec.infrastructure.max_usd_per_hour
    flags = "--set infrastructure.gpu=auto"
    if "num_gpus" in spec.infrastructure.model_fields_set:
        flags += " --set infrastructure.num_gpus=auto"
    if cap and verdict.run_usd_per_hour > cap:
        flags += f" --set infrastructure.max_usd_per_hour={verdict.run_usd_per_hour:g}"
    return f"{flags} (the cheapest offer that fits: {offer_summary(verdict)})"


def plan_problems(spec: JobSpec, prediction: RunPrediction) -> list[str]:
    """What keeps the plan from fitting: a clip predicted over guardrails.clip_limit_s (with the settings that would
    fit), else the run over its run limit; [] when it fits."""
    problems = []
    limit = prediction.clip_limit_s
    over = [clip for clip in prediction.clips if clip.seconds > limit]
    if over:
        worst = max(over, key=lambda clip: clip.seconds)
        fits = what_fits(spec, prediction.gpu, prediction.num_gpus)
        advice = ("; it fits with " + " or ".join(fits)) if fits else "; no single setting makes it fit"
        problems.append(
            f"model {spec.model} (profile {prediction.profile}) on {prediction.device}: clip {worst.index} is "
            f"predicted at {worst.seconds:.0f} s ({worst.forwards} forwards, {worst.tflop:,.0f} TFLOP), above "
            f"guardrails.clip_limit_s = {limit:g} s ({len(over)} of {len(prediction.clips)} clips over){advice}"
        )
    elif prediction.total_s > prediction.run_limit_s:
        problems.append(
            f"model {spec.model} on {prediction.device}: the run is predicted at {prediction.total_s:.0f} s "
            f"(load {prediction.load_s:.0f} s + clips), above the run limit of {prediction.run_limit_s:g} s; "
            "raise guardrails.run_limit_s or plan fewer clips"
        )
    return problems


def plan_enforced(spec: JobSpec) -> bool:
    """Whether a plan that does not fit stops the run: not with guardrails.plan_check = warn, nor with tiny weights
    (the prediction is the full-size model's)."""
    return spec.model_source != "tiny" and spec.guardrails.plan_check != "warn"


PLANNER_ERROR = 0.12  # every whole clip measured against the planner is within 12 % of it (tests/test_planner.py)


def close_to_the_limit(prediction: RunPrediction) -> str | None:
    """A warning where the longest clip fits the clip limit by less than the planner's error: the clip may run past
    it and be killed (the finished clips are kept)."""
    longest, limit = prediction.longest, prediction.clip_limit_s
    if prediction.gpu == "cpu" or longest.seconds * (1 + PLANNER_ERROR) <= limit:
        return None
    return (
        f"clip {longest.index} is predicted at {longest.seconds:.0f} s on {prediction.device}, within the planner's "
        f"{PLANNER_ERROR:.0%} error of guardrails.clip_limit_s = {limit:g} s: it may run past the limit and be killed "
        "(finished clips are kept); a faster box or profile leaves room (`shootout plan --offers`)"
    )


def check_plan(spec: JobSpec, gpu: str | None = None, num_gpus: int | None = None) -> RunPrediction:
    """predict_run, refused with a SpecError when a clip is predicted over guardrails.clip_limit_s or the run over
    its run limit; with guardrails.plan_check = warn (or model_source tiny, where the prediction is the full-size
    model's) the problems come back in `warnings` instead."""
    prediction = predict_run(spec, gpu, num_gpus)
    problems = plan_problems(spec, prediction)
    if not problems:
        return replace(prediction, warnings=[close] if (close := close_to_the_limit(prediction)) else [])
    if plan_enforced(spec):
        raise SpecError("plan: " + "\n".join(problems) + " (or --set guardrails.plan_check=warn to run anyway)")
    if spec.model_source == "tiny":  # the prediction is the full-size model's; the tiny one takes seconds
        return replace(prediction, warnings=[p + " (model_source tiny: not enforced)" for p in problems])
    return replace(prediction, warnings=problems)


# --- offers: dollars per film, and `infrastructure.gpu` / `num_gpus: auto` ----------------------------------------


def download_seconds(model: str) -> float:
    """The model's weights from the Hub on a fresh box (architectures.yaml weights_gb at offers.yaml's rate)."""
    return (architectures()[model].weights_gb or 0.0) * 1000 / offer_snapshot().rental.download_mb_per_s


def rented_seconds(spec: JobSpec, prediction: RunPrediction) -> float:
    """What a fresh box is paid for: its setup, the model's download and the predicted run (offers.yaml `rental`)."""
    return offer_snapshot().rental.setup_s + download_seconds(spec.model) + prediction.total_s


def usd_per_film(spec: JobSpec, prediction: RunPrediction, offer: OfferShape) -> float:
    """The dollars a film costs on `offer` on demand: rented_seconds at its price."""
    return rented_seconds(spec, prediction) / 3600 * offer.usd_per_hour


class PreemptionEstimate(BaseModel):
    """What being outbid is expected to cost a run on an interruptible box (expected_preemption_s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_hour: float  # offers.yaml interruptible.preemptions_per_hour: ASSUMED, no measured or published rate
    expected: float  # the expected number of preemptions: per_hour × rented_s / 3600
    seconds_each: float  # the rented seconds one preemption adds: setup + download + load + half the longest clip
    extra_s: float  # the expected extra rented seconds: expected × seconds_each


def expected_preemption_s(
    spec: JobSpec, rented_s: float, prediction: RunPrediction | None = None
) -> PreemptionEstimate:
    """The expected preemptions of a run rented for `rented_s` seconds (rented_seconds: setup + download + run) on an
    interruptible box, and the rented seconds they add. After a preemption the flow rents again, sets the box up,
    downloads the weights again, loads the model and continues from the last finished clip; the clip in progress is
    lost, on average half of it. So:

        expected     = offers.yaml interruptible.preemptions_per_hour (ASSUMED) × rented_s / 3600
        seconds_each = offers.yaml rental.setup_s + download_seconds(model) + the prediction's load_s
                       + the longest clip's predicted seconds / 2
        extra_s      = expected × seconds_each

    First order: the extra seconds' own preemptions are not counted; a clip's compile warm-up (in its predicted
    seconds where it runs) is not charged again. `prediction`: the spec's (predict_run), predicted here where not
    given (the spec's box must then be named, not `auto`). Prefect-free: tasks/costs.py calls it too."""
    prediction = prediction if prediction is not None else predict_run(spec)
    per_hour = offer_snapshot().interruptible.preemptions_per_hour
    expected = per_hour * rented_s / 3600
    seconds_each = (
        offer_snapshot().rental.setup_s
        + download_seconds(spec.model)
        + prediction.load_s
        + prediction.longest.seconds / 2
    )
    return PreemptionEstimate(
        per_hour=per_hour, expected=expected, seconds_each=seconds_each, extra_s=expected * seconds_each
    )


def bid_usd_per_hour(spec: JobSpec, offer: OfferShape) -> float | None:
    """What the run bids for `offer` as an interruptible instance: its min_bid × infrastructure.bid_margin, at most
    infrastructure.max_usd_per_hour (rounded to 4 places, as provisioning/vast.py VastOffer.bid bids); None where the
    offer states no min_bid or its min_bid is above the cap (bid_problem says which)."""
    infra, min_bid = spec.infrastructure, offer.min_bid_usd_per_hour
    if min_bid is None or (infra.max_usd_per_hour is not None and min_bid > infra.max_usd_per_hour):
        return None
    bid = min_bid * infra.bid_margin
    return round(min(bid, infra.max_usd_per_hour) if infra.max_usd_per_hour is not None else bid, 4)


def bid_problem(spec: JobSpec, offer: OfferShape) -> str | None:
    """Why `offer` can't be rented as an interruptible instance (None: it can, bid_usd_per_hour)."""
    cap, min_bid = spec.infrastructure.max_usd_per_hour, offer.min_bid_usd_per_hour
    if min_bid is None:
        return f"no min_bid stated ({offer.source}): it can't be bid on"
    if cap is not None and min_bid > cap:
        return (
            f"its min_bid ${min_bid:.3f}/h is above infrastructure.max_usd_per_hour = {cap:g}: no bid at or under the "
            "cap rents it"
        )
    return None


def bid_text(spec: JobSpec, verdict: OfferVerdict) -> str:
    """How a verdict's bid is made: "min_bid $0.120 × bid_margin 1.25" (and the cap where it cuts the bid)."""
    infra, min_bid = spec.infrastructure, verdict.offer.min_bid_usd_per_hour
    text = f"min_bid ${min_bid:.3f} × bid_margin {infra.bid_margin:g}"
    if verdict.bid_usd_per_hour is not None and verdict.bid_usd_per_hour < round(min_bid * infra.bid_margin, 4):
        text += f", cut to infrastructure.max_usd_per_hour = {infra.max_usd_per_hour:g}"
    return text


def offer_matches(spec: JobSpec, offer: OfferShape) -> bool:
    """Whether `offer` is a shape the spec asks for: its GPU and count, each unless `auto`."""
    infra = spec.infrastructure
    return infra.gpu in ("auto", offer.gpu) and infra.num_gpus in ("auto", offer.num_gpus)


def fit_problem(prediction: RunPrediction) -> str | None:
    """Why a prediction does not fit the limits, in a few words (None: it fits)."""
    longest = prediction.longest.seconds
    if longest > prediction.clip_limit_s:
        return f"its longest clip at {longest:.0f} s > the {prediction.clip_limit_s:g} s clip limit"
    if prediction.total_s > prediction.run_limit_s:
        return f"its run at {prediction.total_s:,.0f} s > the {prediction.run_limit_s:g} s run limit"
    return None


@dataclass(frozen=True)
class JudgedOffer:
    verdict: OfferVerdict
    spec: JobSpec | None  # the spec on that offer, validated (its profile resolved there); None: refused on it


def judge_offer(spec: JobSpec, offer: OfferShape) -> JudgedOffer:
    """The spec on `offer`: validated with its GPU and count (a profile `auto` is resolved there), predicted at
    that, priced per film; refused (a row without a prediction) where the spec can't run on it."""
    from jobspecs.load import validate  # load imports this module

    infra = spec.infrastructure
    bid = bid_usd_per_hour(spec, offer)
    if infra.interruptible:  # the price the run pays is the bid, which is never above the cap
        within_cap = bid is not None
    else:
        within_cap = infra.max_usd_per_hour is None or offer.usd_per_hour <= infra.max_usd_per_hour
    priced = dict(
        offer=offer,
        within_cap=within_cap,
        interruptible=infra.interruptible,
        bid_usd_per_hour=bid,
        bid_problem=bid_problem(spec, offer),
    )
    data = spec.model_dump(mode="json")
    data["infrastructure"].update(gpu=offer.gpu, num_gpus=offer.num_gpus)
    try:
        candidate = validate(data, source=f"the spec on {offer.name}")
        prediction = predict_run(candidate)
    except SpecError as error:
        reason = "; ".join(line.removeprefix("(spec): ") for line in str(error).splitlines()[1:]) or str(error)
        return JudgedOffer(OfferVerdict(**priced, problem=reason), None)
    problem = fit_problem(prediction)
    rented = rented_seconds(candidate, prediction)
    preemption = expected_preemption_s(candidate, rented, prediction)
    verdict = OfferVerdict(
        **priced,
        profile=candidate.generation.profile,
        longest_clip_s=round(prediction.longest.seconds, 1),
        run_s=round(prediction.total_s, 1),
        rented_s=round(rented, 1),
        usd_per_film=round(usd_per_film(candidate, prediction, offer), 4),
        fits=problem is None,
        problem=problem,
        expected_preemptions=round(preemption.expected, 4),
        preemption_s=round(preemption.seconds_each, 1),
        usd_per_film_interruptible=(round((rented + preemption.extra_s) / 3600 * bid, 4) if bid is not None else None),
    )
    return JudgedOffer(verdict, candidate)


DISK_MARGIN_GB = 40  # the one-box night's disk beyond every model's weights: the venv, clips, bundles


@dataclass(frozen=True)
class NightBox:
    """The one box a night of several specs runs on (the overnight's one-box placement), and what it costs."""

    offer: OfferShape
    rented_s: float  # setup once + every model's download + every run, back to back
    usd: float  # rented_s at the offer's price
    disk_gb: float  # every model's weights and DISK_MARGIN_GB, at least each spec's own disk_gb
    choice: str  # what was picked, why, and the runner-up


def pick_night_box(specs: list[JobSpec], offers: list[OfferShape]) -> NightBox:
    """One box for every spec, run one after another: of the shapes every spec fits on (its clips in its clip
    limit, the box within its price cap, on demand; whatever box each spec picked or named for itself), the lowest
    dollars for the night, (setup once + each model's download + each run) / 3600 × $/h; ties go to fewer GPUs.
    SpecError names each spec's problem on the first shapes where none fits them all."""
    setup = offer_snapshot().rental.setup_s
    fitting, problems = [], {}
    for offer in offers:
        judged = [judge_offer(spec, offer) for spec in specs]
        bad = [
            f"{spec.model}: {j.verdict.problem or 'above its price cap'}"
            for spec, j in zip(specs, judged, strict=True)
            if not (j.verdict.fits and j.verdict.within_cap)
        ]
        if bad:
            problems[offer.name] = bad
            continue
        rented = setup + sum(download_seconds(s.model) + j.verdict.run_s for s, j in zip(specs, judged, strict=True))
        fitting.append((rented / 3600 * offer.usd_per_hour, offer.num_gpus, offer, rented))
    if not fitting:
        seen = "; ".join(f"{name}: {', '.join(why)}" for name, why in list(problems.items())[:4])
        raise SpecError(f"placement one-box: no offer shape fits every model of the night ({seen})")
    fitting.sort(key=lambda row: row[:2])
    usd, _, offer, rented = fitting[0]
    weights = sum(architectures()[spec.model].weights_gb or 0.0 for spec in specs)
    disk = max([weights + DISK_MARGIN_GB, *(spec.infrastructure.disk_gb for spec in specs)])
    runner_up = f"; next: {fitting[1][2].name} at ${fitting[1][0]:.2f}" if len(fitting) > 1 else ""
    choice = (
        f"one box for {len(specs)} models: {offer.name} at ${offer.usd_per_hour:.2f}/h ({offer.source}), "
        f"${usd:.2f} for the night ({setup:.0f} s setup once + the downloads and runs, {rented:,.0f} s), "
        f"{disk:.0f} GB of disk; the lowest of the {len(fitting)} shapes that fit every model{runner_up}"
    )
    return NightBox(offer, round(rented, 1), round(usd, 4), round(disk), choice)


class NightPlacements(BaseModel):
    """What a night of specs is predicted to cost in each placement, on the same prices (None: it can't run so)."""

    model_config = ConfigDict(frozen=True)

    parallel_usd: float | None  # each spec on its own box (the one it picks or names), each paying its own setup
    one_box_usd: float | None  # every spec on the one box pick_night_box picks: one setup, one box's hours
    one_box: str | None  # pick_night_box's choice, or why no box fits them all


def night_placements(specs: list[JobSpec], offers: list[OfferShape]) -> NightPlacements:
    """The planner's dollars for a night in both placements (the overnight logs them and the report shows them):
    `parallel` the sum of each spec's chosen box's $/film (the price it pays: the bid where interruptible),
    `one-box` pick_night_box's night."""
    chosen = [next((row for row in offer_rows(spec, lambda _: offers) if row.chosen), None) for spec in specs]
    each = [row.run_usd_per_film if row is not None else None for row in chosen]
    parallel = round(sum(each), 2) if None not in each else None
    try:
        night_box = pick_night_box(specs, offers)
    except SpecError as error:
        return NightPlacements(parallel_usd=parallel, one_box_usd=None, one_box=str(error))
    return NightPlacements(parallel_usd=parallel, one_box_usd=round(night_box.usd, 2), one_box=night_box.choice)


def judge_offers(spec: JobSpec, offers: list[OfferShape]) -> list[JudgedOffer]:
    """Every shape of `offers` the spec asks for, judged (judge_offer), in their order."""
    return [judge_offer(spec, offer) for offer in offers if offer_matches(spec, offer)]


def offer_rank(judged: JudgedOffer) -> tuple:
    """The order offers are picked in: the better profile first (where `auto` picks one per offer), then the lower
    dollars per film, then fewer GPUs, then the lower price; the prices the run pays (OfferVerdict.run_usd_per_film:
    on demand, or at the bid with infrastructure.interruptible; no bid ranks last)."""
    verdict = judged.verdict
    return (
        PROFILE_ORDER.index(verdict.profile),
        math.inf if verdict.run_usd_per_film is None else verdict.run_usd_per_film,
        verdict.offer.num_gpus,
        math.inf if verdict.run_usd_per_hour is None else verdict.run_usd_per_hour,
        verdict.offer.gpu,
    )


def choose_offer(judged: list[JudgedOffer], enforced: bool = True, smoke: bool = False) -> JudgedOffer | None:
    """The offer to run on: the first by offer_rank of those that fit within the price cap; where none fits and the
    plan is not enforced (plan_check warn, tiny weights), the fastest within the cap; else None. `smoke` (the tiny
    weights: a smoke test of a box, whose clips take seconds): the cheapest per hour within the cap. The prices are
    the ones the run pays: on demand, or the bid (infrastructure.interruptible)."""
    priced = [offer for offer in judged if offer.spec is not None and offer.verdict.within_cap]
    if smoke and priced:
        return min(priced, key=lambda offer: (offer.verdict.run_usd_per_hour, offer.verdict.offer.num_gpus))
    fitting = [offer for offer in priced if offer.verdict.fits]
    if fitting:
        return min(fitting, key=offer_rank)
    if priced and not enforced:
        return min(priced, key=lambda offer: (offer.verdict.longest_clip_s, offer.verdict.run_usd_per_film))
    return None


def best_offer(spec: JobSpec, offers: list[OfferShape]) -> JudgedOffer | None:
    """The cheapest matching offer on which the spec fits within its price cap (None: none)."""
    return choose_offer(judge_offers(spec, offers))


def marked(judged: list[JudgedOffer], chosen: JudgedOffer | None) -> list[OfferVerdict]:
    return [offer.verdict.model_copy(update={"chosen": offer is chosen}) for offer in judged]


def offer_summary(verdict: OfferVerdict) -> str:
    """An offer at the price the run pays: "1× RTX 4090 at $0.24/h, $0.28 per film, longest clip 290 s" (on demand),
    "1× RTX 4090 interruptible at a bid of $0.150/h, $0.19 per film, …"."""
    if verdict.interruptible and verdict.bid_usd_per_hour is not None:
        price = (
            f"interruptible at a bid of ${verdict.bid_usd_per_hour:.3f}/h, ${verdict.usd_per_film_interruptible:.2f} "
            "per film"
        )
    else:
        price = f"at ${verdict.offer.usd_per_hour:.2f}/h, ${verdict.usd_per_film:.2f} per film"
    return f"{verdict.offer.name} {price}, longest clip {verdict.longest_clip_s:.0f} s"


def auto_fields(spec: JobSpec) -> str:
    infra = spec.infrastructure
    return f"infrastructure.gpu = {infra.gpu!r}, num_gpus = {infra.num_gpus!r}"


@dataclass(frozen=True)
class OfferChoice:
    spec: JobSpec  # the spec resolved: the offer's GPU and count named (and a profile `auto` resolved there)
    offer: OfferVerdict  # the offer picked, priced
    verdicts: list[OfferVerdict]  # every offer shape the spec asked for, the one picked marked
    text: str  # what was picked, from which prices, at what dollars per film (the spec's offer_choice)


def pick_offer(spec: JobSpec, offers: list[OfferShape]) -> OfferChoice:
    """`infrastructure.gpu` / `num_gpus: auto` resolved: of the shapes of `offers` the spec asks for (its GPU and
    count unless `auto`), the one whose predicted run has every clip inside guardrails.clip_limit_s and the run
    inside its run limit, within infrastructure.max_usd_per_hour, at the lowest dollars per film (ties: fewer GPUs).
    With `generation.profile: auto` the profile is picked on each offer (pick_profile) and the better profile comes
    first, then the price. A SpecError says what the cheapest fitting box would need where none fits."""
    judged = judge_offers(spec, offers)
    if not judged:
        shapes = ", ".join(dict.fromkeys(offer.name for offer in offers)) or "none"
        sources = ", ".join(sorted({offer.source for offer in offers})) or "no source"
        raise SpecError(f"{auto_fields(spec)}: no offer shape matches ({sources}: {shapes})")
    chosen = choose_offer(judged, plan_enforced(spec), smoke=spec.model_source == "tiny")
    if chosen is None:
        raise SpecError(no_offer_fits(spec, judged, offers))
    verdicts = marked(judged, chosen)
    text = offer_choice_text(spec, chosen, judged)
    picked = chosen.spec
    picked._offer_choice = text
    picked._offer_verdicts = tuple(verdicts)
    return OfferChoice(picked, next(v for v in verdicts if v.chosen), verdicts, text)


def offer_choice_text(spec: JobSpec, chosen: JudgedOffer, judged: list[JudgedOffer]) -> str:
    verdict = chosen.verdict
    setup = offer_snapshot().rental.setup_s
    seconds = f"{setup:.0f} s setup + {download_seconds(spec.model):.0f} s download + {verdict.run_s:,.0f} s run"
    if verdict.interruptible:
        text = (
            f"{auto_fields(spec)} → {verdict.offer.name} interruptible at a bid of ${verdict.bid_usd_per_hour:.3f}/h "
            f"({bid_text(spec, verdict)}; {verdict.offer.source}): ${verdict.usd_per_film_interruptible:.2f} per film "
            f"({seconds} + {verdict.expected_preemptions:.2f} expected preemptions × {verdict.preemption_s:.0f} s), "
            f"longest clip {verdict.longest_clip_s:.0f} s"
        )
    else:
        text = (
            f"{auto_fields(spec)} → {verdict.offer.name} at ${verdict.offer.usd_per_hour:.2f}/h on demand "
            f"({verdict.offer.source}): ${verdict.usd_per_film:.2f} per film ({seconds}), longest clip "
            f"{verdict.longest_clip_s:.0f} s"
        )
    fitting = sorted(
        (offer for offer in judged if offer.spec is not None and offer.verdict.within_cap and offer.verdict.fits),
        key=offer_rank,
    )
    if not verdict.fits:
        return text + (
            f"; none of the {len(judged)} matching offers fits within the cap: the fastest, as the plan is not "
            "enforced (guardrails.plan_check warn or tiny weights)"
        )
    price = "the lowest " + ("interruptible $/film (at the bid)" if verdict.interruptible else "on-demand $/film")
    order = f"the best profile first, then {price}" if spec.generation.profile == "auto" else price
    text += f"; {order} of the {len(fitting)} offers that fit (of {len(judged)} matching)"
    if len(fitting) > 1:
        text += f"; next: {offer_summary(fitting[1].verdict)}"
    return text


def no_offer_fits(spec: JobSpec, judged: list[JudgedOffer], offers: list[OfferShape]) -> str:
    """Why no matching offer is picked, and what would fit: the price the cheapest fitting box asks, else how far the
    fastest is, and the settings that would fit on an offer."""
    cap = spec.infrastructure.max_usd_per_hour
    head = (
        f"{auto_fields(spec)}: no offer fits model {spec.model} (profile {spec.generation.profile}) inside "
        f"guardrails.clip_limit_s = {spec.guardrails.clip_limit_s:g} s and the run limit of {spec.run_limit_s:g} s"
        + (f" within infrastructure.max_usd_per_hour = {cap:g}" if cap else "")
    )
    predicted = [offer for offer in judged if offer.spec is not None]
    if not predicted:
        reasons = "; ".join(f"{offer.verdict.offer.name}: {offer.verdict.problem}" for offer in judged[:3])
        return f"{head}: the spec is refused on every matching offer ({reasons})"
    fitting = [offer for offer in predicted if offer.verdict.fits]
    if fitting and spec.infrastructure.interruptible:  # only above the cap, or nothing to bid on
        uncapped = respec(spec, "infrastructure", max_usd_per_hour=None)
        best = best_offer(uncapped, offers) if uncapped else None
        if best is None:
            return f"{head}: no offer that fits can be bid on ({fitting[0].verdict.bid_problem}); --set " + (
                "infrastructure.interruptible=false to rent on demand"
            )
        verdict = best.verdict
        return (
            f"{head}: the cheapest that fits, {offer_summary(verdict)} ({bid_text(spec, verdict)}), bids more than "
            f"the cap; --set infrastructure.max_usd_per_hour={verdict.bid_usd_per_hour:g} (or remove the cap)"
        )
    if fitting:  # only above the cap
        best = min(fitting, key=offer_rank).verdict
        return (
            f"{head}: the cheapest that fits, {offer_summary(best)}, asks more than the cap; --set "
            f"infrastructure.max_usd_per_hour={best.offer.usd_per_hour:g} (or remove the cap)"
        )
    within = [offer for offer in predicted if offer.verdict.within_cap]
    fastest = min(within or predicted, key=lambda offer: offer.verdict.longest_clip_s).verdict
    where = " within the cap" if within and cap else ""
    refused = [offer.verdict for offer in judged if offer.spec is None]
    why = f" (refused on {len(refused)} more: {refused[0].problem})" if refused else ""
    advice = offer_alternatives(spec, offers)
    tail = ("; it fits with " + " or ".join(advice)) if advice else "; no setting tried (profile, offer) fits"
    return (
        f"{head}: the fastest{where}, {fastest.offer.name} (profile {fastest.profile}), has {fastest.problem}{why}"
        f"{tail}"
    )


def offer_alternatives(spec: JobSpec, offers: list[OfferShape]) -> list[str]:
    """Settings under which an offer of `offers` fits: a later profile, any GPU and count."""
    advice = []
    order = PROFILE_ORDER
    if spec.generation.profile in order:
        for name in order[order.index(spec.generation.profile) + 1 :]:
            candidate = respec(spec, "generation", profile=name) if name in spec.baseline.profiles else None
            best = best_offer(candidate, offers) if candidate else None
            if best:
                advice.append(f"--set generation.profile={name} ({offer_summary(best.verdict)})")
                break
    if spec.infrastructure.gpu != "auto" or spec.infrastructure.num_gpus != "auto":
        candidate = respec(spec, "infrastructure", gpu="auto", num_gpus="auto")
        best = best_offer(candidate, offers) if candidate else None
        if best:
            flags = "--set infrastructure.gpu=auto --set infrastructure.num_gpus=auto"
            advice.append(f"{flags} ({offer_summary(best.verdict)})")
    return advice


def offer_rows(spec: JobSpec, source: OfferSource = offer_shapes) -> list[OfferVerdict]:
    """The offer table of `spec`: the shapes its `auto` was picked from; for a spec that names its offer and rents
    it (provider vast), the matching shapes of offer_shapes, priced, the cheapest that fits marked (else the
    fastest); [] where nothing is rented."""
    if spec.offer_verdicts is not None:
        return list(spec.offer_verdicts)
    if spec.infrastructure.provider != "vast":
        return []
    judged = judge_offers(spec, source(spec))
    return marked(judged, choose_offer(judged, enforced=False))


def offers_table(rows: list[OfferVerdict]) -> str:
    """The offer shapes as text (`shootout plan --offers`): where the prices are from, each shape's prediction and
    dollars per film, the one picked marked."""
    if not rows:
        return "offers: none (nothing is rented: infrastructure.provider is not vast)"
    sources = sorted({row.offer.source for row in rows})
    lines = [f"offers from {', '.join(sources)}:"]
    if snapshot_source() in sources:
        lines.append(f"  (not live prices: {offer_snapshot().source})")
    if rows[0].interruptible:
        lines.append("  (infrastructure.interruptible = true: the run bids, and the offer is picked by bid $/film)")
    lines.append(
        f"  {'gpu':<12} {'GPUs':>4} {'$/h':>6} {'longest s':>9} {'run s':>7} {'fits':>4} {'$/film':>7} {'bid $/h':>7} "
        f"{'bid $/film':>10}  note"
    )
    for row in rows:
        offer = row.offer
        bid = f"{row.bid_usd_per_hour:>7.3f}" if row.bid_usd_per_hour is not None else f"{'-':>7}"
        if row.profile is None:
            cells = f"{'-':>9} {'-':>7} {'no':>4} {'-':>7} {bid} {'-':>10}  refused: {row.problem}"
        else:
            notes = [f"profile {row.profile}"]
            if row.interruptible and row.bid_problem:  # in full in --json's bid_problem
                no_min_bid = row.offer.min_bid_usd_per_hour is None
                notes += [
                    "no bid: " + ("no min_bid" if no_min_bid else "min_bid above infrastructure.max_usd_per_hour")
                ]
            elif not row.within_cap:
                notes += ["above infrastructure.max_usd_per_hour"]
            notes += [row.problem] if row.problem else []
            notes += ["← chosen"] if row.chosen else []
            fits = "yes" if row.fits else "no"
            film = row.usd_per_film_interruptible
            bid_film = f"{film:>10.2f}" if film is not None else f"{'-':>10}"
            cells = (
                f"{row.longest_clip_s:>9.0f} {row.run_s:>7.0f} {fits:>4} {row.usd_per_film:>7.2f} {bid} {bid_film}  "
                f"{'; '.join(notes)}"
            )
        lines.append(f"  {offer.gpu:<12} {offer.num_gpus:>4} {offer.usd_per_hour:>6.2f} {cells}")
    snapshot = offer_snapshot()
    rental = snapshot.rental
    lines.append(
        f"$/film = (setup {rental.setup_s:.0f} s + the weights at {rental.download_mb_per_s:g} MB/s + the run) / 3600 "
        "× $/h on demand (jobspecs/offers.yaml `rental`)"
    )
    lines.append(
        "bid $/h = min_bid × infrastructure.bid_margin, at most max_usd_per_hour (an interruptible box); bid $/film = "
        "the same seconds\n  + the expected preemptions (rented s / 3600 × "
        f"{snapshot.interruptible.preemptions_per_hour:g} an hour, ASSUMED) × (setup + download + load + half the "
        "longest clip), at the bid\n  (jobspecs/offers.yaml `interruptible`)"
    )
    return "\n".join(lines)


def offer_line(rows: list[OfferVerdict]) -> str | None:
    """The offer picked, on one line (`shootout plan` without --offers), and which price it is at: the offer's
    on-demand ask or the bid, from the dated snapshot or live offers; None where none is."""
    chosen = next((row for row in rows if row.chosen), None)
    if chosen is None:
        return None
    source = chosen.offer.source
    where = f"{source}, not live" if source == snapshot_source() else source
    if chosen.interruptible and chosen.bid_usd_per_hour is not None:
        price = f"the bid, from the min_bid in the {where}"
    else:
        price = f"the offer's on-demand ask in the {where}"
    return f"offer: {offer_summary(chosen)} (price: {price}; --offers for the table)"


def cost_line(spec: JobSpec, rows: list[OfferVerdict]) -> str | None:
    """The chosen offer's dollars per film on demand (at its ask) against interruptible (at the bid), where the
    prices are from (the dated snapshot or live offers) and which price the run pays (`shootout plan`); None where no
    offer is chosen."""
    chosen = next((row for row in rows if row.chosen and row.usd_per_film is not None), None)
    if chosen is None:
        return None
    per_hour = offer_snapshot().interruptible.preemptions_per_hour
    on_demand = f"${chosen.usd_per_film:.2f} per film on demand (the ask, ${chosen.offer.usd_per_hour:.2f}/h)"
    if chosen.bid_usd_per_hour is None:
        interruptible = f"interruptible: none, {chosen.bid_problem}"
    else:
        interruptible = (
            f"${chosen.usd_per_film_interruptible:.2f} interruptible (bid ${chosen.bid_usd_per_hour:.3f}/h = "
            f"{bid_text(spec, chosen)}; {chosen.expected_preemptions:.2f} preemptions expected at {per_hour:g}/h, "
            f"ASSUMED, +{chosen.preemption_s:.0f} s rented each)"
        )
    if chosen.interruptible and chosen.bid_usd_per_hour is not None:
        pays = f"this run rents interruptible and pays the bid, ${chosen.bid_usd_per_hour:.3f}/h"
    else:
        pays = f"this run rents on demand and pays the offer's ask, ${chosen.offer.usd_per_hour:.2f}/h"
    flag = f"infrastructure.interruptible = {str(chosen.interruptible).lower()}"
    source = chosen.offer.source
    prices = f"{source}, not live" if source == snapshot_source() else source
    return f"cost on {chosen.offer.name} (prices: {prices}): {on_demand}; {interruptible}; {pays} ({flag})"


class PlannedClip(BaseModel):
    index: int
    frames: int  # generated frames
    predicted_s: float


class PlanReport(BaseModel):
    """`shootout plan SPEC --json`: the planner's verdict for scripts (and the offer optimizer): whether every clip
    fits the clip limit and the run its run limit on `num_gpus` × `gpu` at `profile`, and what it costs: at the
    price cap, and per film on the offer it runs on."""

    model: str
    gpu: str  # "cpu" for kenburns
    num_gpus: int  # the GPUs every clip runs on (context parallelism; 1 for kenburns)
    profile: str
    fits: bool
    problems: list[str]  # why it does not fit ([] when it does)
    clip_limit_s: float
    run_limit_s: float
    load_s: float
    total_s: float  # load + every clip
    usd_per_hour: float | None  # infrastructure.max_usd_per_hour (None: no price to estimate with)
    usd_estimate: float | None  # total_s at usd_per_hour: GPU time only, no provisioning or transfers
    clips: list[PlannedClip]
    profile_choice: str | None = None  # what `generation.profile: auto` picked and why
    # First Block Cache on: the longest clip at its published hit rate (the prediction above credits no hit)
    longest_with_published_cache_hits_s: float | None = None
    offer: OfferVerdict | None = None  # the offer it runs on (provider vast), priced: usd_per_film
    offer_choice: str | None = None  # what `infrastructure.gpu` / `num_gpus: auto` picked and why
    offers: list[OfferVerdict] | None = None  # with --offers: every offer shape judged, the chosen one marked


def plan_report(spec: JobSpec, with_offers: bool = False, source: OfferSource = offer_shapes) -> PlanReport:
    prediction = predict_run(spec)
    with_hits = prediction.longest_with_published_hits_s
    problems = plan_problems(spec, prediction)
    price = spec.infrastructure.max_usd_per_hour
    rows = offer_rows(spec, source)
    return PlanReport(
        model=prediction.model,
        gpu=prediction.gpu,
        num_gpus=prediction.num_gpus,
        profile=prediction.profile,
        fits=not problems,
        problems=problems,
        clip_limit_s=prediction.clip_limit_s,
        run_limit_s=prediction.run_limit_s,
        load_s=round(prediction.load_s, 1),
        total_s=round(prediction.total_s, 1),
        usd_per_hour=price,
        usd_estimate=round(prediction.estimate_usd(price), 4) if price else None,
        clips=[PlannedClip(index=c.index, frames=c.frames, predicted_s=round(c.seconds, 1)) for c in prediction.clips],
        profile_choice=spec.profile_choice,
        longest_with_published_cache_hits_s=round(with_hits, 1) if with_hits is not None else None,
        offer=next((row for row in rows if row.chosen), None),
        offer_choice=spec.offer_choice,
        offers=rows if with_offers else None,
    )


def prediction_table(prediction: RunPrediction, usd_per_hour: float | None = None) -> str:
    """Per-clip predictions and the totals, as text (what `shootout plan` prints after the clip table); with
    `usd_per_hour`, the spec's cap (infrastructure.max_usd_per_hour), the GPU time's estimate at it."""
    rows = [f"predicted on {prediction.device} (model {prediction.model}, profile {prediction.profile}):"]
    rows.append(f"{'clip':>4} {'forwards':>8} {'TFLOP':>9} {'seconds':>8}  phases (s)")
    for clip in prediction.clips:
        phases = ", ".join(f"{name} {s:.0f}" for name, s in clip.phases.items() if s >= 0.5)
        flag = "  OVER the clip limit" if clip.seconds > prediction.clip_limit_s else ""
        rows.append(f"{clip.index:>4} {clip.forwards:>8} {clip.tflop:>9,.0f} {clip.seconds:>8.0f}  {phases}{flag}")
    longest = prediction.longest
    rows.append(
        f"longest clip {longest.seconds:.0f} s (limit {prediction.clip_limit_s:g} s); run {prediction.total_s:.0f} s "
        f"= {prediction.total_s / 3600:.2f} h incl. {prediction.load_s:.0f} s load (limit {prediction.run_limit_s:g} s)"
    )
    if usd_per_hour:
        rows.append(
            f"estimate: ${prediction.estimate_usd(usd_per_hour):.2f} of GPU time at ${usd_per_hour:g}/h, the spec's "
            "cap (infrastructure.max_usd_per_hour: the most a box may cost, not an offer's price; provisioning and "
            "transfers not included)"
        )
    if prediction.longest_with_published_hits_s is not None:
        knob = throughput().knobs.first_block_cache
        rows.append(
            f"First Block Cache: no hit credited (none measured on these models); at the published rate "
            f"({knob.hits_at_reference:.0%} of forwards at threshold {knob.reference_threshold:g}) the longest clip "
            f"would take {prediction.longest_with_published_hits_s:.0f} s"
        )
    rows.extend(f"WARNING {warning}" for warning in prediction.warnings)
    return "\n".join(rows)
