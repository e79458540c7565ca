"""Shots → clips (frame counts on the model's rule, chained sub-clips, seeds, prompts), and the planner: the
predicted seconds of every clip on the target GPU, checked against the clip limit before anything is rented.

The prediction: transformer FLOPs per forward from the model's architecture (jobspecs/flops.py,
architectures.yaml) / the GPU's throughput (peak × stock efficiency × the knobs' speed-ups, compile and the rest
measured on an H100, the 8-bit levers by Amdahl's law on attention's share of the time: throughput.yaml) ×
forwards per clip (steps, CFG; MagCache's skips, known from its calibration, at a cached forward's measured cost;
no First Block Cache hit), plus the compile, the clip's preparation and VAE decode (measured on the reference GPU,
scaled by peak and clip size), frame interpolation and the encode on the CPU. Every assumption is written next to
its number in those files. `generation.profile: auto` is resolved here too (pick_profile).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from pydantic import BaseModel

from jobspecs.config import architectures, throughput
from jobspecs.flops import clip_forward
from jobspecs.schema import PROFILE_ORDER, Constants, JobSpec, Shot, SpecError, total_seconds

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

    @property
    def longest(self) -> ClipPrediction:
        return max(self.clips, key=lambda clip: clip.seconds)

    def estimate_usd(self, usd_per_hour: float) -> float:
        """The run's GPU time at `usd_per_hour` (provisioning and transfers not included)."""
        return self.total_s / 3600 * usd_per_hour


def plan_gpu(spec: JobSpec, gpu: str | None = None) -> str:
    """The device a plan is predicted for: kenburns renders on the CPU wherever it runs; the diffusers models on
    `gpu`, else infrastructure.gpu."""
    if architectures()[spec.model].family == "cpu":
        return "cpu"
    return gpu or spec.infrastructure.gpu


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


def knob_speedup(spec: JobSpec, gpu: str) -> float:
    """How much faster than stock diffusers the spec's knobs make a forward on `gpu` (throughput.yaml `knobs`; each
    only where the box turns it on): compile, prompt_trim, FlashAttention-4, then the 8-bit levers."""
    table, speedup = throughput(), 1.0
    knobs, card = table.knobs, table.gpus[gpu]
    if spec.effective("compile"):
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
) -> ClipPrediction:
    """Predicted seconds of one clip of `spec` on `gpu` ("cpu" for kenburns). With compile on, `first_of_shape`: the
    first clip of its shape, which pays for the compile; `new_prompt`: a later one whose prompt is new to that shape,
    which pays for a recompile where the prompt's length is an input shape (prompt_trim). First Block Cache gets no
    hit (none was measured on these models) unless `published_hits`: the published rate, for the plan's range."""
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
    forward_s = forward.total / 1e12 / (stock * knob_speedup(spec, gpu))  # one computed forward
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
    compile_s = 0.0
    if spec.effective("compile") and first_of_shape:
        compile_s = knobs.compile.warmup_s[spec.model]
    elif spec.effective("compile") and new_prompt and spec.effective("prompt_trim"):
        compile_s = knobs.compile.recompile_s[spec.model]
    phases = {
        "prep": reference.prep_s * slower,
        "denoise": ((forwards - hits) + hits * cached_cost) * forward_s,
        "decode": reference.decode_s * slower * volume,
        "interpolate": written * cpu.interpolate_s_per_frame * pixels if written_fps != clip.fps else 0.0,
        "encode": encode,
        "compile": compile_s,
    }
    return ClipPrediction(
        clip.index, clip.frames, clip.width, clip.height, forwards, flop / 1e12, sum(phases.values()), phases
    )


def predict_run(spec: JobSpec, gpu: str | None = None) -> RunPrediction:
    """Predicted seconds of every clip and of the run on `gpu` (default: infrastructure.gpu; kenburns: "cpu")."""
    gpu = plan_gpu(spec, gpu)
    clips, with_hits, seen = [], [], set()
    for clip in plan_clips(spec):
        # a compiled model compiles once per clip shape; with prompt_trim the prompt's length is an input shape too
        # (the planner can't count tokens: a recompile is charged per prompt new to the shape)
        shape = (clip.frames, clip.width, clip.height)
        first, new_prompt = shape not in seen, (shape, clip.prompt) not in seen
        clips.append(predict_clip(spec, clip, gpu, first_of_shape=first, new_prompt=new_prompt))
        if spec.effective("first_block_cache"):  # the range: at the published hit rate
            with_hits.append(predict_clip(spec, clip, gpu, first, new_prompt, published_hits=True).seconds)
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
    )


def with_generation(spec: JobSpec, **settings) -> JobSpec:
    """`spec` with generation settings changed, for arithmetic only (not validated again)."""
    return spec.model_copy(update={"generation": spec.generation.model_copy(update=settings)})


