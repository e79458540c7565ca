"""Progress that says how long: the worker's status at each denoising step, the time left (tasks/eta.py: the plan
corrected by the steps measured), shown in the terminal's bars, in one line per clip where there is no terminal and
in the progress artifact; and the flow run's name (tasks/naming.py)."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
import yaml
from conftest import REPO, demo_data, write_spec
from rich.console import Console
from test_models import tiny_spec

from jobspecs import validate
from jobspecs.contracts import WorkerStatus
from jobspecs.plan import ClipPrediction, RunPrediction, plan_clips, predict_clip, predict_run
from remote.bundle import sha256_file
from remote.layout import JobPaths, stage_job
from tasks.box import ClipBar, RunProgress, clip_in_progress, progress_fraction, progress_text
from tasks.eta import Eta, duration_text, eta

LEFT = r"~(\d+ h \d\d min|\d+ min \d\d s|\d+ s) left"  # duration_text's forms


def prediction_of(*clips: dict[str, float], load_s: float = 30.0) -> RunPrediction:
    """A plan of clips with these phases (seconds), for arithmetic by hand."""
    predicted = [
        ClipPrediction(i, 121, 1280, 704, 0, 0.0, sum(phases.values()), phases) for i, phases in enumerate(clips)
    ]
    total = load_s + sum(clip.seconds for clip in predicted)
    return RunPrediction("wan22_ti2v_5b", "baseline", "H100", predicted, load_s, total, 600.0, 3600.0)


# 20 steps of 2 s predicted; clip 0 also pays a 10 s compile: 60, 50 and 50 s
FIRST = {"prep": 2.0, "compile": 10.0, "denoise": 40.0, "decode": 6.0, "interpolate": 0.0, "encode": 2.0}
LATER = FIRST | {"compile": 0.0}
PLAN = prediction_of(FIRST, LATER, LATER)


def generating(clip: int, **fields) -> WorkerStatus:
    return WorkerStatus(state="generating", clips_total=3, clips_done=clip, clip=clip, **fields)


@pytest.mark.parametrize(
    ("status", "carried", "expected"),
    [
        # the model loading: its load as planned and every clip
        (WorkerStatus(state="loading", clips_total=3), None, Eta(190.0, None, None, None)),
        # clip 0 before its first step: the whole clip as planned
        (generating(0), None, Eta(160.0, 60.0, None, None)),
        # step 2 of 20, nothing steady measured yet: 18 steps × 2 s + decode 6 + encode 2
        (generating(0, step=2, steps=20), None, Eta(144.0, 44.0, None, None)),
        # step 10, steady steps of 3 s against 2 planned: × 1.5 on (10 × 2 + 8) and on the later clips' 100 s
        (generating(0, step=10, steps=20, steady_step_s=3.0), None, Eta(192.0, 42.0, 1.5, 1.5)),
        # clip 0 done, clip 1 not started: its step fields still measure the ratio
        (generating(0, step=20, steps=20, steady_step_s=3.0).model_copy(update={"clips_done": 1}), None,
         Eta(150.0, None, 1.5, 1.5)),
        # clip 1 before its first step: the ratio carried from clip 0
        (generating(1, last_clip_s=70.0), 1.5, Eta(150.0, 75.0, 1.5, 1.5)),
        # nothing carried: clip 0's measured 70 s over its planned 60 s
        (generating(1, last_clip_s=70.0), None, Eta(350 / 3, 175 / 3, 7 / 6, None)),
        # the worker ended: nothing left
        (WorkerStatus(state="generated", clips_total=3, clips_done=3), 1.5, Eta(0.0, None, 1.5, 1.5)),
    ],
)  # fmt: skip
def test_the_time_left_by_hand(status, carried, expected) -> None:
    assert eta(PLAN, status, carried) == pytest.approx(expected)


def test_a_model_without_steps_is_corrected_by_its_finished_clips() -> None:
    plan = prediction_of({"render": 8.0, "encode": 2.0}, {"render": 8.0, "encode": 2.0}, load_s=0.0)
    status = WorkerStatus(state="generating", clips_total=2, clips_done=1, clip=1, last_clip_s=5.0)
    assert eta(plan, status) == Eta(run_s=5.0, clip_s=5.0, ratio=0.5, step_ratio=None)


def test_the_figures_shown() -> None:
    assert [duration_text(s) for s in (0.2, 45, 250, 3900)] == ["~1 s", "~45 s", "~4 min 10 s", "~1 h 05 min"]
    status = WorkerStatus(state="generating", clips_total=6, clips_done=2, clip=2, step=12, steps=50)
    assert progress_text(status, 6, Eta(250.0, 70.0, 1.0, 1.0)) == "clip 3 of 6, step 12/50, ~4 min 10 s left"
    assert progress_fraction(status, 6) == pytest.approx((2 + 12 / 50) / 6)
    between = status.model_copy(update={"clips_done": 3})  # clip 2 finished, clip 3 not started
    assert progress_text(between, 6, Eta(300.0, None, 1.0, 1.0)) == "3 of 6 clips, ~5 min 00 s left"
    assert progress_fraction(between, 6) == 0.5
    done = WorkerStatus(state="generated", clips_total=6, clips_done=6)
    assert progress_text(done, 6, Eta(0.0, None, 1.0, 1.0)) == progress_text(done, 6, None) == "6 of 6 clips"


def test_the_time_left_on_a_recorded_clip_is_within_the_plans_error() -> None:
    """Every step of the clips the GPU benchmarks recorded (benchmarks/results: each step's seconds, then the VAE
    decode) replayed as the worker reports them. Before the third step the time left is the plan's; from it on,
    corrected by the steps measured, it is within the planner's error (15 % of the clip: tests/test_planner.py
    holds the plan to that), and over every recorded step it errs less than the plan alone."""
    from test_planner import model_spec

    runs = sorted((REPO / "benchmarks" / "results").glob("gpu_clip_run_*_NVIDIA-H100-80GB-HBM3.json"))
    if not runs:
        pytest.skip("benchmarks/results is absent (benchmarks/ is not shipped in the wheel)")
    corrected_error = plan_error = 0.0
    for path in runs:
        run = json.loads(path.read_text())
        fa4 = run["settings"]["speed"].get("flash_attn_4", "off").startswith("on")
        spec = model_spec(run["model"], memory="24gb", profile=run["profile"], first_block_cache=0.0, flash_attn_4=fa4)
        clip = predict_clip(spec, replace(plan_clips(spec)[0], frames=run["clip"]["frames"]), "H100", True)
        plan = prediction_of({name: clip.phases[name] for name in ("prep", "compile", "denoise", "decode")}, load_s=0)
        steps, measured = run["step_s"], run["denoise_s"] + run["decode_s"]  # the GPU's part, as recorded
        for step in range(1, len(steps) + 1):
            steady = steps[2:step]
            status = WorkerStatus(
                state="generating",
                clips_total=1,
                clip=0,
                step=step,
                steps=len(steps),
                steady_step_s=sum(steady) / len(steady) if steady else None,
            )
            left, planned = eta(plan, status), eta(plan, status.model_copy(update={"steady_step_s": None}))
            truth = sum(steps[step:]) + run["decode_s"]
            assert left.run_s == left.clip_s
            if not steady:
                assert left == planned and left.ratio is None
                continue
            assert left.clip_s == pytest.approx(truth, abs=0.15 * measured), (path.name, step)
            corrected_error += abs(left.clip_s - truth)
            plan_error += abs(planned.clip_s - truth)
    assert corrected_error < plan_error


def test_the_terminal_shows_the_clips_and_the_clip_nows_steps_with_the_time_left() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    with ClipBar(3, console=console) as bar:
        bar.update(generating(0, step=20, steps=20).model_copy(update={"clips_done": 1}), Eta(100.0, None, 1.0, 1.0))
        bar.update(generating(1, step=12, steps=20), Eta(250.0, 24.0, 1.0, 1.0))
    shown = screen.getvalue()
    assert re.search(r"clips .* 1/3 .* ~4 min 10 s left", shown), shown
    assert re.search(r"clip 2 steps .* 12/20 .* ~24 s left", shown), shown


class Lines:
    """A logger that keeps its lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


