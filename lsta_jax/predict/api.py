"""The Python API of predict: `Prediction`, `iter_predict`, `predict`, and the input geometry rules.

Safe by default: the input geometry (frames sampled, centre-crop size, shorter side before cropping) is the
one the model was trained with, read from its checkpoint (`lsta_jax_model.json`'s `input`); a different
value is refused (`GeometryError`, one line) unless `force=True`, and a model whose geometry is unknown
(no checkpoint given) needs it spelt out. Class names come from the checkpoint when it has them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import numpy as np

from lsta_jax import inference

#: the evaluation geometry of the reference (25 frames, Scale(256), CenterCrop(224)): what a checkpoint
#: without a stored `input` (a converted PyTorch model) was trained and evaluated with
REFERENCE_GEOMETRY: dict[str, int] = {
    "num_frames": inference.DEFAULT_NUM_FRAMES,
    "size": inference.DEFAULT_SIZE,
    "resize_shorter": inference.DEFAULT_RESIZE_SHORTER,
}
#: the command-line flag of each geometry field (for messages)
GEOMETRY_FLAGS = {"num_frames": "--num-frames", "size": "--size", "resize_shorter": "--resize-shorter"}


class GeometryError(ValueError):
    """An input geometry the model was not trained with, or none at all."""


def resolve_geometry(
    meta: Mapping[str, Any] | None, overrides: Mapping[str, int | None], force: bool = False
) -> dict[str, int]:
    """The input geometry of a run: the checkpoint's (`meta['input']`, else `REFERENCE_GEOMETRY`), with the
    non-None `overrides`. An override that differs from a geometry the checkpoint stores raises
    `GeometryError` (the model would answer wrong) unless `force`."""
    stored = dict((meta or {}).get("input") or {})
    geometry = {key: int(stored.get(key) or value) for key, value in REFERENCE_GEOMETRY.items()}
    changed = {k: int(v) for k, v in overrides.items() if v is not None and int(v) != geometry[k]}
    refused = {k: v for k, v in changed.items() if k in stored}
    if refused and not force:
        given = ", ".join(f"{GEOMETRY_FLAGS[k]} {v}" for k, v in refused.items())
        trained = ", ".join(f"{GEOMETRY_FLAGS[k]} {geometry[k]}" for k in refused)
        raise GeometryError(
            f"the model was trained with {trained}, not {given}: drop the option to use the checkpoint's "
            "geometry, or add --force (force=True) to run anyway"
        )
    return geometry | changed


def checkpoint_geometry(path: str | Path) -> dict[str, int]:
    """The `num_frames`, `size`, `resize_shorter` a checkpoint was trained with (its JSON's `input`), else
    the reference's 25 / 224 / 256. Use: `predict(model, variables, inputs, **checkpoint_geometry(path))`."""
    from lsta_jax.checkpoint import read_model_json

    return resolve_geometry(read_model_json(path), {})


@dataclass
class Prediction:
    """The result for one input. `ok` is False when it could not be processed; then `error` says why.

    top_k: (class name, probability) pairs, most likely first; top_k_indices: their class indices. logits:
    (M,). attention: (T, h, w) the maps u_t. overlay: paths of the PNG strip and the GIF when overlays were
    requested.
    """

    source: str
    index: int
    top_k: list[tuple[str, float]] = field(default_factory=list)
    top_k_indices: list[int] = field(default_factory=list)
    class_index: int | None = None
    logits: np.ndarray | None = None
    attention: np.ndarray | None = None
    features: np.ndarray | None = None
    overlay: tuple[Path, ...] | None = None
    error: str | None = None
    verb: int | None = None  # the verb and noun heads' top-1 class index (multi-task models only)
    noun: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str | None:
        return self.top_k[0][0] if self.top_k else None

    @property
    def score(self) -> float | None:
        return self.top_k[0][1] if self.top_k else None

    def rank(self, probabilities: np.ndarray, class_names: Sequence[str] | None, top_k: int) -> Prediction:
        """Fill `top_k`, `top_k_indices`, `class_index` from the class `probabilities` (M,)."""
        self.top_k, self.top_k_indices = top_classes(probabilities, class_names, top_k)
        self.class_index = self.top_k_indices[0]
        return self

    def to_json(self) -> dict[str, Any]:
        """The JSON line of this input (no arrays)."""
        if not self.ok:
            return {"source": self.source, "ok": False, "error": self.error}
        record: dict[str, Any] = {
            "source": self.source,
            "ok": True,
            "label": self.label,
            "score": self.score,
            "top_k": [
                {"label": name, "index": index, "score": score}
                for (name, score), index in zip(self.top_k, self.top_k_indices, strict=True)
            ],
        }
        if self.verb is not None:
            record.update(verb=self.verb, noun=self.noun)
        if self.overlay is not None:
            record["overlay"] = [str(path) for path in self.overlay]
        return record


def top_classes(
    probabilities: np.ndarray, class_names: Sequence[str] | None, top_k: int
) -> tuple[list[tuple[str, float]], list[int]]:
    """The `top_k` most likely classes of `probabilities` (M,): (name, probability) pairs, most likely first,
    and their class indices (names are the indices when `class_names` is None)."""
    if class_names is not None and len(class_names) != probabilities.shape[-1]:
        raise ValueError(f"{len(class_names)} class names for a model with {probabilities.shape[-1]} classes")
    order = [int(i) for i in np.argsort(-probabilities, kind="stable")[: max(1, top_k)]]
    names = [class_names[i] if class_names is not None else str(i) for i in order]
    return [(name, float(probabilities[i])) for name, i in zip(names, order, strict=True)], order


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax of (M,) logits in float64."""
    logits = np.asarray(logits, np.float64)
    probabilities = np.exp(logits - logits.max())
    return probabilities / probabilities.sum()


def ranked(
    logits: np.ndarray, class_names: Sequence[str] | None, top_k: int
) -> tuple[list[tuple[str, float]], list[int]]:
    """`top_classes` of the softmax of `logits` (M,)."""
    return top_classes(softmax(logits), class_names, top_k)


def stem(index: int, source: str) -> str:
    """The file-name stem of an input's overlays: `<index>_<sanitised name>`."""
    name = Path(source.rstrip("/\\")).name or "input"
    return f"{index:05d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:80]


def checkpoint_settings(
    checkpoint: str | Path | None,
    class_names: Sequence[str] | None,
    geometry: Mapping[str, int | None],
    force: bool,
    needs_geometry: bool = True,
) -> tuple[Sequence[str] | None, dict[str, int]]:
    """(class names, geometry) of a run: the checkpoint's unless given (geometry rules: `resolve_geometry`).
    Without a checkpoint the geometry must be given in full (`needs_geometry`): a GeometryError says so."""
    if checkpoint is None:
        missing = [k for k, v in geometry.items() if v is None]
        if missing and needs_geometry:
            raise GeometryError(
                f"the input geometry is unknown ({', '.join(missing)} not given): pass checkpoint=PATH to "
                "use the model's own (and its class names), or **checkpoint_geometry(PATH)"
            )
        return class_names, {k: int(v) for k, v in geometry.items() if v is not None}
    from lsta_jax.checkpoint import read_model_json

    meta = read_model_json(checkpoint)
    names = class_names if class_names is not None else meta.get("class_names")
    return names, resolve_geometry(meta, geometry, force)


def iter_predict(
    model: nn.Module,
    variables: Any,
    inputs: str | Path | Iterable[str | Path],
    *,
    checkpoint: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    num_frames: int | None = None,
    size: int | None = None,
    resize_shorter: int | None = None,
    force: bool = False,
    top_k: int = 5,
    batch_size: int = 8,
    min_frames: int | None = None,
    attention_dir: str | Path | None = None,
    strip_frames: int = 5,
    keep_arrays: bool = True,
    workers: int = 2,
    progress: bool = False,
    loader: Callable[[Any], np.ndarray] | None = None,
) -> Iterator[Prediction]:
    """Stream `Prediction`s, one per input and in input order (see `predict` for the arguments)."""
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    class_names, geometry = checkpoint_settings(
        checkpoint,
        class_names,
        {"num_frames": num_frames, "size": size, "resize_shorter": resize_shorter},
        force,
        needs_geometry=loader is None,
    )
    engine = inference.BatchedForward(model, variables, batch_size)
    if loader is None:
        n, s = geometry["num_frames"], geometry["size"]
        load, expected = inference.default_loader(n, s, geometry["resize_shorter"], min_frames), (n, s, s, 3)
    else:
        load, expected = loader, None
    outcomes = inference.stream(
        engine, inputs, load, expected_shape=expected, workers=workers, keep_clips=attention_dir is not None
    )
    if progress:
        from tqdm import tqdm

        total = len(inputs) if hasattr(inputs, "__len__") else None
        outcomes = tqdm(outcomes, total=total, unit="clip", desc="predict", dynamic_ncols=True)
    for outcome in outcomes:
        if not outcome.ok:
            yield Prediction(outcome.source, outcome.index, error=outcome.error)
            continue
        out = outcome.outputs
        prediction = Prediction(
            source=outcome.source,
            index=outcome.index,
            logits=out["logits"] if keep_arrays else None,
            attention=out["attention"] if keep_arrays else None,
            features=out["features"] if keep_arrays else None,
            verb=int(np.argmax(out["verb_logits"])) if "verb_logits" in out else None,
            noun=int(np.argmax(out["noun_logits"])) if "noun_logits" in out else None,
        ).rank(out["probabilities"], class_names, top_k)
        if attention_dir is not None:
            from lsta_jax import viz

            title = f"{prediction.label} ({prediction.score:.2f})  {Path(outcome.source).name}"
            prediction.overlay = viz.write_overlays(
                attention_dir,
                stem(outcome.index, outcome.source),
                viz.denormalize(outcome.clip),
                out["attention"],
                title=title,
                count=strip_frames,
            )
            outcome.clip = None
        yield prediction


def predict(model: nn.Module | str | Path, *args: Any, **options: Any) -> list[Prediction]:
    """Classify clips (video files or frame folders) with a clip classifier such as `lsta_rgb`.

    Two forms:
      `predict(path, inputs, **options)`: load the model directory or workdir at `path` (`which=` picks a
        workdir's checkpoint, default 'latest'); its input geometry and class names are used.
      `predict(model, variables, inputs, **options)`: a model from `lsta_jax.load_model` or `create_model` +
        `init`; give `checkpoint=path` for its geometry and class names, or the geometry itself.

    Options (keywords; `iter_predict` takes the same):
      checkpoint: model directory or workdir whose geometry and class names are used.
      class_names: names of the M classes (default: the checkpoint's; else indices as names).
      num_frames, size, resize_shorter: `load_clip` geometry (the evaluation transform of the reference);
        default the checkpoint's; one the model was not trained with raises `GeometryError` unless `force`.
      top_k: how many classes each result lists (softmax probabilities, most likely first).
      batch_size: clips per forward, rounded up to a multiple of the local device count.
      min_frames: shortest clip accepted (default `num_frames`: a clip shorter than the model samples is an
        error; 5 reproduces the reference, which repeats frames of clips shorter than T).
      attention_dir: when given, writes `<index>_<name>.png` (strip) and `.gif` overlays there (`viz`).
      keep_arrays: keep logits, attention maps and features in the results (small: M + T*h*w + K floats).
      loader: replaces `load_clip` (a callable path -> normalised (T, H, W, 3) clip), e.g. for flow.
    Inputs: one path or any iterable of paths; failures are reported per input, never raised. Returns one
    `Prediction` per input, in input order. For many inputs prefer `iter_predict`, which streams the same
    results without holding them.
    """
    if isinstance(model, str | Path):
        from lsta_jax.checkpoint import load_model

        if len(args) != 1:
            raise TypeError("predict(path, inputs, **options): give the inputs after the checkpoint path")
        loaded, variables = load_model(model, which=options.pop("which", "latest"))
        options.setdefault("checkpoint", model)
        return list(iter_predict(loaded, variables, args[0], **options))
    return list(iter_predict(model, *args, **options))
