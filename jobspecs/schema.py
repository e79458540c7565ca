"""The job spec: global constants, strict shot cards, a reference image and the run's settings.

Validated with pydantic before anything runs; every refusal names the field, the value and the rule.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jobspecs.config import Baseline, architectures, baselines
from jobspecs.offers import OfferVerdict

MIN_TOTAL_S, MAX_TOTAL_S = 30.0, 60.0
MIN_SHOT_S, MAX_SHOT_S = 5.0, 10.0
MAX_GPUS = 8  # infrastructure.num_gpus
OUTPUT_FPS = 24
OUTPUT_SIZE = (1280, 720)

# The closed set of camera moves, each with the directions it takes (empty: it takes none).
CAMERA_MOVES: dict[str, tuple[str, ...]] = {
    "static": (),
    "pan": ("left", "right"),
    "tilt": ("up", "down"),
    "dolly": ("left", "right"),
    "push-in": (),
    "pull-out": (),
    "orbit": ("left", "right"),
}

MAX_TEXT_CHARS = 4000  # one prompt text field; far above any text encoder's window
# Characters that print as nothing but are neither whitespace nor control/format characters (Hangul fillers, the
# braille blank, the combining grapheme joiner): text made only of these (and whitespace) is empty.
BLANK_CHARS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u034f"}
# Unicode categories refused in prompt text: control (but newline and tab), format (zero-width, bidi marks),
# surrogates, line and paragraph separators.
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def plain_text(value: str) -> str:
    """Prompt text is plain visible text: no control, format or invisible-only characters."""
    for char in value:
        kind = REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind and char not in "\n\t":
            name = f" ({unicodedata.name(char)})" if unicodedata.name(char, "") else ""
            raise ValueError(f"contains U+{ord(char):04X}{name}, {kind}; prompt text must be plain visible text")
    if value and all(char.isspace() or char in BLANK_CHARS for char in value):
        raise ValueError("no visible characters (only blank or invisible ones); prompt text must be plain visible text")
    return value


Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(plain_text)
]
OptionalText = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(plain_text)]
# diffusers 0.42's attention backends (`set_attention_backend`); all but the native ones need a package or a
# kernel download on the box.
AttentionBackend = Literal[
    "native",
    "_native_cudnn",
    "_native_flash",
    "_native_efficient",
    "_native_math",
    "flash",
    "flash_hub",
    "_flash_3_hub",
    "sage",
    "sage_hub",
    "flex",
    "xformers",
]


# Camera moves written in a shot's text. Each phrase is a move only in a camera's sense: "the camera pans left",
# "slow dolly in", "zooms out", "a tracking shot" — not "a frying pan", "she tilts her head", "the car zooms out of".
ADVERB = r"(?:\w+ly\s+)?"
CAMERA_VERBS = {
    "pan": "pan",
    "tilt": "tilt",
    "dolli": "dolly",
    "dolly": "dolly",
    "orbit": "orbit",
    "circl": "orbit",
    "arc": "orbit",
    "push": "push-in",
    "pull": "pull-out",
}
CAMERA_TEXT = [
    re.compile(
        r"\bcamera\s+" + ADVERB + ADVERB + r"(?P<verb>pan|tilt|dolli|dolly|zoom|orbit|circl|arc|track|truck|push"
        r"|pull|mov|crane|cran|boom|rotat|swing|swung|sweep|glid|follow|ris|rose|descend|drift|spin|slid|swoop)"
        r"\w*(?:\s+" + ADVERB + r"(?:to\s+the\s+)?(?P<dir>left|right|upwards?|downwards?|up|down|in|out|back))?",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?P<verb>pan)(?:s|ned|ning)?\s+" + ADVERB + r"(?:to(?:wards?)?\s+the\s+)?(?P<dir>left|right)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b(?P<verb>pan)(?:s|ned|ning)\s+(?:across|over)\b", re.IGNORECASE),
    re.compile(
        r"\b(?P<verb>tilt)(?:s|ed|ing)?\s+" + ADVERB + r"(?P<dir>upwards?|downwards?|up|down)\b"
        r"(?!\s+(?:her|his|their|its|my|your|our|the|a|an)\b)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?P<verb>dolly|dolli)(?:es|ed|ing)?[\s-]+(?P<dir>in|out|left|right|forward|back|backwards?)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?P<verb>push)-in\b|\b(?P<verb2>pull)-(?:out|back)\b(?!\s+(?:sofa|couch|bed|drawer|shelf|tray)\b)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?P<verb>orbit)(?:s|ed|ing)?\s+" + ADVERB + r"(?:to\s+the\s+|around\s+the\s+)?(?P<dir>left|right|"
        r"subject)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b(?P<verb>zoom)(?:s|ed|ing)?[\s-]+(?P<dir>in|out)\b(?!\s+of\b)", re.IGNORECASE),
    re.compile(
        r"\b(?P<verb>tracking|crane|dolly|pan|panning|tilt|orbit|orbiting|zoom|whip[\s-]pan|steadicam)\s+shot\b",
        re.IGNORECASE,
    ),
]
# A word before "pan"/"pans" that makes it the cooking pan ("a frying pan left on the stove").
PAN_NOUN_BEFORE = {
    "a",
    "an",
    "the",
    "frying",
    "sauce",
    "saute",
    "sauté",
    "baking",
    "roasting",
    "cake",
    "sheet",
    "dust",
    "iron",
    "copper",
    "his",
    "her",
    "their",
    "its",
    "my",
    "our",
    "your",
    "this",
    "that",
    "these",
    "those",
    "hot",
    "empty",
    "gold",
}
DIRECTIONS = {"upward": "up", "upwards": "up", "downward": "down", "downwards": "down", "subject": None}


def camera_phrases(text: str) -> list[tuple[str, str | None, str | None]]:
    """(phrase, move, direction) of each camera move written in `text`; move None: a move not in CAMERA_MOVES."""
    found = []
    for pattern in CAMERA_TEXT:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            verb = (groups.get("verb") or groups.get("verb2") or "").lower()
            before = text[: match.start()].split()
            noun = verb == "pan" and before and before[-1].lower() in PAN_NOUN_BEFORE
            if noun and not match.group(0).lower().startswith("camera"):
                continue
            word = verb.split()[0].removesuffix("ning").removeprefix("whip")
            move = CAMERA_VERBS.get(word)
            direction = (groups.get("dir") or "").lower() or None
            direction = DIRECTIONS.get(direction, direction)
            if move in ("push-in", "pull-out"):
                direction = None if direction in (None, "in", "out", "back") else direction
            found.append((match.group(0), move, direction))
    return found


class SpecError(ValueError):
    """A job spec that can't run. The message lists every problem as `field = value: rule`."""


