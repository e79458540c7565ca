"""The worker: one process on the box that loads the model once and generates the clips in order.

    python -m remote.worker JOB_DIR        (started by remote.supervise, which kills it on overrun)

Clip 0 starts from the reference image; clip i from frames/last_frame_{i-1}.png, saved losslessly from the
generated frames (never decoded back from the mp4). Each clip writes clips/clip_i.mp4, frames/last_frame_i.png
and, last, logs/log_i.json: a clip is finished when its log exists. Finished clips are skipped on a restart.
The loop is a Prefect flow against a Prefect of the box's own: nothing here talks to the user's API.
"""

from __future__ import annotations

import fcntl
import os
import platform
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageOps
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from jobspecs import ClipPlan, JobSpec, plan_clips, validate
from jobspecs.contracts import ClipLog, ClipParams, HashedFile, ModelInfo, RunInfo, Timings, VideoFile
from jobspecs.load import to_rgb
from jobspecs.schema import SPEED_KNOBS, Stitch
from remote.bundle import sha256_file
from remote.color import match_colors
from remote.ffmpeg import ACCURATE_SWS, encode_frames, rawvideo_input, run_ffmpeg, x264_args
from remote.layout import JobPaths, written_atomically
from remote.models import ModelAdapter, StepCallback, load_adapter, parallel
from remote.status import PARENT_TASK_RUN, log_progress, now_iso, update_status

EXIT_BUSY = 75  # another worker holds this box's lock
INTERPOLATE = "minterpolate=mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none"  # then :fps=<target>
NO_STEP = dict.fromkeys(("step", "steps", "step_s", "steady_step_s", "clip_elapsed_s"))  # a clip before its first step


class WorkerBusy(RuntimeError):
    """Another worker already runs on this box."""


@contextmanager
def worker_lock(paths: JobPaths) -> Iterator[None]:
    """One worker per box (one GPU): an exclusive flock, released by the kernel when the process dies."""
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise WorkerBusy(f"another worker holds {paths.lock} ({holder}); one worker per box") from None
        lock.truncate(0)
        lock.write(f"pid={os.getpid()} run={paths.run_id}")
        lock.flush()
        yield


def fit_to_clip(image: Image.Image, width: int, height: int) -> Image.Image:
    """Centre-crop to the clip's aspect and resize (Lanczos): the input image at the clip size. The image is made
    upright, 8-bit RGB and opaque first (jobspecs.load.to_rgb), as the laptop does: an older job's reference may
    not be normalised."""
    return ImageOps.fit(to_rgb(image)[0], (width, height), Image.Resampling.LANCZOS)


def encode_interpolated(frames: np.ndarray, path: Path, fps: int, target_fps: int, stitch: Stitch) -> int:
    """Frames generated at `fps` → an H.264 clip at `target_fps`, the in-between frames made by minterpolate (motion
    compensated). Frames that fall on a generated frame's time are that frame (converted to yuv420p first, with the
    same unbiased conversion as every clip), so the clip still ends on the generated last frame. Returns the clip's
    frame count. minterpolate needs a frame after the last one: the last frame is fed twice more."""
    count, height, width, _ = frames.shape
    written = (count - 1) * target_fps // fps + 1
    padded = np.concatenate([frames, frames[-1:], frames[-1:]])
    run_ffmpeg(
        [
            *rawvideo_input(width, height, fps),
            "-vf",
            f"scale=out_color_matrix=bt709:out_range=tv:flags={ACCURATE_SWS},format=yuv420p,{INTERPOLATE}"
            f":fps={target_fps}",
            *x264_args(target_fps, stitch.preset, stitch.crf, stitch.threads),
            "-frames:v",
            str(written),
            "-f",
            "mp4",
            str(path),
        ],
        stdin=np.ascontiguousarray(padded).tobytes(),
    )
    return written


def step_reporter(run_dir: Path, clip_started: float) -> StepCallback:
    """The adapter's on_step for one clip: each step's end into status.json (the step, the clip's steps, that step's
    seconds, the mean of the steady steps so far, the clip's seconds so far), for the laptop's progress and ETA."""
    seconds: list[float] = []

    def on_step(step: int, steps: int, step_s: float) -> None:
        seconds.append(step_s)
        steady = seconds[2:]  # WorkerStatus.steady_step_s: the first two steps are slower
        update_status(
            run_dir,
            step=step,
            steps=steps,
            step_s=round(step_s, 3),
            steady_step_s=round(sum(steady) / len(steady), 4) if steady else None,
            clip_elapsed_s=round(time.monotonic() - clip_started, 3),
        )

    return on_step


