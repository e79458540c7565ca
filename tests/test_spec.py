"""Bad input is refused before any work, with the field, the value and the rule in the message."""

from __future__ import annotations

import copy

import pytest
from conftest import REPO, demo_data, shootout_cli, write_spec
from PIL import Image

from jobspecs import SpecError, load_spec, plan_clips
from jobspecs.load import MAX_IMAGE_PIXELS
from jobspecs.plan import build_prompt
from jobspecs.schema import total_seconds


def changed(**top: object) -> dict:
    data = demo_data()
    data.update(copy.deepcopy(top))
    return data


def refused(tmp_path, data: dict, *expected: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, data), overrides)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"
    return message


def test_demo_spec_is_valid_and_plans_six_chained_clips() -> None:
    job = load_spec("jobspecs/demo.yaml")
    clips = plan_clips(job.spec)
    assert [c.camera for c in clips] == ["push-in", "pan right", "orbit left", "tilt up", "dolly left", "pull-out"]
    assert [c.frames for c in clips] == [145] * 6  # 6 s at 24 fps, plus the input frame
    assert [c.seed for c in clips] == list(range(1234, 1240))
    assert 30 <= total_seconds(job.spec) <= 60


@pytest.mark.parametrize("durations", [[5] * 5, [9] * 7])
def test_total_length_outside_30_to_60_s(tmp_path, durations) -> None:
    data = demo_data()
    data["shots"] = [dict(data["shots"][0], duration_s=d) for d in durations]
    refused(tmp_path, data, "shots: total length", "30–60 s")


@pytest.mark.parametrize("duration", [4.5, 12])
def test_shot_outside_5_to_10_s(tmp_path, duration) -> None:
    data = demo_data()
    data["shots"][2]["duration_s"] = duration
    refused(tmp_path, data, f"shots.2.duration_s = {duration}", "a shot lasts 5–10 s")


@pytest.mark.parametrize("camera", ["pan left and push-in", ["pan left", "tilt up"], "pan left, tilt up"])
def test_more_than_one_camera_move(tmp_path, camera) -> None:
    data = demo_data()
    data["shots"][1]["camera"] = camera
    refused(tmp_path, data, "shots.1.camera", "one camera move per shot")


@pytest.mark.parametrize(
    ("camera", "rule"),
    [("zoom", "unknown camera move"), ("pan", "needs one direction: left or right"), ("push-in left", "takes no")],
)
def test_unknown_or_malformed_camera_move(tmp_path, camera, rule) -> None:
    data = demo_data()
    data["shots"][0]["camera"] = camera
    refused(tmp_path, data, f"shots.0.camera = {camera!r}", rule)


def test_unknown_model(tmp_path) -> None:
    refused(tmp_path, changed(model="sora"), "model = 'sora'", "unknown model", "kenburns")


def test_ssh_provider_needs_a_host(tmp_path) -> None:
    refused(tmp_path, changed(infrastructure={"provider": "ssh"}), "infrastructure", "needs infrastructure.host")


def test_reference_image_missing(tmp_path) -> None:
    refused(tmp_path, changed(reference_image="nowhere.png"), "reference_image = 'nowhere.png'", "file not found")


def test_reference_image_not_an_image(tmp_path) -> None:
    (tmp_path / "notes.png").write_text("these are notes, not pixels")
    refused(tmp_path, changed(reference_image="notes.png"), "reference_image = 'notes.png'", "not an image")


def test_reference_image_unreadable(tmp_path) -> None:
    tmp_path.mkdir(exist_ok=True)
    Image.new("RGB", (640, 360), "orange").save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])  # a download that stopped halfway
    refused(tmp_path, changed(reference_image="cut.png"), "reference_image = 'cut.png'", "unreadable image")


def test_reference_image_too_large(tmp_path) -> None:
    tmp_path.mkdir(exist_ok=True)
    Image.new("RGB", (8000, 5001), "gray").save(tmp_path / "huge.png")
    assert 8000 * 5001 > MAX_IMAGE_PIXELS
    refused(tmp_path, changed(reference_image="huge.png"), "reference_image = 'huge.png'", "the limit is 40 MP")


def test_resolution_not_720p_class(tmp_path) -> None:
    refused(tmp_path, changed(generation={"width": 1920, "height": 1080}), "1920x1080", "not 720p-class")


