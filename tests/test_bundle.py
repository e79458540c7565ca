"""verify_bundle refuses a flipped byte anywhere (naming the file) and archives that could escape their folder."""

from __future__ import annotations

import io
import shutil
import tarfile

import pytest
from conftest import shootout_cli

from remote.bundle import BundleError, verify_bundle


@pytest.fixture
def archive(demo_run, tmp_path):
    """A private copy of the demo's bundle (and its .sha256) to damage."""
    copy = tmp_path / demo_run["archive"].name
    shutil.copy(demo_run["archive"], copy)
    shutil.copy(f"{demo_run['archive']}.sha256", f"{copy}.sha256")
    return copy


def flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_an_intact_bundle_verifies_and_extracts(archive, tmp_path) -> None:
    manifest = verify_bundle(archive, dest=tmp_path / "here")
    assert (tmp_path / "here" / manifest.run_id / "final" / "final_stitched.mp4").is_file()
    done = shootout_cli("verify", str(archive), timeout=120)
    assert done.returncode == 0 and "every sha256 matches" in done.stdout


def test_a_flipped_byte_in_any_file_is_refused_naming_that_file(archive) -> None:
    with tarfile.open(archive) as tar:
        members = [(m.name.split("/", 1)[1], m.offset_data + m.size // 2) for m in tar.getmembers()]
    original = archive.read_bytes()
    for name, offset in members:
        flip(archive, offset)
        with pytest.raises(BundleError) as caught:
            verify_bundle(archive)
        message = str(caught.value)
        if name in ("SHA256SUMS", "manifest.json"):  # these two vouch for each other
            assert message.startswith(("SHA256SUMS", "manifest.json")), (name, message)
        else:
            assert message.startswith(f"{name}: sha256"), (name, message)
        archive.write_bytes(original)


def test_a_flipped_byte_in_a_header_or_the_padding_is_refused(archive) -> None:
    with tarfile.open(archive) as tar:
        clip = next(m for m in tar.getmembers() if m.name.endswith("clip_002.mp4"))
    original = archive.read_bytes()
    flip(archive, clip.offset + 10)  # inside the header's file name
    with pytest.raises(BundleError, match="clip_002.mp4"):
        verify_bundle(archive)
    archive.write_bytes(original)
    flip(archive, len(original) - 100)  # the end-of-archive padding: only the archive's hash sees it
    with pytest.raises(BundleError, match=archive.name):
        verify_bundle(archive)
    done = shootout_cli("verify", str(archive), timeout=120)
    assert done.returncode == 1 and "REFUSED" in done.stderr and archive.name in done.stderr


def unsafe_archive(tmp_path, member: tarfile.TarInfo, data: bytes = b"x") -> str:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "rule"),
    [
        ("/etc/evil", tarfile.REGTYPE, "unsafe path"),
        ("run/../../evil", tarfile.REGTYPE, "unsafe path"),
        ("run/link", tarfile.SYMTYPE, "link or special file"),
        ("run/hard", tarfile.LNKTYPE, "link or special file"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, name, kind, rule) -> None:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = "/etc/passwd" if kind != tarfile.REGTYPE else ""
    with pytest.raises(BundleError, match=rule) as caught:
        verify_bundle(unsafe_archive(tmp_path, member), dest=tmp_path / "out")
    assert name in str(caught.value)
    assert not (tmp_path / "out" / "run").exists()
