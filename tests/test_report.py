"""The comparison report over tiny real runs: kenburns clips at 128×72, encoded, chained and logged as the worker
does, one clean, one with a flash at its first seam, one whose colour drifts clip after clip."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import yaml
from conftest import REPO, cpu_clip_params, demo_data
from PIL import Image

from flows.cli import main
from jobspecs.contracts import (
    ClipLog,
    Commit,
    Environment,
    FfmpegBuild,
    GuardrailOutcome,
    HashedFile,
    Manifest,
    ManifestClips,
    ModelInfo,
    NightCost,
    NightRun,
    ReferenceImage,
    Report,
    RunCost,
    SpecRecord,
    Timings,
    VideoFile,
)
from jobspecs.schema import Shot
from remote.bundle import sha256_file
from remote.ffmpeg import encode_frames
from remote.models.kenburns import render
from report import ReportError, compare_runs, contact_sheet, parse_weights
from report import metrics as m
from report.compare import METRICS, resolve_weights
from report.page import markdown_text

W, H, FRAMES, FPS = 128, 72, 25, 24
CAMERAS = ["push-in", "pan right", "tilt up"]


def reference_image() -> np.ndarray:
    return m.fit(Image.open(REPO / "jobspecs" / "espresso.png"), W, H)


def clip_log(run, run_id: str, i: int, camera: str, model: str, provider: str) -> ClipLog:
    """Clip i's log, as the worker writes it, for the clip and last frame already in `run`."""
    clip, last = run / f"clips/clip_{i:03d}.mp4", run / f"frames/last_frame_{i:03d}.png"
    source = REPO / "jobspecs" / "espresso.png" if i == 0 else run / f"frames/last_frame_{i - 1:03d}.png"
    return ClipLog(
        run_id=run_id,
        clip=i,
        shot=i,
        part=0,
        parts=1,
        prompt=f"shot {i}",
        negative_prompt=None,
        shot_card=Shot.model_validate(demo_data()["shots"][i] | {"camera": camera}),
        seed=7 + i,
        params=cpu_clip_params(W, H, FRAMES, FPS),
        input_image=HashedFile(path=source.name, sha256=sha256_file(source)),
        color_match=None,
        last_frame=HashedFile(path=f"frames/{last.name}", sha256=sha256_file(last)),
        clip_file=VideoFile(path=f"clips/{clip.name}", sha256=sha256_file(clip), frames=FRAMES, seconds=FRAMES / FPS),
        timings_s=Timings(load=1.0, render=1.5, encode=0.5, clip_total=2.0 + 0.5 * i),
        peak_vram_bytes=3 * 2**30 if provider == "vast" else None,
        model=ModelInfo(id=model, repo=None, revision="builtin"),
        libraries={},
        commit=Commit(sha=None),
        started_at=f"2026-01-01T00:00:{10 + 3 * i:02d}Z",
        finished_at=f"2026-01-01T00:00:{12 + 3 * i:02d}Z",
    )


def manifest_of(run_id: str, logs: list[ClipLog]) -> Manifest:
    """The manifest of a run of these logs, with nothing stitched (the report joins the clips as a cut would)."""
    reference = REPO / "jobspecs" / "espresso.png"
    return Manifest(
        run_id=run_id,
        title="Tiny espresso",
        created_at="2026-01-01T00:00:00Z",
        bundled_at="2026-01-01T00:00:30Z",
        model=logs[0].model,
        pipeline_commit=Commit(sha=None),
        spec=SpecRecord(file="demo.yaml", overrides=[], job_yaml_sha256="0" * 64),
        reference_image=ReferenceImage(file=reference.name, sha256=sha256_file(reference)),
        environment=Environment(
            python="3.11",
            os="Linux",
            machine="x86_64",
            cpus=2,
            libraries={},
            ffmpeg=FfmpegBuild(version="ffmpeg version 7", binary="ffmpeg", sha256="0" * 64, source="test"),
            gpus=[],
        ),
        stitch=None,
        final_video=None,
        clips=ManifestClips(planned=len(CAMERAS), finished=len(logs), entries=[]),
        guardrails=GuardrailOutcome(clip_limit_s=600.0, run_limit_s=1800.0, outcome="ok", reason=None),
        files={},
    )


