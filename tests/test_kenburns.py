"""kenburns renders the camera move the shot card asks for: direction, easing, determinism, frame 0."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from remote.models.kenburns import render

W, H, FRAMES = 320, 180, 25


def marker_image(x: float = 0.65, y: float = 0.4) -> Image.Image:
    """Black, with one bright disc at (x, y) (fractions of the size): easy to track."""
    image = Image.new("RGB", (W, H), "black")
    r = 8
    ImageDraw.Draw(image).ellipse((x * W - r, y * H - r, x * W + r, y * H + r), fill="white")
    return image


def centroid(frame: np.ndarray) -> np.ndarray:
    gray = frame.astype(float).mean(axis=2)
    gray[gray < 60] = 0
    ys, xs = np.indices(gray.shape)
    return np.array([(xs * gray).sum(), (ys * gray).sum()]) / gray.sum()


def motion(camera: str, **where: float) -> np.ndarray:
    frames = render(marker_image(**where), camera, FRAMES, 24, seed=1)
    return centroid(frames[-1]) - centroid(frames[0])


@pytest.mark.parametrize(
    ("camera", "axis", "sign"),
    [
        ("pan right", 0, -1),
        ("pan left", 0, 1),
        ("tilt up", 1, 1),
        ("tilt down", 1, -1),
        ("dolly right", 0, -1),
        ("dolly left", 0, 1),
    ],
)
def test_moves_shift_the_picture_the_right_way(camera: str, axis: int, sign: int) -> None:
    shift = motion(camera, x=0.5, y=0.5)
    assert sign * shift[axis] > 4, shift  # pixels, on a 320×180 frame
    assert abs(shift[axis]) > 3 * abs(shift[1 - axis])


def test_push_in_moves_off_centre_detail_outward_and_pull_out_inward() -> None:
    centre = np.array([W / 2, H / 2])
    start = centroid(np.asarray(marker_image()))
    push = np.linalg.norm(start + motion("push-in") - centre) - np.linalg.norm(start - centre)
    pull = np.linalg.norm(start + motion("pull-out") - centre) - np.linalg.norm(start - centre)
    assert push > 5 and pull < -5


def test_orbit_banks_and_travels_opposite_ways_for_left_and_right() -> None:
    image = marker_image(x=0.3)
    ImageDraw.Draw(image).ellipse((0.7 * W - 8, 0.4 * H - 8, 0.7 * W + 8, 0.4 * H + 8), fill="white")

    def bank_and_travel(camera: str) -> tuple[float, float]:
        first, last = render(image, camera, FRAMES, 24, seed=1)[[0, -1]]
        half = W // 2
        left = centroid(last[:, :half]) - centroid(first[:, :half])
        right = centroid(last[:, half:]) - centroid(first[:, half:])
        return right[1] - left[1], (right[0] + left[0]) / 2

    (bank_l, travel_l), (bank_r, travel_r) = bank_and_travel("orbit left"), bank_and_travel("orbit right")
    assert abs(bank_l) > 1 and np.sign(bank_l) == -np.sign(bank_r)
    assert abs(travel_l) > 1 and np.sign(travel_l) == -np.sign(travel_r)


def test_static_stays_put_but_breathes_and_differs_by_seed() -> None:
    image = marker_image()
    a, b = render(image, "static", FRAMES, 24, seed=1), render(image, "static", FRAMES, 24, seed=2)
    assert np.linalg.norm(centroid(a[-1]) - centroid(a[0])) < 3
    assert not np.array_equal(a[-1], a[0]) and not np.array_equal(a[-1], b[-1])


def test_frame_zero_is_the_input_and_the_render_is_deterministic() -> None:
    image = marker_image()
    a, b = render(image, "orbit right", FRAMES, 24, seed=5), render(image, "orbit right", FRAMES, 24, seed=5)
    assert a.shape == (FRAMES, H, W, 3) and a.dtype == np.uint8
    assert np.array_equal(a[0], np.asarray(image))
    assert np.array_equal(a, b)


def test_moves_ease_in_and_out() -> None:
    frames = render(marker_image(x=0.5, y=0.5), "pan right", FRAMES, 24, seed=1)
    xs = np.array([centroid(f)[0] for f in frames])
    steps = np.abs(np.diff(xs))
    assert steps[0] < steps[FRAMES // 2] / 3 and steps[-1] < steps[FRAMES // 2] / 3
