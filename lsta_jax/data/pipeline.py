"""grain pipelines over the builders' data sources: per-process shards, seeded shuffle, workers augment.

Train (`make_train_loader`): an infinite `grain.DataLoader`; `grain.samplers.IndexSampler` gives this process
the contiguous shard `process_index` of `process_count` (`jax.process_index/count` unless overridden) and,
with `shuffle=True` (default), a new seeded permutation of the shard every epoch. `shuffle=False` keeps the
builder's order, i.e. the reference's unshuffled training DataLoader (docs/differences.md §5). Every clip gets
ONE random draw (flip, corner-crop scale and position, flow stack start) from grain's per-record generator,
derived from `seed` and the record's position in the stream, so the iterator resumes exactly from
`get_state()`. Batches are dicts of numpy arrays: `clip` float32 (b, T, crop, crop, 3) for RGB or `flow` (b,
crop, crop, 2L) for a flow stack, both `clip` and `flow` with modality 'rgb+flow' (two-stream models); with
`normalize_on_host=False` they are the uint8 pixels instead (a quarter of the bytes through host memory and
to the device), normalised on the device by `lsta_jax.data.device_normalize.normalize_inputs` inside the
jitted step,
`label` int32 (b,) and, when the records have them (all builders), `verb` and `noun` int32 (b,) for the
multi-task heads, with b = global_batch_size / process_count; the incomplete last batch of the stream is
never produced (the stream is infinite).

With `worker_count` > 0 the decoding and augmentation run in grain worker processes; grain deals records to
workers round-robin and each worker forms its own batches, so the batch composition depends on the worker
count (deterministic for a given count); resume with the same `worker_count` the state was saved with.

Eval (`make_eval_loader`): one pass in the builder's order, the split padded (with copies of record 0) to a
multiple of the global batch; `mask` bool (b,) is False on the padding, so every example counts exactly once
over all processes. Returns the DataLoader; `iter()` starts a fresh pass.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np

from lsta_jax.data import transforms as T
from lsta_jax.data.clip_io import decode_image


@dataclasses.dataclass(frozen=True)
class ClipGeometry:
    num_frames: int = 25
    crop_size: int = 224
    resize_shorter: int = 256
    # "rgb": `clip`, num_frames sampled frames; "flow": `flow`, one stack of x/y pairs; "rgb+flow": both (the
    # two-stream models), one augmentation draw shared by the frames and the stack
    modality: str = "rgb"
    flow_stack: int = T.FLOW_STACK
    label_key: str = "label"  # 'label' | 'verb' | 'noun' | 'verb_label'
    flow_segments: int = (
        1  # eval, flow: 1 = the centre stack; S > 1 = (S, crop, crop, 2L), late-fusion starts
    )
    normalize_on_host: bool = True  # False: uint8 pixels out, normalised on the device (device_normalize)


def _name(element: dict[str, Any]) -> str:
    name = element.get("name", b"clip")
    return name.decode() if isinstance(name, bytes) else str(name)


def _rgb_frames(element: dict[str, Any], num_frames: int) -> list:
    stored = element["frames"]
    name = _name(element)
    if len(stored) == 0:
        raise ValueError(f"{name}: the record has no frames")
    return [
        decode_image(stored[k - 1], "RGB", f"{name} frame {k}")
        for k in T.sample_indices(len(stored), num_frames)
    ]


def _flow_images(element: dict[str, Any], start: int, stack: int) -> tuple[list, list]:
    name = _name(element)
    xs = [
        decode_image(element["flow_x"][k - 1], "L", f"{name} flow_x {k}") for k in range(start, start + stack)
    ]
    ys = [
        decode_image(element["flow_y"][k - 1], "L", f"{name} flow_y {k}") for k in range(start, start + stack)
    ]
    return xs, ys


MODALITIES = ("rgb", "flow", "rgb+flow")


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")


def _rgb_out(crops: list, g: ClipGeometry) -> np.ndarray:
    """uint8 crops -> the clip: float32 ImageNet-normalised, or uint8 with `normalize_on_host=False`."""
    clip = np.stack([np.asarray(c) for c in crops])
    return T.normalize_rgb(clip) if g.normalize_on_host else clip


def _flow_out(xs: list, ys: list, g: ClipGeometry) -> np.ndarray:
    """uint8 x/y flow crops -> the interleaved stack, normalised on the host unless `normalize_on_host`
    is False."""
    stack = T.interleave_flow([np.asarray(x) for x in xs], [np.asarray(y) for y in ys])
    return T.normalize_flow(stack) if g.normalize_on_host else stack


def _train_rgb(element: dict[str, Any], draw: T.TrainDraw, g: ClipGeometry) -> np.ndarray:
    frames = _rgb_frames(element, g.num_frames)
    return _rgb_out([T.train_transform(f, draw, g.crop_size, g.resize_shorter) for f in frames], g)


def _train_flow_stack(element: dict[str, Any], start: int, draw: T.TrainDraw, g: ClipGeometry) -> np.ndarray:
    xs, ys = _flow_images(element, start, g.flow_stack)
    xs = [T.train_transform(x, draw, g.crop_size, g.resize_shorter, True) for x in xs]
    ys = [T.train_transform(y, draw, g.crop_size, g.resize_shorter) for y in ys]
    return _flow_out(xs, ys, g)


def _eval_rgb(element: dict[str, Any], g: ClipGeometry) -> np.ndarray:
    frames = _rgb_frames(element, g.num_frames)
    return _rgb_out([T.eval_transform(f, g.crop_size, g.resize_shorter) for f in frames], g)


def two_stream_train_example(element: dict[str, Any], rng: np.random.Generator, g: ClipGeometry) -> dict:
    """`clip` (T, crop, crop, 3) and `flow` (crop, crop, 2L) of one clip with ONE augmentation draw (flip,
    corner-crop scale and position) for both streams, so the flow stack lines up with the frames; the stack
    starts at ego-rnn's random training start (docs/differences.md §4.2)."""
    draw = T.draw_train_params(rng)
    start = T.flow_train_start(len(element["flow_x"]), rng, g.flow_stack)
    flow = _train_flow_stack(element, start, draw, g)
    return {**_output(element, _train_rgb(element, draw, g), g), "flow": flow}


