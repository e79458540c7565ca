"""The report's two faces: markdown (report.md, the Prefect artifact) and one self-contained HTML page.

The page references nothing outside itself but the videos: images are inline base64 JPEGs, plots are inline SVG
drawn here, the players' script is inline; the videos (the comparison film and each run's final video) are loaded
by paths relative to the page's folder, and a player whose file is missing says so.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from urllib.parse import quote

from jobspecs.contracts import Metric, NightCost, Report, RunRow
from jobspecs.schema import OUTPUT_FPS
from report.compare import METRICS
from report.film import FINAL_VIDEO, final_video

DASHES = ["none", "6 3", "2 2", "9 3 2 3"]
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 4px 0 12px; }
.winner { background: #e8f6e8; }
figure { display: inline-block; margin: 0 16px 12px 0; }
figure img { width: 360px; margin: 0 0 4px; }
figcaption, .note { color: #555; font-size: 12px; }
figure.film video { width: 560px; background: #111; display: block; }
figure.film.grid video { width: 100%; max-width: 1200px; }
.missing { color: #b00; font-weight: bold; }
kbd { border: 1px solid #bbb; border-radius: 3px; padding: 0 4px; font-size: 12px; }
"""


def display_names(runs: list[RunRow]) -> list[str]:
    """The model id, or model · run id where two runs share a model."""
    models = [r.model or r.run_id for r in runs]
    return [name if models.count(name) == 1 else f"{name} · {r.run_id}" for name, r in zip(models, runs, strict=True)]


def fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.0f}"
    return str(value)


def metric_label(metric: Metric) -> str:
    return f"{metric.label} ({metric.unit}, {'↑' if metric.higher_is_better else '↓'} better)"


def summary_rows(report: Report) -> list[tuple[str, list[str]]]:
    """(row label, one cell per run): what both the markdown and the HTML tables show."""

    def row(label: str, cells) -> tuple[str, list[str]]:
        return label, [cells(r) for r in report.runs]

    def guard(r: RunRow) -> str:
        return f"{r.guardrails.outcome}" + (f" — {r.guardrails.reason}" if r.guardrails.reason else "")

    rows = [
        row("model", lambda r: fmt(r.model)),
        row("run", lambda r: r.run_id),
        row("score (0–100)", lambda r: fmt(r.score, 4)),
        row("settings", lambda r: r.settings_text),
        row("guardrails", guard),
        row("clips finished", lambda r: f"{r.clips_finished}/{r.clips_planned}"),
        row("s per clip (mean / max)", lambda r: fmt(r.timing.clip_s_mean) + " / " + fmt(r.timing.clip_s_max)),
        row("model load s", lambda r: fmt(r.timing.load_s)),
        row("generation wall s", lambda r: fmt(r.timing.generation_wall_s)),
        row("run wall s (staged → bundled)", lambda r: fmt(r.timing.run_wall_s)),
        row("film s", lambda r: fmt(r.timing.video_s)),
        row("$ total", lambda r: fmt(r.cost.get("usd_total"))),
        row("$ per video s", lambda r: fmt(r.cost.get("usd_per_video_s"))),
        row("peak VRAM GiB", lambda r: fmt(r.peak_vram_gib)),
    ]
    for metric in METRICS:
        if metric.key not in ("completion", "cost"):
            rows.append(row(metric_label(metric), lambda r, k=metric.key: fmt(r.metrics[k])))
    rows.append(row("VBench temporal flickering (info, ↑)", lambda r: fmt(r.vbench_temporal_flickering, 4)))
    return rows


PLACEMENTS = {
    "parallel": "one instance per model, each with its own setup and download",
    "one-box": "one instance for every model: its setup and the downloads are paid once and split evenly into the "
    "runs' costs",
}
NO_COST = "—"  # a model whose run made no cost file


def usd(value: float | None) -> str:
    """Dollars to the cent ($1.23); a fraction of a cent to 4 places ($0.0042), so it does not read as $0.00."""
    if value is None:
        return NO_COST
    return f"${value:.4f}" if 0 < abs(value) < 0.01 else f"${value:.2f}"


