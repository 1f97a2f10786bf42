"""Shared config presets: the datasets of the per-stream configs, the embedded synthetic data and the toy
set-up. Config files (`configs/*.py`) start from `config.default_config()` and apply one of these."""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

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


#: `synthetic_ego` layouts (lsta_jax.data.synthetic): where the objects stand, how many confusers there are.
SYNTHETIC_LAYOUTS: dict[str, dict[str, Any]] = {
    "middle": dict(layout="middle", num_confusers=1),  # the default data (the demo's)
    "scattered": dict(layout="scattered", num_confusers=2),  # objects anywhere, two confusers
}


def set_synthetic_layout(c: ml_collections.ConfigDict, layout: str) -> ml_collections.ConfigDict:
    """Make a `synthetic_ego` config read the build of another layout (`SYNTHETIC_LAYOUTS`); the rest of the
    options (frames, size, clips, flow) stay."""
    if layout not in SYNTHETIC_LAYOUTS:
        raise ValueError(
            f"unknown synthetic_ego layout {layout!r}; choose one of {', '.join(SYNTHETIC_LAYOUTS)}"
        )
    c.data.synthetic.update(SYNTHETIC_LAYOUTS[layout])
    return c


def set_synthetic(
    c: ml_collections.ConfigDict, flow: bool = False, layout: str = "middle"
) -> ml_collections.ConfigDict:
    """Point `c.data` at `synthetic_ego` (by default the demo's data, 16 frames stored at 64 px, cropped to
    56) and size `c.model` for it: its classes, `SYNTHETIC_BACKBONE`, and the small widths of the LSTA parts
    the config has (memory 32, 16 output-pooling classes, the 32 `synthetic_objects` classes as the
    attention selector's). `flow=True` reads the build that also stores TV-L1 flow (the same clips);
    `layout` one of `SYNTHETIC_LAYOUTS`."""
    from lsta_jax.data.synthetic import SyntheticOptions

    options = SyntheticOptions(flow=flow)  # the defaults: what `python -m lsta_jax.data export` writes
    c.data.synthetic = dataclasses.asdict(options)
    set_synthetic_layout(c, layout)
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


#: Trainable parameters (regexes, `config.trainable`) of the ego-rnn RGB baseline (kind `convlstm_rgb`) per
#: stage, as ego-rnn's `main-run-rgb.py` (docs/differences.md §4.5): stage 1 the ConvLSTM and `fc`; stage 2
#: also the `layer4` conv1/conv2 kernels and the backbone fc (whose bias gets no gradient).
EGORNN_RGB_TRAINABLE: dict[int, tuple[str, ...]] = {
    1: (r"lstm_cell/.*", r"fc/.*"),
    2: (r"lstm_cell/.*", r"fc/.*", r"resNet/layer4_\d+/conv[12]/kernel", r"resNet/fc/kernel"),
}

#: Trainable parameters of the eleGAtt baseline (kind `elegatt_rgb`) per stage (our choice, the paper gives
#: none): stage 1 the eleGAtt cell and `fc`, the backbone frozen as in stage 1 of the RGB models; stage 2 also
#: `layer4`'s conv1/conv2 kernels, but not the backbone's fc (eleGAtt does not use it: only weight decay
#: would reach it).
ELEGATT_TRAINABLE: dict[int, tuple[str, ...]] = {
    1: (r"elegatt_cell/.*", r"fc/.*"),
    2: (r"elegatt_cell/.*", r"fc/.*", r"resNet/layer4_\d+/conv[12]/kernel"),
}
