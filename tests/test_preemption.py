"""Interruptible (bid) rentals that Vast takes away mid-run: `shootout run` → the real vastai client → the fake Vast
API (bids, an outbid control) → a real sshd. A preempted run is noticed, its instance destroyed, another rented, and
the run goes on from the last clip copied here, to the same film as an uninterrupted run; past max_preemptions (or
with nothing left to rent) what finished is bundled here. Every test ends with zero live instances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DEMO, VAST_KEY, shootout_cli, stop_box_processes, wait_until
from fakes.vast_api import FakeVast
from test_remote_runs import SMALL_SETS, bundle_of, hashes, local_hashes, remote_args, run_env, start_run

from remote.bundle import sha256_file

BID_SETS = ["--set", "infrastructure.interruptible=true", "--set", "infrastructure.preemption_check_s=1"]
BID_MARGIN = 1.25  # the schema's default


@pytest.fixture
def fake(sshd_server, tmp_path):
    """Two matching 4090 offers with distinct min_bids (5001 the cheaper, 5003 made reliable enough to match); a
    preempted instance's processes end with it, as a stopped container's do."""
    root = tmp_path / "box"
    with FakeVast(ssh_host="127.0.0.1", ssh_port=sshd_server.port, api_key=VAST_KEY) as server:
        server.configure(null_polls=0, loading_polls=0)
        server.update_offer(5001, min_bid=0.20)
        server.update_offer(5003, min_bid=0.22, reliability=0.995, reliability2=0.995)
        server.on_preempt.append(lambda instance_id: stop_box_processes(root / str(instance_id)))
        yield server
    stop_box_processes(root)


def instance_clips_done(root: Path, instance_id: int) -> int:
    """Clips finished on one instance's box (its status file), 0 before it has one."""
    for path in (root / str(instance_id)).glob("*/run/status/status.json"):
        try:
            return json.loads(path.read_text()).get("clips_done", 0)
        except json.JSONDecodeError:
            return 0
    return 0


def preempt_when(fake: FakeVast, root: Path, clips_done: int, machine_gone: bool = False) -> int:
    """Wait until the live instance has `clips_done` finished clips, then outbid it; its id."""

    def ready() -> int | None:
        live = fake.live_instances()
        return live[-1] if live and instance_clips_done(root, live[-1]) >= clips_done else None

    instance_id = wait_until(ready, what=f"{clips_done} clips on the live instance")
    fake.preempt(instance_id, machine_gone=machine_gone)
    return instance_id


def run_preempted(args: list[str], env: dict[str, str], fake: FakeVast, root: Path, *at: tuple[int, bool]):
    """`shootout run` with `args`, outbid once per (clips done, machine gone) of `at`, in order; the finished
    process (returncode, stdout, stderr) and the first preempted instance's id."""
    run = start_run(args, env)
    try:
        first = [preempt_when(fake, root, clips_done=done, machine_gone=gone) for done, gone in at][0]
        stdout, stderr = run.communicate(timeout=600)
    finally:
        run.kill()
    return run.returncode, stdout, stderr, first


def created_bids(fake: FakeVast) -> list[tuple[str, float]]:
    """(offer id, bid) of every create, in order."""
    return [
        (r["path"].rstrip("/").rsplit("/", 1)[-1], r["body"]["price"])
        for r in fake.requests_to("PUT", "/api/v0/asks/*/")
    ]


def test_a_run_preempted_after_clip_2_and_after_clip_4_finishes_with_the_same_film(
    small_local_run, fake, sshd_server, box_venv, tmp_path
) -> None:
    """Preempted after clip 2 (a higher bidder takes machine 5001 for good: the next offer, 5003, is rented), and
    again after clip 4 (5003 is offered again: rented again); the third instance finishes the film."""
    out, root = tmp_path / "out", tmp_path / "box"
    args = ["--out", str(out), *remote_args("vast", sshd_server, box_venv, root, *SMALL_SETS, *BID_SETS)]
    env = run_env(small_local_run["api"], tmp_path, fake)
    returncode, stdout, stderr, first = run_preempted(args, env, fake, root, (2, True), (4, False))
    assert returncode == 0, stdout[-3000:] + stderr[-5000:]
    run_dir, manifest = bundle_of(out)
    assert hashes(manifest) == local_hashes(small_local_run)  # the same clips, frames and film, byte for byte
    assert manifest["guardrails"]["outcome"] == "ok"
    assert fake.live_instances() == []
    assert f"Vast stopped interruptible instance {first}" in stderr
    assert "preemption 1 of at most 3" in stderr and "preemption 2 of at most 3" in stderr
    # every create carried the bid (without one Vast rents on demand): min_bid × bid_margin
    bids = [("5001", pytest.approx(0.2 * BID_MARGIN)), *[("5003", pytest.approx(0.22 * BID_MARGIN))] * 2]
    assert created_bids(fake) == bids
    cost = json.loads((out / f"{run_dir.name}.cost.json").read_text())
    assert cost["preemptions"] == 2 and len(cost["instance"].split(", ")) == 3
    assert cost["usd_per_hour"] == pytest.approx(0.22 * BID_MARGIN) and cost["usd_total"] > 0
    billed = [fake.billed_seconds(int(i)) for i in cost["instance"].split(", ")]
    assert all(seconds > 0 for seconds in billed)  # each rental was paid for, and each is in the table
    assert "preempted 2 times" in stdout and stdout.count("(bid)") == 3 and stdout.count("(preempted)") == 2
    assert not (out / f"{run_dir.name}.partial").exists()  # folded into the verified bundle