def night_lines(night: NightCost) -> tuple[str, list[str], list[tuple[str, list[str]]], list[str]]:
    """The night's cost as both the markdown and the HTML show it: the placement sentence, the table's header (its
    first column's too) and rows (each labelled with the model's name), and the notes under it."""
    instances = f"{night.instances} instance{'s' if night.instances != 1 else ''}"
    placement = (
        f"Placement: {night.placement} — {PLACEMENTS[night.placement]}. {instances} rented in all (failed attempts "
        "and preempted ones included)."
    )
    header = ["model", "run", "state", "$"]
    rows = [(r.name, [r.run or "none", r.state, usd(r.usd_total)]) for r in night.runs]
    if night.placement == "one-box":
        rows.append(("shared: setup and downloads, already split into the runs' $", ["", "", usd(night.shared_usd)]))
    rows.append(("the night's total", ["", "", usd(night.usd_total)]))
    lacking = [r.name for r in night.runs if r.usd_total is None]
    notes = [f"$ {NO_COST}: {', '.join(lacking)} made no cost file."] if lacking else []
    if night.planned_parallel_usd is not None or night.planned_one_box_usd is not None:
        notes.append(
            "Planned before renting, on the same prices: parallel "
            f"{planned(night.planned_parallel_usd, 'not priced')}, one-box "
            f"{planned(night.planned_one_box_usd, 'not possible (no one box fits every model)')} (the planner's "
            "dollars: setup, downloads and runs)."
        )
    return placement, header, rows, notes


def planned(value: float | None, otherwise: str) -> str:
    return usd(value) if value is not None else otherwise


def night_markdown(night: NightCost) -> list[str]:
    placement, header, rows, notes = night_lines(night)
    lines = ["## The night's cost", "", placement, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for label, cells in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [label, *cells]) + " |")
    return [*lines, *(["", *notes] if notes else []), ""]


def night_html(night: NightCost) -> list[str]:
    placement, header, rows, notes = night_lines(night)
    out = ["<h2>The night's cost</h2>", f"<p>{html.escape(placement)}</p>", table(header[1:], rows, corner=header[0])]
    return out + [f'<p class="note">{html.escape(line)}</p>' for line in notes]


def notes(report: Report) -> list[str]:
    weights = ", ".join(f"{k}={v:g}" for k, v in report.weights.items())
    lines = [
        f"Colour and sharpness reference: {report.reference}.",
        report.decode,
        f"Score: {report.normalisation} (tolerance per metric in report.json).",
        f"Weights ({report.weights_source}): {weights}.",
    ]
    if report.metrics_left_out:
        lines.append("Left out of the score: " + "; ".join(report.metrics_left_out) + ".")
    return lines


def film_line(report: Report) -> str | None:
    """What the comparison film is, for both faces; None where there is none."""
    if report.film is None:
        return None
    held = [f"{run_id} {seconds:.2f} s" for run_id, seconds in report.film_held_s.items() if seconds > 0]
    padding = f" Shorter runs hold their last frame to the end: {', '.join(held)}." if held else ""
    return (
        f"Comparison film: {report.film}, beside this report: the reference (a still) and each run's final video "
        f"in one grid, all at {OUTPUT_FPS} fps from frame 0, each tile labelled with the model, profile and score."
        + padding
    )


