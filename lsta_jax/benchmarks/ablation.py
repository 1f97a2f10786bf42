"""The paper's ablation (Table 1) at small scale: `python -m lsta_jax.benchmarks.ablation [--seeds 3]`.

Protocol, as for the paper's GTEA61 numbers: one backbone pre-trained on `synthetic_objects`
(`configs/synthetic_pretrain.py`, seed 0, shared by every run as the paper's ImageNet ResNet-34 is), then for
each variant and seed stage 1 of `configs/synthetic.py:variant=V` on `synthetic_ego` (and stage 2 with
`--stage2`). Variants: the five of `lsta_jax.models.lsta.VARIANTS` (ConvLSTM baseline, + output pooling,
+ attention pooling, both, full LSTA with bias control), `ego_rnn` (kind `convlstm_rgb`, LSTA's recipe),
`ego_rnn_own` (the same under ego-rnn's own recipe, `recipe=own`: its stage 2 starts from the best stage-1
checkpoint) and `elegatt` (kind `elegatt_rgb`). Each run is
evaluated on the held-out split by `lsta_jax.evaluate` (top-1, mean class accuracy, the pointing game of
`lsta_jax.pointing` and the scores of `lsta_jax.attention_scores`); the command prints a markdown table
(mean ± std over seeds) next to the paper's GTEA61* numbers, with the attention scores' null baselines
(uniform map, random cell, best constant cell, the frozen selector's CAM) as rows below it, and writes
`results.json`. `--dataset toy` trains the five variants from scratch on the
in-memory toy clips instead (no pre-training, no pointing game). Workdirs go to `--workdir` (default a
temporary directory); finished runs are reused, so the command resumes.

The two-stream rows of Table 1 (`--variants lsta_flow,late_fusion,two_stream`, on the `synthetic_ego` build
with TV-L1 flow, the same clips): `lsta_flow` the motion stream with attention (`configs/lsta_flow.py`:
verbs from the pre-trained backbone, then activities; the paper gives 40.52% in its text), `late_fusion` the
`lsta` RGB run of the same seed and stage with that motion stream (`lsta_jax.evaluate --flow-checkpoint`),
`two_stream` the cross-modal fusion trained from both (`configs/lsta_two_stream.py`). Runs missing for a
row (the `lsta` RGB run, the motion stream) are made first.

`lsta_standardized` is LSTA with the opt-in `model.selector_map='standardized'` (the selector's map
standardised per frame before the attention memory is added to it, a departure from the authors' code), on
the same protocol; it has no paper number.

`--layout scattered` runs every row on the `scattered` build of `synthetic_ego` (objects anywhere, two
confusers; its design and predictions are in `lsta_jax.data.synthetic`); the pre-training is the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lsta_jax import cli
from lsta_jax.attention_scores import BASELINE_LABELS, SCORES
from lsta_jax.train.presets import SYNTHETIC_LAYOUTS, set_synthetic_layout

PAPER = {  # GTEA61 fixed split, paper Table 1 (docs/differences.md §8); ego-rnn: the paper's Table 2 row
    "convlstm": 51.72,
    "output_pooling": 62.07,
    "attention_pooling": 66.38,
    "no_bias_control": 68.1,
    "lsta": 74.14,
    "ego_rnn": 63.79,
    "ego_rnn_own": 63.79,  # the same model under ego-rnn's own recipe (configs/synthetic.py:recipe=own)
    "elegatt": 59.48,  # Table 3
}
#: rows that are not `configs/synthetic.py:variant=<row>`: row -> (its config arg, model fields set on it)
ROW_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "ego_rnn_own": ("variant=ego_rnn,recipe=own", {}),
    # a departure from the authors' code (selector.rescale_selector_map): no paper number
    "lsta_standardized": ("variant=lsta", {"selector_map": "standardized"}),
}
TWO_STREAM_PAPER = {  # Table 1's two-stream rows; the motion stream alone from the text of paper 6.3
    "lsta_flow": 40.52,
    "late_fusion": 78.45,
    "two_stream": 79.31,
}
ROWS = {**PAPER, **TWO_STREAM_PAPER, **{row: float("nan") for row in ROW_CONFIGS if row not in PAPER}}
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _summary(workdir: Path, evaluate: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """The run's `eval_final/summary.json` if finished, else `evaluate(eval_final dir)`, which writes it."""
    done = workdir / "eval_final" / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())
    return evaluate(workdir / "eval_final")


def _run(config: Any, workdir: Path) -> dict[str, Any]:
    """Train (or reuse) one run, then evaluate it with the evaluate command's function (pointing game too)."""
    from lsta_jax.evaluate import evaluate_checkpoint
    from lsta_jax.train.trainer import train_and_evaluate

    def train_and_evaluate_once(output: Path) -> dict[str, Any]:
        train_and_evaluate(config, workdir, quiet=True)
        return evaluate_checkpoint(workdir, config, which="latest", output=output)

    return _summary(workdir, train_and_evaluate_once)