class Strict(BaseModel):
    # allow_inf_nan=False: .inf and .nan are refused in every float (and never reach a log or manifest as JSON).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def numbers_are_not_booleans(cls, value: object, info: ValidationInfo) -> object:
        """YAML 1.1 reads yes/no/on/off/true/false as booleans, and a bool is an int in Python: refuse it where
        a number is expected (`seed: yes` would otherwise be seed 1)."""
        if isinstance(value, bool) and numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError("a number is expected, not a yes/no value (YAML reads yes/no/on/off/true/false as such)")
        return value


def numeric(annotation: object) -> bool:
    """int, float, or either of them | None."""
    return annotation in (int, float) or any(arg in (int, float) for arg in get_args(annotation))


# --- the spec --------------------------------------------------------------------------------------


class Constants(Strict):
    """What stays the same in every clip; appended to every shot's prompt."""

    style: Text  # style and realism
    setting: Text  # era, location, environment
    lighting: Text  # lighting and visibility
    lens: Text  # lens and camera style
    composition: Text  # aspect and composition


class Shot(Strict):
    """One shot card: one subject, one action, one environment, at most one camera move, 5–10 s."""

    subject: Text
    action: Text
    environment: Text
    camera: str = "static"
    duration_s: float

    @field_validator("camera", mode="before")
    @classmethod
    def one_camera_move(cls, value: object) -> str:
        if isinstance(value, list | tuple):
            if len(value) != 1:
                raise ValueError(f"exactly one camera move per shot, got {len(value)}")
            value = value[0]
        if not isinstance(value, str):
            raise ValueError("a camera move is text such as 'pan left' or 'push-in'")
        words = value.strip().lower().replace("_", "-").split()
        joined = {"and", "then", "+", "&", "while"}
        if any(w in joined for w in words) or "," in value or sum(w in CAMERA_MOVES for w in words) > 1:
            raise ValueError("exactly one camera move per shot (split the shot into two shots)")
        if not words or words[0] not in CAMERA_MOVES:
            raise ValueError(f"unknown camera move; the moves are {', '.join(CAMERA_MOVES)}")
        move, rest = words[0], words[1:]
        allowed = CAMERA_MOVES[move]
        if allowed and (len(rest) != 1 or rest[0] not in allowed):
            raise ValueError(f"'{move}' needs one direction: {' or '.join(allowed)}")
        if not allowed and rest:
            raise ValueError(f"'{move}' takes no direction")
        return " ".join(words)

    @field_validator("duration_s")
    @classmethod
    def shot_length(cls, value: float) -> float:
        if not MIN_SHOT_S <= value <= MAX_SHOT_S:
            raise ValueError(f"a shot lasts {MIN_SHOT_S:g}–{MAX_SHOT_S:g} s")
        return value

    @model_validator(mode="after")
    def no_camera_move_in_text(self) -> Shot:
        """The camera move is the `camera` field's alone: one written in the shot's text would fight it."""
        for name in ("subject", "action", "environment"):
            for phrase, move, direction in camera_phrases(getattr(self, name)):
                if move == self.move and direction in (None, self.direction):
                    continue  # the text says what `camera` says
                raise ValueError(
                    f"{name} has {phrase!r}, a camera move; the move belongs in `camera` (this shot's is "
                    f"{self.camera!r}; the moves are {', '.join(CAMERA_MOVES)}), not in the shot's text"
                )
        return self

    @property
    def move(self) -> str:
        return self.camera.split()[0]

    @property
    def direction(self) -> str | None:
        parts = self.camera.split()
        return parts[1] if len(parts) > 1 else None


