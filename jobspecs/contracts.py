"""What the laptop and the box hand each other, one pydantic model per file or printed summary.

| model | what | written by | read by |
|---|---|---|---|
| RunInfo | JOB_DIR/input/run.json | the laptop (remote.layout.stage_job) | the worker, the bundle |
| WorkerStatus | run/status/status.json | the supervisor, the worker (remote.status) | the supervisor, the laptop |
| ClipLog | run/logs/log_NNN.json | the worker (remote.worker) | the stitch, the bundle, verify, the report |
| StitchSummary | JOB_DIR/stitch.json; what `python -m remote.stitch` prints | remote.stitch | the bundle, the laptop |
| BundleSummary | what `python -m remote.bundle` prints | remote.bundle | the laptop |
| PrefetchResult, SmokeResult | what `python -m remote.prefetch` prints | remote.prefetch | the laptop |
| Manifest | run/manifest.json | remote.bundle | verify, the report, the laptop |
| RunCost | <run_id>.cost.json beside the bundle | the flow (tasks/costs.py) | the report |
| Report | report.json | report.compare | report.page, the user |

Files are written with `to_json()` (sorted keys, indented by 2) and read with `Model.model_validate_json()`;
printed summaries go out with `model_dump_json()`. Unknown keys are refused (extra="forbid"), and so are NaN and
infinities: a renamed or misspelt field fails where it is written or read, not silently later.

Some fields stay `dict`, since what they hold is the model's or another program's, not this contract's:
ClipLog.params.adapter (every argument the adapter passed to its pipeline), ModelInfo's extra keys (each
adapter's info(): weights' source, memory plan, speed notes), `libraries` (package → version, whatever is
installed), ClipLog.color_match (remote.color's numbers), Timings' extra keys (the adapter's own phases),
RunRow.cost (the report's view of RunCost: its fields and where it came from) and RunSettings.generation (the
spec's `generation` block as written).

Manifest.schema_version versions the bundle: the manifest and the clip logs inside it. Change it when a key is
renamed, removed or made required, or a value's type, unit or meaning changes: whatever a bundle of the old version
would be refused or misread for. A new key with a default (older bundles lack it) does not change it. Bundles
written before the field existed have this same layout: they read as version 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from jobspecs.schema import Shot, Stitch

MANIFEST_VERSION = 1

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def is_none(value: object) -> bool:
    return value is None


class Contract(BaseModel):
    """A file or printed summary that crosses from one process or machine to another."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def to_json(self, exclude_unset: bool = False) -> str:
        """The text of the file this model is: JSON with sorted keys, indented by 2 (exclude_unset: only the fields
        given when the model was made or read)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_unset=exclude_unset)
        return json.dumps(data, indent=2, sort_keys=True)


# --- pieces shared by several files ------------------------------------------------------------------


class HashedFile(Contract):
    """A file of the run (its path relative to the run directory) and its sha256."""

    path: str
    sha256: Sha256


class VideoFile(HashedFile):
    frames: int
    seconds: float


class Commit(Contract):
    """The code's commit (tasks/job.code_commit): `dirty` when the working tree differed from it."""

    sha: str | None
    dirty: bool | None = None
    note: str | None = Field(None, exclude_if=is_none)  # why there is no sha ("not a git checkout")


class ModelInfo(Contract):
    """The model that made the clips: the adapter's info() without its `libraries`. Every other key the adapter
    gives (source, pipeline, memory, profile, speed, ...) is kept as it is: read them from `model_extra`."""

    model_config = ConfigDict(extra="allow")

    id: str
    repo: str | None
    revision: str | None  # the commit actually loaded ("builtin" for kenburns)


class ReferenceImage(Contract):
    """The reference image, as input/reference.png holds it (upright, 8-bit RGB, opaque)."""

    file: str  # the name the spec gave
    sha256: Sha256  # of input/reference.png: what clip 0 starts from
    # Runs staged before the reference was normalised have none of these three.
    original_sha256: Sha256 | None = None  # of the file the spec named
    normalised: bool = False
    notes: list[str] = []  # each fix made (EXIF orientation, 16 → 8 bits, transparency over white)


class FfmpegBuild(Contract):
    """The ffmpeg binary the clips and the film were encoded with (remote.ffmpeg.ffmpeg_build)."""

    version: str  # its `ffmpeg -version` first line
    binary: str
    sha256: Sha256
    source: str


