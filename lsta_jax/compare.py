"""Check lsta_jax's numerics against PyTorch on your own LSTA RGB (or ego-rnn flow) checkpoint.

    python -m lsta_jax.compare --torch-checkpoint best_checkpoint_stage2.pth.tar [--clip FRAMES_DIR_OR_NPY]
        [--frames T] [--size 224] [--seed 0] [--tolerance 1e-4]
    python -m lsta_jax.compare --kind egornn_flow --torch-checkpoint model_flow_state_dict.pth [--clip X.npy]

`--kind egornn_flow`: an ego-rnn `flow_resnet34` state dict, our `TorchFlowResNet` vs the converted Flax
model on flow stacks (`--clip` a `.npy` of normalised (H, W, 10) or (N, H, W, 10) stacks, else a random one);
outputs `logits`, `features` (pooled) and `layer4`.

Loads the authors'-format checkpoint (`{'epoch', 'model_state_dict', ...}` or a bare state dict, legacy or
zip serialisation) twice: into our PyTorch reference (`lsta_jax.reference.torch_lsta`, a transcription of the
authors' `attentionModel`, docs/differences.md §2.1-2.5) and, through the converter, into the Flax model. Both
run the same clip in float32 (highest matmul/conv precision, no TF32); the command prints, per output, the
max absolute and max relative difference (max |jax - torch| / max |torch|), and the agreement of every
argmax selection (k_t of the attention pooling, j_t of the output pooling) at every step. The network is
piecewise (argmax), so selections are compared first: after a disagreeing selection the values are not
expected to agree. Exit status 0 when all selections agree and every relative difference is within
`--tolerance`, 1 otherwise.

The clip: a frames directory or a video (preprocessed with `lsta_jax.data.load_clip`, the evaluation
transform: Scale(256), CenterCrop(224), normalise), a `.npy` file holding an already normalised float32
(T, H, W, 3) or (B, T, H, W, 3) array, or, without `--clip`, a random normal clip (1, T, size, size, 3).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lsta_jax import cli

if TYPE_CHECKING:
    from lsta_jax.convert import ConversionError

OUTPUTS = ("logits", "features", "attention", "frame_features", "layer4")


def load_clip_argument(clip: str | None, frames: int, size: int, seed: int) -> np.ndarray:
    """The (B, T, H, W, 3) float32 clip described by `--clip` (module docstring)."""
    if clip is None:
        return np.random.default_rng(seed).normal(size=(1, frames, size, size, 3)).astype(np.float32)
    path = Path(clip)
    if not path.exists():
        raise FileNotFoundError(f"--clip {path}: no such file or directory")
    if path.suffix == ".npy":
        array = np.load(path)
        if array.ndim == 4:
            array = array[None]
        if array.ndim != 5 or array.shape[-1] != 3:
            raise ValueError(
                f"--clip {path}: expected a (T, H, W, 3) or (B, T, H, W, 3) array, got {array.shape}"
            )
        return np.asarray(array, np.float32)
    try:
        from lsta_jax.data import load_clip
    except ImportError as err:  # the data package is optional for this command
        raise RuntimeError(f"--clip {path}: reading frames needs lsta_jax.data.load_clip ({err})") from err
    return np.asarray(load_clip(str(path), num_frames=frames, size=size), np.float32)[None]


def max_differences(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max |ours - ref|, max |ours - ref| / max |ref|) in float64."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    diff = float(np.max(np.abs(ours - ref))) if ours.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return diff, diff / scale if scale > 0 else diff


def run_torch(torch_model: Any, clip: np.ndarray) -> dict[str, np.ndarray]:
    """The reference on a (B, T, H, W, 3) clip; outputs batch-major and NHWC like the Flax model's."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    time_major = torch.from_numpy(np.ascontiguousarray(np.transpose(clip, (1, 0, 4, 2, 3))))
    with torch.no_grad():
        out = torch_model.eval()(time_major, details=True)
    result = {k: v.numpy() for k, v in out.items()}
    for key in ("attention", "attention_class", "pooling_class", "frame_features"):
        result[key] = np.swapaxes(result[key], 0, 1)  # (T, B, ...) -> (B, T, ...)
    return result


