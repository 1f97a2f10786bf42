"""The pointing game: does an attention map point at the hand or the manipulated object?

Ground truth comes from `synthetic_ego`, which stores per frame the boxes of the hand, the target object and
the confuser (`lsta_jax.data.synthetic.BOX_NAMES`). A frame is a hit when the argmax cell of its attention
map u_t (the model's `attention` output, (h, w) per frame) lies within `tolerance` cells (Chebyshev distance,
default one cell) of a cell that the hand's or the target's box overlaps. Frames where none of those boxes
overlaps the map (e.g. the hand still below the frame and the target cropped away) do not count. The score is
hits / counted frames over all clips. Two views of the same hits explain it: the score per frame position
(`pointing_per_frame`: before the hand arrives no causal map can know which of the two objects will be used)
and the score over the frames with the hand in view (`hand_in_view`). A uniform map (the `convlstm` variant)
points at cell (0, 0), the first argmax, so it scores what a fixed guess scores. On `synthetic_ego` the
score is lenient (a constant map on the centre cell scores about 0.95): `lsta_jax.attention_scores` has the
scores a constant map fails and the null baselines reported beside them (docs/attention-scores.md).

A box (y0, x0, y1, x1), in units of the model's input crop, overlaps cell (i, j) of an h x w grid when it
covers part of [i/h, (i+1)/h) x [j/w, (j+1)/w) with positive area.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POINTING_BOXES = (0, 1)  # indices into BOX_NAMES: the hand and the target object
HAND_BOX = (0,)
TOLERANCE = 1


def box_cells(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """(..., 4) boxes in [0, 1] units -> (..., h, w) bool: the grid cells each box overlaps."""
    boxes = np.asarray(boxes, np.float64)
    rows = np.arange(h) / h
    cols = np.arange(w) / w
    y0, x0, y1, x1 = (boxes[..., k, None] for k in range(4))
    in_rows = (y0 < rows + 1 / h) & (y1 > rows)  # (..., h)
    in_cols = (x0 < cols + 1 / w) & (x1 > cols)  # (..., w)
    return in_rows[..., :, None] & in_cols[..., None, :]


def dilate(mask: np.ndarray, cells: int) -> np.ndarray:
    """Binary dilation of (..., h, w) masks by a (2 cells + 1)^2 square (Chebyshev distance <= cells)."""
    out = mask.copy()
    h, w = mask.shape[-2:]
    for dy in range(-cells, cells + 1):
        for dx in range(-cells, cells + 1):
            shifted = np.zeros_like(mask)
            ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
            xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
            shifted[..., yd, xd] = mask[..., ys, xs]
            out |= shifted
    return out


def pointing_hits(
    attention: np.ndarray,
    boxes: np.ndarray,
    which: Sequence[int] = POINTING_BOXES,
    tolerance: int = TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """(hits, counted): two (N, T) bool arrays for attention (N, T, h, w) and boxes (N, T, K, 4)."""
    attention = np.asarray(attention)
    n, t, h, w = attention.shape
    targets = box_cells(np.asarray(boxes)[:, :, list(which)], h, w).any(axis=2)  # (N, T, h, w)
    counted = targets.any(axis=(-2, -1))
    near = dilate(targets, tolerance)
    flat = attention.reshape(n, t, h * w).argmax(axis=-1)
    hits = near.reshape(n, t, h * w)[np.arange(n)[:, None], np.arange(t)[None, :], flat]
    return hits & counted, counted


def pointing_game(hits: np.ndarray, counted: np.ndarray) -> float:
    """The score: hits over counted frames (nan when nothing was counted)."""
    total = int(np.sum(counted))
    return float(np.sum(hits)) / total if total else float("nan")


def pointing_per_frame(hits: np.ndarray, counted: np.ndarray) -> list[float | None]:
    """The score at each frame position t over all clips ((N, T) arrays; None where no frame t counts)."""
    counts = np.sum(counted, axis=0)
    return [float(h) / float(c) if c else None for h, c in zip(np.sum(hits, axis=0), counts, strict=True)]


def hand_in_view(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, T) bool: frames where the hand's box overlaps the h x w map (the hand is acting in view)."""
    return box_cells(np.asarray(boxes)[:, :, list(HAND_BOX)], h, w).any(axis=(2, -2, -1))