class Generation(Strict):
    """Overrides of single variables of the model's locked baseline (None = keep the baseline)."""

    width: int | None = None
    height: int | None = None
    fps: int | None = Field(None, ge=8, le=60)
    max_frames: int | None = Field(None, ge=2)
    steps: int | None = Field(None, ge=1, le=200)
    guidance: float | None = Field(None, ge=0)
    scheduler: str | None = None
    shift: float | None = Field(None, gt=0)
    negative_prompt: OptionalText | None = None
    # The GPU memory plan of the diffusers models: `full` keeps everything on the GPU (a 40–140 GB card, by
    # model), `24gb` fits an RTX 4090; `auto` picks by the GPU's memory. remote/models/ says what each does.
    memory: Literal["auto", "full", "24gb"] = "auto"
    # The speed profile (jobspecs/baselines.yaml `profiles`): `baseline` (the locked official settings), `quantized`
    # (the same settings, 8-bit attention and fp8 linear layers), `cached` (quantized + the model's calibrated cache),
    # `fast` (fewer steps, shorter clips: what fits a 4090 by changing what the model makes), or `auto`: the first of
    # those four, in that order, that the planner fits inside the clip limit on infrastructure.gpu (resolved when
    # the spec is loaded; jobspecs/load.py). The fields here override any of them.
    profile: Literal["auto", "baseline", "quantized", "cached", "fast"] = "baseline"
    first_block_cache: float | None = Field(None, ge=0, le=1)  # First Block Cache threshold; 0 = off
    interpolate_to: int | None = Field(None, ge=0, le=60)  # write clips at this fps (minterpolate); 0 = off
    attention_backend: AttentionBackend | None = None  # diffusers' attention backend of the transformer
    compile: bool | None = None  # regional torch.compile of the transformer's repeated blocks (CUDA only)
    prompt_trim: bool | None = None  # Hunyuan: the prompt's padded tail cut, attention unmasked (same math)
    flash_attn_4: bool | None = None  # FlashAttention-4 for the unmasked attention on sm_90+ GPUs (same math)
    sage_attention: bool | None = None  # 8-bit attention (SageAttention: int8 QK, fp16 PV) on sm_80+ GPUs
    fp8_linear: bool | None = None  # the transformer's linear layers in fp8 (torchao, rowwise) on sm_89+ GPUs
    mag_cache: bool | None = None  # MagCache with the model's published calibration (Wan 2.2 TI2V-5B)


SPEED_KNOBS = (
    "first_block_cache",
    "interpolate_to",
    "attention_backend",
    "compile",
    "prompt_trim",
    "flash_attn_4",
    "sage_attention",
    "fp8_linear",
    "mag_cache",
)
PROFILE_ORDER = ("baseline", "quantized", "cached", "fast")  # what `auto` tries, best first