def run_jax(model: Any, variables: Any, clip: np.ndarray) -> dict[str, np.ndarray]:
    import jax

    with jax.default_matmul_precision("highest"):
        apply = jax.jit(model.apply, static_argnames=("return_selections", "return_frame_features"))
        out = apply(variables, clip, return_selections=True, return_frame_features=True)
        return {k: np.asarray(v) for k, v in out.items()}


def compare_outputs(
    ours: dict[str, np.ndarray], ref: dict[str, np.ndarray], tolerance: float
) -> tuple[bool, str]:
    """A report of selection agreement and value differences; True when everything agrees."""
    lines, ok = [], True
    for key, label in (
        ("attention_class", "k_t (attention pooling)"),
        ("pooling_class", "j_t (output pooling)"),
    ):
        if key not in ours:  # a model without selections (the flow network)
            continue
        same = ours[key] == ref[key]
        ok &= bool(same.all())
        lines.append(f"selection {label}: {int(same.sum())}/{same.size} agree")
        for b, t in zip(*np.nonzero(~same), strict=True):
            lines.append(f"  sample {b} step {t}: jax {ours[key][b, t]} torch {ref[key][b, t]}")
    lines.append(f"{'output':<16}{'shape':<22}{'max abs diff':>14}{'max rel diff':>14}")
    for key in [k for k in OUTPUTS if k in ours and k in ref]:
        diff, rel = max_differences(ours[key], ref[key])
        ok &= rel <= tolerance
        flag = "" if rel <= tolerance else f"  > tolerance {tolerance:g}"
        lines.append(f"{key:<16}{str(tuple(ours[key].shape)):<22}{diff:>14.3e}{rel:>14.3e}{flag}")
    return ok, "\n".join(lines)


def load_stack_argument(clip: str | None, channels: int, size: int, seed: int) -> np.ndarray:
    """The (N, H, W, channels) float32 flow stacks of `--clip` (a .npy), or one random normal stack."""
    if clip is None:
        return np.random.default_rng(seed).normal(size=(1, size, size, channels)).astype(np.float32)
    path = Path(clip)
    if path.suffix != ".npy" or not path.is_file():
        raise ValueError(f"--clip {path}: for a flow model give a .npy file of normalised flow stacks")
    array = np.load(path)
    array = array[None] if array.ndim == 3 else array
    if array.ndim != 4 or array.shape[-1] != channels:
        raise ValueError(
            f"--clip {path}: expected (H, W, {channels}) or (N, H, W, {channels}), got {array.shape}"
        )
    return np.asarray(array, np.float32)


