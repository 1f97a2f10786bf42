"""Sampling, crop boxes, flips, normalisation and flow stacks vs hand-computed values (docs/differences.md
§4.2, §5)."""

import numpy as np
import pytest
from PIL import Image

from lsta_jax.data import transforms as T


def test_sampling_is_floor_of_linspace_from_one():
    assert T.sample_indices(25, 25).tolist() == list(range(1, 26))
    # N = 10 < 25: 1 + 0.375 k floored (repeats)
    expected = [1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 10]
    assert T.sample_indices(10, 25).tolist() == expected
    # N = 100: 1 + 4.125 k floored
    assert T.sample_indices(100, 25).tolist()[:4] == [1, 5, 9, 13] and T.sample_indices(100, 25)[-1] == 100
    assert T.sample_indices(5, 3).tolist() == [1, 3, 5]
    with pytest.raises(ValueError, match="0 frames"):
        T.sample_indices(0, 25)


def test_scale_shorter_side_with_int_of_the_long_side():
    assert T.scale_size(720, 405, 256) == (455, 256)  # int(256 * 720 / 405) = int(455.1)
    assert T.scale_size(405, 720, 256) == (256, 455)
    assert T.scale_size(300, 300, 256) == (256, 256)
    image = Image.new("RGB", (340, 256))
    assert T.scale(image, 256) is image  # already at size: untouched (no resampling)
    assert T.scale(Image.new("RGB", (640, 480)), 256).size == (341, 256)


def test_centre_crop_uses_python3_round():
    assert T.center_crop_box(340, 256, 224) == (58, 16, 282, 240)
    assert T.center_crop_box(341, 257, 224) == (58, 16, 282, 240)  # 58.5 -> 58, 16.5 -> 16 (banker's)
    assert T.center_crop_box(343, 259, 224) == (60, 18, 284, 242)  # 59.5 -> 60, 17.5 -> 18


@pytest.mark.parametrize(
    "scale, expected",
    [
        (1.0, {"c": (42, 0, 298, 256), "tl": (0, 0, 256, 256), "tr": (84, 1, 340, 256),
               "bl": (1, 0, 256, 256),
               "br": (84, 0, 340, 256)}),
        (0.875, {"c": (58, 16, 282, 240), "tl": (0, 0, 224, 224), "tr": (116, 1, 340, 224),
                 "bl": (1, 32, 224, 256), "br": (116, 32, 340, 256)}),
        (0.75, {"c": (74, 32, 266, 224), "tl": (0, 0, 192, 192), "tr": (148, 1, 340, 192),
                "bl": (1, 64, 192, 256), "br": (148, 64, 340, 256)}),
        (0.65625, {"c": (86, 44, 254, 212), "tl": (0, 0, 168, 168), "tr": (172, 1, 340, 168),
                   "bl": (1, 88, 168, 256), "br": (172, 88, 340, 256)}),
    ],
)  # fmt: skip
def test_corner_crop_boxes_with_the_reference_quirks(scale, expected):
    for position, box in expected.items():
        assert T.corner_crop_box(340, 256, scale, position) == box, position


def test_corner_crop_box_rejects_unknown_position():
    with pytest.raises(ValueError, match="position"):
        T.corner_crop_box(340, 256, 1.0, "middle")


def test_draws_cover_all_scales_and_positions():
    rng = np.random.default_rng(0)
    draws = [T.draw_train_params(rng) for _ in range(400)]
    assert {d.scale for d in draws} == set(T.CORNER_CROP_SCALES)
    assert {d.position for d in draws} == set(T.CROP_POSITIONS)
    assert 150 < sum(d.flip for d in draws) < 250


def test_train_transform_flips_before_cropping_and_inverts_x_flow():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (72, 96), dtype=np.uint8)
    image = Image.fromarray(pixels)  # 'L' image, shorter side already 72
    draw = T.TrainDraw(flip=True, scale=1.0, position="tr")
    # flipped image, then the 'tr' box (96 - 72, 1, 96, 72), then resized 72x71 -> 72x72
    expected = Image.fromarray(pixels[:, ::-1].copy()).crop((24, 1, 96, 72)).resize((72, 72), Image.BILINEAR)
    got = T.train_transform(image, draw, crop_size=72, resize_shorter=72)
    assert np.array_equal(np.asarray(got), np.asarray(expected))
    got_x = T.train_transform(image, draw, crop_size=72, resize_shorter=72, invert_on_flip=True)
    # the x flow is inverted right after the flip, before the crop and the resize (RandomHorizontalFlip)
    inverted = Image.fromarray(255 - pixels[:, ::-1]).crop((24, 1, 96, 72)).resize((72, 72), Image.BILINEAR)
    assert np.array_equal(np.asarray(got_x), np.asarray(inverted))
    # no flip: the x flow is not inverted; 'tl' at scale 1 with crop 72 is the plain top-left square
    plain = T.train_transform(image, T.TrainDraw(False, 1.0, "tl"), 72, 72, invert_on_flip=True)
    assert np.array_equal(np.asarray(plain), pixels[:, :72])


def test_normalisation_values():
    x = np.array([[0, 0, 0], [255, 255, 255], [128, 64, 32]], np.uint8)
    got = T.normalize_rgb(x)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, (x / 255.0 - mean) / std, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[0, 0], -2.1179039, atol=1e-6)  # -0.485 / 0.229
    flow = T.normalize_flow(np.array([0, 128, 255], np.uint8))
    np.testing.assert_allclose(flow, (np.array([0, 128, 255]) / 255.0 - 0.449) / 0.226, atol=1e-6)


def test_flow_stack_starts_and_interleaving():
    assert T.flow_eval_start(10) == 3 and T.flow_eval_start(11) == 3 and T.flow_eval_start(12) == 4
    rng = np.random.default_rng(0)
    starts = {T.flow_train_start(9, rng) for _ in range(200)}
    assert starts == {1, 2, 3, 4}  # randint(1, N - 5) inclusive
    with pytest.raises(ValueError, match="at least 6"):
        T.flow_eval_start(5)
    xs = [np.full((2, 2), 10 * i, np.uint8) for i in range(5)]
    ys = [np.full((2, 2), 10 * i + 1, np.uint8) for i in range(5)]
    stack = T.interleave_flow(xs, ys)
    assert stack.shape == (2, 2, 10) and stack[0, 0].tolist() == [0, 1, 10, 11, 20, 21, 30, 31, 40, 41]
