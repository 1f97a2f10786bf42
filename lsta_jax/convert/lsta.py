"""The authors' LSTA RGB checkpoints (`attentionModel` state dicts) -> Flax variables of kind `lsta_rgb`.

WORK IN PROGRESS: the strict converter is built on `lsta_jax.convert.mapping` once it lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

ATT_GATES = ("i", "f", "a", "o")
MEM_GATES = ("i", "f", "c", "o")


def lsta_cell_names(
    attention_pooling: bool = True, output_pooling: bool = True, bias_control: bool = True
) -> dict[str, tuple[tuple[str, ...], str]]:
    """Torch key (relative to the cell) -> (Flax path inside `lsta_cell`, kind) for every cell tensor.

    Kinds: `conv` (OIHW -> HWIO), `linear` ((out, in) -> (in, out)), `bias` (as is). The o-gate naming swap
    (reference 2.2) needs nothing special: names map one to one.
    """
    names: dict[str, tuple[tuple[str, ...], str]] = {}
    if output_pooling:
        names["c_classifier.weight"] = (("c_classifier", "kernel"), "linear")
        if bias_control:
            names["coupling_fc.weight"] = (("coupling_fc", "kernel"), "linear")
    if attention_pooling:
        for g in ATT_GATES:
            names[f"conv_{g}_s.weight"] = ((f"conv_{g}_s", "kernel"), "conv")
            names[f"conv_{g}_s.bias"] = ((f"conv_{g}_s", "bias"), "bias")
            names[f"conv_{g}_cam.weight"] = ((f"conv_{g}_cam", "kernel"), "conv")
    for g in MEM_GATES:
        names[f"conv_{g}_x.weight"] = ((f"conv_{g}_x", "kernel"), "conv")
        names[f"conv_{g}_x.bias"] = ((f"conv_{g}_x", "bias"), "bias")
        names[f"conv_{g}_c.weight"] = ((f"conv_{g}_c", "kernel"), "conv")
    return names


def _transform(value: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":
        return np.transpose(value, (2, 3, 1, 0))
    if kind == "linear":
        return np.transpose(value)
    return value


def torch_cell_to_flax(state_dict: Mapping[str, Any], prefix: str = "", **switches: bool) -> dict[str, Any]:
    """Params of `LSTACell` from the torch cell's tensors (keys `prefix + name`)."""
    params: dict[str, Any] = {}
    for key, (path, kind) in lsta_cell_names(**switches).items():
        value = np.asarray(state_dict[prefix + key], np.float32)
        params.setdefault(path[0], {})[path[1]] = _transform(value, kind)
    return params
