"""Colour matching of a chained input image to a fixed anchor (the reference image), in CIELAB.

Reinhard transfer: each LAB channel's mean and standard deviation moved toward the anchor's, by `strength`.
Matching to the fixed reference, not to the previous clip, stops drift instead of following it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_M_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) → CIELAB (D65) float64."""
    c = rgb.astype(np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _M_RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) → uint8 sRGB, clipped to the gamut."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE_D65
    linear = np.clip(xyz @ np.linalg.inv(_M_RGB_TO_XYZ).T, 0, 1)
    c = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255), 0, 255).astype(np.uint8)


def mean_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """ΔE76 between the mean LAB colours of two LAB images."""
    return float(np.linalg.norm(a.reshape(-1, 3).mean(0) - b.reshape(-1, 3).mean(0)))


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