def _rgb_run(
    variant: str, seed: int, args: argparse.Namespace, root: Path, pretrain: Path
) -> tuple[dict[str, Any], Path]:
    """Stage 1 (and 2 with --stage2) of one RGB variant: (summary of the last stage, its workdir)."""
    from lsta_jax.train.config import load_config

    stages = [1, 2] if args.stage2 and args.dataset == "synthetic_ego" else [1]
    init = str(pretrain)
    for stage in stages:
        if args.dataset == "toy":
            config = load_config(f"{CONFIGS / 'synthetic.py'}:toy")
            config.model.variant = variant
        else:
            spec, fields = ROW_CONFIGS.get(variant, (f"variant={variant}", {}))
            config = load_config(f"{CONFIGS / 'synthetic.py'}:{spec},stage={stage}")
            config.model.update(fields)
            set_synthetic_layout(config, args.layout)
            config.data.data_dir = str(root / "tfds")
            config.init_from = init
        config.seed = seed
        if args.epochs and stage == 1:
            # every recipe scaled by the same factor, LSTA's to --epochs; the milestones keep their place:
            # LSTA 48 epochs, (36,) -> 16, (12,); ego-rnn's own 72, (36,) -> 24, (12,)
            scale = args.epochs / load_config(f"{CONFIGS / 'synthetic.py'}:stage=1").num_epochs
            config.lr_milestones = tuple(round(m * scale) for m in config.lr_milestones)
            config.num_epochs = round(config.num_epochs * scale)
        if args.frames:
            config.data.num_frames = args.frames
        workdir = root / f"{variant}_seed{seed}_stage{stage}"
        summary = _run(config, workdir)
        init = str(workdir)
    return summary, workdir


def _motion_stream(seed: int, layout: str, root: Path, pretrain: Path) -> tuple[dict[str, Any], Path]:
    """The motion stream of one seed: verbs from the pre-trained backbone, then activities with attention."""
    from lsta_jax.train.config import load_config

    init = str(pretrain)
    for stage in ("verb", "activity"):
        config = load_config(f"{CONFIGS / 'lsta_flow.py'}:stage={stage},dataset=synthetic")
        set_synthetic_layout(config, layout)
        config.data.data_dir = str(root / "tfds")
        config.init_from = init
        config.seed = seed
        workdir = root / f"lsta_flow_{stage}_seed{seed}"
        summary = _run(config, workdir)
        init = str(workdir)
    return summary, workdir


def _two_stream_row(variant: str, seed: int, args: argparse.Namespace, root: Path, pretrain: Path) -> dict:
    """One seed of a two-stream row (module docstring); the runs it builds on are made or reused first."""
    from lsta_jax.evaluate import evaluate_late_fusion
    from lsta_jax.train.config import load_config

    flow_summary, flow_workdir = _motion_stream(seed, args.layout, root, pretrain)
    if variant == "lsta_flow":
        return flow_summary
    _, rgb_workdir = _rgb_run("lsta", seed, args, root, pretrain)
    config = load_config(f"{CONFIGS / 'lsta_two_stream.py'}:dataset=synthetic")
    set_synthetic_layout(config, args.layout)
    config.data.data_dir = str(root / "tfds")
    config.seed = seed
    if args.frames:
        config.data.num_frames = args.frames
    workdir = root / f"{variant}_seed{seed}_stage{2 if args.stage2 else 1}"
    if variant == "late_fusion":

        def fuse(output: Path) -> dict[str, Any]:
            return evaluate_late_fusion(rgb_workdir, flow_workdir, config, output=output)

        return _summary(workdir, fuse)
    config.init_from_rgb, config.init_from_flow = str(rgb_workdir), str(flow_workdir)
    return _run(config, workdir)


TABLE_KEYS = ("top1", "mean_class_accuracy", "verb_accuracy", "noun_accuracy", *SCORES)


