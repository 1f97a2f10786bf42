"""Predict activity classes of videos and frame folders, with attention overlays.

Command line:
    python -m lsta_jax.predict --checkpoint MODEL_DIR_OR_WORKDIR clip1.mp4 frames_dir/ ... \\
        [--batch-size 8] [--top-k 5] [--output preds.jsonl] [--attention-dir overlays/]

Python:
    from lsta_jax.checkpoint import load_class_names
    from lsta_jax.predict import checkpoint_geometry

    model, variables = lsta_jax.load_model("model_dir")
    names, geometry = load_class_names("model_dir"), checkpoint_geometry("model_dir")
    for p in lsta_jax.predict(model, variables, ["a.mp4", "frames/"], class_names=names, top_k=3,
                              attention_dir="overlays", **geometry):
        print(p.source, p.label, p.score, p.top_k, p.overlay)

Both run the same code: inputs are streamed through `lsta_jax.inference.stream` (bounded memory, fixed-size
padded batches, one compiled `inference.forward`, sharded over all local devices). Preprocessing is
`lsta_jax.data.load_clip`, the evaluation transform (reference section 5: Scale(256), CenterCrop(224), 25
frames sampled uniformly, ImageNet normalisation). The geometry comes from the checkpoint's JSON
(`"input": {"num_frames", "size", "resize_shorter"}` when present) or the flags, else those defaults.

Each input gives one JSON line: `{"source", "ok": true, "label", "score", "top_k": [{"label", "index",
"score"}, ...], "overlay": [png, gif]}` with softmax probabilities as scores (+ `"verb"`, `"noun"`: the
top-1 class indices of a multi-task model's heads), or `{"source", "ok": false, "error"}`. A failing input
(unreadable video, folder without frames, clip with fewer frames than the model samples) is reported and
skipped; the command exits with status 1 when any input failed, 2 on a usage or checkpoint error.

Checkpoints of the kinds that read optical flow (registered with a `flow` input: `egornn_flow`, `lsta_flow`,
`egornn_two_stream`, `lsta_two_stream`) run through `iter_predict_with_flow`, one input at a time: each
input's centre flow stack (and its clip for the two-stream kinds), flow from the authors' layout or
`--flow-root`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import numpy as np

from lsta_jax import inference
from lsta_jax.models import registry


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


def _stem(index: int, source: str) -> str:
    name = Path(source.rstrip("/\\")).name or "input"
    return f"{index:05d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:80]


def iter_predict(
    model: nn.Module,
    variables: Any,
    inputs: str | Path | Iterable[str | Path],
    *,
    class_names: Sequence[str] | None = None,
    top_k: int = 5,
    batch_size: int = 8,
    num_frames: int = inference.DEFAULT_NUM_FRAMES,
    size: int = inference.DEFAULT_SIZE,
    resize_shorter: int = inference.DEFAULT_RESIZE_SHORTER,
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
    engine = inference.BatchedForward(model, variables, batch_size)
    load = loader or inference.default_loader(num_frames, size, resize_shorter, min_frames)
    outcomes = inference.stream(
        engine,
        inputs,
        load,
        expected_shape=None if loader else (num_frames, size, size, 3),
        workers=workers,
        keep_clips=attention_dir is not None,
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
        probabilities = out["probabilities"]
        if class_names is not None and len(class_names) != probabilities.shape[-1]:
            raise ValueError(
                f"{len(class_names)} class names for a model with {probabilities.shape[-1]} classes"
            )
        order = np.argsort(-probabilities, kind="stable")[: max(1, top_k)]
        names = [class_names[i] if class_names is not None else str(i) for i in order]
        prediction = Prediction(
            source=outcome.source,
            index=outcome.index,
            top_k=[(name, float(probabilities[i])) for name, i in zip(names, order, strict=True)],
            top_k_indices=[int(i) for i in order],
            class_index=int(order[0]),
            logits=out["logits"] if keep_arrays else None,
            attention=out["attention"] if keep_arrays else None,
            features=out["features"] if keep_arrays else None,
            verb=int(np.argmax(out["verb_logits"])) if "verb_logits" in out else None,
            noun=int(np.argmax(out["noun_logits"])) if "noun_logits" in out else None,
        )
        if attention_dir is not None:
            from lsta_jax import viz

            title = f"{prediction.label} ({prediction.score:.2f})  {Path(outcome.source).name}"
            prediction.overlay = viz.write_overlays(
                attention_dir,
                _stem(outcome.index, outcome.source),
                viz.denormalize(outcome.clip),
                out["attention"],
                title=title,
                count=strip_frames,
            )
            outcome.clip = None
        yield prediction


def predict(
    model: nn.Module,
    variables: Any,
    inputs: str | Path | Iterable[str | Path],
    *,
    class_names: Sequence[str] | None = None,
    top_k: int = 5,
    batch_size: int = 8,
    num_frames: int = inference.DEFAULT_NUM_FRAMES,
    size: int = inference.DEFAULT_SIZE,
    resize_shorter: int = inference.DEFAULT_RESIZE_SHORTER,
    min_frames: int | None = None,
    attention_dir: str | Path | None = None,
    strip_frames: int = 5,
    keep_arrays: bool = True,
    workers: int = 2,
    progress: bool = False,
    loader: Callable[[Any], np.ndarray] | None = None,
) -> list[Prediction]:
    """Classify clips (video files or frame folders) with a clip classifier such as `lsta_rgb`.

    Args:
      model, variables: from `lsta_jax.load_model(path)` (or `create_model` + `init`).
      inputs: one path or any iterable of paths; failures are reported per input, never raised.
      class_names: names of the M classes (`lsta_jax.checkpoint.load_class_names(path)`); else indices.
      top_k: how many classes each result lists (softmax probabilities, most likely first).
      batch_size: clips per forward, rounded up to a multiple of the local device count.
      num_frames, size, resize_shorter: `load_clip` geometry (the evaluation transform of the reference).
      min_frames: shortest clip accepted (default `num_frames`: a clip shorter than requested is an error;
        5 reproduces the reference, which repeats frames of clips shorter than T).
      attention_dir: when given, writes `<index>_<name>.png` (strip) and `.gif` overlays there (`viz`).
      keep_arrays: keep logits, attention maps and features in the results (small: M + T*h*w + K floats).
      loader: replaces `load_clip` (a callable path -> normalised (T, H, W, 3) clip), e.g. for flow.
    Returns one `Prediction` per input, in input order. For many inputs prefer `iter_predict`, which
    streams the same results without holding them.
    """
    return list(
        iter_predict(
            model,
            variables,
            inputs,
            class_names=class_names,
            top_k=top_k,
            batch_size=batch_size,
            num_frames=num_frames,
            size=size,
            resize_shorter=resize_shorter,
            min_frames=min_frames,
            attention_dir=attention_dir,
            strip_frames=strip_frames,
            keep_arrays=keep_arrays,
            workers=workers,
            progress=progress,
            loader=loader,
        )
    )


def ranked(
    logits: np.ndarray, class_names: Sequence[str] | None, top_k: int
) -> tuple[list[tuple[str, float]], list[int]]:
    """The `top_k` most likely classes of `logits` (M,): (name, softmax probability) pairs, most likely
    first, and their class indices (names are the indices when `class_names` is None)."""
    logits = np.asarray(logits, np.float64)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = [int(i) for i in np.argsort(-probabilities, kind="stable")[: max(1, top_k)]]
    names = [class_names[i] if class_names is not None else str(i) for i in order]
    return [(name, float(probabilities[i])) for name, i in zip(names, order, strict=True)], order


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
    variables = {k: v for k, v in dict(flow_variables).items() if k in ("params", "batch_stats")}
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


def flow_input_kinds() -> tuple[str, ...]:
    """The kinds `iter_predict_with_flow` runs: those registered with a `flow` input."""
    return registry.kinds(lambda spec: spec.reads_flow)


def runnable_kinds() -> tuple[str, ...]:
    """The kinds `predict` and `extract` run: the clip classifiers and the kinds that read flow."""
    return registry.kinds(lambda spec: spec.clip_classifier or spec.reads_flow)


def iter_predict_with_flow(
    model: nn.Module,
    variables: Any,
    inputs: Iterable[str | Path],
    *,
    kind: str = "lsta_two_stream",
    class_names: Sequence[str] | None = None,
    top_k: int = 5,
    num_frames: int = inference.DEFAULT_NUM_FRAMES,
    size: int = inference.DEFAULT_SIZE,
    resize_shorter: int = inference.DEFAULT_RESIZE_SHORTER,
    min_frames: int | None = None,
    attention_dir: str | Path | None = None,
    strip_frames: int = 5,
    flow_root: str | Path | None = None,
) -> Iterator[Prediction]:
    """`Prediction`s of a model that reads optical flow (`flow_input_kinds()`), one input at a time.

    Two-stream kinds (`lsta_two_stream`, `egornn_two_stream`): each input is a frame folder (or video) with
    its optical flow in the authors' layout (`frames/...` -> `flow_x/...`, `flow_y/...`) or under
    `flow_root`: the RGB clip is `load_clip`'s, the flow the stack at the temporal centre
    (`load_centre_flow_stack`, the motion stream's evaluation input). Flow-only kinds (`egornn_flow`,
    `lsta_flow`): the same centre stack, and an input may also be a `flow_x/...` (or `flow_y/...`) clip
    folder. `attention` is the RGB stream's maps (`lsta_flow`: its motion map, (1, h, w); `egornn_flow` has
    none). With `attention_dir`: `lsta_two_stream` draws both streams' maps with
    `viz.write_two_stream_overlays` (paper Fig. 2 rows 5-6: the motion map over the RGB frames of the stack;
    one PNG, `overlay` = (png,)); `egornn_two_stream` its RGB maps and `lsta_flow` its motion map over the
    frames of the stack (RGB frames, or the x flow of a flow clip folder) with `viz.write_overlays`. An
    input without usable frames or flow becomes a failed prediction naming it.
    """
    import jax

    from lsta_jax import viz
    from lsta_jax.data import transforms as T
    from lsta_jax.data.clip_io import flow_dirs_for, frames_at, load_centre_flow_stack

    spec = registry.model_kind(kind)
    if not spec.reads_flow:
        raise ValueError(f"kind {kind!r} does not read flow; expected one of {', '.join(flow_input_kinds())}")
    with_clip = "clip" in spec.inputs
    if attention_dir is not None and not spec.attention:
        raise ValueError(f"kind {kind} has no attention map to draw")
    load = inference.default_loader(num_frames, size, resize_shorter, min_frames)
    forward = jax.jit(lambda v, inputs: model.apply(v, **inputs))
    variables = {k: v for k, v in dict(variables).items() if k in ("params", "batch_stats")}
    for index, source in enumerate(inputs):
        name = str(source)
        try:
            model_inputs = {"clip": load(source)[None]} if with_clip else {}
            stack, start = load_centre_flow_stack(source, size, resize_shorter, flow_root=flow_root)
        except (OSError, ValueError) as exc:
            message = str(exc) if name in str(exc) else f"{name}: {exc}"
            yield Prediction(name, index, error=message)
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
            title = f"{prediction.label} ({prediction.score:.2f})  {Path(name).name}"
            stem = _stem(index, name)
            if spec.attention == ("clip",):  # the RGB stream's maps over its frames
                prediction.overlay = viz.write_overlays(
                    attention_dir, stem, viz.denormalize(model_inputs["clip"][0]), prediction.attention,
                    title=title, count=strip_frames,
                )  # fmt: skip
                yield prediction
                continue
            flow_folder = (
                not with_clip
                and "frames" not in Path(name).parts
                and bool({"flow_x", "flow_y"} & set(Path(name).parts))
            )
            pictures = flow_dirs_for(name, flow_root)[0] if flow_folder else name
            stack_frames = np.stack(
                [
                    np.asarray(T.eval_transform(f, size, resize_shorter))
                    for f in frames_at(pictures, list(range(start, start + T.FLOW_STACK)))
                ]
            )
            if spec.attention == ("flow",):  # the motion map over the stack's frames
                prediction.overlay = viz.write_overlays(
                    attention_dir, stem, stack_frames, np.repeat(prediction.attention, len(stack_frames), 0),
                    title=title, count=strip_frames,
                )  # fmt: skip
            else:
                png = viz.write_two_stream_overlays(
                    attention_dir,
                    stem,
                    viz.denormalize(model_inputs["clip"][0]),
                    out["attention"][0],
                    stack_frames,
                    out["flow_attention"][0],
                    title=title,
                    count=strip_frames,
                )
                prediction.overlay = (png,)
        yield prediction


# ----------------------------------------------------------------------------------------------- CLI


def checkpoint_geometry(path: str | Path) -> dict[str, int]:
    """The `num_frames`, `size`, `resize_shorter` a checkpoint was trained with (its JSON's `input`), else
    the reference's 25 / 224 / 256. Use: `predict(model, variables, inputs, **checkpoint_geometry(path))`."""
    from lsta_jax.checkpoint import read_model_json

    return _geometry(read_model_json(path))


def _geometry(meta: dict[str, Any], **overrides: int | None) -> dict[str, int]:
    stored = meta.get("input") or {}
    defaults = {
        "num_frames": inference.DEFAULT_NUM_FRAMES,
        "size": inference.DEFAULT_SIZE,
        "resize_shorter": inference.DEFAULT_RESIZE_SHORTER,
    }
    return {key: int(overrides.get(key) or stored.get(key) or value) for key, value in defaults.items()}


def input_geometry(meta: dict[str, Any], args: argparse.Namespace) -> tuple[int, int, int]:
    """(num_frames, size, resize_shorter): the flags, else the checkpoint's `input`, else the defaults."""
    geometry = _geometry(meta, num_frames=args.num_frames, size=args.size, resize_shorter=args.resize_shorter)
    return geometry["num_frames"], geometry["size"], geometry["resize_shorter"]


def iter_input_paths(paths: Sequence[str], input_list: str | None) -> Iterator[str]:
    """The positional inputs, then the lines of `--input-list` (read lazily; blank lines and # skipped)."""
    yield from paths
    if input_list:
        with open(input_list) as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield line


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `predict` and `extract`: checkpoint, inputs, batching, geometry."""
    parser.add_argument("inputs", nargs="*", help="video files (mp4, avi, webm, ...) or folders of frames")
    parser.add_argument(
        "--checkpoint", required=True, help="model directory (lsta_jax_model.json) or training workdir"
    )
    parser.add_argument("--which", default="latest", help="checkpoint of a workdir: latest, best or a step")
    parser.add_argument("--input-list", help="text file with one input path per line (read as it streams)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward (default 8)")
    parser.add_argument("--num-frames", type=int, help="frames sampled per clip (default: checkpoint or 25)")
    parser.add_argument("--size", type=int, help="centre-crop size (default: checkpoint or 224)")
    parser.add_argument("--resize-shorter", type=int, help="shorter side before cropping (default 256)")
    parser.add_argument(
        "--min-frames",
        type=int,
        help="shortest clip accepted (default: --num-frames; 5 = the reference, which repeats frames)",
    )
    parser.add_argument("--workers", type=int, default=2, help="threads decoding inputs (default 2)")
    parser.add_argument(
        "--flow-root",
        help="folder holding flow_x/<input name>/ and flow_y/<input name>/ (models reading flow; default: "
        "the authors' layout, frames/... -> flow_x/..., flow_y/...)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_checkpoint(
    path: str, which: str, kinds: Sequence[str] | None = None
) -> tuple[nn.Module, Any, dict[str, Any]]:
    """`load_model` + the JSON, refusing kinds not in `kinds` (default: the clip classifiers), saying so."""
    from lsta_jax.checkpoint import load_model, read_model_json

    if kinds is None:
        kinds = registry.kinds(lambda spec: spec.clip_classifier)
    meta = read_model_json(path)
    if meta["kind"] not in kinds:
        raise ValueError(
            f"{path} holds a model of kind {meta['kind']!r}, which this command cannot run; "
            f"it needs one of: {', '.join(kinds)}"
        )
    model, variables = load_model(path, which=which)
    return model, variables, meta


def parse_command(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    kinds: Sequence[str] | None = None,
) -> tuple[argparse.Namespace, tuple[nn.Module, Any, dict[str, Any]] | None]:
    """Parse a command line built with `add_common_arguments` and load its checkpoint.

    The checkpoint part is None (after printing why on stderr) when it cannot be used: callers exit with 2.
    """
    args = parser.parse_args(argv)
    if not args.inputs and not args.input_list:
        parser.error("give at least one input (or --input-list)")
    try:
        return args, load_checkpoint(args.checkpoint, args.which, kinds)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot use checkpoint {args.checkpoint}: {exc}", file=sys.stderr)
        return args, None


def report_failures(failures: list[tuple[str, str]], total: int, what: str) -> None:
    """The summary printed at the end of a run, on stderr."""
    print(f"{what}: {total - len(failures)} of {total} inputs done, {len(failures)} failed", file=sys.stderr)
    for _, error in failures:
        print(f"  FAILED {error}", file=sys.stderr)  # every error message names its input


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.predict",
        description="Classify videos / frame folders with an lsta_jax checkpoint; JSON lines with the top-k "
        "classes, optional attention overlays (PNG strip + GIF per input).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument("--top-k", type=int, default=5, help="classes listed per input")
    parser.add_argument("--output", help="write the JSON lines here instead of stdout")
    parser.add_argument("--attention-dir", help="write attention overlays (<index>_<name>.png/.gif) here")
    parser.add_argument("--strip-frames", type=int, default=5, help="frames in each overlay strip")
    parser.add_argument(
        "--flow-checkpoint",
        help="late fusion with this flow model (e.g. kind egornn_flow); inputs must be frame folders whose "
        "flow is in the authors' layout (frames/... -> flow_x/..., flow_y/...) or under --flow-root",
    )
    parser.add_argument("--flow-which", help="checkpoint of the flow workdir (default: --which)")
    parser.add_argument("--flow-segments", type=int, default=10, help="flow stacks averaged per input")
    parser.add_argument("--flow-weight", type=float, default=0.5, help="weight of the flow scores")
    args, loaded = parse_command(parser, argv, runnable_kinds())
    if loaded is None:
        return 2
    model, variables, meta = loaded
    spec = registry.model_kind(meta["kind"])
    reads_flow = spec.reads_flow
    if reads_flow and args.flow_checkpoint:
        print(
            f"error: a {meta['kind']} checkpoint reads the flow itself; drop --flow-checkpoint",
            file=sys.stderr,
        )
        return 2
    if not spec.attention and args.attention_dir:
        print(f"error: kind {meta['kind']} has no attention map; drop --attention-dir", file=sys.stderr)
        return 2
    flow = None
    if args.flow_checkpoint:
        from lsta_jax.checkpoint import load_model, read_model_json

        try:
            flow_model, flow_variables = load_model(args.flow_checkpoint, which=args.flow_which or args.which)
            flow_names = read_model_json(args.flow_checkpoint).get("class_names")
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: cannot use flow checkpoint {args.flow_checkpoint}: {exc}", file=sys.stderr)
            return 2
        if flow_names and meta.get("class_names") and flow_names != meta["class_names"]:
            print("error: the RGB and flow checkpoints have different class names", file=sys.stderr)
            return 2
        flow = (flow_model, flow_variables)
        flow_geometry = _geometry(read_model_json(args.flow_checkpoint))  # the flow model's own crop
    num_frames, size, resize_shorter = input_geometry(meta, args)
    class_names = meta.get("class_names")

    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    failures: list[tuple[str, str]] = []
    total = 0
    try:
        if reads_flow:
            predictions = iter_predict_with_flow(
                model,
                variables,
                args.inputs if not args.input_list else iter_input_paths(args.inputs, args.input_list),
                kind=meta["kind"],
                class_names=class_names,
                top_k=args.top_k,
                num_frames=num_frames,
                size=size,
                resize_shorter=resize_shorter,
                min_frames=args.min_frames,
                attention_dir=args.attention_dir,
                strip_frames=args.strip_frames,
                flow_root=args.flow_root,
            )
        else:
            predictions = iter_predict(
                model,
                variables,
                args.inputs if not args.input_list else iter_input_paths(args.inputs, args.input_list),
                class_names=class_names,
                top_k=args.top_k,
                batch_size=args.batch_size,
                num_frames=num_frames,
                size=size,
                resize_shorter=resize_shorter,
                min_frames=args.min_frames,
                attention_dir=args.attention_dir,
                strip_frames=args.strip_frames,
                keep_arrays=flow is not None,
                workers=args.workers,
                progress=not args.no_progress,
            )
        if flow is not None:
            predictions = fuse_with_flow(
                predictions,
                *flow,
                class_names=class_names,
                top_k=args.top_k,
                flow_segments=args.flow_segments,
                flow_weight=args.flow_weight,
                size=flow_geometry["size"],
                resize_shorter=flow_geometry["resize_shorter"],
                flow_root=args.flow_root,
            )
        for prediction in predictions:
            total += 1
            if not prediction.ok:
                failures.append((prediction.source, prediction.error))
            out.write(json.dumps(prediction.to_json()) + "\n")
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    report_failures(failures, total, "predict")
    return 1 if failures else 0
