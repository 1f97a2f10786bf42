"""Attention overlays (`lsta_jax.viz`): real PNG/GIF files of the documented size whose hot spot follows u_t.

Expectations are independent of the code under test: the colours come straight from matplotlib's colormap and
the blend rule (1 - alpha) * frame + alpha * colour; the normalisation is the ImageNet one written out here.
"""

import matplotlib
import numpy as np
import pytest
from PIL import Image

from lsta_jax import viz

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
T, H, W, h, w = 3, 44, 63, 4, 7  # odd cells (11 x 9 px): a pixel sits exactly on each cell centre
PEAKS = [(0, 0), (1, 4), (3, 6)]  # (row, column) of each frame's attention peak on the h x w grid


def peaked_maps() -> np.ndarray:
    """Softmax-like maps: small everywhere, one peak per frame at PEAKS[t]."""
    maps = np.full((T, h, w), 0.01, np.float32)
    for t, (i, j) in enumerate(PEAKS):
        maps[t, i, j] = 0.5
    return maps / maps.sum(axis=(1, 2), keepdims=True)


def cell_centre(i: int, j: int) -> tuple[int, int]:
    return i * (H // h) + H // h // 2, j * (W // w) + W // w // 2


def expected_colour(frame_value: float, map_value: float, alpha: float = viz.DEFAULT_ALPHA) -> np.ndarray:
    colour = np.array(matplotlib.colormaps["inferno"](map_value)[:3]) * 255
    return (1 - alpha) * frame_value + alpha * colour


def test_denormalize_undoes_the_imagenet_normalisation():
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    normalised = ((pixels / 255.0 - MEAN) / STD).astype(np.float32)
    np.testing.assert_array_equal(viz.denormalize(normalised), pixels)


def test_overlay_is_hottest_where_the_attention_peaks():
    frames = np.full((T, H, W, 3), 128, np.uint8)
    overlays = viz.overlay_clip(frames, peaked_maps())
    assert overlays.shape == (T, H, W, 3) and overlays.dtype == np.uint8
    for t, (i, j) in enumerate(PEAKS):
        y, x = cell_centre(i, j)
        # the peak cell shows the colormap's top colour, a cell far away its bottom colour
        np.testing.assert_allclose(overlays[t, y, x], expected_colour(128, 1.0), atol=1.5)
        far_i, far_j = (h - 1 - i, w - 1 - j) if (i, j) != (h - 1 - i, w - 1 - j) else (0, 0)
        fy, fx = cell_centre(far_i, far_j)
        np.testing.assert_allclose(overlays[t, fy, fx], expected_colour(128, 0.0), atol=1.5)
        # the brightest pixel of the whole frame lies inside the peak cell
        brightness = overlays[t].astype(float).sum(-1)
        by, bx = np.unravel_index(np.argmax(brightness), brightness.shape)
        assert int(by * h / H) == i and int(bx * w / W) == j


def test_a_constant_map_highlights_nothing():
    frames = np.full((1, H, W, 3), 60, np.uint8)
    overlays = viz.overlay_clip(frames, np.full((1, h, w), 1.0 / (h * w), np.float32))
    np.testing.assert_allclose(overlays[0], np.broadcast_to(expected_colour(60, 0.0), (H, W, 3)), atol=1.0)


def test_strip_indices_are_evenly_spaced_from_first_to_last():
    assert viz.strip_indices(25, 5).tolist() == [0, 6, 12, 18, 24]
    assert viz.strip_indices(3, 5).tolist() == [0, 1, 2]
    assert viz.strip_indices(7, 1).tolist() == [0]


@pytest.mark.parametrize("title", [None, "take_cup (0.93)"])
def test_strip_png_and_gif_have_the_documented_layout(tmp_path, title):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    clip = ((pixels / 255.0 - MEAN) / STD).astype(np.float32)
    png, gif = viz.write_overlays(
        tmp_path, "clip", viz.denormalize(clip), peaked_maps(), title=title, count=2, min_tile=0
    )

    strip = Image.open(png)
    assert strip.format == "PNG"
    top = viz.TITLE_HEIGHT if title else 0
    gap = viz.STRIP_GAP
    assert strip.size == (2 * W + gap, top + 2 * H + gap)  # (width, height): frames 0 and 2, two rows
    array = np.asarray(strip.convert("RGB"))
    # top row: the original frames (normalisation undone); bottom row: their overlays
    np.testing.assert_array_equal(array[top : top + H, :W], pixels[0])
    np.testing.assert_array_equal(array[top : top + H, W + gap :], pixels[2])
    overlays = viz.overlay_clip(pixels, peaked_maps())
    np.testing.assert_array_equal(array[top + H + gap :, W + gap :], overlays[2])

    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == T and animation.size == (W, H)


def test_small_frames_are_enlarged_to_a_visible_tile(tmp_path):
    assert viz.tile_factor(H, W, 128) == 3 and viz.tile_factor(224, 300, 128) == 1
    frames = np.random.default_rng(2).integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    png, gif = viz.write_overlays(tmp_path, "small", frames, peaked_maps(), count=5, min_tile=128)
    strip = np.asarray(Image.open(png).convert("RGB"))
    assert strip.shape == (2 * 3 * H + viz.STRIP_GAP, T * 3 * W + (T - 1) * viz.STRIP_GAP, 3)
    np.testing.assert_array_equal(strip[: 3 * H : 3, : 3 * W : 3], frames[0])  # nearest-neighbour enlargement
    assert Image.open(gif).size == (3 * W, 3 * H)


def test_gif_frames_are_hottest_in_the_attention_peak_cell(tmp_path):
    gif = viz.save_gif(
        tmp_path / "a.gif", viz.overlay_clip(np.full((T, H, W, 3), 100, np.uint8), peaked_maps())
    )
    animation = Image.open(gif)
    assert animation.n_frames == T
    for t, (i, j) in enumerate(PEAKS):
        animation.seek(t)
        brightness = np.asarray(animation.convert("RGB")).astype(float).sum(-1)
        # mean brightness per attention cell (the palette may dither single pixels)
        cells = brightness.reshape(h, H // h, w, W // w).mean(axis=(1, 3))
        assert np.unravel_index(np.argmax(cells), cells.shape) == (i, j)


def test_draw_boxes_outlines_the_box_cells_by_hand():
    frames = np.zeros((2, 10, 10, 3), np.uint8)
    boxes = np.zeros((2, 3, 4))
    boxes[0, 1] = [0.2, 0.3, 0.6, 0.8]  # target (green): rows 2..5, columns 3..7
    boxes[1, 0] = [-0.5, -0.5, 0.3, 0.2]  # hand (white), partly outside: clipped to rows 0..2, columns 0..1
    out = viz.draw_boxes(frames, boxes)
    green = np.array(viz.BOX_COLOURS[1])
    want = np.zeros((10, 10), bool)
    want[2, 3:8] = want[5, 3:8] = want[2:6, 3] = want[2:6, 7] = True
    assert np.array_equal((out[0] == green).all(-1), want)
    assert np.array_equal(out[0][~want], frames[0][~want])  # nothing else drawn (zero boxes are skipped)
    white = (out[1] == 255).all(-1)
    assert white[2, 0:2].all() and white[0:3, 1].all() and white.sum() == 6


def test_strip_shows_the_selector_map_as_a_third_row(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    selector = peaked_maps()[::-1].copy()  # the selector's peaks in other cells than u_t's
    png, gif = viz.write_overlays(
        tmp_path, "cam", pixels, peaked_maps(), selector_attention=selector, count=2, min_tile=0
    )
    gap = viz.STRIP_GAP
    array = np.asarray(Image.open(png).convert("RGB"))
    assert array.shape == (3 * H + 2 * gap, 2 * W + gap, 3)  # frames 0 and 2; frames, u_t, selector rows
    np.testing.assert_array_equal(array[:H, :W], pixels[0])
    np.testing.assert_array_equal(
        array[H + gap : 2 * H + gap, :W], viz.overlay_clip(pixels, peaked_maps())[0]
    )
    np.testing.assert_array_equal(array[2 * (H + gap) :, W + gap :], viz.overlay_clip(pixels, selector)[2])
    assert Image.open(gif).n_frames == T  # the GIF stays u_t's
