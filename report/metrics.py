"""Weight-free quality metrics on decoded frames and the lossless last frames: numpy only, CPU.

Frames come from the clips through one ffmpeg pipe per video (rawvideo rgb24 on stdout), converted from
bt709 limited-range yuv420p with the accurate swscale flags of remote.ffmpeg: the default conversion darkens
every frame by ~1 RGB code value (anchors.md §2.3), which would read as colour drift. Motion metrics (SSIM,
PSNR, luma series) run on frames scaled to ANALYSIS_WIDTH; colour and sharpness use the full-size PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from remote.color import rgb_to_lab
from remote.ffmpeg import ACCURATE_SWS, run_ffmpeg

ANALYSIS_WIDTH = 320  # frames for SSIM, PSNR, flicker and flash are scaled to this width (never up)
SSIM_WINDOW = 7  # scikit-image's default: a 7×7 uniform window, sample covariance
PSNR_CAP_DB = 100.0  # identical frames: a finite PSNR, so medians and means stay numbers
LUMA = np.array([0.2126, 0.7152, 0.0722])  # BT.709 luma weights
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_SAMPLE = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)  # sample covariance, as scikit-image

_LINEAR = np.where(
    np.arange(256) / 255 <= 0.04045, np.arange(256) / 255 / 12.92, ((np.arange(256) / 255 + 0.055) / 1.055) ** 2.4
)  # sRGB code value → linear light, for every uint8


def analysis_size(width: int, height: int, target: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """width×height scaled to `target` wide (even sides, aspect kept); smaller videos keep their size."""
    if width <= target:
        return width - width % 2, height - height % 2
    return target, max(2, round(height * target / width / 2) * 2)


def decode(path: Path, width: int, height: int, limit: int | None = None) -> np.ndarray:
    """A video → (F, height, width, 3) uint8 RGB through one ffmpeg pipe, bt709 tv-range, unbiased.

    Scaled with area averaging (no aliasing when shrinking); accurate_rnd + full_chroma_int keep it unbiased."""
    scale = f"scale={width}:{height}:in_color_matrix=bt709:in_range=tv:flags=area+accurate_rnd+full_chroma_int"
    frames = ["-frames:v", str(limit)] if limit else []
    raw = run_ffmpeg(
        [
            "-i",
            str(path),
            "-vf",
            scale,
            "-fps_mode",
            "passthrough",
            *frames,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-sws_flags",
            ACCURATE_SWS,
            "-",
        ]
    )
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def fit(image: np.ndarray | Image.Image, width: int, height: int) -> np.ndarray:
    """Centre-crop to the aspect and resize (Lanczos), as the worker fits the reference to the clip."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.size == (width, height):
        return np.asarray(image.convert("RGB"))
    return np.asarray(ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS))


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.709 luma Y' (0–255, gamma-encoded) of uint8 RGB (..., H, W, 3)."""
    return rgb.astype(np.float64) @ LUMA


def mean_lightness(rgb: np.ndarray) -> float:
    """Mean CIE L* (0–100) of a uint8 sRGB image: relative luminance per pixel, then L*."""
    y = _LINEAR[rgb] @ LUMA
    f = np.where(y > (6 / 29) ** 3, np.cbrt(y), y / (3 * (6 / 29) ** 2) + 4 / 29)
    return float((116 * f - 16).mean())


def _window_mean(x: np.ndarray, k: int = SSIM_WINDOW) -> np.ndarray:
    """Mean over every k×k window fully inside x (an integral image)."""
    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def _ssim_stats(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A luma plane's window means and (sample) variances, reused by every pair the frame is in."""
    mean = _window_mean(y)
    return mean, (_window_mean(y * y) - mean * mean) * _SAMPLE


def _ssim_from(x: np.ndarray, y: np.ndarray, sx: tuple, sy: tuple) -> float:
    (mx, vx), (my, vy) = sx, sy
    vxy = (_window_mean(x * y) - mx * my) * _SAMPLE
    s = ((2 * mx * my + _C1) * (2 * vxy + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    return float(s.mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB frames on their luma (data range 255, 7×7 uniform window, as scikit-image)."""
    x, y = luma(a), luma(b)
    return _ssim_from(x, y, _ssim_stats(x), _ssim_stats(y))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over the RGB channels of two uint8 frames, capped at PSNR_CAP_DB."""
    diff = a.astype(np.int32) - b.astype(np.int32)
    mse = float(np.mean(diff * diff))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * np.log10(255**2 / mse))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames over all channels (0–255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def mean_lab(rgb: np.ndarray) -> np.ndarray:
    """The mean CIELAB (D65) colour of a uint8 sRGB image."""
    return rgb_to_lab(rgb).reshape(-1, 3).mean(0)


def delta_e76(lab1: np.ndarray, lab2: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(lab1) - np.asarray(lab2)))


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> float:
    """CIEDE2000 colour difference of two LAB colours (Sharma, Wu & Dalal 2005; kL = kC = kH = 1)."""
    l1, a1, b1 = (float(v) for v in lab1)
    l2, a2, b2 = (float(v) for v in lab2)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    dh = 0.0
    if c1p * c2p:
        dh = h2p - h1p
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    dh_big = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_mean = h1p + h2p
    if c1p * c2p:
        if abs(h1p - h2p) <= 180:
            h_mean = (h1p + h2p) / 2
        else:
            h_mean = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_mean, 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return float(np.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dh_big / s_h) ** 2 + r_t * (dc / s_c) * (dh_big / s_h)))


def laplacian_variance(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the luma (OpenCV's Laplacian, ksize 1): higher = sharper."""
    y = luma(rgb)
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.var())


def slope(values: list[float]) -> float:
    """Least-squares slope of values against their index (per clip); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    return float(np.polyfit(np.arange(len(values)), np.asarray(values, dtype=np.float64), 1)[0])


def clip_series(frames: np.ndarray) -> dict:
    """Per-frame mean L* and per consecutive pair SSIM, PSNR and mean abs difference of one clip's frames."""
    pairs = list(zip(frames[:-1], frames[1:], strict=True))
    lumas = [luma(f) for f in frames]
    stats = [_ssim_stats(y) for y in lumas]
    return {
        "lightness": [mean_lightness(f) for f in frames],
        "ssim": [_ssim_from(lumas[i], lumas[i + 1], stats[i], stats[i + 1]) for i in range(len(pairs))],
        "psnr": [psnr(a, b) for a, b in pairs],
        "mad": [mean_abs_diff(a, b) for a, b in pairs],
    }


def luma_flicker(lightness: list[float]) -> list[float]:
    """|L*_t − (L*_{t−1} + L*_{t+1}) / 2| per inner frame: the high-pass part of the mean-lightness series.

    A smooth change (a pan into a darker corner, a slow fade) is ~0; brightness that jumps and returns is not."""
    series = np.asarray(lightness, dtype=np.float64)
    if len(series) < 3:
        return []
    return list(np.abs(series[1:-1] - (series[:-2] + series[2:]) / 2))
