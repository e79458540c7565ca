"""What the three diffusers adapters share: the DiffusersAdapter base class (at the end of this file) and its
helpers: where the weights come from, the device, the memory plan's choice, the tokenizer guard, the speed knobs and
one timed pipeline call.

Weights are always read from a local Hugging Face cache (never downloaded here: the prefetch did that), at
the model's pinned revision; the commit actually loaded is the snapshot folder's name and goes into every log.
With `model_source: tiny` the cache is the tiny pipelines' own (SHOOTOUT_TINY_HF_HOME, built on demand by
remote.models.tiny), kept apart so that tiny weights never stand in the real cache under the real repo ids.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import gc
import importlib
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jobspecs import ClipPlan, JobSpec, plan_clips
from jobspecs.config import architectures
from remote.bundle import installed_versions
from remote.models import Generated, StepCallback

TINY_HOME_ENV = "SHOOTOUT_TINY_HF_HOME"
DEFAULT_TINY_HOME = Path.home() / ".cache" / "i2v-shootout" / "tiny-hf"
LIBRARIES = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "huggingface-hub",
    "tokenizers",
    "safetensors",
    "ftfy",
    "triton",  # the 8-bit attention's kernels (remote/models/sage.py)
    "torchao",  # fp8 linear layers (fp8.py)
    "flash-attn-4",  # fa4.py
)
# Text the tokenizer guard encodes both ways: Hunyuan's template markers, plain prose, digits and accents.
PROBES = (
    "<|start_header_id|>system<|end_header_id|>\n\n<image>\nA cat walks on the beach.",
    "A red espresso cup on a saucer, 50 mm lens, warm light. Café crème at 7:30.",
)


class ModelNotCached(RuntimeError):
    """The model's pinned revision is not in the local Hugging Face cache."""


@dataclass(frozen=True)
class Weights:
    source: str  # "hub" or "tiny"
    repo: str
    revision: str  # as asked for: a commit, or "main"
    snapshot: Path  # the folder loaded; its name is the commit actually loaded
    cache_dir: Path | None  # None: the standard Hugging Face cache

    @property
    def commit(self) -> str:
        return self.snapshot.name


def tiny_home() -> Path:
    return Path(os.environ.get(TINY_HOME_ENV) or DEFAULT_TINY_HOME)


def find_weights(spec: JobSpec) -> Weights:
    """The local snapshot of the spec's model at its pinned revision (tiny: built first if missing)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = spec.baseline.repo
    if spec.model_source == "tiny":
        from remote.models import tiny

        cache_dir, revision = tiny_home() / "hub", "main"
        tiny_home().mkdir(parents=True, exist_ok=True)
        with open(tiny_home() / ".build.lock", "a") as lock:  # runs that share this machine build it once
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builds; the others wait, then find refs/main (written last)
            if not (cache_dir / f"models--{repo.replace('/', '--')}" / "refs" / "main").exists():
                print(f"building the tiny {spec.model} pipeline into {tiny_home()}", flush=True)
                tiny.install(tiny_home(), [spec.model])
    else:
        cache_dir, revision = None, spec.baseline.revision
    try:
        snapshot = snapshot_download(repo, revision=revision, cache_dir=cache_dir, local_files_only=True)
    except LocalEntryNotFoundError:
        where = cache_dir or "the Hugging Face cache (HF_HOME / HF_HUB_CACHE)"
        raise ModelNotCached(
            f"{repo} at revision {revision} is not in {where}; prefetch it first "
            "(or smoke-test the box with --set model_source=tiny)"
        ) from None
    return Weights(spec.model_source, repo, revision, Path(snapshot), cache_dir)


def pick_device():
    """The GPU where there is one. On the CPU (tiny pipelines) torch uses one thread: their ops are too small to
    share, and OpenMP threads spinning against other work on a small machine made a 2-core test clip 10× slower."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(1)
    return torch.device("cpu")


