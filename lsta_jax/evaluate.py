"""Evaluate a checkpoint: `python -m lsta_jax.evaluate --checkpoint PATH [--config configs/X.py[:arg]]`.

PATH is a training workdir (its 'latest' or `--which best` / step checkpoint) or a model directory. The
evaluation split and preprocessing come from the config: by default the workdir's own `config.json` (what it
was trained with), else `--config` (required for a model directory); `--config.field=value` overrides work as
for training. A config whose dataset, class count or input (frames, crop size, modality) does not match the
model is refused before anything runs (`lsta_jax.train.consistency`).
Prints top-1, top-5, mean class accuracy and verb/noun accuracies (class names `verb_noun`, split
at the first '_'), and for models with verb/noun heads the challenge's verb/noun/action top-1, top-5 and
class-mean recall (`train/metrics.py`); writes `summary.json`, `per_class.csv`, `confusion.csv` and
`confusion.png` to `--output` (default PATH/eval_<which>). Padded last batches are counted exactly once
(metrics are (sum, count)).

Late fusion (the paper's "two stream late fusion", ego-rnn's `eval-run-twoStream.py`): `--flow-checkpoint
FLOW` beside an RGB `--checkpoint` scores every clip with 0.5 * (flow logits averaged over `--flow-segments`
stacks, default 10) + 0.5 * (RGB logits), raw logits (`lsta_jax.models.two_stream.late_fusion`); the summary
adds each stream's own top-1 (`rgb_top1`, `flow_top1`).
When the evaluation data carry ground-truth boxes (`synthetic_ego`) and the model returns attention maps, the
pointing-game score (`lsta_jax.pointing`: the map's argmax cell on the hand or the target object, one cell of
tolerance) is computed too and written beside top-1 as `pointing_game` (with `pointing_frames`, the frames
counted), with the same hits over the frames that show the hand (`pointing_game_hand_in_view`) and per frame
position (`pointing_per_frame`); beside it the scores a constant map fails (`lsta_jax.attention_scores`:
`pointing_strict`, `target_over_confuser`, `energy_in_box`) and, in `attention_baselines`, the same scores
of the uniform map, a random cell, the best constant cell (an oracle) and the model's frozen selector CAM,
on the same frames (docs/attention-scores.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lsta_jax import cli


def workdir_config(checkpoint: str | Path) -> Any:
    """The training config a workdir saved (`config.json`) as a ConfigDict; a clear error for a directory
    without one (a converted model directory: its data must be named with `--config`)."""
    import ml_collections

    from lsta_jax.train.consistency import saved_config

    saved = saved_config(checkpoint)
    if saved is None:
        raise FileNotFoundError(
            f"{checkpoint} has no config.json (not a training workdir): pass --config configs/X.py[:arg] "
            "naming the data to evaluate on"
        )
    return ml_collections.ConfigDict(saved)


def evaluate_checkpoint(
    checkpoint: str | Path, config: Any = None, which: str = "latest", output: str | Path | None = None
) -> dict[str, Any]:
    """Evaluate `checkpoint` on `config`'s eval split (default: the workdir's own `config.json`); write the
    outputs; return the summary. Refuses (`ConfigMismatch`) a config whose dataset, classes or input do not
    match the model."""
    import jax

    from lsta_jax.checkpoint import load_class_names, load_model
    from lsta_jax.train import metrics as metrics_lib
    from lsta_jax.train import trainer
    from lsta_jax.train.consistency import check_checkpoint_classes, check_checkpoint_fits
    from lsta_jax.train.input_pipeline import make_data

    config = workdir_config(checkpoint) if config is None else config
    model, variables = load_model(checkpoint, which=which)
    check_checkpoint_fits(checkpoint, model, config)
    data = make_data(config)
    check_checkpoint_classes(checkpoint, model, config, data.class_names)
    class_names = load_class_names(checkpoint) or data.class_names
    steps = trainer.compile_steps(model, None, None)
    variables = steps.replicate(
        {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
    )
    summary = metrics_lib.summarize(trainer.evaluate(steps, variables, data.make_eval()), class_names)
    summary.update(attention_pointing(model, variables, data.make_eval()) or {})
    if jax.process_index() == 0:
        out = Path(output) if output else Path(checkpoint) / f"eval_{which}"
        trainer.write_eval_outputs(out, dict(summary), class_names, which)
        summary["output"] = str(out)
    return summary


def attention_pointing(model: Any, variables: Any, batches: Any) -> dict[str, Any] | None:
    """The attention scores of the model's maps u_t over eval batches that carry `boxes`; None when the
    batches have no boxes (flow-only batches have none) or the model no `attention` output. The model gets
    every input of the batch: a two-stream model is scored on its RGB maps. Padding is skipped.

    Returns the pointing game (`lsta_jax.pointing`): 'pointing_game', 'pointing_frames',
    'pointing_game_hand_in_view', 'pointing_per_frame'; the scores of `lsta_jax.attention_scores`:
    'pointing_strict', 'target_over_confuser' (with 'target_confuser_frames'), 'energy_in_box'; and
    'attention_baselines': the same scores of the null maps on the same frames (uniform, random cell, best
    constant cell) and of the model's frozen selector CAM (`lsta_jax.selector_cam`, when the model has one).
    """
    import jax
    import numpy as np

    from lsta_jax import attention_scores
    from lsta_jax.pointing import hand_in_view, pointing_game, pointing_hits, pointing_per_frame
    from lsta_jax.selector_cam import selector_cam_fn
    from lsta_jax.train.trainer import model_inputs

    forward = jax.jit(lambda v, inputs: model.apply(v, **inputs).get("attention"))
    selector = selector_cam_fn(model, variables)
    maps, cams, boxes = [], [], []
    for batch in batches:
        if "boxes" not in batch:
            return None
        attention = forward(variables, model_inputs(batch))
        if attention is None:
            return None
        real = np.asarray(batch.get("mask", np.ones(len(attention), bool)), bool)
        maps.append(np.asarray(attention)[real])
        boxes.append(np.asarray(batch["boxes"])[real])
        if selector is not None:
            cams.append(np.asarray(selector[0](batch["clip"]))[real])
    if not maps:
        return None
    maps, boxes = np.concatenate(maps), np.concatenate(boxes)
    hits, counted = pointing_hits(maps, boxes)
    hand = hand_in_view(boxes, *maps.shape[-2:])
    scores = attention_scores.score_maps(maps, boxes)
    baselines = attention_scores.null_baselines(boxes, *maps.shape[-2:])
    if cams:
        baselines["selector_cam"] = attention_scores.score_maps(np.concatenate(cams), boxes)
    return {
        "pointing_game": pointing_game(hits, counted),
        "pointing_frames": int(counted.sum()),
        "pointing_game_hand_in_view": pointing_game(hits & hand, counted & hand),
        "pointing_per_frame": pointing_per_frame(hits, counted),
        **{k: scores[k] for k in ("pointing_strict", "target_over_confuser", "energy_in_box")},
        "target_confuser_frames": scores["target_confuser_frames"],
        "attention_baselines": baselines,
    }


def attention_report(summary: dict[str, Any]) -> list[str]:
    """The attention scores of a summary beside their baselines, as table lines (none without scores)."""
    from lsta_jax.attention_scores import report_lines

    if "attention_baselines" not in summary:
        return []
    baselines = summary["attention_baselines"]
    return ["attention scores (docs/attention-scores.md):", *report_lines(summary, baselines)]


def _input_name(model: Any) -> str:
    """The name of a model's first input argument (`clip` for RGB models, `flow` for flow models)."""
    import inspect

    return next(iter(inspect.signature(model.__call__).parameters))