def compare_flow(state_dict: dict[str, np.ndarray], args: argparse.Namespace) -> tuple[bool, str]:
    """`--kind egornn_flow`: our TorchFlowResNet vs the converted Flax model on the same stacks."""
    import jax
    import torch

    from lsta_jax.convert.ego_rnn_flow import convert_state_dict, torch_model_from_state_dict
    from lsta_jax.models.registry import create_model

    converted = convert_state_dict(state_dict)
    torch_model = torch_model_from_state_dict(converted.config, state_dict)
    stacks = load_stack_argument(args.clip, converted.config["in_channels"], args.size, args.seed)
    print(f"config {converted.config}; stacks {stacks.shape}", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        ref = torch_model(
            torch.from_numpy(np.ascontiguousarray(np.transpose(stacks, (0, 3, 1, 2)))), details=True
        )
    ref = {k: v.numpy() for k, v in ref.items()}
    ref["layer4"] = np.transpose(ref["layer4"], (0, 2, 3, 1))
    model = create_model(converted.kind, **converted.config)
    with jax.default_matmul_precision("highest"):
        ours = {k: np.asarray(v) for k, v in jax.jit(model.apply)(converted.variables, stacks).items()}
    return compare_outputs(ours, ref, args.tolerance)


def _not_this_kind(args: argparse.Namespace, state_dict: dict, what: str, err: ConversionError) -> str:
    """One line: the checkpoint is not `--kind`; the kind its keys fit and the command for it, if any."""
    from lsta_jax.convert import fitting_kinds

    where = f"{args.torch_checkpoint} is not {what} checkpoint"
    kinds = fitting_kinds(state_dict, exclude=(args.kind,))
    ours = [k for k in kinds if k in COMPARE_KINDS]
    if ours:
        return (
            f"{where}; its keys are those of {ours[0]}: run python -m lsta_jax.compare --kind {ours[0]} ..."
        )
    if kinds:
        return (
            f"{where}; its keys are those of {kinds[0]}, which compare does not run (kinds: "
            f"{', '.join(COMPARE_KINDS)}); convert it with python -m lsta_jax.convert --kind {kinds[0]}"
        )
    return f"{where}: {err.summary()}"


#: The kinds `compare` runs against the PyTorch reference.
COMPARE_KINDS = ("lsta_rgb", "egornn_flow")


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.compare",
        description="Run the Flax LSTA model and the PyTorch reference on one clip; print the differences.",
    )
    parser.add_argument("--torch-checkpoint", required=True, help="the authors'-format LSTA RGB checkpoint")
    parser.add_argument(
        "--kind",
        default="lsta_rgb",
        choices=COMPARE_KINDS,
        help="what the checkpoint holds (egornn_flow: ego-rnn's flow_resnet34)",
    )
    parser.add_argument(
        "--clip", help="frames directory, video, or .npy of normalised frames (default: random)"
    )
    parser.add_argument(
        "--frames", type=cli.positive_int, default=25, help="frames T sampled (a .npy clip is used whole)"
    )
    parser.add_argument("--size", type=cli.positive_int, default=224, help="crop size (not for .npy)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random clip")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max relative difference")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a full unpickle (executes code: trusted files only)",
    )
    args = parser.parse_args(argv)

    from lsta_jax.convert import CheckpointReadError, ConversionError
    from lsta_jax.convert.lsta import convert_state_dict, torch_model_from_state_dict
    from lsta_jax.convert.torch_io import read_torch_checkpoint
    from lsta_jax.models.registry import create_model

    start = time.time()
    print(f"reading {args.torch_checkpoint} ...", flush=True)
    if args.kind == "egornn_flow":
        try:
            checkpoint = read_torch_checkpoint(args.torch_checkpoint, trust_pickle=args.trust_pickle)
            ok, report = compare_flow(checkpoint.state_dict, args)
        except ConversionError as err:
            return cli.fail(_not_this_kind(args, checkpoint.state_dict, "an ego-rnn flow", err))
        except (ImportError, CheckpointReadError, OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(report)
        print(f"{'OK' if ok else 'MISMATCH'} ({time.time() - start:.1f} s)")
        return 0 if ok else 1
    try:
        checkpoint = read_torch_checkpoint(args.torch_checkpoint, trust_pickle=args.trust_pickle)
        converted = convert_state_dict(checkpoint.state_dict)
        torch_model = torch_model_from_state_dict(converted.config, checkpoint.state_dict)
        clip = load_clip_argument(args.clip, args.frames, args.size, args.seed)
    except ConversionError as err:
        return cli.fail(_not_this_kind(args, checkpoint.state_dict, "an LSTA RGB", err))
    except (ImportError, CheckpointReadError, OSError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"config {converted.config}; clip {clip.shape}", flush=True)

    print("running the PyTorch reference ...", flush=True)
    ref = run_torch(torch_model, clip)
    print("running the Flax model ...", flush=True)
    ours = run_jax(create_model(converted.kind, **converted.config), converted.variables, clip)
    ok, report = compare_outputs(ours, ref, args.tolerance)
    print(report)
    print(f"{'OK' if ok else 'MISMATCH'} ({time.time() - start:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
