"""The default training config and the `--config path.py[:arg] --config.field=value` loader.

Every file in `configs/` defines `get_config(arg: str | None) -> ml_collections.ConfigDict`, starting from
`default_config()` (the reference's stage-1 protocol, docs/differences.md §5) and overriding a few fields;
model defaults come from the model modules (`model_fields`), shared presets (datasets, the embedded synthetic
data, the toy set-up) from `lsta_jax.train.presets`.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import ml_collections


def model_fields(kind: str, *fields: str, **overrides: Any) -> ml_collections.ConfigDict:
    """A config's `model`: `kind`, the named `fields` of its module with the module's defaults
    (`registry.defaults`: defaults are written once, in the module), then `overrides`. The fields named are
    the ones the config exposes to `--config.model.X=...`; any other keeps its module default."""
    from lsta_jax.models import registry

    defaults = registry.defaults(kind)
    unknown = sorted(set(fields) - set(defaults) | set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"model kind {kind!r} has no fields {unknown}; its fields: {sorted(defaults)}")
    return ml_collections.ConfigDict(dict(kind=kind, **{f: defaults[f] for f in fields}, **overrides))


def default_config() -> ml_collections.ConfigDict:
    """Stage 1 of the reference on GTEA61 split 2 (`train_rgb.sh`); datasets override `data` and classes."""
    c = ml_collections.ConfigDict()
    c.name = "lsta_rgb"
    # verb_classes > 0 (with noun_classes): multi-task verb/noun heads (models/heads.py); batchnorm 'frozen':
    # BatchNorm on its running statistics (the reference, both stages, from pre-trained weights), 'train':
    # batch statistics in training (from scratch; a run from scratch with 'frozen' is refused); dtype
    # 'bfloat16' for bf16 compute (params stay float32)
    c.model = model_fields(
        "lsta_rgb",
        *("num_classes", "mem_size", "c_cam_classes", "attention_classes", "backbone_stage_sizes"),
        *("backbone_widths", "dropout_rate", "dtype", "remat", "variant", "verb_classes", "noun_classes"),
        *("head_bias_control", "batchnorm", "gate_conv", "selector_map"),
    )
    c.data = ml_collections.ConfigDict(
        dict(
            name="gtea61",  # a tfds builder of lsta_jax.data, or 'toy' (in-memory, for tests)
            builder_config="split2",
            data_dir="",  # tfds data_dir ('' = tfds default)
            manual_dir="",  # raw frames in the authors' layout, for building
            train_split="train",
            eval_split="test",
            num_frames=25,
            crop_size=224,
            resize_shorter=256,
            num_train=0,  # toy only
            num_eval=0,  # toy only
            worker_count=0,
            modality="rgb",  # 'rgb' (batch key `clip`) | 'flow' (`flow`, one 5-frame stack) | 'rgb+flow'
            label_key="label",  # the record field trained as `label` ('verb' for flow verb pre-training)
        )
    )
    c.seed = 0
    c.shuffle = False  # the reference's training DataLoader is not shuffled (docs/differences.md §5)
    c.global_batch_size = 32
    c.eval_batch_size = 32
    c.grad_accum_steps = 1
    c.num_epochs = 200
    c.total_steps = 0  # > 0 overrides num_epochs
    c.steps_per_epoch = 0  # 0 = from the data (floor(train clips / global batch))
    c.trainable = "stage1"  # 'stage1' | 'stage2' | 'all' (scratch) | a list of regexes
    c.learning_rate = 1e-3
    c.lr_milestones = (25, 75, 150)  # epochs
    c.lr_gamma = 0.1
    c.weight_decay = 5e-4
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.adam_eps = 1e-4
    c.init_from = ""  # stage-1 workdir, converted model dir (lsta_rgb or resnet34)
    c.init_which = "latest"  # the reference's stage 2 starts from the LAST stage-1 checkpoint
    c.eval_every_steps = 0  # 0 = only at the end (unless eval_every_epochs)
    c.eval_every_epochs = 5  # the reference evaluates every 5 epochs (`--evalInterval 5`); 0 = off
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 2
    c.best_metric = "top1"
    # weights of the cross-entropy terms by label (lsta_jax.train.losses): `label` (activity logits) and, for
    # multi-task heads, `verb` and `noun`; a term counts when the model outputs it and the batch has its label
    c.loss_weights = ml_collections.ConfigDict(dict(label=1.0, verb=1.0, noun=1.0))
    c.log_every_steps = 10
    return c


def stage2(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Stage 2 of the reference: also layer4 conv1/conv2 and the backbone fc, lr 1e-4, 100 epochs, x0.1 at
    25 and 75, from the last stage-1 checkpoint (`--config.init_from=STAGE1_WORKDIR`)."""
    c.trainable = "stage2"
    c.learning_rate = 1e-4
    c.num_epochs = 100
    c.lr_milestones = (25, 75)
    return c


