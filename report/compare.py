"""The comparison report: finished run directories side by side → report.html, report.json, report.md.

    compare_runs([run_a, run_b, ...], out_dir)          (the flow; `shootout report RUN_DIR... --out DIR`)
    compare_runs(run_dirs, out_dir, night=night_cost)   (the overnight: the night's cost shown beside the runs)

Each run is read from its extracted bundle (manifest.json, job.yaml, logs/, clips/, frames/) and, where the flow
wrote one, `<run_dir>.cost.json` beside it. Speed and cost come from the logs and that file; the quality metrics
(report/metrics.py) from the clips, decoded without the −1 colour bias, and the lossless last frames.

Score. Every metric in METRICS is normalised across the compared runs so that 1 is the best run and lower is
worse:   n = 1 − |best − value| / max(max − min, tolerance)
where best is the max (higher is better) or the min (lower is better) over the runs, and `tolerance` is the
metric's smallest meaningful difference: runs closer than that all score near 1, so noise is not blown up to
a full 0-to-1 spread. A run's score = 100 × Σ weight·n / Σ weight over the metrics used. A quality metric a run
could not produce (no clip, no seam) counts as n = 0 for that run; a metric no run has, and the cost when any run
lacks its cost, are left out of the score (the report lists them). Weights: DEFAULT_WEIGHTS, then the
`report_weights` mapping of the first run's job.yaml that has one, then the caller's (`--weights KEY=W`).
"""

from __future__ import annotations

import io
import json
import math
import statistics
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw
from pydantic import ValidationError

from jobspecs.contracts import (
    ClipLog,
    ClipRow,
    Contract,
    FilmLightness,
    Manifest,
    Metric,
    NightCost,
    Report,
    RunCost,
    RunRow,
    RunSettings,
    SeamRow,
    Timing,
)
from remote.ffmpeg import FfmpegError
from report import metrics as m
from report.film import FILM_NAME, Film, comparison_film, final_video


class ReportError(RuntimeError):
    """A run directory that can't be read, or weights that don't fit; the message says which and why."""


METRICS = [
    Metric(
        key="completion",
        label="clips finished",
        unit="fraction",
        higher_is_better=True,
        tolerance=1e-9,
        missing="worst",
        definition="finished clips / planned clips (a run stopped by a guardrail finishes fewer)",
    ),
    Metric(
        key="seam_ssim_ratio",
        label="seam SSIM ratio",
        unit="ratio",
        higher_is_better=True,
        tolerance=0.02,
        missing="worst",
        definition="mean over seams of SSIM(last frame of clip i, first shown frame of clip i+1) / median SSIM of "
        "the 6 consecutive-frame pairs nearest the seam inside each of clips i and i+1 (luma, 7×7 window, frames at "
        "320 px wide); 1 = the seam looks like any other frame step there",
    ),
    Metric(
        key="seam_psnr_drop_db",
        label="seam PSNR drop",
        unit="dB",
        higher_is_better=False,
        tolerance=1.0,
        missing="worst",
        definition="mean over seams of (median PSNR of the same nearest consecutive-frame pairs) − (PSNR across the "
        "seam), RGB at 320 px wide; a difference, not a ratio, since PSNR is already logarithmic",
    ),
    Metric(
        key="flash",
        label="seam flash",
        unit="× median",
        higher_is_better=False,
        tolerance=1.0,
        missing="worst",
        definition="worst seam: the largest |Δ mean L*| over the 4 frame steps from clip i's last frame into clip i+1, "
        "divided by the median |Δ mean L*| of the nearest consecutive-frame pairs (floor 0.5 L*)",
    ),
    Metric(
        key="flicker",
        label="flicker",
        unit="L*",
        higher_is_better=False,
        tolerance=0.1,
        missing="worst",
        definition="mean over every frame inside a clip of |L*_t − (L*_{t−1} + L*_{t+1})/2|, L* the frame's mean CIE "
        "lightness: the high-pass part of the brightness series (smooth changes ≈ 0)",
    ),
    Metric(
        key="color_drift",
        label="colour drift ΔE00",
        unit="ΔE00",
        higher_is_better=False,
        tolerance=1.0,
        missing="worst",
        definition="mean over clips of CIEDE2000 between the mean CIELAB colour of the clip's lossless last frame and "
        "the reference's (resized and centre-cropped to the frame)",
    ),
    Metric(
        key="sharpness_slope",
        label="sharpness trend",
        unit="per clip",
        higher_is_better=True,
        tolerance=0.02,
        missing="worst",
        definition="least-squares slope across clips of var(Laplacian of luma) of the last frame / the same of the "
        "reference at that size; negative = detail lost clip after clip",
    ),
    Metric(
        key="speed",
        label="generation s per video s",
        unit="s/s",
        higher_is_better=False,
        tolerance=1.0,
        missing="worst",
        definition="(model load + Σ clip generation time) / seconds of film",
    ),
    Metric(
        key="cost",
        label="$ per video s",
        unit="USD/s",
        higher_is_better=False,
        tolerance=0.001,
        missing="exclude",
        definition="usd_total / seconds of film, from <run_dir>.cost.json (a local run costs 0)",
    ),
]
METRIC_BY_KEY = {metric.key: metric for metric in METRICS}