def markdown_text(report: Report) -> str:
    runs = report.runs
    winner = next((r for r in runs if report.winner in (r.model, r.run_id)), None)
    lines = [f"# Shootout report — {report.title}", ""]
    if winner:
        lines.append(f"**Winner: {report.winner}** (score {fmt(winner.score, 4)} of 100), {len(runs)} runs compared.")
    lines += ["", "| | " + " | ".join(display_names(runs)) + " |", "|---" * (len(runs) + 1) + "|"]
    for label, cells in summary_rows(report):
        lines.append(f"| {label} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    if report.night is not None:
        lines += night_markdown(report.night)
    if line := film_line(report):
        lines += [line, ""]
    lines += [*(f"- {line}" for line in notes(report)), "", "Metrics:"]
    lines += [f"- `{x.key}`: {x.definition}" for x in report.metrics]
    return "\n".join(lines) + "\n"


# --- SVG ---------------------------------------------------------------------------------------------


def ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About `count` round tick values covering [low, high] (whole numbers only if `integer`)."""
    step = max((high - low) / max(count, 1), 1 if integer else 0)
    magnitude = 10 ** math.floor(math.log10(step)) if step > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def svg_plot(
    title: str,
    series: list[tuple[str, list[float], list[float | None]]],
    x_label: str,
    y_label: str,
    vlines: list[float] = (),
    width: int = 560,
    height: int = 240,
) -> str:
    """A line plot: one (label, xs, ys) per line, None gaps skipped; dashed vertical lines at `vlines`.

    The legend sits between the title and the plot; lines differ in colour and dash (they may overlap)."""
    left, right, top, bottom = 56, 12, 28 + 14 * len(series), 40
    height += 14 * len(series)
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=True) if y is not None]
    if not points:
        return f'<svg width="{width}" height="40"><text x="4" y="24">{html.escape(title)}: no data</text></svg>'
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (y1 - y0) * 0.08 or max(abs(y0) * 0.1, 0.1)
    y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    out = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f'<text x="{left}" y="15" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
        'fill="none" stroke="#999"/>',
    ]
    for y in ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" font-size="10" text-anchor="end">{y:.4g}</text>')
    for x in ticks(x0, x1, 8, integer=all(float(p[0]).is_integer() for p in points)):
        out.append(
            f'<text x="{sx(x):.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">{x:.4g}</text>'
        )
    for x in vlines:
        out.append(
            f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{height - bottom}" stroke="#bbb" '
            'stroke-dasharray="4 3"/>'
        )
    out.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" font-size="11" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    out.append(
        f'<text x="12" y="{(top + height - bottom) / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {(top + height - bottom) / 2})">{html.escape(y_label)}</text>'
    )
    for i, (label, xs, ys) in enumerate(series):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        style = f'fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}"'
        line = [(sx(x), sy(y)) for x, y in zip(xs, ys, strict=True) if y is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
        out.append(f'<polyline points="{path}" {style}/>')
        if len(line) <= 30:
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in line]
        y = 34 + 14 * i
        out.append(f'<line x1="{left}" x2="{left + 24}" y1="{y - 4}" y2="{y - 4}" {style}/>')
        out.append(f'<text x="{left + 30}" y="{y}" font-size="11" fill="{colour}">{html.escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# --- HTML --------------------------------------------------------------------------------------------


def img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/jpeg;base64,{base64.b64encode(data).decode()}">'


def table(header: list[str], rows: list[tuple[str, list[str]]], winner_col: int | None = None, corner: str = "") -> str:
    """Rows of (label, cells) under `header`; `corner` heads the labels' column."""

    def cls(i: int) -> str:
        return ' class="winner"' if i == winner_col else ""

    heads = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(header))
    out = [f"<table><tr><th>{html.escape(corner)}</th>{heads}</tr>"]
    for label, cells in rows:
        out.append(
            f"<tr><th>{html.escape(label)}</th>"
            + "".join(f"<td{cls(i)}>{html.escape(c)}</td>" for i, c in enumerate(cells))
            + "</tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def run_section(run: RunRow, name: str, images: dict) -> str:
    out = [
        f"<h3>{html.escape(run.model or '')} — <code>{html.escape(run.run_id)}</code></h3>",
        f"<p>{html.escape(run.settings_text)}</p>",
    ]
    if images.get("contact"):
        out += [
            '<p class="note">Each clip: first frame (decoded) | last frame (lossless PNG).</p>',
            img(images["contact"], f"contact sheet of {run.run_id}"),
        ]
    series = run.film_lightness
    if series.lightness:
        xs = [i / series.fps for i in range(len(series.lightness))]
        line = [(name, xs, series.lightness)]
        seams = [f / series.fps for f in series.seam_frames]
        out.append(svg_plot("mean L* per frame (seams dashed)", line, "film seconds (clips cut together)", "L*", seams))
    if run.seams:
        keys = ("ssim", "ssim_ratio", "psnr_db", "psnr_drop_db", "flash_jump_l", "flash_ratio", "handoff_psnr_db")
        rows = [(k, [fmt(getattr(s, k)) for s in run.seams]) for k in keys]
        out.append(table([f"seam {s.seam} → {s.seam + 1}" for s in run.seams], rows))
        out.append('<p class="note">Seam strips: last frame of clip i | first frame of clip i+1 shown in the film.</p>')
        for seam, strip in zip(run.seams, images["strips"], strict=True):
            out.append(
                f"<figure>{img(strip, f'seam {seam.seam}')}<figcaption>seam {seam.seam} → {seam.seam + 1}: SSIM "
                f"ratio {fmt(seam.ssim_ratio)}, flash {fmt(seam.flash_ratio)}×</figcaption></figure>"
            )
    return "\n".join(out)


# The players: one play/pause button and one slider for all; every player follows the first playable one's time
# (the comparison film, the longest, where it loads). `,` and `.` step one frame back and forward.
PLAYERS_SCRIPT = """
(() => {
  const FPS = %(fps)d;
  const videos = Array.from(document.querySelectorAll("video.sync"));
  const button = document.getElementById("films-play");
  const seek = document.getElementById("films-seek");
  const clock = document.getElementById("films-time");
  const live = () => videos.filter((v) => !v.error);
  const lead = () => live()[0];
  let playing = false;
  function show(t) {
    seek.value = t;
    clock.textContent = t.toFixed(2) + " s, frame " + Math.floor(t * FPS + 1e-6);
  }
  function place(v, t) {
    const target = Math.min(t, v.duration || t);
    if (Math.abs(v.currentTime - target) > 1e-3) v.currentTime = target;
  }
  function seekAll(t) {
    for (const v of live()) place(v, t);
    show(t);
  }
  function follow() {
    const first = lead();
    if (!first || !playing) return;
    const t = first.currentTime;
    for (const v of live().slice(1)) {
      const target = Math.min(t, v.duration || t);
      if (Math.abs(v.currentTime - target) > 2 / FPS) v.currentTime = target;
      if (v.paused && target < v.duration - 1 / FPS) v.play();
    }
    show(t);
    if (first.ended) stop();
    else requestAnimationFrame(follow);
  }
  function start() {
    playing = true;
    button.textContent = "pause";
    for (const v of live()) if (!(v.currentTime >= v.duration)) v.play();
    requestAnimationFrame(follow);
  }
  function stop() {
    playing = false;
    button.textContent = "play";
    for (const v of live()) v.pause();
    const first = lead();
    if (first) seekAll(first.currentTime);
  }
  function step(frames) {
    if (playing) stop();
    const first = lead();
    if (!first) return;
    const frame = Math.max(0, Math.floor(first.currentTime * FPS + 1e-6) + frames);
    seekAll(Math.min((frame + 0.5) / FPS, first.duration || Infinity));
  }
  button.addEventListener("click", () => (playing ? stop() : start()));
  seek.addEventListener("input", () => {
    if (playing) stop();
    seekAll(Number(seek.value));
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === ",") step(-1);
    if (event.key === ".") step(1);
  });
  for (const v of videos) {
    v.addEventListener("loadedmetadata", () => {
      const first = lead();
      if (first && first.duration) seek.max = first.duration;
    });
  }
})();
"""
SHOW_MISSING = "this.parentElement.querySelector('.missing').hidden = false"


def player(path: str, caption: str, grid: bool = False) -> str:
    """A muted player of the video at `path` (relative to the page's folder) that says so where it is missing."""
    return (
        f'<figure class="film{" grid" if grid else ""}"><video class="sync" src="{html.escape(quote(path))}" muted '
        f'preload="metadata" playsinline onerror="{SHOW_MISSING}"></video>'
        f'<figcaption>{html.escape(caption)}</figcaption><p class="missing" hidden>missing: {html.escape(path)}</p>'
        "</figure>"
    )


def films_html(report: Report, names: list[str], out_dir: Path) -> list[str]:
    """The films section: the comparison film and each run's final video, played in sync."""
    out = ["<h2>The films</h2>"]
    in_film = [(run, name) for run, name in zip(report.runs, names, strict=True) if run.run_id in report.film_held_s]
    without = [run.run_id for run in report.runs if run.run_id not in report.film_held_s]
    if report.film is None:
        return [*out, f"<p>No run has a final video ({FINAL_VIDEO}): no films to show.</p>"]
    sources = [(report.film, "comparison film: the reference and every run's final video")]
    for run, name in in_film:
        held = report.film_held_s[run.run_id]
        note = f"; {held:.2f} s shorter than the longest (the comparison film holds its last frame on)" if held else ""
        path = os.path.relpath(final_video(run), Path(out_dir).resolve())
        sources.append((path, f"{name} ({run.run_id}): {FINAL_VIDEO}{note}"))
    out += [
        f"<p>{html.escape(str(film_line(report)))}</p>",
        '<p><button id="films-play" type="button">play</button> '
        f'<input id="films-seek" type="range" min="0" max="0" step="{1 / OUTPUT_FPS:.6f}" value="0" '
        'aria-label="seek all films"> <span id="films-time">0.00 s, frame 0</span></p>',
        f'<p class="note">One button and one slider drive every player; every player follows the first one\'s time '
        "(the comparison film's, where it loads). "
        f"Keys: <kbd>,</kbd> one frame back, <kbd>.</kbd> one frame forward (1/{OUTPUT_FPS} s).</p>",
        f'<p class="note">The players expect these files, relative to this page\'s folder: '
        f"{html.escape(', '.join(path for path, _ in sources))}.</p>",
    ]
    if without:
        out.append(f'<p class="note">No final video ({FINAL_VIDEO}): {html.escape(", ".join(without))}.</p>')
    out += [player(path, caption, grid=i == 0) for i, (path, caption) in enumerate(sources)]
    out.append(f"<script>{PLAYERS_SCRIPT % {'fps': OUTPUT_FPS}}</script>")
    return out


def definition(x: Metric) -> str:
    return (
        f"<li><b>{html.escape(x.key)}</b> ({html.escape(x.unit)}, tolerance {x.tolerance:g}): "
        f"{html.escape(x.definition)}</li>"
    )


def html_page(report: Report, images: dict[str, dict], out_dir: Path) -> str:
    """The page, to be written into `out_dir` (the videos are found relative to it)."""
    runs = report.runs
    names = display_names(runs)
    winner_col = next((i for i, r in enumerate(runs) if report.winner in (r.model, r.run_id)), None)
    per_clip = []
    plots = [
        ("delta_e2000", "colour drift: ΔE00 of each clip's last frame vs the reference", "ΔE00"),
        ("sharpness_ratio", "sharpness: var(Laplacian) of each last frame / the reference's", "ratio"),
    ]
    for key, title, unit in plots:
        series = [
            (n, [c.clip for c in r.clips], [getattr(c, key) for c in r.clips]) for n, r in zip(names, runs, strict=True)
        ]
        per_clip.append(svg_plot(title, series, "clip", unit))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Shootout report — {html.escape(report.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Shootout report — {html.escape(report.title)}</h1>",
        f"<p>Winner: <b>{html.escape(str(report.winner))}</b>. {len(runs)} runs compared; generated "
        f"{html.escape(report.generated_at)}.</p>",
        "<h2>Summary</h2>",
        table(names, summary_rows(report), winner_col),
        *(night_html(report.night) if report.night is not None else []),
        *films_html(report, names, out_dir),
        "<h2>Per clip</h2>",
        *per_clip,
        "<h2>Runs</h2>",
        *(run_section(r, n, images.get(r.run_id, {})) for r, n in zip(runs, names, strict=True)),
        "<h2>How the numbers are made</h2>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in notes(report)) + "</ul>",
        "<ul>" + "".join(definition(x) for x in report.metrics) + "</ul>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
