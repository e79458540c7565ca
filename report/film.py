"""The comparison film: the reference image and every run's final video in one grid → comparison.mp4.

    comparison_film(runs, names, reference_rgb, reference_label, out_dir)   (compare_runs calls it)

Layout. One tile per source, in this order: the reference (a still for the whole film), then each run that has a
final video (final/final_stitched.mp4), in the report's order. A tile is TILE_W×TILE_H of picture under a LABEL_H
band of text; the picture is scaled to fit (aspect kept) and letterboxed with BACKGROUND bars. The band reads the
model (with the run id where two runs share it), then the profile, the score and, for a run shorter than the
longest, when its last frame starts being held. Tiles fill a grid row by row, COLUMNS_SMALL columns for up to 4
tiles, COLUMNS_LARGE beyond; an empty cell is BACKGROUND. Every video is resampled to OUTPUT_FPS (the stitch's rate:
a no-op for final videos), so frame n of the film shows frame n of every run; a run shorter than the longest holds
its last frame to the end.

Determinism: the labels are drawn by Pillow with the font Pillow ships (ImageFont.load_default), the reference is
written as a PNG from its decoded pixels, and one ffmpeg filtergraph (xstack of the tiles, overlay of the labels)
encodes with the pinned imageio-ffmpeg binary and remote.ffmpeg's x264_args (pinned threads, fixed GOP, bitexact
flags, no metadata): the same inputs give the same bytes.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jobspecs.contracts import RunRow
from jobspecs.schema import OUTPUT_FPS
from remote.ffmpeg import ACCURATE_SWS, run_ffmpeg, x264_args
from remote.layout import written_atomically

FILM_NAME = "comparison.mp4"  # written next to report.html
FINAL_VIDEO = "final/final_stitched.mp4"  # a run's final video, relative to its run directory
TILE_W, TILE_H = 640, 360  # the picture of each tile
LABEL_H = 48  # the text band above it
COLUMNS_SMALL, COLUMNS_LARGE, SMALL_GRID = 2, 3, 4  # 2 columns for up to 4 tiles, 3 beyond
BACKGROUND = (24, 24, 24)  # letterbox bars, label bands, empty cells
TITLE_COLOUR, TEXT_COLOUR = (240, 240, 240), (180, 180, 180)
TITLE_SIZE, TEXT_SIZE = 20, 15
PRESET, CRF, THREADS = "veryfast", 20, 4  # the encode; x264's output depends on the thread count: pinned


@dataclass(frozen=True)
class Tile:
    title: str  # the label's first line
    detail: str  # its second line
    source: Path  # a video, or a still image (a PNG)
    frames: int  # frames at OUTPUT_FPS (a still: 1)
    still: bool = False
    run_id: str | None = None


@dataclass(frozen=True)
class Film:
    path: Path
    frames: int
    columns: int
    held_s: dict[str, float]  # run id → seconds its last frame is held at the end (0: the longest)


def final_video(run: RunRow) -> Path:
    return Path(run.run_dir) / FINAL_VIDEO


def frame_count(video: Path) -> int:
    """The video's frames once resampled to OUTPUT_FPS (as the film's graph does), counted by ffmpeg."""
    progress = run_ffmpeg(
        ["-progress", "pipe:1", "-nostats", "-i", str(video), "-map", "0:v:0", "-vf", f"fps={OUTPUT_FPS}"]
        + ["-f", "null", "-"]
    )
    counts = [line.removeprefix("frame=") for line in progress.decode().splitlines() if line.startswith("frame=")]
    return int(counts[-1]) if counts else 0


def columns_for(tiles: int) -> int:
    return COLUMNS_SMALL if tiles <= SMALL_GRID else COLUMNS_LARGE


def fitted(font: ImageFont.FreeTypeFont, text: str, width: int) -> str:
    """The text, cut with an ellipsis where it is wider than `width` px."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def label_png(tile: Tile, path: Path) -> Path:
    """The tile's two lines of text on a BACKGROUND band, TILE_W×LABEL_H (Pillow's own font: the same pixels on
    every machine with this Pillow)."""
    title_font, text_font = ImageFont.load_default(size=TITLE_SIZE), ImageFont.load_default(size=TEXT_SIZE)
    band = Image.new("RGB", (TILE_W, LABEL_H), BACKGROUND)
    draw = ImageDraw.Draw(band)
    draw.text((8, 3), fitted(title_font, tile.title, TILE_W - 16), font=title_font, fill=TITLE_COLOUR)
    draw.text((8, 27), fitted(text_font, tile.detail, TILE_W - 16), font=text_font, fill=TEXT_COLOUR)
    band.save(path)
    return path


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "0x" + "".join(f"{c:02x}" for c in rgb)


