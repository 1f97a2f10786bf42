"""Torch tensors <-> Flax variables: layout transforms, explicit name maps and ONE strict filler.

A *name map* is an ordered `dict[torch_key, Target]`; a `Target` says which Flax leaf the tensor fills
(`collection`, `path`) and how its layout changes (`transform`, a key of `TRANSFORMS`). Converters build
their name map from small helpers (`conv_entries`, `batch_norm_entries`, `dense_entries`, `bias_entries`,
`nest`) and call `fill_variables`, which fills every Flax leaf, consumes every torch key and checks every
shape, or raises one `ConversionError` listing all problems. `export_state_dict` runs the same map backwards
(Flax -> torch layout) so tests can check exact round trips.

Layouts (docs/differences.md §2.5): conv OIHW -> HWIO `transpose(2, 3, 1, 0)`; Linear weight (out, in) ->
Dense kernel (in, out); BatchNorm weight -> params `scale`, bias -> params `bias`, running_mean -> batch_stats
`mean`, running_var -> batch_stats `var`. No kernel flipping: both frameworks compute cross-correlation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np


class ConversionError(ValueError):
    """A checkpoint does not fit the model. Attributes hold every offending name (also in the message)."""

    def __init__(
        self,
        message: str,
        missing: Iterable[str] = (),
        unexpected: Iterable[str] = (),
        mismatched: Iterable[str] = (),
        unfilled: Iterable[str] = (),
    ) -> None:
        self.header = message
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        self.unfilled = list(unfilled)
        sections = [message]
        for title, names in (
            ("missing torch keys (the model needs them, the checkpoint lacks them)", self.missing),
            ("unexpected torch keys (in the checkpoint, not used by the model)", self.unexpected),
            ("shape mismatches", self.mismatched),
            ("Flax leaves no torch key fills (name map incomplete)", self.unfilled),
        ):
            if names:
                sections.append(f"{len(names)} {title}:\n" + "\n".join(f"  {n}" for n in names))
        super().__init__("\n".join(sections))

    def summary(self, all_up_to: int = 8, shown: int = 3) -> str:
        """One line: the header and, per kind of problem, its count and its names (all of them up to
        `all_up_to`, else the first `shown`)."""
        parts = [self.header]
        for title, names in (
            ("missing torch keys", self.missing),
            ("unexpected torch keys", self.unexpected),
            ("shape mismatches", self.mismatched),
            ("unfilled Flax leaves", self.unfilled),
        ):
            if names:
                listed = names if len(names) <= all_up_to else [*names[:shown], "..."]
                parts.append(f"{len(names)} {title} ({', '.join(listed)})")
        return "; ".join(parts)


# --- layout transforms -----------------------------------------------------------------------------------


def conv_to_flax(weight: np.ndarray) -> np.ndarray:
    """Conv2d weight (O, I, kH, kW) -> Flax Conv kernel (kH, kW, I, O); a Conv3d's (O, I, kD, kH, kW) ->
    (kD, kH, kW, I, O) likewise."""
    return np.transpose(weight, (*range(2, np.ndim(weight)), 1, 0))


def conv_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Flax Conv kernel (kH, kW, I, O) -> Conv2d weight (O, I, kH, kW) (and the 3-D analogue)."""
    n = np.ndim(kernel)
    return np.transpose(kernel, (n - 1, n - 2, *range(n - 2)))


def dense_to_flax(weight: np.ndarray) -> np.ndarray:
    """Linear weight (out, in) -> Flax Dense kernel (in, out)."""
    return np.transpose(weight)


def dense_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Flax Dense kernel (in, out) -> Linear weight (out, in)."""
    return np.transpose(kernel)


def _identity(x: np.ndarray) -> np.ndarray:
    return x


#: name -> (torch -> flax, flax -> torch)
TRANSFORMS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "conv": (conv_to_flax, conv_to_torch),
    "dense": (dense_to_flax, dense_to_torch),
    "identity": (_identity, _identity),
}


# --- name maps -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one torch tensor goes: `variables[collection][path...]`, through `TRANSFORMS[transform]`."""

    collection: str
    path: tuple[str, ...]
    transform: str = "identity"

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; known: {sorted(TRANSFORMS)}")

    def name(self) -> str:
        return "/".join((self.collection, *self.path))


NameMap = dict[str, Target]


def _prefix(torch_prefix: str) -> str:
    return f"{torch_prefix}." if torch_prefix and not torch_prefix.endswith(".") else torch_prefix


def conv_entries(torch_prefix: str, flax_path: tuple[str, ...], bias: bool = False) -> NameMap:
    """`{prefix}.weight` (OIHW) -> params `{flax_path}/kernel` (HWIO); with `bias`, `{prefix}.bias` too."""
    p = _prefix(torch_prefix)
    entries = {f"{p}weight": Target("params", (*flax_path, "kernel"), "conv")}
    if bias:
        entries[f"{p}bias"] = Target("params", (*flax_path, "bias"))
    return entries


def dense_entries(torch_prefix: str, flax_path: tuple[str, ...], bias: bool = True) -> NameMap:
    """`{prefix}.weight` (out, in) -> params `{flax_path}/kernel` (in, out); with `bias`, `{prefix}.bias`."""
    p = _prefix(torch_prefix)
    entries = {f"{p}weight": Target("params", (*flax_path, "kernel"), "dense")}
    if bias:
        entries[f"{p}bias"] = Target("params", (*flax_path, "bias"))
    return entries


