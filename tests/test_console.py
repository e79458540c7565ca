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


def test_watch_reads_back_for_lines_that_reach_the_server_late(prefect_api, monkeypatch) -> None:
    """A line stamped before one already printed (the Prefect worker's "submitting flow run …", sent from its own
    process after the flow's first lines) is still found on the next poll, once."""
    from datetime import UTC, datetime, timedelta

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import LogCreate

    from flows.console import new_logs

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)

    @flow(name="late-lines")
    def late_lines() -> None: ...

    now = datetime.now(UTC)

    def line(message: str, at: datetime) -> LogCreate:
        return LogCreate(name="test", level=20, message=message, timestamp=at, flow_run_id=run.id)

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(late_lines)
        client.create_logs([line("printed first", now)])
        seen: set = set()
        (first,) = new_logs(client, run.id, None, seen)
        client.create_logs([line("stamped earlier, arrived later", now - timedelta(seconds=5))])
        late = new_logs(client, run.id, first.timestamp, seen)
        assert [log.message for log in late] == ["stamped earlier, arrived later"]
        assert new_logs(client, run.id, first.timestamp, seen) == []  # each line once