class Stitch(Strict):
    """How clips are joined. Same clips + same settings + same ffmpeg build = the same bytes."""

    transition: Literal["cut", "crossfade"] = "cut"
    overlap_frames: int = Field(0, ge=0, le=24)
    seam_bridge: Literal["none", "blend", "minterpolate"] = "none"
    bridge_frames: int = Field(0, ge=0, le=12)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"] = "medium"
    crf: int = Field(18, ge=0, le=51)
    threads: int = Field(4, ge=1, le=16)  # pinned: x264's output depends on its thread count

    @model_validator(mode="after")
    def consistent(self) -> Stitch:
        if self.transition == "crossfade" and self.overlap_frames < 1:
            raise ValueError("transition 'crossfade' needs overlap_frames ≥ 1 (the frames blended at a seam)")
        if self.transition == "cut" and self.overlap_frames:
            raise ValueError("overlap_frames is only used by transition 'crossfade'; set it to 0 for 'cut'")
        if self.seam_bridge != "none" and self.transition != "cut":
            raise ValueError("a seam bridge inserts frames between clips; it needs transition 'cut'")
        if (self.seam_bridge == "none") != (self.bridge_frames == 0):
            raise ValueError("seam_bridge 'blend'/'minterpolate' needs bridge_frames ≥ 1; 'none' needs 0")
        return self


class Guardrails(Strict):
    clip_limit_s: float = Field(600.0, gt=0)  # a clip still generating after this is killed
    run_limit_s: float | None = Field(None, gt=0)  # default: clips × clip_limit_s
    # A plan whose predicted clip time (jobspecs/plan.py) is over clip_limit_s: refused before anything runs, or
    # only a warning.
    plan_check: Literal["refuse", "warn"] = "refuse"


class ColorMatch(Strict):
    """Match each chained input image to the reference (a fixed anchor) in LAB mean/std."""

    mode: Literal["off", "reinhard"] = "off"
    strength: float = Field(0.5, ge=0, le=1)

    @field_validator("mode", mode="before")
    @classmethod
    def yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class Infrastructure(Strict):
    """Where the worker runs: this machine (local), a rented Vast.ai instance (vast), or a box you have (ssh)."""

    provider: Literal["local", "vast", "ssh"] = "local"
    # vast: the offer. gpu: as Vast.ai writes it, or `auto`: the offer shape (GPU and, unless num_gpus names it,
    # how many) with the lowest predicted dollars per film among those that fit the limits, picked when the spec is
    # loaded (jobspecs/plan.py pick_offer; the resolved spec names both). num_gpus: the GPUs one clip runs on
    # (context parallelism, remote/models/parallel.py), or `auto` (default: 1, `auto` with gpu `auto`).
    gpu: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = "RTX 4090"
    num_gpus: int | Literal["auto"] = 1
    max_usd_per_hour: float | None = Field(None, gt=0)  # the whole box's price
    disk_gb: float = Field(80, ge=20)
    min_ram_gb: float | None = Field(None, gt=0)  # host RAM; default 96 GB for hunyuan_i2v (offload), else 32
    image: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = (
        "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"
    )
    # ssh: the box
    host: str | None = None
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    key_file: str | None = None  # default: the project's own key (~/.config/i2v-shootout/id_ed25519)
    # vast and ssh
    remote_root: str | None = None  # default: /workspace/i2v-shootout (vast), ~/i2v-shootout (ssh)
    venv: str | None = None  # default: <box root>/venv
    allow_dirty: bool = False  # run code that differs from the recorded commit
    ready_timeout_s: float = Field(900, gt=0)  # instance running + SSH answering, per attempt
    # vast: an interruptible (bid) instance, about half the on-demand price; when it is outbid (Vast stops it) the run
    # destroys it, rents again and continues from the last finished clip (flows/shootout.py), at most
    # `max_preemptions` times. The bid: the offer's min_bid × bid_margin, never above max_usd_per_hour.
    interruptible: bool = False
    bid_margin: float = Field(1.25, ge=1.0, le=10.0)
    max_preemptions: int = Field(3, ge=0, le=20)
    preemption_check_s: float = Field(30, ge=1, le=600)  # how often a run asks Vast whether its bid instance runs

    @model_validator(mode="before")
    @classmethod
    def auto_gpu_counts_too(cls, data: object) -> object:
        """`gpu: auto` without a `num_gpus` picks the count too."""
        if isinstance(data, dict) and "num_gpus" not in data and str(data.get("gpu", "")).strip() == "auto":
            return {**data, "num_gpus": "auto"}
        return data

    @field_validator("num_gpus", mode="before")
    @classmethod
    def a_count_or_auto(cls, value: object) -> object:
        if not isinstance(value, int | str) or (isinstance(value, str) and value.strip() != "auto"):
            raise ValueError(f"a whole number of GPUs, 1–{MAX_GPUS}, or `auto` (the offer's)")
        return value.strip() if isinstance(value, str) else value

    @field_validator("num_gpus")
    @classmethod
    def one_to_eight(cls, value: int | str) -> int | str:
        if value != "auto" and not 1 <= value <= MAX_GPUS:
            raise ValueError(f"a box has 1–{MAX_GPUS} GPUs (or `auto`: the offer's)")
        return value

    @model_validator(mode="after")
    def ssh_needs_a_host(self) -> Infrastructure:
        if self.provider == "ssh" and not self.host:
            raise ValueError("provider 'ssh' needs infrastructure.host (and port, user, key_file)")
        return self

    @model_validator(mode="after")
    def only_vast_bids(self) -> Infrastructure:
        if self.interruptible and self.provider != "vast":
            raise ValueError(
                f"infrastructure.interruptible = true rents a Vast.ai bid instance; provider '{self.provider}' rents "
                "nothing: drop it, or use provider 'vast'"
            )
        return self

    @model_validator(mode="after")
    def auto_rents(self) -> Infrastructure:
        for name in ("gpu", "num_gpus"):
            if getattr(self, name) == "auto" and self.provider != "vast":
                raise ValueError(
                    f"infrastructure.{name} = 'auto' picks a Vast.ai offer; with provider '{self.provider}' the box "
                    f"is the one you have: name its {'GPU' if name == 'gpu' else 'GPU count'}"
                )
        return self

    @property
    def resolved(self) -> bool:
        """Whether the offer is named: no `auto` left (load.validate resolves them)."""
        return "auto" not in (self.gpu, self.num_gpus)


