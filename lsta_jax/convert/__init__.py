"""PyTorch checkpoints -> lsta_jax model directories, offline (`python -m lsta_jax.convert --help`).

Pieces (one job each):
- `torch_io`: read a `.pth` file (zip or legacy, bare or wrapped, `module.` prefixes, GPU tensors) into
  `{torch_key: numpy array}`; needs the `torch` extra, and says how to install it when missing.
- `mapping`: layout transforms, name maps (`torch_key -> Target(collection, path, transform)`) and the one
  strict filler `fill_variables` (every key consumed, every leaf filled, shapes equal, else a
  `ConversionError` listing all problems), plus its inverse `export_state_dict`.
- one module per checkpoint kind (`CONVERTERS`), imported lazily.

Adding a kind (e.g. `lsta_rgb` in `lsta_jax/convert/lsta.py`): add `'kind': 'module.path'` to `CONVERTERS`
and give the module

    def convert_state_dict(state_dict: dict[str, np.ndarray]) -> ConvertedModel: ...

which infers the config from the tensor shapes, builds the model with `lsta_jax.models.create_model`, builds
a name map (reuse `lsta_jax.convert.resnet.resnet_name_map` nested under `'resNet.'` / `('resNet',)` with
`mapping.nest`), and calls `mapping.fill_variables(state_dict, name_map, abstract)` with
`abstract = lsta_jax.checkpoint.abstract_variables(model, kind, config)`. Keys the model does not use but
the file legitimately carries (e.g. LSTA's duplicate `classifier.1.*`) are checked and removed by the
converter before filling, never silently ignored. Optionally also `export_state_dict(config, variables)`
(Flax -> torch layout) for round-trip tests. The CLI then writes the result with
`lsta_jax.checkpoint.save_model`, and `lsta_jax.load_model(DIR)` gives back `(model, variables)`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from lsta_jax.convert.mapping import ConversionError
from lsta_jax.convert.torch_io import CheckpointReadError

#: checkpoint kind -> module exposing `convert_state_dict(state_dict) -> ConvertedModel`
CONVERTERS: dict[str, str] = {
    "resnet34": "lsta_jax.convert.resnet",
    "lsta_rgb": "lsta_jax.convert.lsta",
    "convlstm_rgb": "lsta_jax.convert.ego_rnn",
    "egornn_flow": "lsta_jax.convert.ego_rnn_flow",
    "egornn_two_stream": "lsta_jax.convert.ego_rnn_two_stream",
}

__all__ = [
    "CONVERTERS",
    "CheckpointReadError",
    "ConversionError",
    "ConvertedModel",
    "convert_checkpoint",
    "converter",
    "fitting_kinds",
]


@dataclass
class ConvertedModel:
    """What a converter returns: enough for `lsta_jax.checkpoint.save_model`.

    kind: the registered model kind (`lsta_jax.models.create_model(kind, **config)` rebuilds the module).
    config: JSON-able model config (dtype as a string).
    variables: {'params': ..., 'batch_stats': ...} nested dicts of numpy arrays.
    class_names: names of the output classes when the checkpoint carries them (else None).
    num_classes: how many class names a `--class-names` file must hold (None: not checked).
    notes: extra lines for the conversion summary.
    """

    kind: str
    config: dict[str, Any]
    variables: dict[str, Any]
    class_names: list[str] | None = None
    num_classes: int | None = None
    notes: tuple[str, ...] = ()


def converter(kind: str) -> ModuleType:
    """The converter module of `kind` (imported on first use)."""
    if kind not in CONVERTERS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; known kinds: {', '.join(sorted(CONVERTERS))}")
    return importlib.import_module(CONVERTERS[kind])


def fitting_kinds(state_dict: dict[str, Any], exclude: tuple[str, ...] = ()) -> list[str]:
    """The checkpoint kinds (`CONVERTERS`, less `exclude`) whose converter accepts `state_dict`: what a file
    that does not convert to the kind asked for looks like, from its keys and shapes."""
    kinds = []
    for kind in CONVERTERS:
        if kind in exclude:
            continue
        try:
            converter(kind).convert_state_dict(state_dict)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):  # ConversionError included
            continue
        kinds.append(kind)
    return kinds


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (surrounding whitespace stripped, blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such class-names file")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names in it (expected one name per line)")
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{path}: duplicate class names {duplicates[:10]}")
    return names


def convert_checkpoint(
    kind: str,
    torch_checkpoint: str | Path,
    class_names: list[str] | None = None,
    trust_pickle: bool = False,
) -> tuple[ConvertedModel, Any]:
    """Read a PyTorch checkpoint and convert it: returns `(ConvertedModel, TorchCheckpoint)`."""
    from lsta_jax.convert.torch_io import read_torch_checkpoint

    module = converter(kind)
    checkpoint = read_torch_checkpoint(torch_checkpoint, trust_pickle=trust_pickle)
    converted = module.convert_state_dict(checkpoint.state_dict)
    if class_names is not None:
        if converted.num_classes is not None and len(class_names) != converted.num_classes:
            raise ValueError(
                f"{len(class_names)} class names given but the {kind} checkpoint has "
                f"{converted.num_classes} output classes"
            )
        converted.class_names = list(class_names)
    return converted, checkpoint
