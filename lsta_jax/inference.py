"""The one batched forward pass behind `predict`, `extract` and the Python API.

It runs the clip classifiers (kinds registered with `clip_classifier=True`: a clip (B, T, H, W, 3) in,
`logits`, `features` and per-frame `attention` maps out).

Everything that runs a clip classifier on user inputs goes through this module, so the CLI and the API compute
the same thing with the same compiled function:

- `forward` is ONE module-level `jax.jit` of `model.apply` (inference mode: BatchNorm statistics, no dropout)
  plus the softmax. The model is a static argument (linen modules hash by their configuration), so a given
  model and batch shape compile exactly once per process; `compile_count()` reads the jit cache size.
- `BatchedForward` owns the device side: a 1-D `Mesh` over all local devices (axis `batch`), the variables
  replicated once, every batch padded to a fixed size that is a multiple of the device count and placed with
  a `NamedSharding` that splits the batch axis. Padding rows are zeros and are cut off again; the model has
  no interaction between batch elements (BatchNorm in inference mode), so padding cannot change a result.
- `stream` feeds any iterable of inputs through it: clips are loaded by a small thread pool with a bounded
  look-ahead, grouped into fixed-size batches, and one batch stays in flight on the devices while the next is
  loaded. Memory is bounded by the batch size and the look-ahead, never by the number of inputs. A failing
  input becomes an outcome with an error message naming it; the others go on. Outcomes come out in input
  order.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Default input geometry: the reference's evaluation (25 frames, Scale(256), CenterCrop(224)).
DEFAULT_NUM_FRAMES = 25
DEFAULT_SIZE = 224
DEFAULT_RESIZE_SHORTER = 256


def _forward(
    model: nn.Module, variables: Any, clips: jax.Array, return_frame_features: bool
) -> dict[str, jax.Array]:
    out = model.apply(variables, clips, train=False, return_frame_features=return_frame_features)
    missing = [key for key in ("logits", "features", "attention") if key not in out]
    if missing:
        raise ValueError(f"{type(model).__name__} is not a clip classifier: its outputs lack {missing}")
    result = {
        "logits": out["logits"].astype(jnp.float32),
        "probabilities": jax.nn.softmax(out["logits"].astype(jnp.float32), axis=-1),
        "features": out["features"].astype(jnp.float32),
        "attention": out["attention"].astype(jnp.float32),
    }
    if return_frame_features:
        result["frame_features"] = out["frame_features"].astype(jnp.float32)
    for key in ("verb_logits", "noun_logits"):  # multi-task heads (models/heads.py)
        if key in out:
            result[key] = out[key].astype(jnp.float32)
    return result


forward = jax.jit(_forward, static_argnames=("model", "return_frame_features"))
forward.__doc__ = """Jitted inference forward: `model.apply(variables, clips)` + softmax, float32 outputs.

Returns `logits` (B, M), `probabilities` (B, M), `features` (B, K), `attention` (B, T, h, w), with
`return_frame_features` `frame_features` (B, T, K), and for multi-task models `verb_logits`, `noun_logits`."""


def compile_count() -> int:
    """How many distinct (model, batch shape, sharding) versions of `forward` have been compiled."""
    return forward._cache_size()


class BatchedForward:
    """`forward` on fixed-size batches, sharded over the batch axis of a 1-D mesh of local devices.

    `batch_size` is rounded up to a multiple of the device count. `submit(clips)` takes up to `batch_size`
    clips as a numpy array (n, T, H, W, 3), pads them with zero clips, starts the computation and returns
    device arrays (asynchronously); `gather(outputs, n)` brings the first n rows back as numpy.
    """

    def __init__(
        self,
        model: nn.Module,
        variables: Any,
        batch_size: int = 8,
        *,
        return_frame_features: bool = False,
        devices: Sequence[jax.Device] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        devices = list(devices) if devices is not None else jax.local_devices()
        self.model = model
        self.return_frame_features = return_frame_features
        self.num_devices = len(devices)
        self.batch_size = -(-batch_size // self.num_devices) * self.num_devices
        self.mesh = Mesh(np.asarray(devices), ("batch",))
        self.data_sharding = NamedSharding(self.mesh, PartitionSpec("batch"))
        replicated = NamedSharding(self.mesh, PartitionSpec())
        variables = {key: value for key, value in dict(variables).items() if key in ("params", "batch_stats")}
        self.variables = jax.device_put(variables, replicated)

    def submit(self, clips: np.ndarray) -> dict[str, jax.Array]:
        n = clips.shape[0]
        if not 1 <= n <= self.batch_size:
            raise ValueError(f"a batch holds 1..{self.batch_size} clips, got {n}")
        if n < self.batch_size:
            padding = np.zeros((self.batch_size - n, *clips.shape[1:]), clips.dtype)
            clips = np.concatenate([clips, padding])
        batch = jax.device_put(np.asarray(clips, np.float32), self.data_sharding)
        return forward(self.model, self.variables, batch, self.return_frame_features)

    @staticmethod
    def gather(outputs: dict[str, jax.Array], n: int) -> dict[str, np.ndarray]:
        return {key: np.asarray(value)[:n] for key, value in outputs.items()}

    def __call__(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch of up to `batch_size` clips synchronously; returns their outputs as numpy."""
        return self.gather(self.submit(clips), clips.shape[0])


