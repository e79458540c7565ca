"""The three real models through their adapters, on tiny random-weight pipelines of the same diffusers classes.

Built once per session, offline, into a temporary Hugging Face cache under the real repo ids; each model then
runs two chained clips through the real worker (under its supervisor, with HF_HUB_OFFLINE=1), the stitch, the
bundle and the verification, exactly like kenburns. Plus the tokenizer guard, the frame and size rules, and
what `model_source: tiny` relaxes.
"""

from __future__ import annotations

import copy
import json
import signal
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import REPO, demo_data, write_spec
from PIL import Image

from jobspecs import SpecError, load_spec, plan_clips
from jobspecs.schema import total_seconds
from remote.bundle import make_bundle, sha256_file, verify_bundle
from remote.layout import JobPaths, stage_job
from remote.status import read_status
from remote.stitch import stitch
from remote.supervise import supervise

MODELS = {  # model id -> (pipeline class, memory setting the run uses, clip frames, fps of the clip file)
    "wan22_ti2v_5b": ("WanImageToVideoPipeline", "24gb", 121, 24),
    "hunyuan_i2v": ("HunyuanVideoImageToVideoPipeline", "24gb", 121, 24),
    "cogvideox15_5b_i2v": ("CogVideoXImageToVideoPipeline", "auto", 121, 24),  # 81 at 16 fps, interpolated
}
# CogVideoX's run also exercises two speed knobs: First Block Cache (a threshold every later step passes on random
# weights) and frame interpolation from its 16 fps to 24 fps when the clip is written.
KNOBS = {"cogvideox15_5b_i2v": {"first_block_cache": 1.0, "interpolate_to": 24}}


def tiny_spec(model: str, **generation) -> dict:
    """Two 5 s shots of the demo at 64×64, 2 steps, from the tiny weights."""
    data = demo_data()
    data.update(model=model, model_source="tiny", shots=[dict(s, duration_s=5) for s in data["shots"][:2]])
    data["generation"] = {"width": 64, "height": 64, "steps": 2, **generation}
    data["stitch"]["preset"] = "ultrafast"
    return data


@pytest.fixture(scope="session")
def tiny_runs(tiny_home, prefect_api, tmp_path_factory) -> dict:
    """Each model's two chained clips through supervise → worker, then stitch, bundle and verify."""
    env = {
        "PREFECT_API_URL": prefect_api,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "SHOOTOUT_TINY_HF_HOME": str(tiny_home["home"]),
        "HF_HOME": str(tmp_path_factory.mktemp("empty-hf")),
    }  # no real weights anywhere
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        handler = signal.getsignal(signal.SIGTERM)
        for model, (_, memory, _, _) in MODELS.items():
            root = tmp_path_factory.mktemp(model)
            reference = REPO / "jobspecs" / "espresso.png"
            run_info = {
                "run_id": f"tiny-{model}",
                "created_at": "2026-01-01T00:00:00Z",
                "spec_file": "spec.yaml",
                "overrides": ["model_source=tiny"],
                "commit": {"sha": None},
                "reference": {"file": reference.name, "sha256": sha256_file(reference)},
            }
            paths = JobPaths(root / "box" / run_info["run_id"])
            stage_job(paths.job_dir, tiny_spec(model, memory=memory, **KNOBS.get(model, {})), reference, run_info)
            rc = supervise(paths.job_dir)
            runs[model] = {"rc": rc, "paths": paths, "status": read_status(paths.run_dir)}
            if rc == 0:
                stitch(paths.job_dir)
                make_bundle(paths.job_dir)
                runs[model]["manifest"] = verify_bundle(paths.archive, dest=root / "fetched").model_dump(
                    mode="json", by_alias=True
                )
                runs[model]["run_dir"] = root / "fetched" / paths.run_id
        signal.signal(signal.SIGTERM, handler)
    return runs


