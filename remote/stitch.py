"""The stitch: finished clips → final/final_stitched.mp4, 24 fps, 1280×720, byte-for-byte reproducible.

    python -m remote.stitch JOB_DIR

One ffmpeg filtergraph: every clip normalised (fps 24, scaled to cover 1280×720 and centre-cropped), the
first frame of clips 1..N dropped (it repeats the hand-off frame), then a cut or a fixed crossfade of
`overlap_frames` at each seam, and optional bridge frames (blend or minterpolate) only at the seams. The
encode uses the pinned libx264 settings of remote.ffmpeg: the same clips give the same bytes.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from jobspecs import validate
from jobspecs.contracts import FfmpegBuild, StitchSummary
from jobspecs.schema import OUTPUT_FPS, OUTPUT_SIZE, Stitch
from remote.ffmpeg import ACCURATE_SWS, decode_frames, ffmpeg_build, run_ffmpeg, x264_args
from remote.layout import JobPaths, written_atomically


class StitchError(RuntimeError):
    """Nothing to stitch, or the clips don't fit the settings."""


@dataclass(frozen=True)
class ClipInput:
    path: Path
    frames: int
    fps: int


def kept_seconds(clip: ClipInput, first: bool) -> float:
    """Seconds of a clip in the film: its first frame is dropped except in clip 0."""
    return (clip.frames if first else clip.frames - 1) / clip.fps


def normalise(index: int, input_label: str, first: bool) -> str:
    width, height = OUTPUT_SIZE
    steps = [] if first else ["trim=start_frame=1", "setpts=PTS-STARTPTS"]
    steps += [
        f"fps={OUTPUT_FPS}",
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags={ACCURATE_SWS}",
        f"crop={width}:{height}",
        "setsar=1",
        "format=yuv420p",
    ]
    return f"[{input_label}]{','.join(steps)}[v{index}]"


def filtergraph(clips: list[ClipInput], settings: Stitch, bridge_inputs: dict[int, int]) -> str:
    """The filtergraph; bridge_inputs maps seam i (between clip i and i+1) to its ffmpeg input index."""
    parts = [normalise(i, f"{i}:v", i == 0) for i in range(len(clips))]
    for seam, input_index in bridge_inputs.items():
        parts.append(
            f"[{input_index}:v]scale=out_color_matrix=bt709:out_range=tv:flags={ACCURATE_SWS},"
            f"format=yuv420p,setsar=1[b{seam}]"
        )
    if settings.transition == "crossfade" and len(clips) > 1:
        fade = settings.overlap_frames / OUTPUT_FPS
        length, label = kept_seconds(clips[0], True), "v0"
        for i in range(1, len(clips)):
            out = "out" if i == len(clips) - 1 else f"x{i}"
            parts.append(f"[{label}][v{i}]xfade=transition=fade:duration={fade:.6f}:offset={length - fade:.6f}[{out}]")
            length += kept_seconds(clips[i], False) - fade
            label = out
    else:
        order = []
        for i in range(len(clips)):
            order.append(f"[v{i}]")
            if i in bridge_inputs:
                order.append(f"[b{i}]")
        parts.append(f"{''.join(order)}concat=n={len(order)}:v=1:a=0[out]")
    return ";".join(parts)


def bridge_frames(left: ClipInput, right: ClipInput, settings: Stitch, work: Path) -> np.ndarray:
    """`bridge_frames` in-between frames from clip i's last frame to clip i+1's first kept frame."""
    width, height = OUTPUT_SIZE
    a = decode_frames(left.path, width, height, select=f"eq(n\\,{left.frames - 1})")[0]
    b = decode_frames(right.path, width, height, select="eq(n\\,1)")[0]
    count = settings.bridge_frames
    if settings.seam_bridge == "blend":
        weights = np.arange(1, count + 1) / (count + 1)
        mixed = (1 - weights[:, None, None, None]) * a + weights[:, None, None, None] * b
        return np.round(mixed).astype(np.uint8)
    # minterpolate needs a frame on each side of the pair: feed A A B B at 1 fps, keep the frames strictly
    # between the two middle ones. scd=none: a seam is bridged even where it looks like a scene change.
    for i, frame in enumerate((a, a, b, b)):
        Image.fromarray(frame).save(work / f"pair_{i}.png")
    raw = run_ffmpeg(
        [
            "-framerate",
            "1",
            "-i",
            str(work / "pair_%d.png"),
            "-vf",
            f"minterpolate=fps={count + 1}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ]
    )
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)
    return frames[count + 2 : 2 * count + 2]


def stitch_clips(clips: list[ClipInput], out: Path, settings: Stitch) -> StitchSummary:
    """Stitch `clips` (in chain order) into `out`; returns what the manifest records."""
    if not clips:
        raise StitchError("no finished clips to stitch")
    if settings.transition == "crossfade":
        shortest = min(kept_seconds(c, i == 0) for i, c in enumerate(clips))
        if settings.overlap_frames / OUTPUT_FPS >= shortest:
            raise StitchError(f"overlap of {settings.overlap_frames} frames is not shorter than a clip")
    with tempfile.TemporaryDirectory(prefix="stitch-") as tmp:
        work = Path(tmp)
        inputs = [arg for clip in clips for arg in ("-i", str(clip.path))]
        bridge_inputs: dict[int, int] = {}
        if settings.seam_bridge != "none":
            for seam in range(len(clips) - 1):
                frames = bridge_frames(clips[seam], clips[seam + 1], settings, work)
                for k, frame in enumerate(frames):
                    Image.fromarray(frame).save(work / f"bridge_{seam}_{k:03d}.png")
                bridge_inputs[seam] = len(clips) + seam
                inputs += ["-framerate", str(OUTPUT_FPS), "-i", str(work / f"bridge_{seam}_%03d.png")]
        graph = filtergraph(clips, settings, bridge_inputs)
        encoder = x264_args(OUTPUT_FPS, settings.preset, settings.crf, settings.threads)
        with written_atomically(out) as part:
            run_ffmpeg([*inputs, "-filter_complex", graph, "-map", "[out]", *encoder, "-f", "mp4", str(part)])
    return StitchSummary(
        clips=len(clips),
        fps=OUTPUT_FPS,
        size=f"{OUTPUT_SIZE[0]}x{OUTPUT_SIZE[1]}",
        settings=settings,
        encoder=encoder,
        filtergraph=graph,
        ffmpeg=FfmpegBuild.model_validate(ffmpeg_build()),
    )


def clip_inputs(paths: JobPaths) -> list[ClipInput]:
    return [
        ClipInput(paths.run_dir / log.clip_file.path, log.params.frames, log.params.fps)
        for log in paths.finished_logs()
    ]


def stitch(job_dir: Path) -> StitchSummary:
    paths = JobPaths(job_dir.resolve())
    spec = validate(yaml.safe_load(paths.job_yaml.read_text()), source=str(paths.job_yaml))
    summary = stitch_clips(clip_inputs(paths), paths.final_video, spec.stitch)
    paths.stitch_json.write_text(summary.to_json())
    return summary


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m remote.stitch JOB_DIR", file=sys.stderr)
        return 2
    print(stitch(Path(args[0])).model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