# --- JOB_DIR/input/run.json -------------------------------------------------------------------------


class RunInfo(Contract):
    """What the laptop stages with the job, beside the spec and the reference image."""

    run_id: str
    created_at: str  # ISO 8601 UTC, when the job was staged
    spec_file: str  # the spec's file name
    overrides: list[str]  # the --set key=value items
    reference: ReferenceImage
    commit: Commit


# --- run/status/status.json ---------------------------------------------------------------------------

# starting (the supervisor) → loading → generating (clip by clip) → generated; stopped (a limit or a stop request)
# and failed can come at any point.
WorkerState = Literal["starting", "loading", "generating", "generated", "stopped", "failed"]
# the worker's last states; the run on the box is over once the supervisor has also written its exit_code
TERMINAL_STATES: frozenset[WorkerState] = frozenset({"generated", "stopped", "failed"})


class WorkerStatus(Contract):
    """The run on the box, rewritten as it goes (remote.status.update_status): the file holds only the fields
    written so far, so every field has a default."""

    state: WorkerState | None = None
    reason: str | None = None  # why it stopped or failed
    clips_total: int | None = None
    clips_done: int = 0
    clip: int | None = None  # the clip generating now
    clip_started_at: str | None = None
    # `clip`'s denoising as it goes, written at each step's end (None for a model without steps: kenburns)
    step: int | None = None  # steps finished
    steps: int | None = None  # the clip's steps
    step_s: float | None = None  # the last step's seconds (the first also carries the clip's preparation)
    # the mean of the clip's steps after the first two, so far (None before the third): the first carries the clip's
    # preparation and a compile, the second ran slower too on the GPU (benchmarks/results' step_s)
    steady_step_s: float | None = None
    clip_elapsed_s: float | None = None  # seconds from the clip's start to the end of its last step
    last_clip_s: float | None = None  # the last finished clip's seconds (its log's timings_s.clip_total)
    stopped_at_clip: int | None = None
    started_at: str | None = None  # when the supervisor started
    updated_at: str | None = None
    clip_limit_s: float | None = None
    run_limit_s: float | None = None
    supervisor_pid: int | None = None
    worker_pid: int | None = None
    exit_code: int | None = None  # the supervisor's, its last write: the worker has exited, nothing writes after it


# --- run/logs/log_NNN.json ----------------------------------------------------------------------------


class ClipParams(Contract):
    """Every setting the clip was made with. `frames` and `fps` are the clip file's (the stitch reads them):
    more than the generated ones where the clip was interpolated."""

    width: int
    height: int
    frames: int
    fps: int
    generated_frames: int
    generated_fps: int
    interpolation: str | None  # the minterpolate filter that made the in-between frames
    profile: str
    # the speed knobs (jobspecs.schema.SPEED_KNOBS), None where the model has no such setting
    first_block_cache: float | None
    interpolate_to: int | None
    attention_backend: str | None
    compile: bool | None
    prompt_trim: bool | None
    flash_attn_4: bool | None
    sage_attention: bool | None = None  # (these three: clip logs written before them have none)
    fp8_linear: bool | None = None
    mag_cache: bool | None = None
    steps: int | None
    guidance: float | None
    guidance_kind: str | None
    scheduler: str | None
    shift: float | None
    adapter: dict[str, Any]  # what the adapter passed to its pipeline, its prompt_window, step_s, speed notes


