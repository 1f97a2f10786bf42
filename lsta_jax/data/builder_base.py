"""Shared parts of the frame-clip tfds builders: the feature spec, frame encoding and the skip bookkeeping.

Every builder stores one example per clip (array_record files, read back through `as_data_source` without
tensorflow):
  `frames`       sequence of encoded images (bytes), frame k at position k - 1 (reference numbering from 1)
  `flow_x`, `flow_y`  sequences of encoded grayscale flow images (empty when the dataset has no flow)
  `label`        ClassLabel: the activity (names from the data, one sorted global list)
  `verb`, `noun` ClassLabel: the class name split at its first '_' (GTEA, LSTA#1) or the dataset's own ids
  `verb_label`   int32: the verb id of the flow pretraining (GTEA action_label.txt, EGTEA column 3) or -1
  `name`         the clip's id (relative folder, EGTEA clip name, EPIC uid)
  `num_frames`   int32: frames of the clip
Frames are stored with their shorter side at `resize_shorter` (PIL bilinear, the reference's `Scale(256)`):
files already at that size keep their original bytes; resized frames are encoded losslessly as PNG (default:
the stored pixels are the reference's `Scale(256)` pixels exactly) or as JPEG quality 95
(`frame_encoding='jpeg'`: the configs named `<config>_jpeg` of every frame-folder builder, e.g.
`gtea61/split2_jpeg`; smaller files that decode several times faster, not bit-exact: docs/input-pipeline.md
has the measured speed and the pixel error). Clips with fewer than 5 frames (docs/differences.md
§5) and clips with an unreadable frame are skipped, each logged, with a summary count per split.
Examples are written in generation order (`disable_shuffling`), i.e. the reference's list order.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from lsta_jax.data import transforms as T

log = logging.getLogger("lsta_jax.data")

BYTES = tfds.features.Tensor(shape=(), dtype=np.object_)


def clip_features(extra: dict[str, Any] | None = None, **names: Sequence[str]) -> tfds.features.FeaturesDict:
    """The common feature spec (plus `extra` features of one builder, e.g. synthetic boxes); ClassLabel names
    given here or set from the data in `_split_generators`."""
    features = tfds.features.FeaturesDict(
        {
            **(extra or {}),
            "frames": tfds.features.Sequence(BYTES),
            "flow_x": tfds.features.Sequence(BYTES),
            "flow_y": tfds.features.Sequence(BYTES),
            "label": tfds.features.ClassLabel(),
            "verb": tfds.features.ClassLabel(),
            "noun": tfds.features.ClassLabel(),
            "verb_label": tfds.features.Scalar(dtype=np.int32),
            "name": tfds.features.Text(),
            "num_frames": tfds.features.Scalar(dtype=np.int32),
        }
    )
    for key, values in names.items():
        features[key].names = list(values)
    return features


@dataclasses.dataclass
class ClipSpec:
    """One clip on disk: where its frames are and its labels."""

    name: str
    frames: Sequence[Path]
    label: int
    verb: int = -1
    noun: int = -1
    verb_label: int = -1
    flow_x: Sequence[Path] = ()
    flow_y: Sequence[Path] = ()


FRAME_ENCODINGS = ("png", "jpeg")
JPEG_QUALITY = 95


def encode_frame(
    path: Path, resize_shorter: int, encoding: str = "png", mode: str = "RGB", data: bytes | None = None
) -> bytes:
    """The stored bytes of one frame: the original file when already at size, else Scale + re-encode."""
    if encoding not in FRAME_ENCODINGS:
        raise ValueError(f"unknown frame_encoding {encoding!r}; expected one of {FRAME_ENCODINGS}")
    data = path.read_bytes() if data is None else data
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            converted = image.convert(mode)
            original_mode = image.mode
    except Exception as err:
        raise ValueError(f"{path}: cannot read image ({err})") from err
    resized = T.scale(converted, resize_shorter) if resize_shorter else converted
    if resized is converted and original_mode == mode:
        return data
    out = io.BytesIO()
    if encoding == "png":
        resized.save(out, format="PNG", compress_level=1)
    else:
        resized.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def set_names(info: tfds.core.DatasetInfo, **names: Sequence[str]) -> None:
    """Set ClassLabel names from the data (once, before generation)."""
    for key, values in names.items():
        feature = info.features[key]
        if feature.num_classes is None or feature.names != list(values):
            feature.names = list(values)


def generate_examples(
    clips: Sequence[ClipSpec], split: str, resize_shorter: int, encoding: str
) -> Iterator[tuple[str, dict]]:
    """Encode each clip (skipping, with a log line, short clips and clips with unreadable frames)."""
    skipped_short, skipped_bad = 0, 0
    for spec in clips:
        if len(spec.frames) < T.MIN_FRAMES:
            skipped_short += 1
            log.info("%s: %s has %d frames (< %d), skipped", split, spec.name, len(spec.frames), T.MIN_FRAMES)
            continue
        try:
            example = {
                "frames": [encode_frame(p, resize_shorter, encoding) for p in spec.frames],
                "flow_x": [encode_frame(p, resize_shorter, encoding, "L") for p in spec.flow_x],
                "flow_y": [encode_frame(p, resize_shorter, encoding, "L") for p in spec.flow_y],
            }
        except (OSError, ValueError) as err:
            skipped_bad += 1
            log.warning("%s: clip %s skipped: %s", split, spec.name, err)
            continue
        example.update(
            label=spec.label,
            verb=spec.verb,
            noun=spec.noun,
            verb_label=spec.verb_label,
            name=spec.name,
            num_frames=len(spec.frames),
        )
        yield spec.name, example
    if skipped_short or skipped_bad:
        log.warning(
            "%s: %d clips with fewer than %d frames and %d clips with unreadable frames were skipped",
            split,
            skipped_short,
            T.MIN_FRAMES,
            skipped_bad,
        )


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: missing {what} directory")
    return path


def require_manual_dir(dl_manager: tfds.download.DownloadManager, name: str) -> Path:
    try:
        manual = dl_manager.manual_dir
    except AssertionError:  # tfds: not given, missing or empty
        manual = None
    if manual is None or not Path(manual).is_dir():
        raise FileNotFoundError(
            f"{name}: no raw-data folder (manual_dir) was given: pass --manual-dir RAW_DIR to `python -m "
            "lsta_jax.data`, --config.data.manual_dir=RAW_DIR to training, or manual_dir= to "
            "lsta_jax.data.build"
        )
    return Path(manual)


class FrameClipConfig(tfds.core.BuilderConfig):
    """A builder config with the build-time frame size and encoding."""

    def __init__(self, *, resize_shorter: int = 256, frame_encoding: str = "png", **kwargs) -> None:
        if frame_encoding not in FRAME_ENCODINGS:
            raise ValueError(f"unknown frame_encoding {frame_encoding!r}; expected one of {FRAME_ENCODINGS}")
        super().__init__(**kwargs)
        self.resize_shorter = resize_shorter
        self.frame_encoding = frame_encoding


def frame_clip_configs(splits: dict[str, str]) -> list[FrameClipConfig]:
    """Builder configs {name: description} stored as PNG (lossless, listed first: the default), each with a
    `<name>_jpeg` twin stored as JPEG (the fast-decoding training frames, docs/input-pipeline.md)."""
    png = [FrameClipConfig(name=name, description=text) for name, text in splits.items()]
    jpeg = [
        FrameClipConfig(
            name=f"{name}_jpeg",
            description=f"{text}; frames stored as JPEG q{JPEG_QUALITY}",
            frame_encoding="jpeg",
        )
        for name, text in splits.items()
    ]
    return png + jpeg


class FrameClipBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the frame-folder builders: subclasses implement `_clips(manual_dir) -> (names, splits)`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=clip_features(), disable_shuffling=True, description=self.__doc__
        )

    def _clips(self, manual_dir: Path) -> tuple[dict[str, list[str]], dict[str, list[ClipSpec]]]:
        raise NotImplementedError

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual = require_manual_dir(dl_manager, self.name)
        names, splits = self._clips(manual)
        set_names(self.info, **names)
        config = self.builder_config
        resize = getattr(config, "resize_shorter", 256)
        encoding = getattr(config, "frame_encoding", "png")
        return {split: generate_examples(clips, split, resize, encoding) for split, clips in splits.items()}

    def _generate_examples(self, *args, **kwargs):  # generation happens in _split_generators
        raise NotImplementedError
