"""The shootout as a video: comparison.mp4 (the reference and each run's final video in one grid, in step) and the
report page's synced players, over tiny real runs (test_report.py's make_run, stitched as the box does)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from test_report import make_run

from jobspecs.contracts import Manifest, Report, VideoFile
from jobspecs.schema import OUTPUT_FPS, Stitch
from remote.bundle import sha256_file
from remote.ffmpeg import decode_frames, ffmpeg_exe
from remote.stitch import ClipInput, stitch_clips
from report import compare_runs
from report.film import BACKGROUND, FILM_NAME, LABEL_H, TILE_H, TILE_W, Tile, comparison_film, label_png

ESPRESSO = REPO / "jobspecs" / "espresso.png"  # 600×400: letterboxed to 540×360 in its 640×360 tile
CLIP_FRAMES = 25  # make_run's clips; the stitch drops the first frame of clips 1..N
CELL_H = TILE_H + LABEL_H
# where each tile's picture sits in the 2×2 grid: the reference, then the runs in the order compared
PICTURES = {"reference": (0, LABEL_H), "run-clean": (TILE_W, LABEL_H), "run-flash": (0, CELL_H + LABEL_H)}
PICTURES["run-short"] = (TILE_W, CELL_H + LABEL_H)
TIMES = [0, 12, 25, 26, 36, 48, 49, 60, 72]  # film frames looked at (25, 26: run-flash's two bright frames)


def stitched(run: Path, clips: int = 3) -> Path:
    """The run as the box leaves it once stitched: final/final_stitched.mp4 of its first `clips` clips (the logs of
    the others removed, as a run stopped by a guardrail has them) and the manifest naming the video."""
    for i in range(clips, 3):
        (run / f"logs/log_{i:03d}.json").unlink()
    out = run / "final" / "final_stitched.mp4"
    out.parent.mkdir()
    inputs = [ClipInput(run / f"clips/clip_{i:03d}.mp4", CLIP_FRAMES, OUTPUT_FPS) for i in range(clips)]
    summary = stitch_clips(inputs, out, Stitch(preset="ultrafast"))
    frames = CLIP_FRAMES + (CLIP_FRAMES - 1) * (clips - 1)
    video = VideoFile(path="final/final_stitched.mp4", sha256=sha256_file(out), frames=frames, seconds=frames / 24)
    manifest = Manifest.model_validate_json((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(manifest.model_copy(update={"stitch": summary, "final_video": video}).to_json())
    return run


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> dict:
    """Three stitched runs (run-short stopped after 2 of its 3 clips: 1 s shorter) compared into report/, a folder
    beside runs/ (the players' paths go up a level)."""
    root = tmp_path_factory.mktemp("films")
    runs = root / "runs"
    dirs = [
        stitched(make_run(runs, "run-clean", "kenburns")),
        stitched(make_run(runs, "run-flash", "wan22_ti2v_5b", flash=True, provider="vast")),
        stitched(make_run(runs, "run-short", "cogvideox15_5b_i2v", tint=12, provider="vast"), clips=2),
    ]
    out = root / "report"
    result = compare_runs(dirs, out, reference=ESPRESSO)
    film = result["film"]
    frames = decode_frames(film, 2 * TILE_W, 2 * CELL_H, select="+".join(f"eq(n\\,{t})" for t in TIMES))
    return {
        "root": root,
        "dirs": dirs,
        "out": out,
        "result": result,
        "report": Report.model_validate_json(result["json"].read_text()),
        "film": dict(zip(TIMES, frames, strict=True)),
        "videos": {d.name: decode_frames(d / "final" / "final_stitched.mp4", TILE_W, TILE_H) for d in dirs},
    }


def picture(frame: np.ndarray, tile: str) -> np.ndarray:
    x, y = PICTURES[tile]
    return frame[y : y + TILE_H, x : x + TILE_W]


def band(frame: np.ndarray, tile: str) -> np.ndarray:
    x, y = PICTURES[tile]
    return frame[y - LABEL_H : y, x : x + TILE_W]


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in RGB code values."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def frame_count(path: Path) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def test_the_film_is_a_2x2_grid_at_the_output_rate_as_long_as_the_longest_run(films) -> None:
    film = films["result"]["film"]
    assert film == films["out"] / FILM_NAME and film.parent == films["result"]["html"].parent
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(film)], capture_output=True, text=True).stderr
    assert "Video: h264" in probe and "yuv420p(tv, bt709" in probe
    assert f"{2 * TILE_W}x{2 * CELL_H}" in probe and f"{OUTPUT_FPS} fps" in probe
    assert frame_count(film) == 73 == len(films["videos"]["run-clean"])  # 25 + 24 + 24
    data = json.loads(films["result"]["json"].read_text())
    assert data["film"] == FILM_NAME
    assert data["film_held_s"] == {"run-clean": 0.0, "run-flash": 0.0, "run-short": 1.0}  # 49 frames of 73


