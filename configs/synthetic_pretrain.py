"""Pre-training on `synthetic_objects`: the ImageNet stage of the embedded data.

A small ResNet (stages (1, 1, 1, 1), widths (16, 32, 32, 32), output stride 8: stage strides (1, 2, 2, 1)
and no stem max-pool) learns to classify 32 object kinds from single table-top frames, as torchvision trained
ResNet-34 on ImageNet: from scratch, BatchNorm in training mode (`model.batchnorm='train'`: batch statistics,
running statistics updated), the standard augmentation of the clip pipeline (multi-scale corner crop and
horizontal flip; evaluation: centre crop), images stored at 64 px and cropped to 56 (a 7x7 `layer4` map).
The workdir is a model of kind `resnet` (`lsta_jax_model.json` + checkpoints), which `--config.init_from`
grafts into an LSTA's `resNet` exactly like `python -m lsta_jax.convert --kind resnet34` output; its fc is
then LSTA's attention selector.

The images (`SyntheticObjectsOptions` defaults) show the hand holding, and partly covering, the labelled
object in half of them, next to an unheld object of another kind: what makes the frozen fc's top-class CAM
follow the manipulated object on `synthetic_ego` (see `lsta_jax/data/synthetic_objects.py`).

Measured here: held-out top-1 0.661 on the 32 kinds (chance 0.031; 0.750 on the former images without held
objects: a held object is partly hidden), 130-290 s on 2 shared cores.

    python -m lsta_jax.train --config configs/synthetic_pretrain.py --workdir runs/pretrain
    python -m lsta_jax.train --config configs/synthetic.py --workdir runs/s1 --config.init_from=runs/pretrain
"""

import dataclasses

import ml_collections

from lsta_jax.data.synthetic_objects import SyntheticObjectsOptions
from lsta_jax.train.config import default_config
from lsta_jax.train.presets import SYNTHETIC_BACKBONE

# the clip models' backbone fields without their prefix: the `resnet` kind's own names
BACKBONE = {k.removeprefix("backbone_"): v for k, v in SYNTHETIC_BACKBONE.items()}


def get_config(arg=None):
    c = default_config()
    c.name = "synthetic_pretrain"
    options = SyntheticObjectsOptions()
    c.model = ml_collections.ConfigDict(
        dict(kind="resnet", num_classes=len(options.class_names()), batchnorm="train", **BACKBONE)
    )
    c.data.synthetic = dataclasses.asdict(options)
    c.data.update(
        name="synthetic_objects",
        builder_config="",
        num_frames=1,
        crop_size=56,
        resize_shorter=64,
        train_split="train",
        eval_split="test",
    )
    c.trainable = "all"
    c.shuffle = True
    c.global_batch_size = 64
    c.eval_batch_size = 128
    c.num_epochs = 10
    c.learning_rate = 5e-3
    c.lr_milestones = (7,)
    c.weight_decay = 5e-5
    c.eval_every_epochs = 0
    c.checkpoint_every_steps = 1000
    c.log_every_steps = 10
    return c
