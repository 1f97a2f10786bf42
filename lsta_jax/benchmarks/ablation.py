"""The paper's ablation (Table 1) at small scale: `python -m lsta_jax.benchmarks.ablation [--seeds 3]`.

Trains the five variants of `lsta_jax.models.lsta.VARIANTS` (ConvLSTM baseline, + output pooling, + attention
pooling, both, full LSTA with bias control) from scratch with `configs/synthetic.py` (the `synthetic_ego`
builder when `--dataset synthetic_ego`, else the in-memory toy clips) for each seed, and prints a markdown
table of final top-1 and mean class accuracy (mean ± std over seeds) next to the paper's GTEA61* numbers.
Workdirs go to `--workdir` (default a temporary directory); finished runs are reused, so the command resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAPER = {  # GTEA61 fixed split, paper Table 1 (reference section 8)
    "convlstm": 51.72,
    "output_pooling": 62.07,
    "attention_pooling": 66.38,
    "no_bias_control": 68.1,
    "lsta": 74.14,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.ablation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--epochs", type=int, default=None, help="override num_epochs (default: the config's)"
    )
    parser.add_argument("--dataset", default="toy", choices=("toy", "synthetic_ego"))
    parser.add_argument("--workdir", default=None, help="where the runs go (default: a temporary directory)")
    parser.add_argument("--variants", default=",".join(PAPER), help="comma-separated subset of variants")
    args = parser.parse_args(argv)

    from lsta_jax.train.config import load_config
    from lsta_jax.train.trainer import train_and_evaluate

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="lsta_ablation_"))
    spec = str(Path(__file__).resolve().parents[2] / "configs" / "synthetic.py")
    results: dict[str, list[tuple[float, float]]] = {}
    for variant in args.variants.split(","):
        for seed in range(args.seeds):
            config = load_config(f"{spec}:toy" if args.dataset == "toy" else spec)
            config.model.variant = variant
            config.seed = seed
            config.eval_every_epochs = 0
            if args.epochs:
                config.num_epochs = args.epochs
            workdir = root / f"{variant}_seed{seed}"
            t0 = time.perf_counter()
            done = workdir / "eval" / "summary.json"
            summary = (
                json.loads(done.read_text())
                if done.is_file()
                else train_and_evaluate(config, workdir, quiet=True)
            )
            results.setdefault(variant, []).append((summary["top1"], summary["mean_class_accuracy"]))
            print(
                f"{variant} seed {seed}: top-1 {summary['top1']:.4f} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    print(f"\n| variant | top-1 % (mean ± std, {args.seeds} seeds) | mean class acc. % | paper GTEA61* % |")
    print("| --- | --- | --- | --- |")
    for variant, rows in results.items():
        top1 = 100 * np.asarray([r[0] for r in rows])
        mca = 100 * np.asarray([r[1] for r in rows])
        print(
            f"| {variant} | {top1.mean():.1f} ± {top1.std():.1f} | {mca.mean():.1f} ± {mca.std():.1f} | "
            f"{PAPER.get(variant, float('nan')):.2f} |"
        )
    print(f"\nruns in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
