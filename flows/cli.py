"""`shootout`: run, validate, plan, verify and compare from the terminal; set up and read Prefect.

shootout run SPEC [--out DIR] [--set key=value ...]
shootout validate SPEC [--set key=value ...]
shootout plan SPEC [--set key=value ...] [--json] [--offers]
shootout verify BUNDLE [--extract DIR]
shootout report RUN_DIR... [--out DIR] [--reference IMG] [--weights KEY=W ...]
shootout setup [--live-instances N] [--secrets-from-env]   (the Prefect side: pool, limit, automation, secrets)
shootout watch RUN                                          (follow a flow run live: its logs and progress)
shootout runs [--limit N] [--json]                          (past shootout runs: state, model, clips, cost, files)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from jobspecs import SpecError, load_spec
from jobspecs.contracts import NightCost
from jobspecs.load import resume_source
from jobspecs.plan import (
    check_plan,
    cost_line,
    offer_line,
    offer_rows,
    offers_table,
    plan_enforced,
    plan_report,
    plan_table,
    predict_run,
    prediction_table,
    prompt_window_warnings,
)
from jobspecs.schema import total_seconds

# Prefect's own (ephemeral) server needs ~35 s to start on 2 cores; its default timeout is 20 s.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # Heartbeats from terminal runs too (as prefect.yaml's work pool gives deployment runs): `shootout setup`'s
    # automation marks a silent run Crashed after 90 s, and that starts reaper/sweep.
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


START_A_SERVER = (
    "to use a Prefect server: `prefect server start --host 127.0.0.1 --port 4200 &` and "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


def positive_usd(text: str) -> float:
    """An argparse type: dollars, a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dollars") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number of dollars")
    return value


