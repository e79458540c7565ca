"""The README demo end to end, as the shootout/demo deployment run by a process worker (tests/conftest.py) → a
verified bundle with exactly the files the README's run directory lists, recorded in Prefect."""

from __future__ import annotations

import json
import subprocess

import httpx
import imageio_ffmpeg

from remote.bundle import sha256_file
from remote.ffmpeg import ffmpeg_exe

CAMERAS = ["push-in", "pan right", "orbit left", "tilt up", "dolly left", "pull-out"]


def test_demo_ends_with_a_verified_bundle(demo_run) -> None:
    done = demo_run["result"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "finished successfully in 'Completed'" in done.stdout  # `prefect deployment run --watch`
    archive = demo_run["archive"]
    run_id = archive.name.removesuffix(".tar")
    run_dir = demo_run["out"] / run_id
    assert sha256_file(archive) == archive.with_name(archive.name + ".sha256").read_text().split()[0]

    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    expected = [
        "SHA256SUMS",
        "final/final_stitched.mp4",
        "job.yaml",
        "manifest.json",
        *[f"clips/clip_{i:03d}.mp4" for i in range(6)],
        *[f"frames/last_frame_{i:03d}.png" for i in range(6)],
        *[f"logs/log_{i:03d}.json" for i in range(6)],
        "status/progress.log",
        "status/status.json",
        "status/worker.log",
    ]
    assert files == sorted(expected)
    for line in (run_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert sha256_file(run_dir / name) == digest, name
    assert not (demo_run["out"] / ".box" / run_id).exists()  # the box's copy is gone once the bundle is safe


def test_the_film_is_a_30_to_60_s_720p_h264_video_of_six_chained_clips(demo_run) -> None:
    run_dir = demo_run["out"] / demo_run["archive"].name.removesuffix(".tar")
    video = run_dir / "final" / "final_stitched.mp4"
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(video)], capture_output=True, text=True).stderr
    assert 30 <= seconds <= 60 and frames == 6 * 144 + 1
    assert "Video: h264" in probe and "1280x720" in probe and "24 fps" in probe
    logs = [json.loads((run_dir / "logs" / f"log_{i:03d}.json").read_text()) for i in range(6)]
    assert [log["shot_card"]["camera"] for log in logs] == CAMERAS
    for i, log in enumerate(logs[1:], start=1):  # each clip starts from the previous clip's lossless last frame
        assert log["input_image"] == logs[i - 1]["last_frame"] | {"path": f"frames/last_frame_{i - 1:03d}.png"}
    assert logs[0]["input_image"]["path"] == "espresso.png"


def test_manifest_and_logs_are_complete_and_portable(demo_run) -> None:
    run_dir = demo_run["out"] / demo_run["archive"].name.removesuffix(".tar")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for key in [
        "run_id",
        "model",
        "pipeline_commit",
        "environment",
        "stitch",
        "final_video",
        "clips",
        "guardrails",
        "files",
        "spec",
        "reference_image",
    ]:
        assert manifest.get(key) is not None, key
    env = manifest["environment"]
    assert env["python"] and env["libraries"]["prefect"] and len(env["ffmpeg"]["sha256"]) == 64
    assert env["ffmpeg"]["version"].startswith("ffmpeg version")
    assert manifest["clips"] | {"list": None} == {"planned": 6, "finished": 6, "list": None}
    assert manifest["guardrails"]["outcome"] == "ok" and manifest["guardrails"]["clip_limit_s"] == 600
    assert manifest["stitch"]["settings"]["threads"] == 4
    log = json.loads((run_dir / "logs" / "log_003.json").read_text())
    for key in [
        "prompt",
        "shot_card",
        "seed",
        "params",
        "input_image",
        "last_frame",
        "clip_file",
        "timings_s",
        "peak_vram_bytes",
        "model",
        "libraries",
        "commit",
    ]:
        assert key in log, key
    assert log["params"]["frames"] == 145 and log["params"]["fps"] == 24 and log["seed"] == 1237
    assert {"load", "render", "encode"} <= set(log["timings_s"])
    text = "".join(p.read_text() for p in [run_dir / "manifest.json", *run_dir.glob("logs/*.json")])
    assert str(demo_run["out"]) not in text and "/root" not in text and "/home/" not in text


def test_the_run_is_recorded_in_prefect(demo_run) -> None:
    api = demo_run["api"].rstrip("/")
    run_id = demo_run["archive"].name.removesuffix(".tar")

    def runs_of(flow: str) -> list[dict]:
        return httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": [flow]}}, "limit": 200}).json()

    (demo,) = [r for r in runs_of("shootout") if r["parameters"].get("out_dir") == str(demo_run["out"])]
    assert demo["state_type"] == "COMPLETED"
    # its name (tasks/naming.py): the one Prefect gave it, the model and title, the run id
    assert demo["name"].endswith(f" · kenburns: Morning espresso · {run_id}") and demo["name"].count(" · ") == 2
    (worker,) = [r for r in runs_of("generate-clips") if r["parameters"]["job_dir"].endswith(run_id)]
    assert worker["state_type"] == "COMPLETED"  # the local box's worker flow reports to the same server
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [demo["id"]]}}})
    (summary,) = [a for a in artifacts.json() if a["key"] == "summary-demo"]
    assert "final_stitched.mp4" in summary["data"] and run_id in summary["data"]
