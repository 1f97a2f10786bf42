"""Pre-flight checks: a config, its data and a model belong together, checked before any work starts.

A training run that holds 4 classes of data for a 61-class model, or an evaluation of an 18-class model on
8-class data, must stop before the first step with one line that names both sides and the fix, instead of
training to the end (or scoring the wrong classes) first. Two entry points:
  `check_training_run(config, class_names, model)`  called once by `train_and_evaluate` before the first step;
  `check_checkpoint_fits(checkpoint, model, config)` and `check_checkpoint_classes(..., class_names)`
      called by `evaluate` before and after opening the data: the dataset (against the workdir's
      `config.json`), the input (frames and crop size against the `input` the workdir was trained with,
      modality against the model's inputs) and the class count (against the model).
Each raises `ConfigMismatch` (a ValueError) whose message is one line.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn

#: The batch entries each `config.data.modality` provides to the model (`registry.input_names()`).
MODALITY_INPUTS: dict[str, tuple[str, ...]] = {
    "rgb": ("clip",),
    "flow": ("flow",),
    "rgb+flow": ("clip", "flow"),
}

#: Metrics every evaluation summary has (`metrics.summarize`); multi-task heads add `MULTITASK_METRICS`.
BASE_METRICS = ("top1", "top5", "mean_class_accuracy", "loss")
MULTITASK_METRICS = tuple(
    f"{t}_{m}" for t in ("verb", "noun", "action") for m in ("top1", "top5", "mean_class_recall")
)


class ConfigMismatch(ValueError):
    """The config, the data and the model (or checkpoint) do not belong together."""


def model_input_names(model: nn.Module) -> tuple[str, ...]:
    """The batch entries (`clip`, `flow`) a model's `__call__` requires, in its argument order."""
    parameters = inspect.signature(model.__call__).parameters.values()
    return tuple(
        p.name for p in parameters if p.name in ("clip", "flow") and p.default is inspect.Parameter.empty
    )


def modality_of(config: Any) -> str:
    """`config.data.modality` ('rgb' when the config has none), refused when unknown."""
    modality = config.data.get("modality", "rgb")
    if modality not in MODALITY_INPUTS:
        raise ConfigMismatch(
            f"config.data.modality {modality!r} is unknown: set --config.data.modality to one of "
            f"{', '.join(MODALITY_INPUTS)}"
        )
    return modality


def check_inputs(model: nn.Module, config: Any, what: str = "the model") -> None:
    """The data's modality provides every input the model requires."""
    modality = modality_of(config)
    needs = model_input_names(model)
    missing = [name for name in needs if name not in MODALITY_INPUTS[modality]]
    if missing:
        fitting = next(m for m, given in MODALITY_INPUTS.items() if set(needs) <= set(given))
        raise ConfigMismatch(
            f"{what} ({type(model).__name__}) reads {' and '.join(needs)} but config.data.modality "
            f"{modality!r} gives {' and '.join(MODALITY_INPUTS[modality])}: set "
            f"--config.data.modality={fitting}"
        )


def check_class_count(num_classes: int, class_names: Sequence[str], config: Any, what: str) -> None:
    """`num_classes` of the model equals the number of classes of the data."""
    if num_classes != len(class_names):
        d = config.data
        tfds_config = d.get("builder_config") if d.name != "toy" else ""  # the toy clips have none
        dataset = f"{d.name}/{tfds_config}" if tfds_config else d.name
        raise ConfigMismatch(
            f"{what} has {num_classes} classes but the data {dataset} has {len(class_names)} "
            f"({', '.join(list(class_names)[:3])}{', ...' if len(class_names) > 3 else ''}): point "
            f"--config.data at the data of {num_classes} classes (for raw frames, a complete "
            "--config.data.manual_dir) or set --config.model.num_classes to match"
        )


def available_metrics(model: nn.Module, class_names: Sequence[str]) -> tuple[str, ...]:
    """The scalar metrics of an evaluation of `model` on data of `class_names` (`metrics.summarize`)."""
    from lsta_jax.train.metrics import verb_noun_metrics

    names = list(BASE_METRICS) + list(verb_noun_metrics(class_names))
    if getattr(model, "verb_classes", 0) and getattr(model, "noun_classes", 0):
        names += MULTITASK_METRICS
    return tuple(names)


def check_training_run(config: Any, class_names: Sequence[str], model: nn.Module) -> None:
    """Everything the loop, the evaluations and the final outputs need to agree on, before the first step:
    classes of model and data, the model's inputs and the data's modality, the checkpoint-ranking metric,
    and the values of the config's counts and sizes (`config.validate_config`)."""
    from lsta_jax.train.config import validate_config

    validate_config(config)
    check_class_count(
        int(config.model.num_classes), class_names, config, "config.model.num_classes: the model"
    )
    check_inputs(model, config)
    best = config.get("best_metric", None)
    if best:
        metrics = available_metrics(model, class_names)
        if best not in metrics:
            raise ConfigMismatch(
                f"config.best_metric {best!r} is not a metric of this model and data: set "
                f"--config.best_metric to one of {', '.join(metrics)}"
            )


def check_checkpoint_classes(
    checkpoint: str | Path, model: nn.Module, config: Any, class_names: Sequence[str]
) -> None:
    """The model in `checkpoint` has as many classes as the data of `config` (`class_names`)."""
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None:
        check_class_count(int(num_classes), class_names, config, f"the model in {checkpoint}")


def saved_config(checkpoint: str | Path) -> dict[str, Any] | None:
    """The training config a workdir saved (`config.json`), None for a model directory without one."""
    path = Path(checkpoint) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def check_checkpoint_fits(
    checkpoint: str | Path, model: nn.Module, config: Any, check_geometry: bool = True
) -> None:
    """Refuse to evaluate `checkpoint` (its `model`, `lsta_jax_model.json` and, for a workdir, `config.json`)
    with `config` when the dataset or the input (modality; frames and crop size with `check_geometry`)
    differ. Needs no data: runs before the data is opened (`check_checkpoint_classes` after)."""
    from lsta_jax.checkpoint import read_model_json

    meta = read_model_json(checkpoint)
    trained = saved_config(checkpoint)
    fix = "omit --config to use the workdir's own config.json, or pass the config it was trained with"
    if trained is not None:
        was = trained.get("data", {}).get("name")
        if was and was != config.data.name:
            raise ConfigMismatch(
                f"{checkpoint} was trained on dataset {was!r} but the config reads {config.data.name!r}: "
                + fix
            )
    check_inputs(model, config, f"the model in {checkpoint}")
    geometry = meta.get("input")
    if check_geometry and geometry:
        d = config.data
        pairs = [("size", "crop_size")]
        if "clip" in MODALITY_INPUTS[modality_of(config)]:
            pairs.insert(0, ("num_frames", "num_frames"))
        for key, field in pairs:
            if key in geometry and geometry[key] != d[field]:
                raise ConfigMismatch(
                    f"{checkpoint} was trained on {key.replace('_', ' ')} {geometry[key]} but the config "
                    f"gives config.data.{field}={d[field]}: {fix} (or --config.data.{field}={geometry[key]})"
                )


__all__ = [
    "ConfigMismatch",
    "available_metrics",
    "check_checkpoint_classes",
    "check_checkpoint_fits",
    "check_class_count",
    "check_inputs",
    "check_training_run",
    "model_input_names",
    "saved_config",
]
