"""How long a run has left: the planner's predicted seconds (jobspecs.plan.predict_run) corrected by what the worker
has measured (its status: jobspecs.contracts.WorkerStatus). Pure functions of those two: the terminal's bars, the
progress artifact and the one line per clip (tasks/box.py) show what they give."""

from __future__ import annotations

from dataclasses import dataclass

from jobspecs.contracts import TERMINAL_STATES, WorkerStatus
from jobspecs.plan import RunPrediction

AFTER_DENOISE = ("decode", "interpolate", "encode")  # a clip's predicted phases after its last step
BEFORE_GENERATING = (None, "starting", "loading")  # the worker's states while the model still loads


@dataclass(frozen=True)
class Eta:
    run_s: float  # seconds left for the run's clips (and the model's load while it loads); stitch etc. not included
    clip_s: float | None  # seconds left for the clip generating now; None: none is
    ratio: float | None  # measured / predicted, as applied (None: nothing measured yet, the plan as it is)
    step_ratio: float | None  # the ratio of seconds per step, measured now or carried: what the next call carries


def step_ratio(prediction: RunPrediction, status: WorkerStatus) -> float | None:
    """The status's clip's measured seconds per step (steady_step_s: the mean of its steps after the first two) over
    the predicted ones (its predicted denoising / its steps); None before its third step, or for a clip without
    steps."""
    clip = status.clip
    if status.steady_step_s is None or not status.steps or clip is None or not 0 <= clip < len(prediction.clips):
        return None
    denoise = prediction.clips[clip].phases.get("denoise", 0.0)
    return status.steady_step_s / (denoise / status.steps) if denoise > 0 else None


def eta(prediction: RunPrediction, status: WorkerStatus, carried: float | None = None) -> Eta:
    """Seconds left for the run and for the clip generating now.

    The rule: one ratio, measured / predicted, scales every predicted second still to come.
    - The ratio: the clip's measured seconds per step over its predicted seconds per step (step_ratio: the mean of
      its steps after the first two; the plan predicts the first's preparation and compile apart, and the second
      ran slower too) once its third step has run; before that, `carried` (the step ratio an earlier call measured
      on an earlier clip: Eta.step_ratio); without one (a model without steps: kenburns), the last finished clip's
      measured seconds over its predicted seconds (last_clip_s); without any, 1 (the plan as it is).
    - The clip generating now, once a step has run: ratio × (its predicted seconds per step × the steps left + its
      predicted decode, interpolation and encode); before its first step: ratio × its predicted seconds.
    - The run: the clip now + ratio × the predicted seconds of every later clip, + the predicted load (unscaled:
      it is no step) while the model loads. 0 once the worker has ended.
    """
    clips, done = prediction.clips, status.clips_done
    measured = step_ratio(prediction, status)
    ratio = measured if measured is not None else carried
    kept = ratio
    if ratio is None and status.last_clip_s is not None and 0 < done <= len(clips) and clips[done - 1].seconds > 0:
        ratio = status.last_clip_s / clips[done - 1].seconds
    if status.state in TERMINAL_STATES:
        return Eta(run_s=0.0, clip_s=None, ratio=ratio, step_ratio=kept)
    scale = 1.0 if ratio is None else ratio
    current = status.clip if status.state == "generating" and status.clip is not None else None
    if current is not None and done <= current < len(clips):  # a clip below clips_done has finished
        predicted = clips[current]
        if status.step and status.steps:
            per_step = predicted.phases.get("denoise", 0.0) / status.steps
            after = sum(predicted.phases.get(phase, 0.0) for phase in AFTER_DENOISE)
            clip_s = scale * (per_step * max(status.steps - status.step, 0) + after)
        else:
            clip_s = scale * predicted.seconds
        later = clips[current + 1 :]
    else:
        clip_s, later = None, clips[done:]
    run_s = (clip_s or 0.0) + scale * sum(clip.seconds for clip in later)
    if status.state in BEFORE_GENERATING:
        run_s += prediction.load_s
    return Eta(run_s=run_s, clip_s=clip_s, ratio=ratio, step_ratio=kept)


def duration_text(seconds: float) -> str:
    """'~45 s', '~4 min 10 s', '~1 h 05 min': an estimate, so no finer than that."""
    whole = max(1, round(seconds))
    if whole < 60:
        return f"~{whole} s"
    if whole < 3600:
        return f"~{whole // 60} min {whole % 60:02d} s"
    return f"~{whole // 3600} h {whole % 3600 // 60:02d} min"
