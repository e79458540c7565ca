"""Bad or odd input is refused before anything is rented (one REFUSED line, exit 2, never a traceback), or fixed and
said so (WARNING): the reference image, the YAML itself, the prompt text, `--set` and `--resume`."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import demo_data, shootout_cli, write_spec
from PIL import Image, PngImagePlugin

from jobspecs.load import CROP_REFUSE, MAX_SPEC_BYTES, MIN_IMAGE_SIDE, open_reference, reference_png
from jobspecs.schema import MAX_TEXT_CHARS
from remote.layout import JobPaths, stage_job
from remote.worker import fit_to_clip


def refused_by_cli(*args: str, expected: tuple[str, ...] = ()) -> str:
    """The CLI's refusal: exit 2, one REFUSED message on stderr holding every `expected` part, no traceback."""
    done = shootout_cli(*args, timeout=120)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr and done.stderr.startswith("REFUSED "), done.stderr[-2000:]
    assert done.stderr.count("REFUSED") == 1 and len(done.stderr) < 2000, done.stderr[:2000]
    for part in expected:
        assert part in done.stderr, f"{part!r} not in:\n{done.stderr}"
    return done.stderr


def spec_with_image(folder, image: Image.Image | None, name: str, **save) -> str:
    """The demo spec with `image` saved as its reference image `name` (None: the file is written by the caller)."""
    data = demo_data()
    data["reference_image"] = name
    spec = write_spec(folder, data)
    if image is not None:
        image.save(folder / name, **save)
    return str(spec)


def spec_text(folder, text: str, name: str = "spec.yaml") -> str:
    write_spec(folder, demo_data())  # the reference image beside it
    (folder / name).write_text(text)
    return str(folder / name)


# --- 1. the reference image: checked, and normalised to the PNG the box gets ------------------------------------


def test_reference_without_an_extension_is_uploaded_as_reference_png(tmp_path) -> None:
    spec = spec_with_image(tmp_path, Image.new("RGB", (600, 400), "orange"), "photo", format="PNG")
    done = shootout_cli("validate", spec, timeout=120)
    assert done.returncode == 0, done.stderr
    reference = open_reference(tmp_path / "photo", "photo", (1280, 720))
    paths = JobPaths(tmp_path / "box" / "run")
    stage_job(paths.job_dir, demo_data(), reference_png(tmp_path / "photo", reference), {"run_id": "run"})
    assert paths.reference == paths.input_dir / "reference.png"
    assert paths.reference.read_bytes() == (tmp_path / "photo").read_bytes()  # a plain RGB PNG goes as it is
    assert Image.open(paths.reference).getpixel((10, 10)) == (255, 165, 0)
    old = JobPaths(tmp_path / "box" / "old")  # a file given as it is: normalised on the way too
    stage_job(old.job_dir, demo_data(), tmp_path / "photo", {"run_id": "old"})
    assert old.reference.name == "reference.png" and Image.open(old.reference).format == "PNG"


def test_16_bit_grey_is_scaled_not_clipped_to_white(tmp_path) -> None:
    spec = spec_with_image(tmp_path, Image.new("I;16", (600, 400), 32768), "grey16.png")
    done = shootout_cli("validate", spec, timeout=120)
    assert done.returncode == 0
    assert "WARNING reference_image = 'grey16.png': fixed: 16-bit grayscale scaled to 8 bits" in done.stdout
    reference = open_reference(tmp_path / "grey16.png", "grey16.png", (1280, 720))
    assert reference.image.mode == "RGB" and reference.image.getpixel((5, 5)) == (128, 128, 128)
    staged = Image.open(stage_job(tmp_path / "job", demo_data(), tmp_path / "grey16.png", {})[1])
    assert staged.getpixel((5, 5)) == (128, 128, 128)
    fitted = fit_to_clip(Image.open(tmp_path / "grey16.png"), 256, 144)  # the worker, for an older job's image
    assert np.asarray(fitted).max() <= 129


