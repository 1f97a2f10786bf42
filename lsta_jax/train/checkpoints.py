"""Training checkpoints: an orbax CheckpointManager under `WORKDIR/checkpoints/<step>/`.

Each step directory holds three items:
  `model/`  {'params', 'batch_stats'}  (a StandardCheckpointer tree, what `load_model` restores)
  `train/`  {'step', 'opt_state', 'rng'}
  `data/`   the train iterator state, one `process_<i>-of-<n>.json` per process (grain's handler)
The latest `keep` checkpoints are preserved, plus the best one by `best_metric` (evaluation results are passed
as checkpoint metrics). `WORKDIR/checkpoints/best.json` names the best step for `restore_model_variables`.
This module writes checkpoints; reading a workdir's model variables (`checkpoint_steps`, `resolve_step`,
`restore_model_variables`) lives in `lsta_jax.checkpoint`, which needs nothing from training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grain
import orbax.checkpoint as ocp

from lsta_jax.checkpoint import (  # noqa: F401  (the workdir layout and its readers live in checkpoint.py)
    BEST_JSON,
    CHECKPOINTS,
    checkpoint_steps,
    resolve_step,
    restore_model_variables,
)


def make_manager(
    workdir: str | Path, keep: int = 2, best_metric: str | None = "top1"
) -> ocp.CheckpointManager:
    """CheckpointManager keeping the latest `keep` steps and the best by `best_metric` (higher is better)."""
    directory = Path(workdir).absolute() / CHECKPOINTS
    policies: list[Any] = [ocp.checkpoint_managers.LatestN(n=keep)]
    if best_metric:
        policies.append(
            ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda m: float(m[best_metric]), n=1, keep_checkpoints_without_metrics=False
            )
        )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        create=True,
        enable_async_checkpointing=False,
    )
    return ocp.CheckpointManager(directory, options=options, item_names=("model", "train", "data"))


def save(
    manager: ocp.CheckpointManager,
    step: int,
    model_vars: dict[str, Any],
    train_vars: dict[str, Any],
    data_iterator: Any | None,
    metrics: dict[str, float] | None = None,
    best_metric: str | None = "top1",
) -> None:
    """Save one checkpoint (blocking); update `best.json` when `metrics[best_metric]` is a new best."""
    items = {"model": ocp.args.StandardSave(model_vars), "train": ocp.args.StandardSave(train_vars)}
    if data_iterator is not None:
        items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)
    manager.wait_until_finished()
    if metrics and best_metric and best_metric in metrics:
        path = Path(manager.directory) / BEST_JSON
        best = json.loads(path.read_text()) if path.is_file() else None
        if best is None or metrics[best_metric] >= best["value"]:  # ties: the later, as orbax BestN
            path.write_text(json.dumps({"step": step, "metric": best_metric, "value": metrics[best_metric]}))


def restore(
    manager: ocp.CheckpointManager,
    step: int,
    abstract_model: dict[str, Any],
    abstract_train: dict[str, Any],
    data_iterator: Any | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore (model_vars, train_vars) of `step` against abstract targets; the iterator is set in place."""
    items = {
        "model": ocp.args.StandardRestore(abstract_model),
        "train": ocp.args.StandardRestore(abstract_train),
    }
    if data_iterator is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = manager.restore(step, args=ocp.args.Composite(**items))
    return dict(restored["model"]), dict(restored["train"])