class Timings(Contract):
    """Seconds: the model's load (once per run), the adapter's own phases (extra keys: render, denoise, decode,
    ...), the encode, and the whole clip."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float] = Field(init=False)

    load: float
    encode: float
    clip_total: float


class ClipLog(Contract):
    """One finished clip: written last, so a clip is finished when its log exists."""

    run_id: str
    clip: int
    shot: int
    part: int  # which of the shot's chained sub-clips (0-based), of `parts`
    parts: int
    prompt: str
    negative_prompt: str | None
    shot_card: Shot
    seed: int
    params: ClipParams
    input_image: HashedFile  # clip 0: the reference (by the spec's file name); clip i: frames/last_frame_{i-1}.png
    color_match: dict[str, Any] | None  # remote.color.match_colors' numbers, where the input was colour matched
    last_frame: HashedFile
    clip_file: VideoFile
    timings_s: Timings
    peak_vram_bytes: int | None  # None where no GPU is used
    model: ModelInfo
    libraries: dict[str, str]
    commit: Commit
    started_at: str
    finished_at: str


# --- JOB_DIR/stitch.json and what `python -m remote.stitch` / `python -m remote.bundle` print -----------


class StitchSummary(Contract):
    clips: int
    fps: int
    size: str  # "1280x720"
    settings: Stitch
    encoder: list[str]  # the libx264 arguments
    filtergraph: str
    ffmpeg: FfmpegBuild


class BundleSummary(Contract):
    archive: str  # the file name of <run_id>.tar, beside JOB_DIR
    sha256: Sha256
    files: int  # in the archive


class PrefetchResult(Contract):
    model: str
    repo: str | None  # None: a model without weights (kenburns), nothing fetched
    revision: str | None = None  # the snapshot's commit
    files: int
    bytes: int
    seconds: float


class SmokeResult(Contract):
    model: str
    ok: bool  # the repo answered within the time given
    seconds: float


# --- run/manifest.json --------------------------------------------------------------------------------


class SpecRecord(Contract):
    file: str
    overrides: list[str]
    job_yaml_sha256: Sha256


class Gpu(Contract):
    name: str
    driver: str | None = None
    memory: str | None = None


class Environment(Contract):
    python: str
    os: str
    machine: str
    cpus: int | None
    libraries: dict[str, str]
    ffmpeg: FfmpegBuild
    gpus: list[Gpu]
    cuda: str | None = Field(None, exclude_if=is_none)  # torch's CUDA, on a box with a GPU


class ManifestClip(Contract):
    # file and last_frame first: a malformed entry is reported by the first wrong field, and these are the ones
    # verify checks against the bytes
    file: VideoFile
    last_frame: HashedFile
    clip: int
    shot: int
    camera: str
    seed: int
    seconds: float
    timings_s: Timings


class ManifestClips(Contract):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    planned: int
    finished: int
    entries: list[ManifestClip] = Field(alias="list")


class GuardrailOutcome(Contract):
    clip_limit_s: float
    run_limit_s: float
    outcome: Literal["ok"] | WorkerState | None  # ok: every clip generated; else the worker's last state
    reason: str | None


class Manifest(Contract):
    """The run, as the bundle states it. Every path is relative to the run directory."""

    schema_version: Literal[1] = MANIFEST_VERSION
    run_id: str
    title: str
    created_at: str  # when the job was staged
    bundled_at: str
    model: ModelInfo
    pipeline_commit: Commit
    spec: SpecRecord
    reference_image: ReferenceImage
    environment: Environment
    stitch: StitchSummary | None  # None: nothing was stitched (no clip finished)
    final_video: VideoFile | None
    clips: ManifestClips
    guardrails: GuardrailOutcome
    files: dict[str, Sha256]  # every file of the run directory but the manifest and SHA256SUMS


# --- <run_id>.cost.json ------------------------------------------------------------------------------


class RunCost(Contract):
    """What one run cost, beside its bundle (<run_id>.cost.json, written by the flow: tasks/costs.py), and the row
    of its cost table artifact; the report reads it for the cost metric."""

    run: str  # the run id
    model: str
    clips: int  # finished
    instance: str  # the rented instances' ids, comma-separated; else the provider (local, ssh)
    gpu: str | None  # None: the offer did not name it
    usd_per_hour: float
    billed_s: float  # create → confirmed destroy, summed over the instances (else the run's wall time)
    usd_total: float
    usd_per_video_s: float | None  # None: no film
    estimate_usd: float | None  # made before renting
    estimate_s: int | None
    preemptions: int = 0  # interruptible instances Vast took away; the run went on on a new one each time


class NightRun(Contract):
    """One model's part of a night: its run and what it cost (None: it made no cost file)."""

    name: str  # the deployment's short name: wan, hunyuan, cogvideox
    run: str | None  # its run id (None: it never got one)
    state: str  # COMPLETED, FAILED, …: the run's final state
    usd_total: float | None


