"""Input for the training loop: per-process batches of numpy clips, with a checkpointable iterator state.

`make_data(config)` returns a `Data` bundle: the train iterator (infinite, one global batch per step, this
process's slice of it), a factory of eval iterators (padded last batch with a `mask`), the class names and the
number of steps per epoch. Datasets:
  `toy`        in-memory clips (`lsta_jax.data.toy`: a coloured square moving in a class-specific
               direction over noise); no files, used by the tests and as the demo's fallback; with
               `config.data.modality='rgb+flow'` each clip also gets a flow stack (`toy_flow`) under `flow`,
               and 'flow' batches hold only that stack;
  anything else a tfds builder of `lsta_jax.data` (`synthetic_ego`, `gtea61`, ...), read through its grain
               loaders.
Train batches follow an epoch-wise permutation seeded by (seed, epoch) (`shuffle=True`) or the dataset order
(`shuffle=False`, as the reference's unshuffled DataLoader); the incomplete last batch of an epoch is dropped
(fixed shapes for jit; the reference keeps it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from lsta_jax.data.toy import toy_clips, toy_flow
from lsta_jax.train import tfds_input
from lsta_jax.train.data_bundle import Data

__all__ = ["ArrayTrainIterator", "Data", "array_eval_batches", "make_data"]


class ArrayTrainIterator:
    """Infinite per-process train batches over in-memory arrays; exact resume through get_state/set_state."""

    # the state is the global position (epoch, batch): a checkpoint of N processes resumes on any other count
    process_independent_state = True

    def __init__(
        self,
        clips: np.ndarray | None,
        labels: np.ndarray,
        global_batch_size: int,
        seed: int,
        shuffle: bool = True,
        process_index: int | None = None,
        process_count: int | None = None,
        extra: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.clips, self.labels = clips, labels
        # more per-clip arrays batched alongside, e.g. {'flow': stacks}; `clips` None: only those
        self.extra = dict(extra or {})
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        if global_batch_size % self.process_count:
            raise ValueError(
                f"global batch {global_batch_size} not divisible by {self.process_count} processes"
            )
        if len(labels) < global_batch_size:
            raise ValueError(
                f"{len(labels)} training clips are fewer than one global batch ({global_batch_size})"
            )
        self.global_batch_size, self.seed, self.shuffle = global_batch_size, seed, shuffle
        self.steps_per_epoch = len(labels) // global_batch_size
        self.epoch, self.position = 0, 0

    def __iter__(self) -> ArrayTrainIterator:
        return self

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.labels))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.labels))

    def __next__(self) -> dict[str, np.ndarray]:
        if self.position >= self.steps_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        local = self.global_batch_size // self.process_count
        start = self.position * self.global_batch_size + self.process_index * local
        index = self._order()[start : start + local]
        self.position += 1
        clip = {} if self.clips is None else {"clip": self.clips[index]}
        return clip | {"label": self.labels[index]} | {key: value[index] for key, value in self.extra.items()}

    def get_state(self) -> bytes:
        return json.dumps({"epoch": self.epoch, "position": self.position, "seed": self.seed}).encode()

    def set_state(self, state: bytes) -> None:
        values = json.loads(state)
        if values["seed"] != self.seed:
            raise ValueError(
                f"iterator state was saved with seed {values['seed']}, this run uses {self.seed}"
            )
        self.epoch, self.position = int(values["epoch"]), int(values["position"])

    def start_prefetch(self) -> None:  # called by grain's checkpoint handler after a restore
        pass


def array_eval_batches(
    clips: np.ndarray | None,
    labels: np.ndarray,
    global_batch_size: int,
    process_index: int | None = None,
    process_count: int | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Per-process eval batches in order; the last global batch is padded and `mask` marks the real clips.
    `extra` arrays (e.g. {'flow': stacks}) are batched alongside the clips."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    local = global_batch_size // process_count
    n = len(labels)
    for start in range(0, n, global_batch_size):
        lo = start + process_index * local
        index = np.arange(lo, lo + local)
        mask = index < n
        index = np.where(mask, index, 0)
        clip = {} if clips is None else {"clip": clips[index]}
        yield clip | {"label": labels[index], "mask": mask} | {k: v[index] for k, v in (extra or {}).items()}


def make_data(config: Any) -> Data:
    """The `Data` bundle for `config.data` (see the module docstring)."""
    d = config.data
    if d.name == "toy":
        clips, labels = toy_clips(
            d.num_train + d.num_eval, config.model.num_classes, d.num_frames, d.crop_size, 0
        )
        train_x, train_y = clips[: d.num_train], labels[: d.num_train]
        eval_x, eval_y = clips[d.num_train :], labels[d.num_train :]
        train_extra, eval_extra = {}, {}
        modality = d.get("modality", "rgb")
        if modality in ("flow", "rgb+flow"):  # a flow stack per clip (flow models, two-stream models)
            flow = toy_flow(labels, config.model.num_classes, d.crop_size, 0)
            train_extra, eval_extra = {"flow": flow[: d.num_train]}, {"flow": flow[d.num_train :]}
            if modality == "flow":
                train_x = eval_x = None
        train = ArrayTrainIterator(
            train_x, train_y, config.global_batch_size, config.seed, config.shuffle, extra=train_extra
        )
        return Data(
            train=train,
            make_eval=lambda: array_eval_batches(eval_x, eval_y, config.eval_batch_size, extra=eval_extra),
            class_names=[f"move_{i}" for i in range(config.model.num_classes)],
            steps_per_epoch=train.steps_per_epoch,
            num_train=len(train_y),
            num_eval=len(eval_y),
        )
    return tfds_input.make_data(config)
