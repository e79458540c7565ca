"""`shootout verify` on bad input and bad bundles: one `REFUSED <bundle>: <what>` line on stderr, never a traceback;
exit 2 for what was given (a missing path, a folder, a file as the --extract target), 1 for a bundle that fails.
The bundle is made by make_bundle from a small job dir (two clips of a few bytes, a real two-frame final video)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile

import numpy as np
import pytest
from conftest import HF_TOKEN, REPO, cpu_clip_params, demo_data, shootout_cli

from jobspecs.contracts import (
    ClipLog,
    Commit,
    HashedFile,
    ModelInfo,
    ReferenceImage,
    RunInfo,
    Timings,
    VideoFile,
)
from jobspecs.schema import Shot
from remote.bundle import MANIFEST, SUMS, make_bundle, sha256_file
from remote.ffmpeg import encode_frames
from remote.layout import JobPaths, clip_files, stage_job

RUN_ID = "verify-run"


def write_clip(paths: JobPaths, index: int) -> None:
    clip, frame, log = (paths.run_dir / name for name in clip_files(index))
    for path, data in ((clip, f"clip {index}".encode()), (frame, f"frame {index}".encode())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    source = paths.reference if index == 0 else paths.last_frame(index - 1)
    entry = ClipLog(
        run_id=RUN_ID,
        clip=index,
        shot=index,
        part=0,
        parts=1,
        prompt=f"shot {index}",
        negative_prompt=None,
        shot_card=Shot.model_validate(demo_data()["shots"][index]),
        seed=1234 + index,
        params=cpu_clip_params(16, 16, 2, 24),
        input_image=HashedFile(
            path="espresso.png" if index == 0 else clip_files(index - 1)[1], sha256=sha256_file(source)
        ),
        color_match=None,
        last_frame=HashedFile(path=clip_files(index)[1], sha256=sha256_file(frame)),
        clip_file=VideoFile(path=clip_files(index)[0], sha256=sha256_file(clip), frames=2, seconds=0.0833),
        timings_s=Timings(load=0.0, encode=0.0, clip_total=0.1),
        peak_vram_bytes=None,
        model=ModelInfo(id="kenburns", repo=None, revision=None),
        libraries={},
        commit=Commit(sha=None),
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:01Z",
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(entry.to_json())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple:
    """A real bundle of two clips and a final video, made by make_bundle."""
    reference = REPO / "jobspecs" / "espresso.png"
    run_info = RunInfo(
        run_id=RUN_ID,
        created_at="2026-01-01T00:00:00Z",
        spec_file="demo.yaml",
        overrides=[],
        reference=ReferenceImage(file=reference.name, sha256=sha256_file(reference)),
        commit=Commit(sha=None),
    )
    paths = JobPaths(tmp_path_factory.mktemp("box") / RUN_ID)
    stage_job(paths.job_dir, demo_data(), reference, run_info)
    for index in range(2):
        write_clip(paths, index)
    paths.final_video.parent.mkdir(parents=True)
    encode_frames(np.zeros((2, 16, 16, 3), np.uint8), paths.final_video, 24, "ultrafast", 23, 1)
    make_bundle(paths.job_dir)
    return paths.archive


@pytest.fixture
def bundle(built, tmp_path):
    """A private copy of the bundle and its .sha256."""
    copy = tmp_path / built.name
    shutil.copy(built, copy)
    shutil.copy(f"{built}.sha256", f"{copy}.sha256")
    return copy


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def repack(archive, edit) -> None:
    """Rewrite the bundle after edit({name: bytes}) changed the run's files; SHA256SUMS (for the names it lists)
    and the archive's .sha256 are recomputed, so only what edit made wrong is wrong."""
    with tarfile.open(archive) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    edit(files)
    listed = [line.split("  ", 1)[1] for line in files[SUMS].decode().splitlines()]
    files[SUMS] = "".join(f"{sha(files[name])}  {name}\n" for name in listed if name in files).encode()
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{RUN_ID}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive.with_name(f"{archive.name}.sha256").write_text(f"{sha(archive.read_bytes())}  {archive.name}\n")


