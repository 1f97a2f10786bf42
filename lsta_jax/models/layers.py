"""Layers and helpers shared by the model families: torch-style initialisers, the classifier head, and the
JSON config -> module attributes conversion every registry builder uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# torch's `nn.init.xavier_normal` (plain normal, std sqrt(2 / (fan_in + fan_out)), receptive field included).
xavier_normal = nn.initializers.variance_scaling(1.0, "fan_avg", "normal")
# torch's default `nn.Linear` weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_linear_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_linear_bias_init(fan_in: int) -> Callable[..., jax.Array]:
    """torch's default `nn.Linear` bias init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def classifier_head(
    features: jax.Array, num_classes: int, dropout_rate: float, train: bool, name: str = "fc"
) -> jax.Array:
    """The authors' `classifier = Sequential(Dropout(p), fc)`: dropout only when training, then Dense `name`
    with torch's default Linear init; call inside a compact method (creates the submodule `name`, e.g. `fc`,
    ego-rnn's flow `fc_action` or its two-stream `fc2`)."""
    dropped = nn.Dropout(dropout_rate, deterministic=not train)(features)
    return nn.Dense(
        num_classes,
        kernel_init=torch_linear_kernel_init,
        bias_init=torch_linear_bias_init(features.shape[-1]),
        name=name,
    )(dropped)


def config_to_attributes(config: Mapping[str, Any], module: type[nn.Module]) -> dict[str, Any]:
    """JSON config -> `module` attributes (dtype string -> dtype, lists -> tuples); unknown keys: error."""
    attrs = dict(config)
    known = set(module.__dataclass_fields__) - {"parent", "name"}
    unknown = set(attrs) - known
    if unknown:
        raise ValueError(f"unknown {module.__name__} config keys {sorted(unknown)}; known: {sorted(known)}")
    if isinstance(attrs.get("dtype"), str):
        attrs["dtype"] = jnp.dtype(attrs["dtype"])
    for key in ("backbone_stage_sizes", "backbone_widths", "backbone_stage_strides"):
        if attrs.get(key) is not None:
            attrs[key] = tuple(int(v) for v in attrs[key])
    return attrs
