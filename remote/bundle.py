"""The bundle: manifest.json + SHA256SUMS + one tar archive, and the verification of all of it.

    python -m remote.bundle JOB_DIR      (on the box) writes manifest.json, SHA256SUMS, <run_id>.tar(.sha256)

verify_bundle() (on the laptop) checks the archive's hash, refuses unsafe members (absolute paths, `..`,
links, devices), extracts and checks every file against SHA256SUMS, and every sha256 the manifest and the clip
logs state against the bytes of the file they name; an error names the file. Every path in the manifest and
logs is relative to the run directory. The manifest and the logs are read through their models
(jobspecs.contracts.Manifest, ClipLog): a field that is missing or of the wrong type is refused by name.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel, ValidationError

from jobspecs import plan_clips, validate
from jobspecs.contracts import (
    MANIFEST_VERSION,
    BundleSummary,
    ClipLog,
    Environment,
    FfmpegBuild,
    GuardrailOutcome,
    Manifest,
    ManifestClip,
    ManifestClips,
    ModelInfo,
    SpecRecord,
    StitchSummary,
    VideoFile,
)
from jobspecs.schema import OUTPUT_FPS
from remote.ffmpeg import ffmpeg_build
from remote.layout import JobPaths, written_atomically
from remote.status import now_iso, read_status

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
LIBRARIES = (
    "numpy",
    "pillow",
    "pydantic",
    "prefect",
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "huggingface-hub",
    "imageio-ffmpeg",
)


class BundleError(RuntimeError):
    """The bundle is damaged or unsafe; the message names the file."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_versions(names: tuple[str, ...]) -> dict[str, str]:
    """name → version of each of `names` that is installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def environment() -> Environment:
    """The box: Python, OS, libraries, GPU and driver (where there is one), the ffmpeg build."""
    libraries = installed_versions(LIBRARIES)
    gpus, cuda = [], None
    if shutil.which("nvidia-smi"):
        query = "--query-gpu=name,driver_version,memory.total"
        out = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True)
        gpus = [
            dict(zip(("name", "driver", "memory"), (f.strip() for f in line.split(",")), strict=False))
            for line in out.stdout.splitlines()
            if line.strip()
        ]
        if "torch" in libraries:
            import torch

            cuda = torch.version.cuda
    return Environment(
        python=platform.python_version(),
        os=platform.platform(),
        machine=platform.machine(),
        cpus=os.cpu_count(),
        libraries=libraries,
        ffmpeg=FfmpegBuild.model_validate(ffmpeg_build()),
        gpus=gpus,
        cuda=cuda,
    )


def final_video_info(paths: JobPaths) -> VideoFile | None:
    if not paths.final_video.exists():
        return None
    import imageio_ffmpeg

    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(paths.final_video))
    return VideoFile(
        path="final/final_stitched.mp4",
        frames=frames,
        seconds=round(frames / OUTPUT_FPS, 4),
        sha256=sha256_file(paths.final_video),
    )


def run_files(run_dir: Path) -> list[str]:
    """Every file of the run directory (relative, POSIX), the manifest and the sums excluded."""
    names = (p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    return sorted(n for n in names if n not in (MANIFEST, SUMS))


def write_manifest(paths: JobPaths, stitch_summary: StitchSummary | None) -> Manifest:
    run = paths.run_info()
    spec = validate(yaml.safe_load(paths.job_yaml.read_text()), source=str(paths.job_yaml))
    logs = paths.finished_logs()
    status = read_status(paths.run_dir)
    model = logs[0].model if logs else ModelInfo(id=spec.model, repo=spec.baseline.repo, revision=None)
    files = {name: sha256_file(paths.run_dir / name) for name in run_files(paths.run_dir)}
    manifest = Manifest(
        schema_version=MANIFEST_VERSION,
        run_id=paths.run_id,
        title=spec.title,
        created_at=run.created_at,
        bundled_at=now_iso(),
        model=model,
        pipeline_commit=run.commit,
        spec=SpecRecord(file=run.spec_file, overrides=run.overrides, job_yaml_sha256=files["job.yaml"]),
        reference_image=run.reference,
        environment=environment(),
        stitch=stitch_summary,
        final_video=final_video_info(paths),
        clips=ManifestClips(
            planned=len(plan_clips(spec)),
            finished=len(logs),
            entries=[
                ManifestClip(
                    clip=log.clip,
                    shot=log.shot,
                    camera=log.shot_card.camera,
                    seed=log.seed,
                    file=log.clip_file,
                    last_frame=log.last_frame,
                    seconds=log.clip_file.seconds,
                    timings_s=log.timings_s,
                )
                for log in logs
            ],
        ),
        guardrails=GuardrailOutcome(
            clip_limit_s=spec.guardrails.clip_limit_s,
            run_limit_s=spec.run_limit_s,
            outcome="ok" if status.state == "generated" else status.state,
            reason=status.reason,
        ),
        files=files,
    )
    with written_atomically(paths.run_dir / MANIFEST) as part:
        part.write_text(manifest.to_json())
    return manifest


def write_sums(run_dir: Path) -> None:
    names = [MANIFEST, *run_files(run_dir)]
    lines = "".join(f"{sha256_file(run_dir / name)}  {name}\n" for name in names)
    with written_atomically(run_dir / SUMS) as part:
        part.write_text(lines)


def make_bundle(job_dir: Path) -> BundleSummary:
    """manifest.json, SHA256SUMS, then <run_id>.tar (sums and manifest first) and its .sha256."""
    paths = JobPaths(job_dir.resolve())
    stitch_summary = None
    if paths.stitch_json.exists():
        stitch_summary = StitchSummary.model_validate_json(paths.stitch_json.read_text())
    write_manifest(paths, stitch_summary)
    write_sums(paths.run_dir)
    names = [SUMS, MANIFEST, *run_files(paths.run_dir)]
    with written_atomically(paths.archive) as part, tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(paths.run_dir / name, arcname=f"{paths.run_id}/{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(paths.run_dir / name, "rb") as f:
                tar.addfile(info, f)
    digest = sha256_file(paths.archive)
    Path(f"{paths.archive}.sha256").write_text(f"{digest}  {paths.archive.name}\n")
    return BundleSummary(archive=paths.archive.name, sha256=digest, files=len(names))


class BundleInputError(BundleError):
    """What was given is not a bundle to read or a folder to extract into: a missing path, a folder, a file."""


def is_sha256(text: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{64}", text) is not None


def short(digest: str) -> str:
    return f"{digest[:12]}..."


def read_sums(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or not is_sha256(digest) or not name:
            raise BundleError(f"{SUMS}: malformed line {line[:100]!r}")
        if name in sums:
            raise BundleError(f"{SUMS}: lists {name} twice")
        sums[name] = digest
    return sums


def refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def read_json(path: Path, name: str, model: type[BaseModel]) -> BaseModel:
    """The file read as `model`; BundleError names what is wrong (the first wrong field). Parsed by json first,
    so that NaN and Infinity are refused as not JSON."""
    try:
        data = json.loads(path.read_text(), parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, NaN or Infinity, nested too deep
        raise BundleError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{name}: not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise BundleError(f"{name}: {field}: {error['msg']}") from None


def check_member(member: tarfile.TarInfo, run_id: str | None) -> str:
    """The member's path inside the run directory; refuses anything that could write outside it."""
    name = member.name
    path = PurePosixPath(name)
    if not path.parts:
        raise BundleError(f"{name!r}: not a path inside a run directory; refused")
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise BundleError(f"{name}: unsafe path in the archive (absolute or with '..'); refused")
    if not (member.isfile() or member.isdir()):
        raise BundleError(f"{name}: a link or special file in the archive; refused")
    if run_id is not None and path.parts[0] != run_id:
        raise BundleError(f"{name}: outside the run directory {run_id}/; refused")
    if member.isfile() and len(path.parts) < 2:
        raise BundleError(f"{name}: a file outside the run directory; refused")
    return PurePosixPath(*path.parts[1:]).as_posix()


