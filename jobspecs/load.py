"""Read a job spec file (and the base files it `extends`), apply `--set key=value` overrides, validate, check and
normalise the reference image."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import ValidationError

from jobspecs.offers import OfferShape, OfferSource, snapshot_shapes
from jobspecs.schema import JobSpec, SpecError

MAX_SPEC_BYTES = 256 * 1024  # a spec file; the demo is 3 KB
MAX_YAML_NODES = 10_000  # scalars, lists and mappings of the document, aliases expanded (the demo has ~100)
MAX_YAML_DEPTH = 32  # nesting of lists and mappings (a spec needs 4)
MAX_EXTENDS = 4  # `extends` followed from one spec file: its base, the base's base, ... (the model specs use 1)
MAX_ERRORS = 20  # validation errors listed in one refusal
MAX_SHOWN = 80  # characters of a value echoed in a message
MAX_IMAGE_BYTES = 50 * 1024 * 1024  # 50 MB
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP
MIN_IMAGE_SIDE = 256  # px, the short side: smaller is upscaled into a blurred film (the clips are 720p-class)
CROP_WARN = 0.70  # the centre crop to the clip's aspect keeps less of the image than this: a warning
CROP_REFUSE = 0.25  # ... less than this: refused (a panorama, or a portrait for a landscape film)
BACKGROUND = (255, 255, 255)  # transparent pixels are composited over white
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP"}
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass(frozen=True)
class LoadedSpec:
    spec: JobSpec
    reference: Path  # absolute path of the reference image on this machine
    source: Path  # the spec file
    overrides: tuple[str, ...]  # the `--set key=value` strings, as given
    notes: tuple[str, ...] = ()  # warnings about the reference image, and what was fixed in it


@dataclass(frozen=True)
class Reference:
    image: Image.Image  # upright, 8-bit RGB, opaque: what the first clip starts from
    notes: tuple[str, ...]  # what was fixed, and warnings
    plain: bool  # the file is such an image already (an 8-bit RGB PNG, nothing to fix): it goes to the box as it is


def load_spec(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), offers: OfferSource | None = None
) -> LoadedSpec:
    """Load and validate (`offers`: where `auto` offers are picked from, validate's default: the snapshot); raises
    SpecError naming every bad field, its value and the rule."""
    source = Path(path)
    data = read_spec(source)
    for item in overrides:
        apply_override(data, item)
    spec = validate(data, source=str(source), offers=offers)
    try:
        reference = (source.parent / spec.reference_image).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise SpecError(f"reference_image = {shown(spec.reference_image)}: cannot be resolved ({exc})") from None
    checked = open_reference(reference, spec.reference_image, spec.size)
    return LoadedSpec(spec=spec, reference=reference, source=source, overrides=tuple(overrides), notes=checked.notes)


def read_spec(source: Path, chain: tuple[Path, ...] = (), where: str = "") -> dict:
    """A spec file's fields, with the base it names in `extends` merged under them, before validation.

    `extends: demo.yaml` (a path relative to the file that names it) reads that base spec, which may extend another
    (at most MAX_EXTENDS levels, no cycle), and merges this file's fields over it: mappings merge key by key, any
    other value (a list such as `shots`, a number, a string) replaces the base's whole. A `reference_image` set in
    a base stays relative to the base file. The result has no `extends` key. `chain` holds the files that extend
    this one (for the cycle check); `where` is how messages name this file.
    """
    where = where or f"spec file {source}"
    data = read_mapping(source, where)
    if "extends" not in data:
        return data
    value = data.pop("extends")
    field = f"extends = {shown(value)} in {source}"
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{field}: the path of a base spec file expected, relative to this spec file")
    base = source.parent / value
    try:
        here, there = source.resolve(), base.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise SpecError(f"{field}: cannot be resolved ({exc})") from None
    if there in (*chain, here):
        cycle = " → ".join(path.name for path in (*chain, here, there))
        raise SpecError(f"{field}: a cycle of extends ({cycle}); no spec may extend itself, directly or not")
    if len(chain) >= MAX_EXTENDS:
        raise SpecError(f"{field}: more than {MAX_EXTENDS} levels of extends (a base that extends a base ...)")
    if not base.exists():
        raise SpecError(f"{field}: file not found ({there}); the path is relative to the spec file that names it")
    if not base.is_file():
        raise SpecError(f"{field}: unreadable, not a regular file ({there})")
    base_data = read_spec(base, (*chain, here), f"{field}: the base {base}")
    reference, folder = base_data.get("reference_image"), Path(value).parent
    if isinstance(reference, str) and folder != Path("."):  # relative to the base file: now relative to this one
        base_data["reference_image"] = (folder / reference).as_posix()
    return merged(base_data, data)


def read_mapping(source: Path, where: str) -> dict:
    """A spec file's top-level mapping, after the size, encoding and YAML checks (read_spec_text, read_yaml)."""
    data = read_yaml(read_spec_text(source, where), where)
    if not isinstance(data, dict):
        raise SpecError(f"{where}: must be a YAML mapping of fields")
    return data


def merged(base: dict, override: dict) -> dict:
    """`override`'s keys over `base`'s: mappings in both merge recursively; any other value replaces the base's."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def read_spec_text(source: Path, where: str) -> str:
    """The spec file as text: at most MAX_SPEC_BYTES, UTF-8 (a UTF-8 byte-order mark is allowed)."""
    try:
        with source.open("rb") as file:
            raw = file.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{where}: larger than the limit of {MAX_SPEC_BYTES // 1024} KB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = " (it is UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise SpecError(
            f"{where}: not UTF-8 text{utf16}: byte 0x{raw[exc.start]:02x} at offset {exc.start}; save the spec as UTF-8"
        ) from None


def read_yaml(text: str, where: str) -> object:
    """One YAML document, refused (SpecError) when malformed, nested deeper than MAX_YAML_DEPTH, larger than
    MAX_YAML_NODES once aliases are expanded, or with a key twice in one mapping. The checks run on the composed
    node graph, before any Python object is built."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # refuses non-printable characters here
        node = loader.get_single_node()
        if node is None:
            return None
        check_nodes(node, where)
        return loader.construct_document(node)
    except SpecError:
        raise
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: not valid YAML: {yaml_problem(exc)}") from None
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply; the limit is {MAX_YAML_DEPTH} levels") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(f"{where}: not a valid YAML value ({shown(str(exc), quote=False)})") from None
    finally:
        if loader is not None:
            loader.dispose()


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: the problem and where it is."""
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        return f"unacceptable character #x{exc.character:04x} at position {exc.position}: {exc.reason}"
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return shown(" ".join(str(exc).split()), quote=False)
    context = f"{exc.context}, " if getattr(exc, "context", None) else ""
    return f"{context}{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"


def check_nodes(root: yaml.Node, where: str) -> None:
    """Count the nodes of the alias-expanded document and measure its depth, each node visited once (an alias is
    the node it names: its count is reused), so a "billion laughs" costs linear time; and refuse duplicate keys."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) below and including it
    visiting: set[int] = set()

    def size(node: yaml.Node) -> tuple[int, int]:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in visiting:
            raise SpecError(f"{where}: line {node.start_mark.line + 1}: an alias refers to itself (a recursive alias)")
        visiting.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            check_duplicate_keys(node, where)
            children = [part for pair in node.value for part in pair]
        count, depth = 1, 0
        for child in children:
            child_count, child_depth = size(child)
            count, depth = count + child_count, max(depth, child_depth)
        depth += 1 if children else 0
        if count > MAX_YAML_NODES:
            raise SpecError(
                f"{where}: line {node.start_mark.line + 1}: more than the limit of {MAX_YAML_NODES:,} values once "
                "aliases are expanded (an alias bomb?)"
            )
        if depth > MAX_YAML_DEPTH:
            raise SpecError(
                f"{where}: line {node.start_mark.line + 1}: nested too deeply; the limit is {MAX_YAML_DEPTH} levels"
            )
        visiting.discard(id(node))
        sizes[id(node)] = (count, depth)
        return count, depth

    size(root)


def check_duplicate_keys(node: yaml.MappingNode, where: str) -> None:
    """A key twice in one mapping: YAML keeps the last one silently (a second `shots:` replaces the first)."""
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        first = seen.setdefault((key.tag, key.value), line)
        if first != line:
            raise SpecError(
                f"{where}: line {line}: duplicate key {shown(key.value)} (first at line {first}); a key appears "
                "once per mapping (YAML would silently keep only the last)"
            )


def shown(value: object, quote: bool = True) -> str:
    """A value as a message shows it: repr (escapes control characters) cut to MAX_SHOWN characters."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}… ({len(text):,} characters)"


def validate(data: dict, source: str = "spec", offers: OfferSource | None = None) -> JobSpec:
    """The spec, validated; `infrastructure.gpu` / `num_gpus: auto` resolved to the offer the planner picks from
    `offers(spec)` (default: the dated snapshot, jobspecs/offers.yaml: offline and deterministic), and
    `generation.profile: auto` to the profile it picks (jobspecs.plan.pick_offer, pick_profile: the returned spec
    names them, and its offer_choice and profile_choice say why)."""
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        errors = [describe(e) for e in exc.errors()]
        if len(errors) > MAX_ERRORS:
            errors = errors[:MAX_ERRORS] + [f"… and {len(errors) - MAX_ERRORS} more"]
        raise SpecError(f"{source} is not valid:\n" + "\n".join(errors)) from None
    if not spec.infrastructure.resolved:  # the offer, and on it the profile where that is `auto` too
        from jobspecs.plan import pick_offer  # the planner reads specs: imported here, not at the top

        return pick_offer(spec, (offers or snapshot_offers)(spec)).spec
    if spec.generation.profile == "auto":
        from jobspecs.plan import pick_profile

        spec = pick_profile(spec)
    return spec


def snapshot_offers(spec: JobSpec) -> list[OfferShape]:
    """The offer source `validate` resolves `auto` with by default: the dated snapshot, whatever the spec."""
    return snapshot_shapes()


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
    return f"{field} = {shown(value)}: {rule}"


def apply_override(data: dict, item: str) -> None:
    """`a.b.0.c=value` sets data['a']['b'][0]['c']; the value is parsed as YAML (numbers, true, lists)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {shown(item)}: expected key=value, e.g. --set seed=7 or --set shots.0.duration_s=6")
    value = read_yaml(raw, f"--set {shown(key.strip(), quote=False)}={shown(raw, quote=False)}")
    parts = key.strip().split(".")
    if not all(part.strip() for part in parts):
        raise SpecError(f"--set {shown(key, quote=False)}: an empty part in the dotted path (e.g. shots.0.duration_s)")
    node: object = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(f"--set {shown(key, quote=False)}: '{part}' is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise SpecError(f"--set {shown(key, quote=False)}: '{'.'.join(parts[:depth])}' is not a mapping or list")


def open_reference(path: Path, written: str, clip_size: tuple[int, int]) -> Reference:
    """Open the reference image once, check it, and make it the image the first clip starts from: upright
    (EXIF orientation), 8-bit RGB (16-bit scaled down, not clipped), opaque (over BACKGROUND). Raises SpecError;
    what was fixed, and the warnings, come back as notes."""
    field = f"reference_image = {shown(written)}"
    try:
        if not path.exists():
            raise SpecError(f"{field}: file not found ({path}); paths are relative to the spec file")
        if not path.is_file():
            raise SpecError(f"{field}: unreadable, not a regular file")
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError(f"{field}: cannot be read ({exc.strerror or exc})") from None
    if size > MAX_IMAGE_BYTES:
        raise SpecError(f"{field}: {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES / 1e6:.0f} MB")
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
            if fmt not in IMAGE_FORMATS:
                raise SpecError(f"{field}: {fmt} image; PNG, JPEG or WebP expected")
            if width * height > MAX_IMAGE_PIXELS:
                raise SpecError(
                    f"{field}: {width}x{height} = {width * height / 1e6:.1f} MP; "
                    f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP"
                )
            image.load()  # decode fully: a truncated or damaged file fails here
            notes = [f"{field}: animated; its first frame is used"] if getattr(image, "n_frames", 1) > 1 else []
            rgb, fixed = to_rgb(image)
            plain = is_plain(image, fixed)
    except Image.DecompressionBombError:
        raise SpecError(f"{field}: far above the {MAX_IMAGE_PIXELS / 1e6:.0f} MP limit") from None
    except UnidentifiedImageError:
        raise SpecError(f"{field}: not an image (PNG, JPEG or WebP expected)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # ValueError: e.g. a too large PNG text chunk
        raise SpecError(f"{field}: unreadable image ({shown(str(exc), quote=False)})") from None
    notes += [f"{field}: fixed: {note}" for note in fixed]
    width, height = rgb.size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise SpecError(
            f"{field}: {width}x{height}, its short side is below the minimum of {MIN_IMAGE_SIDE} px (it would be "
            f"upscaled to the clip's {clip_size[0]}x{clip_size[1]})"
        )
    kept = crop_kept(rgb.size, clip_size)
    crop = (
        f"the centre crop of the {width}x{height} image to the clip's {clip_size[0]}x{clip_size[1]} aspect keeps "
        f"{kept:.0%} of it"
    )
    if kept < CROP_REFUSE:
        raise SpecError(f"{field}: {crop}; the minimum is {CROP_REFUSE:.0%} (crop the image to the film's aspect)")
    if kept < CROP_WARN:
        notes.append(f"{field}: {crop} (a warning below {CROP_WARN:.0%}; the rest is cut off)")
    return Reference(image=rgb, notes=tuple(notes), plain=plain)


def crop_kept(size: tuple[int, int], clip_size: tuple[int, int]) -> float:
    """The fraction of an image of `size` the centre crop to the clip's aspect keeps."""
    image_aspect, clip_aspect = size[0] / size[1], clip_size[0] / clip_size[1]
    return min(image_aspect / clip_aspect, clip_aspect / image_aspect)


def to_rgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """An image as 8-bit, opaque RGB, upright: EXIF orientation applied, 16-bit grey scaled to 8 bits (not clipped
    to white), transparency composited over BACKGROUND. Returns the image and what was fixed, in words."""
    fixed = []
    orientation = image.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        size = image.size
        image = ImageOps.exif_transpose(image)
        fixed.append(f"EXIF orientation {orientation} applied ({size[0]}x{size[1]} → {image.width}x{image.height})")
    if image.mode in SIXTEEN_BIT:
        values = np.asarray(image.convert("I"), dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(values * 255 / 65535), 0, 255).astype(np.uint8), "L")
        fixed.append("16-bit grayscale scaled to 8 bits (value × 255 / 65535)")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 255:
            background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
            image = Image.alpha_composite(background, rgba)
            see_through = float(np.mean(alpha < 255))
            fixed.append(
                f"transparency ({see_through:.0%} of the pixels) composited over the background colour "
                f"#{BACKGROUND[0]:02X}{BACKGROUND[1]:02X}{BACKGROUND[2]:02X}"
            )
        else:
            image = rgba
    if image.mode == "CMYK":
        fixed.append("CMYK converted to RGB")
    return image.convert("RGB"), fixed


def is_plain(image: Image.Image, fixed: list[str]) -> bool:
    """An 8-bit RGB PNG with nothing to fix: its own bytes are the normalised reference (the same hash)."""
    return image.format == "PNG" and image.mode == "RGB" and not fixed


def reference_png(path: Path, reference: Reference) -> bytes:
    """The bytes the box gets as input/reference.png: the file itself when it is plain, else the normalised image
    encoded as PNG."""
    if reference.plain:
        return path.read_bytes()
    buffer = io.BytesIO()
    reference.image.save(buffer, "PNG")
    return buffer.getvalue()


def normalised_png(path: Path) -> bytes:
    """reference_png for an image file, without the spec's checks."""
    with Image.open(path) as image:
        rgb, fixed = to_rgb(image)
        return reference_png(path, Reference(image=rgb, notes=(), plain=is_plain(image, fixed)))


def resume_source(out: Path, run_id: str) -> Path:
    """Where a failed run's finished clips are: its .partial folder, else its verified run directory under `out`."""
    if not RUN_ID.fullmatch(run_id) or len(run_id) > 200:
        raise SpecError(f"--resume {shown(run_id)}: not a run id (letters, digits, '.', '_' and '-', as printed)")
    for folder in (out / f"{run_id}.partial", out / run_id):
        if (folder / "job.yaml").exists():
            return folder
    raise SpecError(f"--resume {run_id}: no {run_id}.partial/ or {run_id}/ with a job.yaml in {out}")