class NightCost(Contract):
    """What the overnight cost (<night>/night.cost.json, written by flows/overnight.py; the report shows it): each
    model's run and the night's total. `parallel`: one instance per model, each paying its own setup and download.
    `one-box`: one instance for all, its setup and downloads (`shared_usd`) split evenly into the runs' costs."""

    placement: Literal["parallel", "one-box"]
    instances: int  # instances rented for the night, all runs together (failed attempts and preempted ones too)
    usd_total: float
    shared_usd: float  # one-box: setup, prefetch and release of the one box, split into the runs; parallel: 0
    runs: list[NightRun]
    # the planner's dollars for this night in each placement, before anything was rented (jobspecs.plan
    # night_placements; None: not predicted, or it can't run so)
    planned_parallel_usd: float | None = None
    planned_one_box_usd: float | None = None


# --- report.json (report/compare.py) ------------------------------------------------------------------


class Metric(Contract):
    """One metric of the comparison: how it is scored, and what it measures."""

    model_config = ConfigDict(frozen=True)

    key: str
    label: str
    unit: str
    higher_is_better: bool
    tolerance: float  # the smallest difference that means something (report/compare.py's docstring)
    missing: Literal["worst", "exclude"]  # a run without a value: scores 0 / the metric leaves the score
    definition: str


class ClipRow(Contract):
    clip: int
    frames_decoded: int
    seconds_generating: float | None
    intra_ssim_median: float | None
    intra_psnr_median_db: float | None
    flicker: float | None
    mean_abs_frame_diff: float | None
    delta_e2000: float | None
    delta_e76: float | None
    lightness: float | None
    chroma: float | None
    sharpness: float | None
    sharpness_ratio: float | None


class SeamRow(Contract):
    seam: int  # between clip `seam` and clip `seam + 1`
    ssim: float | None
    psnr_db: float | None
    near_ssim_median: float | None
    near_psnr_median_db: float | None
    ssim_ratio: float | None
    psnr_drop_db: float | None
    handoff_psnr_db: float | None
    flash_jump_l: float | None
    flash_ratio: float | None


class RunSettings(Contract):
    generation: dict[str, Any]  # the job.yaml's generation block, as written
    effective: dict[str, int | float | str]  # the settings in force (of clip 0's log)
    profile: str | None
    source: str | None
    memory_plan: str | None
    # what each lever that changes the arithmetic did (the adapter's speed notes: "on: …" or why it was skipped)
    levers: dict[str, str] = {}


class Timing(Contract):
    clip_s_mean: float | None
    clip_s_max: float | None
    load_s: float | None
    generation_s: float | None  # load + every clip
    generation_wall_s: float | None
    run_wall_s: float | None  # staged → bundled
    video_s: float | None


class FilmLightness(Contract):
    fps: int
    lightness: list[float]  # mean L* of every frame of the clips cut together
    seam_frames: list[int]


class RunRow(Contract):
    """One run of the comparison."""

    run_id: str
    run_dir: str
    model: str | None
    model_info: ModelInfo | None
    title: str | None
    provider: str
    settings: RunSettings
    settings_text: str
    guardrails: GuardrailOutcome
    clips_finished: int
    clips_planned: int
    timing: Timing
    cost: dict[str, Any]  # <run_dir>.cost.json as the flow wrote it, and where it came from (`source`)
    peak_vram_gib: float | None
    reference: str
    clips: list[ClipRow]
    seams: list[SeamRow]
    vbench_temporal_flickering: float | None
    film_lightness: FilmLightness
    metrics: dict[str, float | None]  # Metric.key → value
    normalised: dict[str, float | None] = {}  # Metric.key → 0..1 (1: the best run), for the metrics scored
    score: float | None = None  # 0..100


class Report(Contract):
    """The comparison: report.json holds it in this field order (not sorted), and report.md and report.html show
    it (report/page.py)."""

    generated_at: str
    title: str
    winner: str | None  # the best run's model id (its run id where two runs share the model)
    reference: str
    decode: str
    normalisation: str
    weights: dict[str, float]
    weights_source: str
    metrics_used: list[str]
    metrics_left_out: list[str]
    metrics: list[Metric]
    runs: list[RunRow]
    night: NightCost | None = None  # the overnight's cost (<night>/night.cost.json); None: runs compared loose
    # the comparison film beside report.json (report/film.py): the reference and every run's final video in a
    # grid, at OUTPUT_FPS; None: no run has a final video
    film: str | None = None
    film_held_s: dict[str, float] = {}  # run id → seconds its last frame is held at the film's end (0: the longest)
