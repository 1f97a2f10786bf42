"""Model kinds by name: the one place that turns a saved `(kind, config)` back into a Flax module.

Every checkpoint lsta_jax writes (converted from PyTorch or trained here) stores its kind and a JSON-able
config; `create_model(kind, **config)` rebuilds the module and `example_input(kind, config)` gives an input
that `model.init` accepts (an array, or for a model of several inputs a dict of them by argument name, passed
as keywords), so loaders can restore against an abstract target of the right structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import numpy as np


@dataclass(frozen=True)
class ModelKind:
    build: Callable[..., nn.Module]
    example_input: Callable[[dict[str, Any]], np.ndarray | dict[str, np.ndarray]]
    description: str


_KINDS: dict[str, ModelKind] = {}


def register(
    kind: str,
    example_input: Callable[[dict[str, Any]], np.ndarray | dict[str, np.ndarray]],
    description: str,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder `f(**config) -> nn.Module` under `kind`."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if kind in _KINDS:
            raise ValueError(f"model kind {kind!r} is registered twice")
        _KINDS[kind] = ModelKind(build, example_input, description)
        return build

    return decorate


def _lookup(kind: str) -> ModelKind:
    import lsta_jax.models  # noqa: F401  (importing the package registers every kind)

    if kind not in _KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(_KINDS))}")
    return _KINDS[kind]


def create_model(kind: str, **config: Any) -> nn.Module:
    """Build the Flax module of a registered kind from its config."""
    return _lookup(kind).build(**config)


def example_input(kind: str, config: dict[str, Any]) -> np.ndarray | dict[str, np.ndarray]:
    """A small input that `create_model(kind, **config).init` accepts (its size does not matter)."""
    return _lookup(kind).example_input(config)


def available_kinds() -> dict[str, str]:
    """Registered kinds and their one-line descriptions."""
    _lookup(next(iter(_KINDS), "resnet34"))
    return {name: k.description for name, k in sorted(_KINDS.items())}
