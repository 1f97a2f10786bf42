"""The default training config and the `--config path.py[:arg] --config.field=value` loader.

Every file in `configs/` defines `get_config(arg: str | None) -> ml_collections.ConfigDict`, starting from
`default_config()` (the reference's stage-1 protocol, reference section 5) and overriding a few fields.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import ml_collections


def default_config() -> ml_collections.ConfigDict:
    """Stage 1 of the reference on GTEA61 split 2 (`train_rgb.sh`); datasets override `data` and classes."""
    c = ml_collections.ConfigDict()
    c.name = "lsta_rgb"
    c.model = ml_collections.ConfigDict(
        dict(
            kind="lsta_rgb",
            num_classes=61,
            mem_size=512,
            c_cam_classes=100,
            attention_classes=1000,
            backbone_stage_sizes=(3, 4, 6, 3),
            backbone_widths=(64, 128, 256, 512),
            dropout_rate=0.7,
            dtype="float32",  # 'bfloat16' for bf16 compute (params stay float32)
            remat=False,
            gate_conv="auto",  # gate convolutions: 'auto' (the backend's default) | 'im2col' | 'xla'
            variant="lsta",
            verb_classes=0,  # > 0 (with noun_classes): multi-task verb/noun heads (models/heads.py)
            noun_classes=0,
            head_bias_control="logits",  # how the activity logits bias the verb/noun heads
            # 'frozen': BatchNorm on its running statistics (the reference, both stages, from pre-trained
            # weights); 'train': batch statistics in training (a backbone trained from scratch). A run from
            # scratch with 'frozen' is refused (trainer.check_batchnorm_protocol).
            batchnorm="frozen",
        )
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
    c.shuffle = False  # the reference's training DataLoader is not shuffled (reference section 5)
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


#: dataset arg of the per-stream configs -> (tfds builder, activity classes, number of splits, default split)
DATASETS: dict[str, tuple[str, int, int, int]] = {
    "gtea61": ("gtea61", 61, 4, 2),
    "gtea71": ("gtea71", 71, 4, 2),
    "egtea": ("egtea_gaze_plus", 106, 3, 1),
}


def set_dataset(c: ml_collections.ConfigDict, dataset: str, split: int = 0) -> ml_collections.ConfigDict:
    """Point `c.data` and `c.model.num_classes` at one of `DATASETS` (split 0 = its default split)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    builder, classes, splits, default = DATASETS[dataset]
    split = split or default
    if not 1 <= split <= splits:
        raise ValueError(f"{dataset} has splits 1-{splits}, got {split}")
    c.data.name = builder
    c.data.builder_config = f"split{split}"
    c.model.num_classes = classes
    return c


def set_toy(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The in-memory `toy` clips (8 classes; flow stacks with modality 'flow' / 'rgb+flow') and a small
    backbone trained from scratch, so a two-stream pipeline runs end to end on a CPU in minutes (no paper
    number; a config's own `c.model` keys that do not exist are left alone)."""
    c.data.update(name="toy", builder_config="", num_train=256, num_eval=96, num_frames=6, crop_size=48)
    c.data.resize_shorter = 48
    small = dict(
        num_classes=8,
        backbone_stage_sizes=(1, 1, 1, 1),
        backbone_widths=(16, 32, 32, 64),
        mem_size=64,
        c_cam_classes=16,
        attention_classes=32,
        summary_features=64,
        flow_mem_size=64,
    )
    c.model.update({k: v for k, v in small.items() if k in c.model})
    c.global_batch_size, c.eval_batch_size = 16, 32
    c.log_every_steps, c.checkpoint_every_steps = 5, 200
    return c


#: The small ResNet of the embedded data (`configs/synthetic_pretrain.py` trains it on `synthetic_objects`):
#: output stride 8 (stage strides (1, 2, 2, 1), no stem max-pool), so a 56 px crop gives the 7x7 `layer4` map
#: of ResNet-34 at 224 px. Keys of the clip models (`lsta_rgb`, `egornn_flow`, `lsta_two_stream`, ...).
SYNTHETIC_BACKBONE: dict[str, Any] = dict(
    backbone_stage_sizes=(1, 1, 1, 1),
    backbone_widths=(16, 32, 32, 32),
    backbone_stage_strides=(1, 2, 2, 1),
    backbone_max_pool=False,
)


#: Dropout before the RGB classifier on the embedded data (`configs/synthetic.py`, the two-stream's RGB side).
SYNTHETIC_RGB_DROPOUT = 0.3


def set_synthetic(c: ml_collections.ConfigDict, flow: bool = False) -> ml_collections.ConfigDict:
    """Point `c.data` at the default `synthetic_ego` (the demo's data, 16 frames stored at 64 px, cropped to
    56) and size `c.model` for it: its classes, `SYNTHETIC_BACKBONE`, and the small widths of the LSTA parts
    the config has (memory 32, 16 output-pooling classes, the 32 `synthetic_objects` classes as the
    attention selector's). `flow=True` reads the build that also stores TV-L1 flow (the same clips)."""
    from lsta_jax.data.synthetic import SyntheticOptions

    options = SyntheticOptions(flow=flow)  # the defaults: what `python -m lsta_jax.data export` writes
    c.data.synthetic = dataclasses.asdict(options)
    c.data.update(
        name="synthetic_ego",
        builder_config="",
        num_frames=options.num_frames,  # all 16: at 8, only 2 sampled frames fall in the action
        crop_size=56,
        resize_shorter=options.frame_size,
        train_split="train",
        eval_split="test",
    )
    c.model.update(num_classes=len(options.class_names()), **SYNTHETIC_BACKBONE)
    small = dict(mem_size=32, c_cam_classes=16, attention_classes=32, summary_features=32, flow_mem_size=32)
    c.model.update({k: v for k, v in small.items() if k in c.model})
    c.global_batch_size, c.eval_batch_size = 16, 48
    c.eval_every_epochs = 0
    c.checkpoint_every_steps, c.log_every_steps = 1000, 10
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
        values[key] = type(defaults[key])(text)
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


def _parse_value(text: str, current: Any) -> Any:
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, bool) and isinstance(value, str):
        value = value.lower() in ("1", "true", "yes")
    if isinstance(current, float) and isinstance(value, int):
        value = float(value)
    if isinstance(current, tuple) and isinstance(value, list | int | float):
        value = tuple(value) if isinstance(value, list) else (value,)
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> ml_collections.ConfigDict:
    """Apply `--config.a.b=value` (or `config.a.b=value`) strings; unknown fields raise a clear error."""
    for item in overrides:
        key, sep, text = item.lstrip("-").partition("=")
        if not sep or not key.startswith("config."):
            raise ValueError(f"override {item!r} is not of the form --config.field=value")
        parts = key.split(".")[1:]
        node = config
        for part in parts[:-1]:
            if part not in node:
                raise KeyError(f"override {item!r}: config has no field {part!r}")
            node = node[part]
        if parts[-1] not in node:
            raise KeyError(
                f"override {item!r}: config has no field {'.'.join(parts)!r}; fields: {sorted(node)}"
            )
        with node.unlocked() if hasattr(node, "unlocked") else _null():
            node[parts[-1]] = _parse_value(text, node[parts[-1]])
    return config


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None
