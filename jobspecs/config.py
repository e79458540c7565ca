"""The project's own config files, read by the planner on the laptop and by the adapters on the GPU box.

    baselines()       jobspecs/baselines.yaml       each model's locked settings and its speed profiles
    architectures()   jobspecs/architectures.yaml   what the planner and the adapters know of each model, no weights
    throughput()      jobspecs/throughput.yaml      how fast each GPU runs the transformers, what the CPU steps cost
    offer_snapshot()  jobspecs/offers.yaml          a dated snapshot of Vast.ai offer shapes and their prices

Each file is read once and validated strictly (no unknown keys, frozen); a bad one fails with a ConfigError that
names the file, the field and the rule. The user's job spec is jobspecs/schema.py's.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

HERE = Path(__file__).parent
PerModel = dict[str, float]  # model id -> a figure of that model


class ConfigError(RuntimeError):
    """A config file of the project that is broken: not a problem of the user's spec (and not a ValueError, so
    that it is not reported as one when a spec's validation reads a config)."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- baselines.yaml --------------------------------------------------------------------------------


class SpeedKnobs(Config):
    """The speed knobs of a baseline or a profile (None: the model has no such knob, or the profile keeps it).
    first_block_cache: the threshold, 0 = off; interpolate_to: the fps clips are written at after frame
    interpolation, 0 = off; prompt_trim: cut the prompt's padded tail and drop the attention mask (HunyuanVideo,
    batch 1: the same math); flash_attn_4: FlashAttention-4 on sm_90+ GPUs; sage_attention: 8-bit attention
    (SageAttention); fp8_linear: the transformer's linear layers in fp8 (torchao); mag_cache: MagCache with the
    model's published calibration."""

    first_block_cache: float | None = None
    interpolate_to: int | None = None
    attention_backend: str | None = None
    compile: bool | None = None
    prompt_trim: bool | None = None
    flash_attn_4: bool | None = None
    sage_attention: bool | None = None
    fp8_linear: bool | None = None
    mag_cache: bool | None = None


class Profile(SpeedKnobs):
    """A named set of overrides of a model's baseline (`generation.profile`); None: keep the baseline's."""

    width: int | None = None
    height: int | None = None
    fps: int | None = None
    max_frames: int | None = None
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    shift: float | None = None
    negative_prompt: str | None = None


class MagCacheCalibration(Config):
    """A model's published MagCache calibration (diffusers' MagCacheConfig takes these): the magnitude ratios of
    successive steps' residuals at the step count they were calibrated at (resampled to another count)."""

    source: str
    threshold: float
    max_skip_steps: int
    retention_ratio: float
    ratios: list[float]

    def skipped_steps(self, steps: int) -> int:
        """How many of `steps` denoising steps MagCache skips: diffusers 0.42.1's rule (hooks/mag_cache.py), which
        reads only these ratios, never the activations, so the count is known before the run."""
        scale = (len(self.ratios) - 1) / max(steps - 1, 1)
        ratios = [self.ratios[round(i * scale)] for i in range(steps)]  # nearest_interp, as diffusers does
        ratio, count, error, skipped = 1.0, 0, 0.0, 0
        for step in range(int(self.retention_ratio * steps + 0.5), steps):
            ratio *= ratios[step]
            count += 1
            error += abs(1.0 - ratio)
            if step > 0 and error <= self.threshold and count <= self.max_skip_steps:
                skipped += 1
            else:
                ratio, count, error = 1.0, 0, 0.0
        return skipped


