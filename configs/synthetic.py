"""LSTA RGB on `synthetic_ego` (or the in-memory `toy` set) with a small backbone, trained from scratch.

ImageNet weights are not available offline, so everything that can get a gradient is trained
(`trainable='all'`) and the backbone is tiny: ResNet stage sizes (1,1,1,1), widths (16,32,32,64),
64x64 frames, 8 frames.
Arg: 'toy' uses the in-memory toy clips instead of the tfds builder; any other arg is an ablation variant.

    python -m lsta_jax.train --config configs/synthetic.py --workdir /tmp/lsta_synth
    python -m lsta_jax.train --config configs/synthetic.py:convlstm --workdir /tmp/lsta_synth_convlstm

Measured here (2 CPU cores, seed 0): 52.1% top-1 on the 96 test clips of synthetic_ego (12 classes, chance
8.3%) after 20 epochs (360 steps, ~2 minutes at ~3.5-4 steps/s); `:toy` 91.7% (8 classes, chance 12.5%) in
~1 minute. There is no paper number for these sets.
"""

from lsta_jax.train.config import default_config


def get_config(arg=None):
    c = default_config()
    c.name = "synthetic"
    c.model.update(
        num_classes=12,
        mem_size=64,
        c_cam_classes=16,
        attention_classes=32,
        backbone_stage_sizes=(1, 1, 1, 1),
        backbone_widths=(16, 32, 32, 64),
        dropout_rate=0.3,
    )
    c.data.synthetic = dict(  # lsta_jax.data.SyntheticOptions: 12 classes (6 verbs x 2 nouns)
        num_train=288,
        num_test=96,
        num_frames=16,
        frame_size=72,
        num_verbs=6,
        num_nouns=2,
        num_distractors=2,
        seed=0,
    )
    c.data.update(
        name="synthetic_ego",
        builder_config="",
        num_frames=8,
        crop_size=64,
        resize_shorter=72,
        train_split="train",
        eval_split="test",
    )
    c.trainable = "all"
    c.shuffle = True
    c.global_batch_size = 16
    c.eval_batch_size = 32
    c.num_epochs = 20
    c.learning_rate = 3e-3
    c.lr_milestones = (14,)
    c.weight_decay = 5e-5
    c.checkpoint_every_steps = 200
    c.log_every_steps = 5
    if arg == "toy":
        c.data.update(name="toy", num_train=256, num_eval=96, num_frames=6, crop_size=48, resize_shorter=48)
        c.model.num_classes = 8
        c.num_epochs = 12  # ~0.9 top-1 (chance 0.125) in about a minute on 2 CPU cores
        c.lr_milestones = (9,)
    elif arg:
        c.model.variant = arg
    return c
