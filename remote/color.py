"""Colour matching of a chained input image to a fixed anchor (the reference image), in CIELAB.

Reinhard transfer: each LAB channel's mean and standard deviation moved toward the anchor's, by `strength`.
Matching to the fixed reference, not to the previous clip, stops drift instead of following it.

The colour science is scikit-image's (`skimage.color`): sRGB (IEC 61966-2-1) ↔ CIELAB under illuminant D65 with
the 2° observer, its defaults.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image
from skimage.color import deltaE_cie76, lab2rgb, rgb2lab


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) → CIELAB (D65, 2°) float64: L* 0–100."""
    return rgb2lab(np.asarray(rgb, dtype=np.float64) / 255)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65, 2°) → uint8 sRGB, clipped to the gamut and rounded to the nearest code value."""
    with warnings.catch_warnings():  # lab2rgb warns each time it clips a colour outside XYZ (Z < 0): intended here
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(lab)  # 0–1
    return np.round(rgb * 255).astype(np.uint8)


def mean_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """ΔE76 between the mean LAB colours of two LAB images."""
    return float(deltaE_cie76(a.reshape(-1, 3).mean(0), b.reshape(-1, 3).mean(0)))


def match_colors(image: Image.Image, reference: Image.Image, strength: float) -> tuple[Image.Image, dict]:
    """`image` moved toward `reference`'s LAB statistics; the log records ΔE before and after."""
    lab = rgb_to_lab(np.asarray(image.convert("RGB")))
    ref = rgb_to_lab(np.asarray(reference.convert("RGB")))
    mean, std = lab.reshape(-1, 3).mean(0), lab.reshape(-1, 3).std(0) + 1e-6
    ref_mean, ref_std = ref.reshape(-1, 3).mean(0), ref.reshape(-1, 3).std(0)
    target_mean = mean + strength * (ref_mean - mean)
    target_std = std + strength * (ref_std - std)
    matched = lab_to_rgb((lab - mean) / std * target_std + target_mean)
    after = rgb_to_lab(matched)
    log = {
        "method": "reinhard-lab",
        "strength": strength,
        "delta_e_before": round(mean_delta_e(lab, ref), 3),
        "delta_e_after": round(mean_delta_e(after, ref), 3),
    }
    return Image.fromarray(matched), log