def two_stream_eval_example(element: dict[str, Any], g: ClipGeometry) -> dict:
    """Centre-cropped `clip` and `flow`, the stack at the temporal centre (docs/differences.md §4.2; paper
    5.2)."""
    start = T.flow_eval_start(len(element["flow_x"]), g.flow_stack)
    flow = _eval_flow_stack(element, start, g)
    return {**_output(element, _eval_rgb(element, g), g), "flow": flow, **_eval_boxes(element, g)}


def train_example(element: dict[str, Any], rng: np.random.Generator, geometry: ClipGeometry) -> dict:
    """One training example: sampled frames (or a flow stack) with one augmentation draw for the clip."""
    g = geometry
    if g.modality == "rgb+flow":
        return two_stream_train_example(element, rng, g)
    draw = T.draw_train_params(rng)
    if g.modality == "flow":
        start = T.flow_train_start(len(element["flow_x"]), rng, g.flow_stack)
        clip = _train_flow_stack(element, start, draw, g)
    else:
        clip = _train_rgb(element, draw, g)
    return _output(element, clip, g)


def _output(element: dict[str, Any], clip: np.ndarray, g: ClipGeometry) -> dict:
    key = "flow" if g.modality == "flow" else "clip"  # the model argument it feeds (trainer.model_inputs)
    out = {key: clip, "label": np.int32(element[g.label_key])}
    out.update(task_labels(element))
    if "index" in element:
        out["index"] = np.int64(element["index"])
    return out


def task_labels(element: dict[str, Any]) -> dict[str, np.int32]:
    """`verb` and `noun` int32 labels of a record that has them (every builder stores both; EPIC and EGTEA
    from their lists, GTEA from the class name; -1 on unlabelled challenge test segments), for the
    multi-task heads."""
    return {key: np.int32(element[key]) for key in ("verb", "noun") if key in element}


