"""The pinned ffmpeg binary and the one set of deterministic libx264 settings every clip and stitch uses."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np

# Exact decode of yuv420p to RGB: ffmpeg's default swscale path darkens by ~1 code value per round trip.
ACCURATE_SWS = "bicubic+accurate_rnd+full_chroma_int"


class FfmpegError(RuntimeError):
    """ffmpeg failed; the message carries the command's last lines of output."""


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffmpeg_build() -> dict:
    """What the manifest records: the binary's version line and sha256."""
    exe = ffmpeg_exe()
    version = subprocess.run([exe, "-version"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(Path(exe).read_bytes()).hexdigest()
    return {
        "version": version.splitlines()[0],
        "binary": Path(exe).name,
        "sha256": digest,
        "source": f"imageio-ffmpeg {imageio_ffmpeg.__version__}",
    }


def x264_args(fps: int, preset: str, crf: int, threads: int) -> list[str]:
    """Fixed encoder settings: pinned threads, fixed GOP, bt709 tags, no timestamps or version strings."""
    gop = str(2 * fps)
    return [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-threads",
        str(threads),
        "-x264-params",
        "cpu-independent=1",
        "-pix_fmt",
        "yuv420p",
        "-r",
        str(fps),
        "-g",
        gop,
        "-keyint_min",
        gop,
        "-sc_threshold",
        "0",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
        "-movflags",
        "+faststart",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-map_metadata",
        "-1",
        "-an",
    ]


def run_ffmpeg(args: list[str], stdin: bytes | None = None) -> bytes:
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        *(["-nostdin"] if stdin is None else []),
        "-y",
        "-v",
        "error",
        *args,
    ]
    done = subprocess.run(command, input=stdin, capture_output=True)
    if done.returncode:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise FfmpegError(f"ffmpeg exited {done.returncode}: " + " | ".join(tail))
    return done.stdout


def rawvideo_input(width: int, height: int, fps: int) -> list[str]:
    """ffmpeg's input arguments for (F, H, W, 3) uint8 RGB frames written to its stdin."""
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]


def encode_frames(frames: np.ndarray, path: Path, fps: int, preset: str, crf: int, threads: int) -> None:
    """(F, H, W, 3) uint8 RGB → H.264 mp4, converted to bt709 limited-range yuv420p without bias."""
    count, height, width, _ = frames.shape
    run_ffmpeg(
        [
            *rawvideo_input(width, height, fps),
            "-vf",
            f"scale=out_color_matrix=bt709:out_range=tv:flags={ACCURATE_SWS},format=yuv420p",
            *x264_args(fps, preset, crf, threads),
            "-frames:v",
            str(count),
            "-f",
            "mp4",
            str(path),
        ],
        stdin=np.ascontiguousarray(frames).tobytes(),
    )


def decode_frames(
    path: Path, width: int, height: int, select: str | None = None, scale_flags: str = ACCURATE_SWS, limit: int = 0
) -> np.ndarray:
    """An mp4 → (F, H, W, 3) uint8 RGB at width×height, with the unbiased conversion (`scale_flags`: how it is
    scaled; `select`: an ffmpeg select expression; `limit`: at most that many frames, 0 = all)."""
    filters = [f"select='{select}'"] if select else []
    filters.append(f"scale={width}:{height}:in_color_matrix=bt709:in_range=tv:flags={scale_flags}")
    frames = ["-frames:v", str(limit)] if limit else []
    raw = run_ffmpeg(
        [
            "-i",
            str(path),
            "-vf",
            ",".join(filters),
            "-fps_mode",
            "passthrough",
            *frames,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-sws_flags",
            ACCURATE_SWS,
            "-",
        ]
    )
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)