@pytest.mark.parametrize("model", list(MODELS))
def test_tiny_model_runs_two_chained_clips_into_a_verified_bundle(tiny_runs, tiny_home, model) -> None:
    run = tiny_runs[model]
    worker_log = (run["paths"].run_dir / "status" / "worker.log").read_text()
    assert run["rc"] == 0, f"{run['status']}\n{worker_log[-4000:]}"
    pipeline, memory, frames, fps = MODELS[model]
    run_dir, manifest = run["run_dir"], run["manifest"]
    logs = [json.loads((run_dir / "logs" / f"log_{i:03d}.json").read_text()) for i in range(2)]

    assert manifest["clips"] == manifest["clips"] | {"planned": 2, "finished": 2}
    status = run["status"]  # each step reported as it ended (tests/test_progress.py follows them): the last clip's
    assert (status.step, status.steps) == (2, 2) and status.step_s > 0 and status.last_clip_s > 0
    assert manifest["model"]["revision"] == tiny_home["commits"][model]  # the commit actually loaded
    assert manifest["model"]["source"] == "tiny" and manifest["model"]["pipeline"] == pipeline
    assert manifest["model"]["baseline_overrides"] == {"width": 64, "height": 64, "steps": 2, **KNOBS.get(model, {})}
    assert manifest["model"]["memory"]["setting"] == memory and manifest["model"]["profile"] == "baseline"
    for i, log in enumerate(logs):
        params = log["params"]["adapter"]
        assert params["pipeline"] == pipeline and params["num_inference_steps"] == 2
        # the baseline's same-math knobs: compile (CUDA only: skipped here, and said so), Hunyuan's prompt trim
        assert log["params"]["compile"] is True and params["speed"]["compile"].startswith("skipped on cpu")
        if model == "hunyuan_i2v":
            assert log["params"]["prompt_trim"] is True and params["speed"]["prompt_trim"].startswith("padded prompt")
            # the tiny byte-level tokenizer spends the whole 256-token window on the demo's prompt: nothing to cut here
            assert params["prompt_tokens"]["kept"] <= params["prompt_tokens"]["padded"] == 396
        else:
            assert log["params"]["prompt_trim"] is None and "prompt_trim" not in params["speed"]
        generated = log["params"]["generated_frames"]
        assert (params["num_frames"], params["height"], params["width"]) == (generated, 64, 64)
        assert log["params"]["frames"] == frames and log["clip_file"]["frames"] == frames
        assert log["params"]["fps"] == fps and log["seed"] == 1234 + i
        assert log["timings_s"]["denoise"] > 0 and log["timings_s"]["decode"] > 0
        assert log["libraries"]["diffusers"] == "0.42.1" and log["model"]["device"] == "cpu"
        clip_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(run_dir / log["clip_file"]["path"]))
        assert clip_frames == frames
    # clip 1 starts from clip 0's lossless last frame
    assert logs[1]["input_image"] == logs[0]["last_frame"] | {"path": "frames/last_frame_000.png"}
    film_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(run_dir / "final" / "final_stitched.mp4"))
    assert film_frames == manifest["final_video"]["frames"]
    assert abs(film_frames - (2 * frames - 1) / fps * 24) <= 1  # clip 1's first frame (the hand-off) dropped


def test_each_memory_plan_is_recorded_with_what_it_did(tiny_runs) -> None:
    wan = tiny_runs["wan22_ti2v_5b"]["manifest"]["model"]["memory"]
    assert wan["plan"] == "24gb" and wan["prompts_pre_encoded"] == 2 and "tiled" in wan["vae"]
    assert wan["text_encoder"] == "dropped after encoding the prompts"
    hunyuan = tiny_runs["hunyuan_i2v"]["manifest"]["model"]["memory"]
    assert hunyuan["plan"] == "24gb" and "block-level group offload" in hunyuan["transformer"]
    assert "leaf-level group offload" in hunyuan["text_encoder"]
    cog = tiny_runs["cogvideox15_5b_i2v"]["manifest"]["model"]["memory"]
    assert cog["setting"] == "auto" and cog["plan"] == "full"  # no GPU here: nothing to save
    assert cog["prompts_pre_encoded"] == 2 and "untiled" in cog["vae"]


def test_first_block_cache_and_interpolation_in_a_worker_run(tiny_runs) -> None:
    from remote.ffmpeg import decode_frames

    run_dir, manifest = tiny_runs["cogvideox15_5b_i2v"]["run_dir"], tiny_runs["cogvideox15_5b_i2v"]["manifest"]
    speed = manifest["model"]["speed"]
    assert speed["first_block_cache"] == "threshold 1.0" and speed["interpolate_to"].startswith("24 fps (minterpolate")
    assert speed["compile"].startswith("skipped on cpu") and speed["attention_backend"].startswith("not applicable")
    assert speed["flash_attn_4"] == "skipped on cpu: a CUDA kernel; torch SDPA used"  # on in the baseline
    for i in range(2):
        log = json.loads((run_dir / "logs" / f"log_{i:03d}.json").read_text())
        params = log["params"]
        assert (params["generated_frames"], params["generated_fps"]) == (81, 16)
        assert (params["frames"], params["fps"]) == (121, 24)
        assert params["interpolation"].startswith("minterpolate=mi_mode=mci") and params["first_block_cache"] == 1.0
        assert params["adapter"]["cache_hits"] == {"calls": 2, "hits": 1}  # step 2 came from the cache
        # CogVideoX's T5 reads 226 tokens: the log says what of the prompt (here the constants' tail) it never read
        window = params["adapter"]["prompt_window"]
        assert window["window"] == 226 and window["tokens"] > 226 and len(window["cut"]) > 100
        assert log["prompt"].replace(" ", "").endswith(window["cut"].replace(" ", ""))
    progress = (run_dir / "status" / "progress.log").read_text()
    assert "the text encoder read 226 of" in progress and "not read: " in progress  # mirrored to Prefect's log
    wan = json.loads((tiny_runs["wan22_ti2v_5b"]["run_dir"] / "logs" / "log_000.json").read_text())
    assert wan["params"]["adapter"]["prompt_window"] | {"tokens": 0} == {"tokens": 0, "window": 512, "cut": ""}
    # the interpolated clip still ends on the generated last frame (the lossless hand-off): frame 120 is it (up to
    # x264's loss on the tiny model's noise), frame 119 an in-between frame
    before, last = decode_frames(run_dir / "clips" / "clip_000.mp4", 64, 64, select="gte(n\\,119)").astype(int)
    handoff = np.asarray(Image.open(run_dir / "frames" / "last_frame_000.png")).astype(int)
    assert np.abs(last - handoff).mean() < np.abs(before - handoff).mean()