def test_a_preemption_past_max_preemptions_bundles_what_finished_here(
    small_local_run, fake, sshd_server, box_venv, tmp_path
) -> None:
    out, root = tmp_path / "out", tmp_path / "box"
    sets = [*SMALL_SETS, *BID_SETS, "--set", "infrastructure.max_preemptions=0"]
    args = ["--out", str(out), *remote_args("vast", sshd_server, box_venv, root, *sets)]
    returncode, stdout, stderr, _ = run_preempted(
        args, run_env(small_local_run["api"], tmp_path, fake), fake, root, (2, False)
    )
    assert returncode == 1 and "RunIncomplete" in stderr
    assert "preempted 1 times, more than max_preemptions = 0" in stderr
    run_dir, manifest = bundle_of(out)  # bundled on this machine from the clips kept here, and verified
    finished = manifest["clips"]["finished"]
    assert finished >= 2 and manifest["guardrails"]["outcome"] == "stopped"
    assert "max_preemptions = 0" in manifest["guardrails"]["reason"]
    assert manifest["final_video"] is not None  # the finished clips, stitched
    local = local_hashes(small_local_run)
    for i in range(finished):  # each finished clip is the uninterrupted run's
        name = f"clips/clip_{i:03d}.mp4"
        assert sha256_file(run_dir / name) == manifest["files"][name] == local[name]
    assert fake.live_instances() == [] and len(fake.requests_to("PUT", "/api/v0/asks/*/")) == 1
    cost = json.loads((out / f"{run_dir.name}.cost.json").read_text())
    assert cost["preemptions"] == 1


def test_interruptible_is_refused_without_vast(tmp_path) -> None:
    done = shootout_cli("validate", str(DEMO), "--set", "infrastructure.interruptible=true")
    assert done.returncode == 2
    assert "infrastructure.interruptible = true rents a Vast.ai bid instance; provider 'local'" in done.stderr


def set_values(args: list[str]) -> list[str]:
    """The key=value of every --set in a command line."""
    values, pending = [], False
    for arg in args:
        if pending:
            values.append(arg)
        elif arg.startswith("--set="):
            values.append(arg.removeprefix("--set="))
        pending = arg == "--set"
    return values


def test_a_budget_that_cannot_pay_for_the_next_rental_bundles_what_finished_here(
    small_local_run, fake, sshd_server, box_venv, tmp_path
) -> None:
    """The budget is the first estimate and a twentieth of a cent: the first instance is rented; once it is preempted,
    what it cost leaves less than the rest of the run is estimated at, so nothing more is rented."""
    from jobspecs import load_spec
    from jobspecs.plan import predict_run
    from tasks.costs import estimate_at

    out, root = tmp_path / "out", tmp_path / "box"
    args = ["--out", str(out), *remote_args("vast", sshd_server, box_venv, root, *SMALL_SETS, *BID_SETS)]
    spec = load_spec(DEMO, set_values(args)).spec
    first = estimate_at(predict_run(spec), 0.2 * BID_MARGIN, None, spec=spec)
    budgeted = [*args, "--budget", f"{first.usd + 0.0005:.4f}"]
    env = run_env(small_local_run["api"], tmp_path, fake)
    returncode, stdout, stderr, _ = run_preempted(budgeted, env, fake, root, (2, False))
    assert returncode == 1 and "RunIncomplete" in stderr
    assert "preempted 1 times, then OverBudget: budget_usd: $" in stderr and " is left, and the estimate" in stderr
    run_dir, manifest = bundle_of(out)
    assert manifest["clips"]["finished"] >= 2 and manifest["guardrails"]["outcome"] == "stopped"
    assert fake.live_instances() == [] and len(fake.requests_to("PUT", "/api/v0/asks/*/")) == 1
    cost = json.loads((out / f"{run_dir.name}.cost.json").read_text())
    assert cost["usd_total"] <= first.usd + 0.0005 and cost["preemptions"] == 1