@dataclass
class Outcome:
    """One input after the forward: its outputs (numpy, without the batch axis) or the reason it failed."""

    index: int
    source: str
    outputs: dict[str, np.ndarray] | None = None
    clip: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def default_loader(
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: int = DEFAULT_SIZE,
    resize_shorter: int = DEFAULT_RESIZE_SHORTER,
    min_frames: int | None = None,
) -> Callable[[str | Path], np.ndarray]:
    """The evaluation preprocessing, `lsta_jax.data.load_clip`, with the given geometry.

    `min_frames` (default: `num_frames`) is the shortest clip accepted; a shorter one fails with a message
    naming it. The reference itself accepts clips of 5+ frames and repeats frames of those shorter than T
    (`min_frames=5` reproduces that).
    """
    from lsta_jax.data import load_clip

    return functools.partial(
        load_clip,
        num_frames=num_frames,
        size=size,
        resize_shorter=resize_shorter,
        min_frames=num_frames if min_frames is None else min_frames,
    )


def _error_message(source: str, exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    return message if source in message else f"{source}: {message}"


def _load_one(
    load: Callable[[Any], np.ndarray], expected_shape: tuple[int, ...] | None, item: tuple[int, Any]
) -> Outcome:
    index, source = item
    name = str(source)
    try:
        clip = np.asarray(load(source), np.float32)
    except Exception as exc:  # noqa: BLE001  (any failure of one input is reported, the rest go on)
        return Outcome(index, name, error=_error_message(name, exc))
    if clip.ndim != 4 or clip.shape[-1] != 3:
        return Outcome(index, name, error=f"{name}: expected a (T, H, W, 3) clip, got shape {clip.shape}")
    if expected_shape is not None and clip.shape != tuple(expected_shape):
        return Outcome(
            index,
            name,
            error=f"{name}: loaded a clip of shape {clip.shape}, expected {tuple(expected_shape)}",
        )
    return Outcome(index, name, clip=clip)


def _bounded_map(fn: Callable[[Any], Outcome], items: Iterable[Any], workers: int, window: int) -> Iterator:
    """`map(fn, items)` in order on a thread pool, at most `window` items loaded ahead of the consumer."""
    if workers <= 0:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lsta-load") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def stream(
    engine: BatchedForward,
    inputs: Iterable[Any],
    load: Callable[[Any], np.ndarray],
    *,
    expected_shape: tuple[int, ...] | None = None,
    workers: int = 2,
    keep_clips: bool = False,
) -> Iterator[Outcome]:
    """Yield one `Outcome` per input, in input order, running full batches through `engine`.

    `load(source)` turns one input into a normalised clip (T, H, W, 3); any exception it raises becomes that
    input's error. Clips of another shape than `expected_shape` (default: the first loaded clip's shape) fail
    the same way, so one odd input cannot break a batch. With `keep_clips` each outcome also carries its
    loaded clip (for overlays); otherwise clips are dropped as soon as their batch is on the devices.
    """
    loaded = _bounded_map(
        functools.partial(_load_one, load, expected_shape),
        enumerate(inputs),
        workers,
        window=max(2 * engine.batch_size, workers),
    )
    in_flight: tuple[list[Outcome], dict[str, jax.Array]] | None = None
    pending: list[Outcome] = []
    shape = expected_shape

    def finish(batch: tuple[list[Outcome], dict[str, jax.Array]]) -> Iterator[Outcome]:
        entries, device_outputs = batch
        outputs = engine.gather(device_outputs, sum(entry.ok for entry in entries))
        row = 0
        for entry in entries:
            if entry.ok:
                entry.outputs = {key: value[row].copy() for key, value in outputs.items()}
                row += 1
            yield entry

    def launch(entries: list[Outcome]) -> tuple[list[Outcome], dict[str, jax.Array]]:
        clips = np.stack([entry.clip for entry in entries if entry.ok])
        device_outputs = engine.submit(clips)
        if not keep_clips:
            for entry in entries:
                entry.clip = None
        return entries, device_outputs

    for outcome in loaded:
        if outcome.ok:
            if shape is None:
                shape = outcome.clip.shape
            elif outcome.clip.shape != shape:
                outcome = Outcome(
                    outcome.index,
                    outcome.source,
                    error=f"{outcome.source}: loaded a clip of shape {outcome.clip.shape}, expected {shape}",
                )
        pending.append(outcome)
        if sum(entry.ok for entry in pending) == engine.batch_size:
            launched = launch(pending)
            pending = []
            if in_flight is not None:
                yield from finish(in_flight)
            in_flight = launched
    if any(entry.ok for entry in pending):
        launched = launch(pending)
        pending = []
        if in_flight is not None:
            yield from finish(in_flight)
        in_flight = launched
    if in_flight is not None:
        yield from finish(in_flight)
    yield from pending