def test_unknown_keys(tmp_path) -> None:
    data = changed(shotz=[])
    data["shots"][0]["colour"] = "red"
    message = refused(tmp_path, data, "shotz", "shots.0.colour")
    assert message.count("unknown key (") == 2


@pytest.mark.parametrize("field", ["subject", "action", "environment"])
def test_empty_prompt_fields(tmp_path, field) -> None:
    data = demo_data()
    data["shots"][3][field] = "   "
    refused(tmp_path, data, f"shots.3.{field} = '   '", "at least 1 character")


def test_empty_global_constant(tmp_path) -> None:
    data = demo_data()
    data["constants"]["lighting"] = ""
    refused(tmp_path, data, "constants.lighting = ''", "at least 1 character")


def test_setting_not_applicable_to_the_model_and_frame_cap_above_native(tmp_path) -> None:
    refused(tmp_path, changed(generation={"steps": 30}), "generation.steps", "has no such setting")
    refused(tmp_path, changed(generation={"max_frames": 300}), "generation.max_frames = 300", "native 241")


def test_inconsistent_stitch_settings(tmp_path) -> None:
    refused(tmp_path, changed(stitch={"transition": "crossfade"}), "stitch", "overlap_frames ≥ 1")
    refused(tmp_path, changed(stitch={"seam_bridge": "blend", "bridge_frames": 0}), "bridge_frames ≥ 1")


def test_set_overrides_apply_and_bad_paths_are_refused(tmp_path) -> None:
    spec = write_spec(tmp_path, demo_data())
    job = load_spec(spec, ["seed=7", "shots.0.duration_s=9", "stitch.crf=20"])
    assert (job.spec.seed, job.spec.shots[0].duration_s, job.spec.stitch.crf) == (7, 9, 20)
    assert job.overrides == ("seed=7", "shots.0.duration_s=9", "stitch.crf=20")
    with pytest.raises(SpecError, match="not an index"):
        load_spec(spec, ["shots.9.duration_s=6"])
    with pytest.raises(SpecError, match="expected key=value"):
        load_spec(spec, ["seed"])
    refused(tmp_path, demo_data(), "shots.0.duration_s = 30", overrides=("shots.0.duration_s=30",))


def test_long_shot_for_a_short_native_clip_becomes_chained_sub_clips(tmp_path) -> None:
    job = load_spec(write_spec(tmp_path, demo_data()), ["generation.max_frames=121"])  # 5 s per clip at most
    clips = plan_clips(job.spec)
    assert len(clips) == 12 and all(c.frames == 73 for c in clips)  # 6 s shots → two 3 s parts
    assert [(c.shot_index, c.part, c.parts) for c in clips[:2]] == [(0, 0, 2), (0, 1, 2)]
    assert clips[0].prompt == clips[1].prompt


def test_prompt_is_shot_card_plus_global_constants_in_a_fixed_order() -> None:
    spec = load_spec("jobspecs/demo.yaml").spec
    prompt = build_prompt(spec.constants, spec.shots[1])
    assert prompt == build_prompt(spec.constants, spec.shots[1])
    shot, c = spec.shots[1], spec.constants
    order = [
        shot.subject,
        shot.action,
        shot.environment,
        "pans slowly to the right",
        c.style,
        c.setting,
        c.lighting,
        c.lens,
        c.composition,
    ]
    positions = [prompt.index(part) for part in order]
    assert positions == sorted(positions)


def test_cli_refuses_before_any_work(tmp_path) -> None:
    data = demo_data()
    data["shots"][0]["duration_s"] = 11
    spec = write_spec(tmp_path, data)
    out = tmp_path / "out"
    done = shootout_cli("run", str(spec), "--out", str(out), timeout=120)
    assert done.returncode == 2
    assert "shots.0.duration_s = 11" in done.stderr and "5–10 s" in done.stderr
    assert not out.exists()  # nothing rented, rendered or written
    ok = shootout_cli("validate", "jobspecs/demo.yaml", timeout=120)
    assert ok.returncode == 0 and "6 clips" in ok.stdout