class Baseline(SpeedKnobs):
    """One model's locked settings (None: the model has no such setting, and a spec can't set it)."""

    repo: str | None  # the Hugging Face repo (None: no weights)
    revision: str | None  # the Hugging Face commit to load
    pipeline: str | None  # the diffusers pipeline class
    width: int
    height: int
    size_step: int  # width and height are multiples of this
    fps: int
    frame_step: int  # clip frame counts are frame_step*k + 1
    max_frames: int  # the native clip length
    steps: int | None
    guidance: float | None
    guidance_kind: Literal["cfg", "embedded"] | None  # cfg: a second forward per step; embedded: an input
    scheduler: str | None
    shift: float | None
    negative_prompt: str | None
    profiles: dict[str, Profile] = {}  # profile name -> overrides of the settings above
    mag_cache_calibration: MagCacheCalibration | None = None  # where `mag_cache` is a setting of the model

    @model_validator(mode="after")
    def mag_cache_has_its_calibration(self) -> Baseline:
        if (self.mag_cache is not None) != (self.mag_cache_calibration is not None):
            raise ValueError("mag_cache and mag_cache_calibration: a model has both (a setting) or neither")
        return self

    @model_validator(mode="after")
    def profiles_change_only_what_the_model_has(self) -> Baseline:
        for name, profile in self.profiles.items():
            for field, value in profile.model_dump(exclude_none=True).items():
                if getattr(self, field) is None:
                    raise ValueError(f"profile {name} sets {field} = {value!r}, a setting this model does not have")
        return self


# --- architectures.yaml ----------------------------------------------------------------------------


class Vae(Config):
    spatial: int  # pixels per latent pixel
    temporal: int  # latent frames = (frames - 1) / temporal + 1


class Reference(Config):
    """Seconds measured for one clip of this shape on throughput.yaml's reference GPU."""

    frames: int
    width: int
    height: int
    decode_s: float  # the tiled VAE decode
    prep_s: float  # what the clip spends before its first step


# What the architecture of a diffusers model (any family but `cpu`) must have.
DIFFUSERS_FIELDS = (
    "transformer",
    "vae",
    "text_tokens",
    "text_encoder",
    "text_window",
    "reference",
    "full_plan_needs_gib",
    "weights_gb",
)


class Architecture(Config):
    """What the planner and the adapters need to know about a model, no weights needed. The diffusers models
    (every family but `cpu`) have every field but `per_token_timestep`."""

    family: Literal["wan", "hunyuan", "cogvideox", "cpu"]  # jobspecs/flops.py FAMILIES; cpu: kenburns
    load_s: float  # model load and setup, once per run
    transformer: dict[str, Any] | None = None  # the full-size config in diffusers' own key names
    per_token_timestep: bool | None = None  # Wan 2.2 TI2V: the time embedding runs on every video token
    vae: Vae | None = None
    text_tokens: int | None = None  # what the transformer gets of the prompt per forward, padding included
    text_encoder: str | None = None  # the text encoder's name, for the prompt window's warning
    text_window: int | None = None  # tokens of a prompt the text encoder reads (the pipeline's max_sequence_length)
    reference: Reference | None = None
    full_plan_needs_gib: float | None = None  # `auto` picks the full memory plan on GPUs with this much memory
    offloads_in_24gb: bool = False  # the 24gb memory plan group-offloads the transformer
    fp8_resident_in_24gb: bool = False  # ... unless its linear layers are fp8 (fp8_linear): then it stays on the GPU
    weights_gb: float | None = None  # what a fresh box downloads of the pinned revision (the offer's $/film)

    @model_validator(mode="after")
    def diffusers_models_are_complete(self) -> Architecture:
        missing = [name for name in DIFFUSERS_FIELDS if getattr(self, name) is None]
        if self.family != "cpu" and missing:
            raise ValueError(f"family {self.family} needs {', '.join(missing)}")
        return self

    @property
    def heads(self) -> int | None:
        """The transformer's attention heads: what Ulysses context parallelism splits across the GPUs (None: no
        transformer)."""
        return self.transformer["num_attention_heads"] if self.transformer else None


# --- throughput.yaml -------------------------------------------------------------------------------


Interconnect = Literal["nvlink", "pcie"]


class Gpu(Config):
    peak_bf16_tflops: float  # dense bf16 tensor-core peak, fp32 accumulation
    fp8_tflops: float | None = None  # dense fp8 peak (fp32 accumulation); None: no fp8 tensor cores
    memory_gb: float
    capability: float  # CUDA compute capability (8.9: Ada, 9.0: Hopper): which kernels the box turns on
    efficiency: PerModel | None = None  # its own stock efficiency (measured, or derived: throughput.yaml says)
    compile_speedup: PerModel | None = None  # compile's speed-up on this GPU where it differs from the H100's
    interconnect: Interconnect  # how a box of several of these moves the all-to-alls (context_parallel)


