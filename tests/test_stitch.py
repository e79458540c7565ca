"""The stitch: first frames of clips 1..N dropped, fixed crossfades and bridges, same clips → same bytes."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from jobspecs.schema import Stitch
from remote.bundle import sha256_file
from remote.ffmpeg import decode_frames, encode_frames, ffmpeg_exe
from remote.stitch import ClipInput, stitch_clips

W, H = 64, 36
RED, GREEN, BLUE = (200, 40, 40), (40, 200, 40), (40, 40, 230)


def solid(colour: tuple[int, int, int], count: int) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (count, H, W, 3)).copy()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[ClipInput]:
    """Three 13-frame clips at 24 fps; clip 1 opens on a blue hand-off frame that must not reach the film."""
    folder = tmp_path_factory.mktemp("clips")
    bodies = [solid(RED, 13), np.concatenate([solid(BLUE, 1), solid(GREEN, 12)]), solid(RED, 13)]
    out = []
    for i, frames in enumerate(bodies):
        path = folder / f"clip_{i:03d}.mp4"
        encode_frames(frames, path, fps=24, preset="ultrafast", crf=10, threads=2)
        out.append(ClipInput(path, 13, 24))
    return out


def frame_count(path) -> int:
    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def stitched(tmp_path, clips, name: str = "final.mp4", **settings) -> tuple:
    out = tmp_path / "final" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = stitch_clips(clips, out, Stitch(preset="ultrafast", **settings))
    return out, summary


def test_cut_drops_the_repeated_first_frame_and_is_byte_reproducible(tmp_path, clips) -> None:
    first, summary = stitched(tmp_path, clips, "a.mp4")
    second, _ = stitched(tmp_path, clips, "b.mp4")
    assert sha256_file(first) == sha256_file(second)
    assert frame_count(first) == 13 + 12 + 12
    frames = decode_frames(first, 1280, 720)
    blue_frames = [i for i, f in enumerate(frames) if f[..., 2].mean() > 150]
    assert blue_frames == []  # the hand-off frame of clip 1 was dropped
    assert summary.settings.threads == 4 and "-threads" in summary.encoder


def test_output_is_720p_h264_bt709_at_24_fps(tmp_path, clips) -> None:
    out, _ = stitched(tmp_path, clips)
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Video: h264" in probe and "yuv420p(tv, bt709" in probe
    assert "1280x720" in probe and "24 fps" in probe


def test_crossfade_overlaps_each_seam_by_the_fixed_frame_count(tmp_path, clips) -> None:
    out, summary = stitched(tmp_path, clips, transition="crossfade", overlap_frames=4)
    assert frame_count(out) == 37 - 2 * 4
    assert "xfade=transition=fade" in summary.filtergraph


@pytest.mark.parametrize("bridge", ["blend", "minterpolate"])
def test_bridge_frames_only_at_the_seams(tmp_path, clips, bridge) -> None:
    out, _ = stitched(tmp_path, clips, seam_bridge=bridge, bridge_frames=3)
    assert frame_count(out) == 37 + 2 * 3
    green = decode_frames(out, 1280, 720)[:, 360, 640, 1].astype(int)
    seam = green[13:16]  # the three bridge frames between red clip 0 and green clip 1
    assert green[12] < seam.min() and seam.max() < green[17]  # in between, not a copy of either side


def test_clips_at_16_fps_are_normalised_to_24(tmp_path) -> None:
    folder = tmp_path / "clips16"
    folder.mkdir()
    inputs = []
    for i, colour in enumerate([RED, GREEN]):
        path = folder / f"c{i}.mp4"
        encode_frames(solid(colour, 17), path, fps=16, preset="ultrafast", crf=10, threads=2)
        inputs.append(ClipInput(path, 17, 16))
    out, _ = stitched(tmp_path, inputs)
    seconds = 17 / 16 + 16 / 16
    assert abs(frame_count(out) - seconds * 24) <= 1