def test_each_run_s_tile_shows_that_run_s_frame_at_the_same_time(films) -> None:
    """Tile vs the run's video decoded at the tile size: close at the same frame; mid-clip (12, 36: the camera
    moving fastest) clearly closer to it than to the frame before or after; and far from the other runs where they
    differ (25, 26: run-flash's two bright frames after the first seam, run-short's tint)."""
    videos = films["videos"]
    for t in (0, 12, 25, 26, 36, 48):
        for run, video in videos.items():
            tile = picture(films["film"][t], run)
            same = mad(tile, video[t])
            assert same < 3, (run, t, same)
            if t in (12, 36):
                assert min(mad(tile, video[t - 1]), mad(tile, video[t + 1])) > same + 3, (run, t)
            if t in (25, 26):
                for other, video_other in videos.items():
                    if other != run:
                        assert mad(tile, video_other[t]) > same + 4, (run, other, t)


def test_the_shorter_run_holds_its_last_frame_to_the_end(films) -> None:
    short = films["videos"]["run-short"]
    assert len(short) == 49
    for t in (48, 49, 60, 72):
        assert mad(picture(films["film"][t], "run-short"), short[-1]) < 3, t
    assert mad(picture(films["film"][72], "run-clean"), films["videos"]["run-clean"][72]) < 3  # the others go on
    assert mad(picture(films["film"][72], "run-clean"), films["videos"]["run-clean"][48]) > 5


def test_the_reference_tile_is_the_reference_image_letterboxed_for_the_whole_film(films) -> None:
    inner = np.asarray(Image.open(ESPRESSO).convert("RGB").resize((540, 360), Image.Resampling.BICUBIC))
    for t in (0, 36, 72):
        tile = picture(films["film"][t], "reference")
        assert mad(tile[:, 50:590], inner) < 3, t
        for bar in (tile[:, :48], tile[:, 592:]):  # 50 px bars left and right (2 px kept off the picture's edge)
            assert mad(bar, np.broadcast_to(np.uint8(BACKGROUND), bar.shape)) < 0.5


def test_each_tile_is_labelled_with_model_profile_and_score(films, tmp_path) -> None:
    """The band above each picture reads the model, the profile and the score (and, for run-short, when its last
    frame starts being held): the band matches that text drawn as the film draws it, better than any other's."""
    scores = {run.run_id: run.score for run in films["report"].runs}
    texts = {
        "reference": ("reference", "espresso.png (given), a still"),
        "run-clean": ("kenburns", f"profile baseline · score {scores['run-clean']:.1f}"),
        "run-flash": ("wan22_ti2v_5b", f"profile baseline · score {scores['run-flash']:.1f}"),
        "run-short": (
            "cogvideox15_5b_i2v",
            f"profile baseline · score {scores['run-short']:.1f} · last frame held from 2.04 s",
        ),
    }
    expected = {}
    for name, (title, detail) in texts.items():
        path = label_png(Tile(title, detail, ESPRESSO, 1), tmp_path / f"{name}.png")
        expected[name] = np.asarray(Image.open(path).convert("RGB"))
    frame = films["film"][36]
    for name in texts:
        shown = band(frame, name)
        own = mad(shown, expected[name])
        assert own < 1.5, (name, own)
        assert all(mad(shown, expected[other]) > own + 1 for other in texts if other != name), name


