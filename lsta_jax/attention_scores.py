"""Attention scores that a constant map fails, and the null baselines every report prints beside them.

The pointing game (`lsta_jax.pointing`: argmax within one cell of the hand's or the target's box) is lenient
on `synthetic_ego`: the boxes sit near the centre and cover many cells, so a constant map on the centre cell
scores above any trained model. The scores here read the same maps against the same boxes
(`lsta_jax.data.synthetic.BOX_NAMES`: hand, target, confuser, and a second confuser in the scattered layout,
in units of the model's input crop), each on
the frames where it is defined; docs/attention-scores.md gives the definitions and the measured values.

- `pointing_strict`: the argmax cell overlaps the hand's or the target's box (`pointing.box_cells`, no
  tolerance); frames as the pointing game counts them.
- `target_over_confuser`: over the (frame, confuser) pairs where the target and that confuser both overlap
  the map, the fraction where the map's density inside the target's box exceeds its density inside the
  confuser's box (ties count half); with one confuser per frame, the fraction of frames. The density of a
  box is the map's mass inside it over its area in cells, both with
  fractional cell coverage (`box_coverage`: a cell half covered by the box adds half its mass and half a
  cell of area). A constant map scores exactly 0.5.
- `energy_in_box`: the map's mass inside hand ∪ target over the union's share of the frame (both with
  fractional coverage), as a ratio of totals over the frames where the union overlaps the map:
  sum_t mass_t / sum_t share_t. 1.0 is a uniform map; a map with all its mass inside the boxes gets
  1 / share.

Maps are read as masses: each (h, w) map is non-negative and divided by its sum (`normalize_maps`); a CAM
must be softmaxed first. The null baselines (`null_baselines`) are scored by the same functions on the same
frames: the uniform map, a random cell (the exact expectation over a cell drawn uniformly per frame, i.e. the
mean over the h*w constant one-cell maps, as every score is linear in the map for fixed frames) and the best
constant cell, an oracle: for each score separately the best of the h*w one-cell maps, chosen on the frames
it is scored on, an upper bound on what any constant map scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lsta_jax.pointing import (
    POINTING_BOXES,
    hand_in_view,
    pointing_game,
    pointing_hits,
)

TARGET, CONFUSER = 1, 2  # indices into BOX_NAMES (the hand is 0)
SCORES = ("pointing_game", "pointing_strict", "target_over_confuser", "energy_in_box")
BASELINES = ("uniform", "random_cell", "best_constant_cell", "selector_cam")
BASELINE_LABELS = {
    "uniform": "uniform map",
    "random_cell": "random cell (expected)",
    "best_constant_cell": "best constant cell (oracle: upper bound)",
    "selector_cam": "frozen selector's CAM, softmaxed",
}
PHASES = ("before", "acting", "after")
TIE_RTOL = 1e-9  # relative difference of two densities below which they tie (a constant map's exactly)


def box_coverage(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """(..., 4) boxes (y0, x0, y1, x1) in [0, 1] units -> (..., h, w) float64: the fraction of each cell's
    area that the box covers (0 outside the box, 1 inside, between on its border; parts outside the map and
    empty boxes cover nothing). Nonzero exactly where `pointing.box_cells` is True."""
    boxes = np.asarray(boxes, np.float64)
    y0, x0, y1, x1 = (boxes[..., k, None] for k in range(4))
    rows, cols = np.arange(h), np.arange(w)
    # overlap of [y0*h, y1*h) with [i, i+1), in cell units
    in_rows = np.clip(np.minimum(y1 * h, rows + 1) - np.maximum(y0 * h, rows), 0.0, 1.0)
    in_cols = np.clip(np.minimum(x1 * w, cols + 1) - np.maximum(x0 * w, cols), 0.0, 1.0)
    return in_rows[..., :, None] * in_cols[..., None, :]


def union_coverage(a: np.ndarray, b: np.ndarray, h: int, w: int) -> np.ndarray:
    """Fractional coverage of the union of boxes a and b (..., 4): cov(a) + cov(b) - cov(a ∩ b)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.concatenate([np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])], axis=-1)
    return box_coverage(a, h, w) + box_coverage(b, h, w) - box_coverage(both, h, w)


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """(..., h, w) non-negative maps -> float64 masses summing to 1 per map."""
    maps = np.asarray(maps, np.float64)
    total = maps.sum(axis=(-2, -1), keepdims=True)
    if np.any(maps < 0) or np.any(total <= 0):
        raise ValueError("attention maps must be non-negative with a positive sum (softmax a CAM first)")
    return maps / total


def strict_pointing_hits(maps: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hits, counted) (N, T) of the pointing game without tolerance: argmax cell inside hand or target."""
    return pointing_hits(maps, boxes, POINTING_BOXES, tolerance=0)


def target_over_confuser_wins(maps: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(wins, counted) (N, T): over the confusers (boxes CONFUSER onwards: one, or two in the scattered
    layout) that overlap the map beside the target, the sum of 1 where the target's density exceeds the
    confuser's, 0.5 on a tie, 0 below, and the number of such pairs. maps (N, T, h, w), boxes (N, T, K, 4)."""
    mass = normalize_maps(maps)
    h, w = mass.shape[-2:]
    boxes = np.asarray(boxes)
    cover_t = box_coverage(boxes[:, :, TARGET], h, w)
    area_t = cover_t.sum(axis=(-2, -1))
    density_t = (mass * cover_t).sum(axis=(-2, -1)) / np.maximum(area_t, 1e-12)
    wins, counted = np.zeros(area_t.shape), np.zeros(area_t.shape, np.int64)
    for confuser in range(CONFUSER, boxes.shape[2]):
        cover_c = box_coverage(boxes[:, :, confuser], h, w)
        area_c = cover_c.sum(axis=(-2, -1))
        pair = (area_t > 0) & (area_c > 0)
        density_c = (mass * cover_c).sum(axis=(-2, -1)) / np.maximum(area_c, 1e-12)
        tie = np.isclose(density_t, density_c, rtol=TIE_RTOL, atol=0.0)
        wins += np.where(pair, np.where(tie, 0.5, (density_t > density_c).astype(np.float64)), 0.0)
        counted += pair
    return wins, counted


