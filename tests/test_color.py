"""The colour science of the colour match and the report: sRGB ↔ CIELAB (D65, 2°) and CIEDE2000."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from remote.color import lab_to_rgb, match_colors, rgb_to_lab
from report.metrics import delta_e2000, mean_lab

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes, supplementary test
# data, and mathematical observations", Table 1: the 34 pairs, (L1, a1, b1), (L2, a2, b2) and the published ΔE00.
SHARMA_TABLE_1 = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA_TABLE_1, ids=[f"pair {i + 1}" for i in range(34)])
def test_ciede2000_reproduces_sharmas_table_1(lab1: tuple, lab2: tuple, expected: float) -> None:
    assert delta_e2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=5e-5)  # 4 decimals
    assert delta_e2000(np.array(lab2), np.array(lab1)) == pytest.approx(expected, abs=5e-5)  # symmetric


def test_srgb_to_lab_is_d65_with_the_2_degree_observer() -> None:
    """sRGB primaries, white and black in CIELAB under D65 (2°); under D50 red would be (54.29, 80.80, 69.89)."""
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]], dtype=np.uint8)
    expected = [
        (53.2408, 80.0925, 67.2032),
        (87.7347, -86.1827, 83.1793),
        (32.2970, 79.1875, -107.8602),
        (100, 0, 0),
        (0, 0, 0),
    ]
    np.testing.assert_allclose(rgb_to_lab(rgb), expected, atol=0.01)
    assert rgb_to_lab(rgb).dtype == np.float64


def test_srgb_to_lab_and_back_gives_every_uint8_colour_back() -> None:
    levels = np.arange(0, 256, 15)  # 0, 15, …, 255: 18 levels per channel, 5,832 colours
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.uint8)
    back = lab_to_rgb(rgb_to_lab(grid))
    assert back.dtype == np.uint8 and back.shape == grid.shape
    np.testing.assert_array_equal(back, grid)


def test_lab_outside_the_gamut_is_clipped_to_the_nearest_code_values() -> None:
    back = lab_to_rgb(np.array([[120.0, 0, 0], [-5.0, 0, 0], [50.0, 0, 400.0]]))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back[0], [255, 255, 255])
    np.testing.assert_array_equal(back[1], [0, 0, 0])
    assert back[2][2] == 0  # far yellower than sRGB can show: no blue at all


def test_match_colors_returns_an_image_of_the_same_size_and_its_log() -> None:
    reference = Image.open(REPO / "jobspecs" / "espresso.png")
    image = Image.fromarray((np.asarray(reference.convert("RGB")) * [0.6, 0.8, 1.0]).astype(np.uint8))  # bluer
    matched, log = match_colors(image, reference, 0.5)
    assert isinstance(matched, Image.Image) and matched.mode == "RGB" and matched.size == image.size
    assert set(log) == {"method", "strength", "delta_e_before", "delta_e_after"}
    assert log["method"] == "reinhard-lab" and log["strength"] == 0.5
    assert 0 < log["delta_e_after"] < log["delta_e_before"]
    distance = np.linalg.norm(mean_lab(np.asarray(matched)) - mean_lab(np.asarray(reference.convert("RGB"))))
    assert distance == pytest.approx(log["delta_e_after"], abs=1e-3)  # ΔE76 of the mean colours, as logged


def test_match_colors_at_strength_0_leaves_the_image_as_it_was() -> None:
    reference = Image.open(REPO / "jobspecs" / "espresso.png")
    image = Image.fromarray(np.asarray(reference.convert("RGB"))[::-1, :, [2, 1, 0]].copy())
    matched, log = match_colors(image, reference, 0.0)
    assert np.abs(np.asarray(matched, dtype=int) - np.asarray(image, dtype=int)).max() <= 1
    assert log["delta_e_after"] == pytest.approx(log["delta_e_before"], abs=0.01)