def edit_manifest(change):
    def edit(files: dict) -> None:
        manifest = json.loads(files[MANIFEST])
        change(manifest)
        files[MANIFEST] = json.dumps(manifest).encode()

    return edit


def refused(done, exit_code: int, *words: str) -> str:
    """The one REFUSED line, after checking the exit code and that it names every word."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert done.returncode == exit_code, done.stderr
    assert len(lines) == 1 and lines[0].startswith("REFUSED "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_the_bundle_verifies_and_extracts(bundle, tmp_path) -> None:
    done = shootout_cli("verify", str(bundle), "--extract", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 0 and "every sha256 matches" in done.stdout, done.stderr
    assert (tmp_path / "out" / RUN_ID / "final" / "final_stitched.mp4").is_file()


@pytest.mark.parametrize(
    ("field", "path"),
    [
        (("final_video",), "final/final_stitched.mp4"),
        (("clips", "list", 0, "file"), "clips/clip_000.mp4"),
        (("clips", "list", 1, "last_frame"), "frames/last_frame_001.png"),
    ],
)
def test_a_hash_the_manifest_states_wrongly_is_refused(bundle, field, path) -> None:
    def lie(manifest: dict) -> None:
        entry = manifest
        for key in field:
            entry = entry[key]
        entry["sha256"] = "0" * 64

    repack(bundle, edit_manifest(lie))
    done = shootout_cli("verify", str(bundle), timeout=120)
    field_name = ".".join(str(key) for key in field) + ".sha256"
    line = refused(done, 1, field_name, path, "000000000000")
    assert "every sha256 matches" not in done.stdout
    with tarfile.open(bundle) as tar:
        real = sha(tar.extractfile(f"{RUN_ID}/{path}").read())
    assert real[:12] in line


def test_a_clip_log_that_states_a_wrong_input_image_is_refused(bundle) -> None:
    def lie(files: dict) -> None:
        log = json.loads(files["logs/log_001.json"])
        log["input_image"]["sha256"] = "1" * 64
        files["logs/log_001.json"] = json.dumps(log).encode()
        manifest = json.loads(files[MANIFEST])
        manifest["files"]["logs/log_001.json"] = sha(files["logs/log_001.json"])
        files[MANIFEST] = json.dumps(manifest).encode()

    repack(bundle, lie)
    done = shootout_cli("verify", str(bundle), timeout=120)
    refused(done, 1, "logs/log_001.json input_image.sha256", "frames/last_frame_000.png", "111111111111")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda files: files.update({"status/extra.txt": b"x"}), ("status/extra.txt", "not listed in SHA256SUMS")),
        (edit_manifest(lambda m: m["files"].update({"extra.txt": "2" * 64})), ("SHA256SUMS: does not list extra.txt",)),
        (edit_manifest(lambda m: m["files"].pop("job.yaml")), ("SHA256SUMS: lists job.yaml",)),
    ],
)
def test_the_file_lists_must_agree_and_cover_the_archive(bundle, edit, words) -> None:
    repack(bundle, edit)
    refused(shootout_cli("verify", str(bundle), timeout=120), 1, *words)


def raw_manifest(data: bytes):
    return lambda files: files.update({MANIFEST: data})


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (raw_manifest(b"{not json"), ("manifest.json: not valid JSON",)),
        (raw_manifest(b"\xff\xfe"), ("manifest.json: not valid JSON",)),
        (raw_manifest(b"[1, 2]"), ("manifest.json: not a JSON object",)),
        (edit_manifest(lambda m: m.pop("final_video")), ("manifest.json: final_video: Field required",)),
        (edit_manifest(lambda m: m.update(run_id=7)), ("manifest.json: run_id: Input should be a valid string",)),
        (edit_manifest(lambda m: m.update(run_id="other")), ("manifest.json: run_id 'other'", RUN_ID)),
        (
            edit_manifest(lambda m: m.update(files=["job.yaml"])),
            ("manifest.json: files: Input should be a valid dict",),
        ),
        (edit_manifest(lambda m: m["files"].update({"job.yaml": HF_TOKEN})), ("manifest.json: files.job.yaml",)),
        (edit_manifest(lambda m: m["clips"].update(list=[{"file": 3}])), ("manifest.json: clips.list.0.file",)),
        (edit_manifest(lambda m: m["clips"].update(planned=float("nan"))), ("not valid JSON", "NaN")),
        (edit_manifest(lambda m: m.update(stitch=float("-inf"))), ("not valid JSON", "-Infinity")),
    ],
)
def test_a_malformed_manifest_is_refused_in_one_line(bundle, edit, words) -> None:
    repack(bundle, edit)
    done = shootout_cli("verify", str(bundle), timeout=120)
    refused(done, 1, *words)
    assert HF_TOKEN not in done.stderr + done.stdout  # a value from the manifest is never echoed


@pytest.mark.parametrize("text", ["", "not-a-hash  bundle.tar\n", "\n\n"])
def test_an_empty_or_malformed_sidecar_is_refused(bundle, text) -> None:
    bundle.with_name(f"{bundle.name}.sha256").write_text(text)
    refused(shootout_cli("verify", str(bundle), timeout=120), 1, f"{bundle.name}.sha256: malformed")


@pytest.mark.parametrize("name", [".", "./"])
def test_a_member_named_dot_is_refused(tmp_path, name) -> None:
    archive = tmp_path / "dot.tar"
    with tarfile.open(archive, "w") as tar:
        top = tarfile.TarInfo(name)
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        sums = tarfile.TarInfo("./SHA256SUMS")
        tar.addfile(sums, io.BytesIO(b""))
    refused(shootout_cli("verify", str(archive), timeout=120), 1, "not a path inside a run directory")


def test_a_file_that_is_not_a_tar_is_refused(tmp_path) -> None:
    archive = tmp_path / "junk.tar"
    archive.write_bytes(b"this is not a tar archive\n" * 100)
    refused(shootout_cli("verify", str(archive), timeout=120), 1, "junk.tar: damaged archive")


def test_a_truncated_bundle_is_refused(bundle) -> None:
    data = bundle.read_bytes()
    with tarfile.open(bundle) as tar:
        sums, *_, last = tar.getmembers()
    after_sums = sums.offset_data + -(-sums.size // 512) * 512  # cut cleanly after the first member, SHA256SUMS
    inside_last = last.offset_data + last.size // 2
    for cut, words in ((after_sums, "manifest.json: missing from the archive"), (inside_last, "damaged archive")):
        bundle.write_bytes(data[:cut])
        refused(shootout_cli("verify", str(bundle), timeout=120), 1, words)


def test_a_sums_file_that_is_not_text_is_refused(bundle) -> None:
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        data[tar.getmembers()[0].offset_data] ^= 0x80
    bundle.write_bytes(bytes(data))
    refused(shootout_cli("verify", str(bundle), timeout=120), 1, "SHA256SUMS: not text")


def test_a_missing_path_is_an_input_error(tmp_path) -> None:
    refused(shootout_cli("verify", str(tmp_path / "nothing.tar"), timeout=120), 2, "nothing.tar: no such file")


def test_a_folder_is_an_input_error(tmp_path) -> None:
    refused(shootout_cli("verify", str(tmp_path), timeout=120), 2, "not a regular file")


def test_an_extract_target_that_is_a_file_is_an_input_error(bundle, tmp_path) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    done = shootout_cli("verify", str(bundle), "--extract", str(target), timeout=120)
    refused(done, 2, str(target), "not a folder")
    assert target.read_text() == "keep me"


def test_the_help_documents_the_exit_codes() -> None:
    done = shootout_cli("verify", "--help", timeout=120)
    assert done.returncode == 0 and "exit codes: 0 verified; 1 the bundle" in " ".join(done.stdout.split())