def _eval_flow_stack(element: dict[str, Any], start: int, g: ClipGeometry) -> np.ndarray:
    xs, ys = _flow_images(element, start, g.flow_stack)
    xs = [T.eval_transform(x, g.crop_size, g.resize_shorter) for x in xs]
    ys = [T.eval_transform(y, g.crop_size, g.resize_shorter) for y in ys]
    return _flow_out(xs, ys, g)


def eval_example(element: dict[str, Any], geometry: ClipGeometry) -> dict:
    """One evaluation example: centre crop; a flow stack at the temporal centre (docs/differences.md §4.2,
    §5)."""
    g = geometry
    if g.modality == "rgb+flow":
        return two_stream_eval_example(element, g)
    if g.modality == "flow" and g.flow_segments > 1:  # ego-rnn's late fusion: several stacks per clip
        starts = T.flow_segment_starts(len(element["flow_x"]), g.flow_segments, g.flow_stack)
        clip = np.stack([_eval_flow_stack(element, int(s), g) for s in starts])
    elif g.modality == "flow":
        clip = _eval_flow_stack(element, T.flow_eval_start(len(element["flow_x"]), g.flow_stack), g)
    else:
        return {**_output(element, _eval_rgb(element, g), g), **_eval_boxes(element, g)}
    return _output(element, clip, g)


def _eval_boxes(element: dict[str, Any], g: ClipGeometry) -> dict[str, np.ndarray]:
    """{'boxes': the sampled frames' boxes, in crop units} of a record with synthetic ground truth, or {}."""
    if "boxes" not in element:
        return {}
    sampled = np.asarray(element["boxes"])[T.sample_indices(len(element["frames"]), g.num_frames) - 1]
    size = decode_image(element["frames"][0], "RGB", f"{_name(element)} frame 1").size
    return {"boxes": T.eval_transform_boxes(sampled, *size, g.crop_size, g.resize_shorter)}


class TrainTransform(grain.transforms.RandomMap):
    def __init__(self, geometry: ClipGeometry) -> None:
        self.geometry = geometry

    def random_map(self, element, rng: np.random.Generator):
        return train_example(element, rng, self.geometry)


class EvalTransform(grain.transforms.Map):
    def __init__(self, geometry: ClipGeometry) -> None:
        self.geometry = geometry

    def map(self, element):
        element, real = element
        out = eval_example(element, self.geometry)
        out["mask"] = np.bool_(real)
        return out


class IndexedSource:
    """A random-access source whose records also carry their `index` (for tests and debugging)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return dict(self.source[index], index=index)

    def __repr__(self) -> str:
        return f"IndexedSource({self.source!r})"


class PaddedSource:
    """A random-access source padded to `length` with copies of record 0; items are (record, is_real)."""

    def __init__(self, source: Any, length: int) -> None:
        self.source, self.length, self.size = source, length, len(source)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return (self.source[index], True) if index < self.size else (self.source[0], False)

    def __repr__(self) -> str:
        return f"PaddedSource({self.source!r}, {self.length})"


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    return process_index, process_count


def _ensure_absl_flags() -> None:
    """grain workers read absl flags: mark them parsed when no absl app did (plain scripts, tests)."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def default_worker_count() -> int:
    return min(8, max(0, (os.cpu_count() or 1) - 1))


def _local_batch(global_batch_size: int, process_count: int) -> int:
    if global_batch_size % process_count:
        raise ValueError(f"global batch {global_batch_size} is not divisible by {process_count} processes")
    return global_batch_size // process_count