def stage(root, data: dict) -> JobPaths:
    reference = REPO / "jobspecs" / "espresso.png"
    run_info = {
        "run_id": "progress",
        "created_at": "2026-01-01T00:00:00Z",
        "spec_file": "spec.yaml",
        "overrides": ["model_source=tiny"],
        "commit": {"sha": None},
        "reference": {"file": reference.name, "sha256": sha256_file(reference)},
    }
    paths = JobPaths(root / "box" / "progress")
    stage_job(paths.job_dir, data, reference, run_info)
    return paths


def followed_run(paths: JobPaths, monkeypatch) -> dict:
    """The real worker's flow (remote.worker.generate_clips) in this process, followed at every status write it
    makes (the laptop polls each second and sees only some), through what follow_worker shows (RunProgress) with no
    terminal: the statuses, the progress artifact's every update, the lines logged and the artifact as Prefect
    holds it at the end."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.logging.handlers import APILogWorker

    import remote.worker
    import tasks.box

    spec = validate(yaml.safe_load(paths.job_yaml.read_text()))
    clips = len(plan_clips(spec))
    statuses, updates, log = [], [], Lines()
    write_status, write_artifact = remote.worker.update_status, tasks.box.update_progress_artifact

    def artifact_update(artifact_id, progress, description):
        updates.append((progress, description))
        return write_artifact(artifact_id, progress, description=description)

    monkeypatch.setattr(tasks.box, "update_progress_artifact", artifact_update)
    key = f"progress-test-{spec.model.replace('_', '-')}"

    @flow(name="followed-run")
    def follow() -> None:
        view = RunProgress(key, clips, predict_run(spec), log, Console(file=io.StringIO()))

        def status_update(run_dir, **fields):
            status = write_status(run_dir, **fields)
            statuses.append(status)
            view.show(status)
            return status

        monkeypatch.setattr(remote.worker, "update_status", status_update)
        with view:
            remote.worker.generate_clips(str(paths.job_dir))

    follow()
    APILogWorker.drain_all(timeout=30)  # the runs' last lines, sent now (not at exit, after the server stopped)
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return {"statuses": statuses, "updates": updates, "lines": log.lines, "artifact": artifact, "clips": clips}


def test_a_tiny_run_reports_each_step_to_the_progress_artifact(tiny_home, prefect_api, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SHOOTOUT_TINY_HF_HOME", str(tiny_home["home"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths = stage(tmp_path, tiny_spec("wan22_ti2v_5b", memory="24gb", steps=4))
    run = followed_run(paths, monkeypatch)
    assert run["clips"] == 2

    steps = [(s.clip, s.step, s.steps) for s in run["statuses"] if clip_in_progress(s) is not None and s.step]
    assert steps == [(clip, step, 4) for clip in (0, 1) for step in (1, 2, 3, 4)]  # each step, as it happened
    for status in run["statuses"]:
        if status.step is not None:
            assert status.step_s > 0 and status.clip_elapsed_s > 0
            assert (status.steady_step_s is not None) == (status.step >= 3)  # the steps after the first two
    assert run["statuses"][-1].last_clip_s > 0

    # the artifact: (clips done + steps done / steps) / clips, a step at a time, the clip, step and time left
    progress = [value for value, _ in run["updates"]]
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert {12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5} <= set(progress)
    descriptions = [text for _, text in run["updates"]]
    for clip in (1, 2):
        for step in (1, 2, 3, 4):
            assert any(re.fullmatch(f"clip {clip} of 2, step {step}/4, {LEFT}", d) for d in descriptions), descriptions
    assert any(re.fullmatch(f"1 of 2 clips, {LEFT}", d) for d in descriptions), descriptions  # between the clips
    assert (run["artifact"].data, run["artifact"].description) == (100.0, "2 of 2 clips")

    # no terminal: a line per clip, its seconds and the time left for the others
    first, second = run["lines"]
    assert re.fullmatch(rf"clip 1 of 2 done in \d+\.\d s; {LEFT} for the other 1 clip", first), first
    assert re.fullmatch(r"clip 2 of 2 done in \d+\.\d s", second), second


def test_kenburns_reports_no_steps(prefect_api, monkeypatch, tmp_path) -> None:
    data = demo_data()
    data.update(model_source="tiny", shots=[dict(s, duration_s=5) for s in data["shots"][:2]])
    data["generation"] = {"width": 256, "height": 144}
    data["stitch"]["preset"] = "ultrafast"
    run = followed_run(stage(tmp_path, data), monkeypatch)
    assert all(s.step is None and s.steps is None and s.steady_step_s is None for s in run["statuses"])
    assert [value for value, _ in run["updates"]] == sorted(value for value, _ in run["updates"])
    assert {50.0, 100.0} <= {value for value, _ in run["updates"]}
    assert any(re.fullmatch(f"clip 2 of 2, {LEFT}", text) for _, text in run["updates"])
    assert run["lines"][0].startswith("clip 1 of 2 done in ") and "left for the other 1 clip" in run["lines"][0]


def test_the_flow_run_is_named_by_model_title_and_run_id(prefect_api, tmp_path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogWorker
    from prefect.runtime import flow_run

    from flows.console import find_run
    from tasks.naming import add_run_id_to_name, shootout_run_name

    spec = write_spec(tmp_path, demo_data() | {"title": "A morning espresso at the old bar, before opening time"})

    @flow(name="named", flow_run_name=shootout_run_name)
    def named(spec: str, overrides: list[str] | None = None) -> str:
        add_run_id_to_name("20260101-000000-wan22_ti2v_5b-abc123")
        return flow_run.id

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(named(str(spec), ["model=wan22_ti2v_5b"]))
        given, label, run_id = run.name.split(" · ")
        assert label == "wan22_ti2v_5b: A morning espresso at the old bar…"  # the title cut at 40 characters
        assert run_id == "20260101-000000-wan22_ti2v_5b-abc123"
        assert given and " " not in given  # the name Prefect gave it, which `prefect deployment run` prints
        assert find_run(client, given).id == find_run(client, run_id).id == run.id  # what `shootout watch` finds

        missing = client.read_flow_run(named(str(tmp_path / "missing.yaml")))
        assert missing.name.split(" · ")[1:] == ["missing.yaml", "20260101-000000-wan22_ti2v_5b-abc123"]
    APILogWorker.drain_all(timeout=30)  # the runs' last lines, sent now (not at exit, after the server stopped)