def check_hash(run_dir: Path, name: str, sums: dict[str, str]) -> str:
    """The file's sha256, refused unless it is the one SHA256SUMS lists."""
    if name not in sums:
        raise BundleError(f"{name}: not listed in {SUMS}")
    actual = sha256_file(run_dir / name)
    if actual != sums[name]:
        raise BundleError(f"{name}: sha256 {actual} does not match {SUMS} ({sums[name]})")
    return actual


def check_file_list(files: dict[str, str], sums: dict[str, str]) -> None:
    """The manifest's `files` and SHA256SUMS (the manifest aside) list the same files with the same hashes."""
    listed = {name: digest for name, digest in sums.items() if name != MANIFEST}
    for name in sorted(set(files) | set(listed)):
        if name not in files:
            raise BundleError(f"{SUMS}: lists {name}, the files of {MANIFEST} do not (they disagree)")
        if name not in listed:
            raise BundleError(f"{SUMS}: does not list {name}, the files of {MANIFEST} do (they disagree)")
        if files[name] != listed[name]:
            raise BundleError(
                f"{SUMS}: disagrees with the files of {MANIFEST} on {name} "
                f"({short(listed[name])} vs {short(files[name])})"
            )


def stated_hashes(manifest: Manifest, logs: dict[str, ClipLog]) -> list[tuple[str, str, str]]:
    """(where it is stated, file, sha256): every hash the manifest and the clip logs state for a file of the run."""
    stated = [(f"{MANIFEST} spec.job_yaml_sha256", "job.yaml", manifest.spec.job_yaml_sha256)]
    if manifest.final_video is not None:
        stated.append((f"{MANIFEST} final_video.sha256", manifest.final_video.path, manifest.final_video.sha256))
    for i, entry in enumerate(manifest.clips.entries):
        stated.append((f"{MANIFEST} clips.list.{i}.file.sha256", entry.file.path, entry.file.sha256))
        stated.append((f"{MANIFEST} clips.list.{i}.last_frame.sha256", entry.last_frame.path, entry.last_frame.sha256))
    for name, log in logs.items():
        stated.append((f"{name} clip_file.sha256", log.clip_file.path, log.clip_file.sha256))
        stated.append((f"{name} last_frame.sha256", log.last_frame.path, log.last_frame.sha256))
        if log.clip > 0:  # clip 0's input is the reference image, which is not in the bundle
            stated.append((f"{name} input_image.sha256", log.input_image.path, log.input_image.sha256))
    return stated