def at_least_one(text: str) -> int:
    """An argparse type: a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


EXAMPLES = [  # `shootout --help`'s epilog (tests/test_cli_help.py parses each command)
    ("shootout run jobspecs/demo.yaml", "the demo on this machine: kenburns, no GPU, nothing rented"),
    (
        "shootout run jobspecs/wan.yaml --set infrastructure.gpu=auto --budget 2",
        "Wan on the cheapest Vast.ai box that fits (VAST_API_KEY set), refused above $2",
    ),
    ("shootout plan jobspecs/wan.yaml --offers", "what it would rent, from which offers, at what price; rents nothing"),
]


def parser() -> argparse.ArgumentParser:
    examples = "\n".join(f"  {command}\n      {what}" for command, what in EXAMPLES)
    root = argparse.ArgumentParser(
        prog="shootout",
        description=__doc__.splitlines()[0],
        epilog=f"examples:\n{examples}\n\n`shootout COMMAND --help` for a command's arguments.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    helps = {
        "run": "run the flow: generate, stitch, bundle, fetch, verify",
        "validate": "check a spec; nothing runs",
        "plan": "shots → clips, frames, seconds; predicted time per clip on the GPU (refused if over the limit)",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text)
        command.add_argument("spec", help="the job spec (YAML)")
        command.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a spec field, e.g. --set seed=7 --set shots.0.duration_s=6",
        )
        if name == "plan":
            command.add_argument(
                "--json", action="store_true", help="the plan as JSON on stdout (exit 2 where a run would be refused)"
            )
            command.add_argument(
                "--offers",
                action="store_true",
                help="also the offer shapes it chose from: GPUs, $/h, longest clip, run, fits, $/film (with --json: "
                "`offers`)",
            )
        if name == "run":
            command.add_argument("--out", default="outputs", help="where <run_id>.tar and <run_id>/ go")
            command.add_argument("--resume", metavar="RUN_ID", help="continue a failed run from its kept clips")
            command.add_argument(
                "--budget",
                type=positive_usd,
                metavar="USD",
                help="refuse an estimate above it before renting (what is left of it before renting again after a "
                "preemption) and cut the run limit to what it buys",
            )
    verify = commands.add_parser(
        "verify",
        help="check a bundle's hashes and safety",
        epilog="exit codes: 0 verified; 1 the bundle is damaged, unsafe or its manifest "
        "states a wrong hash; 2 BUNDLE is missing or not a file, or DIR is a file or "
        "cannot be written (or DIR/<run_id>/ exists)",
    )
    verify.add_argument("bundle", type=Path, help="the run's <run_id>.tar")
    verify.add_argument("--extract", type=Path, metavar="DIR", help="also extract into DIR/<run_id>/")
    setup = commands.add_parser("setup", help="prepare the Prefect server: work pool, limits, automation, secrets")
    setup.add_argument("--live-instances", type=at_least_one, default=3, help="rented instances alive at once")
    setup.add_argument(
        "--secrets-from-env",
        action="store_true",
        help="save VAST_API_KEY and HF_TOKEN from the environment as Secret blocks",
    )
    watch = commands.add_parser("watch", help="follow a flow run live (its id or name)")
    watch.add_argument("run", help="the flow run's id or name, as `prefect deployment run` printed it")
    runs = commands.add_parser("runs", help="list past shootout runs from Prefect: state, cost, where their files are")
    runs.add_argument("--limit", type=at_least_one, default=20, help="how many runs (default 20)")
    runs.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    report = commands.add_parser("report", help="compare finished runs: report.html, report.json, report.md")
    report.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="extracted run directories (one night's: its night.cost.json is shown too)",
    )
    report.add_argument("--out", type=Path, help="where the report goes (default outputs/report-<UTC time>/)")
    report.add_argument("--reference", type=Path, help="colour/sharpness reference (default: clip 0's first frame)")
    report.add_argument(
        "--weights",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=W",
        help="score weights, e.g. --weights color_drift=3 cost=0",
    )
    return root


def prefect_command(args: argparse.Namespace) -> int:
    """setup, watch and runs: they only talk to the Prefect API (PREFECT_API_URL)."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import get_current_settings

    from flows.console import RunNotFound, past_runs, runs_table, watch
    from flows.setup import setup

    api = get_current_settings().api.url
    if not api:
        if args.command == "setup":
            print(f"REFUSED shootout setup: PREFECT_API_URL is not set; {START_A_SERVER}", file=sys.stderr)
            return 2
        print(
            f"PREFECT_API_URL is not set: reading this machine's own Prefect database through a temporary "
            f"server (the runs made without a server); {START_A_SERVER}",
            file=sys.stderr,
        )
    try:
        if args.command == "setup":
            for line in setup(args.live_instances, args.secrets_from_env):
                print(line)
            return 0
        if args.command == "watch":
            try:
                return watch(args.run)
            except RunNotFound as exc:
                print(f"NOT FOUND: {exc}", file=sys.stderr)
                return 2
        rows = past_runs(args.limit)
    except (httpx.TransportError, PrefectHTTPStatusError) as exc:
        print(
            f"FAILED: the Prefect API at {api} did not answer ({type(exc).__name__}: {exc}); is the server running "
            f"(`prefect server start`) and PREFECT_API_URL right?",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(rows, indent=2) if args.json else runs_table(rows))
    if not rows:
        print(f"no shootout runs at {api or 'the local database'}", file=sys.stderr)
    return 0


NIGHT_COST = "night.cost.json"  # <night>/night.cost.json beside the night's <night>/<name>/<run_id>/ runs


def night_cost_of(run_dirs: list[Path]) -> NightCost | None:
    """The night's cost where every run directory lies in one night folder, the one holding night.cost.json:
    `<night>/<name>/<run_id>/` (the overnight's layout) or `<night>/<run_id>/`; else None. A night.cost.json that
    can't be read is a warning on stderr, and the report goes on without it."""
    from pydantic import ValidationError

    dirs = [Path(d).resolve() for d in run_dirs]
    nights = [f for f in (dirs[0].parent.parent, dirs[0].parent) if all(f in (d.parent.parent, d.parent) for d in dirs)]
    path = next((f / NIGHT_COST for f in nights if (f / NIGHT_COST).is_file()), None)
    if path is None:
        return None
    try:
        return NightCost.model_validate_json(path.read_text())
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        reason = f"{field}: {error['msg']}" if field else error["msg"]
    except (OSError, ValueError) as exc:  # unreadable, or not UTF-8
        reason = f"{type(exc).__name__}: {exc}"
    print(f"WARNING {path}: not read ({reason}); the report goes on without the night's cost", file=sys.stderr)
    return None


