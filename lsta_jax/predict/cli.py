"""`python -m lsta_jax.predict`: argument parsing, checkpoint loading, the command (flags shared with
`extract`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn

from lsta_jax.models import registry
from lsta_jax.predict.api import GeometryError, Prediction, iter_predict, resolve_geometry
from lsta_jax.predict.flow import fuse_with_flow, iter_predict_with_flow

#: file endings of PyTorch checkpoints (what `python -m lsta_jax.convert` reads)
TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt", ".bin")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Prints a flag's default once, only when there is one (not for None or an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def runnable_kinds() -> tuple[str, ...]:
    """The kinds `predict` and `extract` run: the clip classifiers and the kinds that read flow."""
    return registry.kinds(lambda spec: spec.clip_classifier or spec.reads_flow)


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
    parser.formatter_class = HelpFormatter
    parser.add_argument("inputs", nargs="*", help="video files (mp4, avi, webm, ...) or folders of frames")
    parser.add_argument(
        "--checkpoint", required=True, help="model directory (lsta_jax_model.json) or training workdir"
    )
    parser.add_argument("--which", default="latest", help="checkpoint of a workdir: latest, best or a step")
    parser.add_argument("--input-list", help="text file with one input path per line (read as it streams)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward")
    trained = "default: the checkpoint's, else the reference's {}; another than the checkpoint's: --force"
    parser.add_argument("--num-frames", type=int, help="frames sampled per clip (" + trained.format(25) + ")")
    parser.add_argument("--size", type=int, help="centre-crop size (" + trained.format(224) + ")")
    parser.add_argument(
        "--resize-shorter", type=int, help="shorter side before cropping (" + trained.format(256) + ")"
    )
    parser.add_argument(
        "--force", action="store_true", help="run with a geometry the model was not trained with"
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        help="shortest clip accepted (default: the frames sampled; 5 = the reference, which repeats frames)",
    )
    parser.add_argument("--workers", type=int, default=2, help="threads decoding inputs")
    parser.add_argument(
        "--flow-root",
        help="folder holding flow_x/<input name>/ and flow_y/<input name>/ (models reading flow; default: "
        "the authors' layout, frames/... -> flow_x/..., flow_y/...)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_checkpoint(
    path: str, which: str, kinds: Sequence[str] | None = None
) -> tuple[nn.Module, Any, dict[str, Any]]:
    """`load_model` + the JSON, refusing kinds not in `kinds` (default: the clip classifiers) and PyTorch
    files (to convert first), saying so."""
    from lsta_jax.checkpoint import load_model, read_model_json

    if Path(path).is_file() or Path(path).suffix in TORCH_SUFFIXES:
        raise ValueError(
            "this is a file, not an lsta_jax model directory; a PyTorch checkpoint must be converted first: "
            f"python -m lsta_jax.convert --kind KIND --torch-checkpoint {path} --output MODEL_DIR"
        )
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


def input_geometry(meta: dict[str, Any], args: argparse.Namespace) -> tuple[int, int, int]:
    """(num_frames, size, resize_shorter): the checkpoint's, with the flags (`resolve_geometry`: a value the
    model was not trained with raises GeometryError unless --force)."""
    flags = {"num_frames": args.num_frames, "size": args.size, "resize_shorter": args.resize_shorter}
    geometry = resolve_geometry(meta, flags, getattr(args, "force", False))
    return geometry["num_frames"], geometry["size"], geometry["resize_shorter"]


def parse_command(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    kinds: Sequence[str] | None = None,
) -> tuple[argparse.Namespace, tuple[nn.Module, Any, dict[str, Any]] | None]:
    """Parse a command line built with `add_common_arguments`, load its checkpoint and check the geometry.

    The checkpoint part is None (after printing why on stderr, one line) when it cannot be used: callers
    exit with 2.
    """
    args = parser.parse_args(argv)
    if not args.inputs and not args.input_list:
        parser.error("give at least one input (or --input-list)")
    try:
        loaded = load_checkpoint(args.checkpoint, args.which, kinds)
        input_geometry(loaded[2], args)
    except GeometryError as exc:
        print(f"error: {args.checkpoint}: {exc}", file=sys.stderr)
        return args, None
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot use checkpoint {args.checkpoint}: {exc}", file=sys.stderr)
        return args, None
    return args, loaded


def report_failures(failures: list[tuple[str, str]], total: int, what: str) -> None:
    """The summary printed at the end of a run, on stderr."""
    print(f"{what}: {total - len(failures)} of {total} inputs done, {len(failures)} failed", file=sys.stderr)
    for _, error in failures:
        print(f"  FAILED {error}", file=sys.stderr)  # every error message names its input


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.predict",
        description="Classify videos / frame folders with an lsta_jax checkpoint; JSON lines with the top-k "
        "classes, optional attention overlays (PNG strip + GIF per input).",
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
    return parser


def _load_flow_model(args: argparse.Namespace, meta: dict[str, Any]) -> tuple[Any, dict[str, int]]:
    """(flow model and variables, its own geometry) of `--flow-checkpoint`; an error says why not."""
    from lsta_jax.checkpoint import load_model, read_model_json

    flow_model, flow_variables = load_model(args.flow_checkpoint, which=args.flow_which or args.which)
    flow_meta = read_model_json(args.flow_checkpoint)
    if (
        flow_meta.get("class_names")
        and meta.get("class_names")
        and flow_meta["class_names"] != meta["class_names"]
    ):
        raise ValueError("the RGB and flow checkpoints have different class names")
    return (flow_model, flow_variables), resolve_geometry(flow_meta, {})  # the flow model's own crop


def _predictions(args: argparse.Namespace, loaded: tuple[nn.Module, Any, dict[str, Any]], flow: Any) -> Any:
    model, variables, meta = loaded
    num_frames, size, resize_shorter = input_geometry(meta, args)
    inputs = args.inputs if not args.input_list else iter_input_paths(args.inputs, args.input_list)
    common = dict(
        class_names=meta.get("class_names"),
        top_k=args.top_k,
        num_frames=num_frames,
        size=size,
        resize_shorter=resize_shorter,
        min_frames=args.min_frames,
        attention_dir=args.attention_dir,
        strip_frames=args.strip_frames,
    )
    if registry.model_kind(meta["kind"]).reads_flow:
        return iter_predict_with_flow(
            model, variables, inputs, kind=meta["kind"], flow_root=args.flow_root, **common
        )
    predictions = iter_predict(
        model,
        variables,
        inputs,
        batch_size=args.batch_size,
        keep_arrays=flow is not None,
        workers=args.workers,
        progress=not args.no_progress,
        **common,
    )
    if flow is None:
        return predictions
    (flow_model, flow_variables), flow_geometry = flow
    return fuse_with_flow(
        predictions,
        flow_model,
        flow_variables,
        class_names=meta.get("class_names"),
        top_k=args.top_k,
        flow_segments=args.flow_segments,
        flow_weight=args.flow_weight,
        size=flow_geometry["size"],
        resize_shorter=flow_geometry["resize_shorter"],
        flow_root=args.flow_root,
    )


def _write(predictions: Any, output: str | None) -> int:
    """Write the JSON lines, report failures; the exit status (1 when any input failed)."""
    out = open(output, "w") if output else sys.stdout  # noqa: SIM115
    failures: list[tuple[str, str]] = []
    total = 0
    try:
        for prediction in predictions:
            prediction: Prediction
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


def main(argv: list[str] | None = None) -> int:
    args, loaded = parse_command(build_parser(), argv, runnable_kinds())
    if loaded is None:
        return 2
    kind = loaded[2]["kind"]
    spec = registry.model_kind(kind)
    if spec.reads_flow and args.flow_checkpoint:
        print(f"error: a {kind} checkpoint reads the flow itself; drop --flow-checkpoint", file=sys.stderr)
        return 2
    if not spec.attention and args.attention_dir:
        print(f"error: kind {kind} has no attention map; drop --attention-dir", file=sys.stderr)
        return 2
    flow = None
    if args.flow_checkpoint:
        try:
            flow = _load_flow_model(args, loaded[2])
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: cannot use flow checkpoint {args.flow_checkpoint}: {exc}", file=sys.stderr)
            return 2
    return _write(_predictions(args, loaded, flow), args.output)
