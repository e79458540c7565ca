"""kenburns: the shot card's camera move rendered over the input image, on the CPU.

A virtual 50 mm camera looks at the input image as a flat print. Each move is a smooth (smootherstep-eased)
path of zoom, sideways travel and rotation (yaw, pitch, roll), turned into one homography per frame and
sampled bicubically with sub-pixel precision. Zoom grows just enough that the view stays on the picture;
where a move must look past the edge (pull-out) it sees a soft, blurred continuation of the image.
Frame 0 is the input image exactly, like an image-to-video model's first frame.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import PIL
from PIL import Image, ImageFilter

from jobspecs import ClipPlan, JobSpec
from remote.models import Generated, StepCallback

FOCAL_PER_WIDTH = 50 / 36  # a 50 mm lens on a 36 mm wide sensor
PAD = 0.3  # the soft continuation around the picture, as a fraction of each side


@dataclass(frozen=True)
class Pose:
    zoom: float = 1.0  # >1 magnifies
    shift_x: float = 0.0  # travel of the view centre, fraction of the width (+ = right)
    shift_y: float = 0.0  # fraction of the height (+ = down)
    yaw_deg: float = 0.0  # + = looks right
    pitch_deg: float = 0.0  # + = looks up
    roll_deg: float = 0.0


def cover_zoom(width: int, height: int, yaw_deg: float = 0, pitch_deg: float = 0, shift: float = 0) -> float:
    """The zoom that keeps a view turned by yaw/pitch or moved by `shift` (fraction of width) on the picture."""
    focal = FOCAL_PER_WIDTH * width
    by_yaw = 2 * focal * math.tan(math.radians(abs(yaw_deg))) / width
    by_pitch = 2 * focal * math.tan(math.radians(abs(pitch_deg))) / height
    return 1 + 1.1 * max(by_yaw, by_pitch, 2 * abs(shift)) + 0.01


def pose_at(camera: str, e: float, width: int, height: int) -> Pose:
    """The camera's pose at eased time e ∈ [0, 1] for a move such as 'pan left' or 'push-in'."""
    move, _, direction = camera.partition(" ")
    sign = -1.0 if direction in ("left", "down") else 1.0
    if move == "static":
        return Pose(zoom=1 + 0.02 * e)
    if move == "push-in":
        return Pose(zoom=1 + 0.2 * e)
    if move == "pull-out":
        return Pose(zoom=1 / (1 + 0.25 * e))
    if move == "pan":
        yaw = 2.5
        return Pose(zoom=1 + (cover_zoom(width, height, yaw_deg=yaw) - 1) * e, yaw_deg=sign * yaw * e)
    if move == "tilt":
        pitch = 1.5
        return Pose(zoom=1 + (cover_zoom(width, height, pitch_deg=pitch) - 1) * e, pitch_deg=sign * pitch * e)
    if move == "dolly":
        travel = 0.05
        zoom = cover_zoom(width, height, shift=travel) + 0.02
        return Pose(zoom=1 + (zoom - 1) * e, shift_x=sign * travel * e)
    if move == "orbit":
        travel, yaw = 0.05, 2.0
        zoom = cover_zoom(width, height, yaw_deg=yaw, shift=travel)
        return Pose(
            zoom=1 + (zoom - 1) * e,
            shift_x=sign * travel * e,
            yaw_deg=-sign * yaw * e,
            roll_deg=sign * 0.8 * e,
        )
    raise ValueError(f"unknown camera move {camera!r}")


def smootherstep(t: float) -> float:
    return t * t * t * (t * (6 * t - 15) + 10)


def homography(pose: Pose, width: int, height: int, pad_x: float, pad_y: float) -> np.ndarray:
    """3×3 matrix taking an output pixel (x, y, 1) to the canvas pixel it shows."""
    focal = FOCAL_PER_WIDTH * width
    yaw, pitch, roll = (math.radians(a) for a in (pose.yaw_deg, pose.pitch_deg, pose.roll_deg))
    r_yaw = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    r_pitch = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    r_roll = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    k = np.diag([focal, focal, 1.0])
    rotate = k @ r_yaw @ r_pitch @ r_roll @ np.linalg.inv(k)
    centre_out = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1]])
    scale = np.diag([1 / pose.zoom, 1 / pose.zoom, 1.0])
    to_canvas = np.array(
        [
            [1, 0, pad_x + width / 2 + pose.shift_x * width],
            [0, 1, pad_y + height / 2 + pose.shift_y * height],
            [0, 0, 1],
        ]
    )
    matrix = to_canvas @ scale @ rotate @ centre_out
    return matrix / matrix[2, 2]


