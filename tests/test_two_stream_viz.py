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


def test_predict_runs_a_two_stream_checkpoint_and_draws_both_streams(tmp_path, capsys):
    """`python -m lsta_jax.predict` on an `lsta_two_stream` model directory: clip + centre flow stack per
    input (the authors' layout), one JSON line each, the three-row overlay; an input whose flow is too short
    for a stack fails, named."""
    import json

    import jax
    from data_fixtures import write_gtea

    from lsta_jax.checkpoint import abstract_variables, save_model
    from lsta_jax.models import create_model
    from lsta_jax.predict import main

    root = write_gtea(tmp_path / "gtea", missing=())
    config = dict(
        num_classes=3, mem_size=16, c_cam_classes=4, attention_classes=5, verb_classes=2, summary_features=4,
        flow_mem_size=16, backbone_stage_sizes=[1, 1, 1, 1], backbone_widths=[8, 8, 16, 16],
    )  # fmt: skip
    model = create_model("lsta_two_stream", **config)
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda x: (rng.standard_normal(x.shape) * 0.3).astype(x.dtype),
        abstract_variables(model, "lsta_two_stream", config),
    )
    variables["batch_stats"] = jax.tree_util.tree_map(np.abs, variables["batch_stats"])  # variances >= 0
    save_model(tmp_path / "model", "lsta_two_stream", config, variables, class_names=["a", "b", "c"])
    good = root / "frames" / "S2" / "close_jam" / "close_jam_1"  # 7 frames, 6 flow frames: one centre stack
    short = root / "frames" / "S1" / "close_jam" / "close_jam_1"  # 6 frames, 5 flow frames: too few
    out_dir = tmp_path / "overlays"
    status = main(
        ["--checkpoint", str(tmp_path / "model"), str(good), str(short), "--num-frames", "3", "--size", "32",
         "--resize-shorter", "32", "--attention-dir", str(out_dir), "--no-progress", "--top-k", "2"]
    )  # fmt: skip
    assert status == 1  # one input failed
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["ok"] and lines[0]["label"] in ("a", "b", "c") and len(lines[0]["top_k"]) == 2
    assert not lines[1]["ok"] and str(short) in lines[1]["error"] and "flow" in lines[1]["error"]
    png = Image.open(lines[0]["overlay"][0])
    tile = 4 * 32  # 32 px frames enlarged x4 to the 128 px minimum tile
    assert png.size == (5 * tile + 4 * viz.STRIP_GAP, viz.TITLE_HEIGHT + 3 * tile + 2 * viz.STRIP_GAP)