DEFAULT_WEIGHTS = {
    "completion": 2.0,  # a film with missing clips is not a film
    "seam_ssim_ratio": 2.0,  # the seams are what chaining breaks first
    "seam_psnr_drop_db": 1.0,
    "flash": 2.0,
    "flicker": 1.0,
    "color_drift": 2.0,  # colour that drifts further clip after clip: what chained generation is known for
    "sharpness_slope": 1.0,
    "speed": 1.0,
    "cost": 1.0,
}
NORMALISATION = "n = 1 − |best − value| / max(max − min, tolerance); score = 100 × Σ w·n / Σ w"
SEAM_CONTEXT = 6  # consecutive-frame pairs each side of a seam that set what "normal" is there
FLASH_WINDOW = 4  # frame steps after a seam in which a flash is looked for
FLASH_FLOOR = 0.5  # L*: the smallest median frame-to-frame change a flash is measured against
DECODE_NOTE = (
    "Clips decoded through one ffmpeg pipe each (rgb24) as bt709 limited range with swscale accurate_rnd + "
    "full_chroma_int (no −1 colour bias: ffmpeg's default conversion decodes about one level dark); SSIM, PSNR, "
    f"flash and flicker on frames scaled (area) to {m.ANALYSIS_WIDTH} px wide; colour drift and sharpness on the "
    "full-size lossless last-frame PNGs."
)


# --- reading a run -----------------------------------------------------------------------------------


def read_model(path: Path, model: type[Contract]) -> Contract:
    """The file read as `model`; ReportError names the file and its first wrong field."""
    try:
        return model.model_validate_json(path.read_text())
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise ReportError(f"{path}: {field}: {error['msg']}" if field else f"{path}: {error['msg']}") from None


def read_logs(run_dir: Path) -> list[ClipLog]:
    """The finished clips' logs in chain order, up to the first gap."""
    logs = []
    while (path := run_dir / "logs" / f"log_{len(logs):03d}.json").exists():
        logs.append(read_model(path, ClipLog))
    return logs


def read_run(run_dir: Path) -> tuple[Manifest, dict, list[ClipLog]]:
    """manifest.json, job.yaml (raw: report_weights may sit beside the spec's fields) and the logs."""
    if not (run_dir / "manifest.json").exists():
        raise ReportError(
            f"{run_dir}: not a run directory (no manifest.json); extract a bundle with `shootout verify BUNDLE "
            "--extract DIR` and pass DIR/<run_id>"
        )
    manifest = read_model(run_dir / "manifest.json", Manifest)
    job = yaml.safe_load((run_dir / "job.yaml").read_text()) if (run_dir / "job.yaml").exists() else {}
    return manifest, job or {}, read_logs(run_dir)


def read_cost(run_dir: Path, provider: str | None) -> dict:
    """<run_dir>.cost.json where the flow wrote it; a local run costs nothing; otherwise unknown."""
    path = run_dir.with_name(run_dir.name + ".cost.json")
    if path.exists():
        return read_model(path, RunCost).model_dump(mode="json") | {"source": path.name}
    if provider == "local":
        return {"usd_total": 0.0, "usd_per_video_s": 0.0, "source": "local run: this machine, no rent"}
    return {"usd_total": None, "usd_per_video_s": None, "source": f"n/a: no {path.name}"}


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def num(value: float | None, digits: int = 4) -> float | None:
    """A finite float rounded for the report, or None (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def film_seconds(manifest: Manifest, logs: list[ClipLog]) -> float:
    """Seconds of the film: the final video's where it was stitched, else the clips as a cut would join them."""
    if manifest.final_video is not None and manifest.final_video.seconds:
        return manifest.final_video.seconds
    if not logs:
        return 0.0
    frames = logs[0].params.frames + sum(log.params.frames - 1 for log in logs[1:])
    return frames / logs[0].params.fps