def evaluate_late_fusion(
    checkpoint: str | Path,
    flow_checkpoint: str | Path,
    config: Any = None,
    which: str = "latest",
    flow_which: str | None = None,
    flow_segments: int = 10,
    flow_weight: float = 0.5,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Late fusion of an RGB and a flow checkpoint on `config`'s eval split; write the outputs; return the
    summary (fused metrics, plus `rgb_top1` and `flow_top1` of each stream alone)."""
    import copy

    import jax
    import numpy as np

    from lsta_jax.checkpoint import load_class_names, load_model
    from lsta_jax.models.two_stream import late_fusion
    from lsta_jax.train import metrics as metrics_lib
    from lsta_jax.train import trainer
    from lsta_jax.train.consistency import check_checkpoint_classes, check_checkpoint_fits
    from lsta_jax.train.input_pipeline import make_data

    config = workdir_config(checkpoint) if config is None else config

    rgb_model, rgb_vars = load_model(checkpoint, which=which)
    flow_model, flow_vars = load_model(flow_checkpoint, which=flow_which or which)
    for path, model, want in ((checkpoint, rgb_model, "clip"), (flow_checkpoint, flow_model, "flow")):
        if _input_name(model) != want:
            raise ValueError(
                f"{path} holds a {type(model).__name__} (input {_input_name(model)!r}); late fusion needs an "
                "RGB model (input 'clip') as --checkpoint and a flow model (input 'flow') as "
                "--flow-checkpoint"
            )
    rgb_config = copy.deepcopy(config)
    flow_config = copy.deepcopy(config)
    with rgb_config.unlocked(), flow_config.unlocked():
        rgb_config.data.modality = "rgb"
        flow_config.data.modality = "flow"
        flow_config.data.flow_segments = int(flow_segments)
    check_checkpoint_fits(checkpoint, rgb_model, rgb_config)
    check_checkpoint_fits(flow_checkpoint, flow_model, flow_config, check_geometry=False)
    rgb_data, flow_data = make_data(rgb_config), make_data(flow_config)
    check_checkpoint_classes(checkpoint, rgb_model, rgb_config, rgb_data.class_names)
    check_checkpoint_classes(flow_checkpoint, flow_model, flow_config, flow_data.class_names)
    class_names = load_class_names(checkpoint) or rgb_data.class_names

    def sums(variables: Any, batch: dict[str, Any]) -> dict[str, Any]:
        rgb_logits = rgb_model.apply(variables["rgb"], clip=batch["clip"])["logits"]
        flow = batch["flow"]
        stacks = flow.reshape(-1, *flow.shape[-3:])  # (B, S, H, W, 2L) or (B, H, W, 2L) -> (B*S, H, W, 2L)
        flow_logits = flow_model.apply(variables["flow"], flow=stacks)["logits"]
        flow_logits = flow_logits.reshape(flow.shape[0], -1, flow_logits.shape[-1])  # (B, S, M)
        label, mask = batch["label"], batch.get("mask")
        return {
            "fused": metrics_lib.batch_sums(late_fusion(rgb_logits, flow_logits, flow_weight), label, mask),
            "rgb": metrics_lib.batch_sums(rgb_logits, label, mask),
            "flow": metrics_lib.batch_sums(flow_logits.mean(axis=1), label, mask),
        }

    steps = trainer.compile_steps(rgb_model, None, None)  # the mesh and shardings of the evaluation
    step = jax.jit(sums, in_shardings=(steps.replicated, steps.data), out_shardings=steps.replicated)
    keep = ("params", "batch_stats")
    variables = steps.replicate(
        {
            "rgb": {k: v for k, v in rgb_vars.items() if k in keep},
            "flow": {k: v for k, v in flow_vars.items() if k in keep},
        }
    )
    totals: dict[str, Any] = {"fused": None, "rgb": None, "flow": None}
    for rgb_batch, flow_batch in zip(rgb_data.make_eval(), flow_data.make_eval(), strict=True):
        if not (
            np.array_equal(rgb_batch["label"], flow_batch["label"])
            and np.array_equal(rgb_batch["mask"], flow_batch["mask"])
        ):
            raise ValueError(
                "the RGB and the flow evaluation passes disagree on the clips (labels or padding)"
            )
        batch = {"clip": rgb_batch["clip"], **{k: flow_batch[k] for k in ("flow", "label", "mask")}}
        for key, value in jax.device_get(step(variables, steps.put_batch(batch))).items():
            totals[key] = metrics_lib.add_sums(totals[key], value)
    if totals["fused"] is None:
        raise ValueError("the evaluation split yielded no batches")
    summary = metrics_lib.summarize(totals["fused"], class_names)
    summary["rgb_top1"] = metrics_lib.summarize(totals["rgb"])["top1"]
    summary["flow_top1"] = metrics_lib.summarize(totals["flow"])["top1"]
    summary["late_fusion"] = {
        "rule": "flow_weight * mean over stacks of the flow logits + (1 - flow_weight) * RGB logits",
        "flow_weight": flow_weight,
        "flow_segments": int(flow_segments),
        "rgb_checkpoint": str(checkpoint),
        "flow_checkpoint": str(flow_checkpoint),
    }
    if jax.process_index() == 0:
        out = Path(output) if output else Path(checkpoint) / f"eval_{which}_late_fusion"
        trainer.write_eval_outputs(out, dict(summary), class_names, which)
        summary["output"] = str(out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m lsta_jax.evaluate", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="training workdir or model directory")
    parser.add_argument(
        "--config",
        default=None,
        help="configs/X.py[:arg] naming the data and preprocessing (default: the workdir's config.json)",
    )
    parser.add_argument(
        "--which",
        type=cli.checkpoint_choice,
        default="latest",
        help="checkpoint of a training workdir: latest, best or a step number",
    )
    parser.add_argument("--output", default=None, help="output directory (default: CHECKPOINT/eval_<which>)")
    parser.add_argument(
        "--flow-checkpoint",
        help="late fusion: a flow model (e.g. kind egornn_flow) fused with the RGB --checkpoint",
    )
    parser.add_argument(
        "--flow-which", type=cli.checkpoint_choice, help="checkpoint of the flow workdir (default: --which)"
    )
    parser.add_argument(
        "--flow-segments",
        type=cli.positive_int,
        default=10,
        help="flow stacks averaged per clip (ego-rnn: 10)",
    )
    parser.add_argument(
        "--flow-weight", type=float, default=0.5, help="weight of the flow scores in the fusion"
    )
    args, rest = parser.parse_known_args(argv)
    overrides = cli.config_overrides(parser, rest)
    if not 0.0 <= args.flow_weight <= 1.0:
        parser.error(f"argument --flow-weight: expected a number in [0, 1], got {args.flow_weight}")
    from lsta_jax.train.config import apply_overrides, load_config

    try:
        config = load_config(args.config) if args.config else workdir_config(args.checkpoint)
        config = apply_overrides(config, overrides)
        if args.flow_checkpoint:
            summary = evaluate_late_fusion(
                args.checkpoint,
                args.flow_checkpoint,
                config,
                args.which,
                args.flow_which,
                args.flow_segments,
                args.flow_weight,
                args.output,
            )
        else:
            summary = evaluate_checkpoint(args.checkpoint, config, args.which, args.output)
    except (FileNotFoundError, AttributeError, KeyError, ValueError) as e:
        return cli.fail(str(e))
    from lsta_jax.train.metrics import REPORT_KEYS

    keys = (*REPORT_KEYS, "pointing_game", "pointing_game_hand_in_view", "count", "rgb_top1", "flow_top1")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
    for line in attention_report(summary):  # the attention scores beside their null baselines, if any
        print(line)
    print(f"wrote {summary.get('output')}/summary.json, per_class.csv, confusion.csv, confusion.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