def soft_canvas(image: Image.Image) -> tuple[Image.Image, int, int]:
    """The image inside a blurred mirror of itself (what lies 'beyond the frame'), feathered at the seam."""
    width, height = image.size
    pad_x, pad_y = round(PAD * width), round(PAD * height)
    mirrored = Image.fromarray(np.pad(np.asarray(image), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), "symmetric"))
    canvas = mirrored.filter(ImageFilter.GaussianBlur(radius=max(width, height) / 80))
    feather = max(2, round(0.06 * min(width, height)))
    ramp_x = np.clip(np.minimum(np.arange(width), np.arange(width)[::-1]) / feather, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(height), np.arange(height)[::-1]) / feather, 0, 1)
    mask = Image.fromarray((255 * smootherstep_array(np.outer(ramp_y, ramp_x))).astype(np.uint8))
    canvas.paste(image, (pad_x, pad_y), mask)
    return canvas, pad_x, pad_y


def smootherstep_array(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (6 * t - 15) + 10)


def handheld(seed: int, frames: int, fps: int, amplitude_px: float = 1.2) -> np.ndarray:
    """A seeded, slow (0.2–0.6 Hz) sway in pixels, (frames, 2), zero at frame 0."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    freqs, phases = rng.uniform(0.2, 0.6, (2, 2)), rng.uniform(0, 2 * np.pi, (2, 2))
    sway = np.stack(
        [sum(np.sin(2 * np.pi * freqs[axis, k] * t + phases[axis, k]) for k in range(2)) for axis in range(2)],
        axis=1,
    )
    sway -= sway[0]
    return amplitude_px / 2 * sway * np.minimum(1.0, t / 0.5)[:, None]


def render(image: Image.Image, camera: str, frames: int, fps: int, seed: int) -> np.ndarray:
    """The move as (frames, H, W, 3) uint8, at the image's size."""
    image = image.convert("RGB")
    width, height = image.size
    canvas, pad_x, pad_y = soft_canvas(image)
    sway = handheld(seed, frames, fps) if camera == "static" else np.zeros((frames, 2))
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    out[0] = np.asarray(image)
    for i in range(1, frames):
        matrix = homography(
            pose_at(camera, smootherstep(i / (frames - 1)), width, height),
            width,
            height,
            pad_x + sway[i, 0],
            pad_y + sway[i, 1],
        )
        coefficients = tuple(matrix.flatten()[:8])
        out[i] = np.asarray(
            canvas.transform((width, height), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC)
        )
    return out


class KenBurns:
    """The adapter: no weights, no GPU; deterministic for a seed."""

    id = "kenburns"

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec

    def load(self) -> None:
        pass  # nothing to load

    def generate(
        self, prompt: str, image: Image.Image, clip: ClipPlan, seed: int, on_step: StepCallback | None = None
    ) -> Generated:
        """One clip from `image`; no denoising steps, so `on_step` is never called."""
        if image.size != (clip.width, clip.height):
            raise ValueError(f"input image is {image.size}, the clip is {clip.width}x{clip.height}")
        start = time.monotonic()
        frames = render(image, clip.camera, clip.frames, clip.fps, seed)
        params = {
            "width": clip.width,
            "height": clip.height,
            "frames": clip.frames,
            "fps": clip.fps,
            "camera": clip.camera,
            "focal_mm": 50,
            "easing": "smootherstep",
            "resample": "bicubic",
        }
        return Generated(frames=frames, timings_s={"render": time.monotonic() - start}, params=params)

    def info(self) -> dict:
        return {
            "id": self.id,
            "repo": None,
            "revision": "builtin",
            "profile": self.spec.generation.profile,
            "libraries": {"pillow": PIL.__version__, "numpy": np.__version__},
        }
