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
"score"}, ...], "overlay": [png, gif]}` with softmax probabilities as scores, or `{"source", "ok": false,
"error"}`. A failing input (unreadable video, folder without frames, clip with fewer frames than the model
samples) is reported and skipped; the command exits with status 1 when any input failed, 2 on a usage or
checkpoint error.
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
    overlay: tuple[Path, Path] | None = None
    error: str | None = None

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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_checkpoint(path: str, which: str) -> tuple[nn.Module, Any, dict[str, Any]]:
    """`load_model` + the JSON, refusing kinds that are not clip classifiers with a message that says so."""
    from lsta_jax.checkpoint import load_model, read_model_json

    meta = read_model_json(path)
    if meta["kind"] not in inference.CLIP_CLASSIFIER_KINDS:
        raise ValueError(
            f"{path} holds a model of kind {meta['kind']!r}, which does not classify clips; "
            f"this command needs one of: {', '.join(inference.CLIP_CLASSIFIER_KINDS)}"
        )
    model, variables = load_model(path, which=which)
    return model, variables, meta


def parse_command(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, tuple[nn.Module, Any, dict[str, Any]] | None]:
    """Parse a command line built with `add_common_arguments` and load its checkpoint.

    The checkpoint part is None (after printing why on stderr) when it cannot be used: callers exit with 2.
    """
    args = parser.parse_args(argv)
    if not args.inputs and not args.input_list:
        parser.error("give at least one input (or --input-list)")
    try:
        return args, load_checkpoint(args.checkpoint, args.which)
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
    args, loaded = parse_command(parser, argv)
    if loaded is None:
        return 2
    model, variables, meta = loaded
    num_frames, size, resize_shorter = input_geometry(meta, args)
    class_names = meta.get("class_names")

    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    failures: list[tuple[str, str]] = []
    total = 0
    try:
        for prediction in iter_predict(
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
            keep_arrays=False,
            workers=args.workers,
            progress=not args.no_progress,
        ):
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