def make_train_loader(
    data_source: Sequence,
    *,
    global_batch_size: int,
    seed: int,
    num_frames: int = 25,
    crop_size: int = 224,
    resize_shorter: int = 256,
    shuffle: bool = True,
    modality: str = "rgb",
    label_key: str = "label",
    shard_by_process: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    worker_count: int | None = None,
    num_epochs: int | None = None,
    with_index: bool = False,
    normalize_on_host: bool = True,
) -> grain.DataLoader:
    """Infinite (or `num_epochs`) per-process train batches; see the module docstring.

    `iter(loader)` gives a grain DataLoaderIterator with get_state() -> bytes and set_state(bytes).
    `with_index=True` adds `index` (int64, the record's position in the split) to every batch.
    `normalize_on_host=False` gives uint8 `clip`/`flow` (normalised later by `device_normalize`).
    """
    pi, pc = _processes(process_index, process_count) if shard_by_process else (0, 1)
    local = _local_batch(global_batch_size, pc)
    if len(data_source) // pc < local:
        raise ValueError(
            f"{len(data_source)} training clips give {len(data_source) // pc} per process, fewer than one "
            f"local batch ({local})"
        )
    _check_modality(modality)
    geometry = ClipGeometry(
        num_frames,
        crop_size,
        resize_shorter,
        modality,
        label_key=label_key,
        normalize_on_host=normalize_on_host,
    )
    sampler = grain.samplers.IndexSampler(
        num_records=len(data_source),
        shard_options=grain.sharding.ShardOptions(pi, pc, drop_remainder=True),
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=seed,
    )
    _ensure_absl_flags()
    return grain.DataLoader(
        data_source=IndexedSource(data_source) if with_index else data_source,
        sampler=sampler,
        operations=[TrainTransform(geometry), grain.transforms.Batch(local, drop_remainder=True)],
        worker_count=default_worker_count() if worker_count is None else worker_count,
    )


def make_eval_loader(
    data_source: Sequence,
    *,
    global_batch_size: int,
    num_frames: int = 25,
    crop_size: int = 224,
    resize_shorter: int = 256,
    modality: str = "rgb",
    label_key: str = "label",
    shard_by_process: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    worker_count: int | None = None,
    with_index: bool = False,
    flow_segments: int = 1,
    normalize_on_host: bool = True,
) -> grain.DataLoader:
    """One ordered pass with a padded last batch and a `mask`; see the module docstring. With modality 'flow',
    `flow_segments` S > 1 gives every clip S stacks (b, S, crop, crop, 2L) at `transforms.flow_segment_starts`
    (ego-rnn's late fusion) instead of the one stack at the temporal centre. `normalize_on_host=False` gives
    uint8 `clip`/`flow` (normalised by `device_normalize`)."""
    pi, pc = _processes(process_index, process_count) if shard_by_process else (0, 1)
    local = _local_batch(global_batch_size, pc)
    n = len(data_source)
    if n == 0:
        raise ValueError("the evaluation split is empty")
    workers = default_worker_count() if worker_count is None else worker_count
    # grain deals records to workers round-robin and each worker batches its own: pad so every worker of every
    # process gets whole batches (with workers, trailing batches may be all padding: mask False)
    padded = num_eval_batches(n, global_batch_size, workers) * global_batch_size
    _check_modality(modality)
    geometry = ClipGeometry(
        num_frames,
        crop_size,
        resize_shorter,
        modality,
        label_key=label_key,
        flow_segments=flow_segments,
        normalize_on_host=normalize_on_host,
    )
    sampler = grain.samplers.IndexSampler(
        num_records=padded,
        shard_options=grain.sharding.ShardOptions(pi, pc, drop_remainder=False),
        shuffle=False,
        num_epochs=1,
    )
    _ensure_absl_flags()
    return grain.DataLoader(
        data_source=PaddedSource(IndexedSource(data_source) if with_index else data_source, padded),
        sampler=sampler,
        operations=[EvalTransform(geometry), grain.transforms.Batch(local, drop_remainder=False)],
        worker_count=workers,
    )


def num_eval_batches(num_examples: int, global_batch_size: int, worker_count: int = 0) -> int:
    """Global batches of one eval pass (a multiple of the worker count when there are workers)."""
    unit = global_batch_size * max(1, worker_count)
    return -(-num_examples // unit) * max(1, worker_count)