def settings_of(job: dict, logs: list[ClipLog], manifest: Manifest) -> RunSettings:
    """What made the clips: the spec's generation block, the effective parameters, the memory plan, a profile."""
    generation = job.get("generation") or {}
    params = logs[0].params if logs else None
    model = (logs[0].model if logs else manifest.model).model_extra  # the adapter's own keys
    keys = ("width", "height", "frames", "fps", "steps", "guidance", "guidance_kind", "scheduler", "shift")
    effective = {k: getattr(params, k) for k in keys if params is not None and getattr(params, k) is not None}
    memory = model.get("memory")
    profile = generation.get("profile") or (params.profile if params else None) or model.get("profile")
    speed = model.get("speed") if isinstance(model.get("speed"), dict) else {}
    return RunSettings(
        generation=generation,
        effective=effective,
        profile=profile,
        source=model.get("source"),
        memory_plan=memory.get("plan") if isinstance(memory, dict) else memory,
        levers={name: str(speed[name]) for name in LEVERS if name in speed},
    )


# the levers that change the arithmetic or skip work, as the report names them when they were on
LEVERS = {
    "flash_attn_4": "FlashAttention-4",
    "sage_attention": "8-bit attention",
    "fp8_linear": "fp8 linear layers",
    "mag_cache": "MagCache",
    "first_block_cache": "First Block Cache",
}


def settings_text(settings: RunSettings) -> str:
    e = settings.effective
    parts = []
    if "width" in e:
        parts.append(f"{e['width']}×{e['height']}, {e.get('frames', '?')} f @ {e.get('fps', '?')} fps")
    if e.get("steps") is not None:
        parts.append(f"{e['steps']} steps")
    if e.get("guidance") is not None:
        parts.append(f"{e.get('guidance_kind') or 'guidance'} {e['guidance']:g}")
    for key in ("scheduler", "shift"):
        if e.get(key) is not None:
            parts.append(f"{key} {e[key]}")
    for key in ("memory_plan", "profile", "source"):
        if getattr(settings, key):
            parts.append(f"{key.replace('_', ' ')} {getattr(settings, key)}")
    parts += [LEVERS[name] for name, done in settings.levers.items() if done.startswith(("on", "threshold"))]
    return ", ".join(parts) or "n/a"


# --- images -------------------------------------------------------------------------------------------


def jpeg_bytes(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def side_by_side(images: list[np.ndarray], gap: int = 4) -> Image.Image:
    """Frames in a row at the first one's height, `gap` px apart on a dark ground."""
    height = images[0].shape[0]
    tiles = [Image.fromarray(a).resize((round(a.shape[1] * height / a.shape[0]), height)) for a in images]
    strip = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height), (24, 24, 24))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + gap
    return strip


