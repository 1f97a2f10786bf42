"""Model directories: what `lsta_jax.load_model` reads and what conversion writes.

A model directory holds
  `lsta_jax_model.json`  {"format_version", "kind", "config", "class_names", "source", "sizes"}
  `variables/`           an orbax checkpoint of {"params": ..., "batch_stats": ...}
A training workdir holds the same JSON next to `checkpoints/<step>/` (orbax CheckpointManager); `load_model`
accepts either. Variables are always restored against an abstract target built from the model itself, so a
checkpoint of another structure fails loudly instead of restoring into the wrong tree.

Checkpoints travel: every leaf of the target carries a sharding of THIS process's devices (one local device by
default, the run's mesh when training resumes), so orbax never reuses the device layout stored with the
checkpoint. A checkpoint written by 4 devices, or by 2 processes of 2 devices, loads on 1 device and the
other way round. A checkpoint that cannot be read (truncated or missing files) raises `CheckpointError`, one
line naming it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from lsta_jax.models.registry import create_model, example_input

MODEL_JSON = "lsta_jax_model.json"
CHECKPOINTS = (
    "checkpoints"  # a training workdir's orbax CheckpointManager directory (lsta_jax.train.checkpoints)
)
BEST_JSON = "best.json"
VARIABLES_DIR = "variables"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (damaged or incomplete files) or does not fit the model; the message
    is one line naming it. A ValueError, so every command's `error: ...` handler reports it."""


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint whose files cannot be read (truncated by a full disk or a failed copy, missing)."""


class _DropMissingMetadataWarning(logging.Filter):
    """orbax warns "Metadata file does not exist" whenever it reads an item directory of a CheckpointManager
    step (`checkpoints/<step>/model`) on its own, which is what `load_model` does: expected, not a problem,
    so it is kept from the user's console. Its "Failed to get item metadata" of a damaged checkpoint is
    dropped too: `restore_variables` raises `CheckpointError` naming the checkpoint instead."""

    DROPPED = ("Metadata file does not exist", "Failed to get item metadata")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROPPED)


def silence_orbax_metadata_warnings() -> None:
    """Install the filter on absl's logger (through which orbax logs) once; idempotent."""
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropMissingMetadataWarning) for f in logger.filters):
        logger.addFilter(_DropMissingMetadataWarning())


silence_orbax_metadata_warnings()


def parameter_count(tree: Any) -> int:
    """Number of scalars in a pytree of arrays."""
    return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)))


def write_model_json(
    directory: str | Path,
    kind: str,
    config: dict[str, Any],
    variables: Any,
    class_names: list[str] | None = None,
    source: str | None = None,
) -> Path:
    """Write the model description that makes a directory loadable by `load_model`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config,
        "class_names": list(class_names) if class_names is not None else None,
        "source": source,
        "sizes": {collection: parameter_count(tree) for collection, tree in dict(variables).items()},
    }
    path = directory / MODEL_JSON
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_model_json(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not an lsta_jax model directory or training workdir: {MODEL_JSON} is missing"
        )
    meta = json.loads(path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {meta.get('format_version')!r}")
    return meta


def save_model(
    directory: str | Path,
    kind: str,
    config: dict[str, Any],
    variables: Any,
    class_names: list[str] | None = None,
    source: str | None = None,
) -> Path:
    """Save `variables` of a registered model kind as a model directory (overwrites `variables/`)."""
    directory = Path(directory).absolute()
    variables = jax.tree_util.tree_map(np.asarray, dict(variables))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / VARIABLES_DIR, variables, force=True)
        checkpointer.wait_until_finished()
    write_model_json(directory, kind, config, variables, class_names, source)
    return directory


def abstract_variables(model: nn.Module, kind: str, config: dict[str, Any]) -> Any:
    """Shapes and dtypes of the model's variables, without allocating them."""
    dummy = example_input(kind, config)
    if isinstance(dummy, dict):  # a model of several named inputs (e.g. `clip` and `flow`)
        return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), **dummy))
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), dummy))


