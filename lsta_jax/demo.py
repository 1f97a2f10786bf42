"""`make demo`: LSTA on the embedded data with the paper's protocol, from pre-training to attention overlays.

Steps (all on the CPU; 459 s measured on 2 idle cores from a fresh clone, everything under OUTPUT):
1. data: the `synthetic_objects` (32 object kinds, single frames) and `synthetic_ego` (18 verb_noun classes,
   per-frame boxes of hand / target / confuser) tfds builders, built into OUTPUT/tfds;
2. pre-train: a small ResNet on `synthetic_objects` (`configs/synthetic_pretrain.py`, BatchNorm in training
   mode): the ImageNet stage, OUTPUT/pretrain;
3. stage 1: LSTA on `synthetic_ego` from that backbone (`configs/synthetic.py`, backbone and BatchNorm
   frozen), OUTPUT/stage1;
4. stage 2: also `layer4` conv1/conv2 and the backbone fc (`configs/synthetic.py:stage=2`), OUTPUT/workdir
   (`--no-stage2` skips it: OUTPUT/workdir is then the stage-1 model);
5. evaluate: top-1, mean class accuracy, per-class recall and the pointing game (the attention's argmax cell
   on the hand or the target object) on the 144 held-out clips, with the attention scores a constant map
   fails beside the null baselines (docs/attention-scores.md); confusion matrix in OUTPUT/eval;
6. predict: the first held-out clips, exported exactly as `python -m lsta_jax.data export --split test`
   writes them (frame folders and one mp4), classified from OUTPUT/workdir with the checkpoint's geometry,
   with attention overlays and the ground-truth boxes (hand white, target green, confuser red) in
   OUTPUT/overlays: rows of frames, LSTA's maps u_t, and the frozen selector's softmaxed CAM (what u_t
   would be without the attention memory).
`--dataset toy` is a one-minute variant on in-memory clips (a from-scratch backbone, no stages).
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

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ATTENTION_KEYS = ("pointing_strict", "target_over_confuser", "energy_in_box", "attention_baselines")


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


def demo_config(fast: bool, dataset: str = "synthetic_ego", stage: str = "stage1") -> Any:
    """The config of one demo stage ('pretrain', 'stage1', 'stage2'; `dataset='toy'`: the toy config)."""
    from lsta_jax.train.config import load_config

    if dataset == "toy":
        config = load_config(f"{CONFIGS / 'synthetic.py'}:toy")
    elif stage == "pretrain":
        config = load_config(str(CONFIGS / "synthetic_pretrain.py"))
    else:
        config = load_config(f"{CONFIGS / 'synthetic.py'}:stage={2 if stage == 'stage2' else 1}")
    if fast:  # for a quick look (tests): a few steps only
        config.total_steps = 3
    config.eval_every_epochs = 0
    config.log_every_steps = 10
    return config


def _train(config: Any, workdir: Path, label: str) -> float:
    from lsta_jax.train.trainer import train_and_evaluate

    t0 = time.perf_counter()
    summary = train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - t0
    if summary:
        print(f"      {label}: held-out top-1 {summary['top1']:.3f} ({seconds:.0f} s)", flush=True)
    return seconds


def per_class_lines(summary: dict[str, Any], names: list[str], width: int = 4) -> list[str]:
    """Per-class recall as aligned 'name 0.83' cells, `width` per line."""
    cells = [
        f"{name:>14s} {'  -  ' if acc is None else f'{acc:.2f}'}"
        for name, acc in zip(names, summary["per_class_accuracy"], strict=True)
    ]
    return ["  ".join(cells[i : i + width]) for i in range(0, len(cells), width)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="demo_out", help="directory for everything the demo writes")
    parser.add_argument(
        "--fresh", action="store_true", help="delete OUTPUT first (else finished stages are reused)"
    )
    parser.add_argument("--fast", action="store_true", help="3 steps per stage (a smoke test, low accuracy)")
    parser.add_argument(
        "--dataset", default="synthetic_ego", choices=("toy", "synthetic_ego"), help="training data"
    )
    parser.add_argument("--no-stage2", action="store_true", help="stop after stage 1 (a shorter demo)")
    parser.add_argument("--num-predict", type=int, default=4, help="held-out clips to predict with overlays")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the LSTA stages (default: the config's, 0); the pre-training keeps its own, shared as "
        "ImageNet weights are; use another --output (finished stages are reused). One run is one draw: "
        "docs/results.md gives the spread over seeds",
    )
    args = parser.parse_args(argv)

    from lsta_jax.checkpoint import load_class_names
    from lsta_jax.evaluate import attention_report, evaluate_checkpoint

    out = Path(args.output).absolute()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    workdir = out / "workdir"
    timings: dict[str, float] = {}
    if args.dataset == "toy":
        config = demo_config(args.fast, "toy")
        config.seed = config.seed if args.seed is None else args.seed
        print(f"[1/3] train: toy clips, {config.model.num_classes} classes, from scratch", flush=True)
        timings["train"] = _train(config, workdir, "toy")
    else:
        configs = {stage: demo_config(args.fast, "synthetic_ego", stage) for stage in ("pretrain", "stage1")}
        if not args.no_stage2:
            configs["stage2"] = demo_config(args.fast, "synthetic_ego", "stage2")
        for stage, c in configs.items():
            c.data.data_dir = c.data.data_dir or str(out / "tfds")  # built on the first run, reused after
            if args.seed is not None and stage != "pretrain":
                c.seed = args.seed
        workdirs = {"pretrain": out / "pretrain", "stage1": out / "stage1", "stage2": workdir}
        if args.no_stage2:
            workdirs["stage1"] = workdir
        p, s1 = configs["pretrain"], configs["stage1"]
        print(
            f"[1/6] data: synthetic_objects ({p.model.num_classes} object kinds) and synthetic_ego "
            f"({s1.model.num_classes} classes, boxes) in {out / 'tfds'}",
            flush=True,
        )
        print(
            f"[2/6] pre-train: ResNet {tuple(p.model.stage_sizes)} x {tuple(p.model.widths)} on "
            f"synthetic_objects, BatchNorm training mode, {p.num_epochs} epochs",
            flush=True,
        )
        timings["pretrain"] = _train(p, workdirs["pretrain"], "pre-training (object classification)")
        s1.init_from = str(workdirs["pretrain"])
        print(
            f"[3/6] stage 1: LSTA cell + classifier on {s1.data.num_frames} frames of {s1.data.crop_size} px "
            f"(7x7 attention), backbone and BatchNorm frozen, {s1.num_epochs} epochs",
            flush=True,
        )
        timings["stage1"] = _train(s1, workdirs["stage1"], "stage 1")
        config = s1
        if "stage2" in configs:
            config = configs["stage2"]
            config.init_from = str(workdirs["stage1"])
            print(f"[4/6] stage 2: + layer4 conv1/conv2 and the selector fc, {config.num_epochs} epochs")
            timings["stage2"] = _train(config, workdirs["stage2"], "stage 2")
        else:
            print("[4/6] stage 2: skipped (--no-stage2)")

    print("[5/6] evaluate: the final model on the held-out clips", flush=True)
    summary = evaluate_checkpoint(workdir, config, which="latest", output=out / "eval")
    names = load_class_names(workdir) or []
    chance = 1.0 / config.model.num_classes
    recalls = [a for a in summary["per_class_accuracy"] if a is not None]
    print(
        f"      top-1 {summary['top1']:.3f} (chance {chance:.3f}), mean class accuracy "
        f"{summary['mean_class_accuracy']:.3f}, lowest class recall {min(recalls):.2f} on {summary['count']} "
        f"clips",
        flush=True,
    )
    if "pointing_game" in summary:
        print(
            f"      pointing game {summary['pointing_game']:.3f} (attention argmax on the hand or the target "
            f"object, +-1 cell, {summary['pointing_frames']} frames); "
            f"{summary['pointing_game_hand_in_view']:.3f} on the frames that show the hand",
            flush=True,
        )
        per_frame = " ".join("  - " if r is None else f"{r:.2f}" for r in summary["pointing_per_frame"])
        print(f"      pointing game per frame position: {per_frame}", flush=True)
        for line in attention_report(summary):
            print("      " + line, flush=True)
    print("      per-class recall:")
    for line in per_class_lines(summary, names):
        print("      " + line)
    print(f"      confusion matrix {out / 'eval' / 'confusion.png'}", flush=True)

    print(f"[6/6] predict: {args.num_predict} held-out clips (folders and an mp4) with attention overlays")
    predicted = predict_examples(workdir, config, out, args.num_predict)

    total = time.perf_counter() - t_start
    report = {
        "dataset": config.data.name,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "top1": summary["top1"],
        "top5": summary["top5"],
        "mean_class_accuracy": summary["mean_class_accuracy"],
        "per_class_recall": dict(zip(names, summary["per_class_accuracy"], strict=True)),
        "pointing_game": summary.get("pointing_game"),
        "pointing_game_hand_in_view": summary.get("pointing_game_hand_in_view"),
        "pointing_per_frame": summary.get("pointing_per_frame"),
        **{k: summary.get(k) for k in ATTENTION_KEYS},
        "chance": chance,
        "seed": int(config.seed),
        "predictions": predicted,
        "total_seconds": round(total, 1),
    }
    (out / "demo_report.json").write_text(json.dumps(report, indent=2) + "\n")
    pointing = f", pointing game {summary['pointing_game']:.3f}" if "pointing_game" in summary else ""
    print(
        f"done in {total:.0f} s: top-1 {summary['top1']:.3f} vs chance {chance:.3f}{pointing} (seed "
        f"{config.seed}: one draw; the spread over seeds and machines is on the Results page); report "
        f"{out / 'demo_report.json'}"
    )
    return 0


def predict_examples(workdir: Path, config: Any, out: Path, count: int) -> list[dict[str, Any]]:
    """Export `count` held-out clips and classify them with `lsta_jax.predict`, writing attention overlays.

    synthetic_ego: the first test clips as `python -m lsta_jax.data export --split test` writes them (full
    frames, all frames; frame folders plus one .mp4), predicted with the checkpoint's own evaluation geometry,
    i.e. exactly what `python -m lsta_jax.predict --checkpoint WORKDIR ...` does; the overlays also show the
    ground-truth boxes. toy: the in-memory clips are already at model size, so they are only normalised.
    """
    from lsta_jax import viz
    from lsta_jax.checkpoint import load_class_names, load_model
    from lsta_jax.predict import checkpoint_geometry, predict

    d = config.data
    names = load_class_names(workdir)
    boxes: list[np.ndarray | None] = [None] * count
    if d.name == "toy":
        from lsta_jax.data.toy import toy_frames

        frames, labels = toy_frames(count, config.model.num_classes, d.num_frames, d.crop_size, seed=12345)
        inputs = [str(f) for f in export_frame_folders(frames, labels, names, out / "clips")]
        true_names = [names[label] for label in labels]
        geometry = {"num_frames": d.num_frames, "size": d.crop_size, "resize_shorter": d.crop_size}
    else:
        from lsta_jax.data import SyntheticOptions, export_clips, transforms
        from lsta_jax.data.synthetic import generate_with_boxes

        options = SyntheticOptions(**d.synthetic)
        exported = export_clips(options, out / "clips", "test", count)
        inputs = [e["frames"] for e in exported[:-1]] + [e["mp4"] for e in exported[-1:]]
        true_names = [e["class_name"] for e in exported]
        geometry = checkpoint_geometry(workdir)
        all_boxes = generate_with_boxes(options, "test", count)[2]
        picked = transforms.sample_indices(options.num_frames, geometry["num_frames"]) - 1
        boxes = [
            transforms.eval_transform_boxes(
                b[picked],
                options.frame_size,
                options.frame_size,
                geometry["size"],
                geometry["resize_shorter"],
            )
            for b in all_boxes
        ]
    model, variables = load_model(workdir)
    results = predict(model, variables, inputs, class_names=names, top_k=3, workers=1, **geometry)
    from lsta_jax.data import load_clip
    from lsta_jax.selector_cam import selector_cam_fn

    selector = selector_cam_fn(model, variables)

    rows = []
    for i, (source, true_name, p) in enumerate(zip(inputs, true_names, results, strict=True)):
        name = Path(source).name
        if p.error:
            print(f"      {name}: FAILED {p.error}")
            rows.append({"clip": name, "error": p.error})
            continue
        best, score = p.top_k[0]
        clip = load_clip(source, min_frames=geometry["num_frames"], **geometry)
        overlay = viz.write_overlays(
            out / "overlays",
            f"{i:02d}_{Path(source).stem}",
            viz.denormalize(clip),
            p.attention,
            boxes=boxes[i],
            selector_attention=None if selector is None else np.asarray(selector[0](clip[None]))[0],
            title=f"{best} ({score:.2f}), true {true_name}; rows: frames, LSTA u_t, frozen selector CAM",
        )
        print(f"      {name}: predicted {best} ({score:.2f}), true {true_name}; overlay {overlay[0]}")
        rows.append(
            {"clip": name, "true": true_name, "predicted": best, "score": score, "overlay": str(overlay[0])}
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
