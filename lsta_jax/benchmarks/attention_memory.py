"""What the attention memory adds: LSTA's maps u_t against its frozen selector's CAM, by phase of the action.

    python -m lsta_jax.benchmarks.attention_memory --checkpoint WORKDIR [--config configs/synthetic.py]

The eval data and preprocessing come from `--config`, by default the workdir's own `config.json` (its layout,
frames and crop).

LSTA's map is u_t = softmax(s_t + ν_a) (paper eq. 6): ν_a the CAM of the frozen selector (eq. 3), s_t the
attention memory's output, s_t = o_a ⊙ tanh(a_t) (eqs. 4-5, `lsta_jax.models.cells.LSTACell`), bounded in
(-1, 1). Without the memory (s_t = 0) the map would be softmax(ν_a) (`lsta_jax.selector_cam`). This command
reads both maps of every frame of `--config`'s eval split (`synthetic_ego`, which carries boxes) and reports:

- the attention scores of `lsta_jax.attention_scores` for u_t and for softmax(ν_a), over all frames and split
  by the phase of the action (`attention_scores.hand_phases`: before the hand first overlaps the map, while it
  is in view, after it has left), with the null baselines on the same frames;
- how far apart the two maps are: the argmax cells' agreement and the total-variation distance
  ½ Σ |u_t - softmax(ν_a)|, per phase and per frame position;
- the magnitudes: per frame the range (max - min over the h x w positions) of ν_a and of s_t. s_t is not a
  model output; log u_t - ν_a = s_t - logsumexp(s_t + ν_a), a per-frame constant shift, so its range is s_t's.
  exp(range of s_t) bounds how much the memory can reweight two positions; exp(range of ν_a) is how peaked
  the selector already is.

With `model.selector_map='standardized'` (a departure, `lsta_jax.models.selector.rescale_selector_map`)
ν_a is read as the cell receives it, standardised per frame: the map without memory is then softmax of the
standardised CAM, and s_t's range is measured against it.

`--output FILE` writes everything as JSON. The model must be an LSTA variant with attention pooling.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lsta_jax import attention_scores, cli

MAP_SCORES = ("pointing_strict", "target_over_confuser", "energy_in_box")


def lsta_and_selector_maps(
    model: Any, variables: Any, batches: Iterable[dict[str, Any]]
) -> dict[str, np.ndarray]:
    """{'attention' u_t, 'cam' ν_a, 'boxes'} of the real (unpadded) clips of eval batches: (N, T, h, w) maps
    and (N, T, 3, 4) boxes."""
    import jax

    from lsta_jax.models.lsta import VARIANTS
    from lsta_jax.models.selector import rescale_selector_map
    from lsta_jax.selector_cam import selector_cam_fn

    variant = getattr(model, "variant", None)
    if variant not in VARIANTS or not VARIANTS[variant][0]:
        raise ValueError(
            f"{type(model).__name__} (variant {variant!r}) has no attention pooling: u_t is uniform"
        )
    selector = selector_cam_fn(model, variables, softmax=False)
    if selector is None:
        raise ValueError(f"{type(model).__name__} has no frozen selector (a `resNet` backbone with an fc)")
    forward = jax.jit(lambda v, clip: model.apply(v, clip=clip)["attention"])
    out: dict[str, list[np.ndarray]] = {"attention": [], "cam": [], "boxes": []}
    for batch in batches:
        real = np.asarray(batch.get("mask", np.ones(len(batch["clip"]), bool)), bool)
        out["attention"].append(np.asarray(forward(variables, batch["clip"]))[real])
        cam = selector[0](batch["clip"])  # ν_a as the cell receives it (the model's `selector_map`)
        out["cam"].append(
            np.asarray(rescale_selector_map(cam, getattr(model, "selector_map", "logits")))[real]
        )
        out["boxes"].append(np.asarray(batch["boxes"])[real])
    return {k: np.concatenate(v) for k, v in out.items()}


def softmax_maps(logits: np.ndarray) -> np.ndarray:
    """Softmax over the (h, w) positions of (..., h, w) logits, in float64 (eq. 6)."""
    flat = np.asarray(logits, np.float64).reshape(*np.shape(logits)[:-2], -1)
    flat = np.exp(flat - flat.max(axis=-1, keepdims=True))
    return (flat / flat.sum(axis=-1, keepdims=True)).reshape(np.shape(logits))


def memory_offsets(attention: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """log u_t - ν_a (..., h, w): s_t up to a per-frame constant (module docstring)."""
    return np.log(np.maximum(np.asarray(attention, np.float64), np.finfo(np.float64).tiny)) - cam


def map_ranges(maps: np.ndarray) -> np.ndarray:
    """(..., h, w) -> (...): max - min over the positions of each map."""
    return np.ptp(np.asarray(maps, np.float64).reshape(*np.shape(maps)[:-2], -1), axis=-1)


def compare_maps(attention: np.ndarray, cam: np.ndarray, boxes: np.ndarray) -> dict[str, Any]:
    """Scores of u_t and softmax(ν_a), their distance, and the magnitudes, over all frames and per phase
    (module docstring). attention (N, T, h, w) softmax maps, cam (N, T, h, w) raw CAM, boxes (N, T, 3, 4)."""
    selector_map = softmax_maps(cam)
    h, w = attention.shape[-2:]
    n, t = attention.shape[:2]
    same_argmax = attention.reshape(n, t, -1).argmax(-1) == selector_map.reshape(n, t, -1).argmax(-1)
    distance = 0.5 * np.abs(np.asarray(attention, np.float64) - selector_map).sum(axis=(-2, -1))
    cam_range, s_range = map_ranges(cam), map_ranges(memory_offsets(attention, cam))
    phases = {"all": np.ones((n, t), bool), **attention_scores.hand_phases(boxes, h, w)}
    report: dict[str, Any] = {"frames": {k: int(v.sum()) for k, v in phases.items()}}
    for name, frames in phases.items():
        baselines = attention_scores.null_baselines(boxes, h, w, frames)
        report[name] = {
            "lsta": attention_scores.score_maps(attention, boxes, frames),
            "selector_cam": attention_scores.score_maps(selector_map, boxes, frames),
            **{k: baselines[k] for k in ("uniform", "random_cell", "best_constant_cell")},
            "same_argmax": float(same_argmax[frames].mean()) if frames.any() else float("nan"),
            "total_variation": float(distance[frames].mean()) if frames.any() else float("nan"),
        }
    report["per_frame_position"] = {
        "same_argmax": same_argmax.mean(axis=0).tolist(),
        "total_variation": distance.mean(axis=0).tolist(),
        **{
            f"target_over_confuser_{key}": [
                attention_scores.score_maps(maps[:, i : i + 1], boxes[:, i : i + 1])["target_over_confuser"]
                for i in range(t)
            ]
            for key, maps in (("lsta", attention), ("selector_cam", selector_map))
        },
    }
    report["magnitudes"] = {
        f"{name}_range": {
            "median": float(np.median(r)),
            "p10": float(np.percentile(r, 10)),
            "p90": float(np.percentile(r, 90)),
            "max": float(r.max()),
        }
        for name, r in (("cam", cam_range), ("s_t", s_range))
    }
    return report


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as plain-text lines: per phase the scores of u_t, softmax(ν_a) and the null maps."""
    lines = []
    for phase in ("all", *attention_scores.PHASES):
        r = report[phase]
        lines.append(
            f"{phase} ({report['frames'][phase]} frames): same argmax {r['same_argmax']:.3f}, "
            f"total variation u_t vs softmax(cam) {r['total_variation']:.4f}"
        )
        for name in ("lsta", "selector_cam", "uniform", "random_cell", "best_constant_cell"):
            cells = "  ".join(f"{k} {r[name][k]:.3f}" for k in MAP_SCORES)
            lines.append(f"  {name:20s} {cells}")
    for name, m in report["magnitudes"].items():
        lines.append(
            f"{name} per frame: median {m['median']:.2f} (p10 {m['p10']:.2f}, p90 {m['p90']:.2f}, "
            f"max {m['max']:.2f})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m lsta_jax.benchmarks.attention_memory", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="an LSTA workdir or model directory")
    parser.add_argument(
        "--config",
        default=None,
        help="config of the eval data with boxes (default: the workdir's config.json)",
    )
    parser.add_argument("--data-dir", default=None, help="tfds directory holding (or to build) synthetic_ego")
    cli.add_hidden_alias(parser, "--data_dir", "--data-dir")
    parser.add_argument("--output", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_dir():
        parser.error(f"--checkpoint {args.checkpoint}: no such directory")

    from lsta_jax.checkpoint import load_model
    from lsta_jax.evaluate import workdir_config
    from lsta_jax.train.config import load_config
    from lsta_jax.train.input_pipeline import make_data

    try:
        config = load_config(args.config) if args.config else workdir_config(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    if args.data_dir:
        config.data.data_dir = args.data_dir
    model, variables = load_model(args.checkpoint)
    try:
        maps = lsta_and_selector_maps(model, variables, make_data(config).make_eval())
    except (KeyError, ValueError) as e:
        print(
            f"error: {e} (needs an LSTA checkpoint and eval data with boxes: synthetic_ego)", file=sys.stderr
        )
        return 2
    report = compare_maps(maps["attention"], maps["cam"], maps["boxes"])
    print(f"{args.checkpoint}: {maps['attention'].shape[0]} clips x {maps['attention'].shape[1]} frames")
    print("\n".join(report_lines(report)))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