def tile_filter(index: int, tile: Tile, label_input: int, frames: int) -> str:
    """Input `index` (the tile's source) and `label_input` (its label) → cell [c<index>] of `frames` frames."""
    fit = f"scale={TILE_W}:{TILE_H}:force_original_aspect_ratio=decrease:force_divisible_by=2:flags={ACCURATE_SWS}"
    pad = f"pad={TILE_W}:{TILE_H}:(ow-iw)/2:(oh-ih)/2:color={hex_colour(BACKGROUND)}"
    if tile.still:  # an RGB image: converted to the film's bt709 limited range once, then looped by the input
        steps = [f"{fit}:out_color_matrix=bt709:out_range=tv", "format=yuv420p", pad]
    else:  # a run's video (yuv420p bt709 already): resampled to the film's rate, its last frame held to the end
        steps = [f"fps={OUTPUT_FPS}", fit, "format=yuv420p", pad, f"tpad=stop_mode=clone:stop={frames - tile.frames}"]
    steps += [
        f"trim=end_frame={frames}",
        "setpts=PTS-STARTPTS",
        "setsar=1",
        f"pad={TILE_W}:{TILE_H + LABEL_H}:0:{LABEL_H}:color={hex_colour(BACKGROUND)}",
    ]
    label = f"[{label_input}:v]scale=out_color_matrix=bt709:out_range=tv:flags={ACCURATE_SWS},format=yuv420p[l{index}]"
    return f"[{index}:v]{','.join(steps)}[p{index}];{label};[p{index}][l{index}]overlay=0:0:eof_action=repeat[c{index}]"


def filtergraph(tiles: list[Tile], frames: int, columns: int) -> str:
    """Inputs 0..n-1 are the tiles' sources, n..2n-1 their labels; the graph's output is [out]."""
    parts = [tile_filter(i, tile, len(tiles) + i, frames) for i, tile in enumerate(tiles)]
    cell_h = TILE_H + LABEL_H
    if len(tiles) == 1:
        parts.append("[c0]null[out]")
    else:
        layout = "|".join(f"{(i % columns) * TILE_W}_{(i // columns) * cell_h}" for i in range(len(tiles)))
        cells = "".join(f"[c{i}]" for i in range(len(tiles)))
        width, height = min(columns, len(tiles)) * TILE_W, math.ceil(len(tiles) / columns) * cell_h
        parts.append(
            f"{cells}xstack=inputs={len(tiles)}:layout={layout}:fill={hex_colour(BACKGROUND)},"
            f"pad={width}:{height}:0:0:color={hex_colour(BACKGROUND)}[out]"
        )
    return ";".join(parts)


def run_tile(run: RunRow, title: str, frames: int, longest: int) -> Tile:
    score = "n/a" if run.score is None else f"{run.score:.1f}"
    detail = f"profile {run.settings.profile or 'n/a'} · score {score}"
    if frames < longest:
        detail += f" · last frame held from {frames / OUTPUT_FPS:.2f} s"
    return Tile(title=title, detail=detail, source=final_video(run), frames=frames, run_id=run.run_id)


def comparison_film(
    runs: list[RunRow], names: list[str], reference: np.ndarray | None, reference_label: str, out_dir: Path
) -> Film | None:
    """out_dir/comparison.mp4 of the reference (RGB; None: no reference tile) and the runs that have a final video
    (`names`: each run's label title); None where no run has one."""
    present = [(run, name) for run, name in zip(runs, names, strict=True) if final_video(run).is_file()]
    counted = [(run, name, frames) for run, name in present if (frames := frame_count(final_video(run)))]
    if not counted:
        return None
    longest = max(frames for _, _, frames in counted)
    with tempfile.TemporaryDirectory(prefix="film-") as tmp:
        work = Path(tmp)
        tiles = []
        if reference is not None:
            Image.fromarray(reference).save(work / "reference.png")
            tiles.append(Tile("reference", reference_label, work / "reference.png", 1, still=True))
        tiles += [run_tile(run, name, frames, longest) for run, name, frames in counted]
        labels = [label_png(tile, work / f"label_{i}.png") for i, tile in enumerate(tiles)]
        inputs = []
        for tile in tiles:
            still = ["-loop", "1", "-framerate", str(OUTPUT_FPS)] if tile.still else []
            inputs += [*still, "-i", str(tile.source)]
        for label in labels:
            inputs += ["-i", str(label)]
        columns = columns_for(len(tiles))
        graph = filtergraph(tiles, longest, columns)
        out = Path(out_dir) / FILM_NAME
        encoder = x264_args(OUTPUT_FPS, PRESET, CRF, THREADS)
        with written_atomically(out) as part:
            run_ffmpeg(
                [*inputs, "-filter_complex", graph, "-map", "[out]", *encoder, "-frames:v", str(longest)]
                + ["-f", "mp4", str(part)]
            )
    held = {tile.run_id: round((longest - tile.frames) / OUTPUT_FPS, 4) for tile in tiles if tile.run_id}
    return Film(path=out, frames=longest, columns=columns, held_s=held)
