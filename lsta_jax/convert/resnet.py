"""torchvision ResNet state dicts -> Flax `ResNet` variables (kind `resnet34`), and the flow conv1 init.

Names (docs/differences.md §3): `conv1`, `bn1`, `layer{i}.{j}.{conv1,bn1,conv2,bn2}`,
`layer{i}.0.downsample.{0,1}` and `fc` map to the Flax modules `conv1`, `bn1`,
`layer{i}_{j}/{conv1,bn1,conv2,bn2,downsample_0,downsample_1}` and `fc`: a rename plus the layout
transforms of `lsta_jax.convert.mapping`. The LSTA converter reuses `resnet_name_map` for its `resNet.*`
keys (`mapping.nest(resnet_name_map(...), 'resNet.', ('resNet',))`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lsta_jax.convert import ConvertedModel
from lsta_jax.convert.mapping import (
    ConversionError,
    NameMap,
    batch_norm_entries,
    conv_entries,
    dense_entries,
    fill_variables,
)
from lsta_jax.convert.mapping import (
    export_state_dict as export_with_map,
)
from lsta_jax.models.registry import create_model
from lsta_jax.models.resnet import RESNET34_STAGES, RESNET34_WIDTHS, ResNet

KIND = "resnet34"


def resnet_name_map(
    stage_sizes: Sequence[int] = RESNET34_STAGES,
    widths: Sequence[int] = RESNET34_WIDTHS,
    include_fc: bool = True,
) -> NameMap:
    """torch key -> Flax target for a torchvision-layout ResNet of BasicBlocks.

    A block has a `downsample` (1x1 conv + BN) exactly when torchvision gives it one: first block of a stage
    whose stride is 2 (every stage but the first) or whose width changes.
    """
    name_map: NameMap = {}
    name_map |= conv_entries("conv1", ("conv1",))
    name_map |= batch_norm_entries("bn1", ("bn1",))
    width_in = widths[0]
    for stage, (num_blocks, width) in enumerate(zip(stage_sizes, widths, strict=True)):
        for block in range(num_blocks):
            torch_name, flax_name = f"layer{stage + 1}.{block}", f"layer{stage + 1}_{block}"
            for layer in ("1", "2"):
                name_map |= conv_entries(f"{torch_name}.conv{layer}", (flax_name, f"conv{layer}"))
                name_map |= batch_norm_entries(f"{torch_name}.bn{layer}", (flax_name, f"bn{layer}"))
            stride = 2 if stage > 0 and block == 0 else 1
            if block == 0 and (stride != 1 or width_in != width):
                name_map |= conv_entries(f"{torch_name}.downsample.0", (flax_name, "downsample_0"))
                name_map |= batch_norm_entries(f"{torch_name}.downsample.1", (flax_name, "downsample_1"))
            width_in = width
    if include_fc:
        name_map |= dense_entries("fc", ("fc",))
    return name_map


def infer_resnet_layout(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Stage sizes, widths, in_channels, num_classes and include_fc read off a torchvision ResNet's shapes.

    Values that cannot be read (a key is missing) fall back to ResNet-34's; the strict filler then names the
    missing keys.
    """
    blocks: dict[int, set[int]] = {}
    widths: dict[int, int] = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r"layer(\d+)\.(\d+)\.conv1\.weight", key)
        if match:
            stage, block = int(match[1]), int(match[2])
            blocks.setdefault(stage, set()).add(block)
            if block == 0:
                widths[stage] = int(np.shape(value)[0])
    stages = sorted(blocks)
    layout: dict[str, Any] = {
        "stage_sizes": tuple(len(blocks[s]) for s in stages) or RESNET34_STAGES,
        "widths": tuple(widths.get(s, 0) for s in stages) or RESNET34_WIDTHS,
        "in_channels": int(np.shape(state_dict["conv1.weight"])[1]) if "conv1.weight" in state_dict else 3,
        "include_fc": "fc.weight" in state_dict or "fc.bias" in state_dict,
    }
    fc = state_dict.get("fc.weight", state_dict.get("fc.bias"))
    layout["num_classes"] = int(np.shape(fc)[0]) if fc is not None else 1000
    return layout


def abstract_resnet_variables(model: ResNet) -> Any:
    """Shapes/dtypes of a Flax ResNet's variables (no allocation, no compute)."""
    dummy = jax.ShapeDtypeStruct((1, 32, 32, model.in_channels), jnp.float32)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), dummy)