class CompileKnob(Config):
    speedup: PerModel
    warmup_s: PerModel  # charged to the first clip of each clip shape
    recompile_s: PerModel  # charged per prompt new to a shape, where the prompt's length is an input shape


class SpeedupKnob(Config):
    speedup: PerModel


class FirstBlockCacheKnob(Config):
    reference_threshold: float
    hits_at_reference: float  # share of the forwards after the first step that are cache hits at that threshold
    cached_cost: PerModel  # a hit's seconds over a computed forward's


class FlashAttention4Knob(Config):
    speedup: PerModel
    gpus: list[str]  # where the box turns it on


class AttentionBackendKnob(Config):
    speedup: float


class PrecisionKnob(Config):
    """An 8-bit lever (sage_attention: the attention kernels; fp8_linear: the GEMMs) and how much faster it makes
    the kernels it replaces, by compute capability; the planner credits it on the part of the forward those kernels
    take (Knobs.attention_share), by Amdahl's law."""

    min_capability: float  # where the box turns it on
    kernel_speedup: dict[float, float]  # compute capability -> the speed-up over the baseline's kernels


class Knobs(Config):
    compile: CompileKnob
    prompt_trim: SpeedupKnob
    first_block_cache: FirstBlockCacheKnob
    flash_attn_4: FlashAttention4Knob
    attention_backend: AttentionBackendKnob
    attention_share: PerModel  # attention's share of the compiled baseline's kernel time (the rest: GEMMs mostly)
    sage_attention: PrecisionKnob
    fp8_linear: PrecisionKnob


class Cpu(Config):
    """Seconds per 1280x720 frame (scaled by pixels) of the CPU side of a clip."""

    kenburns_s_per_frame: float
    encode_s_per_frame: float
    interpolate_s_per_frame: float  # per output frame


class ContextParallel(Config):
    """One clip's forwards on several GPUs (Ulysses): the denoising runs `efficiency` × N times as fast on N GPUs,
    by the box's interconnect (ASSUMED figures: throughput.yaml says why)."""

    efficiency: dict[Interconnect, dict[int, float]]  # interconnect -> GPUs -> efficiency

    @model_validator(mode="after")
    def efficiencies_are_fractions(self) -> ContextParallel:
        for interconnect, table in self.efficiency.items():
            for gpus, value in table.items():
                if gpus < 2 or not 0 < value <= 1:
                    raise ValueError(f"efficiency.{interconnect}.{gpus} = {value}: GPUs ≥ 2, efficiency in (0, 1]")
        return self