def pick_memory_plan(setting: str, full_needs_gib: float) -> str:
    """`auto`: `full` where the GPU has at least `full_needs_gib`, else `24gb`; on the CPU, `full` (no VRAM)."""
    import torch

    if setting != "auto":
        return setting
    if not torch.cuda.is_available():
        return "full"
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return "full" if total_gib >= full_needs_gib else "24gb"


def faithful_tokenizer(snapshot: Path, component: str) -> tuple[object, str]:
    """The tokenizer the repo names in model_index.json, unless it encodes differently from its tokenizer.json.

    transformers 5 rebuilds a tokenizer from its class label: a byte-level (Llama-3) tokenizer.json labelled
    LlamaTokenizerFast gets a SentencePiece Metaspace pre-tokenizer and silently different ids (HunyuanVideo;
    transformers#45488). Then the tokenizer.json is loaded as it is (PreTrainedTokenizerFast). Returns the
    tokenizer and a line for the log."""
    import transformers
    from tokenizers import Tokenizer

    folder = snapshot / component
    library, class_name = json.loads((snapshot / "model_index.json").read_text())[component]
    labelled = getattr(importlib.import_module(library), class_name).from_pretrained(folder, local_files_only=True)
    raw_file = folder / "tokenizer.json"
    if not raw_file.is_file():
        return labelled, f"{class_name} (no tokenizer.json to check against)"
    raw = Tokenizer.from_file(str(raw_file))
    if all(
        labelled(p, add_special_tokens=False).input_ids == raw.encode(p, add_special_tokens=False).ids for p in PROBES
    ):
        return labelled, f"{class_name}: encodes like tokenizer.json"
    fast = transformers.PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    return fast, f"{class_name} encodes differently from tokenizer.json: loaded PreTrainedTokenizerFast instead"


def make_scheduler(current, name: str, shift: float | None, **extra):
    """Scheduler `name` (a diffusers class) from the repo's scheduler config, with the spec's shift."""
    import inspect

    import diffusers

    scheduler_class = getattr(diffusers, name, None)
    if not (inspect.isclass(scheduler_class) and issubclass(scheduler_class, diffusers.SchedulerMixin)):
        raise ValueError(f"generation.scheduler = {name!r}: not a diffusers scheduler class")
    if shift is not None:
        accepted = inspect.signature(scheduler_class.__init__).parameters
        key = next((k for k in ("flow_shift", "shift") if k in accepted), None)
        if key is None:
            raise ValueError(f"generation.shift: scheduler {name} takes no shift")
        extra[key] = shift
    return scheduler_class.from_config(current.config, **extra)


def library_versions() -> dict[str, str]:
    versions = installed_versions(LIBRARIES)
    import torch

    if torch.cuda.is_available():
        versions["cuda"] = torch.version.cuda
        versions["gpu"] = torch.cuda.get_device_name(0)
    return versions


