"""`synthetic_objects`: single frames of the `synthetic_ego` table-top world, one labelled object each.

The ImageNet analogue of the embedded data. The paper's attention selector is the backbone's ImageNet
classifier; here a small ResNet is pre-trained on these frames (`configs/synthetic_pretrain.py`), and its fc
is the selector of the LSTA trained on `synthetic_ego` afterwards.

Each image shows, on a `synthetic_ego` table top, one object of one of 32 kinds (8 colours x 4 shapes, at a
random place, size jittered by +-20%, with a dark lid half of the time), 0-2 small distractor blobs of random
colours and, half of the time, the skin-coloured hand and arm (near the object or elsewhere). Label = the
object's kind, `<colour>_<shape>`. The four object kinds of `synthetic_ego` (cup = red_square, jar =
blue_round, bottle = green_tall, bowl = yellow_wide) are classes here with the same colours and sizes, as
GTEA's objects are among ImageNet's classes.

Records have the clip layout of every builder (`frames` holds one PNG), so the clip pipeline with
`num_frames=1` reads them with the reference's augmentation (multi-scale corner crop and flip) for training
and the centre crop for evaluation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from lsta_jax.data import builder_base as B
from lsta_jax.data.synthetic import NOUN_STYLE, _Canvas, _png, draw_hand, table_background

COLOURS = {
    "red": NOUN_STYLE["cup"][0],
    "blue": NOUN_STYLE["jar"][0],
    "green": NOUN_STYLE["bottle"][0],
    "yellow": NOUN_STYLE["bowl"][0],
    "purple": (140, 50, 170),
    "orange": (240, 130, 20),
    "cyan": (40, 190, 200),
    "white": (235, 235, 235),
}
# shape name -> (kind, (half height, half width)) in units of the frame size, those of synthetic_ego's nouns
SHAPES = {
    "square": (NOUN_STYLE["cup"][2], NOUN_STYLE["cup"][1]),
    "round": (NOUN_STYLE["jar"][2], NOUN_STYLE["jar"][1]),
    "tall": (NOUN_STYLE["bottle"][2], NOUN_STYLE["bottle"][1]),
    "wide": (NOUN_STYLE["bowl"][2], NOUN_STYLE["bowl"][1]),
}


@dataclasses.dataclass(frozen=True)
class SyntheticObjectsOptions:
    num_train: int = 2560
    num_test: int = 640
    frame_size: int = 64
    seed: int = 0

    def class_names(self) -> list[str]:
        return [f"{c}_{s}" for c in COLOURS for s in SHAPES]

    def validate(self) -> None:
        if self.frame_size < 16:
            raise ValueError("frame_size must be >= 16")

    def config_name(self) -> str:
        return f"s{self.frame_size}_n{self.num_train}-{self.num_test}_seed{self.seed}"


def render_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (size, size, 3): one object of kind `label` (index into class_names) on a table top."""
    colour = COLOURS[list(COLOURS)[label // len(SHAPES)]]
    kind, (hy, hx) = SHAPES[list(SHAPES)[label % len(SHAPES)]]
    scale = rng.uniform(0.8, 1.2)
    hy, hx = hy * scale, hx * scale
    canvas = _Canvas(size, table_background(size, rng))
    for _ in range(int(rng.integers(0, 3))):
        radius = rng.uniform(0.03, 0.05)
        canvas.shape("disc", *rng.uniform(0.1, 0.9, 2), radius, radius, rng.integers(0, 256, 3))
    centre = rng.uniform(0.2, 0.8, 2)
    canvas.shape(kind, *centre, hy, hx, colour)
    if rng.random() < 0.5:  # a lid, as the open/close objects of synthetic_ego
        lid = tuple(int(c * 0.5) for c in colour)
        canvas.shape("box", centre[0] - hy * 0.8, centre[1], hy * 0.35, hx * 1.1, lid)
    if rng.random() < 0.5:  # the hand, next to the object (holding it) or anywhere
        near = centre + np.array([hy + 0.05, rng.uniform(-0.05, 0.05)])  # below it, holding it
        draw_hand(canvas, near if rng.random() < 0.5 else rng.uniform(0.2, 0.9, 2))
    return np.clip(canvas.image, 0, 255).astype(np.uint8)


def generate(options: SyntheticObjectsOptions, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, S, S, 3), int32 labels (N,)) of a split; balanced classes, deterministic."""
    options.validate()
    count = options.num_train if split == "train" else options.num_test
    rng = np.random.default_rng([options.seed, 0 if split == "train" else 1, 7])
    labels = np.arange(count) % len(options.class_names())
    rng.shuffle(labels)
    size = options.frame_size
    images = np.zeros((count, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        images[i] = render_image(int(label), size, rng)
    return images, labels.astype(np.int32)


class SyntheticObjectsConfig(tfds.core.BuilderConfig):
    def __init__(self, options: SyntheticObjectsOptions, name: str | None = None) -> None:
        super().__init__(name=name or options.config_name(), description=f"synthetic objects {options}")
        self.options = options


class SyntheticObjects(tfds.core.GeneratorBasedBuilder):
    """Single table-top frames with one labelled object among distractors and hands (32 kinds)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}
    BUILDER_CONFIGS = [SyntheticObjectsConfig(SyntheticObjectsOptions(), name="default")]

    def _info(self) -> tfds.core.DatasetInfo:
        names = self.builder_config.options.class_names()
        features = B.clip_features(label=names, verb=["none"], noun=names)
        return self.dataset_info_from_configs(features=features, disable_shuffling=True, description=__doc__)

    def _split_generators(self, dl_manager):
        options = self.builder_config.options
        counts = {"train": options.num_train, "test": options.num_test}
        return {split: self._generate_examples(split) for split, count in counts.items() if count > 0}

    def _generate_examples(self, split: str):
        images, labels = generate(self.builder_config.options, split)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            name = f"{split}_{i:05d}"
            record = {"frames": [_png(image)], "flow_x": [], "flow_y": [], "label": int(label)}
            record.update(verb=0, noun=int(label), verb_label=0, name=name, num_frames=1)
            yield name, record
