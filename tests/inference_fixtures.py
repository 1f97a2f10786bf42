"""Shared, cached set-up for the inference tests (predict, extract, inference): one small random `lsta_rgb`.

All inference test files use the SAME model and batch size, so the module-level jitted forward compiles once
for the whole test session. Weights are filled by numpy on the `jax.eval_shape` structure (flax `init`
compiles a threefry sampler per kernel shape, which is slow on a CPU).
"""

from __future__ import annotations

import functools
from pathlib import Path

import av
import jax
import numpy as np
from PIL import Image

from lsta_jax import create_model

SMALL = dict(
    num_classes=6,
    mem_size=32,
    c_cam_classes=7,
    attention_classes=11,
    backbone_stage_sizes=(1, 1, 1, 1),
    backbone_widths=(8, 16, 16, 32),
)
CLASS_NAMES = ["take_cup", "put_cup", "open_jar", "close_jar", "pour_water", "shake_bottle"]
NUM_FRAMES, SIZE, RESIZE_SHORTER = 4, 64, 72  # 64 px -> a 2x2 attention grid (stride 32)
BATCH_SIZE = 4


@functools.cache
def small_model():
    """(model, variables) of a small random lsta_rgb: random kernels, non-trivial BN statistics."""
    model = create_model("lsta_rgb", **SMALL)
    shapes = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 2, SIZE, SIZE, 3), np.float32))
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "kernel":
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        elif name in ("scale", "var"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.2, shape)
        return np.asarray(value, np.float32)

    return model, jax.tree_util.tree_map_with_path(fill, shapes)


@functools.cache
def reference_apply():
    """A separately jitted `model.apply` (not the code under test) for the expected outputs."""
    model, _ = small_model()
    return jax.jit(lambda variables, clip: model.apply(variables, clip, return_frame_features=True))


def moving_square_frames(num: int, height: int, width: int, seed: int) -> np.ndarray:
    """uint8 frames (num, height, width, 3): a coloured square moving over a textured background."""
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 120, size=(height, width, 3), dtype=np.uint8)
    colour = rng.integers(150, 256, size=3, dtype=np.uint8)
    frames = np.repeat(background[None], num, axis=0)
    side = max(4, min(height, width) // 4)
    for t in range(num):
        y = (seed * 7 + t * 3) % (height - side)
        x = (seed * 5 + t * 4) % (width - side)
        frames[t, y : y + side, x : x + side] = colour
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """Encode uint8 RGB frames as an mp4 (mpeg4 codec, yuv420p) with PyAV."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(path: Path, frames: np.ndarray) -> Path:
    """Frames as image_00001.jpg, image_00002.jpg, ... (the authors' layout, numbered from 1)."""
    path.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(path / f"image_{t:05d}.jpg", quality=95)
    return path