def seeded(seed: int):
    """A CPU generator: the same seed gives the same noise on any GPU (the pipelines move it over)."""
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] → uint8 RGB, rounded."""
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


@dataclass
class Call:
    frames: np.ndarray  # (F, H, W, 3) uint8
    timings_s: dict[str, float]
    peak_vram_bytes: int | None
    peak_vram_reserved_bytes: int | None
    s_per_step: float | None  # mean of steps 2.. (step 1 also carries the preparation)
    step_s: list[float]  # each step's seconds, the first from the call (with the preparation): cache hits show


def timed_call(pipe, device, on_step: StepCallback | None = None, **kwargs) -> Call:
    """One pipeline call with output_type 'np', timed per step (the callback marks each step's end), each step
    also reported to `on_step` (steps finished, the pipeline's steps, that step's seconds) as it ends.

    timings: `denoise` = from the call to the end of the last step (image/prompt encoding included),
    `decode` = from there to the frames (the VAE decode and post-processing)."""
    import torch

    cuda = device.type == "cuda"
    step_ends: list[float] = []

    def on_step_end(pipeline, step, timestep, callback_kwargs):
        if cuda:
            torch.cuda.synchronize()
        ended, previous = time.monotonic(), step_ends[-1] if step_ends else start
        step_ends.append(ended)
        if on_step is not None:
            on_step(len(step_ends), pipeline.num_timesteps, ended - previous)
        return callback_kwargs

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.monotonic()
    output = pipe(**kwargs, output_type="np", callback_on_step_end=on_step_end)
    if cuda:
        torch.cuda.synchronize()
    end = time.monotonic()
    frames = to_uint8(np.asarray(output.frames[0]))
    last = step_ends[-1] if step_ends else start
    steps = np.diff([start, *step_ends])  # the first step also carries the preparation
    return Call(
        frames=frames,
        timings_s={"denoise": last - start, "decode": end - last},
        peak_vram_bytes=torch.cuda.max_memory_allocated() if cuda else None,
        peak_vram_reserved_bytes=torch.cuda.max_memory_reserved() if cuda else None,
        s_per_step=round(float(steps[1:].mean()), 4) if len(steps) > 1 else None,
        step_s=[round(float(s), 3) for s in steps],
    )


def baseline_overrides(spec: JobSpec) -> dict:
    """What this spec itself changes in the model's locked baseline and profile (the manifest records it)."""
    return {
        name: value
        for name, value in spec.generation.model_dump().items()
        if name not in ("memory", "profile") and value is not None
    }


CPU_ATTENTION_BACKENDS = ("native", "_native_math")  # the others are CUDA kernels


def cuda_refusal(device, minimum: tuple[int, int], needs: str) -> str | None:
    """Why a CUDA kernel knob (fa4.py, sage.py, fp8.py) can't run on `device`: not a GPU, or its compute capability
    below `minimum` (`needs` says what it needs); None when the GPU can run it."""
    import torch

    if device.type != "cuda":
        return f"skipped on {device.type}: a CUDA kernel"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < minimum:
        return f"skipped on sm_{major}{minor}: {needs}"
    return None


BLOCK_LISTS = ("blocks", "transformer_blocks", "single_transformer_blocks")  # Wan; CogVideoX; Hunyuan (both)


def repeated_block_classes(transformer) -> list[str]:
    """Class names of the blocks in the transformer's block lists, in order (what regional compile compiles)."""
    lists = [getattr(transformer, name, None) for name in BLOCK_LISTS]
    return list(dict.fromkeys(type(block).__name__ for blocks in lists if blocks for block in blocks))


def regional_compile(transformer, cache: str | None, **compile_kwargs) -> str:
    """torch.compile of every block in the transformer's block lists (compile_repeated_blocks), in one graph per
    block unless hooks run inside the blocks: a cache's (`cache`: its name, First Block Cache or MagCache) and group
    offload's (its onload and offload are torch.compiler.disable()d: a graph break, which fullgraph=True refuses).
    Returns what was done.

    The blocks' classes are named here: diffusers' own `_repeated_blocks` names none for CogVideoX and misses
    HunyuanVideo-I2V's TokenReplace blocks (it would compile only the patch embed and the token refiner)."""
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    transformer._repeated_blocks = repeated_block_classes(transformer)
    hooks = [
        name
        for name, on in ((cache, cache is not None), ("group offload", _is_group_offload_enabled(transformer)))
        if on
    ]
    transformer.compile_repeated_blocks(fullgraph=not hooks, **compile_kwargs)
    why = f": {' and '.join(hooks)} hooks in the blocks" if hooks else ""
    return f"compile_repeated_blocks({', '.join(transformer._repeated_blocks)}, fullgraph={not hooks}{why})"


def mag_cache_config(spec: JobSpec):
    """diffusers' MagCacheConfig from the model's published calibration (baselines.yaml `mag_cache_calibration`),
    for the spec's step count (diffusers resamples the ratios to it)."""
    from diffusers import MagCacheConfig

    calibration = spec.baseline.mag_cache_calibration
    return MagCacheConfig(
        threshold=calibration.threshold,
        max_skip_steps=calibration.max_skip_steps,
        retention_ratio=calibration.retention_ratio,
        num_inference_steps=spec.effective("steps"),
        mag_ratios=calibration.ratios,
    )


def apply_speed_knobs(pipe, device, spec: JobSpec) -> dict:
    """The spec's attention backend, caches (First Block Cache, MagCache), fp8 linear layers (fp8.py), regional
    compile, FlashAttention-4 (fa4.py) and 8-bit attention (sage.py), applied to the transformer in that order;
    returns what was done (for the logs and the manifest). Knobs that need CUDA are skipped on the CPU, with the
    reason. Frame interpolation (`interpolate_to`) is the worker's: it happens when the clip is written."""
    from diffusers import FirstBlockCacheConfig

    from remote.models import fa4, fp8, parallel, sage

    transformer = pipe.transformer
    done = {"profile": spec.generation.profile}
    backend = spec.effective("attention_backend")
    if backend is None:
        done["attention_backend"] = "not applicable (the attention processor calls torch SDPA directly)"
    elif backend == "native":
        done["attention_backend"] = "native (diffusers' default: torch SDPA)"
    elif device.type != "cuda" and backend not in CPU_ATTENTION_BACKENDS:
        done["attention_backend"] = f"{backend}: skipped on {device.type} (a CUDA kernel); native used"
    else:
        transformer.set_attention_backend(backend)
        done["attention_backend"] = backend
    if parallel.world_size() > 1:  # after the backend (diffusers checks it can split), before caches and compile
        done["context_parallel"] = parallel.enable(transformer, spec, device)
    threshold = spec.effective("first_block_cache")
    if threshold:
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
        done["first_block_cache"] = f"threshold {threshold}"
    else:
        done["first_block_cache"] = "off"
    if spec.effective("mag_cache"):
        config = mag_cache_config(spec)
        transformer.enable_cache(config)
        calibration = spec.baseline.mag_cache_calibration
        skipped = calibration.skipped_steps(config.num_inference_steps)
        done["mag_cache"] = (
            f"threshold {config.threshold}, K {config.max_skip_steps}, retention {config.retention_ratio}: "
            f"{skipped} of {config.num_inference_steps} steps skipped per branch ({calibration.source})"
        )
    elif spec.effective("mag_cache") is not None:
        done["mag_cache"] = "off"
    if spec.effective("fp8_linear"):
        done["fp8_linear"] = fp8.quantize_transformer(transformer, device)
    elif spec.effective("fp8_linear") is not None:
        done["fp8_linear"] = "off"
    cache = "First Block Cache" if threshold else "MagCache" if spec.effective("mag_cache") else None
    if not spec.effective("compile"):
        done["compile"] = "off"
    elif device.type != "cuda":
        done["compile"] = f"skipped on {device.type}: regional torch.compile is for CUDA"
    elif "ulysses_anything" in done.get("context_parallel", ""):
        done["compile"] = "skipped: diffusers' uneven context-parallel split (ulysses_anything) does not compile"
    else:
        done["compile"] = regional_compile(transformer, cache)
    if spec.effective("flash_attn_4"):
        done["flash_attn_4"] = fa4.route_attention(transformer, device)
    else:
        done["flash_attn_4"] = "off"
    if spec.effective("sage_attention"):
        done["sage_attention"] = sage.route_attention(transformer, device, fa4=done["flash_attn_4"] == fa4.ON)
    elif spec.effective("sage_attention") is not None:
        done["sage_attention"] = "off"
    target = spec.effective("interpolate_to")
    done["interpolate_to"] = f"{target} fps (minterpolate, when the clip is written)" if target else "off"
    return done


class CacheCounter:
    """How many transformer forwards of a call the cache (First Block Cache, MagCache) answered: the forwards in which
    the last block did not run. Off (None) when no cache is on or the blocks are compiled (hooks would break graphs)."""

    def __init__(self, pipe, spec: JobSpec, device) -> None:
        self.calls = {"forwards": 0, "last_block": 0}
        compiled = spec.effective("compile") and device.type == "cuda"
        cache = bool(spec.effective("first_block_cache")) or bool(spec.effective("mag_cache"))
        self.on = cache and not compiled
        if self.on:
            transformer = pipe.transformer
            lists = [getattr(transformer, name, None) for name in BLOCK_LISTS]
            last = [blocks for blocks in lists if blocks][-1][-1]
            probe = getattr(last, "attn1", None) or last.attn  # runs only when the block computes
            transformer.register_forward_hook(lambda *_: self.count("forwards"))
            probe.register_forward_hook(lambda *_: self.count("last_block"))

    def count(self, key: str) -> None:
        self.calls[key] += 1

    def start(self, pipe) -> None:
        """Before each clip: zero the counts and clear the cache (no hit may come from the previous clip)."""
        self.calls = {"forwards": 0, "last_block": 0}
        if self.on:
            pipe.transformer._reset_stateful_cache()

    def result(self) -> dict | None:
        if not self.on:
            return None
        return {"calls": self.calls["forwards"], "hits": self.calls["forwards"] - self.calls["last_block"]}


def encode_prompts_once(
    pipe, device, prompts: list[str], negative_prompt: str | None, guidance: float, max_sequence_length: int
) -> dict[str, tuple]:
    """Every distinct prompt (with the negative prompt) encoded once, then the text encoder freed: prompt → embeds."""
    import torch

    pipe.text_encoder.to(device)
    embeds = {}
    with torch.no_grad():  # encode_prompt runs outside the pipeline's no_grad: without it each embedding keeps a graph
        for prompt in dict.fromkeys(prompts):
            embeds[prompt] = pipe.encode_prompt(
                prompt=prompt,
                negative_prompt=negative_prompt,
                do_classifier_free_guidance=guidance > 1.0,
                num_videos_per_prompt=1,
                max_sequence_length=max_sequence_length,
                device=device,
                dtype=pipe.transformer.dtype,
            )
    pipe.text_encoder.to("cpu")  # frees its GPU memory whatever else still refers to it
    pipe.text_encoder = None
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return embeds


def prompt_window(tokenizer, prompt: str, max_tokens: int) -> dict:
    """How much of `prompt` the text encoder reads: the pipelines truncate at `max_tokens` (the end-of-text token
    included) without a word. `cut` is the text past the window, which the model never sees (empty if it fits)."""
    ids = tokenizer(prompt, add_special_tokens=True).input_ids
    cut = tokenizer.decode(ids[max_tokens - 1 :], skip_special_tokens=True).strip() if len(ids) > max_tokens else ""
    return {"tokens": len(ids), "window": max_tokens, "cut": cut}


def resident_plan(pipe, device, plan: str, setting: str, prompts: int, encode_s: float) -> dict:
    """Transformer and VAE resident on the device (the VAE decodes in tiles on `24gb`); what the logs record."""
    import torch

    pipe.transformer.to(device)
    pipe.vae.to(device)
    if plan == "24gb":
        pipe.vae.enable_tiling()
    resident = torch.cuda.memory_allocated() / 2**30 if device.type == "cuda" else None
    return {
        "setting": setting,
        "plan": plan,
        "prompts_pre_encoded": prompts,
        "prompt_encoding_s": round(encode_s, 3),
        "text_encoder": "dropped after encoding the prompts",
        "resident_gib": round(resident, 2) if resident is not None else None,
        "transformer": f"on {device.type}, {pipe.transformer.dtype}",
        "vae": f"on {device.type}, {pipe.vae.dtype}, {'tiled' if plan == '24gb' else 'untiled'} decode",
    }


class DiffusersAdapter(abc.ABC):
    """A diffusers image-to-video model, loaded once per run, generating clip after clip (remote/models/__init__.py
    ModelAdapter). Each model's file (wan22.py, cogvideox.py, hunyuan.py) subclasses it with what is its own: the
    pipeline and its dtypes (`load_pipeline`), its scheduler's options, where its memory plan puts the parts
    (`place`), its call arguments (`call_kwargs`) and what it logs of them (`own_params`).

    load() finds the weights and calls setup(pipe, device), which the GPU benchmarks also call on a full-size
    pipeline of random weights. The model's text window and the memory its full plan needs are
    jobspecs/architectures.yaml's (`text_window`, `full_plan_needs_gib`), which the planner reads too."""

    id: str
    scheduler_options: dict = {}  # more arguments of the scheduler (make_scheduler)

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.architecture = architectures()[self.id]
        self.max_sequence_length = self.architecture.text_window  # tokens of a prompt the text encoder reads
        self.steps = spec.effective("steps")
        self.guidance = spec.effective("guidance")
        self.negative_prompt = spec.effective("negative_prompt")
        self.pipe = None
        self.device = None
        self.embeds: dict[str, tuple] = {}  # prompt -> (prompt_embeds, negative_prompt_embeds), if encoded ahead
        self.windows: dict[str, dict] = {}  # prompt -> what of it the text encoder reads (prompt_window)
        self.weights: Weights | None = None
        self.memory: dict = {}  # the memory plan as applied
        self.speed: dict = {}  # the speed knobs as applied
        self.cache: CacheCounter | None = None
        self.tokenizer_check: str | None = None

    # --- the hooks -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def load_pipeline(self, snapshot: Path, tokenizer, device):
        """The model's pipeline from `snapshot` (with `tokenizer`, checked by faithful_tokenizer), on the CPU, in
        its dtypes for `device`."""

    def place(self, pipe, device, plan: str) -> dict:
        """Put the pipeline's parts where the memory plan (`full` or `24gb`) says; returns what the logs record.
        Here (Wan, CogVideoX): every prompt of the spec and the negative prompt encoded once, then the text encoder
        dropped; the transformer and the VAE resident (resident_plan)."""
        start = time.monotonic()
        prompts = [clip.prompt for clip in plan_clips(self.spec)]
        self.windows = {prompt: prompt_window(pipe.tokenizer, prompt, self.max_sequence_length) for prompt in prompts}
        self.embeds = encode_prompts_once(
            pipe, device, prompts, self.negative_prompt, self.guidance, self.max_sequence_length
        )
        setting = self.spec.generation.memory
        return resident_plan(pipe, device, plan, setting, len(self.embeds), time.monotonic() - start)

    def speed_knobs(self, pipe, device) -> dict:
        """Apply the spec's speed knobs to the transformer; returns what was done (apply_speed_knobs)."""
        return apply_speed_knobs(pipe, device, self.spec)

    @abc.abstractmethod
    def call_kwargs(self, prompt: str) -> dict:
        """The pipeline call's arguments that are the model's own (generate() passes the image, the clip's size and
        frames, the steps, guidance, generator and max_sequence_length)."""

    @abc.abstractmethod
    def own_params(self, prompt: str) -> dict:
        """What the clip's log records of the model's own call arguments (generate() records the shared ones)."""

    def cache_context(self):
        """The context the pipeline call runs in (Hunyuan: First Block Cache's, which its pipeline never sets)."""
        return contextlib.nullcontext()

    # --- the adapter -----------------------------------------------------------------------------------------

    def load(self) -> None:
        """The weights from the local Hugging Face cache at the pinned revision, then setup()."""
        from remote.models import parallel

        with parallel.rank0_first():
            self.weights = find_weights(self.spec)
        device = pick_device()
        if parallel.world_size() > 1:  # torchrun's ranks: each its own GPU (the worker joined them in a group)
            device = parallel.device_of_rank()
            parallel.start(device)
        tokenizer, self.tokenizer_check = faithful_tokenizer(self.weights.snapshot, "tokenizer")
        self.setup(self.load_pipeline(self.weights.snapshot, tokenizer, device), device)

    def setup(self, pipe, device) -> None:
        """Scheduler, memory plan and speed knobs on a loaded pipeline (also used by the GPU benchmarks)."""
        spec = self.spec
        pipe.scheduler = make_scheduler(
            pipe.scheduler, spec.effective("scheduler"), spec.effective("shift"), **self.scheduler_options
        )
        pipe.set_progress_bar_config(disable=True)
        plan = pick_memory_plan(spec.generation.memory, self.architecture.full_plan_needs_gib)
        self.memory = self.place(pipe, device, plan)
        self.speed = self.speed_knobs(pipe, device)
        self.cache = CacheCounter(pipe, spec, device)
        self.pipe, self.device = pipe, device

    def encoded(self, prompt: str) -> tuple:
        """(prompt_embeds, negative_prompt_embeds) of a prompt encoded at setup."""
        if prompt not in self.embeds:
            raise RuntimeError("this prompt was not encoded at load (prompts come from the spec's plan)")
        return self.embeds[prompt]

    def generate(
        self, prompt: str, image: Image.Image, clip: ClipPlan, seed: int, on_step: StepCallback | None = None
    ) -> Generated:
        """One clip from `image` (already at the clip's size), deterministic for `seed`; `on_step` at each
        denoising step's end (timed_call)."""
        if image.size != (clip.width, clip.height):
            raise ValueError(f"input image is {image.size}, the clip is {clip.width}x{clip.height}")
        own = self.call_kwargs(prompt)
        self.cache.start(self.pipe)
        with self.cache_context():
            call = timed_call(
                self.pipe,
                self.device,
                on_step,
                image=image,
                height=clip.height,
                width=clip.width,
                num_frames=clip.frames,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                generator=seeded(seed),
                max_sequence_length=self.max_sequence_length,
                **own,
            )
        params = {
            "pipeline": type(self.pipe).__name__,
            "height": clip.height,
            "width": clip.width,
            "num_frames": clip.frames,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "max_sequence_length": self.max_sequence_length,
            "scheduler": type(self.pipe.scheduler).__name__,
            **self.own_params(prompt),
            "generator": f"cpu, seed {seed}",
            "s_per_step": call.s_per_step,
            "step_s": call.step_s,
            "peak_vram_reserved_bytes": call.peak_vram_reserved_bytes,
            "memory": self.memory,
            "speed": self.speed,
            "cache_hits": self.cache.result(),  # forwards First Block Cache or MagCache answered (CacheCounter)
        }
        return Generated(
            frames=call.frames, timings_s=call.timings_s, peak_vram_bytes=call.peak_vram_bytes, params=params
        )

    def info(self) -> dict:
        """id, repo, the commit actually loaded, where from, memory plan, speed knobs, library versions."""
        spec, weights = self.spec, self.weights
        return {
            "id": self.id,
            "repo": spec.baseline.repo,
            "revision": weights.commit if weights else None,
            "revision_requested": weights.revision if weights else spec.baseline.revision,
            "source": spec.model_source,
            "pipeline": type(self.pipe).__name__ if self.pipe is not None else spec.baseline.pipeline,
            "device": str(self.device) if self.device is not None else None,
            "memory": self.memory,
            "tokenizer": self.tokenizer_check,
            "baseline_overrides": baseline_overrides(spec),
            "profile": spec.generation.profile,
            "profile_overrides": spec.profile_settings,
            "speed": self.speed,
            "libraries": library_versions(),
        }