class JobSpec(Strict):
    title: Text
    model: str = "kenburns"
    # Where the weights come from: `hub` = the model's pinned revision in the Hugging Face cache (prefetched);
    # `tiny` = tiny random-weight pipelines of the same classes (remote/models/tiny.py), to smoke-test a box
    # or run the tests with the real code path. Its output is noise, and it relaxes two rules (below). kenburns
    # has no weights: `tiny` only relaxes the same two rules for it (a small, short smoke run).
    model_source: Literal["hub", "tiny"] = "hub"
    seed: int = Field(0, ge=0, lt=2**32)
    reference_image: str
    constants: Constants
    shots: list[Shot] = Field(min_length=1)
    generation: Generation = Generation()
    _profile_choice: str | None = PrivateAttr(None)  # what `profile: auto` picked and why (jobspecs.plan.pick_profile)
    # what `infrastructure.gpu` / `num_gpus: auto` picked and why, and every offer it was picked from
    # (jobspecs.plan.pick_offer)
    _offer_choice: str | None = PrivateAttr(None)
    _offer_verdicts: tuple[OfferVerdict, ...] | None = PrivateAttr(None)
    stitch: Stitch = Stitch()
    guardrails: Guardrails = Guardrails()
    color_match: ColorMatch = ColorMatch()
    infrastructure: Infrastructure = Infrastructure()

    @field_validator("model")
    @classmethod
    def known_model(cls, value: str) -> str:
        known = baselines()
        if value not in known:
            raise ValueError(f"unknown model; the models are {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def fits_the_model(self) -> JobSpec:
        base = self.baseline
        tiny = self.model_source == "tiny"
        for name in ("steps", "guidance", "scheduler", "shift", "negative_prompt", *SPEED_KNOBS):
            if getattr(self.generation, name) is not None and getattr(base, name) is None:
                raise ValueError(f"generation.{name}: model '{self.model}' has no such setting")
        profile = self.generation.profile
        if profile not in ("baseline", "auto") and profile not in base.profiles:
            raise ValueError(f"generation.profile = '{profile}': model '{self.model}' has no such profile")
        if self.effective("mag_cache") and self.effective("first_block_cache"):
            raise ValueError(
                f"generation.first_block_cache = {self.effective('first_block_cache')} with mag_cache on: one cache "
                "at a time (set first_block_cache: 0, or mag_cache: false)"
            )
        if base.repo is None and self.generation.memory != "auto":
            raise ValueError(f"generation.memory = '{self.generation.memory}': model '{self.model}' uses no GPU")
        width, height = self.size
        if tiny:
            check_tiny_size(width, height)  # relaxed: tiny pipelines run at any small size
        else:
            check_720p_class(width, height)
        if width % base.size_step or height % base.size_step:
            raise ValueError(
                f"generation size = {width}x{height}: model '{self.model}' needs width and height in multiples of "
                f"{base.size_step} (e.g. {base.width}x{base.height})"
            )
        max_frames = self.max_frames
        if max_frames > base.max_frames:
            raise ValueError(
                f"generation.max_frames = {max_frames}: above model '{self.model}''s native {base.max_frames}"
            )
        if (max_frames - 1) % base.frame_step:
            raise ValueError(
                f"generation.max_frames = {max_frames}: model '{self.model}' needs "
                f"{base.frame_step}k+1 frames (e.g. {base.max_frames})"
            )
        self.check_interpolation()
        total = total_seconds(self)
        shortest = 0.0 if tiny else MIN_TOTAL_S  # relaxed: a tiny smoke test may be a film shorter than 30 s
        if not shortest <= total <= MAX_TOTAL_S:
            raise ValueError(
                f"shots: total length {total:.2f} s after overlaps; a film lasts "
                f"{shortest:g}–{MAX_TOTAL_S:g} s (sum of shot durations minus crossfade overlaps)"
            )
        return self

    @model_validator(mode="after")
    def fits_the_gpus(self) -> JobSpec:
        problem = num_gpus_problem(self, self.infrastructure.num_gpus)
        if problem:
            raise ValueError(problem)
        return self

    # Effective generation settings: the baseline with this spec's overrides.
    @property
    def baseline(self) -> Baseline:
        return baselines()[self.model]

    @property
    def profile_choice(self) -> str | None:
        """What `generation.profile: auto` picked and why; None where the spec named its profile."""
        return self._profile_choice

    @property
    def offer_choice(self) -> str | None:
        """What `infrastructure.gpu` / `num_gpus: auto` picked, from which prices, at what dollars per film; None
        where the spec named its offer."""
        return self._offer_choice

    @property
    def offer_verdicts(self) -> tuple[OfferVerdict, ...] | None:
        """Every offer shape `auto` was picked from, as the planner judged it (None where the spec named its
        offer)."""
        return self._offer_verdicts

    @property
    def profile_settings(self) -> dict:
        """What the spec's profile changes in the baseline (empty for `baseline`)."""
        profile = self.baseline.profiles.get(self.generation.profile)
        return profile.model_dump(exclude_none=True) if profile else {}

    @property
    def size(self) -> tuple[int, int]:
        return (self.effective("width"), self.effective("height"))

    @property
    def fps(self) -> int:
        return self.effective("fps")

    @property
    def max_frames(self) -> int:
        return self.effective("max_frames")

    def effective(self, name: str) -> object:
        """The setting in force: the spec's own override, else its profile's, else the baseline's."""
        override = getattr(self.generation, name)
        if override is not None:
            return override
        return self.profile_settings.get(name, getattr(self.baseline, name))

    def check_interpolation(self) -> None:
        """Frame interpolation raises the clip's fps; every clip must still end on a frame of the new rate, so
        the generated last frame (the hand-off) stays the clip's last frame."""
        target = self.effective("interpolate_to")
        if not target:
            return
        if target <= self.fps:
            raise ValueError(f"generation.interpolate_to = {target}: must be above the generation fps {self.fps}")
        for shot in self.shots:
            for frames in self.shot_frames(shot):
                if (frames - 1) * target % self.fps:
                    raise ValueError(
                        f"generation.interpolate_to = {target}: a clip of {frames} frames at {self.fps} fps does not "
                        f"end on a {target} fps frame; choose a rate that divides evenly (e.g. 2 × {self.fps})"
                    )

    def clip_frames_written(self, frames: int) -> tuple[int, int]:
        """(frames, fps) of the clip file for a clip of `frames` generated frames (after interpolation, if on)."""
        target = self.effective("interpolate_to")
        if not target or target <= self.fps:
            return frames, self.fps
        return (frames - 1) * target // self.fps + 1, target

    def shot_frames(self, shot: Shot) -> list[int]:
        """Frame counts of the chained sub-clips one shot becomes (one clip unless it is too long)."""
        parts = math.ceil(shot.duration_s * self.fps / (self.max_frames - 1) - 1e-9)
        frames = frames_for(shot.duration_s / parts, self.fps, self.baseline.frame_step)
        return [min(frames, self.max_frames)] * parts

    @property
    def clip_count(self) -> int:
        return sum(len(self.shot_frames(shot)) for shot in self.shots)

    @property
    def run_limit_s(self) -> float:
        return self.guardrails.run_limit_s or self.clip_count * self.guardrails.clip_limit_s


def gpu_counts(model: str) -> list[int]:
    """The GPU counts a clip of `model` can run on: those that divide its attention heads (Ulysses context
    parallelism gives each GPU a share of the heads); [1] for a model without a transformer."""
    heads = architectures()[model].heads
    return [n for n in range(1, MAX_GPUS + 1) if heads and heads % n == 0] or [1]


TINY_HEADS = 2  # remote/models/tiny.py: every tiny transformer has 2 attention heads


def num_gpus_problem(spec: JobSpec, num_gpus: int | str) -> str | None:
    """Why `spec` can't run one clip on `num_gpus` GPUs (None: it can; `auto` is judged per offer). The tiny
    weights and the local provider may run on several (the tests run ranks on the CPU)."""
    if num_gpus in (1, "auto"):
        return None
    arch = architectures()[spec.model]
    field = f"infrastructure.num_gpus = {num_gpus}"
    if arch.family == "cpu":
        return f"{field}: {spec.model} renders on the CPU; num_gpus must be 1"
    if num_gpus not in gpu_counts(spec.model):
        counts = ", ".join(str(n) for n in gpu_counts(spec.model))
        return (
            f"{field}: model '{spec.model}' has {arch.heads} attention heads, and Ulysses context parallelism splits "
            f"the heads across the GPUs; num_gpus must divide {arch.heads} ({counts})"
        )
    if spec.model_source == "tiny" and num_gpus > TINY_HEADS:
        return f"{field}: the tiny pipelines have {TINY_HEADS} attention heads: they split across 2 GPUs at most"
    if spec.effective("first_block_cache"):
        return (
            f"{field} with generation.first_block_cache = {spec.effective('first_block_cache')}: First Block Cache "
            "decides per forward from the first block's output, which each GPU holds only a part of, so the GPUs "
            "could decide differently and wait on each other for ever; set first_block_cache: 0 (MagCache, whose "
            "skips follow from its calibration, runs on several GPUs) or num_gpus: 1"
        )
    if arch.family == "hunyuan" and not spec.effective("prompt_trim"):
        return (
            f"{field} with generation.prompt_trim off: model '{spec.model}''s masked attention is not split across "
            "GPUs; turn generation.prompt_trim on (the same math at batch 1: the mask only hides the prompt's "
            "padding) or set num_gpus: 1"
        )
    return None


def check_720p_class(width: int, height: int) -> None:
    """720p-class: short side 704–768, long side 1248–1376, both multiples of 16 (portrait allowed)."""
    short, long = sorted((width, height))
    if not (704 <= short <= 768 and 1248 <= long <= 1376) or width % 16 or height % 16:
        raise ValueError(
            f"generation size = {width}x{height}: not 720p-class (short side 704–768, long side "
            "1248–1376, both multiples of 16; e.g. 1280x720, 1280x704, 1360x768)"
        )


def check_tiny_size(width: int, height: int) -> None:
    """model_source 'tiny' only: any size with both sides 32–1376 (the model's size_step still applies)."""
    if not (32 <= width <= 1376 and 32 <= height <= 1376):
        raise ValueError(f"generation size = {width}x{height}: with model_source 'tiny' each side is 32–1376")


def total_seconds(spec: JobSpec) -> float:
    """Length of the stitched film: every clip's motion, less crossfades, plus bridge frames."""
    frames = [n for shot in spec.shots for n in spec.shot_frames(shot)]
    seams = len(frames) - 1
    motion = sum((n - 1) / spec.fps for n in frames)
    overlap = seams * spec.stitch.overlap_frames / OUTPUT_FPS
    bridges = seams * spec.stitch.bridge_frames / OUTPUT_FPS
    return motion - overlap + bridges + 1 / OUTPUT_FPS


def frames_for(seconds: float, fps: int, step: int) -> int:
    """The frame count nearest to `seconds` of motion at `fps` on the rule step*k+1 (k ≥ 1)."""
    k = max(1, round(seconds * fps / step))
    return step * k + 1
