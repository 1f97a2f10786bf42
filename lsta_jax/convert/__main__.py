"""Convert a PyTorch checkpoint into an lsta_jax model directory, offline.

    python -m lsta_jax.convert --kind resnet34 --torch-checkpoint resnet34-b627a593.pth --output models/r34
    python -m lsta_jax.convert --kind lsta_rgb --torch-checkpoint best_checkpoint_stage2.pth.tar \\
        --output models/lsta_gtea61 --class-names gtea61_classes.txt

The output loads with `lsta_jax.load_model(DIR)` -> `(model, variables)`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lsta_jax import cli
from lsta_jax.convert import (
    CONVERTERS,
    CheckpointReadError,
    ConversionError,
    convert_checkpoint,
    fitting_kinds,
    read_class_names,
)
from lsta_jax.convert.torch_io import read_torch_checkpoint


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.convert",
        description="Convert a PyTorch checkpoint (zip or legacy .pth; bare, 'state_dict' or "
        "'model_state_dict' wrapped; 'module.' prefixes and num_batches_tracked allowed) into an lsta_jax "
        "model directory "
        "(orbax variables + lsta_jax_model.json). Strict: every torch key must be used and every model "
        "variable filled, else one line names the kind the file fits (--list-keys: every offending name). "
        "Needs torch: pip install -e '.[torch]'.",
    )
    parser.add_argument("--kind", required=True, choices=sorted(CONVERTERS), help="what the checkpoint holds")
    parser.add_argument("--torch-checkpoint", required=True, type=Path, help="the PyTorch file to read")
    parser.add_argument("--output", required=True, type=Path, help="model directory to write")
    parser.add_argument("--class-names", type=Path, help="text file with one class name per line (optional)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the model already in --output (refused otherwise)"
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load with torch.load(weights_only=False) when a safe load is refused (executes code in the "
        "file: only for files you trust)",
    )
    parser.add_argument(
        "--list-keys",
        action="store_true",
        help="on a checkpoint that does not fit, list every offending name",
    )
    return parser


def wrong_kind_message(args: argparse.Namespace, err: ConversionError) -> str:
    """One line for a checkpoint that does not convert to `--kind`: the kind(s) its keys fit, with the
    command that converts it, or (none fits) the first offending names of each problem."""
    checkpoint = read_torch_checkpoint(args.torch_checkpoint, trust_pickle=args.trust_pickle)
    kinds = fitting_kinds(checkpoint.state_dict, exclude=(args.kind,))
    where = f"{args.torch_checkpoint} does not convert to kind {args.kind}"
    if kinds:
        command = f"python -m lsta_jax.convert --kind {kinds[0]} --torch-checkpoint {args.torch_checkpoint}"
        return f"{where}: its keys are those of a {' or '.join(kinds)} checkpoint; run {command} --output DIR"
    return f"{where}: {err.summary()} (--list-keys lists every name)"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lsta_jax.checkpoint import MODEL_JSON, parameter_count, save_model

    fail = cli.fail

    if (args.output / MODEL_JSON).exists() and not args.overwrite:
        return fail(f"{args.output} already holds a model ({MODEL_JSON}); pass --overwrite to replace it")
    start = time.perf_counter()
    try:
        class_names = read_class_names(args.class_names) if args.class_names else None
        print(f"reading {args.torch_checkpoint} ...", flush=True)
        converted, checkpoint = convert_checkpoint(
            args.kind, args.torch_checkpoint, class_names, trust_pickle=args.trust_pickle
        )
    except ImportError as err:
        return fail(str(err))
    except ConversionError as err:
        if args.list_keys:
            print(
                f"error: {args.torch_checkpoint} does not convert to kind {args.kind}: {err}", file=sys.stderr
            )
            return 2
        return fail(wrong_kind_message(args, err))
    except (CheckpointReadError, FileNotFoundError, ValueError) as err:
        return fail(str(err))
    print(f"writing {args.output} ...", flush=True)
    source = f"{args.torch_checkpoint.resolve()} (sha256 {_sha256(args.torch_checkpoint)})"
    directory = save_model(
        args.output, converted.kind, converted.config, converted.variables, converted.class_names, source
    )

    layout = "legacy" if checkpoint.legacy_format else "zip"
    wrapped = f", wrapped in '{checkpoint.wrapper}'" if checkpoint.wrapper else ", bare state dict"
    lines = [
        f"converted {args.torch_checkpoint} ({layout} format{wrapped}) -> {directory}",
        f"  kind {converted.kind}, config {converted.config}",
        f"  torch keys consumed: {len(checkpoint.state_dict)}/{len(checkpoint.state_dict)}"
        + (f" (+{len(checkpoint.dropped)} num_batches_tracked dropped)" if checkpoint.dropped else "")
        + (f" ('module.' stripped from {checkpoint.stripped_prefix})" if checkpoint.stripped_prefix else ""),
    ]
    if checkpoint.other_entries:
        lines.append(
            f"  not converted (beside '{checkpoint.wrapper}'): {', '.join(checkpoint.other_entries)}"
        )
    for collection, tree in converted.variables.items():
        lines.append(f"  {collection}: {parameter_count(tree):,} values")
    lines += [f"  {note}" for note in converted.notes]
    if converted.class_names:
        lines.append(
            f"  class names: {len(converted.class_names)} ({', '.join(converted.class_names[:3])}, ...)"
        )
    lines.append(
        f"  done in {time.perf_counter() - start:.1f}s; load with lsta_jax.load_model('{directory}')"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
