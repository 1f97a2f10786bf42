"""Where a frozen pre-trained selector points on `synthetic_ego`, before any LSTA training.

    python -m lsta_jax.benchmarks.selector_pointing --pretrain runs/pretrain --data-dir /tmp/tfds

LSTA's attention (paper eq. 3, ν_a = ς(x_t, w_a)) starts from the backbone's class-activation map of its top
class. This command computes that map for every frame of the `configs/synthetic.py` eval split (all
`--frames` frames, centre crop) from a `resnet` workdir of `configs/synthetic_pretrain.py` and scores it with
`lsta_jax.pointing`: the pointing game (hand or target), and the same hit rate against the hand, the target
and the confuser alone, overall and per frame position. It also prints what a constant map scores (the centre
cell, and the best single cell), which says how lenient the pointing game is on this data, and the scores of
`lsta_jax.attention_scores` (strict pointing, target over confuser, energy in box) of the selector's
softmaxed CAM beside the null baselines. `--pretrain` may also name an LSTA workdir: its backbone's selector
(frozen in stage 1) is scored.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lsta_jax import cli
from lsta_jax.attention_scores import null_baselines, report_lines
from lsta_jax.attention_scores import score_maps as score_maps_by_density
from lsta_jax.pointing import pointing_game, pointing_hits

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BOX_SETS = {"hand|target": (0, 1), "hand": (0,), "target": (1,), "confuser": (2,)}


def score_maps(maps: np.ndarray, boxes: np.ndarray) -> dict[str, Any]:
    """Hit rates of (N, T, h, w) maps against (N, T, 3, 4) boxes, over the frames the pointing game counts.

    Returns {name: (overall, per-frame-position array)} for each of BOX_SETS; 'hand|target' is the pointing
    game itself. The other rates share its denominator (frames where the hand or the target is in view).
    """
    _, counted = pointing_hits(maps, boxes)
    total, per_t = max(int(counted.sum()), 1), np.maximum(counted.sum(axis=0), 1)
    out = {}
    for name, which in BOX_SETS.items():
        hits = pointing_hits(maps, boxes, which)[0] & counted
        out[name] = (float(hits.sum()) / total, hits.sum(axis=0) / per_t)
    return out


def constant_map_scores(boxes: np.ndarray, h: int, w: int) -> dict[tuple[int, int], float]:
    """The pointing game of a map that always points at cell (i, j), for every cell."""
    n, t = boxes.shape[:2]
    scores = {}
    for i in range(h):
        for j in range(w):
            maps = np.zeros((n, t, h, w), np.float32)
            maps[:, :, i, j] = 1.0
            scores[(i, j)] = pointing_game(*pointing_hits(maps, boxes))
    return scores


def selector_maps(model: Any, variables: Any, batches: Iterable[dict[str, Any]]) -> tuple[np.ndarray, ...]:
    """(maps (N, T, h, w), boxes (N, T, 3, 4)) of the frozen selector's top-class CAM, softmaxed over the
    positions (`lsta_jax.selector_cam`), on eval batches."""
    from lsta_jax.selector_cam import selector_cam_fn

    selector = selector_cam_fn(model, variables)
    if selector is None:
        raise ValueError(f"{type(model).__name__} has no selector (a ResNet with an fc)")
    maps, boxes = [], []
    for batch in batches:
        keep = np.asarray(batch["mask"], bool)
        maps.append(np.asarray(selector[0](batch["clip"]))[keep])
        boxes.append(np.asarray(batch["boxes"])[keep])
    return np.concatenate(maps), np.concatenate(boxes)


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.selector_pointing",
        description=__doc__,
    )
    parser.add_argument(
        "--pretrain", required=True, help="workdir of configs/synthetic_pretrain.py (or an LSTA workdir)"
    )
    parser.add_argument("--data-dir", default=None, help="tfds directory holding (or to build) synthetic_ego")
    cli.add_hidden_alias(parser, "--data_dir", "--data-dir")
    parser.add_argument(
        "--frames", type=cli.positive_int, default=16, help="frames per clip (16: all of them)"
    )
    args = parser.parse_args(argv)
    if not Path(args.pretrain).is_dir():
        parser.error(f"--pretrain {args.pretrain}: no such directory")

    from lsta_jax.checkpoint import load_model
    from lsta_jax.train.config import load_config
    from lsta_jax.train.input_pipeline import make_data

    config = load_config(str(CONFIGS / "synthetic.py"))
    config.data.num_frames = args.frames
    if args.data_dir:
        config.data.data_dir = args.data_dir
    model, variables = load_model(args.pretrain)
    maps, boxes = selector_maps(model, variables, make_data(config).make_eval())
    print(f"frozen selector of {args.pretrain}: {maps.shape[0]} clips x {maps.shape[1]} frames")
    for name, (overall, per_t) in score_maps(maps, boxes).items():
        print(f"  argmax on {name:12s} {overall:.3f}   per frame {np.round(per_t, 2).tolist()}")
    constant = constant_map_scores(boxes, *maps.shape[2:])
    best = max(constant, key=constant.get)
    centre = (maps.shape[2] // 2, maps.shape[3] // 2)
    print(
        f"  a constant map scores {constant[centre]:.3f} (centre cell {centre}), best cell {best} "
        f"{constant[best]:.3f}"
    )
    print("  attention scores (docs/attention-scores.md):")
    baselines = null_baselines(boxes, *maps.shape[2:])
    scores = score_maps_by_density(maps, boxes)
    for line in report_lines(scores, baselines, label="frozen selector's CAM, softmaxed"):
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
