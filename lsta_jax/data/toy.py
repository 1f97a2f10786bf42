"""The toy clips: in-memory data with no files, for the tests, the toy configs and the demo's fallback.

A bright square moves over noise in one of `num_classes` directions (`toy_frames`, normalised by
`toy_clips`); `toy_flow` gives each clip a flow stack of the same motion, quantised and normalised as real
flow images.
"""

from __future__ import annotations

import numpy as np

from lsta_jax.data.transforms import normalize_flow, normalize_rgb


def toy_frames(
    num_clips: int, num_classes: int, num_frames: int, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 clips (N, T, size, size, 3): a bright square moving in one of `num_classes` directions.

    Recognising the class needs the motion across frames: every frame alone shows the same kind of square.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(num_clips) % num_classes
    rng.shuffle(labels)
    frames = rng.integers(30, 140, size=(num_clips, num_frames, size, size, 3), dtype=np.uint8)
    side = max(2, size // 5)
    for i, c in enumerate(labels):
        angle = 2 * np.pi * c / num_classes
        direction = np.array([np.sin(angle), np.cos(angle)])
        start = rng.uniform(side, size - 2 * side, 2) - direction * size * 0.15
        for t in range(num_frames):
            where = start + direction * size * 0.3 * t / max(1, num_frames - 1)
            y, x = np.clip(where, 0, size - side).astype(int)
            frames[i, t, y : y + side, x : x + side, :] = (235, 205, 60)
    return frames, labels.astype(np.int32)


def toy_clips(
    num_clips: int, num_classes: int, num_frames: int, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`toy_frames` normalised as the reference (`transforms.normalize_rgb`: /255, ImageNet mean and std):
    float32 model input."""
    frames, labels = toy_frames(num_clips, num_classes, num_frames, size, seed)
    return normalize_rgb(frames), labels


# dense_flow's quantisation bound (docs/differences.md §6): a flow value f is stored as round(255 (f + b) / (2
# b)).
TOY_FLOW_BOUND = 20.0


def toy_flow(labels: np.ndarray, num_classes: int, size: int, seed: int, stack: int = 5) -> np.ndarray:
    """Flow stacks (N, size, size, 2 * stack) for the toy classes, normalised like real flow images.

    Each clip's square moves in its class direction (as in `toy_frames`) by `size` * 0.06 pixels per frame;
    the x/y flow inside the square at each of the `stack` steps is that displacement, elsewhere small noise.
    Values are quantised as dense_flow writes its JPEGs (bound 20, 0..255) and normalised with
    `normalize_flow`.
    """
    rng = np.random.default_rng([seed, 1])
    n = len(labels)
    flow = rng.normal(0.0, 0.3, size=(n, size, size, 2 * stack))
    side = max(2, size // 5)
    speed = size * 0.06
    for i, c in enumerate(labels):
        angle = 2 * np.pi * c / num_classes
        dy, dx = np.sin(angle) * speed, np.cos(angle) * speed
        start = rng.uniform(side, size - 2 * side, 2)
        for j in range(stack):
            y, x = np.clip(start + np.array([dy, dx]) * j, 0, size - side).astype(int)
            flow[i, y : y + side, x : x + side, 2 * j] = dx
            flow[i, y : y + side, x : x + side, 2 * j + 1] = dy
    quantised = np.clip(np.round(255 * (flow + TOY_FLOW_BOUND) / (2 * TOY_FLOW_BOUND)), 0, 255)
    return normalize_flow(quantised.astype(np.uint8))