def test_exif_rotated_jpeg_is_made_upright(tmp_path) -> None:
    stored = Image.new("RGB", (720, 1280), "blue")
    stored.paste((255, 0, 0), (0, 0, 720, 640))  # the stored top half: red
    exif = stored.getexif()
    exif[0x0112] = 6  # the camera was turned: rotate 90° clockwise to view
    spec = spec_with_image(tmp_path, stored, "phone.jpg", exif=exif, quality=95)
    done = shootout_cli("plan", spec, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (
        "WARNING reference_image = 'phone.jpg': fixed: EXIF orientation 6 applied (720x1280 → 1280x720)" in done.stdout
    )
    upright = open_reference(tmp_path / "phone.jpg", "phone.jpg", (1280, 720)).image
    assert upright.size == (1280, 720)
    right, left = upright.getpixel((1200, 360)), upright.getpixel((80, 360))
    assert right[0] > 200 > right[2] and left[2] > 200 > left[0]  # the stored top is now on the right
    fitted = fit_to_clip(Image.open(tmp_path / "phone.jpg"), 256, 144)  # the worker does the same
    assert fitted.getpixel((240, 72))[0] > 200


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_over_white(tmp_path, mode) -> None:
    if mode == "P":
        image = Image.new("P", (600, 400), 0)
        image.putpalette([255, 0, 0, 0, 255, 0])
        save = {"transparency": 0}  # palette entry 0 (red) is transparent
    else:
        image, save = Image.new("RGBA", (600, 400), (255, 0, 0, 0)).convert(mode), {}
    spec = spec_with_image(tmp_path, image, "cutout.png", **save)
    done = shootout_cli("validate", spec, timeout=120)
    assert done.returncode == 0
    assert "transparency (100% of the pixels) composited over the background colour #FFFFFF" in done.stdout
    reference = open_reference(tmp_path / "cutout.png", "cutout.png", (1280, 720))
    assert reference.image.mode == "RGB" and reference.image.getpixel((300, 200)) == (255, 255, 255)
    assert fit_to_clip(Image.open(tmp_path / "cutout.png"), 256, 144).getpixel((128, 72)) == (255, 255, 255)


def test_a_tiny_reference_is_refused(tmp_path) -> None:
    spec = spec_with_image(tmp_path, Image.new("RGB", (8, 8), "red"), "icon.png")
    refused_by_cli(
        "validate", spec, expected=("reference_image = 'icon.png'", "8x8", f"minimum of {MIN_IMAGE_SIDE} px")
    )


def test_a_panorama_is_refused_and_a_portrait_warned(tmp_path) -> None:
    spec = spec_with_image(tmp_path, Image.new("RGB", (4000, 400), "red"), "pano.png")
    refused_by_cli(
        "plan",
        spec,
        expected=("reference_image = 'pano.png'", "4000x400", "keeps 18%", f"the minimum is {CROP_REFUSE:.0%}"),
    )
    spec = spec_with_image(tmp_path, Image.new("RGB", (3000, 4000), "red"), "portrait.png")
    done = shootout_cli("plan", spec, timeout=120)
    assert done.returncode == 0
    assert "WARNING reference_image = 'portrait.png': the centre crop" in done.stdout and "keeps 42%" in done.stdout


def test_a_png_with_a_huge_text_chunk_is_refused(tmp_path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 3_000_000, zip=True)  # 3 MB of text, a few KB compressed
    spec = spec_with_image(tmp_path, Image.new("RGB", (600, 400), "red"), "meta.png", pnginfo=info)
    refused_by_cli("validate", spec, expected=("reference_image = 'meta.png'", "unreadable image"))


def test_a_symlink_loop_is_refused_as_spec_and_as_reference(tmp_path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    refused_by_cli("validate", str(tmp_path / "a"), expected=("spec file", "symbolic links"))
    spec = spec_with_image(tmp_path, None, "a")
    refused_by_cli("validate", spec, expected=("reference_image = 'a'", "Symlink loop"))


# --- 2. accepted silently no more ------------------------------------------------------------------------------


def test_a_duplicate_key_is_refused_with_its_line(tmp_path) -> None:
    text = open("jobspecs/demo.yaml").read() + "shots: []\n"
    line = text.count("\n")
    spec = spec_text(tmp_path, text)
    refused_by_cli("validate", spec, expected=(f"line {line}: duplicate key 'shots'", "first at line"))


@pytest.mark.parametrize(("line", "field"), [("seed: yes", "seed = True"), ("seed: on", "seed = True")])
def test_a_yes_no_value_is_not_a_number(tmp_path, line, field) -> None:
    spec = spec_text(tmp_path, re.sub(r"(?m)^seed: .*$", line, open("jobspecs/demo.yaml").read()))
    refused_by_cli("validate", spec, expected=(field, "a number is expected, not a yes/no value"))
    refused_by_cli(
        "validate", "jobspecs/demo.yaml", "--set", "shots.0.duration_s=true", expected=("shots.0.duration_s = True",)
    )


FLOATS = [
    "guardrails.clip_limit_s",
    "guardrails.run_limit_s",
    "infrastructure.max_usd_per_hour",
    "shots.0.duration_s",
    "color_match.strength",
]


@pytest.mark.parametrize("field", FLOATS)
@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_infinity_and_nan_are_refused(field, value) -> None:
    stderr = refused_by_cli("validate", "jobspecs/demo.yaml", "--set", f"{field}={value}", expected=(f"{field} = ",))
    assert "finite number" in stderr or "greater than" in stderr or "less than" in stderr


@pytest.mark.parametrize(
    ("field", "text", "code"),
    [
        ("title", "\u200b\u200b", "U+200B (ZERO WIDTH SPACE)"),
        ("shots.0.action", "sips\\0 coffee", "U+0000"),
        ("constants.style", "\\e[31mred\\e[0m", "U+001B"),
        ("shots.2.subject", "a cup \u202e", "U+202E"),
        ("generation.negative_prompt", "blur\u2028", "U+2028"),
    ],
)
def test_invisible_and_control_characters_in_prompt_text_are_refused(field, text, code) -> None:
    model = ("--set", "model=wan22_ti2v_5b") if field.startswith("generation") else ()
    refused_by_cli(
        "validate",
        "jobspecs/demo.yaml",
        *model,
        "--set",
        f'{field}="{text}"',
        expected=(f"{field} = ", code, "prompt text must be plain visible text"),
    )


def test_text_of_only_blank_characters_is_refused() -> None:
    refused_by_cli("validate", "jobspecs/demo.yaml", "--set", 'title="\u3164\u2800"', expected=("title", "no visible"))


@pytest.mark.parametrize(
    ("field", "text", "camera"),
    [
        ("action", "the camera pans left across the bar", "static"),
        ("environment", "slow dolly in on the cup", "static"),
        ("subject", "a cup as the lens zooms out", "static"),
        ("action", "a tracking shot of the barista", "pan right"),
        ("action", "the camera tilts down to the saucer", "tilt up"),
    ],
)
def test_a_camera_move_in_the_shot_text_is_refused(field, text, camera) -> None:
    moved = ("--set", f"shots.0.{field}={text}", "--set", f"shots.0.camera={camera}")
    refused_by_cli("validate", "jobspecs/demo.yaml", *moved, expected=("shots.0: ", f"{field} has", "in `camera`"))


def test_ordinary_words_and_the_shots_own_move_are_not_camera_moves() -> None:
    done = shootout_cli(
        "validate",
        "jobspecs/demo.yaml",
        "--set",
        "shots.0.action=a frying pan left on the stove",
        "--set",
        "shots.1.action=she tilts her head; the car zooms out of the garage",
        "--set",
        "shots.1.environment=the camera pans right past the window",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr  # shot 1's camera is "pan right": its text may say so


def test_text_and_spec_file_size_caps(tmp_path) -> None:
    refused_by_cli(
        "validate",
        "jobspecs/demo.yaml",
        "--set",
        f"shots.0.action={'word ' * 10_000}",
        expected=("shots.0.action = 'word word", f"at most {MAX_TEXT_CHARS} characters"),
    )
    big = spec_text(tmp_path, open("jobspecs/demo.yaml").read() + "#" * MAX_SPEC_BYTES)
    refused_by_cli("validate", big, expected=("spec file", f"limit of {MAX_SPEC_BYTES // 1024} KB"))


def test_a_prompt_longer_than_the_text_window_is_warned_at_validate_and_plan() -> None:
    long = (
        "--set",
        "model=wan22_ti2v_5b",
        "--set",
        f"constants.style={'a warm cinematic film look, ' * 80}",
        "--set",
        "guardrails.plan_check=warn",
    )
    for command in ("validate", "plan"):
        done = shootout_cli(command, "jobspecs/demo.yaml", *long, timeout=120)
        assert done.returncode == 0, done.stderr
        warned = [line for line in done.stdout.splitlines() if "UMT5 window of 512 tokens" in line]
        assert len(warned) == 6 and warned[0].startswith("WARNING shots.0 (its prompt"), done.stdout
        assert "an estimate" in warned[0]
    demo = shootout_cli("validate", "jobspecs/demo.yaml", "--set", "model=wan22_ti2v_5b", timeout=120)
    assert "WARNING" not in demo.stdout


def test_the_prompt_windows_agree_with_what_the_transformer_is_fed() -> None:
    """One window per model (architectures.yaml `text_window`, which the adapters pass as max_sequence_length and
    the prompt warning uses), and it must agree with the text tokens the planner counts per forward: Wan's UMT5
    and CogVideoX's T5 are padded to the window (CogVideoX's transformer is built for exactly that many);
    Hunyuan's LLaVA prompt loses its 4 template tokens and gains every 4th of the 576 image tokens."""
    from jobspecs import validate
    from jobspecs.config import architectures
    from remote.models import load_adapter
    from remote.models.hunyuan import IMAGE_EMBED_INTERLEAVE

    wan, cog, hunyuan = (architectures()[m] for m in ("wan22_ti2v_5b", "cogvideox15_5b_i2v", "hunyuan_i2v"))
    assert wan.text_tokens == wan.text_window == 512
    assert cog.text_tokens == cog.text_window == cog.transformer["max_text_seq_length"] == 226
    assert hunyuan.text_tokens == hunyuan.text_window - 4 + 576 // IMAGE_EMBED_INTERLEAVE
    for model, architecture in (("wan22_ti2v_5b", wan), ("cogvideox15_5b_i2v", cog), ("hunyuan_i2v", hunyuan)):
        assert load_adapter(validate(dict(demo_data(), model=model))).max_sequence_length == architecture.text_window


# --- 3. refused with a message, not a traceback ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "not UTF-8 text"),
        (open("jobspecs/demo.yaml").read().encode("utf-16"), "not UTF-8 text (it is UTF-16)"),
        (b"title: [" + b"[" * 5000 + b"]" * 5001, "nested too deeply"),
        (b"title: " + b"[" * 100 + b"]" * 100, "nested too deeply; the limit is 32 levels"),
        (b"title: \x00", "not valid YAML"),
    ],
)
def test_unreadable_spec_files_are_refused_in_one_line(tmp_path, content, expected) -> None:
    (tmp_path / "spec.yaml").write_bytes(content)
    stderr = refused_by_cli("validate", str(tmp_path / "spec.yaml"), expected=("spec file", expected))
    assert stderr.count("\n") == 1


def test_a_set_value_that_is_not_yaml_is_refused() -> None:
    stderr = refused_by_cli(
        "validate",
        "jobspecs/demo.yaml",
        "--set",
        "seed=[1",
        expected=("--set seed=[1: not valid YAML", "line 1, column 3"),
    )
    assert stderr.count("\n") == 1


def test_resume_from_an_unknown_run_is_refused_before_the_flow(tmp_path) -> None:
    out = tmp_path / "out"
    refused_by_cli(
        "run",
        "jobspecs/demo.yaml",
        "--resume",
        "nope",
        "--out",
        str(out),
        expected=("--resume nope: no nope.partial/ or nope/ with a job.yaml",),
    )
    refused_by_cli(
        "run",
        "jobspecs/demo.yaml",
        "--resume",
        "../../etc",
        "--out",
        str(out),
        expected=("--resume '../../etc': not a run id",),
    )
    refused_by_cli("run", "jobspecs/demo.yaml", "--resume", "", "--out", str(out), expected=("--resume '': not a run",))
    assert not out.exists()


def test_empty_names_and_counts_below_one_are_refused() -> None:
    refused_by_cli("validate", "jobspecs/demo.yaml", "--set", "..=1", expected=("an empty part in the dotted path",))
    refused_by_cli("validate", "jobspecs/demo.yaml", "--set", "infrastructure.gpu=", expected=("infrastructure.gpu",))
    for args in (("setup", "--live-instances", "0"), ("runs", "--limit", "-1")):
        done = shootout_cli(*args, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}, timeout=120)
        assert done.returncode == 2 and "is below 1" in done.stderr and "Traceback" not in done.stderr


# --- 4. refused quietly --------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [6, 9])
def test_an_alias_bomb_is_refused_in_a_few_lines(tmp_path, levels) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    text = open("jobspecs/demo.yaml").read().replace("title:", f"title: *a{levels - 1}\nold_title:")
    spec = spec_text(tmp_path, "\n".join(lines) + "\n" + text)
    refused_by_cli("validate", spec, expected=("values once aliases are expanded", "10,000"))


def test_a_recursive_alias_and_a_long_value_are_refused_briefly(tmp_path) -> None:
    spec = spec_text(tmp_path, "title: &t [*t]\n" + open("jobspecs/demo.yaml").read().replace("title:", "x:"))
    refused_by_cli("validate", spec, expected=("recursive alias",))
    stderr = refused_by_cli(
        "validate",
        "jobspecs/demo.yaml",
        "--set",
        f"model={'m' * 100_000}",
        expected=("model = 'mmmm", "(100,002 characters)", "unknown model"),
    )
    assert len(stderr) < 500