@task(name="generate-clip", cache_policy=NO_CACHE)
def generate_clip(
    adapter: ModelAdapter, spec: JobSpec, clip: ClipPlan, paths: JobPaths, run: RunInfo, load_s: float
) -> ClipLog:
    run_dir = paths.run_dir
    started, started_at = time.monotonic(), now_iso()
    update_status(run_dir, state="generating", clip=clip.index, clip_started_at=started_at, **NO_STEP)
    log_progress(run_dir, "generate", clip.index, f"start: {clip.camera}, {clip.frames} frames, seed {clip.seed}")

    if clip.index == 0:
        input_path = paths.reference
        image = fit_to_clip(Image.open(input_path), clip.width, clip.height)
    else:
        input_path = paths.last_frame(clip.index - 1)
        image = Image.open(input_path).convert("RGB")
    color_log = None
    if spec.color_match.mode == "reinhard" and clip.index > 0:
        reference = fit_to_clip(Image.open(paths.reference), clip.width, clip.height)
        image, color_log = match_colors(image, reference, spec.color_match.strength)
        log_progress(run_dir, "color", clip.index, f"ΔE {color_log['delta_e_before']} → {color_log['delta_e_after']}")

    parallel.from_rank0((clip.index, image))  # the other ranks of a several-GPU worker compute with this image
    result = adapter.generate(clip.prompt, image, clip, clip.seed, on_step=step_reporter(run_dir, started))
    window = result.params.get("prompt_window") or {}
    if window.get("cut"):  # the pipelines truncate silently; the user should know what the model never read
        cut = window["cut"] if len(window["cut"]) <= 160 else window["cut"][:160] + "…"
        log_progress(
            run_dir,
            "prompt",
            clip.index,
            f"the text encoder read {window['window']} of {window['tokens']} tokens; not read: {cut!r}",
        )
    expected = (clip.frames, clip.height, clip.width, 3)
    if result.frames.shape != expected or result.frames.dtype.name != "uint8":
        raise RuntimeError(f"{adapter.id} returned frames {result.frames.shape} {result.frames.dtype}, not {expected}")

    encode_start = time.monotonic()
    written, written_fps = spec.clip_frames_written(clip.frames)  # more frames at a higher fps if interpolated
    with written_atomically(paths.clip(clip.index)) as part:
        if written_fps != clip.fps:
            encode_interpolated(result.frames, part, clip.fps, written_fps, spec.stitch)
        else:
            encode_frames(result.frames, part, clip.fps, spec.stitch.preset, spec.stitch.crf, spec.stitch.threads)
    encode_s = time.monotonic() - encode_start
    with written_atomically(paths.last_frame(clip.index)) as part:
        Image.fromarray(result.frames[-1]).save(part, format="PNG", compress_level=6)

    info = adapter.info()
    model_info = {key: value for key, value in info.items() if key != "libraries"}
    log = ClipLog(
        run_id=paths.run_id,
        clip=clip.index,
        shot=clip.shot_index,
        part=clip.part,
        parts=clip.parts,
        prompt=clip.prompt,
        negative_prompt=spec.effective("negative_prompt"),
        shot_card=spec.shots[clip.shot_index],
        seed=clip.seed,
        params=ClipParams(
            width=clip.width,
            height=clip.height,
            frames=written,
            fps=written_fps,
            generated_frames=clip.frames,
            generated_fps=clip.fps,
            interpolation=f"{INTERPOLATE}:fps={written_fps}" if written_fps != clip.fps else None,
            profile=spec.generation.profile,
            **{name: spec.effective(name) for name in SPEED_KNOBS},
            steps=spec.effective("steps"),
            guidance=spec.effective("guidance"),
            guidance_kind=spec.baseline.guidance_kind,
            scheduler=spec.effective("scheduler"),
            shift=spec.effective("shift"),
            adapter=result.params,
        ),
        input_image=HashedFile(
            path=spec.reference_image if clip.index == 0 else input_path.relative_to(run_dir).as_posix(),
            sha256=sha256_file(input_path),
        ),
        color_match=color_log,
        last_frame=HashedFile(
            path=f"frames/{paths.last_frame(clip.index).name}", sha256=sha256_file(paths.last_frame(clip.index))
        ),
        clip_file=VideoFile(
            path=f"clips/{paths.clip(clip.index).name}",
            sha256=sha256_file(paths.clip(clip.index)),
            frames=written,
            seconds=round(clip.seconds, 4),
        ),
        timings_s=Timings(
            load=round(load_s, 3),
            **{k: round(v, 3) for k, v in result.timings_s.items()},
            encode=round(encode_s, 3),
            clip_total=round(time.monotonic() - started, 3),
        ),
        peak_vram_bytes=result.peak_vram_bytes,
        model=ModelInfo.model_validate({"repo": None, "revision": None} | model_info),
        libraries={"python": platform.python_version(), **info.get("libraries", {})},
        commit=run.commit,
        started_at=started_at,
        finished_at=now_iso(),
    )
    with written_atomically(paths.log(clip.index)) as part:  # last: the clip is finished once its log exists
        part.write_text(log.to_json())
    update_status(run_dir, clips_done=clip.index + 1, last_clip_s=log.timings_s.clip_total)
    log_progress(run_dir, "clip", clip.index, f"done in {log.timings_s.clip_total:.1f} s")
    return log