def test_the_film_is_byte_for_byte_reproducible(films, tmp_path) -> None:
    again = compare_runs(films["dirs"], tmp_path / "again", reference=ESPRESSO)
    assert sha256_file(again["film"]) == sha256_file(films["result"]["film"])


def test_five_tiles_make_three_columns_with_the_empty_cell_left_dark(films, tmp_path) -> None:
    report = films["report"]
    runs = [*report.runs, report.runs[0]]
    names = ["a", "b", "c", "d"]
    film = comparison_film(runs, names, np.asarray(Image.open(ESPRESSO).convert("RGB")), "ref", tmp_path)
    assert film.columns == 3 and film.frames == 73
    (last,) = decode_frames(film.path, 3 * TILE_W, 2 * CELL_H, select="eq(n\\,72)")
    empty = last[CELL_H + 4 :, 2 * TILE_W + 4 :]  # cell 6 (4 px kept off its neighbours)
    assert mad(empty, np.broadcast_to(np.uint8(BACKGROUND), empty.shape)) < 0.5


# --- the page ----------------------------------------------------------------------------------------


class Players(HTMLParser):
    """The page's <video> tags (their attributes), its 'missing: …' lines and its script."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.videos, self.missing, self.scripts, self._in = [], [], [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs) -> None:
        attributes = dict(attrs)
        if tag == "video":
            self.videos.append(attributes)
        if tag == "p" and attributes.get("class") == "missing":
            self._in = ("missing", "hidden" in attributes)
        if tag == "script":
            self._in = ("script", None)

    def handle_endtag(self, tag) -> None:
        if tag in ("p", "script"):
            self._in = None

    def handle_data(self, data) -> None:
        if self._in and self._in[0] == "missing":
            self.missing.append((data, self._in[1]))
        elif self._in and self._in[0] == "script":
            self.scripts.append(data)


def expected_paths(films) -> list[str]:
    return [FILM_NAME, *(f"../runs/{run}/final/final_stitched.mp4" for run in ("run-clean", "run-flash", "run-short"))]


def test_the_page_has_a_muted_player_per_film_loaded_by_relative_path(films) -> None:
    page = films["result"]["html"].read_text()
    players = Players(page)
    srcs = [v["src"] for v in players.videos]
    assert srcs == expected_paths(films)
    for video in players.videos:
        assert (films["out"] / video["src"]).is_file(), video["src"]
        assert "muted" in video and video["preload"] == "metadata" and video["class"] == "sync"
    assert "<h2>The films</h2>" in page and "run-short 1.00 s" in page  # what was padded is said
    assert not re.search(r"https?:|href=|url\(|@import|data:video", page, re.IGNORECASE)  # self-contained, light
    assert len(page.encode()) < 400_000


def test_the_page_has_one_set_of_sync_controls_and_says_the_keys(films) -> None:
    page = films["result"]["html"].read_text()
    assert page.count('id="films-play"') == 1 and page.count('id="films-seek"') == 1
    assert 'type="range"' in page and f'step="{1 / OUTPUT_FPS:.6f}"' in page
    assert "<kbd>,</kbd> one frame back, <kbd>.</kbd> one frame forward (1/24 s)" in page
    (script,) = Players(page).scripts
    assert 'event.key === ","' in script and 'event.key === "."' in script and "const FPS = 24;" in script


def test_a_missing_video_says_so_and_the_page_lists_what_it_expects(films, tmp_path) -> None:
    """The report folder and the runs copied, one final video deleted: the page is the same file; its player for
    that video shows 'missing: <path>' on its error event, and a static line names every expected path."""
    copy = shutil.copytree(films["root"], tmp_path / "copy")
    (copy / "runs" / "run-flash" / "final" / "final_stitched.mp4").unlink()
    page = (copy / "report" / "report.html").read_text()
    players = Players(page)
    assert [text for text, _ in players.missing] == [f"missing: {path}" for path in expected_paths(films)]
    assert all(hidden for _, hidden in players.missing)  # shown only by the error event
    assert "The players expect these files, relative to this page's folder: " + ", ".join(expected_paths(films)) in page
    exists = [(copy / "report" / v["src"]).is_file() for v in players.videos]
    assert exists == [True, True, False, True]
    for video in players.videos:  # each player's error handler reveals its own missing line
        assert unescape(video["onerror"]) == "this.parentElement.querySelector('.missing').hidden = false"
    figure = r'<figure class="film"><video [^>]*></video><figcaption>[^<]*</figcaption><p class="missing"'
    assert re.search(figure, page)  # the missing line sits in the player's own figure


NODE_HARNESS = r"""
const specs = JSON.parse(process.argv[1]);
const listeners = {};
const on = (target) => (type, fn) => ((target.listeners[type] ||= []).push(fn));
const fire = (target, type, event = {}) => (target.listeners[type] || []).forEach((fn) => fn(event));
const videos = specs.map((s) => {
  const v = { duration: s.duration, error: s.error ? { code: 4 } : null, currentTime: 0, paused: true, ended: false,
    listeners: {}, play() { this.paused = false; }, pause() { this.paused = true; } };
  v.addEventListener = on(v);
  return v;
});
const element = (fields) => { const e = { listeners: {}, ...fields }; e.addEventListener = on(e); return e; };
const elements = { "films-play": element({ textContent: "play" }), "films-seek": element({ value: 0, max: 0 }),
  "films-time": element({ textContent: "" }) };