def bias_entries(torch_key: str, flax_path: tuple[str, ...]) -> NameMap:
    """One tensor copied as is into params `flax_path` (e.g. a bias or a free parameter)."""
    return {torch_key: Target("params", flax_path)}


def batch_norm_entries(torch_prefix: str, flax_path: tuple[str, ...]) -> NameMap:
    """BatchNorm2d `weight, bias, running_mean, running_var` -> params scale/bias, batch_stats mean/var."""
    p = _prefix(torch_prefix)
    return {
        f"{p}weight": Target("params", (*flax_path, "scale")),
        f"{p}bias": Target("params", (*flax_path, "bias")),
        f"{p}running_mean": Target("batch_stats", (*flax_path, "mean")),
        f"{p}running_var": Target("batch_stats", (*flax_path, "var")),
    }


def nest(name_map: Mapping[str, Target], torch_prefix: str, flax_path: tuple[str, ...]) -> NameMap:
    """The map of a submodule placed inside a bigger model: torch keys get `torch_prefix` (e.g. 'resNet.'),
    Flax paths get `flax_path` (e.g. ('resNet',)) inserted after the collection."""
    p = _prefix(torch_prefix)
    return {
        f"{p}{key}": Target(t.collection, (*flax_path, *t.path), t.transform) for key, t in name_map.items()
    }


# --- the strict filler and its inverse -------------------------------------------------------------------


def leaf_names(tree: Any) -> dict[str, Any]:
    """`{'params/layer1_0/conv1/kernel': leaf, ...}` for a (possibly abstract) variables tree."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        out["/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)] = leaf
    return out


def _set(tree: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def fill_variables(
    state_dict: Mapping[str, Any], name_map: Mapping[str, Target], abstract_variables: Any
) -> dict[str, Any]:
    """Fill every leaf of `abstract_variables` from `state_dict` through `name_map`, strictly.

    `abstract_variables` is the model's variable tree (e.g. `jax.eval_shape(model.init, ...)`, or
    `lsta_jax.checkpoint.abstract_variables`); only its structure, shapes and dtypes are used. Every torch key
    must be in the name map, every mapped key must be in the state dict, every Flax leaf must be the target of
    exactly one key and every transformed shape must equal the leaf's; otherwise one `ConversionError` lists
    all missing, unexpected, mismatched and unfilled names. Returns plain nested dicts of numpy arrays cast to
    the leaves' dtypes.
    """
    leaves = leaf_names(abstract_variables)
    missing = [key for key in name_map if key not in state_dict]
    unexpected = [key for key in state_dict if key not in name_map]
    mismatched: list[str] = []
    unfilled: list[str] = []
    targets: dict[str, str] = {}
    variables: dict[str, Any] = {}
    for key, target in name_map.items():
        name = target.name()
        if name in targets:
            raise ValueError(f"name map error: {key} and {targets[name]} both fill {name}")
        targets[name] = key
        if name not in leaves:
            mismatched.append(f"{key} -> {name}: the model has no such leaf")
            continue
        if key not in state_dict:
            continue
        value = TRANSFORMS[target.transform][0](np.asarray(state_dict[key]))
        leaf = leaves[name]
        if tuple(value.shape) != tuple(leaf.shape):
            torch_shape = tuple(np.shape(state_dict[key]))
            mismatched.append(
                f"{key} {torch_shape} -> {name}: model needs {tuple(leaf.shape)}, "
                f"checkpoint gives {tuple(value.shape)} after the {target.transform} transform"
            )
            continue
        _set(variables, (target.collection, *target.path), np.asarray(value, dtype=leaf.dtype))
    unfilled = [name for name in leaves if name not in targets]
    if missing or unexpected or mismatched or unfilled:
        header = (
            f"the checkpoint does not fit the model ({len(state_dict)} torch keys, {len(leaves)} Flax leaves)"
        )
        if state_dict and not any(key in name_map for key in state_dict):
            header += (
                f"; NONE of its keys is one the model expects (it starts {list(state_dict)[:3]}, the model "
                f"expects {list(name_map)[:3]}): another kind of checkpoint, or keys with a prefix?"
            )
        raise ConversionError(
            header,
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
            unfilled=unfilled,
        )
    return variables


def export_state_dict(variables: Any, name_map: Mapping[str, Target]) -> dict[str, np.ndarray]:
    """The inverse of `fill_variables`: Flax variables -> torch-layout state dict, in name-map order.

    Strict as well: every mapped leaf must exist and every Flax leaf must be mapped (`ConversionError`).
    """
    leaves = leaf_names(variables)
    by_name = {target.name(): key for key, target in name_map.items()}
    absent = [f"  {name} (for torch key {key})" for name, key in by_name.items() if name not in leaves]
    unfilled = [name for name in leaves if name not in by_name]
    if absent or unfilled:
        message = "the variables do not fit the name map"
        if absent:
            message += f"\n{len(absent)} mapped Flax leaves absent from the variables:\n" + "\n".join(absent)
        raise ConversionError(message, unfilled=unfilled)
    return {
        key: np.asarray(TRANSFORMS[target.transform][1](np.asarray(leaves[target.name()])))
        for key, target in name_map.items()
    }