def parse_arg(arg: str | None, **defaults: Any) -> dict[str, Any]:
    """'split=3,stage=2' (or a bare value for the first default) -> defaults updated, with their types."""
    values = dict(defaults)
    first = next(iter(defaults)) if defaults else None
    for item in filter(None, (arg or "").split(",")):
        key, sep, text = item.partition("=")
        if not sep:
            key, text = first, item
        if key not in values:
            raise KeyError(f"config arg {item!r}: unknown key {key!r}; known: {sorted(values)}")
        try:
            values[key] = type(defaults[key])(text)
        except ValueError:
            kind = type(defaults[key]).__name__
            raise ValueError(
                f"config arg {item!r}: {key} must be of type {kind} (default {defaults[key]!r})"
            ) from None
    return values


def load_config(spec: str) -> ml_collections.ConfigDict:
    """'configs/x.py[:arg]' -> the file's get_config(arg)."""
    path, _, arg = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"lsta_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config file {path} defines no get_config(arg)")
    return module.get_config(arg or None)


class ConfigOverrideError(ValueError, KeyError):
    """A `--config.field=value` that names no field or whose value does not fit the field's type (a
    ValueError, and a KeyError as an unknown field always was)."""

    def __str__(self) -> str:  # the message as written (KeyError would quote it)
        return str(self.args[0]) if self.args else ""


_BOOL_TEXT = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, tuple | list):
        return "a tuple such as (1,2) or a single value"
    return f"a {type(value).__name__}"


def _parse_value(text: str, current: Any, field: str = "field") -> Any:
    """`text` as a value of the type of `current`, else `ConfigOverrideError` naming the field, the value and
    the expected type (a string field takes the text as it is; a field holding None takes any literal)."""
    if isinstance(current, str):
        return text
    if isinstance(current, bool):
        if text.lower() not in _BOOL_TEXT:
            raise ConfigOverrideError(f"--config.{field}={text}: expected {_type_name(current)}")
        return _BOOL_TEXT[text.lower()]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if current is None:
        return value
    if type(current) is float and isinstance(value, str):
        try:
            value = float(text)  # 'inf', 'nan', '1e-3 '
        except ValueError:
            pass
    ok = {
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    for kind, accepts in ok.items():
        if type(current) is kind:
            if not accepts(value):
                raise ConfigOverrideError(f"--config.{field}={text}: expected {_type_name(current)}")
            return kind(value)
    if isinstance(current, tuple | list):
        if isinstance(value, list | tuple):
            value = tuple(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            value = (value,)
        elif isinstance(value, str) and all(isinstance(v, str) for v in current):
            value = (value,)  # e.g. trainable regexes
        else:
            raise ConfigOverrideError(f"--config.{field}={text}: expected {_type_name(current)}")
        return value if isinstance(current, tuple) else list(value)
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> ml_collections.ConfigDict:
    """Apply `--config.a.b=value` (or `config.a.b=value`) strings; an unknown field or a value of the wrong
    type raises `ConfigOverrideError` (a one-line message naming the field, the value and the fix)."""
    for item in overrides:
        key, sep, text = item.lstrip("-").partition("=")
        if not sep or not key.startswith("config."):
            raise ConfigOverrideError(f"override {item!r} is not of the form --config.field=value")
        parts = key.split(".")[1:]
        node = config
        for i, part in enumerate(parts[:-1]):
            if not hasattr(node, "keys") or part not in node:
                raise ConfigOverrideError(
                    f"--config.{'.'.join(parts)}: config has no field {'.'.join(parts[: i + 1])!r}"
                )
            node = node[part]
        field = ".".join(parts)
        if not hasattr(node, "keys") or parts[-1] not in node:
            known = ", ".join(sorted(node)) if hasattr(node, "keys") else "none"
            raise ConfigOverrideError(
                f"--config.{field}: config has no field {field!r}; fields there: {known}"
            )
        value = _parse_value(text, node[parts[-1]], field)
        try:
            with node.unlocked() if hasattr(node, "unlocked") else _null():
                node[parts[-1]] = value
        except TypeError:  # ConfigDict's own type check (e.g. None -> str on a typed field)
            raise ConfigOverrideError(
                f"--config.{field}={text}: expected {_type_name(node[parts[-1]])}"
            ) from None
    return config


#: Fields that must be >= 1 (counts and sizes the loop divides by or allocates with) and >= 0.
POSITIVE_FIELDS = (
    "global_batch_size",
    "eval_batch_size",
    "grad_accum_steps",
    "log_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "data.num_frames",
    "data.crop_size",
    "data.resize_shorter",
)
NON_NEGATIVE_FIELDS = (
    "total_steps",
    "num_epochs",
    "steps_per_epoch",
    "eval_every_steps",
    "eval_every_epochs",
)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Refuse values a run cannot use (a batch of 0 clips, logging every 0 steps, ...) with one line naming
    the field, its value and the fix; fields a config does not have are skipped."""

    def get(field: str) -> Any:
        node: Any = config
        for part in field.split("."):
            if not hasattr(node, "keys") or part not in node:
                return None
            node = node[part]
        return node

    for fields, low, what in ((POSITIVE_FIELDS, 1, "a positive integer"), (NON_NEGATIVE_FIELDS, 0, ">= 0")):
        for field in fields:
            value = get(field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ConfigOverrideError(f"config.{field} is {value!r}: set --config.{field} to {what}")
    if get("total_steps") == 0 and get("num_epochs") == 0:
        raise ConfigOverrideError("config.num_epochs and config.total_steps are both 0: set one of them > 0")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None
