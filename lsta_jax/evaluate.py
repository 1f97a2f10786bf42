"""Evaluate a checkpoint: `python -m lsta_jax.evaluate --checkpoint PATH --config configs/X.py[:arg]`.

PATH is a training workdir (its 'latest' or `--which best` / step checkpoint) or a model directory. The
evaluation split and preprocessing come from the config (`--config.field=value` overrides work as for
training). Prints top-1, top-5, mean class accuracy and verb/noun accuracies (class names `verb_noun`, split
at the first '_'); writes `summary.json`, `per_class.csv`, `confusion.csv` and `confusion.png` to `--output`
(default PATH/eval_<which>). Padded last batches are counted exactly once (metrics are (sum, count)).
When the evaluation data carry ground-truth boxes (`synthetic_ego`) and the model returns attention maps, the
pointing-game score (`lsta_jax.pointing`: the map's argmax cell on the hand or the target object, one cell of
tolerance) is computed too and written beside top-1 as `pointing_game` (with `pointing_frames`, the frames
counted).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def evaluate_checkpoint(
    checkpoint: str | Path, config: Any, which: str = "latest", output: str | Path | None = None
) -> dict[str, Any]:
    """Evaluate `checkpoint` on `config`'s eval split; write the outputs; return the summary."""
    import jax

    from lsta_jax.checkpoint import load_class_names, load_model
    from lsta_jax.train import metrics as metrics_lib
    from lsta_jax.train import trainer
    from lsta_jax.train.input_pipeline import make_data

    model, variables = load_model(checkpoint, which=which)
    data = make_data(config)
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
    """{'pointing_game', 'pointing_frames'} of the model's attention maps over eval batches that carry
    `boxes`; None when the batches have no boxes or the model no `attention` output. Padding is skipped."""
    import jax
    import numpy as np

    from lsta_jax.pointing import pointing_game, pointing_hits

    forward = jax.jit(lambda v, clip: model.apply(v, clip=clip).get("attention"))
    hits, counted = [], []
    for batch in batches:
        if "boxes" not in batch:
            return None
        attention = forward(variables, batch["clip"])
        if attention is None:
            return None
        h, c = pointing_hits(np.asarray(attention), batch["boxes"])
        real = np.asarray(batch.get("mask", np.ones(len(h), bool)))[:, None]
        hits.append(h & real)
        counted.append(c & real)
    if not hits:
        return None
    return {
        "pointing_game": pointing_game(np.concatenate(hits), np.concatenate(counted)),
        "pointing_frames": int(np.concatenate(counted).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="training workdir or model directory")
    parser.add_argument("--config", required=True, help="configs/X.py[:arg] (data and preprocessing)")
    parser.add_argument("--which", default="latest", help="'latest', 'best' or a step (training workdirs)")
    parser.add_argument("--output", default=None, help="output directory (default CHECKPOINT/eval_<which>)")
    args, rest = parser.parse_known_args(argv)
    unknown = [r for r in rest if not r.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognised arguments {unknown}")
    from lsta_jax.train.config import apply_overrides, load_config

    try:
        config = apply_overrides(load_config(args.config), rest)
        summary = evaluate_checkpoint(args.checkpoint, config, args.which, args.output)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = ("top1", "top5", "mean_class_accuracy", "verb_accuracy", "noun_accuracy", "pointing_game", "loss")
    keys += ("count",)
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
    print(f"wrote {summary.get('output')}/summary.json, per_class.csv, confusion.csv, confusion.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
