"""`make demo`: build synthetic data, train LSTA from scratch, evaluate it, predict a few clips with overlays.

Steps (all on the CPU, a few minutes on 2 cores):
1. data: the `synthetic_ego` tfds builder of `lsta_jax.data` (12 verb_noun classes, built into OUTPUT/tfds
   in ~20 s; `configs/synthetic.py`), or with `--dataset toy` in-memory clips of a square moving in one of 8
   directions (`configs/synthetic.py:toy`, ~1 minute in all);
2. train: `lsta_jax.train` with `configs/synthetic.py` (small ResNet, everything trainable since no ImageNet
   weights are available offline) into OUTPUT/workdir;
3. evaluate: `lsta_jax.evaluate` on the best checkpoint (top-1, mean class accuracy, confusion matrix PNG);
4. predict: a few evaluation clips exported as frame folders, classified by `lsta_jax.predict` from the
   workdir, with attention overlays (PNG strips and GIFs) in OUTPUT/overlays.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def export_frame_folders(
    frames: np.ndarray, labels: np.ndarray, names: list[str], directory: Path
) -> list[Path]:
    """Write clips (N, T, H, W, 3) uint8 as folders of image_%05d.png (numbered from 1, as the reference)."""
    from PIL import Image

    folders = []
    for i, (clip, label) in enumerate(zip(frames, labels, strict=True)):
        folder = directory / f"clip{i:02d}_{names[label]}"
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(clip, start=1):
            Image.fromarray(frame).save(folder / f"image_{t:05d}.png")
        folders.append(folder)
    return folders


def demo_config(fast: bool, dataset: str = "toy") -> Any:
    from lsta_jax.train.config import load_config

    root = Path(__file__).resolve().parent.parent / "configs" / "synthetic.py"
    config = load_config(f"{root}:toy" if dataset == "toy" else str(root))
    if fast:  # for a quick look (tests): fewer steps
        config.num_epochs = 2
    config.eval_every_epochs = 0
    config.log_every_steps = 10
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="demo_out", help="directory for everything the demo writes")
    parser.add_argument(
        "--fresh", action="store_true", help="delete OUTPUT first (else a finished run resumes)"
    )
    parser.add_argument("--fast", action="store_true", help="2 epochs only (a smoke test, low accuracy)")
    parser.add_argument(
        "--dataset", default="synthetic_ego", choices=("toy", "synthetic_ego"), help="training data"
    )
    parser.add_argument("--num-predict", type=int, default=4, help="clips to predict with overlays")
    args = parser.parse_args(argv)

    from lsta_jax.evaluate import evaluate_checkpoint
    from lsta_jax.train.trainer import train_and_evaluate

    out = Path(args.output).absolute()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    config = demo_config(args.fast, args.dataset)
    if args.dataset == "synthetic_ego" and not config.data.data_dir:
        config.data.data_dir = str(out / "tfds")  # built here on the first run (seconds), reused after
    d = config.data
    print(
        f"[1/4] data: {d.name} ({'tfds builder' if d.name != 'toy' else 'in-memory toy clips'}), "
        f"{config.model.num_classes} classes, {d.num_frames} frames of {d.crop_size}x{d.crop_size}",
        flush=True,
    )

    print(
        f"[2/4] train: configs/synthetic.py, {config.num_epochs} epochs, batch {config.global_batch_size}, "
        f"ResNet stages {tuple(config.model.backbone_stage_sizes)} "
        f"widths {tuple(config.model.backbone_widths)}",
        flush=True,
    )
    workdir = out / "workdir"
    t0 = time.perf_counter()
    train_and_evaluate(config, workdir)
    train_s = time.perf_counter() - t0
    rates = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    speed = [r["steps_per_s"] for r in rates if "steps_per_s" in r]

    print("[3/4] evaluate: the best checkpoint on the held-out clips", flush=True)
    summary = evaluate_checkpoint(workdir, config, which="best", output=out / "eval")
    chance = 1.0 / config.model.num_classes
    print(
        f"      top-1 {summary['top1']:.3f} (chance {chance:.3f}), top-5 {summary['top5']:.3f}, mean class "
        f"accuracy {summary['mean_class_accuracy']:.3f} on {summary['count']} clips; confusion matrix "
        f"{out / 'eval' / 'confusion.png'}",
        flush=True,
    )

    print(
        f"[4/4] predict: {args.num_predict} held-out clips (folders and an mp4) with attention overlays",
        flush=True,
    )
    predicted = predict_examples(workdir, config, out, args.num_predict)

    total = time.perf_counter() - t_start
    report = {
        "dataset": d.name,
        "train_seconds": round(train_s, 1),
        "steps_per_s": round(float(np.median(speed)), 2) if speed else None,
        "clips_per_s": round(float(np.median(speed)) * config.global_batch_size, 1) if speed else None,
        "top1": summary["top1"],
        "top5": summary["top5"],
        "mean_class_accuracy": summary["mean_class_accuracy"],
        "chance": chance,
        "predictions": predicted,
        "total_seconds": round(total, 1),
    }
    (out / "demo_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"done in {total:.0f} s: top-1 {summary['top1']:.3f} vs chance {chance:.3f}; "
        f"train {train_s:.0f} s at {report['steps_per_s']} steps/s; report {out / 'demo_report.json'}"
    )
    return 0


def predict_examples(workdir: Path, config: Any, out: Path, count: int) -> list[dict[str, Any]]:
    """Export `count` held-out clips and classify them with `lsta_jax.predict`, writing attention overlays.

    synthetic_ego: the raw test clips (full frames, all frames) as frame folders plus one .mp4, predicted with
    the checkpoint's own evaluation geometry, i.e. exactly what `python -m lsta_jax.predict --checkpoint
    WORKDIR ...` does. toy: the in-memory clips are already at model size, so they are only normalised.
    """
    from lsta_jax.checkpoint import load_class_names, load_model
    from lsta_jax.predict import checkpoint_geometry, predict

    d = config.data
    names = load_class_names(workdir)
    if d.name == "toy":
        from lsta_jax.train.input_pipeline import toy_frames

        frames, labels = toy_frames(count, config.model.num_classes, d.num_frames, d.crop_size, seed=12345)
        inputs = [str(f) for f in export_frame_folders(frames, labels, names, out / "clips")]
        true_names = [names[label] for label in labels]
        geometry = {"num_frames": d.num_frames, "size": d.crop_size, "resize_shorter": d.crop_size}
    else:
        from lsta_jax.data import SyntheticOptions, export_clips

        exported = export_clips(SyntheticOptions(**d.synthetic), out / "clips", "test", count)
        inputs = [e["frames"] for e in exported[:-1]] + [e["mp4"] for e in exported[-1:]]
        true_names = [e["class_name"] for e in exported]
        geometry = checkpoint_geometry(workdir)
    model, variables = load_model(workdir, which="best")
    results = predict(
        model,
        variables,
        inputs,
        class_names=names,
        top_k=3,
        attention_dir=out / "overlays",
        workers=1,
        **geometry,
    )
    rows = []
    for source, true_name, p in zip(inputs, true_names, results, strict=True):
        name = Path(source).name
        if p.error:
            print(f"      {name}: FAILED {p.error}")
            rows.append({"clip": name, "error": p.error})
            continue
        best, score = p.top_k[0]
        overlay = str(p.overlay[0]) if p.overlay else None
        print(f"      {name}: predicted {best} ({score:.2f}), true {true_name}; overlay {overlay}")
        rows.append({"clip": name, "true": true_name, "predicted": best, "score": score, "overlay": overlay})
    return rows


if __name__ == "__main__":
    sys.exit(main())
