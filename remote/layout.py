"""Where everything lives on the box for one run (JOB_DIR = <box root>/<run_id>):

<box root>/worker.lock          one worker per box
JOB_DIR/input/run.json          run id, spec file name, --set overrides, reference hash, code commit (RunInfo)
JOB_DIR/input/reference.png     the reference image, normalised: upright, 8-bit RGB, opaque (jobspecs.load)
JOB_DIR/run/                    the run directory, which becomes the bundle: job.yaml, clips/, frames/, logs/,
                                status/, final/, and at the end manifest.json and SHA256SUMS
JOB_DIR/stitch.json             what the stitch did, for the manifest (StitchSummary)
JOB_DIR/<run_id>.tar(.sha256)   the bundle and its hash
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from jobspecs.contracts import ClipLog, RunInfo
from jobspecs.load import normalised_png


def clip_files(index: int) -> tuple[str, str, str]:
    """A finished clip's three files, relative to the run directory: the clip, its last frame, its log."""
    return f"clips/clip_{index:03d}.mp4", f"frames/last_frame_{index:03d}.png", f"logs/log_{index:03d}.json"


@dataclass(frozen=True)
class JobPaths:
    job_dir: Path

    @property
    def run_id(self) -> str:
        return self.job_dir.name

    @property
    def input_dir(self) -> Path:
        return self.job_dir / "input"

    @property
    def run_json(self) -> Path:
        return self.input_dir / "run.json"

    @property
    def reference(self) -> Path:
        """input/reference.png; an older job's input/reference.<ext>."""
        found = sorted(self.input_dir.glob("reference*"), key=lambda path: path.name != "reference.png")
        if not found:
            raise FileNotFoundError(f"{self.input_dir}: no reference image (reference.png)")
        return found[0]

    @property
    def run_dir(self) -> Path:
        return self.job_dir / "run"

    @property
    def job_yaml(self) -> Path:
        return self.run_dir / "job.yaml"

    @property
    def final_video(self) -> Path:
        return self.run_dir / "final" / "final_stitched.mp4"

    @property
    def stitch_json(self) -> Path:
        """What the stitch did (settings, filtergraph, encoder), for the manifest."""
        return self.job_dir / "stitch.json"

    @property
    def lock(self) -> Path:
        return self.job_dir.parent / "worker.lock"

    @property
    def archive(self) -> Path:
        return self.job_dir / f"{self.run_id}.tar"

    def clip(self, index: int) -> Path:
        return self.run_dir / clip_files(index)[0]

    def last_frame(self, index: int) -> Path:
        return self.run_dir / clip_files(index)[1]

    def log(self, index: int) -> Path:
        return self.run_dir / clip_files(index)[2]

    def rank_error(self, rank: int) -> Path:
        """What a rank other than 0 of a several-GPU worker died of (rank 0 writes status.json itself)."""
        return self.run_dir / "status" / f"rank_{rank}.error"

    def rank_errors(self) -> list[str]:
        """The errors the other ranks left, "rank N: ..." in rank order."""
        found = sorted(self.run_dir.glob("status/rank_*.error"), key=lambda p: int(p.stem.split("_")[1]))
        return [f"{path.stem.replace('_', ' ')}: {path.read_text().strip()}" for path in found]

    def run_info(self) -> RunInfo:
        return RunInfo.model_validate_json(self.run_json.read_text())

    def finished_logs(self) -> list[ClipLog]:
        """The logs of finished clips, in chain order, up to the first gap."""
        logs = []
        while self.log(len(logs)).exists():
            logs.append(ClipLog.model_validate_json(self.log(len(logs)).read_text()))
        return logs


def stage_job(job_dir: Path, spec_data: dict, reference: Path | bytes, run_info: RunInfo | dict) -> list[Path]:
    """Lay out a new job dir (input/run.json, input/reference.png, run/job.yaml); returns the files. `reference`:
    the normalised PNG's bytes (jobspecs.load.reference_png), or an image file, normalised here. `run_info`: a
    RunInfo, or a dict written as given (the worker reads it back as a RunInfo).

    The laptop stages a job in a temporary folder and copies these files to the box as they are."""
    if isinstance(run_info, RunInfo):
        run_json = run_info.to_json()
    else:
        run_json = json.dumps(run_info, indent=2, sort_keys=True, allow_nan=False)
    files = {
        job_dir / "input" / "run.json": run_json.encode(),
        job_dir / "input" / "reference.png": reference if isinstance(reference, bytes) else normalised_png(reference),
        job_dir / "run" / "job.yaml": yaml.safe_dump(spec_data, sort_keys=False, allow_unicode=True).encode(),
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return list(files)


@contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block finishes.

    A worker killed mid-write leaves a `.part` file, never a half-written clip under its final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    yield part
    os.replace(part, path)