def report_command(args: argparse.Namespace) -> int:
    """report: the comparison of finished run directories, on this machine (no Prefect); with the night's cost where
    they are one night's runs (night_cost_of)."""
    from datetime import UTC, datetime

    from report import ReportError, compare_runs, parse_weights

    out = args.out or Path("outputs") / f"report-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    try:
        weights = parse_weights(args.weights)
        night = night_cost_of(args.run_dirs)
        result = compare_runs(args.run_dirs, out, reference=args.reference, weights=weights, night=night)
    except ReportError as exc:
        print(f"REFUSED {exc}", file=sys.stderr)
        return 2
    print(f"winner {result['winner']}\n{result['html']}\n{result['json']}\n{Path(result['html']).with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "report":
        return report_command(args)
    if args.command in ("setup", "watch", "runs"):
        return prefect_command(args)
    try:
        if args.command == "verify":
            from remote.bundle import BundleError, BundleInputError, verify_bundle

            try:
                manifest = verify_bundle(args.bundle, dest=args.extract)
            except BundleError as exc:  # one line, whatever the names in the archive hold
                line = f"REFUSED {args.bundle}: {exc}".replace("\n", "\\n").replace("\r", "\\r")
                print(line, file=sys.stderr)
                return 2 if isinstance(exc, BundleInputError) else 1
            print(f"OK {args.bundle}: run {manifest.run_id}, {len(manifest.files) + 2} files, every sha256 matches")
            return 0
        from tasks.offers import offer_shapes_for  # live Vast offers where a key is set, else the dated snapshot

        job = load_spec(args.spec, args.overrides, offers=offer_shapes_for)
        warnings = [*job.notes, *prompt_window_warnings(job.spec)]  # the reference image's, the prompts'
        if args.command == "validate":
            print(
                f"OK {args.spec}: {len(job.spec.shots)} shots, {job.spec.clip_count} clips, "
                f"{total_seconds(job.spec):.2f} s, model {job.spec.model}"
            )
            for choice in (job.spec.offer_choice, job.spec.profile_choice):
                if choice:
                    print(choice)
            for warning in warnings:
                print(f"WARNING {warning}")
            return 0
        if args.command == "plan" and args.json:  # the verdict for scripts: JSON whether or not it fits
            report = plan_report(job.spec, with_offers=args.offers, source=offer_shapes_for)
            print(report.model_dump_json(indent=2))
            for warning in warnings:
                print(f"WARNING {warning}", file=sys.stderr)
            return 2 if report.problems and plan_enforced(job.spec) else 0  # the verdict a run would get
        if args.command == "plan":  # the clips, then the planner's prediction; exits 2 if check_plan refuses
            print(plan_table(job.spec))
            print(prediction_table(predict_run(job.spec), job.spec.infrastructure.max_usd_per_hour))
            rows = offer_rows(job.spec, offer_shapes_for)  # its offer, priced; with --offers every shape it chose from
            line = offers_table(rows) if args.offers else offer_line(rows)
            for text in (line, cost_line(job.spec, rows)):  # then on demand against interruptible
                if text:
                    print(text)
            for warning in [*warnings, *check_plan(job.spec).warnings]:
                print(f"WARNING {warning}")
            return 0
        if args.resume is not None:  # an unknown (or empty) run id is refused here, before the flow starts
            resume_source(Path(args.out).resolve(), args.resume)
        for warning in warnings:
            print(f"WARNING {warning}", file=sys.stderr)
    except SpecError as exc:
        print(f"REFUSED {exc}", file=sys.stderr)
        return 2
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from flows.shootout import shootout

    try:
        result = shootout(
            spec=str(Path(args.spec).resolve()),
            out_dir=args.out,
            overrides=args.overrides,
            resume_from=args.resume,
            budget_usd=args.budget,
        )
    except Exception as exc:  # the flow's own logs carry the details; the exit code carries the verdict
        print(f"\nFAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"\nDONE {result['video']} ({result['seconds']:.2f} s)\nbundle {result['archive']} (verified)")
    for cost in result["costs"]:
        print(f"cost {cost.line()}")
    if result["preemptions"]:
        print(f"preempted {result['preemptions']} times; total ${result['cost'].usd_total:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
