#!/usr/bin/env python3
"""Check the Prefect UI with headless Chromium: the runs page lists the shootout runs by what they ran, the run's
artifacts tab, the cost table artifact's columns, and the cost history artifact. Screenshots go to
outputs/ui-check/.

    # a server with the UI, the deployments, a worker and at least one finished run (README: "Run it from your
    # laptop"), then:
    apt-get install -y chromium        # Debian's package; no download from the internet at run time
    .venv/bin/python scripts/ui_check.py --api http://127.0.0.1:4200/api [--key cost-demo]

Exit 0 when every page shows what it should; the failing check is printed otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--window-size=1500,1100",
    "--virtual-time-budget=25000",
    "--run-all-compositor-stages-before-draw",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no Chromium: apt-get install -y chromium")


def page(url: str, screenshot: Path) -> str:
    """The page's DOM after its scripts ran, and a screenshot of it."""
    subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:4200/api")
    parser.add_argument("--key", default="cost-demo", help="the cost table artifact's key (cost-<deployment>)")
    parser.add_argument("--out", type=Path, default=Path("outputs/ui-check"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    api, ui = args.api.rstrip("/"), args.api.rstrip("/").removesuffix("/api")
    runs = httpx.post(
        f"{api}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["shootout"]}}, "sort": "START_TIME_DESC", "limit": 5},
    ).json()
    finished = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]
    if not finished:
        sys.exit("no finished shootout run on this server: run a deployment first")
    costs = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [args.key]}}}).json()
    if not costs:
        sys.exit(f"no artifact with key {args.key} on this server")
    checks = []
    runs_page = page(f"{ui}/runs", args.out / "runs.png")
    checks.append(("the runs page lists the latest shootout run", finished[0]["name"] in runs_page))
    name = finished[0]["name"]
    checks.append(("the run's name says what it ran (model: title · run id)", name.count(" · ") >= 2 and ": " in name))
    run_page = page(f"{ui}/runs/flow-run/{finished[0]['id']}?tab=Artifacts", args.out / "run-artifacts.png")
    checks.append(("the run page shows its state", finished[0]["state_name"] in run_page))
    cost_page = page(f"{ui}/artifacts/artifact/{costs[0]['id']}", args.out / "cost-table.png")
    checks.append(
        (
            "the cost artifact page shows the table's columns",
            all(column in cost_page for column in ("$ actual", "$ estimate", "Billed", "Run")),
        )
    )
    history = page(f"{ui}/artifacts/key/{args.key}", args.out / "cost-versions.png")
    checks.append((f"the {args.key} versions page exists", args.key in history))
    history_key = args.key.replace("cost-", "cost-history-", 1)
    found = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [history_key]}}}).json()
    if found:
        page_text = page(f"{ui}/artifacts/artifact/{found[0]['id']}", args.out / "cost-history.png")
        checks.append((f"the {history_key} page tabulates the runs", "total" in page_text))
    else:
        checks.append((f"the {history_key} artifact exists", False))
    for what, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    print(f"screenshots: {args.out}/")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
