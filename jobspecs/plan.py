"""Shots → clips: frame counts on the model's rule, chained sub-clips, seeds and the prompt of each clip."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from jobspecs.schema import Constants, JobSpec, Shot, total_seconds

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

    def to_dict(self) -> dict:
        return asdict(self) | {"seconds": round(self.seconds, 4)}


def build_prompt(constants: Constants, shot: Shot) -> str:
    """prompt_i = shot card i + the global constants, in a fixed order and wording."""
    return (
        f"{shot.subject}. {shot.action}. {shot.environment}. {CAMERA_PHRASES[shot.camera].capitalize()}. "
        f"Style: {constants.style}. Setting: {constants.setting}. Lighting: {constants.lighting}. "
        f"Lens: {constants.lens}. Composition: {constants.composition}."
    )


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
    return "\n".join(rows)
