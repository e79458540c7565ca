"""The wheel a rented box installs: built from a private copy of the sources, so runs started together from one
checkout (the overnight's children, two terminals) never build in the same folder at once."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

from conftest import REPO

from remote.bundle import sha256_file
from tasks.box import build_wheel


def listing(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")} if folder.exists() else {}


def test_four_wheels_built_at_once_from_one_checkout_are_the_same_bytes(tmp_path) -> None:
    before = {name: listing(REPO / name) for name in ("build", "i2v_shootout.egg-info")}
    start = threading.Barrier(4)
    wheels: dict[int, Path] = {}
    errors: list[BaseException] = []

    def build(index: int) -> None:
        start.wait()
        try:
            wheels[index] = build_wheel.fn(tmp_path / f"run-{index}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert len({sha256_file(wheel) for wheel in wheels.values()}) == 1  # reproducible, and nothing mixed up
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
    assert {"flows/shootout.py", "remote/worker.py", "remote/setup.sh", "jobspecs/baselines.yaml"} <= names
    assert not any(name.startswith("tests/") for name in names)
    # the checkout itself is not a build folder: nothing written into its build/ or egg-info
    assert {name: listing(REPO / name) for name in ("build", "i2v_shootout.egg-info")} == before
