"""The terminal's view of Prefect when there is no server to see: one message, never a traceback."""

from __future__ import annotations

import os

from conftest import shootout_cli
from sshd import free_port


def test_runs_and_watch_with_the_server_down_say_so_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    for args in (("runs",), ("watch", "some-run")):
        done = shootout_cli(*args, env={"PREFECT_API_URL": url}, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]
        assert f"the Prefect API at {url} did not answer" in done.stderr and "prefect server start" in done.stderr


def test_setup_without_a_server_is_refused(tmp_path) -> None:
    done = shootout_cli("setup", env={"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path)}, timeout=120)
    assert done.returncode == 2 and "PREFECT_API_URL is not set" in done.stderr and "Traceback" not in done.stderr


def test_the_scripts_the_readme_runs_by_path_are_executable() -> None:
    from conftest import REPO

    for script in sorted((REPO / "scripts").iterdir()):
        assert os.access(script, os.X_OK) and script.read_text().startswith("#!"), script.name
