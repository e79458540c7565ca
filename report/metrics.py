"""Weight-free quality metrics on decoded frames and the lossless last frames: numpy and scikit-image, CPU.

Frames come from the clips through one ffmpeg pipe per video (rawvideo rgb24 on stdout), converted from
bt709 limited-range yuv420p with the accurate swscale flags of remote.ffmpeg: ffmpeg's default conversion darkens
every frame by ~1 RGB code value, which would read as colour drift. Motion metrics (SSIM, PSNR, luma series) run
on frames scaled to ANALYSIS_WIDTH; colour and sharpness use the full-size PNGs. The colour science (sRGB → CIELAB
under D65 with the 2° observer, ΔE) and SSIM/PSNR are scikit-image's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from skimage.color import deltaE_cie76, deltaE_ciede2000
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from remote.color import rgb_to_lab
from remote.ffmpeg import decode_frames

ANALYSIS_WIDTH = 320  # frames for SSIM, PSNR, flicker and flash are scaled to this width (never up)
SSIM_WINDOW = 7  # scikit-image's default: a 7×7 uniform window, sample covariance
PSNR_CAP_DB = 100.0  # identical frames: a finite PSNR, so medians and means stay numbers
LUMA = np.array([0.2126, 0.7152, 0.0722])  # BT.709 luma weights


def analysis_size(width: int, height: int, target: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """width×height scaled to `target` wide (even sides, aspect kept); smaller videos keep their size."""
    if width <= target:
        return width - width % 2, height - height % 2
    return target, max(2, round(height * target / width / 2) * 2)


def decode(path: Path, width: int, height: int, limit: int | None = None) -> np.ndarray:
    """A video → (F, height, width, 3) uint8 RGB through one ffmpeg pipe, bt709 tv-range, unbiased.

    Scaled with area averaging (no aliasing when shrinking); accurate_rnd + full_chroma_int keep it unbiased."""
    return decode_frames(path, width, height, scale_flags="area+accurate_rnd+full_chroma_int", limit=limit or 0)


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
    """Mean CIE L* (0–100) of a uint8 sRGB image."""
    return float(rgb_to_lab(rgb)[..., 0].mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB frames on their luma (data range 255, 7×7 uniform window, sample covariance)."""
    return ssim_of_luma(luma(a), luma(b))


def ssim_of_luma(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two luma planes (0–255): the mean over the windows that lie fully inside the frame."""
    return float(structural_similarity(x, y, win_size=SSIM_WINDOW, data_range=255))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over the RGB channels of two uint8 frames, capped at PSNR_CAP_DB."""
    if np.array_equal(a, b):
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, float(peak_signal_noise_ratio(a, b, data_range=255)))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames over all channels (0–255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def mean_lab(rgb: np.ndarray) -> np.ndarray:
    """The mean CIELAB (D65, 2°) colour of a uint8 sRGB image."""
    return rgb_to_lab(rgb).reshape(-1, 3).mean(0)


def delta_e76(lab1: np.ndarray, lab2: np.ndarray) -> float:
    """CIE76 colour difference of two LAB colours: their Euclidean distance."""
    return float(deltaE_cie76(lab1, lab2))


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> float:
    """CIEDE2000 colour difference of two LAB colours (Sharma, Wu & Dalal 2005; kL = kC = kH = 1)."""
    return float(deltaE_ciede2000(lab1, lab2))


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
    return {
        "lightness": [mean_lightness(f) for f in frames],
        "ssim": [ssim_of_luma(x, y) for x, y in zip(lumas[:-1], lumas[1:], strict=True)],
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