def local_sharding() -> jax.sharding.Sharding:
    """One device of this process: where `load_model` puts the variables it restores."""
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def with_sharding(target: Any, sharding: jax.sharding.Sharding) -> Any:
    """`target` (arrays or ShapeDtypeStructs) as abstract leaves placed on `sharding`: a restore target that
    ignores the device layout the checkpoint was written with."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), target
    )


def first_line(error: BaseException) -> str:
    """`Type: first line of the message` of an exception, at most 200 characters (orbax's run to dozens of
    lines)."""
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
    return line if len(line) <= 200 else line[:197] + "..."


def damaged(path: Path, error: BaseException | None = None) -> UnreadableCheckpoint:
    """The one-line error of a checkpoint whose files cannot be read."""
    why = first_line(error) if error is not None else "no readable metadata"
    return UnreadableCheckpoint(
        f"checkpoint {path} cannot be read, its files are damaged or incomplete ({why})"
    )


def leaf_name(path: Any) -> str:
    """'a/b/0/c' of a pytree key path, the same whether a node is a dict, a dataclass or a named tuple
    (orbax's metadata holds dicts and lists where the live tree holds optax states)."""
    parts = (getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path)
    return "/".join(str(p) for p in parts)


def check_fits(path: str | Path, target: Any) -> None:
    """Compare the saved tree at `path` (an orbax StandardCheckpointer directory) with `target`: the same
    leaves of the same shapes, else `CheckpointError` naming the differences; unreadable metadata raises
    `UnreadableCheckpoint`."""
    path = Path(path).absolute()
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            saved = checkpointer.metadata(path)
        except Exception as e:  # noqa: BLE001  (orbax raises many types for a missing or damaged file)
            raise damaged(path, e) from e
    saved_tree = getattr(saved, "item_metadata", saved)
    saved_tree = getattr(saved_tree, "tree", saved_tree)
    want = {leaf_name(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(target)}
    have = {
        leaf_name(k): tuple(getattr(v, "shape", ()))
        for k, v in jax.tree_util.tree_leaves_with_path(saved_tree)
    }
    if want and not have:  # orbax returns no tree (and logs a warning) for unreadable metadata
        raise damaged(path)
    bad = sorted((k, want[k], have[k]) for k in want.keys() & have.keys() if tuple(want[k]) != have[k])
    if want.keys() != have.keys() or bad:
        raise CheckpointError(
            f"checkpoint {path} does not fit the model: missing {sorted(want.keys() - have.keys())[:20]}, "
            f"unexpected {sorted(have.keys() - want.keys())[:20]}, shapes (model, saved) {bad[:10]}"
        )


def restore_variables(path: str | Path, target: Any, sharding: jax.sharding.Sharding | None = None) -> Any:
    """Restore an orbax pytree against `target`, every leaf placed on `sharding` (default: one local device).

    A structure or shape mismatch raises `CheckpointError` naming the differences; unreadable files raise
    `UnreadableCheckpoint` naming the checkpoint and the first line of the underlying error.
    """
    path = Path(path).absolute()
    check_fits(path, target)
    target = with_sharding(target, local_sharding() if sharding is None else sharding)
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            return checkpointer.restore(path, target)
        except Exception as e:  # noqa: BLE001
            raise damaged(path, e) from e


def load_model(path: str | Path, which: str = "latest") -> tuple[nn.Module, dict[str, Any]]:
    """Load `(model, variables)` from a model directory or a training workdir.

    `which` picks the checkpoint of a training workdir: 'latest', 'best' or a step number. The returned
    variables are ready for `model.apply(variables, x)` in inference mode (no RNG needed).
    """
    path = Path(path)
    meta = read_model_json(path)
    model = create_model(meta["kind"], **meta["config"])
    target = abstract_variables(model, meta["kind"], meta["config"])
    if (path / VARIABLES_DIR).is_dir():
        variables = restore_variables(path / VARIABLES_DIR, target)
    elif (path / CHECKPOINTS).is_dir():
        variables = restore_model_variables(path, target, which=which)
    else:
        raise FileNotFoundError(f"{path} has {MODEL_JSON} but neither {VARIABLES_DIR}/ nor checkpoints/")
    return model, dict(variables)


def load_class_names(path: str | Path) -> list[str] | None:
    """Class names stored with a model directory or workdir (None when it holds none)."""
    return read_model_json(path).get("class_names")


def checkpoint_steps(workdir: str | Path) -> list[int]:
    """Steps with a finished checkpoint under WORKDIR/checkpoints, ascending."""
    directory = Path(workdir) / CHECKPOINTS
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / "model").is_dir())


def resolve_step(workdir: str | Path, which: str | int = "latest") -> int:
    """'latest' | 'best' | step number -> an existing checkpoint step of the workdir (clear error if none)."""
    steps = checkpoint_steps(workdir)
    if not steps:
        raise FileNotFoundError(f"{workdir}: no checkpoints under {Path(workdir) / CHECKPOINTS}")
    if which == "latest":
        return steps[-1]
    if which == "best":
        path = Path(workdir) / CHECKPOINTS / BEST_JSON
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: this workdir was never evaluated, use 'latest'")
        step = int(json.loads(path.read_text())["step"])
    else:
        step = int(which)
    if step not in steps:
        raise FileNotFoundError(f"{workdir}: no checkpoint for step {step}; available: {steps}")
    return step


def restore_model_variables(
    workdir: str | Path,
    target: Any,
    which: str | int = "latest",
    sharding: jax.sharding.Sharding | None = None,
) -> dict[str, Any]:
    """{'params', 'batch_stats'} of a training workdir's checkpoint ('latest', 'best' or a step).

    Called by `load_model`; restores against `target` (on `sharding`, default one local device) and fails
    with `CheckpointError` on a structure mismatch or unreadable files.
    """
    step = resolve_step(workdir, which)
    try:
        return dict(restore_variables(Path(workdir) / CHECKPOINTS / str(step) / "model", target, sharding))
    except UnreadableCheckpoint as e:
        others = [s for s in checkpoint_steps(workdir) if s != step]
        if not others:
            raise
        raise UnreadableCheckpoint(
            f"{e}; other checkpoints of {workdir}: steps {others} (pick one by number)"
        ) from e