@pytest.mark.parametrize(("model", "backend"), [("hunyuan_i2v", "sage"), ("wan22_ti2v_5b", "_native_math")])
def test_first_block_cache_skips_blocks_and_starts_clean_each_clip(tiny_home, monkeypatch, model, backend) -> None:
    """Hunyuan's pipeline sets no cache context (the adapter does), and it runs under group offload here; Wan runs
    CFG as two forwards with a cache context each. Knobs that need CUDA are skipped on the CPU, and say so."""
    from jobspecs import validate
    from remote.models import load_adapter

    monkeypatch.setenv("SHOOTOUT_TINY_HF_HOME", str(tiny_home["home"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = validate(
        tiny_spec(model, memory="24gb", max_frames=33, first_block_cache=1.0, attention_backend=backend, compile=True)
    )
    adapter = load_adapter(spec)
    adapter.load()
    clip = plan_clips(spec)[0]
    image = Image.new("RGB", (64, 64), "orange")
    first, again = (adapter.generate(clip.prompt, image, clip, clip.seed) for _ in range(2))
    per_step = 2 if model == "wan22_ti2v_5b" else 1  # CFG: a conditional and an unconditional forward
    hits = {"calls": 2 * per_step, "hits": per_step}  # every forward after the first step: the last block idle
    assert first.params["cache_hits"] == hits == again.params["cache_hits"]
    assert np.array_equal(first.frames, again.frames)  # nothing of the first clip's cache leaked into the second
    speed = adapter.info()["speed"]
    assert speed["compile"] == "skipped on cpu: regional torch.compile is for CUDA"
    expected = "sage: skipped on cpu (a CUDA kernel); native used" if backend == "sage" else backend
    assert speed["attention_backend"] == expected and speed["first_block_cache"] == "threshold 1.0"


def test_hunyuan_prompt_trim_is_the_same_math_on_the_tiny_model() -> None:
    """prompt_trim (remote/models/hunyuan.py) on the tiny HunyuanVideo-I2V in float32: the transformer fed exactly what
    the pipeline feeds it gives the same output with the prompt's padded tail cut and the attention unmasked as
    diffusers' padded, masked forward — and a different one if the mask were dropped without the cut."""
    import torch

    from remote.models.hf import regional_compile
    from remote.models.hunyuan import PromptTrim
    from remote.models.tiny import TINY

    torch.set_num_threads(1)
    torch.manual_seed(0)
    pipe = TINY["hunyuan_i2v"][1]()
    pipe.set_progress_bar_config(disable=True)
    calls = []
    hook = pipe.transformer.register_forward_pre_hook(lambda _, a, kw: calls.append(kw), with_kwargs=True)
    image = Image.new("RGB", (64, 64), "orange")
    pipe(
        image=image,
        prompt="a red espresso cup on a saucer",
        height=64,
        width=64,
        num_frames=9,
        num_inference_steps=1,
        guidance_scale=6.0,
        image_embed_interleave=4,
        output_type="latent",
    )
    hook.remove()
    inputs = calls[0]
    assert pipe.transformer.dtype == torch.float32 and inputs["encoder_hidden_states"].shape[0] == 1
    with torch.no_grad():
        padded = pipe.transformer(**inputs)[0]
        trim = PromptTrim(pipe.transformer)
        trimmed = pipe.transformer(**inputs)[0]
        unmasked = pipe.transformer.forward(**inputs)[0]  # forward() skips the trim hook: padding, no mask
    max_abs = (trimmed - padded).abs().max().item()
    print(
        f"prompt_trim, tiny Hunyuan, float32: tokens {trim.tokens}, max abs diff {max_abs:.3g} "
        f"(outputs up to {padded.abs().max().item():.3g}; mask dropped untrimmed: "
        f"{(unmasked - padded).abs().max().item():.3g})"
    )
    assert trim.tokens["kept"] < trim.tokens["padded"] == inputs["encoder_hidden_states"].shape[1]
    assert max_abs <= 1e-5 * padded.abs().max().item()
    assert (unmasked - padded).abs().max().item() > 1e-2 * padded.abs().max().item()  # the test can see a wrong mask
    # regional compile must reach I2V's TokenReplace blocks, which diffusers' own `_repeated_blocks` does not name,
    # and run under the 24gb plan's group offload, whose hooks break graphs (fullgraph=True fails there); torch's
    # eager backend: dynamo's tracing without the CUDA-only code generation
    blocks = {
        type(block).__name__
        for block in (*pipe.transformer.transformer_blocks, *pipe.transformer.single_transformer_blocks)
    }
    assert not blocks & set(pipe.transformer._repeated_blocks)
    pipe.transformer.enable_group_offload(
        torch.device("cpu"), torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1
    )
    done = regional_compile(pipe.transformer, cache=None, backend="eager")
    assert done.endswith("fullgraph=False: group offload hooks in the blocks)")
    assert set(pipe.transformer._repeated_blocks) == blocks
    with torch.no_grad():
        compiled = pipe.transformer(**inputs)[0]
    assert (compiled - trimmed).abs().max().item() <= 1e-5 * padded.abs().max().item()


def test_hunyuan_tokenizer_guard_replaces_a_tokenizer_that_encodes_differently(tiny_home, tiny_runs) -> None:
    from tokenizers import Tokenizer
    from transformers import LlamaTokenizerFast

    from remote.models.hf import PROBES, faithful_tokenizer

    repo_dir = tiny_home["home"] / "hub" / "models--hunyuanvideo-community--HunyuanVideo-I2V"
    snapshot = repo_dir / "snapshots" / tiny_home["commits"]["hunyuan_i2v"]
    raw = Tokenizer.from_file(str(snapshot / "tokenizer" / "tokenizer.json"))
    expected = [raw.encode(p, add_special_tokens=False).ids for p in PROBES]
    labelled = LlamaTokenizerFast.from_pretrained(snapshot / "tokenizer")  # what the class label gives
    assert [labelled(p, add_special_tokens=False).input_ids for p in PROBES] != expected  # the trap: no error

    tokenizer, note = faithful_tokenizer(snapshot, "tokenizer")
    assert [tokenizer(p, add_special_tokens=False).input_ids for p in PROBES] == expected
    assert not isinstance(tokenizer, LlamaTokenizerFast) and "encodes differently" in note
    assert tiny_runs["hunyuan_i2v"]["manifest"]["model"]["tokenizer"] == note  # the run used the guarded one
    wan_note = tiny_runs["wan22_ti2v_5b"]["manifest"]["model"]["tokenizer"]
    assert wan_note == "T5TokenizerFast: encodes like tokenizer.json"


def test_missing_weights_fail_with_what_to_do(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    from jobspecs import validate
    from remote.models.hf import ModelNotCached, find_weights

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    data = tiny_spec("wan22_ti2v_5b")
    data.pop("model_source")
    data["generation"] = {}
    data["shots"] = demo_data()["shots"]
    with pytest.raises(ModelNotCached, match="Wan-AI/Wan2.2-TI2V-5B-Diffusers at revision b8fff73.*prefetch it"):
        find_weights(validate(data))


def refused(tmp_path: Path, data: dict, *expected: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, data), overrides)
    for part in expected:
        assert part in str(caught.value), f"{part!r} not in:\n{caught.value}"
    return str(caught.value)


def with_model(model: str) -> dict:
    data = demo_data()
    data["model"] = model
    return data


@pytest.mark.parametrize(
    ("model", "max_frames", "rule"),
    [
        ("wan22_ti2v_5b", 50, "generation.max_frames = 50: model 'wan22_ti2v_5b' needs 4k+1 frames"),
        ("hunyuan_i2v", 131, "generation.max_frames = 131: above model 'hunyuan_i2v''s native 129"),
        ("cogvideox15_5b_i2v", 45, "generation.max_frames = 45: model 'cogvideox15_5b_i2v' needs 8k+1 frames"),
        ("cogvideox15_5b_i2v", 97, "above model 'cogvideox15_5b_i2v''s native 81"),
    ],
)
def test_an_impossible_frame_count_is_refused_at_validation(tmp_path, model, max_frames, rule) -> None:
    refused(tmp_path, with_model(model), rule, overrides=(f"generation.max_frames={max_frames}",))


def test_a_size_off_the_models_grid_is_refused(tmp_path) -> None:
    # 1280x720 is 720p-class, but Wan's VAE × patch needs multiples of 32 (the pipeline would floor it to 704)
    refused(
        tmp_path,
        with_model("wan22_ti2v_5b"),
        "generation size = 1280x720: model 'wan22_ti2v_5b' needs width and height in multiples of 32",
        overrides=("generation.height=720",),
    )
    assert load_spec(write_spec(tmp_path, with_model("hunyuan_i2v")), ("generation.height=720",))


def test_cogvideox_plans_8k_plus_1_frames_at_16_fps(tmp_path) -> None:
    spec = load_spec(write_spec(tmp_path, with_model("cogvideox15_5b_i2v"))).spec  # six 6 s shots
    clips = plan_clips(spec)
    assert len(clips) == 12 and {(c.frames, c.fps, c.width, c.height) for c in clips} == {(49, 16, 1360, 768)}
    assert [(c.shot_index, c.part, c.parts) for c in clips[:2]] == [(0, 0, 2), (0, 1, 2)]
    assert clips[0].prompt == clips[1].prompt  # sub-clips of a shot share its prompt
    assert total_seconds(spec) == pytest.approx(36 + 1 / 24)
    five = load_spec(write_spec(tmp_path, with_model("cogvideox15_5b_i2v")), ("shots.0.duration_s=5",)).spec
    assert plan_clips(five)[0].frames == 81 and plan_clips(five)[0].parts == 1
    for model in ("wan22_ti2v_5b", "hunyuan_i2v"):  # 6 s at 24 fps is longer than their native clip
        clips = plan_clips(load_spec(write_spec(tmp_path, with_model(model))).spec)
        assert {(c.frames, c.parts) for c in clips} == {(73, 2)}, model


def test_tiny_source_relaxes_only_size_class_and_film_minimum(tmp_path) -> None:
    small = tiny_spec("wan22_ti2v_5b")
    normal = copy.deepcopy(small)
    normal.pop("model_source")
    refused(tmp_path, normal, "generation size = 64x64: not 720p-class (short side 704–768")
    normal["generation"] = {"steps": 2}
    refused(tmp_path, normal, "shots: total length 10.04 s after overlaps; a film lasts 30–60 s")
    assert load_spec(write_spec(tmp_path, small)).spec.model_source == "tiny"
    assert load_spec(write_spec(tmp_path, normal), ("model_source=tiny",)).spec.model_source == "tiny"  # --set
    # still enforced in tiny mode: the model's grid, frame rules, shot length, the 60 s maximum
    refused(tmp_path, small, "needs width and height in multiples of 32", overrides=("generation.width=48",))
    refused(tmp_path, small, "needs 4k+1 frames", overrides=("generation.max_frames=8",))
    refused(tmp_path, small, "a shot lasts 5–10 s", overrides=("shots.0.duration_s=2",))
    refused(tmp_path, small, "each side is 32–1376", overrides=("generation.width=2048",))
    long = tiny_spec("wan22_ti2v_5b")
    long["shots"] = [dict(long["shots"][0], duration_s=10)] * 7
    refused(tmp_path, long, "shots: total length 70.04 s", "a film lasts 0–60 s")


def test_memory_plans_are_for_the_diffusers_models_only_and_tiny_kenburns_is_a_small_smoke_run(tmp_path) -> None:
    small = ("model_source=tiny", "generation.width=96", "generation.height=64", "shots.0.duration_s=5")
    spec = load_spec(write_spec(tmp_path, dict(demo_data(), shots=demo_data()["shots"][:1])), small).spec
    assert (spec.size, spec.clip_count) == ((96, 64), 1)  # kenburns has no weights: tiny = small and short
    refused(
        tmp_path,
        demo_data(),
        "generation.memory = '24gb': model 'kenburns' uses no GPU",
        overrides=("generation.memory=24gb",),
    )
    refused(
        tmp_path,
        with_model("hunyuan_i2v"),
        "generation.memory = '48gb'",
        "'auto', 'full' or '24gb'",
        overrides=("generation.memory=48gb",),
    )


def test_tiny_weights_are_built_on_demand_and_prompts_keep_no_autograd_graph(tiny_home, tmp_path, monkeypatch) -> None:
    """A fresh box in tiny mode builds the same tiny pipeline (same content commit); its pre-encoded prompts hold
    no graph (encode_prompt runs outside the pipeline's no_grad: a graph per prompt filled a 24 GiB GPU)."""
    from jobspecs import validate
    from remote.models import load_adapter

    monkeypatch.setenv("SHOOTOUT_TINY_HF_HOME", str(tmp_path / "fresh"))
    adapter = load_adapter(validate(tiny_spec("cogvideox15_5b_i2v")))
    adapter.load()
    assert adapter.info()["revision"] == tiny_home["commits"]["cogvideox15_5b_i2v"]
    embeddings = [tensor for pair in adapter.embeds.values() for tensor in pair]
    assert len(embeddings) == 4 and not any(t.requires_grad for t in embeddings)
    assert adapter.pipe.text_encoder is None


def transformer_inputs(model: str, config: dict | None = None) -> tuple:
    """A tiny pipeline's transformer and the keyword arguments one 1-step call at 64×64, 9 frames gave it; `config`:
    the transformer rebuilt with these config values first (random weights)."""
    import torch

    from remote.models.tiny import TINY

    torch.manual_seed(0)
    pipe = TINY[model][1]()
    if model == "wan22_ti2v_5b":
        from diffusers import WanImageToVideoPipeline

        pipe = WanImageToVideoPipeline.from_pipe(pipe)  # the tiny repo is saved as text-to-video, like the real one
    if config:
        pipe.transformer = type(pipe.transformer).from_config({**pipe.transformer.config, **config}).eval()
    pipe.set_progress_bar_config(disable=True)
    calls = []
    hook = pipe.transformer.register_forward_pre_hook(lambda _, a, kw: calls.append(kw), with_kwargs=True)
    extra = {"wan22_ti2v_5b": {"max_sequence_length": 16}, "hunyuan_i2v": {"image_embed_interleave": 4}}.get(model, {})
    pipe(
        image=Image.new("RGB", (64, 64), "orange"),
        prompt="a red espresso cup on a saucer",
        height=64,
        width=64,
        num_frames=9,
        num_inference_steps=1,
        output_type="latent",
        **extra,
    )
    hook.remove()
    return pipe.transformer, calls[0]


@pytest.mark.parametrize("model", ["wan22_ti2v_5b", "hunyuan_i2v"])
def test_flash_attention_4_routing_gives_sdpa_output_on_the_tiny_models(model) -> None:
    """remote/models/fa4.py on the CPU (FlashAttention-4 itself runs on Hopper): the routing, with a reference kernel
    of FlashAttention's signature ((B, S, H, D) in and out) in the kernel's place, in bfloat16. Wan's self- and
    cross-attention are unmasked: all reach the kernel. Hunyuan with its prompt trimmed: the blocks' attention
    reaches it, the token refiner's masked attention stays on SDPA. The output is SDPA's (bf16 rounding), and a
    kernel fed the wrong layout would be seen. (The transformers have head dim 16, the inputs are the tiny
    pipelines'.)"""
    import torch

    from remote.models.fa4 import ON, route_attention
    from remote.models.hunyuan import PromptTrim

    def reference(q, k, v, scale):
        calls.append(tuple(q.shape))
        scores = torch.einsum("bshd,bthd->bhst", q.float(), k.float()) * scale
        return torch.einsum("bhst,bthd->bshd", scores.softmax(-1), v.float()).to(q.dtype)

    def transposed(q, k, v, scale):  # self-attention across the heads instead of the tokens: a layout mistake
        if q.shape != k.shape:
            return reference(q, k, v, scale)
        return reference(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale).transpose(1, 2)

    torch.set_num_threads(1)
    tiny, inputs = transformer_inputs(model)
    # FlashAttention takes head dims in multiples of 8: the tiny model's (12, 10) would stay on SDPA
    wider = {"attention_head_dim": 16} | ({"rope_axes_dim": (4, 6, 6)} if model == "hunyuan_i2v" else {})
    transformer = type(tiny).from_config({**tiny.config, **wider}).to(torch.bfloat16).eval()
    inputs = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
    if model == "hunyuan_i2v":
        PromptTrim(transformer)
    blocks = (
        len(transformer.blocks)
        if model == "wan22_ti2v_5b"
        else len(transformer.transformer_blocks) + len(transformer.single_transformer_blocks)
    )
    with torch.no_grad():
        sdpa = transformer(**inputs)[0].float()
        forward = transformer.forward
        outputs = {}
        for name, kernel in (("reference", reference), ("transposed", transposed)):
            calls = []
            transformer.forward = forward
            assert route_attention(transformer, torch.device("cpu"), kernel=kernel) == ON
            outputs[name] = transformer(**inputs)[0].float()
            if name == "reference":
                assert len(calls) == (2 if model == "wan22_ti2v_5b" else 1) * blocks  # Wan: self + cross each
        assert torch.nn.functional.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"
    scale = sdpa.abs().max().item()
    error = (outputs["reference"] - sdpa).abs().max().item()
    wrong = (outputs["transposed"] - sdpa).abs().max().item()
    print(f"{model}: routed vs SDPA max abs {error:.3g}, a transposed layout {wrong:.3g} (outputs up to {scale:.3g})")
    assert error <= 0.02 * scale
    assert wrong > 5 * error and wrong > 0.05 * scale


def test_flash_attention_4_is_skipped_where_it_cannot_run() -> None:
    """The knob says why it did nothing: a CPU here (the same code path tells an sm_89 4090 from a Hopper)."""
    import torch

    from remote.models.attention import sdpa_or_kernel
    from remote.models.fa4 import route_attention

    module = torch.nn.Linear(2, 2)
    forward = module.forward
    assert route_attention(module, torch.device("cpu")) == "skipped on cpu: a CUDA kernel; torch SDPA used"
    assert module.forward == forward
    calls = []
    sdpa = sdpa_or_kernel(torch.nn.functional.scaled_dot_product_attention, lambda *a: calls.append(a))
    q = torch.randn(1, 2, 8, 16, dtype=torch.bfloat16)
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    for kwargs in ({"attn_mask": mask}, {"is_causal": True}, {"dropout_p": 0.1}):
        sdpa(q, q, q, **kwargs)
    sdpa(q.float(), q.float(), q.float())
    assert calls == []  # masked, causal, dropout and float32 calls stay on SDPA


def test_flash_attention_4_stays_off_a_group_offloaded_transformer() -> None:
    """Hunyuan's 24gb plan offloads its blocks; FlashAttention-4 measured slower there (H100), so it is not routed,
    and the knob says so."""
    import torch

    from remote.models.fa4 import OFFLOADED, route_attention

    transformer, _ = transformer_inputs("hunyuan_i2v")
    transformer.enable_group_offload(
        torch.device("cpu"), torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1
    )
    forward = transformer.forward
    assert route_attention(transformer, torch.device("cpu"), kernel=lambda *a: None) == f"{OFFLOADED}; torch SDPA used"
    assert transformer.forward == forward


# head dim 64 (the 8-bit kernels take 64 and 128; the tiny models have 10-16); Hunyuan's RoPE axes must add up to it
WIDE_HEADS = {
    "wan22_ti2v_5b": {"attention_head_dim": 64},
    "hunyuan_i2v": {"attention_head_dim": 64, "rope_axes_dim": (16, 24, 24)},
    "cogvideox15_5b_i2v": {"attention_head_dim": 64},
}


@pytest.mark.parametrize("model", list(WIDE_HEADS))
def test_8_bit_attention_routing_on_the_tiny_models(model) -> None:
    """remote/models/sage.py on the CPU (the kernels are Triton's, for CUDA): its routing, with a reference kernel of
    its signature in its place, in bfloat16. Every unmasked call of head dim 64 reaches it: Wan's self- and
    cross-attention, CogVideoX's joint attention (its processor calls SDPA itself, which diffusers' backends can't
    reach), Hunyuan's blocks with the prompt trimmed; Hunyuan's masked token refiner stays on SDPA. The output is
    SDPA's up to bf16 rounding. Another head dim is not routed; nor is anything where FlashAttention-4 runs."""
    import torch

    from remote.models.hunyuan import PromptTrim
    from remote.models.sage import FA4_ON, ON, route_attention

    def reference(q, k, v, scale):
        calls.append((tuple(q.shape), tuple(k.shape)))
        scores = torch.einsum("bshd,bthd->bhst", q.float(), k.float()) * scale
        return torch.einsum("bhst,bthd->bshd", scores.softmax(-1), v.float()).to(q.dtype)

    torch.set_num_threads(1)
    transformer, inputs = transformer_inputs(model, WIDE_HEADS[model])
    transformer = transformer.to(torch.bfloat16)
    inputs = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
    if model == "hunyuan_i2v":
        PromptTrim(transformer)
    if model == "wan22_ti2v_5b":
        routed_per_forward = 2 * len(transformer.blocks)  # self + cross in each block
    elif model == "cogvideox15_5b_i2v":
        routed_per_forward = len(transformer.transformer_blocks)
    else:  # the refiner's masked attention is not routed
        routed_per_forward = len(transformer.transformer_blocks) + len(transformer.single_transformer_blocks)
    with torch.no_grad():
        sdpa = transformer(**inputs)[0].float()
        forward = transformer.forward
        assert route_attention(transformer, torch.device("cpu"), fa4=True, kernel=reference) == FA4_ON
        assert transformer.forward == forward
        calls = []
        assert route_attention(transformer, torch.device("cpu"), fa4=False, kernel=reference) == ON
        routed = transformer(**inputs)[0].float()
        assert len(calls) == routed_per_forward and all(q[-1] == 64 for q, _ in calls)
    assert torch.nn.functional.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"
    assert (routed - sdpa).abs().max().item() <= 0.02 * sdpa.abs().max().item()

    narrow, narrow_inputs = transformer_inputs("wan22_ti2v_5b")  # head dim 12: stays on SDPA
    calls = []
    route_attention(narrow, torch.device("cpu"), fa4=False, kernel=reference)
    with torch.no_grad():
        narrow(**narrow_inputs)
    assert calls == []


def test_8_bit_attention_says_why_it_is_off(monkeypatch) -> None:
    """The skip reasons, the same code path as on a box: the CPU; a GPU below sm_80; Hopper, where the kernel was
    measured slower than cuDNN's (throughput.yaml's kernel_speedup below 1 decides, for the planner too); an sm_89
    box without Triton (the CUDA torch wheels bring it; this CPU machine has none)."""
    import torch

    from remote.models import sage

    assert sage.unavailable(torch.device("cpu")) == "skipped on cpu: a CUDA kernel"
    cuda = torch.device("cuda")
    for capability, reason in (
        ((7, 5), "skipped on sm_75: needs sm_80+ (int8 tensor cores)"),
        ((9, 0), "skipped on sm_90: slower here than torch SDPA's attention kernel (0.69×, jobspecs/throughput.yaml)"),
        ((8, 9), "skipped: Triton is not installed (the CUDA torch wheels bring it)"),
    ):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert sage.unavailable(cuda) == reason
    module = torch.nn.Linear(2, 2)
    assert sage.route_attention(module, cuda, fa4=False).endswith("; torch SDPA used")


def test_fp8_linear_layers_on_the_cpu_its_refusal_and_the_layers_it_takes(monkeypatch) -> None:
    """torchao's fp8 matmuls need fp8 tensor cores: on the CPU the knob is skipped and says so, and torchao itself
    refuses the config there. The layers it takes: the blocks' bf16 Linears with both dims multiples of 16 (not the
    embeddings or the head, not the float32 modules diffusers keeps). With torchao's hardware check lifted (torch
    runs _scaled_mm on the CPU), the real quantization: exactly those weights become float8 with a scale per row,
    and the output stays within a few percent of bf16's."""
    import torch
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quant_api, quantize_
    from torchao.quantization.quantize_.workflows.float8.float8_tensor import Float8Tensor

    from remote.models import fp8

    torch.set_num_threads(1)
    transformer, inputs = transformer_inputs("wan22_ti2v_5b", {"attention_head_dim": 64, "ffn_dim": 256})
    transformer = transformer.to(torch.bfloat16)
    inputs = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
    with torch.no_grad():
        before = transformer(**inputs)[0].float()
    cpu = torch.device("cpu")
    assert fp8.quantize_transformer(transformer, cpu) == ("skipped on cpu: a CUDA kernel; bf16 linear layers used")
    layer = torch.nn.Linear(64, 64).to(torch.bfloat16)
    with pytest.raises(AssertionError, match="compute capability"):
        quantize_(layer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    names = fp8.block_linears(transformer)
    linears = {name for name, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)}
    assert names and set(names) < linears and all(name.startswith("blocks.") for name in names)
    assert {"proj_out", "condition_embedder.time_embedder.linear_1"} & set(names) == set()

    monkeypatch.setattr(fp8, "unavailable", lambda device: None)
    monkeypatch.setattr(quant_api, "_check_hardware_support", lambda granularity: None)
    done = fp8.quantize_transformer(transformer, cpu)
    assert done.startswith(f"on: {len(names)} linear layers of the blocks in float8 e4m3") and "torchao 0.18.0" in done
    quantized = {
        name for name, m in transformer.named_modules() if isinstance(getattr(m, "weight", None), Float8Tensor)
    }
    assert quantized == set(names)
    assert fp8.quantize_transformer(transformer, cpu) == done  # once: Hunyuan's placing may have done it already
    with torch.no_grad():
        after = transformer(**inputs)[0].float()
    error = ((after - before).norm() / before.norm()).item()
    print(f"fp8 (rowwise, dynamic) vs bf16 on the tiny Wan: rel. L2 {error:.4f}")
    assert 0 < error < 0.08


def test_mag_cache_skips_the_steps_its_calibration_says(tiny_home, monkeypatch) -> None:
    """The cached profile on Wan: MagCache with the published calibration (baselines.yaml), resampled to the spec's
    steps; the steps it skips are the ones the planner counts (the rule reads only the ratios), in both CFG branches;
    two clips in a row give the same frames (the cache starts clean). The 8-bit levers say why they are off here."""
    from jobspecs import validate
    from jobspecs.config import baselines
    from remote.models import load_adapter

    monkeypatch.setenv("SHOOTOUT_TINY_HF_HOME", str(tiny_home["home"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = validate(tiny_spec("wan22_ti2v_5b", memory="24gb", max_frames=33, steps=8, profile="cached"))
    adapter = load_adapter(spec)
    adapter.load()
    clip = plan_clips(spec)[0]
    image = Image.new("RGB", (64, 64), "orange")
    first, again = (adapter.generate(clip.prompt, image, clip, clip.seed) for _ in range(2))
    skipped = baselines()["wan22_ti2v_5b"].mag_cache_calibration.skipped_steps(8)
    assert skipped == 4 and first.params["cache_hits"] == {"calls": 16, "hits": 2 * skipped}
    assert np.array_equal(first.frames, again.frames)
    speed = adapter.info()["speed"]
    assert speed["mag_cache"].startswith("threshold 0.06, K 2, retention 0.2: 4 of 8 steps skipped per branch")
    assert speed["sage_attention"] == "skipped on cpu: a CUDA kernel; torch SDPA used"
    assert speed["fp8_linear"] == "skipped on cpu: a CUDA kernel; bf16 linear layers used"