@flow(name="generate-clips")
def generate_clips(job_dir: str) -> int:
    """Load the model once, then every clip of the plan in order; returns the number of finished clips."""
    paths = JobPaths(Path(job_dir))
    run = paths.run_info()
    spec = validate(yaml.safe_load(paths.job_yaml.read_text()), source=str(paths.job_yaml))
    clips = plan_clips(spec)
    done = len(paths.finished_logs())
    update_status(paths.run_dir, state="loading", clips_total=len(clips), clips_done=done, clip=None)
    log_progress(paths.run_dir, "load", None, f"loading {spec.model}")
    start = time.monotonic()
    adapter = load_adapter(spec)
    adapter.load()
    load_s = time.monotonic() - start
    log_progress(paths.run_dir, "load", None, f"{spec.model} loaded in {load_s:.1f} s")
    for clip in clips[done:]:
        generate_clip(adapter, spec, clip, paths, run, load_s)
    update_status(paths.run_dir, state="generated", clip=None)
    log_progress(paths.run_dir, "generated", None, f"{len(clips)} clips")
    return len(clips)


def follow_clips(paths: JobPaths) -> None:
    """A rank other than 0 of a several-GPU worker (remote/models/parallel.py): the same model, the same clips, each
    with the input image rank 0 sends, its share of every transformer forward computed; nothing written (rank 0
    writes the clip, the frame and the log). No Prefect here: one flow run per run, rank 0's."""
    spec = validate(yaml.safe_load(paths.job_yaml.read_text()), source=str(paths.job_yaml))
    clips = plan_clips(spec)
    done = len(paths.finished_logs())  # read before the first collective: rank 0 can't finish a clip alone
    adapter = load_adapter(spec)
    adapter.load()
    for clip in clips[done:]:
        index, image = parallel.from_rank0(None)
        if index != clip.index:
            raise RuntimeError(f"rank {parallel.rank()} expected clip {clip.index}; rank 0 is at clip {index}")
        adapter.generate(clip.prompt, image, clip, clip.seed)


def run_generate_clips(job_dir: str) -> None:
    """The worker's flow. Where the laptop's flow shares this Prefect API (the local provider: this machine is the
    box), it runs as a subflow of the laptop's task run that started it, so Prefect shows one run, not two. A rented
    box has its own Prefect and no parent."""
    parent = os.environ.get(PARENT_TASK_RUN)
    if not parent:
        generate_clips(job_dir)
        return
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    parameters = {"job_dir": job_dir}
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(generate_clips, parameters=parameters, parent_task_run_id=uuid.UUID(parent))
    run_flow(generate_clips, flow_run=flow_run, parameters=parameters)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m remote.worker JOB_DIR", file=sys.stderr)
        return 2
    paths = JobPaths(Path(args[0]).resolve())
    if parallel.world_size() > 1:  # torchrun's ranks (remote/models/parallel.py)
        parallel.die_with_parent()  # torchrun starts each rank in a session of its own
    if not parallel.is_rank0():
        return follow(paths)
    try:
        if parallel.world_size() > 1:
            parallel.start(parallel.device_of_rank())  # its GPU and the ranks' process group
        with worker_lock(paths):
            if parallel.world_size() == 1:  # on several GPUs the worker is torchrun, which the supervisor recorded
                update_status(paths.run_dir, worker_pid=os.getpid())
            run_generate_clips(str(paths.job_dir))
        return 0
    except WorkerBusy as exc:
        print(f"refused: {exc}", file=sys.stderr, flush=True)
        log_progress(paths.run_dir, "refused", None, str(exc))
        return EXIT_BUSY
    except Exception as exc:  # the worker's last word: into status.json, then a non-zero exit
        traceback.print_exc()
        update_status(paths.run_dir, state="failed", reason=f"{type(exc).__name__}: {exc}")
        log_progress(paths.run_dir, "failed", None, f"{type(exc).__name__}: {exc}")
        return 1


def follow(paths: JobPaths) -> int:
    """Rank N > 0: follow_clips; what it died of goes to status/rank_N.error for the supervisor's reason (rank 0
    alone writes status.json)."""
    try:
        parallel.start(parallel.device_of_rank())  # its GPU (one the box may not have) and the process group
        follow_clips(paths)
        return 0
    except Exception as exc:
        traceback.print_exc()
        paths.rank_error(parallel.rank()).write_text(f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
