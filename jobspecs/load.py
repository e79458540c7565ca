"""Read a job spec file, apply `--set key=value` overrides, validate, check the reference image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from jobspecs.schema import JobSpec, SpecError

MAX_IMAGE_BYTES = 50 * 1024 * 1024  # 50 MB
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP"}


@dataclass(frozen=True)
class LoadedSpec:
    spec: JobSpec
    reference: Path  # absolute path of the reference image on this machine
    source: Path  # the spec file
    overrides: tuple[str, ...]  # the `--set key=value` strings, as given


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedSpec:
    """Load and validate; raises SpecError naming every bad field, its value and the rule."""
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text())
    except OSError as exc:
        raise SpecError(f"spec file {source}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {source}: must be a YAML mapping of fields")
    for item in overrides:
        apply_override(data, item)
    spec = validate(data, source=str(source))
    reference = (source.parent / spec.reference_image).resolve()
    check_reference_image(reference, spec.reference_image)
    return LoadedSpec(spec=spec, reference=reference, source=source, overrides=tuple(overrides))


def validate(data: dict, source: str = "spec") -> JobSpec:
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source} is not valid:\n" + "\n".join(describe(e) for e in exc.errors())) from None


def describe(error: dict) -> str:
    """One pydantic error as `field = value: rule`."""
    field = ".".join(str(part) for part in error["loc"]) or "(spec)"
    value = error.get("input")
    rule = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        rule = "unknown key (check the spelling; unknown keys are errors)"
    elif error["type"] == "missing":
        return f"{field}: required field is missing"
    if isinstance(value, dict):
        return f"{field}: {rule}"
    return f"{field} = {value!r}: {rule}"


def apply_override(data: dict, item: str) -> None:
    """`a.b.0.c=value` sets data['a']['b'][0]['c']; the value is parsed as YAML (numbers, true, lists)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {item!r}: expected key=value, e.g. --set seed=7 or --set shots.0.duration_s=6")
    parts = key.strip().split(".")
    node: object = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(f"--set {key}: '{part}' is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = yaml.safe_load(raw)
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = yaml.safe_load(raw)
            else:
                node = node.setdefault(part, {})
        else:
            raise SpecError(f"--set {key}: '{'.'.join(parts[:depth])}' is not a mapping or list")


def check_reference_image(path: Path, written: str) -> None:
    field = f"reference_image = {written!r}"
    if not path.exists():
        raise SpecError(f"{field}: file not found ({path}); paths are relative to the spec file")
    if not path.is_file():
        raise SpecError(f"{field}: unreadable, not a regular file")
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise SpecError(f"{field}: {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES / 1e6:.0f} MB")
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise SpecError(
                    f"{field}: {width}x{height} = {width * height / 1e6:.1f} MP; "
                    f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP"
                )
            image.load()  # decode fully: a truncated or damaged file fails here
    except Image.DecompressionBombError:
        raise SpecError(f"{field}: far above the {MAX_IMAGE_PIXELS / 1e6:.0f} MP limit") from None
    except UnidentifiedImageError:
        raise SpecError(f"{field}: not an image (PNG, JPEG or WebP expected)") from None
    except (OSError, SyntaxError) as exc:
        raise SpecError(f"{field}: unreadable image ({exc})") from None
    if fmt not in IMAGE_FORMATS:
        raise SpecError(f"{field}: {fmt} image; PNG, JPEG or WebP expected")