def energy_in_box_parts(maps: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mass, share) (N, T): the map's mass inside hand ∪ target and the union's share of the map's area
    (fractional coverage); share is 0 where the union does not overlap the map."""
    mass = normalize_maps(maps)
    h, w = mass.shape[-2:]
    boxes = np.asarray(boxes)
    cover = union_coverage(boxes[:, :, POINTING_BOXES[0]], boxes[:, :, POINTING_BOXES[1]], h, w)
    return (mass * cover).sum(axis=(-2, -1)), cover.sum(axis=(-2, -1)) / (h * w)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    total = float(np.sum(denominator))
    return float(np.sum(numerator)) / total if total > 0 else float("nan")


def score_maps(maps: np.ndarray, boxes: np.ndarray, frames: np.ndarray | None = None) -> dict[str, float]:
    """The four scores of maps (N, T, h, w) against boxes (N, T, 3, 4), plus the frames each counts;
    `frames` (N, T) bool, if given, restricts every score to those frames."""
    keep = np.ones(np.shape(maps)[:2], bool) if frames is None else np.asarray(frames, bool)
    hits, counted = pointing_hits(maps, boxes)
    strict, _ = strict_pointing_hits(maps, boxes)
    wins, pairs = target_over_confuser_wins(maps, boxes)
    mass, share = energy_in_box_parts(maps, boxes)
    counted, pairs = counted & keep, pairs * keep
    return {
        "pointing_game": pointing_game(hits & counted, counted),
        "pointing_strict": pointing_game(strict & counted, counted),
        "target_over_confuser": _ratio(wins * keep, pairs),
        "energy_in_box": _ratio(mass * keep, share * keep),
        "pointing_frames": int(counted.sum()),
        "target_confuser_frames": int(np.sum(pairs > 0)),
    }


def constant_cell_scores(
    boxes: np.ndarray, h: int, w: int, frames: np.ndarray | None = None
) -> dict[tuple[int, int], dict[str, float]]:
    """`score_maps` of the map with all its mass on cell (i, j), for every cell of the h x w grid."""
    n, t = np.shape(boxes)[:2]
    scores = {}
    for i in range(h):
        for j in range(w):
            maps = np.zeros((n, t, h, w))
            maps[:, :, i, j] = 1.0
            scores[(i, j)] = score_maps(maps, boxes, frames)
    return scores


def null_baselines(
    boxes: np.ndarray, h: int, w: int, frames: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """{'uniform', 'random_cell', 'best_constant_cell'}: each {score: value} on the same frames as
    `score_maps`; best_constant_cell also names its cell per score (`cells`). Module docstring."""
    n, t = np.shape(boxes)[:2]
    uniform = score_maps(np.ones((n, t, h, w)), boxes, frames)
    constant = constant_cell_scores(boxes, h, w, frames)
    random_cell, best, cells = {}, {}, {}
    for score in SCORES:
        values = {cell: s[score] for cell, s in constant.items()}
        finite = {cell: v for cell, v in values.items() if not np.isnan(v)}
        random_cell[score] = float(np.mean(list(values.values())))
        cells[score] = list(max(finite, key=finite.get)) if finite else None
        best[score] = finite[tuple(cells[score])] if finite else float("nan")
    return {"uniform": uniform, "random_cell": random_cell, "best_constant_cell": {**best, "cells": cells}}


def hand_phases(boxes: np.ndarray, h: int, w: int) -> dict[str, np.ndarray]:
    """{'before', 'acting', 'after'}: (N, T) bool masks of the frames before the hand first overlaps the map,
    with the hand in view (`pointing.hand_in_view`), and after it has left (not in view, seen before)."""
    in_view = hand_in_view(boxes, h, w)
    seen = np.cumsum(in_view, axis=1) > 0
    return {"before": ~seen, "acting": in_view, "after": seen & ~in_view}


SHORT_NAMES = {
    "pointing_game": "pointing",
    "pointing_strict": "strict",
    "target_over_confuser": "target>confuser",
    "energy_in_box": "energy",
}


def report_lines(
    scores: dict[str, Any], baselines: dict[str, dict[str, Any]], label: str = "model attention u_t"
) -> list[str]:
    """A plain-text table: one row per map (the scored map, named `label`, then the baselines present), one
    column per score (pointing game, strict pointing, target over confuser, energy in box)."""
    width = max(len(label) for label in BASELINE_LABELS.values())
    rows = [f"{'map':{width}s} " + " ".join(f"{SHORT_NAMES[s]:>15s}" for s in SCORES)]
    rows.append(f"{label:{width}s} " + " ".join(f"{scores[s]:15.3f}" for s in SCORES))
    for name in BASELINES:
        if name in baselines:
            row = baselines[name]
            rows.append(f"{BASELINE_LABELS[name]:{width}s} " + " ".join(f"{row[s]:15.3f}" for s in SCORES))
    return rows
