"""The overnight's one-box placement on this machine (the local provider: the box is this machine): the specs run one
after another on one box, and a model that fails does not lose the others' bundles. (The rented one-box night, one
Vast instance for three models, is tests/test_deployments.py's.)"""

from __future__ import annotations

import copy

from conftest import SMALL, demo_data, write_spec

from remote.bundle import verify_bundle


def test_a_one_box_night_goes_on_past_a_model_that_fails_and_keeps_every_bundle(worker_env, tmp_path) -> None:
    from flows.onebox import one_box_night

    data = demo_data()
    stopped = copy.deepcopy(data) | {"guardrails": {"run_limit_s": 0.001}}  # its worker is stopped at once
    ok, bad = write_spec(tmp_path / "specs", data, "ok.yaml"), write_spec(tmp_path / "specs", stopped, "bad.yaml")
    night = tmp_path / "night"
    cost = one_box_night({"first": str(ok), "broken": str(bad), "last": str(ok)}, str(night), list(SMALL))
    assert [(run.name, run.state) for run in cost.runs] == [
        ("first", "COMPLETED"),
        ("broken", "FAILED"),
        ("last", "COMPLETED"),
    ]
    manifests = {}
    for name in ("first", "broken", "last"):
        (archive,) = (night / name).glob("*.tar")  # each run's bundle, verified where it lies
        manifests[name] = verify_bundle(archive)
    assert manifests["first"].final_video.sha256 == manifests["last"].final_video.sha256  # same spec, same film
    assert manifests["first"].clips.finished == 6 and manifests["broken"].guardrails.outcome == "stopped"
    assert cost.placement == "one-box" and cost.instances == 0 and cost.usd_total == 0  # nothing rented
    assert not list((night / ".box").glob("*/run"))  # each job folder left the box once its bundle was verified
