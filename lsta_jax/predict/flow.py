"""Predictions of models that read optical flow: the flow-input kinds, and late fusion of RGB predictions with
a flow model. One input at a time (each input's flow is read from its own folders)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import numpy as np

from lsta_jax import inference
from lsta_jax.models import registry
from lsta_jax.predict.api import Prediction, ranked, stem


def flow_input_kinds() -> tuple[str, ...]:
    """The kinds `iter_predict_with_flow` runs: those registered with a `flow` input."""
    return registry.kinds(lambda spec: spec.reads_flow)


def _model_variables(variables: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(variables).items() if k in ("params", "batch_stats")}


def fuse_with_flow(
    predictions: Iterable[Prediction],
    flow_model: nn.Module,
    flow_variables: Any,
    *,
    class_names: Sequence[str] | None = None,
    top_k: int = 5,
    flow_segments: int = 10,
    flow_weight: float = 0.5,
    size: int = inference.DEFAULT_SIZE,
    resize_shorter: int = inference.DEFAULT_RESIZE_SHORTER,
    flow_root: str | Path | None = None,
) -> Iterator[Prediction]:
    """Late fusion of RGB `Prediction`s (made with `keep_arrays=True`) with a flow model, input by input.

    Each input's flow (`lsta_jax.data.clip_io.load_flow_stacks`: `flow_segments` stacks at ego-rnn's starts,
    folders from `flow_dirs_for(source, flow_root)`) goes through the flow model; the fused logits are
    `two_stream.late_fusion(rgb, flow)` (ego-rnn's rule, raw logits) and `top_k` is recomputed from their
    softmax. An input without usable flow becomes a failed prediction naming it; the attention maps (and
    overlays) stay the RGB stream's.
    """
    import jax

    from lsta_jax.data.clip_io import load_flow_stacks
    from lsta_jax.models.two_stream import late_fusion

    forward = jax.jit(lambda variables, stacks: flow_model.apply(variables, flow=stacks)["logits"])
    variables = _model_variables(flow_variables)
    for prediction in predictions:
        if not prediction.ok:
            yield prediction
            continue
        if prediction.logits is None:
            raise ValueError("late fusion needs the RGB logits: make the predictions with keep_arrays=True")
        try:
            stacks = load_flow_stacks(
                prediction.source, flow_segments, size, resize_shorter, flow_root=flow_root
            )
        except (OSError, ValueError) as exc:
            prediction.error, prediction.top_k = str(exc), []
            yield prediction
            continue
        flow_logits = np.asarray(forward(variables, stacks))  # (S, M)
        fused = np.asarray(late_fusion(prediction.logits[None], flow_logits[None], flow_weight))[0]
        prediction.top_k, prediction.top_k_indices = ranked(fused, class_names, top_k)
        prediction.class_index, prediction.logits = prediction.top_k_indices[0], fused
        yield prediction


def _stack_frames(
    name: str, with_clip: bool, start: int, size: int, resize_shorter: int, flow_root: str | Path | None
) -> np.ndarray:
    """The RGB frames under a flow stack (a flow clip folder input: its x flow images), eval-transformed."""
    from lsta_jax.data import transforms as T
    from lsta_jax.data.clip_io import flow_dirs_for, frames_at

    parts = set(Path(name).parts)
    flow_folder = not with_clip and "frames" not in parts and bool({"flow_x", "flow_y"} & parts)
    pictures = flow_dirs_for(name, flow_root)[0] if flow_folder else name
    frames = frames_at(pictures, list(range(start, start + T.FLOW_STACK)))
    return np.stack([np.asarray(T.eval_transform(f, size, resize_shorter)) for f in frames])


def _overlay(
    spec: registry.ModelKind,
    attention_dir: str | Path,
    prediction: Prediction,
    inputs: dict[str, np.ndarray],
    out: dict[str, np.ndarray],
    stack_frames: Any,
    strip_frames: int,
) -> tuple[Path, ...]:
    """Draw the kind's registered attention maps: over the clip's frames, the motion map over the stack's
    frames, or both streams' (`viz.write_two_stream_overlays`, paper Fig. 2 rows 5-6)."""
    from lsta_jax import viz

    title = f"{prediction.label} ({prediction.score:.2f})  {Path(prediction.source).name}"
    name = stem(prediction.index, prediction.source)
    if spec.attention == ("clip",):
        frames, maps = viz.denormalize(inputs["clip"][0]), prediction.attention
        return viz.write_overlays(attention_dir, name, frames, maps, title=title, count=strip_frames)
    frames = stack_frames()
    if spec.attention == ("flow",):
        maps = np.repeat(prediction.attention, len(frames), 0)
        return viz.write_overlays(attention_dir, name, frames, maps, title=title, count=strip_frames)
    rgb_frames = viz.denormalize(inputs["clip"][0])
    png = viz.write_two_stream_overlays(
        attention_dir, name, rgb_frames, out["attention"][0], frames, out["flow_attention"][0],
        title=title, count=strip_frames,
    )  # fmt: skip
    return (png,)


def iter_predict_with_flow(
    model: nn.Module,
    variables: Any,
    inputs: Iterable[str | Path],
    *,
    kind: str,
    num_frames: int,
    size: int,
    resize_shorter: int,
    class_names: Sequence[str] | None = None,
    top_k: int = 5,
    min_frames: int | None = None,
    attention_dir: str | Path | None = None,
    strip_frames: int = 5,
    flow_root: str | Path | None = None,
) -> Iterator[Prediction]:
    """`Prediction`s of a model that reads optical flow (`flow_input_kinds()`), one input at a time.

    Kinds that also take a clip (the two-stream kinds): each input is a frame folder (or video) with its
    optical flow in the authors' layout (`frames/...` -> `flow_x/...`, `flow_y/...`) or under `flow_root`:
    the RGB clip is `load_clip`'s, the flow the stack at the temporal centre (`load_centre_flow_stack`, the
    motion stream's evaluation input). Flow-only kinds: the same centre stack, and an input may also be a
    `flow_x/...` (or `flow_y/...`) clip folder. `attention` is the model's `attention` output (the RGB
    stream's maps, or a motion stream's map (1, h, w)); with `attention_dir` the kind's registered
    `attention` maps are drawn (`_overlay`). An input without usable frames or flow becomes a failed
    prediction naming it.
    """
    import jax

    from lsta_jax.data.clip_io import load_centre_flow_stack

    spec = registry.model_kind(kind)
    if not spec.reads_flow:
        raise ValueError(f"kind {kind!r} does not read flow; expected one of {', '.join(flow_input_kinds())}")
    if attention_dir is not None and not spec.attention:
        raise ValueError(f"kind {kind} has no attention map to draw")
    with_clip = "clip" in spec.inputs
    load = inference.default_loader(num_frames, size, resize_shorter, min_frames)
    forward = jax.jit(lambda v, inputs: model.apply(v, **inputs))
    variables = _model_variables(variables)
    for index, source in enumerate(inputs):
        name = str(source)
        try:
            model_inputs = {"clip": load(source)[None]} if with_clip else {}
            stack, start = load_centre_flow_stack(source, size, resize_shorter, flow_root=flow_root)
        except (OSError, ValueError) as exc:
            yield Prediction(name, index, error=str(exc) if name in str(exc) else f"{name}: {exc}")
            continue
        model_inputs["flow"] = stack[None]
        out = jax.device_get(forward(variables, model_inputs))
        ranking, indices = ranked(out["logits"][0], class_names, top_k)
        prediction = Prediction(
            source=name,
            index=index,
            top_k=ranking,
            top_k_indices=indices,
            class_index=indices[0],
            logits=np.asarray(out["logits"][0]),
            attention=np.asarray(out["attention"][0]) if "attention" in out else None,
            features=np.asarray(out["features"][0]),
        )
        if attention_dir is not None:
            prediction.overlay = _overlay(
                spec,
                attention_dir,
                prediction,
                model_inputs,
                out,
                lambda: _stack_frames(name, with_clip, start, size, resize_shorter, flow_root),  # noqa: B023
                strip_frames,
            )
        yield prediction