const doc = element({});
global.document = { querySelectorAll: () => videos, getElementById: (id) => elements[id],
  addEventListener: doc.addEventListener };
global.requestAnimationFrame = () => {};
eval(require("fs").readFileSync(0, "utf8"));
const state = (what) => ({ what, times: videos.map((v) => +v.currentTime.toFixed(4)),
  paused: videos.map((v) => v.paused), clock: elements["films-time"].textContent,
  button: elements["films-play"].textContent, max: elements["films-seek"].max });
const out = [];
videos.forEach((v) => fire(v, "loadedmetadata"));
out.push(state("loaded"));
for (let i = 0; i < 3; i++) fire(doc, "keydown", { key: "." });
out.push(state("three frames forward"));
fire(doc, "keydown", { key: "," });
out.push(state("one back"));
elements["films-seek"].value = "2.5";
fire(elements["films-seek"], "input");
out.push(state("seek 2.5"));
fire(elements["films-play"], "click");
out.push(state("play"));
fire(elements["films-play"], "click");
out.push(state("pause"));
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="no node to run the page's script")
def test_the_page_s_script_keeps_every_player_on_the_first_one_s_time(films, tmp_path) -> None:
    """The page's own script under node with stand-in video elements (no browser here): frame steps, the slider and
    play/pause reach every player; a shorter one stops at its end; the missing one (error set) is left alone."""
    (script,) = Players(films["result"]["html"].read_text()).scripts
    durations = [73 / 24, 73 / 24, 73 / 24, 49 / 24]  # the comparison film, run-clean, run-flash, run-short
    specs = [{"duration": d, "error": i == 2} for i, d in enumerate(durations)]  # run-flash's video missing
    done = subprocess.run(
        ["node", "-e", NODE_HARNESS, json.dumps(specs)], input=script, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    loaded, forward, back, seek, play, pause = json.loads(done.stdout)
    assert loaded["max"] == pytest.approx(73 / 24, abs=1e-4)
    frame = round(3.5 / 24, 4)
    assert forward["times"] == [frame, frame, 0, frame] and forward["clock"] == f"{3.5 / 24:.2f} s, frame 3"
    assert back["times"][0] == round(2.5 / 24, 4) and back["clock"].endswith("frame 2")
    assert seek["times"] == [2.5, 2.5, 0, round(49 / 24, 4)]  # run-short held at its end
    assert play["button"] == "pause" and play["paused"] == [False, False, True, True]  # ended or missing: not played
    assert pause["button"] == "play" and all(pause["paused"])