def make_run(root, run_id: str, model: str, flash: bool = False, tint: float = 0.0, provider: str = "local"):
    """A run directory as an extracted bundle holds it: clips, lossless last frames, logs, manifest, job.yaml."""
    run = root / run_id
    for sub in ("clips", "frames", "logs"):
        (run / sub).mkdir(parents=True)
    image, logs = reference_image(), []
    for i, camera in enumerate(CAMERAS):
        frames = render(Image.fromarray(image), camera, FRAMES, FPS, seed=7 + i).astype(np.float64)
        ramp = tint * np.arange(FRAMES)[:, None, None] / (FRAMES - 1)  # colour drifting within the clip
        frames[..., 0] += ramp
        frames[..., 2] -= ramp
        if flash and i == 1:
            frames[1:3] += 60  # two bright frames right after the first seam
        frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
        clip, last = run / f"clips/clip_{i:03d}.mp4", run / f"frames/last_frame_{i:03d}.png"
        encode_frames(frames, clip, FPS, "ultrafast", 18, 2)
        Image.fromarray(frames[-1]).save(last)
        image = frames[-1]
        log = clip_log(run, run_id, i, camera, model, provider)
        (run / f"logs/log_{i:03d}.json").write_text(log.to_json())
        logs.append(log)
    (run / "manifest.json").write_text(manifest_of(run_id, logs).to_json())
    job = demo_data() | {
        "model": model,
        "generation": {"width": W, "height": H},
        "infrastructure": {"provider": provider},
    }
    (run / "job.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    clean = make_run(root, "run-clean", "kenburns")
    flashed = make_run(root, "run-flash", "wan22_ti2v_5b", flash=True, provider="vast")
    drifting = make_run(root, "run-drift", "cogvideox15_5b_i2v", tint=12, provider="vast")
    cost = RunCost(
        run="run-flash",
        model="wan22_ti2v_5b",
        clips=2,
        instance="1",
        gpu="RTX 4090",
        usd_per_hour=0.4,
        billed_s=600,
        usd_total=0.0667,
        usd_per_video_s=None,
        estimate_usd=None,
        estimate_s=None,
    )
    (root / "run-flash.cost.json").write_text(cost.to_json())  # run-drift has none: its cost is n/a
    out = root / "report"
    result = compare_runs([clean, flashed, drifting], out)
    return {
        "dirs": [clean, flashed, drifting],
        "out": out,
        "result": result,
        "by_id": {r["run_id"]: r for r in result["runs"]},
    }


def test_decoding_has_no_colour_bias(tmp_path) -> None:
    image = reference_image()
    encode_frames(np.stack([image] * 3), tmp_path / "still.mp4", FPS, "ultrafast", 0, 2)
    decoded = m.decode(tmp_path / "still.mp4", W, H)
    assert decoded.shape == (3, H, W, 3)
    assert abs(float((decoded.astype(float) - image).mean())) < 0.1  # the default swscale path gives ≈ −1


def test_delta_e_is_zero_against_itself_and_grows_with_a_colour_shift() -> None:
    image = reference_image()
    ref = m.mean_lab(image)
    shifted = [m.delta_e2000(m.mean_lab(np.clip(image + [s, 0, -s], 0, 255).astype(np.uint8)), ref) for s in (4, 8, 16)]
    assert m.delta_e2000(m.mean_lab(image), ref) < 1e-9
    assert 0 < shifted[0] < shifted[1] < shifted[2]
    # Sharma, Wu & Dalal (2005), CIEDE2000 test data, pairs 1 and 17
    assert m.delta_e2000(np.array([50, 2.6772, -79.7751]), np.array([50, 0, -82.7485])) == pytest.approx(2.0425, 1e-4)
    assert m.delta_e2000(np.array([50, 2.5, 0]), np.array([73, 25, -18])) == pytest.approx(27.1492, 1e-4)


def test_every_metric_is_filled_for_every_run(runs) -> None:
    for run in runs["result"]["runs"]:
        assert len(run["clips"]) == 3 and len(run["seams"]) == 2
        for key, value in run["metrics"].items():
            if key != "cost":
                assert value is not None and math.isfinite(value), (run["run_id"], key)
        for row in run["clips"] + run["seams"]:
            assert all(v is not None for v in row.values()), row
        assert run["score"] is not None and run["timing"]["clip_s_mean"] == pytest.approx(2.5)
    assert runs["by_id"]["run-clean"]["cost"]["usd_total"] == 0  # local
    assert runs["by_id"]["run-flash"]["cost"]["usd_per_video_s"] > 0  # from run-flash.cost.json
    assert runs["by_id"]["run-drift"]["cost"]["usd_total"] is None
    assert runs["by_id"]["run-flash"]["peak_vram_gib"] == 3.0


def test_the_flashed_seam_scores_worse_than_a_clean_one(runs) -> None:
    clean, flashed = runs["by_id"]["run-clean"], runs["by_id"]["run-flash"]
    flash_seam, clean_seam = flashed["seams"][0], flashed["seams"][1]
    assert flash_seam["flash_ratio"] > 3 * clean_seam["flash_ratio"]
    assert flash_seam["flash_ratio"] > 3 * clean["seams"][0]["flash_ratio"]
    assert flash_seam["ssim_ratio"] < clean["seams"][0]["ssim_ratio"]
    assert flashed["metrics"]["flash"] > clean["metrics"]["flash"]
    assert flashed["metrics"]["flicker"] > clean["metrics"]["flicker"]


def test_colour_drift_grows_clip_after_clip(runs) -> None:
    clean, drifting = runs["by_id"]["run-clean"], runs["by_id"]["run-drift"]
    drift = [c["delta_e2000"] for c in drifting["clips"]]
    assert drift[0] < drift[1] < drift[2]
    assert drifting["metrics"]["color_drift"] > clean["metrics"]["color_drift"] + 3


def test_the_clean_run_wins(runs) -> None:
    result, by_id = runs["result"], runs["by_id"]
    assert result["winner"] == "kenburns"
    assert by_id["run-clean"]["score"] > max(by_id["run-flash"]["score"], by_id["run-drift"]["score"])
    report = json.loads(result["json"].read_text())
    assert any(line.startswith("cost: n/a for run-drift") for line in report["metrics_left_out"])


def test_html_is_self_contained_with_images_and_plots(runs) -> None:
    page = runs["result"]["html"].read_text()
    assert not re.search(r"https?:|href=|url\(|@import", page, re.IGNORECASE)  # nothing loaded from elsewhere
    assert all(src.startswith("data:image/") for src in re.findall(r'src="([^"]*)"', page))
    assert page.count("data:image/jpeg;base64,") == 3 + 3 * 2  # a contact sheet per run, a strip per seam
    assert page.count("<svg") == 2 + 3  # ΔE and sharpness per clip, the lightness of each film
    assert "Winner: <b>kenburns</b>" in page


def test_json_and_markdown_round_trip(runs) -> None:
    result = runs["result"]
    report = json.loads(result["json"].read_text())
    assert report["runs"] == json.loads(json.dumps(result["runs"]))
    assert {x["key"] for x in report["metrics"]} == {x.key for x in METRICS}
    assert (runs["out"] / "report.md").read_text() == result["markdown"]
    assert "**Winner: kenburns**" in result["markdown"] and "n/a" in result["markdown"]


def test_contact_sheet_shows_first_and_last_frame_of_each_clip(runs, tmp_path) -> None:
    sheet = contact_sheet(runs["dirs"][0], tmp_path / "sheet.jpg", thumb_width=100)
    image = Image.open(sheet)
    assert image.format == "JPEG"
    assert image.size == (3 * (2 * 100 + 4) + 2 * 12, 16 + 56)  # 3 clips in a row, each first | last


def test_weights_from_the_spec_then_the_caller() -> None:
    resolved, source = resolve_weights([("a", {}), ("b", {"report_weights": {"flash": 5}})], {"cost": 0})
    assert resolved["flash"] == 5 and resolved["cost"] == 0 and "b/job.yaml" in source
    assert parse_weights(["color_drift=3", "speed=0.5"]) == {"color_drift": 3.0, "speed": 0.5}
    for bad in (["nope=1"], ["flash"], ["flash=-1"]):
        with pytest.raises(ReportError):
            parse_weights(bad)


def test_cli_report_writes_the_three_files(runs, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    clean, flashed, _ = runs["dirs"]
    argv = ["report", str(clean), str(flashed), "--out", str(out), "--weights", "flash=4"]
    assert main([*argv, "--reference", str(REPO / "jobspecs" / "espresso.png")]) == 0
    printed = capsys.readouterr().out
    for name in ("report.html", "report.json", "report.md"):
        assert (out / name).is_file() and str(out / name) in printed
    report = json.loads((out / "report.json").read_text())
    assert report["weights"]["flash"] == 4 and report["reference"] == "espresso.png (given)"
    assert main(["report", str(tmp_path), "--out", str(out)]) == 2  # not a run directory
    assert "not a run directory" in capsys.readouterr().err


def test_a_run_stopped_by_a_guardrail_is_scored_on_what_it_finished(runs, tmp_path) -> None:
    stopped = tmp_path / "run-stopped"
    shutil.copytree(runs["dirs"][0], stopped)
    (stopped / "logs" / "log_002.json").unlink()
    manifest = json.loads((stopped / "manifest.json").read_text())
    manifest["run_id"], manifest["guardrails"]["outcome"] = "run-stopped", "stopped"
    (stopped / "manifest.json").write_text(json.dumps(manifest))
    result = compare_runs([runs["dirs"][0], stopped], tmp_path / "report")
    partial = result["runs"][1]
    assert partial["clips_finished"] == 2 and len(partial["seams"]) == 1
    assert partial["metrics"]["completion"] == pytest.approx(2 / 3) and partial["normalised"]["completion"] == 0
    assert result["winner"] == "run-clean"  # both runs are kenburns: the run id names the winner


def test_the_report_names_the_levers_that_ran_and_keeps_why_the_others_did_not() -> None:
    """A run's settings line says which arithmetic-changing levers were on (the adapter's speed notes start with
    "on" or a cache's threshold); the ones skipped keep their reason in `levers`."""
    from jobspecs.contracts import RunSettings
    from report.compare import settings_text

    levers = {
        "sage_attention": "on: 8-bit attention (SageAttention 1.0.6's kernels, padding keys masked) for …",
        "fp8_linear": "skipped on sm_86: fp8 tensor cores are sm_89+ (Ada, Hopper); bf16 linear layers used",
        "mag_cache": "threshold 0.06, K 2, retention 0.2: 24 of 50 steps skipped per branch (…)",
        "first_block_cache": "off",
    }
    settings = RunSettings(
        generation={"profile": "cached"},
        effective={"width": 1280, "height": 704, "frames": 121, "fps": 24, "steps": 50},
        profile="cached",
        source="hub",
        memory_plan="24gb",
        levers=levers,
    )
    text = settings_text(settings)
    assert text.endswith("profile cached, source hub, 8-bit attention, MagCache"), text
    assert "fp8" not in text and "First Block Cache" not in text
    assert RunSettings.model_validate_json(settings.model_dump_json()).levers == levers


def night_cost(placement: str = "one-box") -> NightCost:
    """A night of three models: two runs with their cost, one that failed before it made a cost file."""
    return NightCost(
        placement=placement,
        instances=1 if placement == "one-box" else 3,
        usd_total=1.5,
        shared_usd=0.4213 if placement == "one-box" else 0.0,
        runs=[
            NightRun(name="kenburns", run="run-clean", state="COMPLETED", usd_total=0.61),
            NightRun(
                name="wan", run="run-flash", state="COMPLETED", usd_total=0.0042 if placement == "parallel" else 0.89
            ),
            NightRun(name="cogvideox", run=None, state="FAILED", usd_total=None),
        ],
    )


def test_the_night_s_cost_is_in_the_json_the_markdown_and_the_page(runs, tmp_path) -> None:
    night = night_cost()
    result = compare_runs(runs["dirs"][:2], tmp_path / "report", night=night)
    report = json.loads(result["json"].read_text())
    assert report["night"] == json.loads(night.to_json())
    assert Report.model_validate(report).night == night
    markdown = result["markdown"]
    assert "## The night's cost" in markdown
    assert "Placement: one-box — one instance for every model" in markdown and "1 instance rented" in markdown
    for row in (
        "| kenburns | run-clean | COMPLETED | $0.61 |",
        "| wan | run-flash | COMPLETED | $0.89 |",
        "| cogvideox | none | FAILED | — |",
        "| shared: setup and downloads, already split into the runs' $ |  |  | $0.42 |",
        "| the night's total |  |  | $1.50 |",
    ):
        assert row in markdown.splitlines(), row
    assert "$ —: cogvideox made no cost file." in markdown
    page = result["html"].read_text()
    assert "<h2>The night's cost</h2>" in page and "Placement: one-box" in page
    for cells in (
        "<th>kenburns</th><td>run-clean</td><td>COMPLETED</td><td>$0.61</td>",
        "<th>wan</th><td>run-flash</td><td>COMPLETED</td><td>$0.89</td>",
        "<th>cogvideox</th><td>none</td><td>FAILED</td><td>—</td>",
        "<td>$0.42</td>",
        "<th>the night&#x27;s total</th><td></td><td></td><td>$1.50</td>",
    ):
        assert cells in page, cells
    assert "$ —: cogvideox made no cost file." in page
    assert not re.search(r"https?:|href=|url\(|@import", page, re.IGNORECASE)  # still self-contained


def test_a_parallel_night_has_no_shared_part(runs) -> None:
    report = Report.model_validate_json(runs["result"]["json"].read_text())
    markdown = markdown_text(report.model_copy(update={"night": night_cost("parallel")}))
    assert "Placement: parallel — one instance per model, each with its own setup and download." in markdown
    assert "3 instances rented" in markdown and "shared" not in markdown
    assert "| wan | run-flash | COMPLETED | $0.0042 |" in markdown  # a fraction of a cent does not read as $0.00
    assert "| the night's total |  |  | $1.50 |" in markdown


def test_runs_compared_loose_say_nothing_about_a_night(runs) -> None:
    result = runs["result"]
    assert json.loads(result["json"].read_text())["night"] is None
    for text in (result["markdown"], result["html"].read_text()):
        assert "night" not in text.lower() and "placement" not in text.lower()


def test_cli_report_shows_the_night_s_cost_of_one_night_s_runs(runs, tmp_path, capsys) -> None:
    night_dir = tmp_path / "compare-20260101-010000"
    clean, flashed, _ = runs["dirs"]
    run_dirs = []
    for name, run in (("kenburns", clean), ("wan", flashed)):
        run_dirs.append(shutil.copytree(run, night_dir / name / run.name))
        if (cost := run.with_name(f"{run.name}.cost.json")).exists():
            shutil.copy(cost, night_dir / name / cost.name)
    night = night_cost()
    (night_dir / "night.cost.json").write_text(night.to_json())
    out = tmp_path / "report"
    assert main(["report", *map(str, run_dirs), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    assert NightCost.model_validate(json.loads((out / "report.json").read_text())["night"]) == night
    assert "| the night's total |  |  | $1.50 |" in (out / "report.md").read_text()

    bad = json.loads(night.to_json()) | {"placement": "two-box"}
    for text, said in ((json.dumps(bad), "placement"), ("{not json", "Invalid JSON")):
        (night_dir / "night.cost.json").write_text(text)
        assert main(["report", *map(str, run_dirs), "--out", str(out)]) == 0  # a warning, not a failure
        err = capsys.readouterr().err
        assert err.startswith(f"WARNING {night_dir / 'night.cost.json'}: not read (") and said in err, err
        assert json.loads((out / "report.json").read_text())["night"] is None
        assert "night" not in (out / "report.md").read_text().lower()


def test_runs_without_a_final_video_make_no_film(runs) -> None:
    """These runs were never stitched: no comparison.mp4, no players, and the page says why; a report.json written
    before the film existed still reads."""
    result = runs["result"]
    report = json.loads(result["json"].read_text())
    assert report["film"] is None and report["film_held_s"] == {} and result["film"] is None
    assert not (runs["out"] / "comparison.mp4").exists()
    page = result["html"].read_text()
    assert "No run has a final video (final/final_stitched.mp4): no films to show." in page and "<video" not in page
    older = {key: value for key, value in report.items() if key not in ("film", "film_held_s")}
    assert Report.model_validate(older).film is None