def pick_profile(spec: JobSpec) -> JobSpec:
    """`generation.profile: auto` resolved: the first profile of PROFILE_ORDER the model has whose every clip the
    planner fits inside guardrails.clip_limit_s on infrastructure.gpu (the last one when none fits: check_plan then
    refuses it, saying why). The spec's own generation overrides apply under each; a profile they make invalid
    (a cache on top of the cached profile's) is passed over. The returned spec names the profile picked; its
    `profile_choice` says why, with what the better profiles would have needed."""
    from jobspecs.load import validate  # load imports this module

    gpu = plan_gpu(spec)
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
        longest = predict_run(picked, gpu).longest.seconds
        if longest <= limit or name == candidates[-1][0]:
            break
        missed.append(f"{name} {longest:.0f} s")
    verdict = "inside" if longest <= limit else "over"
    why = f"; the better profiles' longest clips: {', '.join(missed)}" if missed else ""
    picked._profile_choice = (
        f"generation.profile auto → {name} on {gpu}: longest clip predicted at {longest:.0f} s, {verdict} the "
        f"{limit:g} s clip limit{why}"
    )
    return picked


def what_fits(spec: JobSpec, gpu: str) -> list[str]:
    """Settings under which every clip of `spec` is predicted inside its clip limit (the refusal's advice)."""
    limit = spec.guardrails.clip_limit_s
    fits = []

    def longest(candidate: JobSpec) -> float:
        return predict_run(candidate, gpu).longest.seconds

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
    return fits


def plan_problems(spec: JobSpec, prediction: RunPrediction) -> list[str]:
    """What keeps the plan from fitting: a clip predicted over guardrails.clip_limit_s (with the settings that would
    fit), else the run over its run limit; [] when it fits."""
    problems = []
    limit = prediction.clip_limit_s
    over = [clip for clip in prediction.clips if clip.seconds > limit]
    if over:
        worst = max(over, key=lambda clip: clip.seconds)
        fits = what_fits(spec, prediction.gpu)
        advice = ("; it fits with " + " or ".join(fits)) if fits else "; no single setting makes it fit"
        problems.append(
            f"model {spec.model} (profile {prediction.profile}) on {prediction.gpu}: clip {worst.index} is predicted "
            f"at {worst.seconds:.0f} s ({worst.forwards} forwards, {worst.tflop:,.0f} TFLOP), above "
            f"guardrails.clip_limit_s = {limit:g} s ({len(over)} of {len(prediction.clips)} clips over){advice}"
        )
    elif prediction.total_s > prediction.run_limit_s:
        problems.append(
            f"model {spec.model} on {prediction.gpu}: the run is predicted at {prediction.total_s:.0f} s "
            f"(load {prediction.load_s:.0f} s + clips), above the run limit of {prediction.run_limit_s:g} s; "
            "raise guardrails.run_limit_s or plan fewer clips"
        )
    return problems


def plan_enforced(spec: JobSpec) -> bool:
    """Whether a plan that does not fit stops the run: not with guardrails.plan_check = warn, nor with tiny weights
    (the prediction is the full-size model's)."""
    return spec.model_source != "tiny" and spec.guardrails.plan_check != "warn"


def check_plan(spec: JobSpec, gpu: str | None = None) -> RunPrediction:
    """predict_run, refused with a SpecError when a clip is predicted over guardrails.clip_limit_s or the run over
    its run limit; with guardrails.plan_check = warn (or model_source tiny, where the prediction is the full-size
    model's) the problems come back in `warnings` instead."""
    prediction = predict_run(spec, gpu)
    problems = plan_problems(spec, prediction)
    if not problems:
        return prediction
    if plan_enforced(spec):
        raise SpecError("plan: " + "\n".join(problems) + " (or --set guardrails.plan_check=warn to run anyway)")
    if spec.model_source == "tiny":  # the prediction is the full-size model's; the tiny one takes seconds
        return replace(prediction, warnings=[p + " (model_source tiny: not enforced)" for p in problems])
    return replace(prediction, warnings=problems)


class PlannedClip(BaseModel):
    index: int
    frames: int  # generated frames
    predicted_s: float


class PlanReport(BaseModel):
    """`shootout plan SPEC --json`: the planner's verdict for scripts (and the offer optimizer): whether every clip
    fits the clip limit and the run its run limit on `gpu` at `profile`, and what it costs at the price cap."""

    model: str
    gpu: str  # "cpu" for kenburns
    num_gpus: int  # the GPUs one clip runs on (1: every model runs on one GPU today)
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


def plan_report(spec: JobSpec) -> PlanReport:
    prediction = predict_run(spec)
    with_hits = prediction.longest_with_published_hits_s
    problems = plan_problems(spec, prediction)
    price = spec.infrastructure.max_usd_per_hour
    return PlanReport(
        model=prediction.model,
        gpu=prediction.gpu,
        num_gpus=1,
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
    )


def prediction_table(prediction: RunPrediction, usd_per_hour: float | None = None) -> str:
    """Per-clip predictions and the totals, as text (what `shootout plan` prints after the clip table)."""
    rows = [f"predicted on {prediction.gpu} (model {prediction.model}, profile {prediction.profile}):"]
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
            f"estimate: ${prediction.estimate_usd(usd_per_hour):.2f} of GPU time at ${usd_per_hour:g}/h "
            "(provisioning and transfers not included)"
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