def test_speed_profile_resolves_under_the_specs_own_overrides(tmp_path) -> None:
    data = changed(model="hunyuan_i2v", generation={"profile": "fast"})
    spec = load_spec(write_spec(tmp_path, data)).spec
    assert (spec.fps, spec.max_frames, spec.effective("steps"), spec.size) == (12, 33, 25, (1280, 720))
    assert (spec.effective("first_block_cache"), spec.effective("interpolate_to")) == (0.07, 24)
    assert spec.clip_frames_written(33) == (65, 24)  # 12 fps doubled: the same 2.67 s
    assert {c.frames for c in plan_clips(spec)} == {25} and spec.clip_count == 18  # 6 s = 72 frames → 3 × 24
    own = load_spec(write_spec(tmp_path, data), ["generation.steps=30", "generation.first_block_cache=0"]).spec
    assert (own.effective("steps"), own.effective("first_block_cache"), own.fps) == (30, 0, 12)
    assert load_spec(write_spec(tmp_path, changed(model="hunyuan_i2v"))).spec.effective("steps") == 50


def test_speed_knobs_are_refused_where_they_cannot_apply(tmp_path) -> None:
    refused(
        tmp_path,
        changed(generation={"first_block_cache": 0.05}),
        "generation.first_block_cache",
        "model 'kenburns' has no such setting",
    )
    refused(
        tmp_path,
        changed(generation={"profile": "turbo"}),
        "generation.profile = 'turbo'",
        "'auto', 'baseline', 'quantized', 'cached' or 'fast'",
    )
    cog = changed(model="cogvideox15_5b_i2v")
    refused(
        tmp_path,
        cog,
        "generation.attention_backend: model 'cogvideox15_5b_i2v' has no such setting",
        overrides=("generation.attention_backend=sage",),
    )
    refused(
        tmp_path,
        changed(model="wan22_ti2v_5b"),
        "generation.attention_backend = 'sdpa'",
        overrides=("generation.attention_backend=sdpa",),
    )
    refused(
        tmp_path,
        cog,
        "generation.interpolate_to = 16: must be above the generation fps 16",
        overrides=("generation.interpolate_to=16",),
    )
    # 10 fps → 24: a 3.2 s clip (33 frames) would end between two 24 fps frames
    refused(
        tmp_path,
        changed(model="hunyuan_i2v"),
        "a clip of 33 frames at 10 fps does not end on a 24 fps frame",
        overrides=("generation.fps=10", "generation.interpolate_to=24", "generation.max_frames=33"),
    )
    refused(tmp_path, demo_data(), "guardrails.plan_check = 'maybe'", overrides=("guardrails.plan_check=maybe",))


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        (
            "baselines.yaml",
            ("steps: 50", "steps: fifty"),
            "wan22_ti2v_5b.steps = 'fifty': Input should be a valid integer",
        ),
        (
            "baselines.yaml",
            ("fast: {steps: 30,", "fast: {turbo: 1, steps: 30,"),
            "wan22_ti2v_5b.profiles.fast.turbo = 1: Extra inputs are not permitted",
        ),
        (
            "baselines.yaml",
            ("fast: {steps: 20,", "fast: {shift: 3, steps: 20,"),
            "cogvideox15_5b_i2v: profile fast sets shift = 3.0, a setting this model does not have",
        ),
        (
            "throughput.yaml",
            ("RTX 3090: {peak_bf16_tflops: 71,", "RTX 3090: {efficiency: assumed, peak_bf16_tflops: 71,"),
            "gpus.RTX 3090.efficiency = 'assumed': Input should be a valid dictionary",
        ),
        (
            "architectures.yaml",
            ("  text_window: 226", "  text_windows: 226"),
            "cogvideox15_5b_i2v.text_windows = 226: Extra inputs are not permitted",
        ),
    ],
)
def test_a_broken_config_file_is_refused_naming_the_file_the_field_and_the_rule(tmp_path, name, change, expected):
    """The project's own config files (jobspecs/config.py) are validated strictly when first read."""
    from jobspecs.config import Architecture, Baseline, ConfigError, Throughput, read

    shapes = {
        "baselines.yaml": dict[str, Baseline],
        "throughput.yaml": Throughput,
        "architectures.yaml": dict[str, Architecture],
    }
    text = (REPO / "jobspecs" / name).read_text()
    assert change[0] in text
    broken = tmp_path / "jobspecs" / name
    broken.parent.mkdir()
    broken.write_text(text.replace(*change, 1))
    with pytest.raises(ConfigError) as caught:
        read(broken, shapes[name])
    assert str(caught.value).startswith(f"jobspecs/{name}: ") and expected in str(caught.value)