class Throughput(Config):
    reference: str  # the GPU architectures.yaml's `reference` seconds were measured on
    efficiency: PerModel  # fraction of the peak the stock transformer reaches (measured on the H100)
    gpus: dict[str, Gpu]  # names as Vast.ai writes them (infrastructure.gpu)
    cpu: Cpu
    knobs: Knobs
    context_parallel: ContextParallel

    @model_validator(mode="after")
    def gpus_named_are_known(self) -> Throughput:
        unknown = [gpu for gpu in (self.reference, *self.knobs.flash_attn_4.gpus) if gpu not in self.gpus]
        if unknown:
            raise ValueError(f"GPUs not in `gpus`: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def every_interconnect_has_its_efficiencies(self) -> Throughput:
        missing = {card.interconnect for card in self.gpus.values()} - set(self.context_parallel.efficiency)
        if missing:
            raise ValueError(f"context_parallel.efficiency has no table for {', '.join(sorted(missing))}")
        return self

    def parallel_efficiency(self, gpu: str, num_gpus: int) -> float | None:
        """The assumed efficiency of one clip's denoising on `num_gpus` of `gpu` (1.0 on one GPU; None: no figure
        for that many GPUs over its interconnect)."""
        if num_gpus == 1:
            return 1.0
        return self.context_parallel.efficiency[self.gpus[gpu].interconnect].get(num_gpus)

    def stock_efficiency(self, gpu: str) -> PerModel:
        """The fraction of `gpu`'s peak each model's stock transformer reaches: its own measurement, else the H100's
        (ASSUMED to hold on every GPU without its own)."""
        return self.gpus[gpu].efficiency or self.efficiency


# --- offers.yaml -----------------------------------------------------------------------------------


class Rental(Config):
    """What a rented box spends besides the run, for an offer's dollars per film (ASSUMED: offers.yaml says why)."""

    setup_s: float = Field(ge=0)  # create → running → SSH → the box's setup, before the model download
    download_mb_per_s: float = Field(gt=0)  # the model's weights (architectures.yaml weights_gb) from the Hub


class Interruptible(Config):
    """What being outbid costs an interruptible (bid) box (ASSUMED: offers.yaml says why and how it is counted)."""

    preemptions_per_hour: float = Field(ge=0)  # how often Vast stops a bid instance, per hour rented


class SnapshotShape(Config):
    """One offer shape of the snapshot: a box of `num_gpus` × `gpu` at `usd_per_hour` on demand for the whole box,
    and `min_bid_usd_per_hour`, the lowest bid it takes as an interruptible instance (the whole box too)."""

    gpu: str  # as Vast.ai writes it (throughput.yaml `gpus`)
    num_gpus: int = Field(ge=1, le=8)
    usd_per_hour: float = Field(gt=0)
    min_bid_usd_per_hour: float = Field(gt=0)

    @model_validator(mode="after")
    def bid_below_on_demand(self) -> SnapshotShape:
        if self.min_bid_usd_per_hour > self.usd_per_hour:
            raise ValueError(
                f"{self.num_gpus}× {self.gpu}: min_bid_usd_per_hour = {self.min_bid_usd_per_hour:g} is above its "
                f"usd_per_hour = {self.usd_per_hour:g}; an interruptible bid starts below the on-demand price"
            )
        return self


class OfferSnapshot(Config):
    as_of: date  # the day the prices are from
    source: str  # where they are from
    rental: Rental
    interruptible: Interruptible
    shapes: list[SnapshotShape] = Field(min_length=1)

    @model_validator(mode="after")
    def each_shape_once(self) -> OfferSnapshot:
        seen = set()
        for shape in self.shapes:
            if (shape.gpu, shape.num_gpus) in seen:
                raise ValueError(f"shapes: {shape.num_gpus}× {shape.gpu} is listed twice")
            seen.add((shape.gpu, shape.num_gpus))
        return self


# --- loading ---------------------------------------------------------------------------------------


def read(path: Path, shape: object) -> Any:
    """The YAML file at `path` validated as `shape`; a ConfigError names the file, the field and the rule."""
    where = f"{path.parent.name}/{path.name}"
    try:
        return TypeAdapter(shape).validate_python(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML: {error}") from None
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False):
            field = ".".join(str(part) for part in problem["loc"]) or "the whole file"
            value = problem["input"]
            shown = "" if isinstance(value, dict | list) else f" = {value!r}"
            problems.append(f"{field}{shown}: {problem['msg'].removeprefix('Value error, ')}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None


@functools.cache
def baselines() -> dict[str, Baseline]:
    """Model id -> its locked settings (jobspecs/baselines.yaml)."""
    return read(HERE / "baselines.yaml", dict[str, Baseline])


@functools.cache
def architectures() -> dict[str, Architecture]:
    """Model id -> its architecture (jobspecs/architectures.yaml)."""
    return read(HERE / "architectures.yaml", dict[str, Architecture])


@functools.cache
def throughput() -> Throughput:
    """The GPUs' and the CPU's speeds (jobspecs/throughput.yaml)."""
    return read(HERE / "throughput.yaml", Throughput)


@functools.cache
def offer_snapshot() -> OfferSnapshot:
    """The dated snapshot of offer shapes and prices (jobspecs/offers.yaml); its GPUs are throughput.yaml's."""
    snapshot = read(HERE / "offers.yaml", OfferSnapshot)
    unknown = sorted({shape.gpu for shape in snapshot.shapes} - set(throughput().gpus))
    if unknown:
        raise ConfigError(f"jobspecs/offers.yaml: shapes: GPUs not in throughput.yaml `gpus`: {', '.join(unknown)}")
    return snapshot
