"""`shootout`: run, validate, plan and verify from the terminal.

shootout run SPEC [--out DIR] [--set key=value ...]
shootout validate SPEC [--set key=value ...]
shootout plan SPEC [--set key=value ...]
shootout verify BUNDLE [--extract DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobspecs import SpecError, load_spec
from jobspecs.plan import plan_table
from jobspecs.schema import total_seconds

# Prefect's own (ephemeral) server needs ~35 s to start on 2 cores; its default timeout is 20 s.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="shootout", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    helps = {
        "run": "run the flow: generate, stitch, bundle, fetch, verify",
        "validate": "check a spec; nothing runs",
        "plan": "shots → clips, frames, seconds",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text)
        command.add_argument("spec", help="the job spec (YAML)")
        command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                             help="override a spec field, e.g. --set seed=7 --set shots.0.duration_s=6")  # fmt: skip
        if name == "run":
            command.add_argument("--out", default="outputs", help="where <run_id>.tar and <run_id>/ go")
            command.add_argument("--resume", metavar="RUN_ID", help="continue a failed run from its kept clips")
    verify = commands.add_parser("verify", help="check a bundle's hashes and safety")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--extract", type=Path, help="also extract into DIR/<run_id>/")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "verify":
            from remote.bundle import BundleError, verify_bundle

            try:
                manifest = verify_bundle(args.bundle, dest=args.extract)
            except BundleError as exc:
                print(f"REFUSED {args.bundle}: {exc}", file=sys.stderr)
                return 1
            print(
                f"OK {args.bundle}: run {manifest['run_id']}, {len(manifest['files']) + 2} files, every sha256 matches"
            )
            return 0
        job = load_spec(args.spec, args.overrides)
        if args.command == "validate":
            print(f"OK {args.spec}: {len(job.spec.shots)} shots, {job.spec.clip_count} clips, "
                  f"{total_seconds(job.spec):.2f} s, model {job.spec.model}")  # fmt: skip
            return 0
        if args.command == "plan":
            print(plan_table(job.spec))
            return 0
    except SpecError as exc:
        print(f"REFUSED {exc}", file=sys.stderr)
        return 2
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from flows.shootout import shootout
    from provisioning.vast import cost_line

    try:
        result = shootout(spec=str(Path(args.spec).resolve()), out_dir=args.out, overrides=args.overrides,
                          resume_from=args.resume)  # fmt: skip
    except Exception as exc:  # the flow's own logs carry the details; the exit code carries the verdict
        print(f"\nFAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"\nDONE {result['video']} ({result['seconds']:.2f} s)\nbundle {result['archive']} (verified)")
    for cost in result["costs"]:
        print(f"cost {cost_line(cost)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