def resnet_variables(state_dict: Mapping[str, np.ndarray], model: ResNet) -> dict[str, Any]:
    """Fill the variables of a Flax `ResNet` (any layout) strictly from a torchvision-named state dict."""
    name_map = resnet_name_map(model.stage_sizes, model.widths, model.include_fc)
    return fill_variables(state_dict, name_map, abstract_resnet_variables(model))


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> ConvertedModel:
    """A torchvision ResNet-34 state dict -> `ConvertedModel` of kind `resnet34`.

    `num_classes`, `in_channels` (e.g. 10 for a flow network) and `include_fc` (False when there is no
    `fc.*`) come from the tensor shapes. Anything that is not exactly a ResNet-34 raises `ConversionError`.
    """
    layout = infer_resnet_layout(state_dict)
    config = {
        "num_classes": layout["num_classes"],
        "include_fc": layout["include_fc"],
        "in_channels": layout["in_channels"],
        "dtype": "float32",
    }
    model = create_model(KIND, **config)
    try:
        variables = resnet_variables(state_dict, model)
    except ConversionError as err:
        found = (tuple(layout["stage_sizes"]), tuple(layout["widths"]))
        if found != (RESNET34_STAGES, RESNET34_WIDTHS):
            hint = (
                f"not a ResNet-34: the checkpoint has stage sizes {found[0]} and widths {found[1]}, "
                f"ResNet-34 has {RESNET34_STAGES} and {RESNET34_WIDTHS}; "
            )
            raise ConversionError(
                hint + err.header, err.missing, err.unexpected, err.mismatched, err.unfilled
            ) from None
        raise
    notes = (
        f"in_channels {config['in_channels']}, fc: {config['num_classes']} classes"
        if config["include_fc"]
        else f"in_channels {config['in_channels']}, backbone only (no fc)",
    )
    return ConvertedModel(
        KIND,
        config,
        variables,
        num_classes=config["num_classes"] if config["include_fc"] else None,
        notes=notes,
    )


def export_state_dict(config: Mapping[str, Any], variables: Any) -> dict[str, np.ndarray]:
    """Flax variables of a `resnet34` config -> torchvision-named state dict (torch layouts, numpy)."""
    name_map = resnet_name_map(RESNET34_STAGES, RESNET34_WIDTHS, bool(config.get("include_fc", True)))
    return export_with_map(variables, name_map)


def flow_conv1_from_rgb(
    rgb_conv1_weight: np.ndarray, in_channels: int = 10, layout: str = "OIHW"
) -> np.ndarray:
    """Cross-modality initialisation of a flow network's conv1 from an RGB one (docs/differences.md §4.2,
    ego-rnn).

    The RGB kernel is averaged over its 3 input channels and the mean is replicated `in_channels` times
    (10 = 5 stacked x/y flow frames), with no rescaling: w_flow[o, c] = (1/3) sum_k w_rgb[o, k] for every c.
    `layout` is 'OIHW' (torch: (64, 3, 7, 7) -> (64, in_channels, 7, 7)) or 'HWIO' (Flax kernel:
    (7, 7, 3, 64) -> (7, 7, in_channels, 64)). Returns float32.
    """
    axis = {"OIHW": 1, "HWIO": 2}.get(layout)
    if axis is None:
        raise ValueError(f"layout must be 'OIHW' or 'HWIO', got {layout!r}")
    weight = np.asarray(rgb_conv1_weight, np.float32)
    if weight.ndim != 4 or weight.shape[axis] != 3:
        raise ValueError(
            f"expected an RGB conv1 weight with 3 input channels in {layout}, got {weight.shape}"
        )
    mean = weight.mean(axis=axis, keepdims=True)
    return np.repeat(mean, in_channels, axis=axis)


def flow_state_dict_from_rgb(
    rgb_state_dict: Mapping[str, np.ndarray], in_channels: int = 10, keep_fc: bool = False
) -> dict[str, np.ndarray]:
    """An RGB torchvision ResNet state dict turned into the initial state of a flow network
    (docs/differences.md §4.2).

    `conv1.weight` becomes `flow_conv1_from_rgb(conv1.weight, in_channels)`; every other tensor is copied; the
    ImageNet `fc.*` is dropped unless `keep_fc` (ego-rnn drops it and trains a new action head). Feed the
    result to `convert_state_dict` for a `resnet34` model with `in_channels` inputs.
    """
    if "conv1.weight" not in rgb_state_dict:
        raise ConversionError("no conv1.weight to initialise the flow conv1 from", missing=["conv1.weight"])
    out = {
        key: np.asarray(value)
        for key, value in rgb_state_dict.items()
        if keep_fc or not key.startswith("fc.")
    }
    out["conv1.weight"] = flow_conv1_from_rgb(rgb_state_dict["conv1.weight"], in_channels)
    return out