def contact_sheet_image(run_dir: Path, thumb_width: int = 240, columns: int = 3) -> Image.Image:
    """Each clip's first frame (decoded) and last frame (the PNG), labelled, `columns` clips to a row."""
    logs = read_logs(run_dir)
    if not logs:
        raise ReportError(f"{run_dir}: no finished clip (logs/log_000.json is missing)")
    label_h, gap = 16, 12
    cells = []
    for log in logs:
        width, height = log.params.width, log.params.height
        first = m.decode(run_dir / log.clip_file.path, width, height, limit=1)[0]
        last = m.load_rgb(run_dir / log.last_frame.path)
        thumb_h = max(1, round(thumb_width * height / width))
        pair = side_by_side([np.asarray(Image.fromarray(f).resize((thumb_width, thumb_h))) for f in (first, last)])
        cell = Image.new("RGB", (pair.width, pair.height + label_h), (24, 24, 24))
        cell.paste(pair, (0, label_h))
        ImageDraw.Draw(cell).text((2, 2), f"clip {log.clip}: first | last", fill=(230, 230, 230))
        cells.append(cell)
    columns = min(columns, len(cells))
    rows = math.ceil(len(cells) / columns)
    cell_w, cell_h = max(c.width for c in cells), max(c.height for c in cells)
    sheet = Image.new("RGB", (columns * cell_w + (columns - 1) * gap, rows * cell_h + (rows - 1) * gap), (24, 24, 24))
    for i, cell in enumerate(cells):
        sheet.paste(cell, ((i % columns) * (cell_w + gap), (i // columns) * (cell_h + gap)))
    return sheet


def contact_sheet(run_dir: Path, dest: Path, thumb_width: int = 240) -> Path:
    """A JPEG grid of each clip's first and last frame (first decoded from the clip, last the lossless PNG)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(jpeg_bytes(contact_sheet_image(Path(run_dir), thumb_width)))
    return dest


# --- one run ------------------------------------------------------------------------------------------


def reference_frame(run_dir: Path, logs: list[ClipLog], reference: Path | None) -> tuple[np.ndarray | None, str]:
    """The colour and sharpness reference: the given image, else clip 0's first frame decoded (unbiased)."""
    if reference is not None:
        return m.load_rgb(reference), f"{Path(reference).name} (given)"
    if not logs:
        return None, "none (no clip)"
    params = logs[0].params
    frame = m.decode(run_dir / logs[0].clip_file.path, params.width, params.height, limit=1)[0]
    return frame, "clip 0's first frame, decoded (no reference image given)"


def seam_numbers(index: int, left: dict, right: dict) -> tuple[dict, np.ndarray]:
    """Seam `index` from clip i's edge frames and series (`left`) to clip i+1's (`right`), and the first frame of
    clip i+1 the film shows (its frame 0 repeats the hand-off and is dropped by the stitch).

    Its reference: the consecutive-frame pairs nearest the seam inside the two clips (SEAM_CONTEXT each side;
    clip i+1's pair 0→1 left out, it is the seam again), so that a clip that slows down at its ends (eased
    camera moves) is judged against its own pace there, not against its middle."""
    shown = right["head"][1] if len(right["head"]) > 1 else right["head"][0]
    ssim, psnr = m.ssim(left["last"], shown), m.psnr(left["last"], shown)
    near = {
        key: left["series"][key][-SEAM_CONTEXT:] + right["series"][key][1 : SEAM_CONTEXT + 1]
        for key in ("ssim", "psnr")
    }
    lightness_left, lightness_right = left["series"]["lightness"], right["series"]["lightness"]
    steps_near = np.abs(
        np.concatenate([np.diff(lightness_left)[-SEAM_CONTEXT:], np.diff(lightness_right)[1 : SEAM_CONTEXT + 1]])
    )
    jumps = np.abs(np.diff(lightness_left[-1:] + lightness_right[1 : FLASH_WINDOW + 1]))
    ssim_near = statistics.median(near["ssim"]) if near["ssim"] else None
    psnr_near = statistics.median(near["psnr"]) if near["psnr"] else None
    flash_jump = float(jumps.max()) if len(jumps) else 0.0
    seam = {
        "seam": index,
        "ssim": ssim,
        "psnr_db": psnr,
        "near_ssim_median": ssim_near,
        "near_psnr_median_db": psnr_near,
        "ssim_ratio": ssim / ssim_near if ssim_near else None,
        "psnr_drop_db": psnr_near - psnr if psnr_near is not None else None,
        "handoff_psnr_db": m.psnr(left["last"], right["head"][0]),  # clip i+1's frame 0 vs its input (both decoded)
        "flash_jump_l": flash_jump,
        "flash_ratio": flash_jump / max(float(np.median(steps_near)) if len(steps_near) else 0.0, FLASH_FLOOR),
    }
    return seam, shown


def analyse_clips(run_dir: Path, logs: list[ClipLog], reference: np.ndarray | None) -> tuple[list, list, dict]:
    """Per clip and per seam numbers (unrounded), the lightness series of the film as cut, and the seam strip
    images."""
    clips, edges, references = [], [], {}
    for log in logs:
        width, height = log.params.width, log.params.height
        frames = m.decode(run_dir / log.clip_file.path, *m.analysis_size(width, height))
        series = m.clip_series(frames)
        last = m.load_rgb(run_dir / log.last_frame.path)
        if last.shape not in references:  # the reference at this frame size: its mean colour and sharpness
            ref = m.fit(reference, last.shape[1], last.shape[0])
            references[last.shape] = (m.mean_lab(ref), m.laplacian_variance(ref))
        (ref_lab, ref_sharp), lab, sharp = references[last.shape], m.mean_lab(last), m.laplacian_variance(last)
        clips.append(
            {
                "clip": log.clip,
                "frames_decoded": len(frames),
                "seconds_generating": log.timings_s.clip_total,
                "intra_ssim_median": statistics.median(series["ssim"]) if series["ssim"] else None,
                "intra_psnr_median_db": statistics.median(series["psnr"]) if series["psnr"] else None,
                "flicker": float(np.mean(m.luma_flicker(series["lightness"]))) if len(frames) > 2 else None,
                "mean_abs_frame_diff": float(np.mean(series["mad"])) if series["mad"] else None,
                "delta_e2000": m.delta_e2000(lab, ref_lab),
                "delta_e76": m.delta_e76(lab, ref_lab),
                "lightness": float(lab[0]),
                "chroma": float(np.hypot(lab[1], lab[2])),
                "sharpness": sharp,
                "sharpness_ratio": sharp / max(ref_sharp, 1e-9),
            }
        )
        edges.append({"series": series, "head": frames[:2].copy(), "last": frames[-1].copy()})
    seams, strips = [], []
    for i in range(len(edges) - 1):
        seam, shown = seam_numbers(i, edges[i], edges[i + 1])
        seams.append(seam)
        strips.append(jpeg_bytes(side_by_side([edges[i]["last"], shown])))
    fps = logs[0].params.fps if logs else 24
    film = [v for i, e in enumerate(edges) for v in (e["series"]["lightness"][0 if i == 0 else 1 :])]
    starts = np.cumsum([0] + [len(e["series"]["lightness"]) - (0 if i == 0 else 1) for i, e in enumerate(edges)])
    series = FilmLightness(fps=fps, lightness=[round(v, 3) for v in film], seam_frames=[int(s) for s in starts[1:-1]])
    return clips, seams, {"series": series, "strips": strips}


def mean_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def rounded(row: dict, digits: int = 4) -> dict:
    """The row's floats rounded for the report (None where not finite)."""
    return {key: num(value, digits) if isinstance(value, float) else value for key, value in row.items()}


def analyse_run(run_dir: Path, reference: Path | None = None) -> tuple[RunRow, dict]:
    """Everything the report says about one run, and its images (kept out of the JSON)."""
    run_dir = Path(run_dir).resolve()
    manifest, job, logs = read_run(run_dir)
    ref, reference_note = reference_frame(run_dir, logs, reference)
    clips, seams, extra = analyse_clips(run_dir, logs, ref)
    video_s = film_seconds(manifest, logs)
    totals = [log.timings_s.clip_total for log in logs]
    load_s = logs[0].timings_s.load if logs else None
    generation_s = (load_s or 0.0) + sum(totals) if logs else None
    provider = (job.get("infrastructure") or {}).get("provider", "local")
    cost = read_cost(run_dir, provider)
    if cost.get("usd_per_video_s") is None and cost.get("usd_total") is not None and video_s:
        cost["usd_per_video_s"] = cost["usd_total"] / video_s
    vram = [log.peak_vram_bytes for log in logs if log.peak_vram_bytes]
    planned = manifest.clips.planned or len(logs) or 1
    settings = settings_of(job, logs, manifest)
    values = {
        "completion": len(logs) / planned,
        "seam_ssim_ratio": mean_of(seams, "ssim_ratio"),
        "seam_psnr_drop_db": mean_of(seams, "psnr_drop_db"),
        "flash": max((s["flash_ratio"] for s in seams), default=None),
        "flicker": mean_of(clips, "flicker"),
        "color_drift": mean_of(clips, "delta_e2000"),
        "sharpness_slope": m.slope([c["sharpness_ratio"] for c in clips]) if clips else None,
        "speed": generation_s / video_s if generation_s is not None and video_s else None,
        "cost": cost.get("usd_per_video_s"),
    }
    frame_diff = mean_of(clips, "mean_abs_frame_diff")
    run = RunRow(
        run_id=manifest.run_id,
        run_dir=str(run_dir),
        model=manifest.model.id,
        model_info=manifest.model,
        title=manifest.title,
        provider=provider,
        settings=settings,
        settings_text=settings_text(settings),
        guardrails=manifest.guardrails,
        clips_finished=len(logs),
        clips_planned=planned,
        timing=Timing(
            clip_s_mean=num(float(np.mean(totals))) if totals else None,
            clip_s_max=num(max(totals)) if totals else None,
            load_s=num(load_s),
            generation_s=num(generation_s),
            generation_wall_s=num(seconds_between(logs[0].started_at, logs[-1].finished_at) + (load_s or 0.0))
            if logs
            else None,
            run_wall_s=num(seconds_between(manifest.created_at, manifest.bundled_at)),
            video_s=num(video_s),
        ),
        cost=rounded(cost, 6),
        peak_vram_gib=num(max(vram) / 2**30, 2) if vram else None,
        reference=reference_note,
        clips=[ClipRow(**rounded(c)) for c in clips],
        seams=[SeamRow(**rounded(s)) for s in seams],
        vbench_temporal_flickering=num((255 - frame_diff) / 255) if frame_diff is not None else None,
        film_lightness=extra["series"],
        metrics={k: num(v, 6) for k, v in values.items()},
    )
    return run, {"strips": extra["strips"]}


# --- the score -----------------------------------------------------------------------------------------


def check_weights(weights: dict, where: str) -> dict[str, float]:
    if not isinstance(weights, dict):
        raise ReportError(f"{where}: report weights are a mapping of metric → weight")
    checked = {}
    for key, value in weights.items():
        if key not in METRIC_BY_KEY:
            known = ", ".join(METRIC_BY_KEY)
            raise ReportError(f"{where}: unknown metric '{key}' in the weights; the metrics are {known}")
        try:
            weight = float(value)
        except (TypeError, ValueError):
            raise ReportError(f"{where}: weight {key}={value!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ReportError(f"{where}: weight {key}={value!r} must be a number ≥ 0")
        checked[key] = weight
    return checked


def parse_weights(items: list[str]) -> dict[str, float]:
    """`KEY=W` strings (the command line's --weights) → {metric: weight}."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ReportError(f"--weights {item!r}: write KEY=W, e.g. color_drift=3")
        pairs[key.strip()] = value.strip()
    return check_weights(pairs, "--weights")


def resolve_weights(jobs: list[tuple[str, dict]], weights: dict | None) -> tuple[dict[str, float], str]:
    """Defaults, then the first job.yaml's report_weights, then the caller's; with where they came from."""
    resolved, source = dict(DEFAULT_WEIGHTS), "defaults (report/compare.py)"
    for run_id, job in jobs:
        if job.get("report_weights"):
            resolved |= check_weights(job["report_weights"], f"{run_id}/job.yaml report_weights")
            source += f" + report_weights of {run_id}/job.yaml"
            break
    if weights:
        resolved |= check_weights(weights, "weights")
        source += " + given weights"
    return resolved, source


def normalise(values: list[float | None], metric: Metric) -> list[float | None]:
    """1 for the best run, down to 0 for the worst (see the module docstring); None where a run has no value."""
    known = [v for v in values if v is not None]
    if not known:
        return [None] * len(values)
    best = max(known) if metric.higher_is_better else min(known)
    spread = max(max(known) - min(known), metric.tolerance)
    return [None if v is None else 1 - abs(best - v) / spread for v in values]


def score_runs(runs: list[RunRow], weights: dict[str, float]) -> tuple[list[str], list[str]]:
    """Fill each run's `normalised` and `score`; returns the metrics used and those left out (with why)."""
    used, left_out = [], []
    for metric in METRICS:
        values = [run.metrics[metric.key] for run in runs]
        if weights.get(metric.key, 0) <= 0:
            left_out.append(f"{metric.key}: weight 0")
        elif all(v is None for v in values):
            left_out.append(f"{metric.key}: no run has a value")
        elif metric.missing == "exclude" and any(v is None for v in values):
            lacking = ", ".join(r.run_id for r, v in zip(runs, values, strict=True) if v is None)
            left_out.append(f"{metric.key}: n/a for {lacking}")
        else:
            used.append(metric.key)
            for run, n in zip(runs, normalise(values, metric), strict=True):
                run.normalised[metric.key] = num(0.0 if n is None else n)
    total = sum(weights[k] for k in used)
    for run in runs:
        gained = sum(weights[k] * run.normalised[k] for k in used)
        run.score = num(100 * gained / total, 2) if total else None
    return used, left_out


def winner_of(runs: list[RunRow]) -> str | None:
    """The best score's model id (its run id where two runs share the model); the first run on a tie."""
    scored = [r for r in runs if r.score is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r.score)
    models = [r.model for r in runs]
    return best.model if best.model and models.count(best.model) == 1 else best.run_id


# --- the report ----------------------------------------------------------------------------------------


def film_of(runs: list[RunRow], reference: Path | None, out_dir: Path) -> Film | None:
    """out_dir/comparison.mp4 (report/film.py) of the reference and the runs' final videos; None where no run has
    a final video. The reference tile: the given image, else the first run's clip 0 first frame, decoded."""
    from report.page import display_names

    if not any(final_video(run).is_file() for run in runs):
        return None
    first = next((run for run in runs if run.clips_finished), runs[0])
    logs = read_logs(Path(first.run_dir))
    image, _ = reference_frame(Path(first.run_dir), logs, reference)
    label = (
        f"{Path(reference).name} (given), a still" if reference else f"{first.run_id}: clip 0's first frame, a still"
    )
    try:
        return comparison_film(runs, display_names(runs), image, label, out_dir)
    except FfmpegError as exc:  # a final video that won't decode
        raise ReportError(f"{out_dir / FILM_NAME}: {exc}") from None


def compare_runs(
    run_dirs: list[Path],
    out_dir: Path,
    reference: Path | None = None,
    weights: dict[str, float] | None = None,
    *,
    night: NightCost | None = None,
) -> dict:
    """Compare finished runs; writes out_dir/report.html, report.json, report.md, and comparison.mp4 where a run
    has a final video (report/film.py). `night`: the overnight's cost (<night>/night.cost.json), shown as it is
    (not scored; each run's own cost is); None for runs compared loose.

    Returns {"html": Path, "json": Path, "markdown": str, "runs": [each run as report.json holds it], "winner":
    model or run id, "film": the comparison film's Path or None}."""
    from report.page import html_page, markdown_text

    if not run_dirs:
        raise ReportError("no run directory to compare")
    if reference is not None and not Path(reference).is_file():
        raise ReportError(f"--reference {reference}: no such image")
    analysed = []
    for run_dir in run_dirs:
        try:
            analysed.append(analyse_run(Path(run_dir), reference))
        except (FfmpegError, OSError) as exc:  # a clip that won't decode, a file missing from the run
            raise ReportError(f"{run_dir}: {exc}") from None
    runs = [run for run, _ in analysed]
    jobs = [(run.run_id, read_run(Path(run.run_dir))[1]) for run in runs]
    resolved, source = resolve_weights(jobs, weights)
    used, left_out = score_runs(runs, resolved)
    winner = winner_of(runs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    film = film_of(runs, reference, out_dir)
    report = Report(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        title=next((r.title for r in runs if r.title), "runs"),
        winner=winner,
        reference=f"{Path(reference).name} (given)" if reference else "each run's clip 0 first frame, decoded",
        decode=DECODE_NOTE,
        normalisation=NORMALISATION,
        weights=resolved,
        weights_source=source,
        metrics_used=used,
        metrics_left_out=left_out,
        metrics=METRICS,
        runs=runs,
        night=night,
        film=film.path.name if film else None,
        film_held_s=film.held_s if film else {},
    )
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    data = report.model_dump(mode="json")
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))
    markdown = markdown_text(report)
    (out_dir / "report.md").write_text(markdown)
    images = {}
    for run, extra in zip(runs, [e for _, e in analysed], strict=True):
        sheet = jpeg_bytes(contact_sheet_image(Path(run.run_dir))) if run.clips_finished else None
        images[run.run_id] = {"contact": sheet, "strips": extra["strips"]}
    html_path.write_text(html_page(report, images, out_dir))
    return {
        "html": html_path,
        "json": json_path,
        "markdown": markdown,
        "runs": data["runs"],
        "winner": winner,
        "film": film.path if film else None,
    }
