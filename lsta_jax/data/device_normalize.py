"""The input normalisation on the device: uint8 batches from the loaders (`normalize_on_host=False`) become
the float32 model inputs inside the jitted step, so the host moves and transfers a quarter of the bytes.

The arithmetic is the host's (`transforms.normalize_rgb` / `normalize_flow`, the reference's ToTensor ->
Normalize): x / 255, minus the mean, divided by the std, in float32. Float inputs pass through unchanged, so
one function serves host-normalised and uint8 batches alike.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from lsta_jax.data import transforms as T

# model input name -> (mean, std) per channel of its uint8 pixels (docs/differences.md §4.2: flow uses the
# mean of them)
INPUT_STATS = {"clip": (T.IMAGENET_MEAN, T.IMAGENET_STD), "flow": ((T.FLOW_MEAN,), (T.FLOW_STD,))}


def normalize_uint8(x: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """uint8 (..., C) -> float32 (x / 255 - mean) / std (mean/std of length C or 1); other dtypes as given."""
    if x.dtype != jnp.uint8:
        return x
    scaled = x.astype(jnp.float32) / jnp.float32(255.0)
    return (scaled - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def normalize_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Model inputs by name (`clip`, `flow`) with every uint8 entry normalised by its `INPUT_STATS`."""
    return {k: normalize_uint8(v, *INPUT_STATS[k]) if k in INPUT_STATS else v for k, v in inputs.items()}