def _stats(rows: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """{key: (mean, std)} in percent over rows (runs or baselines), nan where a row lacks the key."""
    stats = {}
    for key in TABLE_KEYS:
        values = np.asarray([r.get(key, np.nan) for r in rows], np.float64)
        values = values if key == "energy_in_box" else 100 * values  # energy is a ratio (1.0 = uniform)
        stats[key] = (float(values.mean()), float(values.std()))
    return stats


def baseline_rows(results: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The null baselines of the runs' summaries (`attention_baselines`): uniform, random cell and best
    constant cell from the first run (every run scores them on the same eval frames), the frozen selector's
    CAM of every run (the same backbone in stage 1; fine-tuned per run in stage 2)."""
    runs = [r["attention_baselines"] for rows in results.values() for r in rows if "attention_baselines" in r]
    if not runs:
        return {}
    out = {k: [runs[0][k]] for k in ("uniform", "random_cell", "best_constant_cell")}
    selectors = [r["selector_cam"] for r in runs if "selector_cam" in r]
    if selectors:
        out["selector_cam"] = selectors
    return out


def table_lines(results: dict[str, list[dict[str, Any]]], stage: str, seeds: int) -> list[str]:
    """The markdown table: one row per variant (mean ± std over seeds), then the null baselines of the
    attention scores (docs/attention-scores.md) on the same frames; n/a where a row has no such score."""

    def cells(stats: dict[str, tuple[float, float]]) -> str:
        return " | ".join(
            "n/a" if np.isnan(m) else f"{m:.2f} ± {s:.2f}" if k == "energy_in_box" else f"{m:.1f} ± {s:.1f}"
            for k, (m, s) in stats.items()
        )

    lines = [
        "",
        f"| variant ({stage}) | top-1 % (mean ± std, {seeds} seeds) | mean class acc. % | verb % | noun % "
        "| pointing game % | strict pointing % | target over confuser % | energy in box (1 = uniform) "
        "| paper GTEA61* % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    # no attention scores for a flow-only row: its one map per stack has no frame boxes
    paper = {row: "—" if np.isnan(value) else f"{value:.2f}" for row, value in ROWS.items()}
    lines += [
        f"| {variant} | {cells(_stats(rows))} | {paper[variant]} |" for variant, rows in results.items()
    ]
    for name, rows in baseline_rows(results).items():
        label = BASELINE_LABELS[name] + (f", {len(rows)} runs" if name == "selector_cam" else "")
        lines.append(f"| {label} | {cells(_stats(rows))} | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.ablation",
        description=__doc__,
    )
    parser.add_argument("--seeds", type=cli.positive_int, default=3)
    parser.add_argument(
        "--epochs",
        type=cli.positive_int,
        default=None,
        help="stage-1 epochs of LSTA's recipe; every recipe's epochs and lr milestones are scaled by the "
        "same factor (default: the config's)",
    )
    parser.add_argument(
        "--frames",
        type=cli.positive_int,
        default=None,
        help="override data.num_frames of both stages (default: the config's)",
    )
    parser.add_argument("--dataset", default="synthetic_ego", choices=("toy", "synthetic_ego"))
    parser.add_argument(
        "--layout",
        default="middle",
        choices=tuple(SYNTHETIC_LAYOUTS),
        help="synthetic_ego layout: middle (the demo's data) or scattered (objects anywhere, two confusers)",
    )
    parser.add_argument("--stage2", action="store_true", help="also run stage 2 and report it")
    parser.add_argument("--workdir", default=None, help="where the runs go (default: a temporary directory)")
    parser.add_argument(
        "--variants",
        default=",".join(PAPER),
        help=f"comma-separated rows (default the RGB ones; two-stream rows: {','.join(TWO_STREAM_PAPER)}; "
        f"departures from the authors' code: lsta_standardized)",
    )
    args = parser.parse_args(argv)

    from lsta_jax.train.config import load_config

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="lsta_ablation_"))
    data_dir = str(root / "tfds")
    pretrain = root / "pretrain"
    if args.dataset == "synthetic_ego":
        t0 = time.perf_counter()
        config = load_config(str(CONFIGS / "synthetic_pretrain.py"))
        config.data.data_dir = data_dir
        summary = _run(config, pretrain)
        print(f"pretrain: top-1 {summary['top1']:.4f} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    results: dict[str, list[dict[str, Any]]] = {}
    for variant in args.variants.split(","):
        if variant not in ROWS:
            parser.error(f"unknown variant {variant!r}; known: {', '.join(ROWS)}")
        rgb = variant in PAPER or variant in ROW_CONFIGS
        if args.dataset == "toy" and (variant.startswith(("ego_rnn", "elegatt")) or not rgb):
            continue  # toy runs train from scratch: no pre-trained backbone for ego-rnn or the flow streams
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            if rgb:
                summary, _ = _rgb_run(variant, seed, args, root, pretrain)
            else:
                summary = _two_stream_row(variant, seed, args, root, pretrain)
            results.setdefault(variant, []).append(summary)
            print(
                f"{variant} seed {seed}: top-1 {summary['top1']:.4f} pointing "
                f"{summary.get('pointing_game', float('nan')):.3f} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    stage = "stage 2" if args.stage2 else "stage 1"
    print("\n".join(table_lines(results, stage, args.seeds)))
    table = {variant: _stats(rows) for variant, rows in results.items()}
    table["baselines"] = {k: _stats(v) for k, v in baseline_rows(results).items()}
    (root / "results.json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"\nruns and results.json in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