def check_stated_hashes(manifest: Manifest, logs: dict[str, ClipLog], actual: dict[str, str]) -> None:
    for field, path, digest in stated_hashes(manifest, logs):
        if path not in actual:
            raise BundleError(f"{path}: named by {field} but not in the archive")
        if actual[path] != digest:
            raise BundleError(
                f"{path}: {field} says sha256 {short(digest)}, the file's bytes hash to "
                f"{short(actual[path])}; the stated hash is wrong"
            )
    reference = manifest.reference_image.sha256
    for name, log in logs.items():
        if log.clip == 0 and log.input_image.sha256 != reference:
            raise BundleError(
                f"{name}: input_image.sha256 {short(log.input_image.sha256)} disagrees with "
                f"{MANIFEST} reference_image.sha256 {short(reference)}"
            )


def expected_archive_hash(archive: Path) -> str | None:
    sidecar = Path(f"{archive}.sha256")
    if not sidecar.exists():
        return None
    try:
        words = sidecar.read_text().split()
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{sidecar.name}: unreadable ({exc})") from None
    if not words or not is_sha256(words[0]):
        raise BundleError(f"{sidecar.name}: malformed; expected '<64 hex digits>  {archive.name}'")
    return words[0]


def verify_bundle(archive: Path, dest: Path | None = None, expected_sha256: str | None = None) -> Manifest:
    """Check everything; extract to dest/<run_id>/ if dest is given. Returns the manifest.

    BundleInputError: the archive is not a readable file, or dest cannot be extracted into. BundleError: the
    bundle is damaged, unsafe, or its manifest states a hash its bytes do not have."""
    archive = Path(archive)
    if not archive.is_file():
        raise BundleInputError(f"{archive.name}: {'not a regular file' if archive.exists() else 'no such file'}")
    expected = expected_sha256 or expected_archive_hash(archive)
    if dest is not None:
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise BundleInputError(f"{dest}: the folder to extract into exists and is not a folder")
    try:
        if dest is not None:
            dest.mkdir(parents=True, exist_ok=True)
        workspace = tempfile.TemporaryDirectory(prefix=".verify-", dir=dest)
    except OSError as exc:
        raise BundleInputError(f"{dest or tempfile.gettempdir()}: cannot extract into it ({exc.strerror})") from None
    with workspace as tmp:
        try:
            with tarfile.open(archive, "r:") as tar:
                members = tar.getmembers()
                if not members:
                    raise BundleError(f"{archive.name}: empty archive")
                first = PurePosixPath(members[0].name).parts
                run_id = first[0] if first else None
                inside = [check_member(m, run_id) for m in members]
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError) as exc:
            raise BundleError(f"{archive.name}: damaged archive ({exc})") from None
        except OSError as exc:
            raise BundleError(f"{archive.name}: cannot be read or extracted ({exc.strerror})") from None
        run_dir = Path(tmp) / run_id
        files = {name for name, member in zip(inside, members, strict=True) if member.isfile()}
        if SUMS not in files:
            raise BundleError(f"{SUMS}: missing from the archive (or its header is damaged)")
        try:
            sums = read_sums((run_dir / SUMS).read_text())
        except UnicodeDecodeError as exc:
            raise BundleError(f"{SUMS}: not text ({exc})") from None
        if MANIFEST not in files:
            raise BundleError(f"{MANIFEST}: missing from the archive (or its header is damaged)")
        check_hash(run_dir, MANIFEST, sums)  # the manifest, vouched for by SHA256SUMS, checks SHA256SUMS back
        manifest = read_json(run_dir / MANIFEST, MANIFEST, Manifest)
        check_file_list(manifest.files, sums)
        if manifest.run_id != run_id:
            raise BundleError(f"{MANIFEST}: run_id {manifest.run_id!r}, but the archive holds {run_id}/")
        files -= {SUMS}
        if missing := sorted(set(sums) - files):
            raise BundleError(f"{missing[0]}: listed in {SUMS} but missing from the archive (damaged header?)")
        if unlisted := sorted(files - set(sums)):
            raise BundleError(f"{unlisted[0]}: in the archive but not listed in {SUMS}")
        actual = {name: check_hash(run_dir, name, sums) for name in sorted(sums)}
        logs = {
            name: read_json(run_dir / name, name, ClipLog)
            for name in sorted(actual)
            if name.startswith("logs/log_") and name.endswith(".json")
        }
        check_stated_hashes(manifest, logs, actual)
        if expected is not None and sha256_file(archive) != expected:
            raise BundleError(f"{archive.name}: sha256 does not match {expected} (damaged outside the files)")
        if dest is not None:
            target = dest / run_id
            if target.exists():
                raise BundleInputError(f"{target}: already exists; not overwritten")
            os.replace(run_dir, target)
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m remote.bundle JOB_DIR", file=sys.stderr)
        return 2
    print(make_bundle(Path(args[0])).model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
