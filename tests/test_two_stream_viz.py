"""The two-stream overlay (paper Fig. 2 rows 5-6): RGB maps on the sampled frames, the motion map on the
frames of the flow stack, in one PNG of the documented layout."""

import numpy as np
from PIL import Image

from lsta_jax import viz


def peaked(n: int, h: int, w: int, peaks: list[tuple[int, int]]) -> np.ndarray:
    maps = np.full((n, h, w), 0.01, np.float32)
    for t, (i, j) in enumerate(peaks):
        maps[t, i, j] = 1.0
    return maps


def brightest_cell(tile: np.ndarray, h: int, w: int) -> tuple[int, int]:
    brightness = tile.astype(float).sum(-1)
    y, x = np.unravel_index(np.argmax(brightness), brightness.shape)
    return int(y * h / tile.shape[0]), int(x * w / tile.shape[1])


def test_two_stream_strip_has_three_rows_and_each_map_where_it_belongs(tmp_path):
    T, L, H, W, h, w = 7, 5, 30, 40, 3, 4  # 30x40 frames are enlarged x5 to 150x200 (min tile 128)
    frames = np.full((T, H, W, 3), 100, np.uint8)
    stack = np.full((L, H, W, 3), 100, np.uint8)
    rgb_peaks = [(t % h, (2 * t) % w) for t in range(T)]
    attention = peaked(T, h, w, rgb_peaks)
    flow_attention = peaked(1, h, w, [(2, 1)])  # one map per stack, (1, h, w)
    path = viz.write_two_stream_overlays(
        tmp_path, "clip", frames, attention, stack, flow_attention, title="x"
    )
    image = np.asarray(Image.open(path).convert("RGB"))
    tile_h, tile_w, gap, top = 5 * H, 5 * W, viz.STRIP_GAP, viz.TITLE_HEIGHT
    assert image.shape == (top + 3 * tile_h + 2 * gap, 5 * tile_w + 4 * gap, 3)  # max(count 5, L 5) columns

    def tile(row: int, column: int) -> np.ndarray:
        y, x = top + row * (tile_h + gap), column * (tile_w + gap)
        return image[y : y + tile_h, x : x + tile_w]

    shown = viz.strip_indices(T, 5)
    for column, t in enumerate(shown):
        np.testing.assert_array_equal(tile(0, column), 100)  # the frame itself
        assert brightest_cell(tile(1, column), h, w) == rgb_peaks[t]  # its RGB map
    for column in range(L):
        assert brightest_cell(tile(2, column), h, w) == (2, 1)  # the motion map on every stack frame
