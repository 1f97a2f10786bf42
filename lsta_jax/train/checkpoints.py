"""Training checkpoints: an orbax CheckpointManager under `WORKDIR/checkpoints/<step>/`.

Each step directory holds three items:
  `model/`  {'params', 'batch_stats'}  (a StandardCheckpointer tree, what `load_model` restores)
  `train/`  {'step', 'opt_state', 'rng'}
  `data/`   the train iterator state, one `process_<i>-of-<n>.json` per process (grain's handler)
The latest `keep` checkpoints are preserved, plus the best one by `best_metric` (evaluation results are passed
as checkpoint metrics). `WORKDIR/checkpoints/best.json` names the best step for `restore_model_variables`.
This module writes checkpoints; reading a workdir's model variables (`checkpoint_steps`, `resolve_step`,
`restore_model_variables`) lives in `lsta_jax.checkpoint`, which needs nothing from training.

A run resumes on another number of devices or processes: arrays are restored onto the current run's
shardings, never the saved layout. The data iterator's state is saved per process; it carries over to another
process count only when the iterator says its state does not depend on the process
(`process_independent_state = True`, e.g. the in-memory toy iterator, whose state is the global position).
A grain DataLoader's state holds this process's shard of the sampler, so a changed process count is refused
in one line (`CheckpointError`). A checkpoint whose files cannot be read raises `UnreadableCheckpoint`; the
trainer then sets it aside (`set_aside`) and resumes from the newest readable one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from lsta_jax.checkpoint import (  # noqa: F401  (the workdir layout and its readers live in checkpoint.py)
    BEST_JSON,
    CHECKPOINTS,
    CheckpointError,
    UnreadableCheckpoint,
    check_fits,
    checkpoint_steps,
    damaged,
    resolve_step,
    restore_model_variables,
    with_sharding,
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


_PROCESS_FILE = re.compile(r"process_(\d+)-of-(\d+)\.json")


def saved_process_count(data_dir: Path) -> int | None:
    """The process count a checkpoint's `data/` item was written by (None: no iterator state saved)."""
    names = [_PROCESS_FILE.fullmatch(f.name) for f in data_dir.glob("process_*-of-*.json")]
    counts = {int(m[2]) for m in names if m}
    if len(counts) > 1:
        raise CheckpointError(f"{data_dir} mixes iterator states of {sorted(counts)} processes")
    return counts.pop() if counts else None


def restore(
    manager: ocp.CheckpointManager,
    step: int,
    abstract_model: dict[str, Any],
    abstract_train: dict[str, Any],
    data_iterator: Any | None,
    sharding: jax.sharding.Sharding,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore (model_vars, train_vars) of `step` onto `sharding` (the current run's, whatever devices and
    processes wrote the checkpoint); the iterator is set in place.

    Raises `CheckpointError` (one line) when the checkpoint cannot be read, or when its iterator state cannot
    carry over to this process count.
    """
    step_dir = Path(manager.directory) / str(step)
    items = {
        "model": ocp.args.StandardRestore(with_sharding(abstract_model, sharding)),
        "train": ocp.args.StandardRestore(with_sharding(abstract_train, sharding)),
    }
    data_state = None
    if data_iterator is not None:
        saved = saved_process_count(step_dir / "data")
        if saved is None:
            raise CheckpointError(f"checkpoint {step_dir} holds no data iterator state (data/ is empty)")
        if saved == jax.process_count():
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        elif getattr(data_iterator, "process_independent_state", False):
            data_state = (step_dir / "data" / f"process_0-of-{saved}.json").read_bytes()
        else:
            raise CheckpointError(
                f"checkpoint {step_dir} was written by {saved} process(es), this run has "
                f"{jax.process_count()}: the data iterator ({type(data_iterator).__name__}) saved one state "
                f"per process (its shard of the sampler), which does not carry over; resume with {saved} "
                "process(es), or start a new workdir with --config.init_from pointing at this one"
            )
    check_fits(step_dir / "model", abstract_model)  # a model of other fields: CheckpointError, not "damaged"
    check_fits(step_dir / "train", abstract_train)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**items))
        if data_state is not None:
            data_iterator.set_state(data_state)
    except Exception as e:  # noqa: BLE001  (orbax and tensorstore raise many types for damaged files)
        raise damaged(step_dir, e) from e
    return dict(restored["model"]), dict(restored["train"])


def set_aside(workdir: str | Path, step: int) -> Path:
    """Rename an unreadable `checkpoints/<step>` to `checkpoints/unreadable-<step>` (kept for inspection,
    invisible to orbax and `checkpoint_steps`, so the run can write that step again). Process 0 renames;
    every process returns the new path after a barrier."""
    directory = Path(workdir).absolute() / CHECKPOINTS
    target = directory / f"unreadable-{step}"
    n = 1
    while target.exists() and jax.process_index() == 0:
        n += 1
        target = directory / f"unreadable-{step}.{n}"
    if jax.process_index() == 0:
        (directory / str(step)).rename(target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"lsta_jax set aside checkpoint {step}")
    return target
